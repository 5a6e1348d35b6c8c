"""kdlab.checks: one argument order, canonical return values, messages that say what was expected and what came."""
import math

import numpy as np
import pytest
import torch

from kdlab.checks import (check_choice, check_fraction, check_int, check_number, check_pair, check_positive,
                          check_range, check_same_shape, check_tensor, check_weights, is_int, is_number)


def test_is_int_and_is_number_refuse_bools_and_non_finite():
    assert is_int(3) and is_int(np.int64(3)) and is_int(3, low=3)
    assert not is_int(True) and not is_int(3.0) and not is_int(2, low=3)
    assert is_number(0.5) and is_number(2) and is_number(np.float32(1.5))
    assert not is_number(True) and not is_number(math.nan) and not is_number(math.inf) and not is_number("1")


def test_check_int_returns_a_plain_int_and_names_the_bounds():
    assert check_int("epochs", np.int64(4), low=1) == 4 and type(check_int("epochs", np.int64(4))) is int
    with pytest.raises(ValueError, match=r"^epochs must be an int >= 1, got 0 \(int\)$"):
        check_int("epochs", 0, low=1)
    with pytest.raises(ValueError, match=r"heads must be an int >= 1 and <= 8, got 9"):
        check_int("heads", 9, low=1, high=8)
    with pytest.raises(ValueError, match=r"seed must be an int, got True \(bool\)"):
        check_int("seed", True)
    with pytest.raises(ValueError, match=r"got 2.0 \(float\)"):
        check_int("n", 2.0)


def test_check_number_bounds_strictness_and_type():
    assert check_number("lr", 1) == 1.0 and type(check_number("lr", 1)) is float
    assert check_number("x", 0.0, low=0.0) == 0.0
    with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got 0"):
        check_number("temperature", 0, low=0.0, strict=True)
    with pytest.raises(ValueError, match=r"p must be a finite number >= 0 and <= 1, got 1.5"):
        check_number("p", 1.5, low=0, high=1)
    with pytest.raises(ValueError, match="got nan"):
        check_number("x", math.nan)
    with pytest.raises(ValueError, match=r"got '1' \(str\)"):
        check_number("x", "1")
    assert check_positive("scale", 2) == 2.0
    with pytest.raises(ValueError, match="> 0"):
        check_positive("scale", -1)
    assert check_fraction("kd_weight", 1) == 1.0
    with pytest.raises(ValueError, match=r"kd_weight must be a finite number >= 0 and <= 1"):
        check_fraction("kd_weight", -0.1)


def test_check_weights_names_the_bad_weight():
    assert check_weights(ce_weight=1, kd_weight=0.5) == {"ce_weight": 1.0, "kd_weight": 0.5}
    with pytest.raises(ValueError, match=r"^kd_weight must be a finite number >= 0, got -1"):
        check_weights(ce_weight=1.0, kd_weight=-1)
    with pytest.raises(ValueError, match="ce_weight"):
        check_weights(ce_weight=False)


def test_check_choice_lists_the_choices():
    assert check_choice("kind", "cos", ("linear", "cos")) == "cos"
    with pytest.raises(ValueError, match=r"kind must be one of 'linear', 'cos', got 'x2' \(str\)"):
        check_choice("kind", "x2", ("linear", "cos"))
    with pytest.raises(ValueError):
        check_choice("flag", True, (1, 0))  # True == 1, but a bool is not the int choice


def test_check_pair_and_range():
    assert check_pair("window", 4) == (4, 4) and check_pair("window", [2, 3]) == (2, 3)
    assert check_pair("shift", 0, low=0) == (0, 0)
    for bad in (0, (1, 2, 3), (1, "2"), (True, 1)):
        with pytest.raises(ValueError, match="window must be an int >= 1 or a pair of them"):
            check_pair("window", bad)
    assert check_range("depth_range", (0.5, 10)) == (0.5, 10.0)
    for bad in ((2, 1), (1,), 3, (0, math.inf)):
        with pytest.raises(ValueError, match=r"depth_range must be a \(lo, hi\) pair"):
            check_range("depth_range", bad)
    with pytest.raises(ValueError, match="0 < lo"):
        check_range("depth_range", (0.0, 1.0), low=0.0)


def test_check_tensor_and_same_shape():
    x = torch.zeros(2, 3)
    assert check_tensor("x", x, ndim=2, floating=True) is x
    assert check_tensor("x", x, ndim=(2, 4)) is x
    with pytest.raises(ValueError, match="x must be a tensor, got list"):
        check_tensor("x", [1.0])
    with pytest.raises(ValueError, match=r"x must have 3 or 4 dimensions, got shape \(2, 3\)"):
        check_tensor("x", x, ndim=(3, 4))
    with pytest.raises(ValueError, match="floating-point"):
        check_tensor("y", torch.zeros(2, dtype=torch.long), floating=True)
    check_same_shape("student logits", x, "teacher logits", torch.ones(2, 3), ndim=2)
    with pytest.raises(ValueError, match=r"student logits and teacher logits of the same 2-d shape, got \(2, 3\)"):
        check_same_shape("student logits", x, "teacher logits", torch.ones(2, 4), ndim=2)
    with pytest.raises(ValueError, match="same 2-d shape"):
        check_same_shape("a", torch.zeros(3), "b", torch.zeros(3), ndim=2)
