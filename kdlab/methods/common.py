r"""What several methods share: the teacher forward's semantics, stage-feature taps and the schedule vocabulary.

**Teacher forward.** The teacher is frozen: :class:`~kdlab.methods.base.Distiller` puts it in eval mode (and
keeps it there in ``train()``) with ``requires_grad=False``, and every ``teacher_forward`` runs under
:func:`teacher_pass`, i.e. ``torch.no_grad()``. Not ``torch.inference_mode()``: the teacher's outputs are
saved by the student's graph (softmax targets, feature targets), which inference tensors do not allow, and a
method may need a teacher-side module in the graph (e.g. a prompt that learns through the frozen teacher).

**Stage taps.** Stages are 1-based indices into :func:`kdlab.models.stage_features` (blocks for ViT and Mixer);
:func:`logits_and_stage_maps` and :func:`stage_maps` return them keyed by stage.

**Schedules.** Training time has one form, ``progress`` in [0, 1]: the fraction of training done, what
:func:`kdlab.train.fit` passes to ``Distiller.forward(x, y, *, progress)`` (``step / total_steps``). Every
schedule is a function of ``progress`` plus the fixed facts it needs (``epochs`` for a per-epoch step
schedule). A length given in epochs becomes a progress with :func:`epoch_progress`; the per-epoch step is
:func:`epoch_at`, $e = \min(\lfloor E\cdot\mathrm{progress}\rfloor, E-1)$.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence, TypeVar

import torch
from torch import Tensor, nn

from ..checks import check_fraction, check_int, check_number, is_int
from ..models import logits_and_stage_features, stage_features

Method = TypeVar("Method", bound=Callable)


# ------------------------------------------------------------------------------------------ teacher


def teacher_pass(method: Method) -> Method:
    """Decorate a ``teacher_forward``: run it under ``torch.no_grad()`` (the teacher is already in eval mode)."""
    return torch.no_grad()(method)


# --------------------------------------------------------------------------------------------- taps


def is_stage(value: object, num_stages: int) -> bool:
    """Whether ``value`` is a 1-based stage index of a model with ``num_stages`` stages."""
    return is_int(value, 1) and value <= num_stages


def logits_and_stage_maps(model: nn.Module, x: Tensor, stages: Sequence[int]) -> tuple[Tensor, dict[int, Tensor]]:
    """One forward of ``model``: its logits and the (B, C, H, W) maps of the 1-based ``stages``, keyed by stage."""
    logits, feats = logits_and_stage_features(model, x, [s - 1 for s in stages])
    return logits, dict(zip(stages, feats))


def stage_maps(model: nn.Module, x: Tensor, stages: Sequence[int]) -> dict[int, Tensor]:
    """The (B, C, H, W) maps of the 1-based ``stages`` of ``model``, keyed by stage (no logits)."""
    return dict(zip(stages, stage_features(model, x, [s - 1 for s in stages])))


# ---------------------------------------------------------------------------------------- schedules


def check_progress(progress: object) -> float:
    """``progress`` as a float; ``ValueError`` unless it is a fraction of training in [0, 1]."""
    return check_fraction("progress", progress)


def epoch_at(progress: float, epochs: int) -> int:
    r"""The 0-based epoch that ``progress`` falls in, $\min(\lfloor E\cdot\mathrm{progress}\rfloor, E-1)$.

    The step of a per-epoch schedule: constant within an epoch, like a schedule stepped once per epoch.
    """
    check_progress(progress)
    check_int("epochs", epochs, low=1)
    # the 1e-9 absorbs rounding in (step / total_steps) * E at the first step of an epoch
    return min(math.floor(progress * epochs + 1e-9), epochs - 1)


def epoch_progress(epochs_done: float, epochs: int) -> float:
    """The ``progress`` at which ``epochs_done`` of ``epochs`` epochs are done: ``epochs_done / epochs``.

    For a schedule length given in epochs (a warm-up of W epochs starts its method at ``epoch_progress(W, E)``,
    exactly at epoch W under :func:`kdlab.train.fit`).
    """
    check_int("epochs", epochs, low=1)
    check_number("epochs_done", epochs_done, low=0.0, high=float(epochs))
    return epochs_done / epochs
