import pytest
import torch
import torch.nn.functional as F

from kdlab.methods.fitnet import FitNet, HintRegressor, default_pairs, hint_loss
from kdlab.models import create
from kdlab.models.features import stage_features, stage_shapes
from kdlab.models.registry import count_parameters


def batch(n: int = 2):
    torch.manual_seed(0)
    return torch.rand(n, 3, 32, 32), torch.randint(0, 10, (n,))


def test_hint_loss_matches_a_hand_computation_and_is_zero_for_equal_maps():
    a, b = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    assert torch.allclose(hint_loss(a, b), ((a - b) ** 2).sum() / (2 * 3 * 4 * 5))
    assert hint_loss(a, a) == 0
    ones = torch.ones(1, 1, 2, 2)
    assert hint_loss(ones * 3, ones) == 4.0


def test_hint_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same"):
        hint_loss(torch.randn(2, 8, 4, 4), torch.randn(2, 16, 4, 4))
    with pytest.raises(ValueError, match="same"):
        hint_loss(torch.randn(2, 8, 4, 4), torch.randn(2, 8, 8, 8))
    with pytest.raises(ValueError, match="of the same 4-d shape"):
        hint_loss(torch.randn(2, 8), torch.randn(2, 8))


def test_default_pairs_follow_relative_depth():
    assert default_pairs(4, 4) == ((1, 1), (2, 2), (3, 3), (4, 4))
    assert default_pairs(4, 3) == ((1, 1), (3, 2), (4, 3))
    assert default_pairs(3, 4) == ((1, 1), (2, 3), (3, 4))
    assert default_pairs(2, 4) == ((1, 2), (2, 4))


def test_regressor_pools_when_shrinking_and_interpolates_when_growing():
    x = torch.randn(2, 16, 32, 32)
    shrink = HintRegressor((16, 32, 32), (16, 8, 8)).eval()
    grow = HintRegressor((16, 32, 32), (96, 64, 64))
    assert shrink.shrink and not grow.shrink and grow(x).shape == (2, 96, 64, 64)
    with torch.no_grad():
        shrink.proj[0].weight.copy_(torch.eye(16).view(16, 16, 1, 1))
    assert torch.allclose(shrink(x), F.avg_pool2d(x, 4) / (1 + 1e-5) ** 0.5, atol=1e-5)


@pytest.mark.parametrize("student_name, teacher_name",
                         [("cnn_small", "vit"), ("vit", "cnn_small"), ("mixer", "cnn_small"), ("cnn_small", "swin")])
def test_fitnet_across_families(student_name, teacher_name):
    student, teacher = create(student_name), create(teacher_name)
    distiller = FitNet(student, teacher, hint_weight=2.0).train()
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    n_s, n_t = len(stage_shapes(student)), len(stage_shapes(teacher))
    assert distiller.pairs == default_pairs(n_s, n_t) and len(distiller.pairs) == min(n_s, n_t)
    assert distiller.regressor_parameters() == count_parameters(distiller.regressors) > 0
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}

    x, y = batch()
    logits, terms = distiller(x, y)
    assert logits.shape == (2, 10) and set(terms) == {"ce", "hint"}
    assert torch.allclose(terms["ce"], F.cross_entropy(logits, y)) and terms["hint"] > 0
    sum(terms.values()).backward()

    assert all(p.grad is not None for p in distiller.regressors.parameters())
    assert student.get_submodule("head" if student_name != "cnn_small" else "head.fc").weight.grad is not None
    first_stage = [p for n, p in student.named_parameters() if n.startswith(("stem", "patch_embed"))]
    assert first_stage and all(p.grad is not None for p in first_stage), "the hints reach the early layers"
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, teacher_state[k]) for k, v in teacher.state_dict().items()), "teacher BN frozen"
    trainable = {id(p) for p in distiller.trainable_parameters()}
    assert not trainable & {id(p) for p in teacher.parameters()}

    distiller.eval()
    assert torch.equal(distiller.predict(x), student(x))


def test_hint_term_is_the_weighted_mse_of_the_regressed_stage():
    student, teacher = create("cnn_small"), create("swin")
    distiller = FitNet(student, teacher, pairs=[(3, 2)], hint_weight=0.5, ce_weight=0.0).eval()
    x, y = batch()
    _, terms = distiller(x, y)
    with torch.no_grad():
        expected = hint_loss(distiller.regressors[0](stage_features(student, x, [2])[0]),
                             stage_features(teacher, x, [1])[0])
    assert torch.allclose(terms["hint"], 0.5 * expected) and terms["ce"] == 0


def test_bad_pairs_and_weights_raise():
    student, teacher = create("cnn_small"), create("swin")
    for pairs in ([(5, 1)], [(1, 4)], [(0, 1)], [(1,)], [(True, 1)], [3]):
        with pytest.raises(ValueError, match="valid student stages are 1, 2, 3, 4; valid teacher stages are 1, 2, 3"):
            FitNet(student, teacher, pairs=pairs)
    with pytest.raises(ValueError, match="at least one"):
        FitNet(student, teacher, pairs=[])
    with pytest.raises(ValueError, match="duplicate"):
        FitNet(student, teacher, pairs=[(1, 1), (1, 1)])
    with pytest.raises(ValueError, match="hint_weight"):
        FitNet(student, teacher, hint_weight=-1.0)
    with pytest.raises(ValueError, match="ce_weight"):
        FitNet(student, teacher, ce_weight=float("nan"))
