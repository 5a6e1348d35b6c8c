"""The Distiller contract every method implements (DESIGN.md §3).

A Distiller bundles a student, an optional frozen teacher and any extra trainable modules (projectors,
heads, prompts). ``forward(x, y, progress=...)`` returns the student's output and a dict of named,
already weighted loss terms (each key names its loss, each weight is the constructor's ``<key>_weight``); the
trainer minimises their sum, in the dict's order. ``progress`` is the fraction of training done, in [0, 1], for
methods with schedules. :meth:`teacher_forward` is the one teacher forward (eval mode, ``torch.no_grad()``:
:func:`kdlab.methods.common.teacher_pass`); a method that needs more than the teacher's logits overrides it.
"""
from __future__ import annotations

from typing import Any, Hashable, Iterator

from torch import Tensor, nn

from .common import teacher_pass, teacher_token


class Distiller(nn.Module):
    """Student + frozen teacher + extra trainable modules.

    The teacher is kept in eval mode with ``requires_grad=False`` and is never returned by
    :meth:`trainable_parameters`. Subclasses implement :meth:`forward`; :meth:`predict` is what
    evaluation calls (the student alone unless a method says otherwise).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None = None) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.eval()
            teacher.requires_grad_(False)

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def predict(self, x: Tensor) -> Tensor:
        """The deployed model's output (used by evaluation): the student's logits."""
        return self.student(x)

    @teacher_pass
    def teacher_forward(self, x: Tensor) -> Any:
        """What the method needs from the teacher, without autograd: here the teacher's logits.

        Overrides return what their method needs (logits and stage maps, dense logits, ...) and keep the
        :func:`~kdlab.methods.common.teacher_pass` decorator.
        """
        if self.teacher is None:
            raise RuntimeError(f"{type(self).__name__} has no teacher")
        return self.teacher(x)

    def teacher_cache_key(self) -> Hashable | None:
        """What :func:`~kdlab.methods.common.teacher_pass` memoises :meth:`teacher_forward` by (with the input's
        digest), or ``None`` for never. Here: the teacher's token when ``teacher_forward`` is this one (the frozen
        teacher's logits). A method that overrides ``teacher_forward`` gets ``None`` unless it overrides this
        too, naming every setting its teacher outputs depend on (the stages it taps, ...)."""
        if self.teacher is None or type(self).teacher_forward is not Distiller.teacher_forward:
            return None
        return (teacher_token(self.teacher),)

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Student and extra-module parameters that require gradients; never the teacher's."""
        teacher_ids = {id(p) for p in self.teacher.parameters()} if self.teacher is not None else set()
        return (p for p in self.parameters() if p.requires_grad and id(p) not in teacher_ids)
