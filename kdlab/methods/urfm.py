r"""URFM, the unified receptive fields mapping of CAFD (Zhao et al., ACM MM 2023), with the two pieces of its
position encoding: iRPE's piecewise index function and the facial structure distance [our choice].

**Piecewise index function** (iRPE, Wu et al. ICCV 2021, official code), $[\cdot]$ = round half to even, with
the exact range $\alpha$ (``exact_range``: distances up to it keep their own index), the largest index $\beta$
(``max_index``) and the clip distance $\gamma$ (``clip_distance``: where the logarithmic part reaches $\beta$):

$$I(x) = \begin{cases}[x] & |x|\le\alpha\\
  \mathrm{sign}(x)\min\Big(\beta,\ \Big[\alpha + \frac{\ln(|x|/\alpha)}{\ln(\gamma/\alpha)}(\beta-\alpha)\Big]\Big)
  & |x| > \alpha\end{cases}$$

cast to an integer (so $|I|\le\lfloor\beta\rfloor$); ratio $r$: $(\alpha,\beta,\gamma) = (r, 2r, 8r)$,
iRPE's default $r = 1.9$. Distances $\ge 0$ use $\lfloor\beta\rfloor + 1$ buckets.

**Facial structure distance** [our choice; the paper's definitions are in unrecoverable figures]. Points in
centre-grid cells, landmarks $\ell_1..\ell_5$ (eyes, nose, mouth corners), $\mathrm{IOD} = \lVert\ell_2 -
\ell_1\rVert$, $s(p) = \min_k\lVert p - \ell_k\rVert$, $r_k(p) = \lVert p - \ell_k\rVert/\mathrm{IOD}$:

$$D_{sal}(i, a) = |s(u_i) - s(a)|,\quad D_{rel}(i, a) = \tfrac15\sum_k |r_k(u_i) - r_k(a)|,\quad
  D = \lVert u_i - a\rVert + \gamma_{face}(D_{sal} + D_{rel}),$$

$\gamma_{face}$ = ``facial_scale`` (0: the plain Euclidean distance).

**URFM** (unified receptive fields mapping). $L$ learnable local centres $c_i$ on a $\sqrt L\times\sqrt L$
grid $u_i$, shared by both networks; per network key/value projections; an absolute, query-side facial PE:

$$q_i = c_iW_q + b_i,\quad b_i = P\big[I(D(u_i, \mathrm{anchor}))\big],\quad
  e_{ij} = \frac{q_i (f_jW^{net}_k)^\top}{\sqrt{d_h}},\quad h_i = \sum_j \mathrm{softmax}_j(e_{ij})\,f_jW^{net}_v,$$

per head ($h$ heads of width $d_h = d/h$). Whatever the token count $N$ of a network, $h\in\mathbb{R}^{L\times d}$.
"""
from __future__ import annotations

import math
import numbers
from typing import Mapping, Sequence

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from ..checks import check_choice, check_int, check_number, check_pair, check_tensor

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
TEMPLATE_SIZE = 112
ARCFACE_TEMPLATE = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655),
                    (70.7299, 92.2041))
"""The ArcFace / insightface 5-point alignment template, (x, y) pixels of a 112x112 face, in
:data:`LANDMARK_NAMES` order."""
IRPE_RATIO = 1.9  # iRPE's default ratio: exact range, max index, clip distance = 1.9, 3.8, 15.2


# ------------------------------------------------------------------------------ piecewise index (iRPE)


def pif_params(ratio: float = IRPE_RATIO) -> tuple[float, float, float]:
    r"""iRPE's ``(exact_range, max_index, clip_distance)`` $= (\alpha, \beta, \gamma) = (r, 2r, 8r)$ for ratio
    $r$ (default 1.9 -> (1.9, 3.8, 15.2))."""
    ratio = check_number("ratio", ratio, low=0.0, strict=True)
    return ratio, 2 * ratio, 8 * ratio


def num_buckets(max_index: float, signed: bool = False) -> int:
    r"""Buckets of :func:`piecewise_index`'s output for ``max_index`` $\beta$: $\lfloor\beta\rfloor + 1$ for
    distances $\ge 0$, $2\lfloor\beta\rfloor + 1$ for signed inputs (4 and 7 for ratio 1.9)."""
    top = math.floor(check_number("max_index", max_index, low=0.0, strict=True))
    return 2 * top + 1 if signed else top + 1


@torch.no_grad()
def piecewise_index(relative_position: Tensor, exact_range: float = 1.9, max_index: float = 3.8,
                    clip_distance: float = 15.2, dtype: torch.dtype = torch.long) -> Tensor:
    r"""iRPE's piecewise index function $I(x)$ (official ``piecewise_index``), element-wise, as ``dtype``.

    ``exact_range`` is $\alpha$ in the paper, ``max_index`` $\beta$ and ``clip_distance`` $\gamma$.
    $|x|\le\alpha$: ``round(x)`` (``torch.round``, half to even). $|x|>\alpha$: ``sign(x) * (alpha +
    log(|x|/alpha) / log(gamma/alpha) * (beta - alpha)).round().clip(max=beta)``, then the cast truncates, so
    the largest index is $\lfloor\beta\rfloor$. Needs $0 < \alpha < \beta$ and $\gamma > \alpha$. Integer
    inputs are computed in float32; no gradient (the indices are a lookup).
    """
    check_tensor("relative_position", relative_position)
    alpha, beta, gamma = (check_number(n, v, low=0.0, strict=True) for n, v in (
        ("exact_range", exact_range), ("max_index", max_index), ("clip_distance", clip_distance)))
    if not (alpha < beta and gamma > alpha):
        raise ValueError(f"need 0 < exact_range < max_index and clip_distance > exact_range, got exact_range={alpha}, "
                         f"max_index={beta}, clip_distance={gamma}")
    x = relative_position if relative_position.is_floating_point() else relative_position.float()
    x_abs = x.abs()
    inside = x_abs <= alpha
    safe_abs = torch.where(inside, torch.full_like(x_abs, alpha), x_abs)  # no log(0) on the unused branch
    outside = torch.sign(x) * (alpha + torch.log(safe_abs / alpha) / math.log(gamma / alpha)
                               * (beta - alpha)).round().clip(max=beta)
    return torch.where(inside, x.round(), outside).to(dtype)


# ----------------------------------------------------------------------------- facial structure distance


def template_landmarks(img_size: int | None = None) -> Tensor:
    r"""The ArcFace template's 5 landmarks (:data:`LANDMARK_NAMES` order), (5, 2) (x, y) float32.

    ``None``: normalised image coordinates in [0, 1] (pixels / 112); an int $S$: pixels of an $S$-px image
    (scaled by $S/112$: at 64 px the nose is at (32.01, 40.99) and the IOD 20.14 px).
    """
    points = torch.tensor(ARCFACE_TEMPLATE, dtype=torch.float32) / TEMPLATE_SIZE
    return points if img_size is None else points * check_int("img_size", img_size, low=1)


def grid_centres(grid: int | Sequence[int]) -> Tensor:
    r"""(rows * cols, 2) normalised (x, y) centres of a grid's cells, row-major: $((j + 0.5)/W, (i + 0.5)/H)$."""
    rows, cols = check_pair("grid", grid)
    ys, xs = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


def _anchor_point(anchor: int | str | Tensor | Sequence[float], landmarks: Tensor) -> Tensor:
    """(B, 2) anchor from a landmark index / name or from coordinates ((2,) or (B, 2))."""
    if isinstance(anchor, str):
        check_choice("anchor", anchor, LANDMARK_NAMES)
        anchor = LANDMARK_NAMES.index(anchor)
    if isinstance(anchor, numbers.Integral) and not isinstance(anchor, bool):
        if not 0 <= anchor < len(LANDMARK_NAMES):
            raise ValueError(f"an anchor index must be in 0..{len(LANDMARK_NAMES) - 1}, got {anchor}")
        return landmarks[:, anchor]
    point = torch.as_tensor(anchor, dtype=landmarks.dtype, device=landmarks.device)
    if point.shape[-1:] != (2,) or point.ndim not in (1, 2):
        raise ValueError(f"an anchor point must be (2,) or (B, 2) (x, y) coordinates, got shape {tuple(point.shape)}")
    return point.reshape(-1, 2)


def facial_distance_parts(positions: Tensor, landmarks: Tensor, anchor: int | str | Tensor | Sequence[float] = "nose",
                          facial_scale: float = 1.0, grid: int | Sequence[int] | None = None) -> dict[str, Tensor]:
    r"""Every piece of the facial structure distance $D(u_i, a)$ (spec §2.5, [our choice]).

    ``positions``: (P, 2) or (B, P, 2) normalised (x, y) points; ``landmarks``: (5, 2) or (B, 5, 2) normalised
    (x, y) in :data:`LANDMARK_NAMES` order; ``anchor``: a landmark index or name, or (2,) / (B, 2) normalised
    coordinates. ``grid`` = (rows, cols) sets the unit: distances are measured in cells of that grid
    ($x\cdot W$, $y\cdot H$; URFM's centre grid); ``None`` keeps normalised units.

    Returns (P,) tensors, or (B, P) when any input is batched: ``euclid`` $\tilde D = \lVert u_i - a\rVert$,
    ``saliency_map`` $s(u_i) = \min_k\lVert u_i - \ell_k\rVert$, ``saliency`` $D_{sal} = |s(u_i) - s(a)|$,
    ``relative`` $D_{rel} = \frac15\sum_k|r_k(u_i) - r_k(a)|$ with $r_k(p) = \lVert p - \ell_k\rVert/\mathrm{IOD}$
    (unit-free), ``face`` $D_{face} = D_{sal} + D_{rel}$ and ``total`` $D = \tilde D + \gamma_{face}D_{face}$.
    """
    facial_scale = check_number("facial_scale", facial_scale, low=0.0)
    if not isinstance(positions, Tensor) or positions.ndim not in (2, 3) or positions.shape[-1] != 2:
        raise ValueError(f"positions must be a (P, 2) or (B, P, 2) tensor of (x, y), got "
                         f"{tuple(positions.shape) if isinstance(positions, Tensor) else type(positions).__name__}")
    landmarks = torch.as_tensor(landmarks, device=positions.device)
    if landmarks.ndim not in (2, 3) or tuple(landmarks.shape[-2:]) != (5, 2):
        raise ValueError(f"landmarks must be (5, 2) or (B, 5, 2) normalised (x, y), got shape {tuple(landmarks.shape)}")
    dtype = torch.promote_types(positions.dtype, landmarks.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    batched = positions.ndim == 3 or landmarks.ndim == 3
    pos, lm = positions.to(dtype).reshape(-1, *positions.shape[-2:]), landmarks.to(dtype).reshape(-1, 5, 2)
    a = _anchor_point(anchor, lm)
    batched = batched or (isinstance(anchor, Tensor) and anchor.ndim == 2)
    sizes = {n for n in (pos.shape[0], lm.shape[0], a.shape[0]) if n != 1}
    if len(sizes) > 1:
        raise ValueError(f"batch sizes of positions {tuple(positions.shape)}, landmarks {tuple(landmarks.shape)} "
                         f"and anchor {tuple(a.shape)} do not match")
    if grid is not None:
        rows, cols = check_pair("grid", grid)
        unit = torch.tensor([cols, rows], dtype=dtype, device=pos.device)
        pos, lm, a = pos * unit, lm * unit, a * unit
    euclid = (pos - a[:, None]).norm(dim=-1)                                  # (B, P)
    to_lm = (pos[:, :, None] - lm[:, None]).norm(dim=-1)                     # (B, P, 5)
    anchor_to_lm = (a[:, None] - lm).norm(dim=-1)                             # (B, 5)
    sal_map, sal_anchor = to_lm.amin(-1), anchor_to_lm.amin(-1)
    iod = (lm[:, 1] - lm[:, 0]).norm(dim=-1)                                  # (B,)
    if not bool((iod > 0).all()):
        raise ValueError("the two eye landmarks coincide (inter-ocular distance 0)")
    relative = ((to_lm - anchor_to_lm[:, None]).abs() / iod[:, None, None]).mean(-1)
    saliency = (sal_map - sal_anchor[:, None]).abs()
    parts = {"euclid": euclid, "saliency_map": sal_map, "saliency": saliency, "relative": relative,
             "face": saliency + relative}
    parts["total"] = euclid + facial_scale * parts["face"]
    return parts if batched else {k: v[0] for k, v in parts.items()}


def facial_structure_distance(positions: Tensor, landmarks: Tensor,
                              anchor: int | str | Tensor | Sequence[float] = "nose", facial_scale: float = 1.0,
                              grid: int | Sequence[int] | None = None) -> Tensor:
    r"""$D(u_i, a) = \tilde D + \gamma_{face}(D_{sal} + D_{rel})$, (P,) or (B, P); see :func:`facial_distance_parts`.

    $D(a, a) = 0$, $D\ge0$, $D(p, q) = D(q, p)$ (every part is symmetric), and $\gamma_{face} = 0$ gives the
    Euclidean distance.
    """
    return facial_distance_parts(positions, landmarks, anchor, facial_scale, grid)["total"]


# ------------------------------------------------------------------------------------------ attention


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, N, d) -> (B, heads, N, d / heads)."""
    b, n, d = x.shape
    return x.view(b, n, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, heads, N, d_h) -> (B, N, heads d_h)."""
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


def attend(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    r"""$\mathrm{softmax}(qk^\top/\sqrt{d_h})\,v$ per head; returns (output, attention weights)."""
    attn = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)
    return attn @ v, attn


class URFM(nn.Module):
    r"""Unified receptive fields mapping: $L$ learnable local centres cross-attend to a network's pixel features.

    ``in_dims`` maps each network name (e.g. ``{"teacher": C_T, "student": C_S}``) to its feature width; each
    network gets its own $W_k, W_v: C\to d$ (and, with ``key_norm`` [our choice], a LayerNorm on its features
    first, since CNN and Swin features live on different scales). Shared: the centres $c\in\mathbb{R}^{L\times d}$
    ($\mathcal{N}(0, 1)$ [our choice], so that the queries differ from the start), $W_q$, and the bucket table
    $P\in\mathbb{R}^{n_b\times d}$ (trunc. normal, std 0.02).

    Centre $i$ sits at cell $u_i$ of a ``grid`` ($L$ = rows x cols, row-major) over the aligned face; its PE is
    $b_i = P[I(D(u_i, \mathrm{anchor}))]$ with :func:`facial_structure_distance` in cell units (``landmarks``:
    normalised (5, 2), default the ArcFace template; ``anchor`` default the nose) and :func:`piecewise_index` at
    ``pif_ratio`` (3 by default: with $\gamma_{face} > 0$ ratio 1.9 saturates, spec §2.5). The buffers
    ``distance`` (L,) and ``bucket`` (L,) hold the template's values. ``position_encoding=False`` drops $b_i$
    (the "no PE" ablation: the learnable centres alone tell the queries apart).

    ``forward(features, network, extra_tokens=None, landmarks=None)``: ``features`` (B, N, C) tokens or a
    (B, C, H, W) map (flattened row-major); ``extra_tokens`` (B, t, C), e.g. the teacher's prompts, are appended as
    extra keys/values (no PE: URFM's keys carry none); per-sample ``landmarks`` (B, 5, 2) recompute the buckets.
    Returns the local features $h$ (B, L, d) and the attention maps (B, heads, L, N [+ t]), rows summing to 1.
    """

    def __init__(self, in_dims: Mapping[str, int], dim: int = 64, grid: int | Sequence[int] = 4, num_heads: int = 4,
                 *, facial_scale: float = 1.0, pif_ratio: float = 3.0,
                 anchor: int | str | Sequence[float] = "nose", landmarks: Tensor | None = None,
                 key_norm: bool = True, position_encoding: bool = True) -> None:
        super().__init__()
        if not isinstance(in_dims, Mapping) or not in_dims:
            raise ValueError(f"in_dims must be a non-empty mapping network name -> feature width, got {in_dims!r}")
        for name, width in in_dims.items():
            check_int(f"in_dims[{name!r}]", width, low=1)
        self.dim, self.num_heads = check_int("dim", dim, low=1), check_int("num_heads", num_heads, low=1)
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.grid = check_pair("grid", grid)
        self.num_centres = self.grid[0] * self.grid[1]
        self.facial_scale = check_number("facial_scale", facial_scale, low=0.0)
        self.position_encoding = bool(position_encoding)
        self.pif = pif_params(pif_ratio)
        self.anchor = anchor
        self.in_dims = dict(in_dims)
        landmarks = template_landmarks() if landmarks is None else torch.as_tensor(landmarks, dtype=torch.float32)
        if tuple(landmarks.shape) != (5, 2):
            raise ValueError(f"URFM's landmarks must be one (5, 2) normalised set, got shape {tuple(landmarks.shape)}")
        self.register_buffer("landmarks", landmarks.clone())
        self.register_buffer("positions", grid_centres(self.grid))
        distance = facial_structure_distance(self.positions, landmarks, anchor, self.facial_scale, self.grid)
        self.register_buffer("distance", distance)
        self.register_buffer("bucket", piecewise_index(distance, *self.pif))

        self.centres = nn.Parameter(torch.randn(self.num_centres, dim))
        self.query = nn.Linear(dim, dim)
        self.table = nn.Parameter(trunc_normal_(torch.empty(num_buckets(self.pif[1]), dim), std=0.02))
        self.norms = nn.ModuleDict({n: nn.LayerNorm(w) if key_norm else nn.Identity() for n, w in in_dims.items()})
        self.keys = nn.ModuleDict({n: nn.Linear(w, dim) for n, w in in_dims.items()})
        self.values = nn.ModuleDict({n: nn.Linear(w, dim) for n, w in in_dims.items()})

    def buckets(self, landmarks: Tensor | None = None) -> Tensor:
        """(L,) bucket of every centre for the template, or (B, L) for per-sample (B, 5, 2) landmarks."""
        if landmarks is None:
            return self.bucket
        with torch.no_grad():
            d = facial_structure_distance(self.positions, landmarks.to(self.positions), self.anchor,
                                          self.facial_scale, self.grid)
        return piecewise_index(d, *self.pif)

    def queries(self, landmarks: Tensor | None = None) -> Tensor:
        r"""$q_i = c_iW_q + b_i$: (L, d), or (B, L, d) with per-sample landmarks; $c_iW_q$ alone without
        ``position_encoding``."""
        if not self.position_encoding:
            return self.query(self.centres)
        return self.query(self.centres) + self.table[self.buckets(landmarks)]

    def forward(self, features: Tensor, network: str, extra_tokens: Tensor | None = None,
                landmarks: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if network not in self.in_dims:
            raise ValueError(f"unknown network {network!r}; this URFM has {', '.join(self.in_dims)}")
        width = self.in_dims[network]
        if features.ndim == 4:
            features = features.flatten(2).transpose(1, 2)
        if features.ndim != 3 or features.shape[2] != width:
            raise ValueError(f"expected {network} features of shape (B, N, {width}) or (B, {width}, H, W), got "
                             f"{tuple(features.shape)}")
        if extra_tokens is not None:
            if extra_tokens.ndim != 3 or extra_tokens.shape[0] != features.shape[0] or extra_tokens.shape[2] != width:
                raise ValueError(f"extra tokens must be ({features.shape[0]}, t, {width}), got "
                                 f"{tuple(extra_tokens.shape)}")
            features = torch.cat([features, extra_tokens], dim=1)
        b = features.shape[0]
        f = self.norms[network](features)
        q = self.queries(landmarks).expand(b, -1, -1)
        k, v = self.keys[network](f), self.values[network](f)
        out, attn = attend(*(split_heads(t, self.num_heads) for t in (q, k, v)))
        return merge_heads(out), attn


