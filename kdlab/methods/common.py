r"""What several methods share: the teacher forward's semantics, stage-feature taps and the schedule vocabulary.

**Teacher forward.** The teacher is frozen: :class:`~kdlab.methods.base.Distiller` puts it in eval mode (and
keeps it there in ``train()``) with ``requires_grad=False``, and every ``teacher_forward`` runs under
:func:`teacher_pass`, i.e. ``torch.no_grad()``. Not ``torch.inference_mode()``: the teacher's outputs are
saved by the student's graph (softmax targets, feature targets), which inference tensors do not allow, and a
method may need a teacher-side module in the graph (e.g. a prompt that learns through the frozen teacher).

**Teacher outputs, computed once.** A frozen teacher gives the same output for the same input, and every row of
an experiment grid trained with the same seed sees the same augmented batches (the batch order and the
augmentation are functions of the seed). So :func:`teacher_pass` memoises ``teacher_forward`` in
:data:`TEACHER_OUTPUTS`, keyed by the distiller's :meth:`~kdlab.methods.base.Distiller.teacher_cache_key` (which
teacher, which outputs), the input's shape and dtype and a BLAKE2 digest of its bytes: a hit returns exactly the
tensors the forward would compute, so training with the cache is bit-identical to training without it
(``tests/test_teacher_cache.py``). A method whose teacher side learns (CAFD's prompts) returns ``None`` as its key
and is never cached; so is any input on an accelerator, where the teacher forward is cheap.

**Labels.** :func:`labelled_cross_entropy` is the classification cross-entropy every labels term uses where a
training set may hold images without a label (:data:`kdlab.data.UNLABELLED`, the primer's label budgets): each image
weighs $1/B$ and an unlabelled one adds no cross-entropy, while the teacher's terms see every image.

**Stage taps.** Stages are 1-based indices into :func:`kdlab.models.stage_features` (blocks for ViT and Mixer);
:func:`logits_and_stage_maps` and :func:`stage_maps` return them keyed by stage.

**Schedules.** Training time has one form, ``progress`` in [0, 1]: the fraction of training done, what
:func:`kdlab.train.fit` passes to ``Distiller.forward(x, y, *, progress)`` (``step / total_steps``). Every
schedule is a function of ``progress`` plus the fixed facts it needs (``epochs`` for a per-epoch step
schedule). A length given in epochs becomes a progress with :func:`epoch_progress`; the per-epoch step is
:func:`epoch_at`, $e = \min(\lfloor E\cdot\mathrm{progress}\rfloor, E-1)$.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
from collections import OrderedDict
from typing import Any, Callable, Hashable, Sequence, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_fraction, check_int, check_number, is_int
from ..data import UNLABELLED
from ..models import logits_and_stage_features, stage_features

Method = TypeVar("Method", bound=Callable)


# ------------------------------------------------------------------------------------------ teacher


class TeacherOutputs:
    """A bounded memo of teacher outputs, least recently used first out (the store behind :func:`teacher_pass`).

    ``max_bytes`` caps the tensors held (0 turns the memo off); ``hits`` and ``misses`` count lookups.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = check_int("max_bytes", max_bytes, low=0)
        self._store: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.bytes = self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        """The stored outputs of ``key`` (now the most recently used), or ``None``."""
        entry = self._store.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._store.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` (a tensor or a list / tuple / dict of tensors) unless it alone exceeds the cap; evict the
        least recently used entries until the total fits."""
        size = _tensor_bytes(value)
        if size > self.max_bytes:
            return
        self._store[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, old) = self._store.popitem(last=False)
            self.bytes -= old

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        self._store.clear()
        self.bytes = self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._store)


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, Tensor):
        return value.element_size() * value.numel()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    raise TypeError(f"teacher outputs must be tensors or lists / tuples / dicts of them, got {type(value).__name__}")


TEACHER_OUTPUTS = TeacherOutputs(int(float(os.environ.get("KDLAB_TEACHER_CACHE_MB", "1024")) * 2**20))
"""The process's memo of teacher outputs; its size in MiB comes from ``KDLAB_TEACHER_CACHE_MB`` (default 1024,
0 turns it off). Each worker process of :func:`kdlab.experiments.run_experiments` has its own."""


def teacher_token(teacher: nn.Module) -> int:
    """A number that names ``teacher`` for the memo as long as the process lives (kept on the module, so a new
    teacher at a recycled address never reads an old teacher's outputs)."""
    token = getattr(teacher, "_kdlab_teacher_token", None)
    if token is None:
        token = next(_TOKENS)
        object.__setattr__(teacher, "_kdlab_teacher_token", token)
    return token


_TOKENS = itertools.count()


def input_digest(x: Tensor) -> Hashable:
    """What identifies a CPU input batch exactly: shape, dtype and the BLAKE2b-128 digest of its bytes."""
    data = x.detach().contiguous()
    return tuple(data.shape), str(data.dtype), hashlib.blake2b(data.view(torch.uint8).numpy(), digest_size=16).digest()


def teacher_pass(method: Method) -> Method:
    """Decorate a ``teacher_forward(self, x)``: run it under ``torch.no_grad()`` (the teacher is already in eval
    mode), memoised in :data:`TEACHER_OUTPUTS` when ``self.teacher_cache_key()`` is not ``None`` and ``x`` is on
    the CPU (see the module notes)."""
    forward = torch.no_grad()(method)

    @functools.wraps(method)
    def memoised(*args, **kwargs):
        if kwargs or len(args) != 2 or not hasattr(args[0], "teacher_cache_key"):
            return forward(*args, **kwargs)  # not a distiller's teacher_forward(self, x): no memo
        self, x = args
        key = self.teacher_cache_key() if TEACHER_OUTPUTS.max_bytes and x.device.type == "cpu" else None
        if key is None:
            return forward(self, x)
        key = (method.__qualname__, key, input_digest(x))
        outputs = TEACHER_OUTPUTS.get(key)
        if outputs is None:
            outputs = forward(self, x)
            TEACHER_OUTPUTS.put(key, outputs)
        return outputs

    return memoised


# --------------------------------------------------------------------------------------------- taps


def labelled_cross_entropy(logits: Tensor, y: Tensor, label_smoothing: float = 0.0) -> Tensor:
    r"""$\frac{1}{B}\sum_{b\in L}\mathrm{CE}(z_b, y_b)$ over the labelled rows $L = \{b : y_b \ne$
    :data:`~kdlab.data.UNLABELLED`$\}$ of a (B, K) batch: every image weighs $1/B$, and an unlabelled image's
    cross-entropy counts as 0 (its teacher terms still count), so a fully labelled batch gives the usual mean.
    Not the mean over $L$ alone (``ignore_index``'s): with few labels per batch that gave the handful of labelled
    images most of the gradient, and a ViT distilled on 500 labelled + 1500 teacher-labelled images fell from 56 to
    41 % (one seed, ``notebooks/00_primer.ipynb`` §8)."""
    labelled = y != UNLABELLED
    if bool(labelled.all()):
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    per_image = F.cross_entropy(logits[labelled], y[labelled], label_smoothing=label_smoothing, reduction="sum")
    return per_image / len(y)


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
