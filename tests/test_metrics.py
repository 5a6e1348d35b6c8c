import math

import pytest
import torch

from kdlab.metrics import MinibatchCKA, accuracy, cka_matrix, hsic_cka, linear_cka


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
