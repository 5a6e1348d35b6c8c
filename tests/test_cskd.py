import math

import pytest
import torch
import torch.nn.functional as F
from timm.layers import SelectAdaptivePool2d
from torch import nn

from kdlab.methods import (CSKD, DeiTHard, ckf_share, cskd_loss, cskd_targets, dense_and_global_logits,
                           dense_teacher_logits, distilled_vit_logits)
from kdlab.methods.common import epoch_at
from kdlab.methods.cskd import cskd_prediction, deit_hard_loss, gap_linear_classifier, pool_student_logits
from kdlab.models import create

FORMULAS = {
    "linear": lambda x: 1 - x,
    "x2": lambda x: (1 - x) ** 2,
    "cos": lambda x: math.cos(math.pi * x / 2),
}


# ------------------------------------------------------------------------------------------ schedule


def share_at_epoch(epoch, epochs, kind="linear"):
    """The per-epoch dense share of epoch ``epoch`` (0-based): the progress at that epoch's start."""
    return ckf_share(epoch / epochs, epochs, kind)


def test_linear_share_starts_at_1_halves_midway_and_ends_at_1_over_e():
    assert share_at_epoch(0, 10) == 1.0
    assert share_at_epoch(5, 10) == pytest.approx(0.5)
    assert share_at_epoch(9, 10) == pytest.approx(1 / 10)
    assert ckf_share(1.0, 10) == pytest.approx(1 / 10), "the end of training keeps the last epoch's share"
    assert ckf_share(0.99, 1) == 1.0, "a single epoch never leaves the dense targets"


@pytest.mark.parametrize("kind", FORMULAS)
@pytest.mark.parametrize("epochs", [1, 4, 30])
def test_each_kind_follows_its_formula_and_decreases_strictly_without_reaching_0(kind, epochs):
    values = [share_at_epoch(e, epochs, kind) for e in range(epochs)]
    assert values == pytest.approx([FORMULAS[kind](e / epochs) for e in range(epochs)])
    assert values[0] == 1.0 and all(a > b for a, b in zip(values, values[1:])) and values[-1] > 0


def test_x2_lies_below_linear_and_cos_above_in_between():
    for e in range(1, 20):
        assert share_at_epoch(e, 20, "x2") < share_at_epoch(e, 20) < share_at_epoch(e, 20, "cos")


def test_per_iteration_gives_the_smooth_schedule():
    assert ckf_share(0.25, 10, per_iteration=True) == pytest.approx(0.75)
    assert ckf_share(1.0, 10, per_iteration=True) == 0.0
    assert ckf_share(0.5, 10, "cos", per_iteration=True) == pytest.approx(math.cos(math.pi / 4))


@pytest.mark.parametrize("epochs", [1, 3, 7, 22, 30])  # 15 / 22 * 22 < 15 in floats
@pytest.mark.parametrize("steps_per_epoch", [1, 3, 7, 13])
def test_progress_from_the_trainer_steps_the_share_once_per_epoch(epochs, steps_per_epoch):
    total = epochs * steps_per_epoch
    for step in range(total):  # fit passes progress = step / total_steps
        stepped = ckf_share(step / total, epochs)
        assert epoch_at(step / total, epochs) == step // steps_per_epoch, f"step {step}"
        assert stepped == FORMULAS["linear"]((step // steps_per_epoch) / epochs), f"step {step}"
        smooth = ckf_share(step / total, epochs, per_iteration=True)
        assert smooth == pytest.approx(1 - step / total)
    assert ckf_share(1.0, epochs) == pytest.approx(1 / epochs), "the last epoch's value, never 0"


@pytest.mark.parametrize("args, match", [
    ((0.0, 0), "epochs must be an int >= 1"),
    ((0.0, True), "epochs must be an int >= 1"),
    ((0.0, 2.5), "epochs must be an int >= 1"),
    ((0.0, 10, "exp"), "kind must be one of 'linear', 'x2', 'cos', got 'exp'"),
])
def test_bad_schedule_arguments_fail_clearly(args, match):
    with pytest.raises(ValueError, match=match):
        ckf_share(*args)


def test_bad_progress_fails_clearly():
    for progress in (-0.1, 1.5, float("nan"), 3):
        with pytest.raises(ValueError, match=r"progress must be a finite number >= 0 and <= 1"):
            ckf_share(progress, 10)


# ------------------------------------------------------------------------------------------- teacher


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    return torch.rand(3, 3, 32, 32), torch.randint(0, 10, (3,))


@pytest.mark.parametrize("name", ["cnn_small", "cnn"])
def test_mean_of_dense_teacher_logits_is_the_teacher_output(name, images):
    x, _ = images
    teacher = create(name).eval()
    nn.init.normal_(teacher.get_classifier().bias, std=1.0)  # a bias that matters
    with torch.no_grad():
        dense, global_logits = dense_and_global_logits(teacher, x)
        fmap = teacher.forward_features(x)
        fc = teacher.get_classifier()
        as_conv = F.conv2d(fmap, fc.weight[:, :, None, None], fc.bias)
        logits = teacher(x)
    assert dense.shape == (3, 10, 4, 4)
    assert torch.allclose(dense, as_conv, atol=1e-5), "the classifier at every location, bias included"
    assert torch.allclose(global_logits, logits, atol=1e-5)
    assert torch.allclose(dense.mean(dim=(2, 3)), logits, atol=1e-5)


def test_heads_that_are_not_gap_linear_are_rejected():
    max_pooled = create("cnn_small")
    max_pooled.head.global_pool = SelectAdaptivePool2d(pool_type="max", flatten=True)
    mlp_head = create("cnn_small")
    mlp_head.head.fc = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    for teacher, match in [(max_pooled, "not the spatial mean"), (mlp_head, "Sequential, not an nn.Linear"),
                           (create("vit"), "not the spatial mean"), (create("vit_distilled"), "tuple")]:
        with pytest.raises(ValueError, match=match):
            gap_linear_classifier(teacher)


def test_the_head_probe_leaves_the_global_rng_alone():
    teacher = create("cnn_small")
    state = torch.get_rng_state()
    assert gap_linear_classifier(teacher) is teacher.get_classifier()
    assert torch.equal(torch.get_rng_state(), state)


def test_dense_teacher_logits_rejects_bad_input():
    fc = nn.Linear(8, 5)
    with pytest.raises(ValueError, match=r"expected an \(N, 8, h, w\) feature map"):
        dense_teacher_logits(torch.randn(2, 8, 4), fc)
    with pytest.raises(ValueError, match=r"expected an \(N, 8, h, w\) feature map"):
        dense_teacher_logits(torch.randn(2, 7, 4, 4), fc)
    with pytest.raises(ValueError, match="must be an nn.Linear"):
        dense_teacher_logits(torch.randn(2, 8, 4, 4), nn.Conv2d(8, 5, 1))


# ------------------------------------------------------------------------------------------- targets


def test_fusion_extremes_give_dense_then_global_argmax():
    dense, global_logits = torch.randn(4, 6, 3, 5), torch.randn(4, 6)
    assert torch.equal(cskd_targets(dense, global_logits, 1.0), dense.argmax(1))
    assert torch.equal(cskd_targets(dense, global_logits, 0), global_logits.argmax(1)[:, None, None].expand(4, 3, 5))
    assert cskd_targets(dense, global_logits, 0.3).dtype == torch.long


def test_fusion_happens_in_logit_space_not_probability_space():
    dense = torch.tensor([10.0, 9.0, 0.0]).view(1, 3, 1, 1)
    global_logits = torch.tensor([[0.0, 2.0, 10.0]])
    # logits: 0.5 (10, 11, 10) -> class 1; probabilities: about (0.37, 0.13, 0.50) -> class 2
    probability_fusion = 0.5 * (F.softmax(dense, 1) + F.softmax(global_logits, 1)[:, :, None, None])
    assert probability_fusion.argmax(1).item() == 2
    assert cskd_targets(dense, global_logits, 0.5).item() == 1
    assert cskd_targets(dense, global_logits, 0.9).item() == 0, "0.9 (10, 9, 0) + 0.1 (0, 2, 10) = (9, 8.3, 1)"
    assert cskd_targets(dense, global_logits, 0.1).item() == 2, "0.1 (10, 9, 0) + 0.9 (0, 2, 10) = (1, 2.7, 9)"


def test_cskd_targets_rejects_bad_input():
    dense = torch.randn(2, 5, 4, 4)
    with pytest.raises(ValueError, match=r"dense_share must be a finite number >= 0 and <= 1"):
        cskd_targets(dense, torch.randn(2, 5), 1.5)
    with pytest.raises(ValueError, match=r"dense teacher logits \(N, K, h, w\) and global logits \(N, K\)"):
        cskd_targets(dense, torch.randn(2, 6), 0.5)
    with pytest.raises(ValueError, match="dense teacher logits"):
        cskd_targets(torch.randn(2, 5, 4), torch.randn(2, 5), 0.5)


# ------------------------------------------------------------------------------------------- student


def test_patch_tokens_are_laid_out_row_major_before_pooling():
    g, k = 8, 12
    student = create("vit_distilled", num_classes=k, embed_dim=k, depth=1, num_heads=3)
    with torch.no_grad():
        student.head_dist.weight.copy_(torch.eye(k))
        student.head_dist.bias.zero_()
    for r, c in [(1, 6), (6, 1), (0, 7), (5, 2)]:
        tokens = torch.zeros(1, 2 + g * g, k)
        tokens[0, 2 + r * g + c, 3] = 1.0  # a marker on token r*g + c, class 3
        student.forward_features = lambda x, tokens=tokens: tokens
        _, _, dense = distilled_vit_logits(student, torch.zeros(1, 3, 32, 32))
        pooled = pool_student_logits(dense, (4, 4))
        expected = torch.zeros(1, k, 4, 4)
        expected[0, 3, r // 2, c // 2] = 0.25
        assert torch.equal(pooled, expected), f"marker at ({r}, {c}) must land in ({r // 2}, {c // 2})"


def test_timm_patch_order_matches_the_dense_map():
    student = create("vit_distilled", depth=0).eval()  # no attention: each patch token sees its own patch only
    x = torch.zeros(1, 3, 32, 32)
    marked = x.clone()
    marked[0, :, 1 * 4:2 * 4, 6 * 4:7 * 4] = 1.0  # patch row 1, column 6
    with torch.no_grad():
        changed = (distilled_vit_logits(student, marked)[2] - distilled_vit_logits(student, x)[2]).abs().sum(1)[0]
    assert changed.nonzero().tolist() == [[1, 6]]


def test_pooling_averages_logit_blocks_and_needs_an_integer_factor():
    dense = torch.arange(16.0).view(1, 1, 4, 4)
    assert pool_student_logits(dense, (2, 2)).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    assert torch.equal(pool_student_logits(dense, (4, 4)), dense)
    with pytest.raises(ValueError, match="8x8 patch grid must be an integer multiple of the teacher's 3x3 grid"):
        pool_student_logits(torch.randn(2, 5, 8, 8), (3, 3))
    with pytest.raises(ValueError, match=r"expected \(N, K, g, g\) student logits"):
        pool_student_logits(torch.randn(2, 5, 8), (4, 4))


def test_student_heads_and_the_three_way_average(images):
    x, _ = images
    student = create("vit_distilled", depth=2).eval()
    with torch.no_grad():
        cls_logits, dist_logits, dense = distilled_vit_logits(student, x)
        tokens = student.forward_features(x)  # after the final norm
        patches = tokens[:, 2:]
        mean_patch_logits = student.head_dist(patches).mean(1)
    assert dense.shape == (3, 10, 8, 8)
    assert torch.allclose(cls_logits, student.head(tokens[:, 0]), atol=1e-6)
    assert torch.allclose(dist_logits, student.head_dist(tokens[:, 1]), atol=1e-6)
    assert torch.allclose(mean_patch_logits, student.head_dist(patches.mean(1)), atol=1e-5), "the head is linear"
    expected = (cls_logits + dist_logits + mean_patch_logits) / 3
    assert torch.allclose(cskd_prediction(cls_logits, dist_logits, dense), expected, atol=1e-6)
    with pytest.raises(ValueError, match="expected a distilled ViT student"):
        distilled_vit_logits(create("vit"), x)


# --------------------------------------------------------------------------------------------- losses


def test_cskd_loss_is_the_mean_cross_entropy_over_positions():
    torch.manual_seed(1)
    pooled, targets = torch.randn(2, 5, 3, 4) * 3, torch.randint(0, 5, (2, 3, 4))
    per_position = [F.cross_entropy(pooled[n, :, i, j][None], targets[n, i, j][None])
                    for n in range(2) for i in range(3) for j in range(4)]
    assert torch.allclose(cskd_loss(pooled, targets), torch.stack(per_position).mean(), atol=1e-6)
    assert torch.allclose(cskd_loss(torch.zeros(2, 5, 3, 4), targets), torch.tensor(math.log(5)))
    confident = 50 * F.one_hot(targets, 5).permute(0, 3, 1, 2).float()
    assert cskd_loss(confident, targets) < 1e-6


def test_cskd_loss_rejects_bad_input():
    pooled = torch.randn(2, 5, 4, 4)
    for targets in (torch.randint(0, 5, (2, 2, 2)), torch.randint(0, 5, (3, 4, 4)), torch.rand(2, 4, 4)):
        with pytest.raises(ValueError, match=r"integer targets \(N, h, w\) on the same grid"):
            cskd_loss(pooled, targets)
    with pytest.raises(ValueError, match=r"pooled student logits \(N, K, h, w\)"):
        cskd_loss(torch.randn(2, 5), torch.randint(0, 5, (2,)))


def test_deit_hard_loss_uses_the_teachers_argmax():
    dist_logits, teacher_logits = torch.randn(4, 6), torch.randn(4, 6)
    expected = F.cross_entropy(dist_logits, teacher_logits.argmax(1))
    assert torch.allclose(deit_hard_loss(dist_logits, teacher_logits), expected)
    with pytest.raises(ValueError, match="same"):
        deit_hard_loss(dist_logits, torch.randn(4, 5))


# ------------------------------------------------------------------------------------------ distillers


def models():
    torch.manual_seed(0)
    return create("vit_distilled", depth=2), create("cnn_small")


def test_cskd_forward_terms_gradients_and_frozen_teacher(images):
    x, y = images
    student, teacher = models()
    distiller = CSKD(student, teacher, epochs=5, cskd_weight=2.0, label_smoothing=0.1).train()
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    teacher_ids = {id(p) for p in teacher.parameters()}
    assert not any(id(p) in teacher_ids for p in distiller.trainable_parameters())
    output, terms = distiller(x, y, progress=0.65)  # epoch 3 of 5: dense share 0.4
    assert output.shape == (3, 10) and list(terms) == ["ce", "deit", "cskd"]
    assert all(torch.isfinite(t) for t in terms.values())
    with torch.no_grad():
        cls_logits, dist_logits, dense = distilled_vit_logits(student, x)
        teacher_dense = dense_teacher_logits(teacher.forward_features(x), teacher.get_classifier())
        teacher_logits = teacher(x)
    targets = cskd_targets(teacher_dense, teacher_logits, 0.4)
    assert torch.allclose(terms["ce"], 0.5 * F.cross_entropy(cls_logits, y, label_smoothing=0.1), atol=1e-6)
    assert torch.allclose(terms["deit"], 0.5 * F.cross_entropy(dist_logits, teacher_logits.argmax(1)), atol=1e-6)
    expected = 2.0 * F.cross_entropy(F.avg_pool2d(dense, 2), targets)
    assert torch.allclose(terms["cskd"], expected, atol=1e-6)
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_cskd_dense_share_follows_progress_and_the_options():
    student, teacher = models()
    linear = CSKD(student, teacher, epochs=4)
    assert [linear.dense_share(p) for p in (0.0, 0.24, 0.25, 0.6, 0.99)] == [1.0, 1.0, 0.75, 0.5, 0.25]
    assert CSKD(student, teacher, epochs=4, per_iteration=True).dense_share(0.6) == pytest.approx(0.4)
    assert CSKD(student, teacher, epochs=4, kind="x2").dense_share(0.5) == pytest.approx(0.25)
    spatial_only = CSKD(student, teacher, epochs=4, use_ckf=False)
    assert {spatial_only.dense_share(p) for p in (0.0, 0.5, 0.99)} == {1.0}


def test_cskd_without_the_dense_term_is_deit_hard_distillation(images):
    x, y = images
    student, teacher = models()
    _, cskd_terms = CSKD(student, teacher, epochs=3, cskd_weight=0.0)(x, y)
    deit = DeiTHard(student, teacher)
    output, deit_terms = deit(x, y)
    assert cskd_terms["cskd"] == 0 and list(deit_terms) == ["ce", "deit"]
    assert all(torch.allclose(cskd_terms[k], deit_terms[k], atol=1e-6) for k in deit_terms)
    deit.eval()
    assert torch.allclose(deit.predict(x), output, atol=1e-6), "DeiT averages the class and distillation heads"


def test_cskd_predict_is_the_three_way_average_and_label_maps_for_the_notebook(images):
    x, _ = images
    student, teacher = models()
    distiller = CSKD(student, teacher, epochs=3).eval()
    with torch.no_grad():
        cls_logits, dist_logits, dense = distilled_vit_logits(student, x)
        assert torch.allclose(distiller.predict(x), (cls_logits + dist_logits + dense.mean((2, 3))) / 3, atol=1e-6)
        teacher_dense, teacher_global = dense_and_global_logits(teacher, x)
    student_labels, teacher_labels = distiller.label_maps(x, 0.5)
    assert student_labels.shape == teacher_labels.shape == (3, 4, 4)
    assert torch.equal(student_labels, F.avg_pool2d(dense, 2).argmax(1))
    assert torch.equal(teacher_labels, cskd_targets(teacher_dense, teacher_global, 0.5))


def test_every_readout_and_its_accuracy_for_the_diagnosis(images):
    from kdlab.data import ImageSet
    from kdlab.experiments import head_accuracies, head_final, head_watch
    from kdlab.methods import Supervised, is_distilled_vit, student_heads

    x, y = images
    student, teacher = models()
    distiller = CSKD(student, teacher, epochs=3).eval()
    with torch.no_grad():
        heads = student_heads(student, x)
        cls_logits, dist_logits, dense = distilled_vit_logits(student, x)
    assert list(heads) == ["class token", "distillation token", "patch average", "DeiT average", "CSKD average"]
    assert torch.equal(heads["class token"], cls_logits) and torch.equal(heads["distillation token"], dist_logits)
    assert torch.allclose(heads["CSKD average"], distiller.predict(x), atol=1e-6)
    assert torch.allclose(heads["DeiT average"], (cls_logits + dist_logits) / 2)
    data = ImageSet(x=x, y=y, classes=tuple("abcdefghij"), name="toy-val")
    accuracy = head_accuracies(distiller, data, batch_size=2)  # batches of 2 and 1 image
    assert accuracy == pytest.approx({name: (logits.argmax(1) == y).float().mean().item() for name, logits in heads.items()})
    assert head_watch(data)(distiller) == accuracy
    student.train()
    head_accuracies(distiller, data)
    assert student.training, "the student's mode is restored"
    final = head_final(distiller, data)
    assert final["acc"] == pytest.approx(accuracy["CSKD average"]) and final["head/class token"] == accuracy["class token"]
    plain = Supervised(create("vit", depth=1, img_size=32, patch_size=8)).eval()
    assert not is_distilled_vit(plain.student) and is_distilled_vit(student)
    assert set(head_final(plain, data)) == {"acc", "loss"}, "a plain ViT has no heads to compare"
    with pytest.raises(ValueError, match="batch_size"):
        head_accuracies(distiller, data, batch_size=0)


def test_bad_distiller_arguments_fail_clearly(images):
    student, teacher = models()
    with pytest.raises(ValueError, match="expected a distilled ViT student"):
        CSKD(create("vit"), teacher, epochs=3)
    with pytest.raises(ValueError, match="expected a distilled ViT student"):
        DeiTHard(create("vit"), teacher)
    with pytest.raises(ValueError, match="GAP|global average pooling"):
        CSKD(student, create("vit"), epochs=3)
    with pytest.raises(ValueError, match=r"deit_weight must be a finite number >= 0 and <= 1"):
        CSKD(student, teacher, epochs=3, deit_weight=1.5)
    with pytest.raises(ValueError, match="cskd_weight must be a finite number >= 0"):
        CSKD(student, teacher, epochs=3, cskd_weight=-1.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        CSKD(student, teacher, epochs=3, kind="step")
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        CSKD(student, teacher, epochs=0)
    with pytest.raises(ValueError, match="progress must be"):
        CSKD(student, teacher, epochs=3, use_ckf=False).dense_share(2.0)
    coarse_student = create("vit_distilled", depth=1, patch_size=8)  # 4x4 patches
    fine_teacher = create("cnn_small", widths=(16, 32, 64), depths=(1, 1, 1))  # 8x8 map
    with pytest.raises(ValueError, match="4x4 patch grid must be an integer multiple of the teacher's 8x8 grid"):
        CSKD(coarse_student, fine_teacher, epochs=3)(*images)
