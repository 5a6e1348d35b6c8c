r"""CAFD: Cross-Architecture Distillation for Face Recognition (Zhao et al., ACM MM 2023), a Swin teacher
with prompts distilled into a CNN student through learnable local centres. No code was released; everything
marked [our choice] fills a gap of the paper (spec ``papers/cafd.md``).

**Margin heads.** With $\ell_2$-normalised embedding $\hat e$ and class weights $\hat W_c$, $\cos\theta_c =
\hat W_c^\top\hat e$; the target class $y$ gets a margin, the others keep $s\cos\theta_c$:

$$\text{CosFace: } z_y = s(\cos\theta_y - m),\qquad
  \text{ArcFace: } z_y = \begin{cases} s\cos(\theta_y + m) & \theta_y + m \le \pi\\
                                        s(\cos\theta_y - m\sin m) & \text{otherwise}\end{cases}$$

(ArcFace's fallback is insightface's default, ``easy_margin=False``: $\cos(\theta+m)$ stops decreasing once
$\theta + m > \pi$, so there the CosFace-like $\cos\theta - m\sin m$ takes over; the target logit stays
increasing in $\cos\theta$, with a step from $-1$ down to $-\cos m - m\sin m$ at $\theta = \pi - m$.
``easy_margin=True`` applies the margin only where $\cos\theta_y > 0$.) Without labels, or in eval mode,
a head returns the plain $s\cos\theta$.

**Piecewise index function** (iRPE, Wu et al. ICCV 2021, official code), $[\cdot]$ = round half to even:

$$I(x) = \begin{cases}[x] & |x|\le\alpha\\
  \mathrm{sign}(x)\min\Big(\beta,\ \Big[\alpha + \frac{\ln(|x|/\alpha)}{\ln(\gamma/\alpha)}(\beta-\alpha)\Big]\Big)
  & |x| > \alpha\end{cases}$$

cast to an integer (so $|I|\le\lfloor\beta\rfloor$); ratio $r$: $(\alpha,\beta,\gamma) = (r, 2r, 8r)$,
iRPE's default $r = 1.9$. Distances $\ge 0$ use $\lfloor\beta\rfloor + 1$ buckets.

**Facial structure distance** [our choice; the paper's definitions are in unrecoverable figures]. Points in
centre-grid cells, landmarks $\ell_1..\ell_5$ (eyes, nose, mouth corners), $\mathrm{IOD} = \lVert\ell_2 -
\ell_1\rVert$, $s(p) = \min_k\lVert p - \ell_k\rVert$, $r_k(p) = \lVert p - \ell_k\rVert/\mathrm{IOD}$:

$$D_{sal}(i, a) = |s(u_i) - s(a)|,\quad D_{rel}(i, a) = \tfrac15\sum_k |r_k(u_i) - r_k(a)|,\quad
  D = \lVert u_i - a\rVert + \gamma_{face}(D_{sal} + D_{rel}).$$

**URFM** (unified receptive fields mapping). $L$ learnable local centres $c_i$ on a $\sqrt L\times\sqrt L$
grid $u_i$, shared by both networks; per network key/value projections; an absolute, query-side facial PE:

$$q_i = c_iW_q + b_i,\quad b_i = P\big[I(D(u_i, \mathrm{anchor}))\big],\quad
  e_{ij} = \frac{q_i (f_jW^{net}_k)^\top}{\sqrt{d_h}},\quad h_i = \sum_j \mathrm{softmax}_j(e_{ij})\,f_jW^{net}_v,$$

per head ($h$ heads of width $d_h = d/h$). Whatever the token count $N$ of a network, $h\in\mathbb{R}^{L\times d}$.

**APT** (adaptable prompting teacher). Per Swin stage $i$, $t$ learnable prompts $p_i\in\mathbb{R}^{t\times C_i}$:
$[\hat x_{i+1}, \hat p_{i+1}] = B_i([\tilde x_i, p_i])$, $\tilde x_{i+1} = \mathrm{PM}(\hat x_{i+1})$ (patch merging
drops the prompts, the next stage gets fresh ones), teacher pixel features $f^T = [\hat x_K, \hat p_K]$. Inside a
block [our choice, VPT's mechanics] the prompts join every (shifted) window, the relative-position bias and the
shift mask get zero rows/columns for them, and their outputs are averaged over the windows.

**Losses.** One MSA (pre-LayerNorm, $h$ heads, residual, no MLP) shared by both sides gives $L\times L$ attention
maps $A$ and outputs $\mathrm{MSA}(h)$:

$$\mathcal{L}_{Attn} = \mathrm{MSE}(A_T, A_S),\qquad \mathcal{L}_{Feat} = \mathrm{MSE}(\mathrm{MSA}(h^T),
  \mathrm{MSA}(h^S)),$$
$$\mathcal{L} = \mathcal{L}_{margin}(\text{student}) + \lambda_A\mathcal{L}_{Attn} + \lambda_F\mathcal{L}_{Feat}
  + \lambda_T\mathcal{L}^{aux}_{margin}\big(\overline{\mathrm{MSA}(h^T)}\big),$$

the last term [our choice] keeping the trainable teacher side discriminative, so that both sides cannot
collapse onto one constant.
"""
from __future__ import annotations

import math
import numbers
from contextlib import nullcontext
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.swin_transformer import SwinTransformer, SwinTransformerBlock, window_partition, window_reverse
from torch import Tensor, nn

from ..models.features import dry_run, require_methods
from .base import Distiller, check_loss_weights, is_int

MARGINS = ("cosface", "arcface", "softmax")
TEACHER_UPDATES = ("joint", "aux", "detach")
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
TEMPLATE_SIZE = 112
ARCFACE_TEMPLATE = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655),
                    (70.7299, 92.2041))
"""The ArcFace / insightface 5-point alignment template, (x, y) pixels of a 112x112 face, in
:data:`LANDMARK_NAMES` order."""
IRPE_RATIO = 1.9  # iRPE's default ratio: alpha, beta, gamma = 1.9, 3.8, 15.2


# ------------------------------------------------------------------------------------------- checks


def _check_int(name: str, value: object, low: int = 1) -> int:
    if not is_int(value, low):
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_number(name: str, value: object, low: float = 0.0, strict: bool = False) -> float:
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if strict else value >= low))
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")


def _grid(value: int | Sequence[int]) -> tuple[int, int]:
    """(rows, cols) from an int (square) or a pair."""
    pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(pair) != 2 or not all(is_int(v, 1) for v in pair):
        raise ValueError(f"grid must be an int >= 1 or a (rows, cols) pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


# ------------------------------------------------------------------------------------- margin heads


def _check_cosine(cosine: Tensor, labels: Tensor) -> None:
    if cosine.ndim != 2:
        raise ValueError(f"expected (B, K) cosines, got shape {tuple(cosine.shape)}")
    if labels.ndim != 1 or labels.shape[0] != cosine.shape[0] or labels.is_floating_point():
        raise ValueError(f"expected ({cosine.shape[0]},) integer class labels, got {tuple(labels.shape)} "
                         f"({labels.dtype})")
    if labels.numel() and (labels.min() < 0 or labels.max() >= cosine.shape[1]):
        raise ValueError(f"labels must lie in [0, {cosine.shape[1]}), got values from {labels.min().item()} "
                         f"to {labels.max().item()}")


def cosface_logits(cosine: Tensor, labels: Tensor, s: float = 16.0, m: float = 0.2) -> Tensor:
    r"""$s(\cos\theta - m\,\mathrm{onehot}(y))$: CosFace's additive cosine margin on the target class."""
    _check_cosine(cosine, labels)
    onehot = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
    return s * (cosine - m * onehot)


def arcface_logits(cosine: Tensor, labels: Tensor, s: float = 16.0, m: float = 0.3,
                   easy_margin: bool = False) -> Tensor:
    r"""ArcFace's additive angular margin on the target class, insightface's ``CombinedMarginLoss`` rule.

    Target: $\cos(\theta_y + m) = \cos\theta_y\cos m - \sin\theta_y\sin m$ where $\cos\theta_y > \cos(\pi - m)$,
    else $\cos\theta_y - m\sin m$ (``easy_margin=False``, default); with ``easy_margin=True``,
    $\cos(\theta_y + m)$ where $\cos\theta_y > 0$, else $\cos\theta_y$. Times $s$; other classes $s\cos\theta_c$.
    The target cosine is clamped to $[-1+10^{-7}, 1-10^{-7}]$ so $\sin\theta$ keeps a finite gradient.
    """
    _check_cosine(cosine, labels)
    target = cosine.gather(1, labels[:, None]).clamp(-1 + 1e-7, 1 - 1e-7)
    sin = (1 - target * target).sqrt()
    with_margin = target * math.cos(m) - sin * math.sin(m)
    if easy_margin:
        target = torch.where(target > 0, with_margin, target)
    else:
        target = torch.where(target > math.cos(math.pi - m), with_margin, target - math.sin(math.pi - m) * m)
    return s * cosine.scatter(1, labels[:, None], target)


class MarginHead(nn.Module):
    r"""Shared body of :class:`CosFace` and :class:`ArcFace`: a (K, E) weight, $\cos\theta = \hat W\hat e$.

    ``forward(embeddings, labels=None)`` -> (B, K) logits: with labels and in training mode the margin is on
    the target class (:meth:`margin_logits`); otherwise $s\cos\theta$ (what evaluation and ``predict`` use).
    The weight starts from $\mathcal{N}(0, 0.01^2)$ (insightface).
    """

    def __init__(self, embed_dim: int, num_classes: int, s: float, m: float) -> None:
        super().__init__()
        self.embed_dim, self.num_classes = _check_int("embed_dim", embed_dim), _check_int("num_classes", num_classes)
        self.s, self.m = _check_number("s", s, strict=True), _check_number("m", m)
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim).normal_(0, 0.01))

    def cosine(self, embeddings: Tensor) -> Tensor:
        """(B, K) cosines between the embeddings and the class weights."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"expected (B, {self.embed_dim}) embeddings, got shape {tuple(embeddings.shape)}")
        return F.normalize(embeddings, dim=1) @ F.normalize(self.weight, dim=1).t()

    def margin_logits(self, cosine: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        cosine = self.cosine(embeddings)
        if labels is None or not self.training:
            return self.s * cosine
        return self.margin_logits(cosine, labels)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_classes={self.num_classes}, s={self.s}, m={self.m}"


class CosFace(MarginHead):
    r"""CosFace / large-margin cosine loss head: $z_y = s(\cos\theta_y - m)$ (:func:`cosface_logits`).

    Defaults $s = 16$, $m = 0.2$: the small-scale workbook's [our choice]; paper scale uses $s = 64$,
    $m = 0.35$-$0.4$.
    """

    def __init__(self, embed_dim: int, num_classes: int, s: float = 16.0, m: float = 0.2) -> None:
        super().__init__(embed_dim, num_classes, s, m)

    def margin_logits(self, cosine: Tensor, labels: Tensor) -> Tensor:
        return cosface_logits(cosine, labels, self.s, self.m)


class ArcFace(MarginHead):
    r"""ArcFace / additive angular margin head: $z_y = s\cos(\theta_y + m)$ with insightface's fallback
    (:func:`arcface_logits`; ``easy_margin=False`` by default, as insightface's arcface_torch).

    Defaults $s = 16$, $m = 0.3$ [our choice for 64 px faces and ~100 identities]; paper scale $s = 64$,
    $m = 0.5$. Requires $0 \le m < \pi/2$.
    """

    def __init__(self, embed_dim: int, num_classes: int, s: float = 16.0, m: float = 0.3,
                 easy_margin: bool = False) -> None:
        super().__init__(embed_dim, num_classes, s, m)
        if not self.m < math.pi / 2:
            raise ValueError(f"ArcFace needs a margin m < pi/2, got {m}")
        self.easy_margin = bool(easy_margin)

    def margin_logits(self, cosine: Tensor, labels: Tensor) -> Tensor:
        return arcface_logits(cosine, labels, self.s, self.m, self.easy_margin)


class SoftmaxHead(nn.Module):
    """Plain linear classifier with the margin heads' interface (``labels`` is accepted and ignored)."""

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.embed_dim, self.num_classes = _check_int("embed_dim", embed_dim), _check_int("num_classes", num_classes)
        self.fc = nn.Linear(embed_dim, num_classes)

    def forward(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"expected (B, {self.embed_dim}) embeddings, got shape {tuple(embeddings.shape)}")
        return self.fc(embeddings)


def margin_head(kind: str, embed_dim: int, num_classes: int, s: float | None = None,
                m: float | None = None) -> nn.Module:
    """``"cosface"`` (:class:`CosFace`), ``"arcface"`` (:class:`ArcFace`) or ``"softmax"`` (plain CE,
    :class:`SoftmaxHead`; ``s`` and ``m`` unused); ``None`` keeps a head's default ``s`` / ``m``."""
    _check_choice("margin", kind, MARGINS)
    if kind == "softmax":
        return SoftmaxHead(embed_dim, num_classes)
    kwargs = {k: v for k, v in (("s", s), ("m", m)) if v is not None}
    return (CosFace if kind == "cosface" else ArcFace)(embed_dim, num_classes, **kwargs)


# ------------------------------------------------------------------------------ piecewise index (iRPE)


def pif_params(ratio: float = IRPE_RATIO) -> tuple[float, float, float]:
    r"""iRPE's $(\alpha, \beta, \gamma) = (r, 2r, 8r)$ for ratio $r$ (default 1.9 -> (1.9, 3.8, 15.2))."""
    ratio = _check_number("ratio", ratio, strict=True)
    return ratio, 2 * ratio, 8 * ratio


def num_buckets(beta: float, signed: bool = False) -> int:
    r"""Buckets of :func:`piecewise_index`'s output: $\lfloor\beta\rfloor + 1$ for distances $\ge 0$,
    $2\lfloor\beta\rfloor + 1$ for signed inputs (4 and 7 for ratio 1.9)."""
    top = math.floor(_check_number("beta", beta, strict=True))
    return 2 * top + 1 if signed else top + 1


@torch.no_grad()
def piecewise_index(relative_position: Tensor, alpha: float = 1.9, beta: float = 3.8, gamma: float = 15.2,
                    dtype: torch.dtype = torch.long) -> Tensor:
    r"""iRPE's piecewise index function $I(x)$ (official ``piecewise_index``), element-wise, as ``dtype``.

    $|x|\le\alpha$: ``round(x)`` (``torch.round``, half to even). $|x|>\alpha$: ``sign(x) * (alpha +
    log(|x|/alpha) / log(gamma/alpha) * (beta - alpha)).round().clip(max=beta)``, then the cast truncates, so
    the largest index is $\lfloor\beta\rfloor$. Needs $0 < \alpha < \beta$ and $\gamma > \alpha$. Integer
    inputs are computed in float32; no gradient (the indices are a lookup).
    """
    if not isinstance(relative_position, Tensor):
        raise ValueError(f"relative_position must be a tensor, got {type(relative_position).__name__}")
    alpha, beta, gamma = (_check_number(n, v, strict=True) for n, v in (("alpha", alpha), ("beta", beta),
                                                                         ("gamma", gamma)))
    if not (alpha < beta and gamma > alpha):
        raise ValueError(f"need 0 < alpha < beta and gamma > alpha, got alpha={alpha}, beta={beta}, gamma={gamma}")
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
    return points if img_size is None else points * _check_int("img_size", img_size)


def grid_centres(grid: int | Sequence[int]) -> Tensor:
    r"""(rows * cols, 2) normalised (x, y) centres of a grid's cells, row-major: $((j + 0.5)/W, (i + 0.5)/H)$."""
    rows, cols = _grid(grid)
    ys, xs = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


def _anchor_point(anchor: int | str | Tensor | Sequence[float], landmarks: Tensor) -> Tensor:
    """(B, 2) anchor from a landmark index / name or from coordinates ((2,) or (B, 2))."""
    if isinstance(anchor, str):
        _check_choice("anchor", anchor, LANDMARK_NAMES)
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
                          gamma_face: float = 1.0, grid: int | Sequence[int] | None = None) -> dict[str, Tensor]:
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
    gamma_face = _check_number("gamma_face", gamma_face)
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
        rows, cols = _grid(grid)
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
    parts["total"] = euclid + gamma_face * parts["face"]
    return parts if batched else {k: v[0] for k, v in parts.items()}


def facial_structure_distance(positions: Tensor, landmarks: Tensor,
                              anchor: int | str | Tensor | Sequence[float] = "nose", gamma_face: float = 1.0,
                              grid: int | Sequence[int] | None = None) -> Tensor:
    r"""$D(u_i, a) = \tilde D + \gamma_{face}(D_{sal} + D_{rel})$, (P,) or (B, P); see :func:`facial_distance_parts`.

    $D(a, a) = 0$, $D\ge0$, $D(p, q) = D(q, p)$ (every part is symmetric), and $\gamma_{face} = 0$ gives the
    Euclidean distance.
    """
    return facial_distance_parts(positions, landmarks, anchor, gamma_face, grid)["total"]


# ------------------------------------------------------------------------------------------ attention


def _heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, N, d) -> (B, heads, N, d / heads)."""
    b, n, d = x.shape
    return x.view(b, n, num_heads, d // num_heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    """(B, heads, N, d_h) -> (B, N, heads d_h)."""
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


def _attend(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
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
    ``distance`` (L,) and ``bucket`` (L,) hold the template's values.

    ``forward(features, network, extra_tokens=None, landmarks=None)``: ``features`` (B, N, C) tokens or a
    (B, C, H, W) map (flattened row-major); ``extra_tokens`` (B, t, C), e.g. the teacher's prompts, are appended as
    extra keys/values (no PE: URFM's keys carry none); per-sample ``landmarks`` (B, 5, 2) recompute the buckets.
    Returns the local features $h$ (B, L, d) and the attention maps (B, heads, L, N [+ t]), rows summing to 1.
    """

    def __init__(self, in_dims: Mapping[str, int], dim: int = 64, grid: int | Sequence[int] = 4, num_heads: int = 4,
                 *, gamma_face: float = 1.0, pif_ratio: float = 3.0,
                 anchor: int | str | Sequence[float] = "nose", landmarks: Tensor | None = None,
                 key_norm: bool = True) -> None:
        super().__init__()
        if not isinstance(in_dims, Mapping) or not in_dims:
            raise ValueError(f"in_dims must be a non-empty mapping network name -> feature width, got {in_dims!r}")
        for name, width in in_dims.items():
            _check_int(f"in_dims[{name!r}]", width)
        self.dim, self.num_heads = _check_int("dim", dim), _check_int("num_heads", num_heads)
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.grid = _grid(grid)
        self.num_centres = self.grid[0] * self.grid[1]
        self.gamma_face = _check_number("gamma_face", gamma_face)
        self.pif = pif_params(pif_ratio)
        self.anchor = anchor
        self.in_dims = dict(in_dims)
        landmarks = template_landmarks() if landmarks is None else torch.as_tensor(landmarks, dtype=torch.float32)
        if tuple(landmarks.shape) != (5, 2):
            raise ValueError(f"URFM's landmarks must be one (5, 2) normalised set, got shape {tuple(landmarks.shape)}")
        self.register_buffer("landmarks", landmarks.clone())
        self.register_buffer("positions", grid_centres(self.grid))
        distance = facial_structure_distance(self.positions, landmarks, anchor, self.gamma_face, self.grid)
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
                                          self.gamma_face, self.grid)
        return piecewise_index(d, *self.pif)

    def queries(self, landmarks: Tensor | None = None) -> Tensor:
        r"""$q_i = c_iW_q + b_i$: (L, d), or (B, L, d) with per-sample landmarks."""
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
        out, attn = _attend(*(_heads(t, self.num_heads) for t in (q, k, v)))
        return _merge_heads(out), attn


class SharedMSA(nn.Module):
    r"""The MSA both sides share (spec §2.6): $\mathrm{MSA}(h) = h + W_o\,\mathrm{softmax}(QK^\top/\sqrt{d_h})V$,
    $Q, K, V$ from $\mathrm{LN}(h)$, $h$ heads, no MLP [our choice: the pre-LN residual sub-block].

    ``forward(h)`` with h (B, L, d) -> (output (B, L, d), attention (B, heads, L, L)).
    """

    def __init__(self, dim: int = 64, num_heads: int = 4) -> None:
        super().__init__()
        self.dim, self.num_heads = _check_int("dim", dim), _check_int("num_heads", num_heads)
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        if h.ndim != 3 or h.shape[2] != self.dim:
            raise ValueError(f"expected (B, L, {self.dim}) local features, got {tuple(h.shape)}")
        q, k, v = (_heads(t, self.num_heads) for t in self.qkv(self.norm(h)).chunk(3, dim=-1))
        out, attn = _attend(q, k, v)
        return h + self.proj(_merge_heads(out)), attn


# ---------------------------------------------------------------------------------------------- APT


def pad_relative_position_bias(bias: Tensor, num_prompts: int) -> Tensor:
    """(..., M², M²) relative-position bias -> (..., t + M², t + M²) with zero prompt rows and columns first."""
    return F.pad(bias, (num_prompts, 0, num_prompts, 0))


def pad_attention_mask(mask: Tensor, num_prompts: int) -> Tensor:
    """(n_W, M², M²) additive shift mask -> (n_W, t + M², t + M²): prompts see and are seen by every token."""
    return F.pad(mask, (num_prompts, 0, num_prompts, 0))


def _relative_position_bias(attn: nn.Module) -> Tensor:
    """timm ``WindowAttention``'s (1, heads, M², M²) bias, read from its table and index."""
    area = attn.relative_position_index.shape[0]
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)].view(area, area, -1)
    return bias.permute(2, 0, 1).unsqueeze(0)


def prompted_window_attention(attn: nn.Module, tokens: Tensor, num_prompts: int, mask: Tensor | None = None,
                              hide_prompts: bool = False) -> tuple[Tensor, Tensor]:
    r"""timm ``WindowAttention`` on (B n_W, t + M², C) windows whose first $t$ tokens are prompts.

    Same weights and arithmetic as timm's (non-fused) path: $\mathrm{softmax}(s\,qk^\top + \mathrm{bias} +
    \mathrm{mask})v$ -> proj, with bias and mask zero-padded for the prompts. ``hide_prompts`` (a check, spec
    §7.6) stops patch queries from attending to prompt keys, so the patch outputs equal the plain block's.
    Returns (output (B n_W, t + M², C), attention (B n_W, heads, t + M², t + M²)).
    """
    b_, n, c = tokens.shape
    heads, t = attn.num_heads, num_prompts
    q, k, v = attn.qkv(tokens).reshape(b_, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    logits = (q * attn.scale) @ k.transpose(-2, -1)
    logits = logits + pad_relative_position_bias(_relative_position_bias(attn), t)
    if mask is not None:
        n_w = mask.shape[0]
        logits = (logits.view(-1, n_w, heads, n, n) + pad_attention_mask(mask, t)[None, :, None]).view(-1, heads, n, n)
    if hide_prompts and t:
        hidden = torch.zeros(n, n, dtype=torch.bool, device=tokens.device)
        hidden[t:, :t] = True
        logits = logits.masked_fill(hidden, float("-inf"))
    weights = attn.attn_drop(logits.softmax(dim=-1))
    out = (weights @ v).transpose(1, 2).reshape(b_, n, -1)
    return attn.proj_drop(attn.proj(out)), weights


def prompted_block(block: SwinTransformerBlock, x: Tensor, prompts: Tensor, hide_prompts: bool = False,
                   ) -> tuple[Tensor, Tensor, Tensor]:
    r"""One timm ``SwinTransformerBlock`` on patch tokens ``x`` (B, H, W, C) plus ``prompts`` (B, t, C).

    Follows timm's block step by step (norm1 -> roll -> pad -> window partition -> attention -> reverse -> crop
    -> roll back -> residual; norm2 -> MLP -> residual), with the prompts replicated into every window before the
    attention and their outputs averaged over the $n_W$ windows after it; LayerNorms, MLP and residuals treat
    prompts like any token. Returns (x (B, H, W, C), prompts (B, t, C), the mean attention mass patch queries put
    on prompts (scalar, detached)).
    """
    b, h, w, c = x.shape
    t = prompts.shape[1]
    (wh, ww), (sh, sw) = block.window_size, block.shift_size
    shifted = block.norm1(x)
    if sh or sw:
        shifted = torch.roll(shifted, shifts=(-sh, -sw), dims=(1, 2))
    shifted = F.pad(shifted, (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh))
    hp, wp = shifted.shape[1:3]
    windows = window_partition(shifted, (wh, ww)).view(-1, wh * ww, c)
    n_w = windows.shape[0] // b
    replicated = block.norm1(prompts)[:, None].expand(b, n_w, t, c).reshape(b * n_w, t, c)
    mask = block.get_attn_mask(shifted) if getattr(block, "dynamic_mask", False) else block.attn_mask
    out, weights = prompted_window_attention(block.attn, torch.cat([replicated, windows], 1), t, mask, hide_prompts)
    prompt_out = out[:, :t].reshape(b, n_w, t, c).mean(dim=1)
    patch_out = window_reverse(out[:, t:].reshape(-1, wh, ww, c), (wh, ww), hp, wp)[:, :h, :w]
    if sh or sw:
        patch_out = torch.roll(patch_out, shifts=(sh, sw), dims=(1, 2))
    x = x + block.drop_path1(patch_out)
    prompts = prompts + block.drop_path1(prompt_out)
    x = x + block.drop_path2(block.mlp(block.norm2(x)))
    prompts = prompts + block.drop_path2(block.mlp(block.norm2(prompts)))
    mass = weights[:, :, t:, :t].sum(-1).mean().detach()
    return x, prompts, mass


class PromptedSwin(nn.Module):
    r"""APT: a **frozen** timm ``SwinTransformer`` with $t$ learnable prompts per stage; only the prompts train.

    The backbone is not edited: this module re-runs each ``SwinTransformerBlock`` through :func:`prompted_block`
    with the block's own submodules and weights. Per stage: patch merging (``stage.downsample``) on the patch
    tokens only, then fresh prompts (B, t, C_i) carried through the stage's blocks (``deep=True``: new prompts in
    every block, VPT-deep). The backbone is set to eval mode and ``requires_grad=False`` and stays in eval mode
    (``train()`` keeps it there): no dropout, no drop-path. Prompts start from Uniform$(-v, v)$,
    $v = \sqrt{6/(3\cdot\text{patch area} + C_1)}$ (VPT).

    Keep every stage grid divisible by its window (spec §5.10): on other grids timm pads after the roll and the
    padded zero tokens take part in the windows, prompts included.

    ``num_prompts=0`` runs the backbone's own modules (bit-identical to the plain model). ``hide_prompts=True``
    (a check) keeps patch tokens from attending to prompts, so patch outputs equal the plain model's.

    Interface:

    * ``forward_features(x)`` -> (patch tokens (B, h, w, C_K), prompts (B, t, C_K)), both through the final norm;
      the tokens equal ``backbone.forward_features(x)`` when $t = 0$;
    * ``forward(x)`` -> ``backbone.forward_head`` of the patch tokens: the teacher's own output (its embedding for
      :func:`kdlab.models.face.face_swin`, logits for a classifier);
    * ``pixel_features(x)`` -> $f^T = [\hat x_K, \hat p_K]$ (B, hw + t, C_K), what URFM reads;
    * ``prompt_attention_mass(x)`` -> (num_stages,) mean attention that patch queries give to the prompts.
    """

    def __init__(self, backbone: SwinTransformer, num_prompts: int = 4, deep: bool = False,
                 hide_prompts: bool = False) -> None:
        super().__init__()
        if not isinstance(backbone, SwinTransformer):
            raise ValueError(f"APT wraps a timm SwinTransformer (kdlab.models.create('swin', ...)), got "
                             f"{type(backbone).__name__}")
        self.num_prompts = _check_int("num_prompts", num_prompts, 0)
        self.deep, self.hide_prompts = bool(deep), bool(hide_prompts)
        self.backbone = backbone.eval().requires_grad_(False)
        self.stage_dims = [stage.blocks[0].dim for stage in backbone.layers]
        patch_area = math.prod(backbone.patch_embed.patch_size)
        self.init_value = math.sqrt(6.0 / (3 * patch_area + self.stage_dims[0]))
        self.prompts = nn.ParameterList()
        if self.num_prompts:
            for stage, dim in zip(backbone.layers, self.stage_dims):
                sets = len(stage.blocks) if self.deep else 1
                self.prompts.append(nn.Parameter(torch.empty(sets, self.num_prompts, dim)
                                                 .uniform_(-self.init_value, self.init_value)))

    @property
    def num_features(self) -> int:
        return self.stage_dims[-1]

    def train(self, mode: bool = True) -> "PromptedSwin":
        super().train(mode)
        self.backbone.eval()
        return self

    def _run(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        model = self.backbone
        x = model.patch_embed(x)
        b = x.shape[0]
        if not self.num_prompts:
            x = model.norm(model.layers(x))
            return x, x.new_zeros(b, 0, x.shape[-1]), x.new_zeros(len(model.layers))
        masses = []
        p = None
        for stage, sets in zip(model.layers, self.prompts):
            x = stage.downsample(x)  # patch merging sees the patch tokens only
            stage_mass = []
            for j, block in enumerate(stage.blocks):
                if j == 0 or self.deep:
                    p = sets[j if self.deep else 0].expand(b, -1, -1)  # fresh prompts of this stage's width
                x, p, mass = prompted_block(block, x, p, self.hide_prompts)
                stage_mass.append(mass)
            masses.append(torch.stack(stage_mass).mean())
        return model.norm(x), model.norm(p), torch.stack(masses)

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        tokens, prompts, _ = self._run(x)
        return tokens, prompts

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone.forward_head(self.forward_features(x)[0])

    def pixel_features(self, x: Tensor) -> Tensor:
        tokens, prompts = self.forward_features(x)
        return torch.cat([tokens.flatten(1, 2), prompts], dim=1)

    @torch.no_grad()
    def prompt_attention_mass(self, x: Tensor) -> Tensor:
        return self._run(x)[2]


# -------------------------------------------------------------------------------------------- losses


def alignment_losses(teacher_out: Tensor, student_out: Tensor, teacher_attn: Tensor,
                     student_attn: Tensor) -> tuple[Tensor, Tensor]:
    r"""$(\mathcal{L}_{Attn}, \mathcal{L}_{Feat}) = (\mathrm{MSE}(A_T, A_S), \mathrm{MSE}(\mathrm{MSA}(h^T),
    \mathrm{MSA}(h^S)))$, means over (B, heads, L, L) and (B, L, d). Unweighted."""
    if teacher_out.ndim != 3 or teacher_out.shape != student_out.shape:
        raise ValueError(f"expected teacher and student MSA outputs of one (B, L, d) shape, got "
                         f"{tuple(teacher_out.shape)} and {tuple(student_out.shape)}")
    if teacher_attn.ndim != 4 or teacher_attn.shape != student_attn.shape:
        raise ValueError(f"expected teacher and student attention maps of one (B, heads, L, L) shape, got "
                         f"{tuple(teacher_attn.shape)} and {tuple(student_attn.shape)}")
    return F.mse_loss(student_attn, teacher_attn), F.mse_loss(student_out, teacher_out)


def cafd_losses(teacher_local: Tensor, student_local: Tensor, msa: SharedMSA) -> dict[str, Tensor]:
    r"""``{"attn": L_Attn, "feat": L_Feat}`` (unweighted) from the local features $h^T, h^S$ (B, L, d), both
    through the ONE shared ``msa``; both are 0 when $h^T = h^S$."""
    if teacher_local.ndim != 3 or teacher_local.shape != student_local.shape:
        raise ValueError(f"expected teacher and student local features of one (B, L, d) shape, got "
                         f"{tuple(teacher_local.shape)} and {tuple(student_local.shape)}")
    (out_t, attn_t), (out_s, attn_s) = msa(teacher_local), msa(student_local)
    attn, feat = alignment_losses(out_t, out_s, attn_t, attn_s)
    return {"attn": attn, "feat": feat}


# ----------------------------------------------------------------------------------------- distillers


def _check_student(student: nn.Module, img_size: int, in_chans: int) -> tuple[int, int]:
    """(last-map channels, embedding width) of a student with timm's forward_features / forward_head split."""
    require_methods(student, "the CAFD student must provide forward_features(x) -> (B, C, h, w) and "
                             "forward_head(map) -> (B, E)")
    fmap, emb = dry_run(student, lambda x: (fmap := student.forward_features(x), student.forward_head(fmap)),
                        img_size, in_chans, batch=2)
    if fmap.ndim != 4 or emb.ndim != 2:
        raise ValueError(f"the student's forward_features must give a (B, C, h, w) map and forward_head a (B, E) "
                         f"embedding, got {tuple(fmap.shape)} and {tuple(emb.shape)}")
    return fmap.shape[1], emb.shape[1]


def _img_size(img_size: int | None, *models: nn.Module) -> int:
    """``img_size``, else the first model's ``img_size`` attribute (MobileFaceNet) or timm patch-embed size, else 64."""
    if img_size is not None:
        return _check_int("img_size", img_size)
    for model in models:
        size = getattr(model, "img_size", None) or getattr(getattr(model, "patch_embed", None), "img_size", None)
        if size is not None:
            return int(size if isinstance(size, numbers.Integral) else size[0])
    return 64


def _embedding_width(model: nn.Module, img_size: int, in_chans: int) -> int:
    out = dry_run(model, model, img_size, in_chans, batch=2)
    if out.ndim != 2:
        raise ValueError(f"the model must map images to (B, E) embeddings, got shape {tuple(out.shape)}")
    return out.shape[1]


class MarginSupervised(Distiller):
    r"""Face training without a teacher: ``{"margin": CE(head(e, y), y)}`` with $e$ = ``student(x)``, a (B, E)
    embedding, and a margin ``head`` (``margin`` = cosface / arcface / softmax, :func:`margin_head`).

    Pre-trains the Swin teacher (:func:`kdlab.models.face.face_swin`) and gives the "student from scratch" row.
    ``forward`` and ``predict`` return the head's $s\cos\theta$ logits over the training identities (for
    accuracy); :meth:`embed` gives the embeddings (for verification). ``img_size`` (one dry run to read $E$)
    defaults to the student's ``img_size`` attribute or timm input size, else 64.
    """

    def __init__(self, student: nn.Module, num_classes: int, margin: str = "cosface", s: float | None = None,
                 m: float | None = None, img_size: int | None = None, in_chans: int = 3) -> None:
        super().__init__(student)
        width = _embedding_width(student, _img_size(img_size, student), in_chans)
        self.head = margin_head(margin, width, num_classes, s, m)

    def embed(self, x: Tensor) -> Tensor:
        return self.student(x)

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.student(x))

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        emb = self.student(x)
        return self.head(emb), {"margin": F.cross_entropy(self.head(emb, y), y)}


FACE_KD_KINDS = ("embedding", "feature")


class FaceKD(MarginSupervised):
    r"""The classic face-KD baselines next to CAFD: the student's margin loss plus one imitation term
    [our choice of the two standard forms; the paper's baseline list is unverified, spec §4].

    * ``kind="embedding"``: $\lambda\,\mathrm{mean}_b\big(1 - \cos(e^S_b, e^T_b)\big)$, the student's embedding
      pulled towards the frozen teacher's (the face-recognition form of logit KD: the teacher's classifier was
      trained on other identities, so its embedding, not its logits, is what transfers). A linear projector
      maps $E_S\to E_T$ when the widths differ.
    * ``kind="feature"``: FitNet-style $\lambda\,\mathrm{MSE}\big(W * F^S, F^T\big)$ between the student's last
      map $F^S$ (B, C_S, h, w) through a 1x1 conv $W$ and the teacher's last-stage tokens as a map (B, C_K, h, w),
      resized to the student's grid when they differ ("feature MSE", the plain cross-architecture feature KD).

    ``teacher`` is a frozen face embedder with timm's split: the Swin of :func:`kdlab.models.face.face_swin` (the
    cross-architecture case) or a CNN such as :class:`kdlab.models.face.MobileFaceNet` (homologous); the terms are
    ``"margin"`` and ``"kd"`` (already weighted). ``predict`` / :meth:`embed` as :class:`MarginSupervised`.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, num_classes: int, kind: str = "embedding",
                 weight: float = 1.0, margin: str = "cosface", s: float | None = None, m: float | None = None,
                 img_size: int | None = None, in_chans: int = 3) -> None:
        _check_choice("kind", kind, FACE_KD_KINDS)
        check_loss_weights(weight=weight)
        size = _img_size(img_size, student, teacher)
        super().__init__(student, num_classes, margin, s, m, size, in_chans)
        self.teacher = teacher.eval().requires_grad_(False)
        self.kind, self.weight = kind, float(weight)
        if kind == "embedding":
            e_s, e_t = _embedding_width(student, size, in_chans), _embedding_width(teacher, size, in_chans)
            self.projector = nn.Identity() if e_s == e_t else nn.Linear(e_s, e_t)
        else:
            c_s, _ = _check_student(student, size, in_chans)
            t_map = dry_run(teacher, lambda x: self._teacher_map(x), size, in_chans, batch=2)
            self.projector = nn.Conv2d(c_s, t_map.shape[1], 1)

    def _teacher_map(self, x: Tensor) -> Tensor:
        features = self.teacher.forward_features(x)  # timm Swin: (B, h, w, C) tokens; a CNN: (B, C, h, w)
        return features.permute(0, 3, 1, 2) if isinstance(self.teacher, SwinTransformer) else features

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        if self.kind == "embedding":
            emb = self.student(x)
            with torch.no_grad():
                target = self.teacher(x)
            kd = (1 - F.cosine_similarity(self.projector(emb), target, dim=1)).mean()
        else:
            fmap = self.student.forward_features(x)
            emb = self.student.forward_head(fmap)
            with torch.no_grad():
                target = self._teacher_map(x)
            pred = self.projector(fmap)
            if target.shape[-2:] != pred.shape[-2:]:
                target = F.interpolate(target, size=pred.shape[-2:], mode="bilinear", align_corners=False)
            kd = F.mse_loss(pred, target)
        return self.head(emb), {"margin": F.cross_entropy(self.head(emb, y), y), "kd": self.weight * kd}


class CAFD(Distiller):
    r"""CAFD: margin loss on the student + $\lambda_A\mathcal{L}_{Attn}$ + $\lambda_F\mathcal{L}_{Feat}$ +
    $\lambda_T\mathcal{L}^{aux}_{margin}$ (teacher side), spec §2.6-2.7.

    **Student**: an embedding CNN with timm's split, ``forward_features(x)`` -> last map (B, C_S, h, w) and
    ``forward_head(map)`` -> (B, E) (:class:`kdlab.models.face.MobileFaceNet`, or a registry CNN built with
    ``num_classes=E``), plus a margin ``head`` over the ``num_classes`` training identities. **Teacher**: a
    pretrained timm ``SwinTransformer`` (:func:`kdlab.models.face.face_swin`), frozen, wrapped in
    :class:`PromptedSwin` (``self.apt``) with ``num_prompts`` per stage (0: no APT); its pixel features
    (B, hw + t, C_K) feed :class:`URFM` (``self.urfm``, networks ``"teacher"`` / ``"student"``); one
    :class:`SharedMSA` (``self.msa``); the auxiliary head (``self.aux_head``, the same margin kind) reads the
    token mean of $\mathrm{MSA}(h^T)$.

    Terms (always the same keys; inactive ones are 0): ``"margin"``, ``"attn"`` ($\lambda_A$ = ``lambda_attn``),
    ``"feat"`` ($\lambda_F$), ``"teacher_margin"`` ($\lambda_T$).

    **Schedule** [our choice]: while ``progress < acclimation`` (phase A, default the first 10 % of the steps; the
    workbook's 2 + 20 epochs is ``2 / 22``, 0 skips it) only ``teacher_margin`` is active (the student runs
    without gradient, in eval mode); then everything (phase B). **Teacher-side update**
    (``teacher_update``; which loss trains the prompts is unknown, spec §2.2):

    * ``"joint"`` (default): the distillation losses and the auxiliary loss train the prompts and the teacher side;
    * ``"aux"``: the prompts are trained by the auxiliary loss only (the distillation branch reads detached pixel
      features; the teacher's URFM projections still get distillation gradients);
    * ``"detach"``: in phase B the teacher side enters $\mathcal{L}_{Attn}$, $\mathcal{L}_{Feat}$ detached (the "no
      APT adaptation" ablation); it learns from the auxiliary loss only.

    ``gamma_face=0`` gives URFM's plain Euclidean PE. Defaults follow the workbook (spec §3.2): $L = 16$ (4x4),
    $d = 64$, 4 heads, $t = 4$, ratio 3, $\gamma_{face} = 1$, CosFace $s = 16$, $m = 0.2$, $\lambda_A = 10$,
    $\lambda_F = \lambda_T = 1$. ``predict(x)`` gives the student head's $s\cos\theta$ logits; :meth:`embed` the
    student embeddings; :meth:`inspect` every intermediate for plots. ``img_size`` (for one dry run of the
    student at construction) defaults to the student's ``img_size`` attribute, else the teacher's input size.
    """

    def __init__(self, student: nn.Module, teacher: SwinTransformer, num_classes: int, *, num_prompts: int = 4,
                 deep_prompts: bool = False, grid: int | Sequence[int] = 4, dim: int = 64, num_heads: int = 4,
                 gamma_face: float = 1.0, pif_ratio: float = 3.0, anchor: int | str | Sequence[float] = "nose",
                 landmarks: Tensor | None = None, margin: str = "cosface", s: float | None = None,
                 m: float | None = None, lambda_attn: float = 10.0, lambda_feat: float = 1.0,
                 lambda_teacher: float = 1.0, teacher_update: str = "joint", acclimation: float = 0.1,
                 img_size: int | None = None, in_chans: int = 3) -> None:
        if not isinstance(teacher, SwinTransformer):
            raise ValueError(f"the CAFD teacher must be a timm SwinTransformer, got {type(teacher).__name__}")
        super().__init__(student, teacher)
        check_loss_weights(lambda_attn=lambda_attn, lambda_feat=lambda_feat, lambda_teacher=lambda_teacher)
        _check_choice("teacher_update", teacher_update, TEACHER_UPDATES)
        self.acclimation = _check_number("acclimation", acclimation)
        if self.acclimation > 1:
            raise ValueError(f"acclimation is a fraction of training in [0, 1], got {acclimation}")
        student_dim, embed_dim = _check_student(student, _img_size(img_size, student, teacher), in_chans)
        self.apt = PromptedSwin(teacher, num_prompts, deep_prompts)
        self.urfm = URFM({"teacher": self.apt.num_features, "student": student_dim}, dim, grid, num_heads,
                         gamma_face=gamma_face, pif_ratio=pif_ratio, anchor=anchor, landmarks=landmarks)
        self.msa = SharedMSA(dim, num_heads)
        self.head = margin_head(margin, embed_dim, num_classes, s, m)
        self.aux_head = margin_head(margin, dim, num_classes, s, m)
        self.lambda_attn, self.lambda_feat, self.lambda_teacher = lambda_attn, lambda_feat, lambda_teacher
        self.teacher_update = teacher_update

    def embed(self, x: Tensor) -> Tensor:
        """The deployed student's (B, E) embeddings."""
        return self.student(x)

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.student(x))

    def teacher_pixels(self, x: Tensor) -> Tensor:
        """$f^T$ (B, hw + t, C_K); with gradient (to the prompts only) when there are prompts."""
        with nullcontext() if self.apt.num_prompts else torch.no_grad():
            return self.apt.pixel_features(x)

    def _student(self, x: Tensor, train_student: bool) -> tuple[Tensor, Tensor]:
        if train_student:
            fmap = self.student.forward_features(x)
            return fmap, self.student.forward_head(fmap)
        was_training = self.student.training
        self.student.eval()
        try:
            with torch.no_grad():
                fmap = self.student.forward_features(x)
                return fmap, self.student.forward_head(fmap)
        finally:
            self.student.train(was_training)

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        phase_b = progress >= self.acclimation
        fmap, emb = self._student(x, phase_b)
        output = self.head(emb)
        zero = emb.new_zeros(())
        f_t = self.teacher_pixels(x)
        h_t, _ = self.urfm(f_t, "teacher")
        out_t, attn_t = self.msa(h_t)
        terms = {"margin": zero, "attn": zero, "feat": zero,
                 "teacher_margin": self.lambda_teacher * F.cross_entropy(self.aux_head(out_t.mean(1), y), y)}
        if not phase_b:
            return output, terms
        if self.teacher_update == "aux" and self.apt.num_prompts:
            out_t, attn_t = self.msa(self.urfm(f_t.detach(), "teacher")[0])
        elif self.teacher_update == "detach":
            out_t, attn_t = out_t.detach(), attn_t.detach()
        h_s, _ = self.urfm(fmap, "student")
        out_s, attn_s = self.msa(h_s)
        attn, feat = alignment_losses(out_t, out_s, attn_t, attn_s)
        terms.update(margin=F.cross_entropy(self.head(emb, y), y), attn=self.lambda_attn * attn,
                     feat=self.lambda_feat * feat)
        return output, terms

    @torch.no_grad()
    def inspect(self, x: Tensor) -> dict[str, Tensor]:
        """Every intermediate, without gradient: ``teacher_pixels`` (B, N_T + t, C_K), ``student_map``
        (B, C_S, h, w), URFM ``teacher_local`` / ``student_local`` (B, L, d) and ``teacher_urfm_attn`` (B, heads,
        L, N_T + t) / ``student_urfm_attn`` (B, heads, L, N_S), MSA ``teacher_msa`` / ``student_msa`` (B, L, d)
        and ``teacher_msa_attn`` / ``student_msa_attn`` (B, heads, L, L), ``prompt_mass`` (num_stages,), and the
        URFM ``distance`` / ``bucket`` (L,)."""
        f_t = self.apt.pixel_features(x)
        fmap = self.student.forward_features(x)
        h_t, a_t = self.urfm(f_t, "teacher")
        h_s, a_s = self.urfm(fmap, "student")
        (o_t, m_t), (o_s, m_s) = self.msa(h_t), self.msa(h_s)
        return {"teacher_pixels": f_t, "student_map": fmap, "teacher_local": h_t, "student_local": h_s,
                "teacher_urfm_attn": a_t, "student_urfm_attn": a_s, "teacher_msa": o_t, "student_msa": o_s,
                "teacher_msa_attn": m_t, "student_msa_attn": m_s, "prompt_mass": self.apt.prompt_attention_mass(x),
                "distance": self.urfm.distance, "bucket": self.urfm.bucket}
