import pytest
import torch
import torch.nn.functional as F

from kdlab.methods import KD, Supervised, kd_loss
from kdlab.models import create


def reference_kd(zs, zt, t):
    q = F.softmax(zt / t, 1)
    return (q * (q.log() - F.log_softmax(zs / t, 1))).sum(1).mean() * t * t


@pytest.mark.parametrize("t", [1.0, 2.0, 4.0, 10.0])
def test_kd_loss_matches_the_formula(t):
    zs, zt = torch.randn(8, 5), torch.randn(8, 5) * 3
    assert torch.allclose(kd_loss(zs, zt, t), reference_kd(zs, zt, t), atol=1e-5)


def test_kd_loss_is_zero_for_equal_logits_and_positive_otherwise():
    z = torch.randn(4, 10)
    assert kd_loss(z, z).abs() < 1e-6
    assert kd_loss(z, z + torch.randn(4, 10)) > 0
    assert torch.allclose(kd_loss(z, z + 5.0), torch.tensor(0.0), atol=1e-5), "softmax ignores shifts"


def test_kd_gradient_is_t_times_p_minus_q_over_b():
    t, zs, zt = 3.0, torch.randn(6, 4, requires_grad=True), torch.randn(6, 4)
    kd_loss(zs, zt, t).backward()
    expected = t * (F.softmax(zs / t, 1) - F.softmax(zt / t, 1)) / 6
    assert torch.allclose(zs.grad, expected.detach(), atol=1e-6)


def test_kd_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="same"):
        kd_loss(torch.randn(4, 10), torch.randn(4, 9))
    with pytest.raises(ValueError, match="same"):
        kd_loss(torch.randn(10), torch.randn(10))
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 3), temperature=0)


def test_kd_distiller_terms_and_frozen_teacher():
    student, teacher = create("cnn_small"), create("cnn_small")
    distiller = KD(student, teacher, temperature=2.0, kd_weight=0.25).train()
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    teacher_ids = {id(p) for p in teacher.parameters()}
    trainable = list(distiller.trainable_parameters())
    assert trainable and not any(id(p) in teacher_ids for p in trainable)
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    logits, terms = distiller(x, y)
    assert logits.shape == (4, 10) and list(terms) == ["ce", "kd"]
    assert torch.allclose(terms["ce"], 0.75 * F.cross_entropy(logits, y))
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert torch.equal(distiller.predict(x), student(x))


def test_bad_distiller_arguments():
    with pytest.raises(ValueError, match=r"kd_weight must be a finite number >= 0 and <= 1, got 1.5"):
        KD(create("cnn_small"), create("cnn_small"), kd_weight=1.5)
    with pytest.raises(RuntimeError, match="no teacher"):
        Supervised(create("cnn_small")).teacher_forward(torch.rand(1, 3, 32, 32))


def test_class_bias_shifts_one_logit_and_is_chosen_on_validation_logits():
    from kdlab.methods import choose_class_bias, with_class_bias

    logits = torch.tensor([[2.0, 0.0, 1.5], [0.0, 3.0, 2.0], [1.0, 0.0, 0.0]])
    shifted = with_class_bias(logits, 2, 1.0)
    assert torch.equal(shifted[:, :2], logits[:, :2]) and torch.equal(shifted[:, 2], logits[:, 2] + 1.0)
    assert torch.equal(logits[:, 2], torch.tensor([1.5, 2.0, 0.0])), "the input is not modified"
    y = torch.tensor([2, 2, 0])  # both class-2 rows need b > 1, which costs row 3 either way: 1.25 ties 3.0
    assert choose_class_bias(logits, y, 2, [0.0, 0.5, 1.25, 3.0]) == 1.25
    assert choose_class_bias(logits, torch.tensor([0, 1, 0]), 2, [2.0, 0.0, -1.0]) == 0.0  # ties: smallest |b|
    with pytest.raises(ValueError, match="grid"):
        choose_class_bias(logits, y, 2, [])
    with pytest.raises(ValueError, match="k"):
        with_class_bias(logits, 3, 1.0)


def test_labelled_cross_entropy_skips_unlabelled_rows_and_weighs_every_image_one_over_b():
    from kdlab.data import UNLABELLED
    from kdlab.methods import labelled_cross_entropy

    logits = torch.randn(4, 5, requires_grad=True)
    y = torch.tensor([1, UNLABELLED, 3, UNLABELLED])
    expected = F.cross_entropy(logits[[0, 2]], y[[0, 2]], reduction="sum") / 4
    assert torch.allclose(labelled_cross_entropy(logits, y), expected)
    assert torch.allclose(labelled_cross_entropy(logits, torch.tensor([1, 0, 3, 2])),
                          F.cross_entropy(logits, torch.tensor([1, 0, 3, 2])))
    none = labelled_cross_entropy(logits, torch.full((4,), UNLABELLED))
    none.backward()
    assert none.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_kd_on_unlabelled_images_keeps_only_the_teacher_term():
    from kdlab.data import UNLABELLED

    torch.manual_seed(0)
    student, teacher = create("cnn_small", num_classes=4), create("cnn_small", num_classes=4)
    distiller = KD(student, teacher, temperature=2.0, kd_weight=0.5)
    _, terms = distiller(torch.rand(3, 3, 32, 32), torch.full((3,), UNLABELLED))
    assert terms["ce"].item() == 0.0 and terms["kd"].item() > 0.0
    _, terms = Supervised(student)(torch.rand(3, 3, 32, 32), torch.tensor([0, UNLABELLED, 2]))
    assert terms["ce"].item() > 0.0
