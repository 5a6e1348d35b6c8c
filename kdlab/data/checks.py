"""Argument checks shared by the data generators: one wording for "must be an int >= ..." and for style copies."""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, TypeVar

Style = TypeVar("Style")


def check_int(value: object, name: str, low: int) -> None:
    """``ValueError`` unless ``value`` is an int (not a bool) of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def replace_fields(style: Style, **overrides: Any) -> Style:
    """A copy of the dataclass ``style`` with some fields replaced; unknown names raise ``ValueError``."""
    names = {f.name for f in fields(style)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown {type(style).__name__} field(s) {unknown}; valid: {sorted(names)}")
    return replace(style, **overrides)
