import math

import pytest
import torch

from kdlab.metrics import (MinibatchCKA, accuracy, cka_matrix, confusion_matrix, hsic_cka, linear_cka, mean_iou,
                           per_class_iou, segmentation_metrics)


@pytest.fixture
def xy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 8, generator=g)
    y = x @ torch.randn(8, 5, generator=g) + 0.5 * torch.randn(60, 5, generator=g)
    return x.double(), y.double()


def test_self_similarity_and_symmetry(xy):
    x, y = xy
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))
    assert 0.0 < linear_cka(x, y) < 1.0


def test_invariant_to_rotation_and_isotropic_scaling(xy):
    x, y = xy
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-9)
    assert linear_cka(7.5 * x, y) == pytest.approx(base, abs=1e-9)
    assert linear_cka(x + 3.0, y) == pytest.approx(base, abs=1e-9), "centring removes offsets"
    scale = torch.diag(torch.tensor([10.0, 1, 1, 1, 1, 1, 1, 0.1], dtype=torch.float64))
    assert abs(linear_cka(x @ scale, y) - base) > 1e-3, "not invariant to anisotropic scaling"


def test_gram_form_equals_feature_form(xy):
    x, y = xy
    assert linear_cka(x, y) == pytest.approx(hsic_cka(x, y), abs=1e-10)
    wide_x, wide_y = torch.randn(20, 50), torch.randn(20, 70)  # d > n takes the Gram path
    assert linear_cka(wide_x, wide_y) == pytest.approx(hsic_cka(wide_x, wide_y), abs=1e-10)


def test_independent_features_give_near_zero():
    g = torch.Generator().manual_seed(2)
    assert linear_cka(torch.randn(4000, 4, generator=g), torch.randn(4000, 4, generator=g)) < 0.01


def test_maps_are_flattened_per_sample():
    fmap = torch.randn(30, 4, 3, 3)
    assert linear_cka(fmap, fmap.flatten(1)) == pytest.approx(1.0)


def test_minibatch_cka_approaches_full_cka(xy):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2000, 6, generator=g)
    y = x @ torch.randn(6, 4, generator=g) + torch.randn(2000, 4, generator=g)
    acc = MinibatchCKA()
    for i in range(0, 2000, 250):
        acc.update(x[i:i + 250], y[i:i + 250])
    assert acc.compute() == pytest.approx(linear_cka(x, y), abs=0.03)
    matrix = cka_matrix([x, y], [x, y], batch_size=250)
    assert matrix.shape == (2, 2) and matrix[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_cka_matrix_full(xy):
    x, y = xy
    m = cka_matrix([x, y], [y])
    assert m.shape == (2, 1) and m[1, 0] == pytest.approx(1.0)


def test_zero_variance_gives_zero():
    assert linear_cka(torch.ones(10, 3), torch.randn(10, 3)) == 0.0
    assert MinibatchCKA().compute() == 0.0


@pytest.mark.parametrize("x, y, match", [
    (torch.randn(10, 3), torch.randn(9, 3), "same samples"),
    (torch.randn(10), torch.randn(10), "feature dimension"),
    (torch.randn(1, 3), torch.randn(1, 3), "at least 2"),
])
def test_cka_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        linear_cka(x, y)
    with pytest.raises(ValueError):
        MinibatchCKA().update(torch.randn(3, 2), torch.randn(3, 2))


def test_accuracy():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 2.0, 0.0]])
    targets = torch.tensor([0, 0, 0])
    assert accuracy(logits, targets) == pytest.approx(1 / 3)
    assert accuracy(logits, targets, topk=2) == pytest.approx(2 / 3)
    assert math.isclose(accuracy(logits, targets, topk=3), 1.0)
    with pytest.raises(ValueError):
        accuracy(logits, targets[:2])
    with pytest.raises(ValueError):
        accuracy(logits, targets, topk=4)


# segmentation ---------------------------------------------------------------------------------------

# a hand-made 2x4 "image": true classes 0, 1, 2 (class 3 appears nowhere), two pixels wrong
TARGET = torch.tensor([[[0, 0, 1, 1], [2, 2, 2, 2]]])
PRED = torch.tensor([[[0, 1, 1, 1], [2, 2, 0, 2]]])


def one_hot_logits(labels, k):
    return torch.nn.functional.one_hot(labels, k).permute(0, 3, 1, 2).float() * 5 - 1


def test_confusion_matrix_counts_by_hand():
    cm = confusion_matrix(PRED, TARGET, 4)
    assert cm.dtype == torch.int64 and cm.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 3, 0], [0, 0, 0, 0]]
    assert cm.sum() == TARGET.numel()
    ignored = confusion_matrix(PRED, TARGET, 4, ignore_index=2)  # drops the bottom row
    assert ignored.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_mean_iou_by_hand_excludes_absent_classes():
    # IoU_0 = 1 / (2 + 2 - 1), IoU_1 = 2 / (2 + 3 - 2), IoU_2 = 3 / (4 + 3 - 3); class 3 absent -> left out
    iou = per_class_iou(confusion_matrix(PRED, TARGET, 4))
    assert iou[:3].tolist() == pytest.approx([1 / 3, 2 / 3, 3 / 4]) and math.isnan(iou[3])
    assert mean_iou(PRED, TARGET, 4) == pytest.approx(7 / 12)
    assert mean_iou(one_hot_logits(PRED, 4), TARGET, 4) == pytest.approx(7 / 12), "logits: argmax over dim 1"
    assert mean_iou(TARGET, TARGET, 4) == 1.0
    # a class that is predicted but never true counts with IoU 0
    target, pred = torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 0], [0, 3]]])
    assert mean_iou(pred, target, 4) == pytest.approx((3 / 4 + 0) / 2)
    # an ignored pixel counts nowhere: dropping the wrong class-2 pixel gives IoU_0 = 1/2, IoU_2 = 1
    target = TARGET.clone()
    target[0, 1, 2] = 255
    assert mean_iou(PRED, target, 4, ignore_index=255) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)


def test_segmentation_metrics_by_hand():
    target = TARGET.clone()
    target[0, 0, 0] = -100  # F.cross_entropy's default ignore_index: this correct class-0 pixel is dropped
    m = segmentation_metrics(one_hot_logits(PRED, 4), target)
    assert set(m) == {"miou", "pixel_acc"}
    # class 0 is left with one pixel, predicted 1: IoU_0 = 0 / (1 + 1 - 0); 5 of the 7 counted pixels are right
    assert m["pixel_acc"] == pytest.approx(5 / 7)
    assert m["miou"] == pytest.approx((0 / 2 + 2 / 3 + 3 / 4) / 3)


def reference_miou(pred, target, k):
    """Per-class loop, written from the definition (the test oracle)."""
    ious = []
    for c in range(k):
        inter = ((pred == c) & (target == c)).sum().item()
        union = ((pred == c) | (target == c)).sum().item()
        if union:
            ious.append(inter / union)
    return sum(ious) / len(ious)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_mean_iou_matches_the_definition_on_random_masks(device):
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 6, (4, 16, 16), generator=g).to(device)
    logits = torch.randn(4, 7, 16, 16, generator=g).to(device)  # class 6 never true
    pred = logits.argmax(1)
    assert mean_iou(logits, target, 7) == pytest.approx(reference_miou(pred, target, 7))
    m = segmentation_metrics(logits, target)
    assert m["miou"] == pytest.approx(reference_miou(pred, target, 7))
    assert m["pixel_acc"] == pytest.approx((pred == target).float().mean().item())
    cm = confusion_matrix(pred, target, 7)
    assert torch.equal(cm.sum(1)[:6], torch.bincount(target.flatten(), minlength=6))


@pytest.mark.parametrize("call, match", [
    (lambda: confusion_matrix(PRED, TARGET[:, :1], 4), "same shape"),
    (lambda: confusion_matrix(PRED.float(), TARGET, 4), "integer tensor"),
    (lambda: confusion_matrix(PRED, TARGET > 0, 4), "integer tensor"),
    (lambda: confusion_matrix(TARGET.clamp(max=1), TARGET, 2), r"target must hold labels in \[0, 2\)"),
    (lambda: confusion_matrix(PRED + 2, TARGET, 3, ignore_index=2), r"pred_labels must hold labels in \[0, 3\)"),
    (lambda: confusion_matrix(PRED, TARGET - 1, 4, ignore_index=255), "ignore_index 255 aside"),
    (lambda: confusion_matrix(PRED, TARGET, 0), "num_classes"),
    (lambda: mean_iou(torch.randn(1, 3, 2, 4), TARGET, 4), r"shape \(N, K, \*S\)"),
    (lambda: mean_iou(PRED, torch.full_like(TARGET, -1), 4, ignore_index=-1), "nothing to score"),
    (lambda: per_class_iou(torch.zeros(3, 4)), "square"),
    (lambda: segmentation_metrics(torch.randn(1, 4, 8), TARGET), r"\(N, K, H, W\) logits"),
    (lambda: segmentation_metrics(torch.randn(1, 4, 2, 4), torch.full_like(TARGET, -100)), "nothing to score"),
])
def test_segmentation_metrics_reject_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_class_accuracy_is_the_recall_of_one_class_and_agreement_compares_predictions():
    from kdlab.metrics import agreement, class_accuracy

    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 1, 1, 1])
    assert class_accuracy(logits, y, 1) == pytest.approx(2 / 3) and class_accuracy(logits, y, 0) == 1.0
    assert math.isnan(class_accuracy(logits, y, 2))  # no image of class 2
    assert agreement(logits, logits) == 1.0
    assert agreement(logits, torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0], [0, 0, 1.0]])) == 0.5
    with pytest.raises(ValueError, match="shape"):
        agreement(logits, logits[:2])
    with pytest.raises(ValueError, match="k"):
        class_accuracy(logits, y, 3)
