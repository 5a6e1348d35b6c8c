r"""SW-TaT: knowledge distillation with a shift-window target-aware transformer (Feng & Ong, Applied
Intelligence 2025), built on TaT, the target-aware transformer (Lin et al., CVPR 2022).

**TaT** distils "one-to-all": every teacher location is matched by an attention-weighted mix of *all*
student locations. With a teacher map $F^T$ (B, C, H, W), a student map $F^S$ (B, C', H, W), their
flattened rows $f^t, f^s$ ($N=HW$ tokens) and embeddings $\gamma$ (student), $\theta$ (teacher),
$\phi$ (value), the official code's student-query form is

$$f^{s'} = \mathrm{softmax}_j\big(\gamma(f^s)\,\theta(f^t)^\top\big)\,\phi(f^s),\qquad
  \mathcal{L}_{TaT} = \frac{1}{BCHW}\big\lVert f^{s'} - f^t\big\rVert_2^2,$$

with the softmax over the teacher (key) axis, no $1/\sqrt d$ scaling, one head, and the **raw** teacher
map as the target. The paper's prose makes the teacher the query instead,
$f^{s'}_i = \sum_j \mathrm{softmax}_j(\langle\theta(f^t_i), \gamma(f^s_j)\rangle)\,\phi(f^s_j)$
(``query_side="teacher"``). Global attention costs $2(HW)^2C$ MACs and $(HW)^2$ logits per image.

**Windowed TaT** $\mathcal{L}^W_s$ [our choice, spec §2.4]: pad $Q, K, V$ bottom/right to multiples of the
window $M$, roll them by $(-s, -s)$, attend inside each of the $n_W = H_pW_p/M^2$ windows,

$$O^{(w)} = \mathrm{softmax}_j\big(Q^{(w)}K^{(w)\top}\ \text{with disallowed } (i, j)\text{ replaced by }
  \min_{\text{dtype}}\big)\,V^{(w)},$$

undo the roll and the padding, and take the MSE to $F^T$ over the real positions. Allowed pairs follow
Swin's shifted-window mask: the $3\times3$ band labels $3a+b$ of the padded, rolled canvas, with padded
positions given a label of their own, so a real token never attends to a padded one or to content that the
cyclic roll wrapped in from the opposite border. Cost: $2H_pW_pM^2C$ MACs and $H_pW_pM^2$ logits.

**SW-TaT** stacks a regular and a shifted pass ($s=\lfloor M/2\rfloor$), like Swin's W-MSA / SW-MSA blocks.
Default ``stacking="sequential"`` [our choice]: the shifted pass reconfigures the regular pass's output with
its own embeddings $\gamma_2, \phi_2$ (and $\theta_2$),

$$O_1 = \mathrm{WTaT}_0\big(\gamma(F^S), \theta(F^T), \phi(F^S)\big),\quad
  O_2 = \mathrm{WTaT}_{s}\big(\gamma_2(O_1), \theta_2(F^T), \phi_2(O_1)\big),\quad
  \mathcal{L}^{SW}_{TaT} = \mathrm{MSE}(O_2, F^T),$$

so each output location draws on two overlapping windows. ``stacking="parallel"``:
$\mathcal{L}^{SW}_{TaT} = \frac12(\mathcal{L}^W_0 + \mathcal{L}^W_s)$ with shared embeddings.

**Patch-merging distillation** [our choice, spec §2.4]: a parameter-free $2\times2$ space-to-depth $U$ on
the teacher, $(C, H, W)\to(4C, H/2, W/2)$ per level, and a merger $m_\ell$ on the student (the same
space-to-depth, or Swin's learnable 2x2 concat -> LayerNorm -> Linear), then TaT at every level,

$$\mathcal{L}^{PM}_{TaT} = \frac1L\sum_{\ell=1}^{L}\mathcal{L}_{TaT}\big(S_\ell, U^\ell(F^T)\big),\qquad
  S_\ell = m_\ell(S_{\ell-1}),\ S_0 = F^S,$$

global at each level while the merged map has at most 256 tokens, windowed (shift 0) above. No learnable
merger on the teacher side: trained by this loss it could collapse both sides to constants.

**TaT's own answer to large maps** (the segmentation baseline): patch groups, where the map is cut into
$n\times m$ patches of $h\times w$ and $p_g$ consecutive patches share one attention whose logits are summed
over the group, $w_{ab} = \mathrm{softmax}_b\sum_{P\in G}\langle q^{(P)}_a, k^{(P)}_b\rangle$,
$o^{(P)}_a = \sum_b w_{ab}v^{(P)}_b$; plus anchor points, global TaT on average-pooled $Q, K, V, F^T$.

**Objectives.** Classification: $\mathcal{L} = \alpha\,\mathrm{CE} + \beta\,\mathrm{KL}_T + \varepsilon\,
\mathcal{L}^{(SW)}_{TaT}$ on one (student stage, teacher stage) pair. Segmentation:
$\mathcal{L}_{seg} = \alpha\,\mathrm{CE}_{pixel} + \delta\,\mathcal{L}^{SW}_{TaT} + \zeta\,\mathcal{L}^{PM}_{TaT}$
(SW-TaT) or $\alpha\,\mathrm{CE}_{pixel} + \delta\,\mathcal{L}^{P}_{TaT} + \zeta\,\mathcal{L}^{A}_{TaT}$ (TaT).
Each weight is named after the loss term it weighs: $\alpha$ = ``ce_weight``, $\beta$ = ``kd_weight``,
$\varepsilon$ = ``tat_weight`` (TaT) / ``sw_tat_weight`` (SW-TaT), $\delta$ = ``sw_tat_weight`` / ``patch_tat_weight``,
$\zeta$ = ``pm_tat_weight`` / ``anchor_tat_weight``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import PatchMerging
from torch import Tensor, nn

from ..checks import check_choice, check_int, check_pair, check_positive, check_weights, is_int
from ..models import (dry_run, logits_and_stage_features, map_to_tokens, require_methods, stage_shapes,
                      tokens_to_map)
from .base import Distiller
from .common import is_stage, teacher_pass, teacher_token
from .fitnet import HintRegressor
from .kd import kd_loss
from .ofa import Permute

QUERY_SIDES = ("student", "teacher")  # "student": the official code's direction (default); "teacher": the prose
STACKINGS = ("sequential", "parallel", "union")
REDUCTIONS = ("mean", "sum")  # "sum": TaT-seg's per-image losses summed over the batch, B times the mean
MERGES = ("unshuffle", "swin")
PAD_LABEL = 9  # the band labels are 0..8; padded positions form a region of their own
Shape = tuple[int, int, int]
Pair = tuple[int, int]


# ------------------------------------------------------------------------------------------- checks


def _window_and_shift(window: int | Sequence[int], shift: int | Sequence[int]) -> tuple[Pair, Pair]:
    r"""Validated per-axis (window, shift) with $0\le s < M$."""
    window, shift = check_pair("window", window), check_pair("shift", shift, low=0)
    if any(s >= m for s, m in zip(shift, window)):
        raise ValueError(f"shift must be smaller than the window on each axis, got shift {shift} for window {window}")
    return window, shift


def _shift_or_half(window: int | Sequence[int], shift: int | Sequence[int] | None) -> tuple[Pair, Pair]:
    r"""Validated (window, shift); ``shift=None`` means half the window, $\lfloor M/2\rfloor$ per axis."""
    window = check_pair("window", window)
    return _window_and_shift(window, tuple(m // 2 for m in window) if shift is None else shift)


def _check_maps(student_feat: Tensor, teacher_feat: Tensor) -> None:
    if student_feat.ndim != 4 or teacher_feat.ndim != 4 or student_feat.shape[0] != teacher_feat.shape[0]:
        raise ValueError("expected (B, C, H, W) student and teacher maps with the same batch size, got shapes "
                         f"{tuple(student_feat.shape)} and {tuple(teacher_feat.shape)}")


# --------------------------------------------------------------------------------------- embeddings


def embed_maps(student_feat: Tensor, teacher_feat: Tensor, query: nn.Module, key: nn.Module, value: nn.Module,
               query_side: str = "student") -> tuple[Tensor, Tensor, Tensor]:
    r"""$(Q, K, V)$ maps: $(\gamma(F^S), \theta(F^T), \phi(F^S))$ for ``query_side="student"``,
    $(\theta(F^T), \gamma(F^S), \phi(F^S))$ for ``"teacher"``.

    ``query`` embeds the query side's map and ``key`` the other side's; ``value`` always embeds the student
    map (the output reconfigures the student). The embeddings must bring $Q, K$ to one (B, d, H, W) shape and
    $V$ to the teacher map's (B, C, H, W) shape (they may resize, like :class:`TaTEmbedding`'s).
    """
    check_choice("query_side", query_side, QUERY_SIDES)
    _check_maps(student_feat, teacher_feat)
    query_map, key_map = (student_feat, teacher_feat) if query_side == "student" else (teacher_feat, student_feat)
    q, k, v = query(query_map), key(key_map), value(student_feat)
    if q.shape != k.shape or v.shape != teacher_feat.shape or q.shape[2:] != v.shape[2:]:
        raise ValueError(
            "the embeddings must give query and key of one (B, d, H, W) shape and a value of the teacher map's "
            f"shape {tuple(teacher_feat.shape)}, got query {tuple(q.shape)}, key {tuple(k.shape)}, "
            f"value {tuple(v.shape)}"
        )
    return q, k, v


class TaTEmbedding(nn.Module):
    r"""TaT's embeddings $\gamma$ (student), $\theta$ (teacher) and $\phi$ (value), arranged as
    ``query``, ``key``, ``value`` for ``query_side``.

    $\gamma$ and $\phi$ are :class:`~kdlab.methods.fitnet.HintRegressor`\ s: resize the student map to the
    teacher's size (when they differ), then Conv1x1 $C'\to C$ (no bias) + BN, no ReLU; kdlab's default for
    both the ImageNet (official: Conv3x3) and segmentation settings [our choice]. $\theta$ is the identity
    (official ImageNet code), or with ``teacher_embedding=True`` a trainable Conv1x1 $C\to C$ + BN (official
    segmentation code). ``student_shape`` and ``teacher_shape`` are (C, H, W).
    """

    def __init__(self, student_shape: Shape, teacher_shape: Shape, query_side: str = "student",
                 teacher_embedding: bool = False) -> None:
        super().__init__()
        check_choice("query_side", query_side, QUERY_SIDES)
        self.query_side = query_side
        student = HintRegressor(student_shape, teacher_shape)
        teacher = HintRegressor(teacher_shape, teacher_shape) if teacher_embedding else nn.Identity()
        self.query, self.key = (student, teacher) if query_side == "student" else (teacher, student)
        self.value = HintRegressor(student_shape, teacher_shape)

    @property
    def qkv(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """``(query, key, value)``, in the order the loss functions take them."""
        return self.query, self.key, self.value

    def forward(self, student_feat: Tensor, teacher_feat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The embedded $(Q, K, V)$ maps (see :func:`embed_maps`)."""
        return embed_maps(student_feat, teacher_feat, *self.qkv, self.query_side)


# ------------------------------------------------------------------------------ windows and the mask


def window_partition(x: Tensor, window: int | Sequence[int]) -> Tensor:
    r"""Swin's partition: (B, H, W, C) -> (B n_W, M_h M_w, C), channels last, H and W multiples of the window.

    Window $w = b\,n_W + r\,(W/M_w) + c$ and token $t = yM_w + x$ inside it, both row-major.
    """
    wh, ww = check_pair("window", window)
    if x.ndim != 4 or x.shape[1] % wh or x.shape[2] % ww:
        raise ValueError(f"expected a (B, H, W, C) tensor with H, W multiples of the window ({wh}, {ww}), "
                         f"got shape {tuple(x.shape)}; pad first (to_windows does)")
    b, h, w, c = x.shape
    return x.view(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, wh * ww, c)


def window_reverse(windows: Tensor, window: int | Sequence[int], height: int, width: int) -> Tensor:
    """The exact inverse of :func:`window_partition`: (B n_W, M_h M_w, C) -> (B, H, W, C)."""
    wh, ww = check_pair("window", window)
    if (windows.ndim != 3 or height % wh or width % ww or windows.shape[1] != wh * ww
            or windows.shape[0] % ((height // wh) * (width // ww))):
        raise ValueError(f"expected (B * n_W, {wh * ww}, C) windows of a {height}x{width} map (multiples of the "
                         f"window ({wh}, {ww})), got shape {tuple(windows.shape)}")
    c = windows.shape[2]
    x = windows.view(-1, height // wh, width // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, height, width, c)


def effective_window(height: int, width: int, window: int | Sequence[int],
                     shift: int | Sequence[int] = 0) -> tuple[Pair, Pair]:
    r"""Per axis, the window and shift actually used on an $H\times W$ map: an axis no longer than the window
    gets window = its size and shift 0 (timm's per-axis rule; Swin's reference does the same on square maps),
    because a shift there would only split the map."""
    (wh, sh), (ww, sw) = ((n, 0) if n <= m else (m, s)
                          for n, m, s in zip((height, width), *_window_and_shift(window, shift)))
    return (wh, ww), (sh, sw)


def _padded(size: int, window: int) -> int:
    return math.ceil(size / window) * window


def _bands(size: int, window: int, shift: int, device: torch.device | None) -> Tensor:
    """Swin's band of every position of a padded, rolled axis: 0 on [0, S-M), 1 on [S-M, S-s), 2 on [S-s, S)."""
    pos = torch.arange(size, device=device)
    return (pos >= size - window).long() + (pos >= size - shift).long()


def shifted_window_mask(height: int, width: int, window: int | Sequence[int], shift: int | Sequence[int],
                        device: torch.device | str | None = None) -> Tensor:
    r"""(n_W, N, N) boolean mask, True where query $i$ may attend to key $j$ of the same window.

    Swin semantics for any $H, W$ (pad, then roll; the reference / torchvision order): label the padded canvas
    $H_p\times W_p$, in rolled coordinates, with the $3\times3$ band labels $3a+b$ (row bands $[0,H_p-M)$,
    $[H_p-M,H_p-s)$, $[H_p-s,H_p)$, likewise columns); give the padded positions, rolled like the features,
    a label of their own; partition like the features; allow $(i, j)$ iff the labels match. Every row
    allows at least its own position. With ``shift=0`` and divisible sizes nothing is masked.
    """
    (wh, ww), (sh, sw) = _window_and_shift(window, shift)
    check_int("height", height, low=1)
    check_int("width", width, low=1)
    hp, wp = _padded(height, wh), _padded(width, ww)
    labels = 3 * _bands(hp, wh, sh, device)[:, None] + _bands(wp, ww, sw, device)[None, :]
    pad = (torch.arange(hp, device=device) >= height)[:, None] | (torch.arange(wp, device=device) >= width)[None, :]
    labels = labels.masked_fill(torch.roll(pad, (-sh, -sw), (0, 1)), PAD_LABEL)
    ids = window_partition(labels[None, :, :, None], (wh, ww))[..., 0]
    return ids[:, :, None] == ids[:, None, :]


def window_layout(height: int, width: int, window: int | Sequence[int], shift: int | Sequence[int] = 0,
                  device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    r"""Where every position of an $H\times W$ map goes, in the map's own (unrolled) coordinates: its window
    index (H, W) in :func:`to_windows` order, and its Swin region label (H, W) (:func:`shifted_window_mask`).

    Positions $i, j$ attend to each other iff both entries match; a shifted window whose labels differ holds
    pieces of the map that the cyclic roll brought together from opposite borders. For pictures and checks.
    """
    (wh, ww), (sh, sw) = _window_and_shift(window, shift)
    check_int("height", height, low=1)
    check_int("width", width, low=1)
    hp, wp = _padded(height, wh), _padded(width, ww)
    ids = torch.arange((hp // wh) * (wp // ww), device=device, dtype=torch.float32)
    windows = ids[None, :, None, None].expand(1, -1, wh * ww, 1)
    window_id = from_windows(windows, (wh, ww), (sh, sw), height, width)[0, 0].long()
    labels = 3 * _bands(hp, wh, sh, device)[:, None] + _bands(wp, ww, sw, device)[None, :]
    region = torch.roll(labels, (sh, sw), (0, 1))[:height, :width]
    return window_id, region


def additive_mask(allowed: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""The additive form of a boolean mask, for code that adds masks to logits (timm's ``WindowAttention``):
    0 where allowed, ``torch.finfo(dtype).min`` elsewhere (never Swin's $-100$, which unscaled TaT logits
    overcome). kdlab's own attention replaces masked logits instead (:func:`attention_weights`)."""
    zeros = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return zeros.masked_fill(~allowed, torch.finfo(dtype).min)


def to_windows(x: Tensor, window: int | Sequence[int], shift: int | Sequence[int] = 0) -> Tensor:
    """(B, C, H, W) map -> (B, n_W, M_h M_w, C) window tokens: zero-pad bottom/right to multiples of the window,
    roll by (-shift, -shift) (content moves up/left), partition (:func:`window_partition`)."""
    (wh, ww), (sh, sw) = _window_and_shift(window, shift)
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) map, got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    x = F.pad(x.permute(0, 2, 3, 1), (0, 0, 0, _padded(w, ww) - w, 0, _padded(h, wh) - h))
    return window_partition(torch.roll(x, (-sh, -sw), (1, 2)), (wh, ww)).unflatten(0, (b, -1))


def from_windows(windows: Tensor, window: int | Sequence[int], shift: int | Sequence[int], height: int,
                 width: int) -> Tensor:
    """The inverse of :func:`to_windows`: (B, n_W, N, C) -> (B, C, H, W) (reverse, roll back by +shift, crop)."""
    (wh, ww), (sh, sw) = _window_and_shift(window, shift)
    if windows.ndim != 4:
        raise ValueError(f"expected (B, n_W, N, C) windows, got shape {tuple(windows.shape)}")
    x = window_reverse(windows.flatten(0, 1), (wh, ww), _padded(height, wh), _padded(width, ww))
    return torch.roll(x, (sh, sw), (1, 2))[:, :height, :width].permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------- attention


def attention_logits(query: Tensor, key: Tensor, allowed: Tensor | None = None, scale: bool = False) -> Tensor:
    r"""$q_i\cdot k_j\,[/\sqrt d]$: (..., N, d), (..., M, d) -> (..., N, M), disallowed pairs (``allowed`` False,
    broadcast to (..., N, M)) replaced by ``torch.finfo.min`` (masked_fill, not an added $-\infty$), so they get
    exactly zero weight and no row can turn into NaN."""
    logits = query @ key.transpose(-2, -1)
    if scale:
        logits = logits * query.shape[-1] ** -0.5
    if allowed is not None:
        logits = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
    return logits


def attention_weights(query: Tensor, key: Tensor, allowed: Tensor | None = None, scale: bool = False) -> Tensor:
    r"""$A = \mathrm{softmax}_j(q_i\cdot k_j\,[/\sqrt d])$ over the key axis: (..., N, d), (..., M, d) -> (..., N, M),
    with :func:`attention_logits`' masking."""
    return torch.softmax(attention_logits(query, key, allowed, scale), dim=-1)


def position_attention(query: Tensor, key: Tensor, position: Sequence[int], window: int | Sequence[int] | None = None,
                       shift: int | Sequence[int] = 0, scale: bool = False) -> Tensor:
    r"""The attention weights of one query position $(r, c)$ over every key position: (B, d, H, W) query and key
    maps -> (B, H, W), summing to 1 per image. ``window=None``: global TaT; else the weights are confined to the
    position's (shifted) window and Swin region (:func:`window_layout`, with :func:`effective_window`), zero
    elsewhere, as in :func:`window_attention`. For pictures of what one location looks at."""
    if query.ndim != 4 or key.shape != query.shape:
        raise ValueError(f"expected (B, d, H, W) query and key maps of one shape, got {tuple(query.shape)} and "
                         f"{tuple(key.shape)}")
    b, _, h, w = query.shape
    r, c = (int(v) for v in position)
    if not (0 <= r < h and 0 <= c < w):
        raise ValueError(f"position {tuple(position)} is outside the {h}x{w} map")
    allowed = None
    if window is not None:
        window_id, region = window_layout(h, w, *effective_window(h, w, window, shift), device=query.device)
        allowed = ((window_id == window_id[r, c]) & (region == region[r, c])).flatten()[None, None, :]
    weights = attention_weights(query[:, :, r, c][:, None, :], map_to_tokens(key), allowed, scale)
    return weights[:, 0].view(b, h, w)


def global_attention(query: Tensor, key: Tensor, value: Tensor, scale: bool = False) -> Tensor:
    r"""$O = \mathrm{softmax}_j(QK^\top)V$ over all $HW$ positions: (B, d, H, W) x2, (B, C, H, W) -> (B, C, H, W)."""
    attn = attention_weights(map_to_tokens(query), map_to_tokens(key), scale=scale)
    return tokens_to_map(attn @ map_to_tokens(value), tuple(value.shape[2:]))


def window_attention(query: Tensor, key: Tensor, value: Tensor, window: int | Sequence[int],
                     shift: int | Sequence[int] = 0, scale: bool = False) -> Tensor:
    r"""$O^{(w)} = \mathrm{softmax}_j(Q^{(w)}K^{(w)\top}$, masked$)\,V^{(w)}$ in every (shifted) window, back in
    the original (B, C, H, W) coordinates.

    Window and shift per :func:`effective_window`; pad -> roll -> partition (:func:`to_windows`); the
    :func:`shifted_window_mask` (also used without a shift when the map was padded, so padded keys never
    receive weight); reverse -> roll back -> crop (:func:`from_windows`).
    """
    height, width = value.shape[2:]
    window, shift = effective_window(height, width, window, shift)
    padded = height % window[0] or width % window[1]
    allowed = shifted_window_mask(height, width, window, shift, query.device) if padded or any(shift) else None
    q, k, v = (to_windows(m, window, shift) for m in (query, key, value))
    return from_windows(attention_weights(q, k, allowed, scale) @ v, window, shift, height, width)


def _window_pass(query: Tensor, key: Tensor, value: Tensor, window: Pair, shift: Pair, allowed: Tensor,
                 scale: bool) -> tuple[Tensor, Tensor]:
    """One masked window pass: its output (B, C, H, W) and its log-sum-exp of the logits (B, 1, H, W)."""
    height, width = value.shape[2:]
    q, k, v = (to_windows(m, window, shift) for m in (query, key, value))
    logits = attention_logits(q, k, allowed, scale)
    out = torch.softmax(logits, dim=-1) @ v
    return (from_windows(out, window, shift, height, width),
            from_windows(logits.logsumexp(-1, keepdim=True), window, shift, height, width))


def union_window_attention(query: Tensor, key: Tensor, value: Tensor, window: int | Sequence[int],
                           shift: int | Sequence[int], scale: bool = False) -> Tensor:
    r"""One softmax over the union of a position's regular window $R(i)$ and its shifted window $S(i)$ (its Swin
    region): $O_i = \sum_{j\in R(i)\cup S(i)}\mathrm{softmax}_j(q_i\cdot k_j)\,v_j$, in (B, C, H, W) coordinates.

    [our choice, the ``stacking="union"`` reading of SW-TaT] Two window passes merged by their log-sum-exp (flash
    attention's merge): the regular pass over $R(i)$, the shifted pass over $S(i)\setminus R(i)$ (keys the regular
    window already holds are masked there, so none counts twice), $O = (e^{\ell_R}O_R + e^{\ell_S}O_S) /
    (e^{\ell_R} + e^{\ell_S})$. A position whose source lies across its regular window's border but inside its
    shifted window can still fetch it, which a second pass stacked on the first pass's output cannot (notebook
    03 §3.3). Cost: two windowed passes. Window and shift per :func:`effective_window`; shift 0 gives
    :func:`window_attention`.
    """
    height, width = value.shape[2:]
    window, shift = effective_window(height, width, window, shift)
    regular = _window_pass(query, key, value, window, (0, 0),
                           shifted_window_mask(height, width, window, 0, query.device), scale)
    if not any(shift):
        return regular[0]
    regular_id = window_layout(height, width, window, 0, query.device)[0].float()
    ids = to_windows(regular_id[None, None], window, shift)[0, ..., 0]  # each slot's regular window
    allowed = shifted_window_mask(height, width, window, shift, query.device) & (ids[:, :, None] != ids[:, None, :])
    (out_r, lse_r), (out_s, lse_s) = regular, _window_pass(query, key, value, window, shift, allowed, scale)
    top = torch.maximum(lse_r, lse_s)
    w_r, w_s = torch.exp(lse_r - top), torch.exp(lse_s - top)
    return (w_r * out_r + w_s * out_s) / (w_r + w_s)


def tat_cost(height: int, width: int, channels: int, window: int | Sequence[int] | None = None) -> dict[str, int]:
    r"""Per image and pass, ignoring the embeddings: global $2(HW)^2C$ MACs and $(HW)^2$ logits; windowed
    $2H_pW_pM^2C$ MACs and $H_pW_pM^2$ logits (with :func:`effective_window`'s window)."""
    if window is None:
        logits = (height * width) ** 2
    else:
        (wh, ww), _ = effective_window(height, width, window)
        logits = _padded(height, wh) * _padded(width, ww) * wh * ww
    return {"macs": 2 * logits * channels, "logits": logits}


# ------------------------------------------------------------------------------------------- losses


def tat_loss(student_feat: Tensor, teacher_feat: Tensor, query: nn.Module, key: nn.Module, value: nn.Module,
             query_side: str = "student", scale: bool = False) -> Tensor:
    r"""$\mathcal{L}_{TaT} = \frac{1}{BCHW}\lVert\mathrm{softmax}(QK^\top)V - F^T\rVert_2^2$, global attention.

    $(Q, K, V)$ from :func:`embed_maps`; the target is the raw teacher map. ``scale`` divides the logits by
    $\sqrt d$ (official TaT does not).
    """
    q, k, v = embed_maps(student_feat, teacher_feat, query, key, value, query_side)
    return F.mse_loss(global_attention(q, k, v, scale), teacher_feat)


def window_tat_loss(student_feat: Tensor, teacher_feat: Tensor, query: nn.Module, key: nn.Module, value: nn.Module,
                    window: int | Sequence[int], shift: int | Sequence[int] = 0, query_side: str = "student",
                    scale: bool = False) -> Tensor:
    r"""$\mathcal{L}^W_s$: TaT inside (shifted) windows (:func:`window_attention`), MSE to $F^T$ over the real
    positions (padding is cropped before the loss and masked as keys). With a window covering the map and
    ``shift=0`` it is :func:`tat_loss`."""
    q, k, v = embed_maps(student_feat, teacher_feat, query, key, value, query_side)
    return F.mse_loss(window_attention(q, k, v, window, shift, scale), teacher_feat)


def swtat_rebuild(student_feat: Tensor, teacher_feat: Tensor, query: nn.Module, key: nn.Module, value: nn.Module,
                  window: int | Sequence[int], shift: int | Sequence[int] | None = None, *,
                  second: Sequence[nn.Module] | None = None, stacking: str = "sequential",
                  query_side: str = "student", scale: bool = False) -> tuple[Tensor, ...]:
    r"""The student map rebuilt as the teacher's by SW-TaT's two window partitions (``shift=None``:
    $\lfloor M/2\rfloor$; ``shift=0``: the same windows twice, the no-shift ablation), as a tuple of maps.

    ``"sequential"`` (default): $O_1 = \mathrm{WTaT}_0(Q, K, V)$, then the shifted pass on $O_1$ with the
    ``second`` (query, key, value) embeddings: ``(O_2,)``. ``"parallel"``: ``(O_0, O_s)``, both passes on the
    shared embeddings. ``"union"``: ``(O,)`` from one softmax over each position's regular and shifted window
    (:func:`union_window_attention`). Only ``"sequential"`` takes ``second``.
    """
    check_choice("stacking", stacking, STACKINGS)
    if (second is None) == (stacking == "sequential"):
        raise ValueError("stacking='sequential' needs the shifted pass's own (query, key, value) embeddings as "
                         f"`second`; 'parallel' and 'union' share the first pass's and take no `second` (got "
                         f"stacking={stacking!r} and second={'None' if second is None else 'given'})")
    window, shift = _shift_or_half(window, shift)
    q, k, v = embed_maps(student_feat, teacher_feat, query, key, value, query_side)
    if stacking == "union":
        return (union_window_attention(q, k, v, window, shift, scale),)
    regular = window_attention(q, k, v, window, 0, scale)
    if stacking == "parallel":
        return regular, window_attention(q, k, v, window, shift, scale)
    q2, k2, v2 = embed_maps(regular, teacher_feat, *second, query_side)
    return (window_attention(q2, k2, v2, window, shift, scale),)


def _mean_mse(rebuilt: Sequence[Tensor], target: Tensor) -> Tensor:
    return torch.stack([F.mse_loss(out, target) for out in rebuilt]).mean()


def swtat_loss(student_feat: Tensor, teacher_feat: Tensor, query: nn.Module, key: nn.Module, value: nn.Module,
               window: int | Sequence[int], shift: int | Sequence[int] | None = None, *,
               second: Sequence[nn.Module] | None = None, stacking: str = "sequential", query_side: str = "student",
               scale: bool = False) -> Tensor:
    r"""$\mathcal{L}^{SW}_{TaT}$: the MSE of :func:`swtat_rebuild`'s map to $F^T$ (``"sequential"``:
    $\mathrm{MSE}(O_2, F^T)$; ``"parallel"``: $\frac12(\mathrm{MSE}(O_0, F^T) + \mathrm{MSE}(O_s, F^T))$;
    ``"union"``: $\mathrm{MSE}(O, F^T)$)."""
    rebuilt = swtat_rebuild(student_feat, teacher_feat, query, key, value, window, shift, second=second,
                            stacking=stacking, query_side=query_side, scale=scale)
    return _mean_mse(rebuilt, teacher_feat)


def _group_patches(x: Tensor, patches: Pair, group_size: int) -> Tensor:
    """(B, C, H, W) -> (B G, h w, p_g C): row-major patches (border rows/columns beyond n h, m w dropped),
    ``group_size`` consecutive patches concatenated along channels."""
    (n, m), (b, c, height, width) = patches, x.shape
    h, w = height // n, width // m
    cells = window_partition(x[:, :, :n * h, :m * w].permute(0, 2, 3, 1), (h, w))  # (B n m, h w, C)
    return cells.view(b, -1, group_size, h * w, c).transpose(2, 3).reshape(-1, h * w, group_size * c)


def patch_group_tat_loss(student_feat: Tensor, teacher_feat: Tensor, query: nn.Module, key: nn.Module,
                         value: nn.Module, patches: int | Sequence[int] = 4, group_size: int = 1,
                         query_side: str = "student", scale: bool = False) -> Tensor:
    r"""$\mathcal{L}^P_{TaT}$: TaT's patch groups. $n\times m$ patches of $h=\lfloor H/n\rfloor$,
    $w=\lfloor W/m\rfloor$ (leftover border rows and columns are dropped, as in TaT-seg), groups of
    ``group_size`` $=p_g$ consecutive patches; $w_{ab}=\mathrm{softmax}_b\sum_{P\in G}\langle q^{(P)}_a,
    k^{(P)}_b\rangle$, $o^{(P)}_a=\sum_b w_{ab}v^{(P)}_b$, MSE to the teacher grouped the same way."""
    q, k, v = embed_maps(student_feat, teacher_feat, query, key, value, query_side)
    n, m = check_pair("patches", patches)
    height, width = teacher_feat.shape[2:]
    if n > height or m > width:
        raise ValueError(f"cannot cut a {height}x{width} map into {n}x{m} patches")
    if not is_int(group_size, 1) or (n * m) % group_size:
        raise ValueError(f"group_size must be an int >= 1 dividing the {n * m} patches, got {group_size!r}")
    q, k, v, target = (_group_patches(t, (n, m), group_size) for t in (q, k, v, teacher_feat))
    return F.mse_loss(attention_weights(q, k, scale=scale) @ v, target)


def anchor_tat_loss(student_feat: Tensor, teacher_feat: Tensor, query: nn.Module, key: nn.Module, value: nn.Module,
                    anchors: int | Sequence[int] = 4, query_side: str = "student", scale: bool = False) -> Tensor:
    r"""$\mathcal{L}^A_{TaT}$: TaT's anchor points. Average-pool the embedded $Q, K, V$ and the raw $F^T$ with
    kernel (and stride) $(\lfloor H/a_h\rfloor, \lfloor W/a_w\rfloor)$, then global TaT on the anchors."""
    q, k, v = embed_maps(student_feat, teacher_feat, query, key, value, query_side)
    a_h, a_w = check_pair("anchors", anchors)
    height, width = teacher_feat.shape[2:]
    if a_h > height or a_w > width:
        raise ValueError(f"cannot place {a_h}x{a_w} anchors on a {height}x{width} map")
    q, k, v, target = (F.avg_pool2d(t, (height // a_h, width // a_w)) for t in (q, k, v, teacher_feat))
    return F.mse_loss(global_attention(q, k, v, scale), target)


# ------------------------------------------------------------------------------------- loss modules


class SWTaTLoss(nn.Module):
    r"""$\mathcal{L}^{SW}_{TaT}(F^S, F^T)$ (:func:`swtat_loss`) with its embeddings: ``embedding`` for the regular
    pass and, for ``stacking="sequential"``, ``shifted_embedding`` ($C\to C$, on the first pass's output).
    ``shift=0`` keeps everything but the shift (the no-shift ablation)."""

    def __init__(self, student_shape: Shape, teacher_shape: Shape, window: int = 4, shift: int | None = None,
                 stacking: str = "sequential", query_side: str = "student", teacher_embedding: bool = False,
                 scale: bool = False) -> None:
        super().__init__()
        check_choice("stacking", stacking, STACKINGS)
        _shift_or_half(window, shift)
        self.window, self.shift, self.stacking, self.scale = window, shift, stacking, scale
        self.embedding = TaTEmbedding(student_shape, teacher_shape, query_side, teacher_embedding)
        self.shifted_embedding = (TaTEmbedding(teacher_shape, teacher_shape, query_side, teacher_embedding)
                                  if stacking == "sequential" else None)

    def rebuild(self, student_feat: Tensor, teacher_feat: Tensor) -> tuple[Tensor, ...]:
        """The rebuilt map(s) whose MSE to the teacher map is the loss (:func:`swtat_rebuild`)."""
        second = None if self.shifted_embedding is None else self.shifted_embedding.qkv
        return swtat_rebuild(student_feat, teacher_feat, *self.embedding.qkv, self.window, self.shift, second=second,
                             stacking=self.stacking, query_side=self.embedding.query_side, scale=self.scale)

    def forward(self, student_feat: Tensor, teacher_feat: Tensor) -> Tensor:
        return _mean_mse(self.rebuild(student_feat, teacher_feat), teacher_feat)


def swin_merger(in_channels: int, out_channels: int) -> nn.Sequential:
    """Swin's learnable patch merging on a (B, C, H, W) map: 2x2 concat -> LayerNorm(4C) -> Linear(4C -> out)."""
    return nn.Sequential(Permute(0, 2, 3, 1), PatchMerging(in_channels, out_channels), Permute(0, 3, 1, 2))


class PatchMergingTaTLoss(nn.Module):
    r"""$\mathcal{L}^{PM}_{TaT} = \frac1L\sum_{\ell=1}^L\mathcal{L}_{TaT}(S_\ell, U^\ell(F^T))$, $L$ = ``levels``.

    Teacher: parameter-free space-to-depth $U$ (``F.pixel_unshuffle``, $C\to4C$ per level). Student merger
    $m_\ell$: the same space-to-depth (``"unshuffle"``, default) or :func:`swin_merger` to the merged teacher's
    width (``"swin"``). One :class:`TaTEmbedding` per level. Each level runs global TaT while it has at most
    ``max_global_tokens`` positions, else windowed TaT (``window``, shift 0). Both maps must have even sides
    at every level [our choice: no hidden padding].
    """

    def __init__(self, student_shape: Shape, teacher_shape: Shape, levels: int = 1, student_merge: str = "unshuffle",
                 window: int = 8, max_global_tokens: int = 256, query_side: str = "student",
                 teacher_embedding: bool = False, scale: bool = False) -> None:
        super().__init__()
        check_choice("student_merge", student_merge, MERGES)
        check_int("levels", levels, low=1)
        check_pair("window", window)
        self.window, self.max_global_tokens, self.scale = window, max_global_tokens, scale
        self.mergers, self.embeddings = nn.ModuleList(), nn.ModuleList()
        (c_s, *size_s), (c_t, *size_t) = student_shape, teacher_shape
        for level in range(1, levels + 1):
            if any(side % 2 for side in size_s + size_t):
                raise ValueError(f"patch merging level {level} needs even map sides, got student {tuple(size_s)} "
                                 f"and teacher {tuple(size_t)}; use fewer levels or maps with even sides")
            c_t, size_s, size_t = 4 * c_t, [s // 2 for s in size_s], [s // 2 for s in size_t]
            if student_merge == "unshuffle":
                merger, c_s = nn.PixelUnshuffle(2), 4 * c_s
            else:
                merger, c_s = swin_merger(c_s, c_t), c_t
            self.mergers.append(merger)
            self.embeddings.append(TaTEmbedding((c_s, *size_s), (c_t, *size_t), query_side, teacher_embedding))

    def forward(self, student_feat: Tensor, teacher_feat: Tensor) -> Tensor:
        losses = []
        for merger, embedding in zip(self.mergers, self.embeddings):
            student_feat, teacher_feat = merger(student_feat), F.pixel_unshuffle(teacher_feat, 2)
            args = (student_feat, teacher_feat, *embedding.qkv)
            if teacher_feat.shape[2] * teacher_feat.shape[3] <= self.max_global_tokens:
                losses.append(tat_loss(*args, embedding.query_side, self.scale))
            else:
                losses.append(window_tat_loss(*args, self.window, 0, embedding.query_side, self.scale))
        return torch.stack(losses).mean()


# ---------------------------------------------------------------------------------------- distillers


class ClassificationTaT(Distiller):
    r"""Shared plumbing of :class:`TaT` and :class:`SWTaT`: ``terms = {"ce": ce_weight CE(z_s, y),
    "kd": kd_weight kd_loss(z_s, z_t, T), **feature_terms(F^S, F^T)}`` ($\alpha$ and $\beta$ in the paper).

    ``stages`` is one 1-based (student stage, teacher stage) pair of
    :func:`~kdlab.models.stage_features` (``None``: both last stages, like the official layer4 ->
    layer4). The student runs once (logits and its stage map); the teacher's logits and map come from
    :meth:`teacher_forward`. :meth:`predict` is the bare student: the embeddings exist only for training.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, stages: Sequence[int] | None = None,
                 ce_weight: float = 0.5, kd_weight: float = 0.5, temperature: float = 1.0, img_size: int = 32) -> None:
        super().__init__(student, teacher)
        check_weights(ce_weight=ce_weight, kd_weight=kd_weight)
        check_positive("temperature", temperature)
        student_shapes, teacher_shapes = stage_shapes(student, img_size), stage_shapes(teacher, img_size)
        n_s, n_t = len(student_shapes), len(teacher_shapes)
        stages = (n_s, n_t) if stages is None else stages
        if (not isinstance(stages, (tuple, list)) or len(stages) != 2
                or not (is_stage(stages[0], n_s) and is_stage(stages[1], n_t))):
            raise ValueError(f"stages must be one 1-based (student stage, teacher stage) pair with student stage in "
                             f"1..{n_s} and teacher stage in 1..{n_t}, got {stages!r}")
        self.stages = (int(stages[0]), int(stages[1]))
        self.student_shape, self.teacher_shape = student_shapes[stages[0] - 1], teacher_shapes[stages[1] - 1]
        self.ce_weight, self.kd_weight, self.temperature = ce_weight, kd_weight, temperature

    def feature_terms(self, student_feat: Tensor, teacher_feat: Tensor) -> dict[str, Tensor]:
        """The weighted feature-distillation terms (subclasses)."""
        raise NotImplementedError

    @teacher_pass
    def teacher_forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The teacher's logits and distilled stage map, without autograd."""
        logits, (feat,) = logits_and_stage_features(self.teacher, x, [self.stages[1] - 1])
        return logits, feat

    def teacher_cache_key(self) -> tuple:
        return teacher_token(self.teacher), self.stages[1]

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        logits, (feat,) = logits_and_stage_features(self.student, x, [self.stages[0] - 1])
        teacher_logits, teacher_feat = self.teacher_forward(x)
        return logits, {
            "ce": self.ce_weight * F.cross_entropy(logits, y),
            "kd": self.kd_weight * kd_loss(logits, teacher_logits, self.temperature),
            **self.feature_terms(feat, teacher_feat),
        }


class TaT(ClassificationTaT):
    r"""TaT (global): ``"tat": tat_weight * tat_loss`` plus :class:`ClassificationTaT`'s CE and KD terms.

    ``tat_weight`` is $\varepsilon$ in the paper. Defaults ``ce_weight`` = ``kd_weight`` = 0.5 ($\alpha=\beta=0.5$),
    $T=1$, ``tat_weight`` 0.1: the official ``attn_w_kd`` config. The student map is resized to the teacher's by
    the embeddings (:class:`TaTEmbedding`).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, stages: Sequence[int] | None = None,
                 ce_weight: float = 0.5, kd_weight: float = 0.5, tat_weight: float = 0.1, temperature: float = 1.0,
                 query_side: str = "student", teacher_embedding: bool = False, scale: bool = False,
                 img_size: int = 32) -> None:
        super().__init__(student, teacher, stages, ce_weight, kd_weight, temperature, img_size)
        check_weights(tat_weight=tat_weight)
        self.tat_weight = tat_weight
        self.embedding = TaTEmbedding(self.student_shape, self.teacher_shape, query_side, teacher_embedding)
        self.scale = scale

    def feature_terms(self, student_feat: Tensor, teacher_feat: Tensor) -> dict[str, Tensor]:
        return {"tat": self.tat_weight * tat_loss(student_feat, teacher_feat, *self.embedding.qkv,
                                                  self.embedding.query_side, self.scale)}


class SWTaT(ClassificationTaT):
    r"""SW-TaT for classification: ``"sw_tat": sw_tat_weight * L^SW_TaT`` (:class:`SWTaTLoss`) plus the CE and KD
    terms; ``sw_tat_weight`` is $\varepsilon$ in the paper.

    ``window`` $M$ = 4 and ``shift`` $\lfloor M/2\rfloor$ by default (the paper's values are unknown).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, stages: Sequence[int] | None = None,
                 window: int = 4, shift: int | None = None, stacking: str = "sequential", ce_weight: float = 0.5,
                 kd_weight: float = 0.5, sw_tat_weight: float = 0.1, temperature: float = 1.0,
                 query_side: str = "student", teacher_embedding: bool = False, scale: bool = False,
                 img_size: int = 32) -> None:
        super().__init__(student, teacher, stages, ce_weight, kd_weight, temperature, img_size)
        check_weights(sw_tat_weight=sw_tat_weight)
        self.sw_tat_weight = sw_tat_weight
        self.sw = SWTaTLoss(self.student_shape, self.teacher_shape, window, shift, stacking, query_side,
                            teacher_embedding, scale)

    def feature_terms(self, student_feat: Tensor, teacher_feat: Tensor) -> dict[str, Tensor]:
        return {"sw_tat": self.sw_tat_weight * self.sw(student_feat, teacher_feat)}


def feature_shape(model: nn.Module, img_size: int = 64, in_chans: int = 3) -> Shape:
    """(C, h, w) of a segmentation model's ``forward_features`` map, from one dry run on zeros (mode restored)."""
    require_methods(model, "a segmentation model must provide forward_features(x) -> (B, C, h, w) and "
                           "forward_head(features) -> (B, K, H, W) logits")
    return tuple(dry_run(model, model.forward_features, img_size, in_chans).shape[1:])


class SegmentationTaT(Distiller):
    r"""Shared plumbing of :class:`SWTaTSeg` and :class:`TaTPatchGroup`: ``terms = {"ce": ce_weight CE_pixel,
    **feature_terms(F^S, F^T)}`` (``ce_weight`` is $\alpha$ in the paper).

    **Segmentation model interface.** Student and teacher provide ``forward_features(x)`` -> the (B, C, h, w)
    map to distil (TaT-seg: the decoder's pre-ReLU BN output) and ``forward_head(features)`` -> (B, K, H, W)
    per-pixel logits, with ``forward(x) == forward_head(forward_features(x))`` (timm's convention). The
    student runs once per step; the teacher's map comes from :meth:`teacher_forward`. ``y`` is (B, H, W) class
    indices (``ignore_index`` skipped). The frozen teacher stays in eval mode (TaT-seg's drifts in train mode).

    **Loss scale.** ``reduction="mean"`` (default [our choice]): the feature terms are batch means, like the
    pixel CE. TaT-seg instead computes each image's loss on its own and *sums* them over the batch
    (``reduction="sum"``: the feature terms times $B$), so its $\delta, \zeta$ at batch $B$ equal kdlab's
    $B\delta, B\zeta$: TaT-seg's VOC weights (0.4 / 1.0 at batch 16) correspond to kdlab weights 16 times larger.
    Either way the BN statistics of the embeddings are the batch's (TaT-seg's are per image).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, ce_weight: float = 1.0, img_size: int = 64,
                 in_chans: int = 3, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(student, teacher)
        check_weights(ce_weight=ce_weight)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        self.student_shape = feature_shape(student, img_size, in_chans)
        self.teacher_shape = feature_shape(teacher, img_size, in_chans)
        self.ce_weight, self.ignore_index = ce_weight, ignore_index

    def feature_terms(self, student_feat: Tensor, teacher_feat: Tensor) -> dict[str, Tensor]:
        """The weighted feature-distillation terms (subclasses)."""
        raise NotImplementedError

    @teacher_pass
    def teacher_forward(self, x: Tensor) -> Tensor:
        """The teacher's distilled (B, C, h, w) map, without autograd."""
        return self.teacher.forward_features(x)

    def teacher_cache_key(self) -> tuple:
        return (teacher_token(self.teacher),)

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        feat = self.student.forward_features(x)
        logits = self.student.forward_head(feat)
        ce = self.ce_weight * F.cross_entropy(logits, y, ignore_index=self.ignore_index)
        factor = x.shape[0] if self.reduction == "sum" else 1
        terms = self.feature_terms(feat, self.teacher_forward(x))
        return logits, {"ce": ce, **{name: factor * term for name, term in terms.items()}}


class SWTaTSeg(SegmentationTaT):
    r"""SW-TaT for segmentation: ``{"ce": ce_weight CE_pixel, "sw_tat": sw_tat_weight L^SW_TaT, "pm_tat":
    pm_tat_weight L^PM_TaT}`` ($\alpha$, $\delta$ and $\zeta$ in the paper).

    :class:`SWTaTLoss` with ``window``/``shift``/``stacking``; :class:`PatchMergingTaTLoss` with ``pm_levels``
    levels (0: no PM term, the "SW-TaT without PM" row) and ``student_merge``. Defaults [our choice]:
    $\alpha=1$, $\delta=0.1$, $\zeta=0.05$, $M=4$.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, window: int = 4, shift: int | None = None,
                 stacking: str = "sequential", pm_levels: int = 1, student_merge: str = "unshuffle",
                 ce_weight: float = 1.0, sw_tat_weight: float = 0.1, pm_tat_weight: float = 0.05,
                 query_side: str = "student", teacher_embedding: bool = False, scale: bool = False, img_size: int = 64,
                 in_chans: int = 3, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(student, teacher, ce_weight, img_size, in_chans, ignore_index, reduction)
        check_weights(sw_tat_weight=sw_tat_weight, pm_tat_weight=pm_tat_weight)
        self.sw_tat_weight, self.pm_tat_weight = sw_tat_weight, pm_tat_weight
        check_int("pm_levels", pm_levels, low=0)
        self.sw = SWTaTLoss(self.student_shape, self.teacher_shape, window, shift, stacking, query_side,
                            teacher_embedding, scale)
        self.pm = (PatchMergingTaTLoss(self.student_shape, self.teacher_shape, pm_levels, student_merge, window,
                                       query_side=query_side, teacher_embedding=teacher_embedding, scale=scale)
                   if pm_levels else None)

    def feature_terms(self, student_feat: Tensor, teacher_feat: Tensor) -> dict[str, Tensor]:
        terms = {"sw_tat": self.sw_tat_weight * self.sw(student_feat, teacher_feat)}
        if self.pm is not None:
            terms["pm_tat"] = self.pm_tat_weight * self.pm(student_feat, teacher_feat)
        return terms


class TaTPatchGroup(SegmentationTaT):
    r"""TaT's segmentation baseline: ``{"ce": ce_weight CE_pixel, "patch_tat": patch_tat_weight L^P_TaT,
    "anchor_tat": anchor_tat_weight L^A_TaT}`` ($\alpha$, $\delta$, $\zeta$ in the paper;
    :func:`patch_group_tat_loss`, :func:`anchor_tat_loss`) with one shared :class:`TaTEmbedding`.

    Defaults [our choice, scaled from TaT-seg's VOC ResNet18 script: 8x8 patches in groups of 4, 32x32
    anchors on 129x129 maps]: $4\times4$ patches, groups of 4, $4\times4$ anchors, $\alpha=1$,
    $\delta=0.1$, $\zeta=0.04$.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, patches: int | Sequence[int] = 4, group_size: int = 4,
                 anchors: int | Sequence[int] = 4, ce_weight: float = 1.0, patch_tat_weight: float = 0.1,
                 anchor_tat_weight: float = 0.04, query_side: str = "student", teacher_embedding: bool = False,
                 scale: bool = False, img_size: int = 64, in_chans: int = 3, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(student, teacher, ce_weight, img_size, in_chans, ignore_index, reduction)
        check_weights(patch_tat_weight=patch_tat_weight, anchor_tat_weight=anchor_tat_weight)
        self.patch_tat_weight, self.anchor_tat_weight = patch_tat_weight, anchor_tat_weight
        self.embedding = TaTEmbedding(self.student_shape, self.teacher_shape, query_side, teacher_embedding)
        self.patches, self.group_size, self.anchors, self.scale = patches, group_size, anchors, scale

    def feature_terms(self, student_feat: Tensor, teacher_feat: Tensor) -> dict[str, Tensor]:
        args = (student_feat, teacher_feat, *self.embedding.qkv)
        side = self.embedding.query_side
        return {
            "patch_tat": self.patch_tat_weight * patch_group_tat_loss(*args, self.patches, self.group_size, side,
                                                                      self.scale),
            "anchor_tat": self.anchor_tat_weight * anchor_tat_loss(*args, self.anchors, side, self.scale),
        }
