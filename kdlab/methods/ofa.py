r"""OFA-KD: One-for-All distillation between heterogeneous architectures (Hao et al., NeurIPS 2023).

Stage features of a CNN and of a ViT have little in common, but logits do. OFA therefore attaches a
small branch $h_s$ to each chosen student stage that projects the stage's features $F_s$ into logit space,
and trains every branch, and the student's own head, against the teacher's **final** logits. The
branches are dropped at inference.

With $p=\mathrm{softmax}(z_s/T)$, $q=\mathrm{softmax}(z_t/T)$ and $m=\mathrm{onehot}(y)$, the OFA loss of
the official code weights each class by

$$w_c = (q_c + m_c)^{\gamma} - m_c,\qquad\text{i.e.}\quad w_y=(1+q_y)^{\gamma}-1,\quad w_{c\neq y}=q_c^{\gamma},$$
$$\mathcal{L}_{OFA} = -\frac{1}{B}\sum_{b=1}^{B}\sum_{c=1}^{K} w_{bc}\,\log p_{bc}$$

(no $T^2$ factor, no renormalisation of $w$). At $\gamma=1$ it is the soft-target cross-entropy
$-\sum_c q_c\log p_c$. The paper writes the loss with the hard cross-entropy folded in,

$$\mathcal{L}^{paper}_{OFA} = -(1+q_y)^{\gamma}\log p_y - \sum_{c\neq y} q_c\log p_c .$$

The training objective (official code) is the plain sum

$$\mathcal{L} = \lambda_{gt}\,\mathrm{CE}(z_s, y) + \lambda_{kd}\,\mathcal{L}_{OFA}(z_s, z_t;\gamma_{last})
  + \lambda_{ofa}\sum_{s\in\mathcal{S}}\mathcal{L}_{OFA}(h_s(F_s), z_t;\gamma),$$

the loss terms ``"ce"``, ``"ofa_logits"`` (the OFA loss of the student's own logits) and ``"ofa"`` (of the
branches), weighted by ``ce_weight`` ($\lambda_{gt}$), ``ofa_logits_weight`` ($\lambda_{kd}$ of the paper and
code) and ``ofa_weight`` ($\lambda_{ofa}$).

Branches (official code, re-derived for 32x32 inputs; details in :func:`cnn_branch` and :func:`token_branch`):

* CNN students: stride-2 depthwise-separable conv blocks down to the last stage's resolution, width
  $\max(D_s, D_t)$ (a 1x1 conv at the last resolution), global average pooling, linear.
* Token students (ViT, Swin, Mixer): Swin patch merging down to a 4x4 grid, $\max(4-s,1)$ pre-norm
  transformer blocks of width $D_s$, mean over tokens, linear. [our choice] ViT prefix (cls) tokens are
  dropped, as :func:`~kdlab.models.features.stage_features` does, so every token branch reads out by the
  mean; the official code reads a ViT branch out from its cls token.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.swin_transformer import PatchMerging
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from ..checks import check_choice, check_positive, check_same_shape, check_tensor, check_weights
from ..models import count_parameters, family_of, stage_shapes
from .base import Distiller
from .common import is_stage, logits_and_stage_maps

FORMS = ("code", "paper")  # "code": the official code's form (the default); "paper": the paper's equation
TOKEN_GRID = 4  # target grid of the token branches at 32 px (the official 7x7 at 224 px)
OFFICIAL_STAGES = (2, 4, 10, 12)  # the official ViT / Mixer stage blocks, out of 12


# --------------------------------------------------------------------------------------------- loss


def _target_indices(target: Tensor, batch: int, num_classes: int) -> Tensor:
    """Class indices (B,) from indices (B,) or soft labels (B, K) (argmax, as under mixup)."""
    if target.ndim == 2 and tuple(target.shape) == (batch, num_classes):
        return target.argmax(dim=1)
    if target.ndim == 1 and target.shape[0] == batch and not target.is_floating_point():
        return target
    raise ValueError(
        f"target must be class indices of shape ({batch},) or soft labels of shape ({batch}, {num_classes}), "
        f"got {tuple(target.shape)} ({target.dtype})"
    )


def ofa_weights(teacher_logits: Tensor, target: Tensor, gamma: float = 1.0, temperature: float = 1.0,
                form: str = "code") -> Tensor:
    r"""The (B, K) class weights $w$ of the OFA loss.

    ``code``: $w = (q + m)^\gamma - m$. ``paper``: $w_y = (1+q_y)^\gamma$, $w_{c\neq y} = q_c$.
    """
    check_choice("form", form, FORMS)
    check_positive("gamma", gamma)
    check_positive("temperature", temperature)
    check_tensor("teacher logits", teacher_logits, ndim=2)
    q = F.softmax(teacher_logits / temperature, dim=1)
    labels = _target_indices(target, *q.shape)
    m = F.one_hot(labels, q.shape[1]).to(q.dtype)
    if form == "code":
        return (q + m).pow(gamma) - m
    return torch.where(m.bool(), (1 + q).pow(gamma), q)


def ofa_loss(student_logits: Tensor, teacher_logits: Tensor, target: Tensor, gamma: float = 1.0,
             temperature: float = 1.0, form: str = "code") -> Tensor:
    r"""$-\frac1B\sum_b\sum_c w_{bc}\log\mathrm{softmax}(z_s/T)_{bc}$ with $w$ from :func:`ofa_weights`.

    ``target`` holds class indices (B,) or soft labels (B, K), whose argmax is the target class. No
    $T^2$ factor. ``log_softmax`` keeps the loss finite for extreme logits.
    """
    check_same_shape("student logits", student_logits, "teacher logits", teacher_logits, ndim=2)
    w = ofa_weights(teacher_logits, target, gamma, temperature, form)
    log_p = F.log_softmax(student_logits / temperature, dim=1)
    return -(w * log_p).sum(dim=1).mean()


# ----------------------------------------------------------------------------------------- branches


def _halvings(size: int, target: int) -> int:
    """How many stride-2 steps (ceil halving) take ``size`` down to at most ``target``."""
    steps = 0
    while size > target:
        size, steps = math.ceil(size / 2), steps + 1
    return steps


def sep_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Official SepConv: dw3x3/2 -> pw1x1 -> BN -> ReLU -> dw3x3 -> pw1x1 (c_in -> c_out) -> BN -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride=2, padding=1, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_in, 1, bias=False),
        nn.BatchNorm2d(c_in),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def cnn_branch(shape: tuple[int, int, int], last_size: int, width: int, num_classes: int) -> nn.Sequential:
    r"""(B, C, H, W) -> (B, K): $n=\lceil\log_2(H/H_{last})\rceil$ SepConvs (channels $C\to2C\to\dots\to D$),
    or a biased 1x1 conv $C\to D$ when $n=0$; then GAP and $\mathrm{Linear}(D\to K)$."""
    channels, size = shape[0], min(shape[1:])
    n = _halvings(size, last_size)
    if n == 0:
        body: list[nn.Module] = [nn.Conv2d(channels, width, 1)]
    else:
        widths = [channels * 2 ** (i + 1) for i in range(n - 1)] + [width]
        body = [sep_conv(c_in, c_out) for c_in, c_out in zip([channels] + widths[:-1], widths)]
    return nn.Sequential(*body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


class ToTokens(nn.Module):
    """(B, H, W, C) -> (B, H*W, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1, 2)


class Permute(nn.Module):
    """Permute dimensions (here (B, C, H, W) -> (B, H, W, C))."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)


class TokenMean(nn.Module):
    """(B, N, C) -> (B, C): mean over tokens."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=1)


def token_branch(shape: tuple[int, int, int], stage: int, num_stages: int, width: int,
                 num_classes: int) -> nn.Sequential:
    r"""(B, E, H, W) -> (B, K): Swin patch merging to a $4\times4$ grid, blocks, mean, Linear.

    $n=\max(\lfloor\log_2(g/4)\rfloor, 0)$ mergers (concat 2x2 -> LayerNorm(4E) -> Linear, no bias); the first
    maps $E\to D_s$ with GELU, later ones $D_s\to D_s$ with GELU except the last (Identity). With no merger
    and $E\neq D_s$ a bias-free Linear $E\to D_s$ projects instead [our choice]. Then $\max(4-s', 1)$ timm
    pre-norm blocks (mlp ratio 4, no qkv bias, $\gcd(D_s, 4)$ heads [our choice]), where
    $s'=\lceil 4s/\max(n_{stages}, 4)\rceil$ is the stage's position among four (so blocks 1/2/5/6 of a
    depth-6 ViT count as stages 1/2/4/4, like the official 2/4/10/12 of 12). Readout: mean over tokens.
    """
    embed, grid = shape[0], min(shape[1:])
    n_merge = max(math.floor(math.log2(grid / TOKEN_GRID)), 0)
    layers: list[nn.Module] = [Permute(0, 2, 3, 1)]
    for i in range(n_merge):
        layers += [PatchMerging(embed if i == 0 else width, width),
                   nn.GELU() if i == 0 or i < n_merge - 1 else nn.Identity()]
    layers.append(ToTokens())
    if n_merge == 0 and embed != width:
        layers.append(nn.Linear(embed, width, bias=False))
    position = math.ceil(4 * stage / max(num_stages, 4))
    heads = math.gcd(width, 4)
    layers += [Block(width, heads, mlp_ratio=4.0, qkv_bias=False) for _ in range(max(4 - position, 1))]
    return nn.Sequential(*layers, TokenMean(), nn.Linear(width, num_classes))


def _init_weights(module: nn.Module) -> None:
    """Official init: conv Kaiming-normal (fan_out, ReLU); BN 1/0; Linear trunc-normal(0.02)/0."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def default_stages(num_stages: int) -> tuple[int, ...]:
    """OFA's four stages: every stage of a model with at most 4, else blocks 2/4/10/12 of 12 scaled to depth."""
    if num_stages <= 4:
        return tuple(range(1, num_stages + 1))
    return tuple(sorted({max(1, round(k * num_stages / 12)) for k in OFFICIAL_STAGES}))


def check_stages(stages: Sequence[int], num_stages: int) -> tuple[int, ...]:
    """Validate 1-based stage indices (distinct, in 1..num_stages) and return them sorted."""
    valid = range(1, num_stages + 1)
    bad = [s for s in stages if not is_stage(s, num_stages)]
    if bad or len(set(stages)) != len(stages):
        raise ValueError(f"bad OFA stages {tuple(stages)}: expected distinct 1-based indices; valid stages are "
                         f"{', '.join(map(str, valid))}")
    return tuple(sorted(stages))


def build_branches(student: nn.Module, stages: Sequence[int] | None, num_classes: int,
                   teacher_dim: int | None = None, img_size: int = 32) -> nn.ModuleDict:
    r"""One branch per chosen stage, keyed ``"1"``, ``"2"``, ...: stage features (B, C, H, W) -> (B, K).

    ``stages`` are 1-based indices into :func:`~kdlab.models.features.stage_features` (blocks for ViT and
    Mixer); ``None`` means :func:`default_stages`. CNN branches are $\max(D_s, D_t)$ wide
    (``teacher_dim`` is $D_t$; ``None`` means $D_s$), token branches $D_s$ wide. Count their
    parameters with :func:`~kdlab.models.registry.count_parameters`. ``stages=()`` gives no branch and takes any
    student, one without stage maps (the ``mlp`` family) included.
    """
    if stages is not None and len(stages) == 0:
        return nn.ModuleDict()
    shapes = stage_shapes(student, img_size)
    stages = default_stages(len(shapes)) if stages is None else check_stages(stages, len(shapes))
    d_s = student.num_features
    branches = nn.ModuleDict()
    for s in stages:
        if family_of(student) == "cnn":
            width = max(d_s, teacher_dim or d_s)
            branches[str(s)] = cnn_branch(shapes[s - 1], min(shapes[-1][1:]), width, num_classes)
        else:
            branches[str(s)] = token_branch(shapes[s - 1], s, len(shapes), d_s, num_classes)
    branches.apply(_init_weights)
    return branches


def stage_gammas(gamma: float | Sequence[float], gamma_last: float | None,
                 stages: Sequence[int]) -> tuple[dict[int, float], float]:
    r"""The $\gamma_s$ of every branch stage and $\gamma_{last}$ of the final logits (spec §2.5): one ``gamma``
    for all (``gamma_last`` defaulting to it), or the official code's list of $|\mathcal{S}|+1$ values, one per
    stage in increasing order and the last for the final logits (``gamma_last`` must then be ``None``)."""
    if isinstance(gamma, (list, tuple)):
        if gamma_last is not None:
            raise ValueError("give gamma_last only with one gamma; a list of gammas ends with the final logits' own")
        if len(gamma) != len(stages) + 1:
            raise ValueError(f"a list of gammas needs one per branch stage {tuple(stages)} and one for the final "
                             f"logits ({len(stages) + 1} values), got {len(gamma)}: {list(gamma)}")
        values = [check_positive(f"gamma[{i}]", value) for i, value in enumerate(gamma)]
        return dict(zip(stages, values[:-1])), values[-1]
    gamma = check_positive("gamma", gamma)
    gamma_last = gamma if gamma_last is None else check_positive("gamma_last", gamma_last)
    return {s: gamma for s in stages}, gamma_last


# ---------------------------------------------------------------------------------------- distiller


class OFA(Distiller):
    r"""OFA-KD: ``terms = {"ce": ce_weight CE(z_s, y), "ofa_logits": ofa_logits_weight L_OFA(z_s, z_t; gamma_last),
    "ofa": ofa_weight * sum_s L_OFA(h_s(F_s), z_t; gamma)}``.

    ``stages`` are 1-based student stages (``None``: :func:`default_stages`; ``()``: final head only).
    ``ce_weight``, ``ofa_logits_weight`` and ``ofa_weight`` are the paper's $\lambda_{gt}$, $\lambda_{kd}$ and
    $\lambda_{ofa}$. ``gamma`` is one $\gamma$ for every branch, or, as the official code allows, one per branch
    stage and a last one for the final logits ($|\mathcal{S}|+1$ values, stages in increasing order; then leave
    ``gamma_last`` unset). ``gamma_last`` defaults to ``gamma``. ``ce_weight`` defaults to 1 for ``form="code"`` and to 0
    for ``form="paper"``, whose loss already holds the hard cross-entropy. ``y`` may be class indices or
    soft labels (mixup). :meth:`predict` is the bare student: branches cost nothing at inference.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, stages: Sequence[int] | None = None,
                 gamma: float | Sequence[float] = 1.0, temperature: float = 1.0, ofa_logits_weight: float = 1.0,
                 ofa_weight: float = 1.0, gamma_last: float | None = None, ce_weight: float | None = None,
                 label_smoothing: float = 0.0, form: str = "code", img_size: int = 32) -> None:
        super().__init__(student, teacher)
        check_choice("form", form, FORMS)
        check_positive("temperature", temperature)
        ce_weight = (1.0 if form == "code" else 0.0) if ce_weight is None else ce_weight
        check_weights(ofa_logits_weight=ofa_logits_weight, ofa_weight=ofa_weight, ce_weight=ce_weight)
        num_classes = student.num_classes
        self.branches = build_branches(student, stages, num_classes, getattr(teacher, "num_features", None),
                                       img_size)
        self.stages = tuple(int(s) for s in self.branches)
        self.stage_gammas, self.gamma_last = stage_gammas(gamma, gamma_last, self.stages)
        self.gamma, self.temperature, self.form = gamma, temperature, form
        self.ce_weight, self.ofa_logits_weight, self.ofa_weight = ce_weight, ofa_logits_weight, ofa_weight
        self.label_smoothing = label_smoothing

    def branch_parameters(self) -> int:
        """Number of parameters in the training-only branches (absent from the deployed student)."""
        return count_parameters(self.branches)

    def branch_logits(self, x: Tensor) -> tuple[Tensor, dict[int, Tensor]]:
        """Student logits and every branch's (B, K) logits, keyed by stage, from one student forward."""
        logits, maps = logits_and_stage_maps(self.student, x, self.stages)
        return logits, {s: branch(maps[s]) for s, branch in zip(self.stages, self.branches.values())}

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        logits, stage_logits = self.branch_logits(x)
        teacher_logits = self.teacher_forward(x)
        ofa = sum((self._loss(z, teacher_logits, y, self.stage_gammas[s]) for s, z in stage_logits.items()),
                  logits.new_zeros(()))
        return logits, {
            "ce": self.ce_weight * F.cross_entropy(logits, y, label_smoothing=self.label_smoothing),
            "ofa_logits": self.ofa_logits_weight * self._loss(logits, teacher_logits, y, self.gamma_last),
            "ofa": self.ofa_weight * ofa,
        }

    def _loss(self, logits: Tensor, teacher_logits: Tensor, y: Tensor, gamma: float) -> Tensor:
        return ofa_loss(logits, teacher_logits, y, gamma, self.temperature, self.form)
