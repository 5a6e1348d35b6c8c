"""The Distiller interface every method implements (DESIGN.md §3).

A Distiller bundles a student, an optional frozen teacher and any extra trainable modules (projectors,
heads, prompts). ``forward(x, y, progress=...)`` returns the student's output and a dict of named,
already weighted loss terms; the trainer minimises their sum. ``progress`` is the fraction of training
done, in [0, 1], for methods with schedules.
"""
from __future__ import annotations

import numbers
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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

    @torch.no_grad()
    def teacher_forward(self, x: Tensor) -> Tensor:
        """Teacher logits without autograd.

        ``no_grad`` rather than ``inference_mode``: the teacher's outputs are saved for the student's
        backward pass (softmax targets), which inference tensors do not allow.
        """
        if self.teacher is None:
            raise RuntimeError(f"{type(self).__name__} has no teacher")
        return self.teacher(x)

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Student and extra-module parameters that require gradients; never the teacher's."""
        teacher_ids = {id(p) for p in self.teacher.parameters()} if self.teacher is not None else set()
        return (p for p in self.parameters() if p.requires_grad and id(p) not in teacher_ids)


class Supervised(Distiller):
    """The no-KD baseline: the student trained on hard labels alone, ``L = CE(z_s, y)``."""

    def __init__(self, student: nn.Module, label_smoothing: float = 0.0) -> None:
        super().__init__(student)
        self.label_smoothing = label_smoothing

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student(x)
        return logits, {"ce": F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)}


def is_int(value: object, low: int) -> bool:
    """Whether ``value`` is an integer (not a bool) of at least ``low``: the check behind "must be an int >= ..."."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def check_loss_weights(**weights: float) -> None:
    """Raise a ``ValueError`` unless every named loss weight is a real number >= 0 (not a bool, not NaN)."""
    for name, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def check_logits(student_logits: Tensor, teacher_logits: Tensor) -> None:
    """Raise a ``ValueError`` unless both are (B, K) tensors of the same shape."""
    if student_logits.ndim != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "expected student and teacher logits of the same (B, K) shape, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
