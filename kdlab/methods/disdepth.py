r"""DisDepth: cross-architecture distillation for efficient monocular depth estimation, Transformer teacher ->
CNN student (Zheng, Huang, Li, Wang, arXiv:2404.16386, 2024; no official code). Spec: ``papers/disdepth.md``.

**Task loss** (BTS / NeWCRFs form [official code]): with $d = \log\hat y - \log y$ over the valid pixels of the
batch,

$$\mathcal{L}_{SILog} = 10\sqrt{\mathrm{mean}(d^2) - \lambda\,\mathrm{mean}(d)^2},\qquad \lambda = 0.85,$$

i.e. $10\sqrt{\mathrm{Var}_{biased}(d) + 0.15\,\mathrm{mean}(d)^2}$: *not* scale-invariant (the evaluation
metric, $\lambda=1$ and $\times100$, is; see :mod:`kdlab.metrics`).

**LGConv** (§2.2) runs a global branch $G$ next to a pretrained 3x3 conv, $y = \mathrm{Conv}_{3\times3}(x) +
G(x)$. With $x\in\mathbb{R}^{B\times C\times H\times W}$, $c = C/r$ and $h$ heads [our choice: the public
``LocalGlobalConv`` of PU-MLC, co-authored by DisDepth's second author]:

$$z = \mathrm{ReLU}(\mathrm{Conv}^{1\times1}_{C\to c}x),\quad u = [z;\ \mathrm{mean}_{HW}z],\quad
  a = \mathrm{softmax}_{HW}(\mathrm{Conv}^{1\times1}_{2c\to h}u),\quad
  \beta = \sigma(\mathrm{Conv}^{1\times1}_{2c\to h}u),$$
$$v = \mathrm{Conv}^{1\times1}_{C\to C}x\ \text{split into } h \text{ heads},\quad
  g_{h'} = \sum_p a_{h'}(p)\,v_{h'}(p),\quad v'_{h'}(p) = \beta_{h'}(p)\,g_{h'},$$
$$G(x) = \mathrm{BN}(\mathrm{Conv}^{1\times1,\,s}_{C\to C_{out}}(x + v')).$$

The BN scale is drawn from $\mathcal{N}(0, (10^{-4})^2)$ and its bias is 0, so a converted network starts as
the original.

**Ghost decoder + FAM** (§2.3): frozen Transformer features $F^T_l$ are acclimated by
$\tilde F^T_l = \mathrm{FAM}_l(F^T_l) = \mathrm{Conv}^{3\times3}(\mathrm{ReLU}(\mathrm{BN}(\mathrm{Conv}^{1\times1}
F^T_l)))$ to the student's shape and decoded by the student's own decoder and head with **stop-gradient**
weights $\bar\theta$ (the current ones: per-step sync),
$\hat y^{(t)} = \mathrm{Head}(\mathrm{Dec}_{\bar\theta}(\{A_l\odot\tilde F^T_l\}))$, so the ghost task loss trains
FAM and LAM only.

**LAM and attentive KD** (§2.4) [our choice for the LAM form]: with $q_l = W_q\,\mathrm{mean}_p\tilde F^T_l(p)$
and $k_l(p) = W_k\tilde F^T_l(p)$,

$$A_l(p) = H_lW_l\cdot\mathrm{softmax}_p\big(q_l^\top k_l(p)/\sqrt{d_a}\big)\quad(\mathrm{mean}_pA_l = 1),\qquad
  \mathcal{L}_{kd} = \sum_{l=1}^{L}\frac{1}{BC_lH_lW_l}\big\lVert \mathrm{sg}(A_l)\odot\big(F^S_l -
  \mathrm{sg}(\tilde F^T_l)\big)\big\rVert_2^2 .$$

LAM is trained by the ghost loss (the ghost decoder consumes $A_l\odot\tilde F^T_l$), never by
$\mathcal{L}_{kd}$: minimising $\mathcal{L}_{kd}$ over $A$ would pile all attention onto the pixel with the
smallest error (spec pitfall 8). The softmax keeps $\sum_pA_l(p) = H_lW_l$, so $A\equiv0$ is not reachable.

**Objective** (§2.5): $\mathcal{L} = \mathcal{L}_{SILog}(\hat y^S, y) + \mathcal{L}_{SILog}(\hat y^{(t)}, y) +
\lambda\,\mathcal{L}_{kd}$, with $\lambda = 0$ during the first ``warmup`` fraction of training (§2.3).
$\mathcal{L}_{SILog}$ updates the student; the ghost term FAM and LAM; $\mathcal{L}_{kd}$ the student encoder.
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..models.features import dry_run, require_methods
from .base import Distiller, check_loss_weights, is_int

PRED_EPS = 1e-6  # predictions are clamped to >= this before the log (our heads never go below d_min > 0)
RADICAND_EPS = 1e-12  # the sqrt's argument is clamped to >= this: a perfect prediction gives 1e-5, zero gradient
SYNCS = ("step", "frozen")  # ghost decoder = the current student decoder (default) or a copy frozen after warm-up
ABLATIONS = ("baseline", "lgconv", "feature_mse", "ghost", "disdepth")
Shape = tuple[int, int, int]


def _is_fraction(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


# ------------------------------------------------------------------------------------------ SILog loss


def silog_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None, variance_focus: float = 0.85) -> Tensor:
    r"""BTS's SILog training loss $10\sqrt{\mathrm{mean}(d^2) - \lambda\,\mathrm{mean}(d)^2}$, $d = \log\hat y -
    \log y$ over the valid pixels of the whole batch, $\lambda$ = ``variance_focus``.

    ``pred`` and ``target`` are depth maps of one shape (e.g. (B, 1, H, W)); ``mask`` a boolean tensor of
    that shape (``None``: finite targets > 0). Computed in float32. [our choice, for safety; BTS has no
    epsilon] ``pred`` is clamped to $\ge$ ``PRED_EPS`` = 1e-6 before the log and the radicand to $\ge$
    ``RADICAND_EPS`` = 1e-12, so a perfect prediction gives $10^{-5}$ with a zero (not NaN) gradient; both are
    inactive for any realistic prediction, where the value is exactly BTS's.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if not _is_fraction(variance_focus):
        raise ValueError(f"variance_focus must be a number in [0, 1], got {variance_focus!r}")
    if mask is None:
        mask = torch.isfinite(target) & (target > 0)
    elif mask.dtype != torch.bool or mask.shape != target.shape:
        raise ValueError(f"mask must be a boolean tensor of the target's shape {tuple(target.shape)}, "
                         f"got {mask.dtype} of shape {tuple(mask.shape)}")
    if not bool(mask.any()):
        raise ValueError("silog_loss: no valid pixel (the mask is empty); check the depth range / validity mask")
    pred, target = pred[mask].float(), target[mask].float()
    if not bool((target > 0).all()):
        raise ValueError("silog_loss: the mask selects targets <= 0, whose log is undefined")
    d = torch.log(pred.clamp_min(PRED_EPS)) - torch.log(target)
    radicand = (d * d).mean() - variance_focus * d.mean() ** 2
    return 10.0 * torch.sqrt(radicand.clamp_min(RADICAND_EPS))


# ----------------------------------------------------------------------------------------------- LGConv


def lgconv_problem(conv: nn.Module, heads: int = 8, reduction: int = 4) -> str | None:
    """Why ``conv`` cannot be wrapped by :class:`LocalGlobalConv` (``None`` if it can)."""
    if not isinstance(conv, nn.Conv2d):
        return f"expected an nn.Conv2d, got {type(conv).__name__}"
    if tuple(conv.kernel_size) != (3, 3):
        return f"kernel {tuple(conv.kernel_size)} is not 3x3"
    same = conv.padding == "same" if isinstance(conv.padding, str) else tuple(conv.padding) == (1, 1)
    if not same:
        return f"padding {conv.padding!r} is not 1 ('same'), so a stride-s 1x1 projection would not match its size"
    if tuple(conv.dilation) != (1, 1):
        return f"dilation {tuple(conv.dilation)} is not 1"
    if conv.in_channels < reduction or conv.in_channels % heads:
        return (f"{conv.in_channels} input channels: need >= reduction ({reduction}) and a multiple of the "
                f"{heads} heads")
    return None


class LocalGlobalConv(nn.Module):
    r"""LGConv: ``y = conv(x) + G(x)`` with the global branch $G$ of the module docstring (§2.2).

    ``conv`` is kept untouched (any stride, groups; 3x3, padding 1, dilation 1). The branch has
    ~$C^2/r + 4ch + C^2 + C\,C_{out}$ parameters: dense even for a depthwise conv. Defaults $h=8$, $r=4$, BN
    scale std ``init_std`` = 1e-4 (the public module's).
    """

    def __init__(self, conv: nn.Conv2d, heads: int = 8, reduction: int = 4, init_std: float = 1e-4) -> None:
        super().__init__()
        if not (is_int(heads, 1) and is_int(reduction, 1)):
            raise ValueError(f"heads and reduction must be ints >= 1, got {heads!r} and {reduction!r}")
        if not (isinstance(init_std, (int, float)) and init_std >= 0):
            raise ValueError(f"init_std must be a number >= 0, got {init_std!r}")
        problem = lgconv_problem(conv, heads, reduction)
        if problem:
            raise ValueError(f"cannot wrap this conv in LocalGlobalConv: {problem}")
        c_in, c_out, hidden = conv.in_channels, conv.out_channels, conv.in_channels // reduction
        kw = dict(device=conv.weight.device, dtype=conv.weight.dtype)
        self.conv, self.heads = conv, heads
        self.reduce = nn.Conv2d(c_in, hidden, 1, **kw)
        self.attend = nn.Conv2d(2 * hidden, heads, 1, **kw)
        self.gate = nn.Conv2d(2 * hidden, heads, 1, **kw)
        self.value = nn.Conv2d(c_in, c_in, 1, **kw)
        self.proj = nn.Conv2d(c_in, c_out, 1, stride=conv.stride, bias=False, **kw)
        self.norm = nn.BatchNorm2d(c_out, **kw)
        nn.init.normal_(self.norm.weight, 0.0, init_std)
        nn.init.zeros_(self.norm.bias)

    def maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""The aggregation attention $a$ (softmax over pixels) and broadcast gate $\beta$, both (B, h, H, W)."""
        z = F.relu(self.reduce(x))
        u = torch.cat([z, z.mean(dim=(2, 3), keepdim=True).expand_as(z)], dim=1)
        b, _, h, w = x.shape
        a = torch.softmax(self.attend(u).flatten(2), dim=-1).reshape(b, self.heads, h, w)
        return a, torch.sigmoid(self.gate(u))

    def global_branch(self, x: Tensor) -> Tensor:
        r"""$G(x)$: (B, C, H, W) -> (B, C_out, H', W'), the wrapped conv's output shape."""
        a, beta = self.maps(x)
        b, c, h, w = x.shape
        v = self.value(x).reshape(b, self.heads, c // self.heads, h * w)
        g = torch.einsum("bnp,bncp->bnc", a.flatten(2), v)  # one global token per head
        broadcast = g.unsqueeze(-1) * beta.flatten(2).unsqueeze(2)  # (B, h, C/h, HW)
        return self.norm(self.proj(x + broadcast.reshape(b, c, h, w)))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + self.global_branch(x)


def convert_to_lgconv(model: nn.Module, heads: int = 8, reduction: int = 4, init_std: float = 1e-4,
                      stem_channels: int = 3) -> nn.Module:
    """Wrap, **in place**, every eligible 3x3 ``Conv2d`` of ``model`` (depthwise included) in a
    :class:`LocalGlobalConv`, and return ``model``.

    Skipped: convs reading ``stem_channels`` channels (the RGB stem), convs that are not 3x3 with padding 1
    and dilation 1, convs whose input channels are not a multiple of ``heads`` or fewer than ``reduction``
    (:func:`lgconv_problem`), and convs already inside a ``LocalGlobalConv`` (converting twice is a no-op).
    New modules go to the wrapped conv's device and dtype.
    """
    for name, child in model.named_children():
        if isinstance(child, LocalGlobalConv):
            continue
        if (isinstance(child, nn.Conv2d) and child.in_channels != stem_channels
                and lgconv_problem(child, heads, reduction) is None):
            setattr(model, name, LocalGlobalConv(child, heads, reduction, init_std))
        else:
            convert_to_lgconv(child, heads, reduction, init_std, stem_channels)
    return model


def lgconv_layers(model: nn.Module) -> dict[str, LocalGlobalConv]:
    """The :class:`LocalGlobalConv` modules of ``model`` by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LocalGlobalConv)}


# ------------------------------------------------------------------------------------------- FAM and LAM


class FeatureAcclimation(nn.Module):
    r"""FAM for one level: (B, C^T, h', w') -> (B, C, h, w), exactly the student map's shape ``student_shape``.

    Bilinear resize to (h, w) when the sides differ, then Conv1x1 $C^T\to C$ (no bias) -> BN -> ReLU ->
    Conv3x3 $C\to C$ (§2.3 [our choice]).
    """

    def __init__(self, teacher_channels: int, student_shape: Shape) -> None:
        super().__init__()
        channels, *size = student_shape
        self.size = tuple(size)
        self.body = nn.Sequential(nn.Conv2d(teacher_channels, channels, 1, bias=False), nn.BatchNorm2d(channels),
                                  nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, teacher_feat: Tensor) -> Tensor:
        if tuple(teacher_feat.shape[-2:]) != self.size:
            teacher_feat = F.interpolate(teacher_feat, size=self.size, mode="bilinear", align_corners=False)
        return self.body(teacher_feat)


class LossAttention(nn.Module):
    r"""LAM for one level: (B, C, H, W) -> (B, 1, H, W) pixel weights $A = HW\cdot\mathrm{softmax}_p(q^\top
    k(p)/\sqrt{d_a})$ with the mean feature as the query, $q = W_q\,\mathrm{mean}_pF(p)$, $k = W_kF$ (1x1).

    $\mathrm{mean}_pA = 1$ for any input and weights. [our choice] $W_q$ starts at zero, so $A\equiv1$ at
    initialisation ($\mathcal{L}_{kd}$ starts as plain MSE) and the ghost loss moves it from there.
    """

    def __init__(self, channels: int, dim: int = 32) -> None:
        super().__init__()
        if not (is_int(channels, 1) and is_int(dim, 1)):
            raise ValueError(f"channels and dim must be ints >= 1, got {channels!r} and {dim!r}")
        self.query, self.key, self.dim = nn.Linear(channels, dim), nn.Conv2d(channels, dim, 1), dim
        nn.init.zeros_(self.query.weight)
        nn.init.zeros_(self.query.bias)

    def forward(self, feat: Tensor) -> Tensor:
        b, _, h, w = feat.shape
        q = self.query(feat.mean(dim=(2, 3)))
        logits = torch.einsum("bd,bdp->bp", q, self.key(feat).flatten(2)) / math.sqrt(self.dim)
        return (h * w * torch.softmax(logits, dim=-1)).reshape(b, 1, h, w)


def attentive_kd_loss(student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor],
                      attentions: Sequence[Tensor] | None = None, detach_teacher: bool = True) -> Tensor:
    r"""$\sum_l \frac{1}{BC_lH_lW_l}\lVert \mathrm{sg}(A_l)\odot(F^S_l - \tilde F^T_l)\rVert_2^2$ (§2.4).

    Lists of (B, C_l, H_l, W_l) maps of equal shapes per level; ``attentions`` (B, 1, H_l, W_l) per level, or
    ``None`` for $A\equiv1$ (the sum of per-level MSEs). Attention is always detached; the teacher side too
    unless ``detach_teacher=False`` (the FAM-trained-by-KD ablation).
    """
    if len(student_feats) != len(teacher_feats) or not student_feats:
        raise ValueError(f"expected equally many (>= 1) student and teacher maps, got {len(student_feats)} and "
                         f"{len(teacher_feats)}")
    if attentions is not None and len(attentions) != len(student_feats):
        raise ValueError(f"expected one attention map per level ({len(student_feats)}), got {len(attentions)}")
    total = student_feats[0].new_zeros(())
    for level, (s, t) in enumerate(zip(student_feats, teacher_feats)):
        if s.ndim != 4 or s.shape != t.shape:
            raise ValueError(f"level {level}: expected student and acclimated teacher maps of one (B, C, H, W) shape, "
                             f"got {tuple(s.shape)} and {tuple(t.shape)}")
        diff = s - (t.detach() if detach_teacher else t)
        if attentions is not None:
            a = attentions[level]
            if a.shape != (s.shape[0], 1, *s.shape[2:]):
                raise ValueError(f"level {level}: attention must be (B, 1, H, W) = {(s.shape[0], 1, *s.shape[2:])}, "
                                 f"got {tuple(a.shape)}")
            diff = a.detach() * diff
        total = total + diff.pow(2).mean()
    return total


# -------------------------------------------------------------------------------------------- ghost path


class _ForwardHead(nn.Module):
    """``model.forward_head`` as a module's forward, for :func:`torch.func.functional_call`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: list[Tensor]) -> Tensor:
        return self.model.forward_head(features)


def ghost_head(student: nn.Module, features: Sequence[Tensor]) -> Tensor:
    r"""The ghost decoder: ``student.forward_head(features)`` with **detached** parameters
    $\mathrm{sg}(\bar\theta)$ and **cloned** buffers, via :func:`torch.func.functional_call`.

    Gradients reach ``features`` (hence FAM and LAM) but never the student's parameters, and a train-mode
    BatchNorm inside the head (e.g. an LGConv branch) cannot move the student's running statistics.
    """
    wrapper = _ForwardHead(student)
    state = {name: p.detach() for name, p in wrapper.named_parameters()}
    state.update({name: b.clone() for name, b in wrapper.named_buffers()})
    return functional_call(wrapper, state, (list(features),))


def feature_shapes(model: nn.Module, img_size: int = 64, in_chans: int = 3) -> list[Shape]:
    """(C, h, w) of each ``model.forward_features`` map, from one dry run on zeros in eval mode (mode restored)."""
    require_methods(model, "a depth model must provide forward_features(x) -> list of (B, C, h, w) maps and "
                           "forward_head(maps) -> (B, 1, H, W)")
    return [tuple(f.shape[1:]) for f in dry_run(model, model.forward_features, img_size, in_chans)]


def depth_target(y: Tensor, min_valid_depth: float = 1e-3) -> tuple[Tensor, Tensor]:
    """``(target, mask)``: ``y`` (B, H, W) or (B, 1, H, W) as (B, 1, H, W), and its validity mask (finite and
    > ``min_valid_depth``)."""
    if y.ndim == 3:
        y = y.unsqueeze(1)
    if y.ndim != 4 or y.shape[1] != 1:
        raise ValueError(f"depth targets must be (B, H, W) or (B, 1, H, W), got shape {tuple(y.shape)}")
    return y, torch.isfinite(y) & (y > min_valid_depth)


# -------------------------------------------------------------------------------------------- distillers


class DepthSupervised(Distiller):
    r"""The no-KD depth baseline: ``{"silog": L_SILog(student(x), y)}``; ``lgconv=True`` converts the student's
    encoder in place first (the "+ LGConv" row)."""

    def __init__(self, student: nn.Module, *, lgconv: bool = False, lgconv_heads: int = 4, lgconv_reduction: int = 4,
                 lgconv_init_std: float = 1e-4, variance_focus: float = 0.85, min_valid_depth: float = 1e-3,
                 in_chans: int = 3) -> None:
        super().__init__(student)
        if lgconv:
            convert_to_lgconv(getattr(student, "encoder", student), lgconv_heads, lgconv_reduction, lgconv_init_std,
                              stem_channels=in_chans)
        self.variance_focus, self.min_valid_depth = variance_focus, min_valid_depth

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        target, mask = depth_target(y, self.min_valid_depth)
        depth = self.student(x)
        return depth, {"silog": silog_loss(depth, target, mask, self.variance_focus)}


class DisDepth(Distiller):
    r"""DisDepth: ``{"silog": L_SILog(student), "ghost": ghost_weight L_SILog(ghost path), "kd": lambda_t L_kd}``.

    **Models.** Student and teacher are depth models with ``forward_features(x)`` -> list of (B, C_l, h_l, w_l)
    maps (equally many levels) and ``forward_head(maps)`` -> (B, 1, H, W) depth
    (:func:`kdlab.models.depth.depth_student` / ``depth_teacher``). The teacher is frozen (eval, ``no_grad``).
    One :class:`FeatureAcclimation` and one :class:`LossAttention` per level, sized by a dry run at
    ``img_size``. ``y`` is (B, H, W) or (B, 1, H, W) depth; pixels <= ``min_valid_depth`` or non-finite are
    ignored.

    **Switches** (the ablation rows, see :func:`disdepth_ablation`):

    * ``lgconv``: convert the student's encoder (``student.encoder``, else the whole student) **in place** with
      :func:`convert_to_lgconv` (``lgconv_heads`` = 4, ``lgconv_reduction`` = 4: §3.2's workbook values).
    * ``ghost`` (default on): FAM (and LAM) trained by the ghost task loss through :func:`ghost_head`, and
      the acclimated maps detached in $\mathcal{L}_{kd}$. ``ghost=False``: no ghost term; FAM is trained by
      $\mathcal{L}_{kd}$ itself (the "KD with FAM, no acclimation" / feature-MSE row) and only once KD is on;
      a teacher-side adapter trained this way may simply shrink towards what the student already produces.
    * ``attention`` (default on, needs ``ghost``): LAM weights; off: $A\equiv1$, plain summed MSE.
    * ``sync``: ``"step"`` (default) the ghost decoder is the current student head; ``"frozen"`` a copy taken
      at the first step after warm-up and never updated (before that, per step).

    **Schedule.** $\lambda_t$ = ``kd_weight`` once ``progress`` >= ``warmup`` (a fraction of training; with
    :func:`kdlab.train.fit` ``warmup = W / epochs`` switches KD on exactly at epoch $W$), else 0 and the ``"kd"``
    term is a constant 0. Defaults [our choice, §3.2]: ``kd_weight`` 1, ``ghost_weight`` 1, ``warmup`` 0.1
    (2 of 20 epochs), $d_a$ = ``attention_dim`` = 32.

    :meth:`predict` is the bare student; :meth:`ghost_predict`, :meth:`acclimated` and :meth:`attention_maps`
    expose the teacher side for pictures.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, *, kd_weight: float = 1.0, ghost_weight: float = 1.0,
                 warmup: float = 0.1, ghost: bool = True, attention: bool = True, lgconv: bool = True,
                 sync: str = "step", lgconv_heads: int = 4, lgconv_reduction: int = 4, lgconv_init_std: float = 1e-4,
                 attention_dim: int = 32, variance_focus: float = 0.85, min_valid_depth: float = 1e-3,
                 img_size: int = 64, in_chans: int = 3) -> None:
        super().__init__(student, teacher)
        check_loss_weights(kd_weight=kd_weight, ghost_weight=ghost_weight)
        if not _is_fraction(warmup):
            raise ValueError(f"warmup is a fraction of training in [0, 1], got {warmup!r}")
        if sync not in SYNCS:
            raise ValueError(f"unknown sync {sync!r}; expected one of {', '.join(SYNCS)}")
        if attention and not ghost:
            raise ValueError("LAM is trained by the ghost task loss: attention=True needs ghost=True "
                             "(with ghost=False use attention=False, the feature-MSE row)")
        if lgconv:
            convert_to_lgconv(getattr(student, "encoder", student), lgconv_heads, lgconv_reduction, lgconv_init_std,
                              stem_channels=in_chans)
        student_shapes = feature_shapes(student, img_size, in_chans)
        teacher_shapes = feature_shapes(teacher, img_size, in_chans)
        if len(student_shapes) != len(teacher_shapes):
            raise ValueError(f"student and teacher must give equally many feature levels, got {len(student_shapes)} "
                             f"and {len(teacher_shapes)}")
        self.student_shapes, self.teacher_shapes = student_shapes, teacher_shapes
        self.fam = nn.ModuleList(FeatureAcclimation(t[0], s) for s, t in zip(student_shapes, teacher_shapes))
        self.lam = nn.ModuleList(LossAttention(s[0], attention_dim) for s in student_shapes) if attention else None
        self.ghost_copy = copy.deepcopy(student).requires_grad_(False) if ghost and sync == "frozen" else None
        self.register_buffer("ghost_synced", torch.tensor(False))
        self.kd_weight, self.ghost_weight, self.warmup = kd_weight, ghost_weight, warmup
        self.ghost, self.attention, self.sync = ghost, attention, sync
        self.variance_focus, self.min_valid_depth = variance_focus, min_valid_depth

    # ---- schedule and teacher side

    def kd_weight_at(self, progress: float) -> float:
        """$\\lambda_t$: 0 before ``warmup``, ``kd_weight`` from then on."""
        return 0.0 if progress < self.warmup else float(self.kd_weight)

    @torch.no_grad()
    def teacher_features(self, x: Tensor) -> list[Tensor]:
        """The frozen teacher's encoder maps $F^T_l$, without autograd."""
        return list(self.teacher.forward_features(x))

    def acclimated(self, teacher_feats: Sequence[Tensor]) -> list[Tensor]:
        r"""$\tilde F^T_l = \mathrm{FAM}_l(F^T_l)$, in the student's shapes."""
        return [fam(t) for fam, t in zip(self.fam, teacher_feats)]

    def attention_of(self, acclimated: Sequence[Tensor]) -> list[Tensor] | None:
        """LAM's $A_l$ per level (``None`` when ``attention`` is off)."""
        return None if self.lam is None else [lam(f) for lam, f in zip(self.lam, acclimated)]

    def sync_ghost(self) -> None:
        """Copy the student's current weights into the frozen ghost decoder (``sync="frozen"`` only)."""
        if self.ghost_copy is None:
            raise ValueError("sync_ghost needs ghost=True and sync='frozen'")
        self.ghost_copy.load_state_dict(self.student.state_dict())
        self.ghost_synced.fill_(True)

    def ghost_decode(self, acclimated: Sequence[Tensor], attentions: Sequence[Tensor] | None) -> Tensor:
        r"""$\hat y^{(t)} = \mathrm{Head}_{\bar\theta}(\{A_l\odot\tilde F^T_l\})$ (:func:`ghost_head`)."""
        inputs = list(acclimated) if attentions is None else [a * f for a, f in zip(attentions, acclimated)]
        decoder_owner = self.ghost_copy if self.ghost_copy is not None and bool(self.ghost_synced) else self.student
        return ghost_head(decoder_owner, inputs)

    # ---- training step

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        target, mask = depth_target(y, self.min_valid_depth)
        feats = self.student.forward_features(x)
        depth = self.student.forward_head(feats)
        terms = {"silog": silog_loss(depth, target, mask, self.variance_focus)}
        weight = self.kd_weight_at(progress)
        if self.ghost_copy is not None and weight > 0 and not bool(self.ghost_synced):
            self.sync_ghost()
        if not self.ghost and weight == 0:  # nothing would train FAM yet: skip the teacher
            terms["kd"] = depth.new_zeros(())
            return depth, terms
        acclimated = self.acclimated(self.teacher_features(x))
        attentions = self.attention_of(acclimated)
        if self.ghost:
            ghost_depth = self.ghost_decode(acclimated, attentions)
            terms["ghost"] = self.ghost_weight * silog_loss(ghost_depth, target, mask, self.variance_focus)
        terms["kd"] = (weight * attentive_kd_loss(feats, acclimated, attentions, detach_teacher=self.ghost)
                       if weight > 0 else depth.new_zeros(()))
        return depth, terms

    # ---- pictures

    @torch.no_grad()
    def ghost_predict(self, x: Tensor) -> Tensor:
        """The teacher through FAM (+ LAM) and the ghost decoder: (B, 1, H, W) depth."""
        acclimated = self.acclimated(self.teacher_features(x))
        return self.ghost_decode(acclimated, self.attention_of(acclimated))

    @torch.no_grad()
    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """LAM's (B, 1, h_l, w_l) maps per level (all ones when ``attention`` is off)."""
        acclimated = self.acclimated(self.teacher_features(x))
        maps = self.attention_of(acclimated)
        return [torch.ones_like(f[:, :1]) for f in acclimated] if maps is None else maps

    @torch.no_grad()
    def acclimated_features(self, x: Tensor) -> list[Tensor]:
        r"""$\tilde F^T_l$ for ``x`` (e.g. for CKA against the student's maps)."""
        return self.acclimated(self.teacher_features(x))


def disdepth_ablation(name: str, student: nn.Module, teacher: nn.Module | None = None, **kwargs) -> Distiller:
    r"""The Distiller of one cumulative ablation row (``student`` is converted in place where LGConv is on):

    ============ ===========================================================================
    baseline      :class:`DepthSupervised`, no LGConv, no KD
    lgconv        + LGConv
    feature_mse   + KD: FAM trained by the KD loss, no ghost decoder, no LAM (plain MSE)
    ghost         FAM acclimated through the ghost decoder, plain MSE KD ($A\equiv1$)
    disdepth      + LAM: the full method
    ============ ===========================================================================

    ``kwargs`` go to the Distiller (e.g. ``kd_weight``, ``warmup``, ``img_size``).
    """
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; expected one of {', '.join(ABLATIONS)}")
    if name in ("baseline", "lgconv"):
        keep = {k: v for k, v in kwargs.items() if k in ("lgconv_heads", "lgconv_reduction", "lgconv_init_std",
                                                        "variance_focus", "min_valid_depth", "in_chans")}
        return DepthSupervised(student, lgconv=name == "lgconv", **keep)
    if teacher is None:
        raise ValueError(f"ablation {name!r} distils: pass a teacher")
    switches = {"feature_mse": dict(ghost=False, attention=False), "ghost": dict(ghost=True, attention=False),
                "disdepth": dict(ghost=True, attention=True)}[name]
    return DisDepth(student, teacher, lgconv=True, **switches, **kwargs)


def warmup_fraction(warmup_epochs: float, epochs: int) -> float:
    """``warmup`` for :class:`DisDepth` from a warm-up in epochs: ``warmup_epochs / epochs``."""
    if not (isinstance(epochs, int) and epochs >= 1 and 0 <= warmup_epochs <= epochs):
        raise ValueError(f"need epochs >= 1 and 0 <= warmup_epochs <= epochs, got {warmup_epochs!r} and {epochs!r}")
    return warmup_epochs / epochs


__all__ = [
    "ABLATIONS", "DepthSupervised", "DisDepth", "FeatureAcclimation", "LocalGlobalConv", "LossAttention",
    "attentive_kd_loss", "convert_to_lgconv", "depth_target", "disdepth_ablation", "feature_shapes", "ghost_head",
    "lgconv_layers", "lgconv_problem", "silog_loss", "warmup_fraction",
]
