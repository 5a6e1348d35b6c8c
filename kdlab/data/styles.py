"""The base of the procedural generators' style dataclasses (:class:`~kdlab.data.shapes.ShapeStyle`,
:class:`~kdlab.data.faces.FaceStyle`): frozen sets of levers that say how hard or varied the generated data is."""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

AnyStyle = TypeVar("AnyStyle", bound="Style")


class Style:
    """A frozen dataclass of generator levers; :meth:`replace` copies it with some levers changed."""

    def replace(self: AnyStyle, **overrides: Any) -> AnyStyle:
        """A copy with some fields replaced (and checked again); unknown names raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"{type(self).__name__} has the fields {sorted(names)}, got unknown field(s) {unknown}")
        return dataclasses.replace(self, **overrides)


__all__ = ["Style"]
