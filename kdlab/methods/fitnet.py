r"""FitNet hints (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015): the feature-mimicking baseline.

The student learns to reproduce the teacher's intermediate feature maps. A small trainable regressor $r$
maps a student stage's features $F_s$ (B, C_s, H_s, W_s) onto the shape of a teacher stage's features
$F_t$ (B, C_t, H_t, W_t), and the hint loss is their mean squared error,

$$\mathcal{L}_{hint} = \frac{1}{BCHW}\big\lVert r(F_s) - F_t\big\rVert_2^2 .$$

With hint pairs $\mathcal{P}$ of (student stage, teacher stage) the training objective is

$$\mathcal{L} = \lambda_{ce}\,\mathrm{CE}(z_s, y) + \lambda_{hint}\,\frac{1}{|\mathcal{P}|}\sum_{(s,t)\in\mathcal{P}}
  \mathcal{L}_{hint}\big(r_{st}(F_s), F_t\big).$$

[our choice] The original FitNet trains in two phases (first the student up to its guided layer on the
hint alone, then the whole student with KD). We use the common single-phase variant of mdistiller and of
the OFA-KD baselines: cross-entropy plus a weighted hint loss from the first step, and no logit KD term.

Across model families the stage maps mean different things (a CNN's local, ever coarser maps against a
ViT's or Mixer's fixed-grid token maps), so forcing one onto the other helps less than KD or even hurts:
that is what OFA-KD reports for FitNet on heterogeneous pairs, and what this baseline is for.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_same_shape, check_weights
from ..models import count_parameters, stage_shapes
from .base import Distiller
from .common import is_stage, logits_and_stage_maps, stage_maps, teacher_pass, teacher_token

Pair = tuple[int, int]


def hint_loss(student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
    r"""$\frac{1}{BCHW}\lVert r(F_s) - F_t\rVert_2^2$: the MSE between a regressed student map and the teacher's.

    Both must be (B, C, H, W) maps of the same shape; regress the student's with :class:`HintRegressor`.
    """
    check_same_shape("regressed student features", student_feature, "teacher features", teacher_feature, ndim=4)
    return F.mse_loss(student_feature, teacher_feature)


class HintRegressor(nn.Module):
    r"""$r$: (B, C_s, H_s, W_s) -> (B, C_t, H_t, W_t): resize, then 1x1 conv $C_s\to C_t$ and BatchNorm.

    Resizing [our choice]: adaptive average pooling when the teacher map is no larger in either side (for
    the integer factors of our models, the exact mean over each s x s block, like a strided stage),
    bilinear interpolation (``align_corners=False``) otherwise. Both are linear, so they commute with the
    1x1 conv; resizing first lets BatchNorm normalise the very map that is compared with the teacher. No
    ReLU: ViT, Swin and Mixer features are signed.
    """

    def __init__(self, student_shape: tuple[int, int, int], teacher_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.size = tuple(teacher_shape[1:])
        self.shrink = all(t <= s for t, s in zip(self.size, student_shape[1:]))
        self.proj = nn.Sequential(nn.Conv2d(student_shape[0], teacher_shape[0], 1, bias=False),
                                  nn.BatchNorm2d(teacher_shape[0]))

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[2:]) != self.size:
            x = (F.adaptive_avg_pool2d(x, self.size) if self.shrink
                 else F.interpolate(x, size=self.size, mode="bilinear", align_corners=False))
        return self.proj(x)


def _scale(index: int, num_from: int, num_to: int) -> int:
    """The stage at the same relative depth, ``index * num_to / num_from`` rounded half up."""
    return math.floor(index * num_to / num_from + 0.5)


def default_pairs(num_student: int, num_teacher: int) -> tuple[Pair, ...]:
    r"""One hint per stage of the shallower model, paired with the other's stage at the same relative depth.

    With $n_s\le n_t$: student stage $s\mapsto$ teacher stage $\mathrm{round}(s\,n_t/n_s)$, else teacher
    stage $t\mapsto$ student stage $\mathrm{round}(t\,n_s/n_t)$ (half up). The last stages always pair up;
    e.g. 4 student and 3 teacher stages give (1, 1), (3, 2), (4, 3).
    """
    if num_student <= num_teacher:
        return tuple((s, _scale(s, num_student, num_teacher)) for s in range(1, num_student + 1))
    return tuple((_scale(t, num_teacher, num_student), t) for t in range(1, num_teacher + 1))


def check_pairs(pairs: Sequence[Sequence[int]], num_student: int, num_teacher: int) -> tuple[Pair, ...]:
    """Validate distinct 1-based (student stage, teacher stage) pairs and return them as tuples."""
    valid = (f"valid student stages are {', '.join(map(str, range(1, num_student + 1)))}; "
             f"valid teacher stages are {', '.join(map(str, range(1, num_teacher + 1)))}")
    if len(pairs) == 0:
        raise ValueError(f"FitNet needs at least one (student stage, teacher stage) pair; {valid}")
    bad = [p for p in pairs if not isinstance(p, (tuple, list)) or len(p) != 2
           or not (is_stage(p[0], num_student) and is_stage(p[1], num_teacher))]
    if bad:
        raise ValueError(f"bad FitNet pairs {bad}: expected 1-based (student stage, teacher stage) pairs; {valid}")
    checked = tuple((s, t) for s, t in pairs)
    if len(set(checked)) != len(checked):
        raise ValueError(f"duplicate FitNet pairs in {checked}")
    return checked


class FitNet(Distiller):
    r"""FitNet hints: ``terms = {"ce": ce_weight CE(z_s, y), "hint": hint_weight * mean_pairs hint_loss}``.

    ``pairs`` are 1-based (student stage, teacher stage) indices into
    :func:`~kdlab.models.stage_features` (blocks for ViT and Mixer); ``None`` means
    :func:`default_pairs`. One :class:`HintRegressor` per pair, sized from both models'
    :func:`~kdlab.models.stage_shapes` at ``img_size``. ``ce_weight`` and ``hint_weight`` are
    $\lambda_{ce}$ and $\lambda_{hint}$. The student runs once per step (logits and stage maps together);
    :meth:`teacher_forward` gives the teacher's stage maps. :meth:`predict` is the bare student: the
    regressors exist only for training.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, pairs: Sequence[Sequence[int]] | None = None,
                 hint_weight: float = 1.0, ce_weight: float = 1.0, img_size: int = 32) -> None:
        super().__init__(student, teacher)
        check_weights(hint_weight=hint_weight, ce_weight=ce_weight)
        student_shapes, teacher_shapes = stage_shapes(student, img_size), stage_shapes(teacher, img_size)
        n_s, n_t = len(student_shapes), len(teacher_shapes)
        self.pairs = default_pairs(n_s, n_t) if pairs is None else check_pairs(pairs, n_s, n_t)
        self.regressors = nn.ModuleList(
            HintRegressor(student_shapes[s - 1], teacher_shapes[t - 1]) for s, t in self.pairs
        )
        self.hint_weight, self.ce_weight = hint_weight, ce_weight

    def regressor_parameters(self) -> int:
        """Number of parameters in the training-only regressors (absent from the deployed student)."""
        return count_parameters(self.regressors)

    @teacher_pass
    def teacher_forward(self, x: Tensor) -> dict[int, Tensor]:
        """The paired teacher stages' (B, C, H, W) maps, keyed by 1-based stage, without autograd."""
        return stage_maps(self.teacher, x, sorted({t for _, t in self.pairs}))

    def teacher_cache_key(self) -> tuple:
        return teacher_token(self.teacher), tuple(sorted({t for _, t in self.pairs}))

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        logits, student_maps = logits_and_stage_maps(self.student, x, sorted({s for s, _ in self.pairs}))
        teacher_maps = self.teacher_forward(x)
        hints = [hint_loss(regressor(student_maps[s]), teacher_maps[t])
                 for (s, t), regressor in zip(self.pairs, self.regressors)]
        return logits, {
            "ce": self.ce_weight * F.cross_entropy(logits, y),
            "hint": self.hint_weight * torch.stack(hints).mean(),
        }
