r"""DisDepth: cross-architecture distillation for efficient monocular depth estimation, Transformer teacher ->
CNN student (Zheng, Huang, Li, Wang, arXiv:2404.16386, 2024; no official code). Spec: ``papers/disdepth.md``.

The task loss $\mathcal{L}_{SILog}$ (BTS's) is in :mod:`.depth_loss`, the student's LGConv (§2.2) in :mod:`.lgconv`;
here are the teacher side and the distiller.

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
\lambda\,\mathcal{L}_{kd}$, the terms ``"silog"``, ``"ghost"`` and ``"attentive_kd"`` ($\lambda$ =
``attentive_kd_weight``), with $\lambda = 0$ during the first ``warmup_fraction`` of training (§2.3).
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

from ..checks import check_choice, check_fraction, check_int, check_weights
from ..models import dry_run, require_methods
from .base import Distiller
from .common import teacher_pass, teacher_token
from .depth_loss import depth_target, silog_loss
from .lgconv import convert_to_lgconv
from .supervised import DepthSupervised

SYNCS = ("step", "frozen")  # ghost decoder = the current student decoder (default) or a copy frozen after warm-up
ABLATIONS = ("baseline", "lgconv", "feature_mse", "ghost", "lam", "disdepth")
Shape = tuple[int, int, int]


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
        check_int("channels", channels, low=1)
        check_int("dim", dim, low=1)
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


# -------------------------------------------------------------------------------------------- distillers


class DisDepth(Distiller):
    r"""DisDepth: ``{"silog": L_SILog(student), "ghost": ghost_weight L_SILog(ghost path), "attentive_kd": lambda_t
    L_kd}``.

    **Models.** Student and teacher are depth models with ``forward_features(x)`` -> list of (B, C_l, h_l, w_l)
    maps (equally many levels) and ``forward_head(maps)`` -> (B, 1, H, W) depth
    (:func:`kdlab.models.depth_student` / ``depth_teacher``). The teacher is frozen (eval, ``no_grad``).
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

    **Schedule.** $\lambda_t$ = ``attentive_kd_weight`` once ``progress`` >= ``warmup_fraction`` (a fraction of
    training; a warm-up of $W$ epochs is ``epoch_progress(W, epochs)`` = ``W / epochs``
    (:func:`kdlab.methods.common.epoch_progress`), which switches KD on exactly at epoch $W$ under
    :func:`kdlab.train.fit`), else 0 and the ``"attentive_kd"`` term is a constant 0. Defaults [our choice, §3.2]:
    ``attentive_kd_weight`` 1, ``ghost_weight`` 1, ``warmup_fraction`` 0.1
    (2 of 20 epochs), $d_a$ = ``attention_dim`` = 32.

    :meth:`predict` is the bare student; :meth:`ghost_predict`, :meth:`acclimated` and :meth:`attention_maps`
    expose the teacher side for pictures.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, *, attentive_kd_weight: float = 1.0,
                 ghost_weight: float = 1.0, warmup_fraction: float = 0.1, ghost: bool = True, attention: bool = True,
                 lgconv: bool = True, sync: str = "step", lgconv_heads: int = 4, lgconv_reduction: int = 4,
                 lgconv_init_std: float = 1e-4, attention_dim: int = 32, variance_focus: float = 0.85, min_valid_depth: float = 1e-3,
                 img_size: int = 64, in_chans: int = 3) -> None:
        super().__init__(student, teacher)
        check_weights(attentive_kd_weight=attentive_kd_weight, ghost_weight=ghost_weight)
        check_fraction("warmup_fraction", warmup_fraction)
        check_choice("sync", sync, SYNCS)
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
        self.attentive_kd_weight, self.ghost_weight = attentive_kd_weight, ghost_weight
        self.warmup_fraction = warmup_fraction
        self.ghost, self.attention, self.sync = ghost, attention, sync
        self.variance_focus, self.min_valid_depth = variance_focus, min_valid_depth

    # ---- schedule and teacher side

    def attentive_kd_weight_at(self, progress: float) -> float:
        """$\\lambda_t$: 0 before ``warmup_fraction``, ``attentive_kd_weight`` from then on."""
        return 0.0 if progress < self.warmup_fraction else float(self.attentive_kd_weight)

    @teacher_pass
    def teacher_forward(self, x: Tensor) -> list[Tensor]:
        """The frozen teacher's encoder maps $F^T_l$, without autograd."""
        return list(self.teacher.forward_features(x))

    def teacher_cache_key(self) -> tuple:
        return (teacher_token(self.teacher),)

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
        weight = self.attentive_kd_weight_at(progress)
        if self.ghost_copy is not None and weight > 0 and not bool(self.ghost_synced):
            self.sync_ghost()
        if not self.ghost and weight == 0:  # nothing would train FAM yet: skip the teacher
            terms["attentive_kd"] = depth.new_zeros(())
            return depth, terms
        acclimated = self.acclimated(self.teacher_forward(x))
        attentions = self.attention_of(acclimated)
        if self.ghost:
            ghost_depth = self.ghost_decode(acclimated, attentions)
            terms["ghost"] = self.ghost_weight * silog_loss(ghost_depth, target, mask, self.variance_focus)
        terms["attentive_kd"] = (weight * attentive_kd_loss(feats, acclimated, attentions, detach_teacher=self.ghost)
                                 if weight > 0 else depth.new_zeros(()))
        return depth, terms

    # ---- pictures

    @torch.no_grad()
    def ghost_predict(self, x: Tensor) -> Tensor:
        """The teacher through FAM (+ LAM) and the ghost decoder: (B, 1, H, W) depth."""
        acclimated = self.acclimated(self.teacher_forward(x))
        return self.ghost_decode(acclimated, self.attention_of(acclimated))

    @torch.no_grad()
    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """LAM's (B, 1, h_l, w_l) maps per level (all ones when ``attention`` is off)."""
        acclimated = self.acclimated(self.teacher_forward(x))
        maps = self.attention_of(acclimated)
        return [torch.ones_like(f[:, :1]) for f in acclimated] if maps is None else maps

    @torch.no_grad()
    def acclimated_features(self, x: Tensor) -> list[Tensor]:
        r"""$\tilde F^T_l$ for ``x`` (e.g. for CKA against the student's maps)."""
        return self.acclimated(self.teacher_forward(x))


def disdepth_ablation(name: str, student: nn.Module, teacher: nn.Module | None = None, **kwargs) -> Distiller:
    r"""The Distiller of one component row: each row adds **one** component to the no-KD student, so its paired
    difference to ``baseline`` (or to the row it extends) measures that component alone (``student`` is converted
    in place where LGConv is on):

    ============ ===========================================================================
    baseline      :class:`DepthSupervised`: the plain CNN, SILog only
    lgconv        + LGConv in the encoder, no KD
    feature_mse   + KD on FAM's output, FAM trained by the KD loss itself (no ghost decoder, no LAM)
    ghost         + KD on acclimated features: FAM trained through the ghost decoder, uniform weights ($A\equiv1$)
    lam           ``ghost`` + LAM's pixel weights $A_l$ (compare with ``ghost``: attentive vs uniform weighting)
    disdepth      the full method: LGConv + ghost decoder + LAM
    ============ ===========================================================================

    ``kwargs`` go to the Distiller (e.g. ``attentive_kd_weight``, ``warmup_fraction``, ``img_size``).
    """
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; expected one of {', '.join(ABLATIONS)}")
    if name in ("baseline", "lgconv"):
        keep = {k: v for k, v in kwargs.items() if k in ("lgconv_heads", "lgconv_reduction", "lgconv_init_std",
                                                        "variance_focus", "min_valid_depth", "in_chans")}
        return DepthSupervised(student, lgconv=name == "lgconv", **keep)
    if teacher is None:
        raise ValueError(f"ablation {name!r} distils: pass a teacher")
    switches = {"feature_mse": dict(ghost=False, attention=False, lgconv=False),
                "ghost": dict(ghost=True, attention=False, lgconv=False),
                "lam": dict(ghost=True, attention=True, lgconv=False),
                "disdepth": dict(ghost=True, attention=True, lgconv=True)}[name]
    return DisDepth(student, teacher, **switches, **kwargs)
