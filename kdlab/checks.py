"""The one set of argument checks the package uses (layer 0: imports nothing from kdlab).

Every check takes ``(name, value, ...)`` in that order, raises ``ValueError`` with a message that says what was
expected and what came (``"epochs must be an int >= 1, got 0 (int)"``), and returns the checked value in its
canonical type, so a caller can write ``self.epochs = check_int("epochs", epochs, low=1)``.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from torch import Tensor


def _got(value: object) -> str:
    """``"0 (int)"``: the value and its type, for the tail of an error message."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def is_int(value: object, low: int | None = None) -> bool:
    """Whether ``value`` is an integer (not a bool), and at least ``low`` when one is given."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and (low is None or value >= low))


def is_number(value: object) -> bool:
    """Whether ``value`` is a finite real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _bounds(low: float | None, high: float | None, strict: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if strict else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return " and ".join(parts)


def check_int(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int``; ``ValueError`` unless it is an integer (not a bool) in ``[low, high]``."""
    if not is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = _bounds(low, high, strict=False)
        raise ValueError(f"{name} must be an int{' ' + bounds if bounds else ''}, got {_got(value)}")
    return int(value)


def check_number(name: str, value: object, *, low: float | None = None, high: float | None = None,
                 strict: bool = False) -> float:
    """``value`` as a ``float``; ``ValueError`` unless it is a finite real number (not a bool) with
    ``low <= value <= high`` (``low < value`` when ``strict``)."""
    ok = is_number(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bounds = _bounds(low, high, strict)
        raise ValueError(f"{name} must be a finite number{' ' + bounds if bounds else ''}, got {_got(value)}")
    return float(value)


def check_positive(name: str, value: object) -> float:
    """``value`` as a ``float`` > 0 (a temperature, a scale, a learning rate)."""
    return check_number(name, value, low=0.0, strict=True)


def check_fraction(name: str, value: object) -> float:
    """``value`` as a ``float`` in [0, 1] (a mixing weight, a share of training)."""
    return check_number(name, value, low=0.0, high=1.0)


def check_weights(**weights: object) -> dict[str, float]:
    """Every named loss weight as a ``float`` >= 0: ``check_weights(kd_weight=0.9, ce_weight=1.0)``."""
    return {name: check_number(name, value, low=0.0) for name, value in weights.items()}


def check_choice(name: str, value: object, choices: Sequence[Any]) -> Any:
    """``value`` unchanged; ``ValueError`` unless it is one of ``choices``."""
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {_got(value)}")
    return value


def check_pair(name: str, value: object, *, low: int = 1) -> tuple[int, int]:
    """``(a, b)`` ints >= ``low`` from an int (both the same) or a pair of them, e.g. a window or a grid."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(is_int(v, low) for v in pair):
        raise ValueError(f"{name} must be an int >= {low} or a pair of them, got {_got(value)}")
    return int(pair[0]), int(pair[1])


def check_range(name: str, value: object, *, low: float | None = None) -> tuple[float, float]:
    """``(lo, hi)`` floats with ``lo < hi`` (and ``lo > low`` when given), e.g. a depth range in metres."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    ok = len(pair) == 2 and all(is_number(v) for v in pair) and pair[0] < pair[1]
    if ok and low is not None:
        ok = pair[0] > low
    if not ok:
        bound = f" with {low:g} < lo" if low is not None else ""
        raise ValueError(f"{name} must be a (lo, hi) pair of numbers with lo < hi{bound}, got {_got(value)}")
    return float(pair[0]), float(pair[1])


def check_tensor(name: str, value: object, *, ndim: int | Sequence[int] | None = None,
                 floating: bool = False) -> Tensor:
    """``value`` unchanged; ``ValueError`` unless it is a tensor with ``ndim`` dimensions (one of them, for a
    sequence) and, when ``floating``, a floating-point dtype."""
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(value).__name__}")
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim or ())
    if allowed and value.ndim not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor, *, ndim: int | None = None) -> None:
    """``ValueError`` unless ``a`` and ``b`` have the same shape (and ``ndim`` dimensions when given)."""
    if a.shape != b.shape or (ndim is not None and a.ndim != ndim):
        want = f"the same {ndim}-d shape" if ndim is not None else "the same shape"
        raise ValueError(f"expected {name_a} and {name_b} of {want}, got {tuple(a.shape)} and {tuple(b.shape)}")
