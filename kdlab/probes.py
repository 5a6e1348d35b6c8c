r"""Mechanism probes: small synthetic fits that isolate what one part of a method is for, before the realistic
experiments (notebook 03 §5).

**The displacement probe (SW-TaT's shifted windows).** The teacher map is the student map displaced by $k$
positions along the width, plus noise,

$$F^T_{c,y,x} = F^S_{c,y,x-k} + \sigma\,\xi_{c,y,x},\qquad F^S, \xi \sim \mathcal{N}(0, 1)\ \text{i.i.d.},$$

(cyclically: the first $k$ columns come from the last ones and are left out of the error). A TaT rebuild
$O = \mathrm{softmax}(QK^\top)V$ can undo the displacement only if position $x$ may attend to $x-k$: always for
global attention; inside $M$-wide windows only where $x$ and $x-k$ share a window, a fraction $1-k/M$ of the
positions; with the union of a regular and a shifted window (shift $s$) for every position while $k\le s$.
Only the embeddings are fitted (Adam), on fresh maps every step; the error is measured on fresh maps:

$$e(k) = \frac{\sum_{x\ge k}\lVert O_{:,:,x} - F^T_{:,:,x}\rVert^2}{\sum_{x\ge k}\lVert F^T_{:,:,x}\rVert^2}.$$

The content is i.i.d., so only a teacher-side query can find where its content sits in the student map
(``query_side="teacher"``, the paper's prose); with the official code's student query the rebuild fetches the
student value from where the *teacher* shows the student's content, the displacement twice over, and fails even
globally for $k>0$ — the probe's ``student_query`` rows measure that.

**The effective receptive field (DisDepth's LGConv, notebook 05 §7.3).** How far from one output position the
input still matters (Luo et al., *Understanding the Effective Receptive Field in Deep CNNs*, NeurIPS 2016): for an
output map $f(x)\in\mathbb{R}^{C\times h\times w}$ and the position $(i, j)$,

$$R(u, v) = \frac{\mathrm{mean}_n\sum_{c'}\big|\partial\big(\sum_c f(x_n)_{c,i,j}\big)/\partial x_{n,c',u,v}\big|}
{\sum_{u',v'}(\text{the same at }(u', v'))},$$

a map over the input pixels that sums to 1 (:func:`effective_receptive_field`); :func:`mass_within` is the share
of it within a radius of the field's centre of mass (in input pixels), and :func:`erf_radius` the radius that holds a
given share. A 3x3-conv stack's $R$ is concentrated near the centre even where its theoretical field covers the
image; a global branch (LGConv) can spread it over the whole image.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .checks import check_int, check_number
from .config import seed_everything
from .methods import SWTaTLoss, TaTEmbedding, global_attention

DISPLACEMENT_MODES = ("global", "windows, no shift", "SW-TaT sequential", "SW-TaT union")
"""The rebuilds the probe fits: global TaT; kdlab's SW-TaT with ``shift=0`` (two regular-window passes, the
no-shift ablation); SW-TaT as stacked by default (``stacking="sequential"``); SW-TaT with one softmax over each
position's regular and shifted window (``stacking="union"``)."""


def displaced_maps(batch_size: int, channels: int, size: int, shift: int, noise: float,
                   generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(student, teacher) (B, C, S, S) maps: i.i.d. normal student content, the teacher that content rolled by
    ``shift`` columns to the right plus ``noise`` times normal noise."""
    student = torch.randn(batch_size, channels, size, size, generator=generator)
    teacher = torch.roll(student, shift, dims=-1) + noise * torch.randn(student.shape, generator=generator)
    return student, teacher


class GlobalRebuild(nn.Module):
    """Global TaT's rebuild with its embeddings, shaped like :meth:`~kdlab.methods.SWTaTLoss.rebuild`."""

    def __init__(self, shape: tuple[int, int, int], query_side: str) -> None:
        super().__init__()
        self.embedding = TaTEmbedding(shape, shape, query_side)

    def rebuild(self, student_feat: Tensor, teacher_feat: Tensor) -> tuple[Tensor]:
        return (global_attention(*self.embedding(student_feat, teacher_feat)),)


def displacement_model(mode: str, shape: tuple[int, int, int], window: int, query_side: str = "teacher") -> nn.Module:
    """A fresh rebuild module for one of :data:`DISPLACEMENT_MODES` on (C, S, S) maps."""
    if mode == "global":
        return GlobalRebuild(shape, query_side)
    if mode not in DISPLACEMENT_MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, DISPLACEMENT_MODES))}, got {mode!r}")
    shift, stacking = {"windows, no shift": (0, "sequential"), "SW-TaT sequential": (None, "sequential"),
                       "SW-TaT union": (None, "union")}[mode]
    return SWTaTLoss(shape, shape, window, shift, stacking, query_side)


def rebuild_error(model: nn.Module, student: Tensor, teacher: Tensor, shift: int) -> float:
    """$e(k)$: the relative squared error of the model's rebuild(s) on the columns $x\\ge k$ (the mean over the
    rebuilt maps when a stacking gives two)."""
    keep = slice(shift, None)
    with torch.no_grad():
        errors = [((out - teacher)[..., keep] ** 2).sum() for out in model.rebuild(student, teacher)]
    return (torch.stack(errors).mean() / (teacher[..., keep] ** 2).sum()).item()


def fit_displacement(mode: str, shift: int, *, window: int = 4, size: int = 16, channels: int = 16,
                     noise: float = 0.1, steps: int = 300, batch_size: int = 8, lr: float = 1e-2, seed: int = 0,
                     query_side: str = "teacher") -> dict[str, float]:
    """Fit one rebuild's embeddings to one displacement $k$ = ``shift``: ``{"error": e(k) on 32 fresh maps,
    "ms_per_step": the mean time of one forward + backward + Adam step}``."""
    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    model = displacement_model(mode, (channels, size, size), window, query_side)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(steps):
        student, teacher = displaced_maps(batch_size, channels, size, shift, noise, generator)
        loss = torch.stack([F.mse_loss(out, teacher) for out in model.rebuild(student, teacher)]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    ms = (time.perf_counter() - start) / steps * 1e3
    student, teacher = displaced_maps(32, channels, size, shift, noise, generator)
    return {"error": rebuild_error(model.eval(), student, teacher, shift), "ms_per_step": ms}


def displacement_probe(shifts: Sequence[int], modes: Sequence[str] = DISPLACEMENT_MODES, *, window: int = 4,
                       size: int = 16, channels: int = 16, noise: float = 0.1, steps: int = 300,
                       student_query: bool = True, seed: int = 0, progress: bool = True) -> list[dict[str, object]]:
    """:func:`fit_displacement` for every mode and displacement $k$ in ``shifts`` (teacher-side query), plus, with
    ``student_query``, global TaT with the official code's student-side query. One row per fit:
    ``{"rebuild", "query", "k", "error", "ms_per_step"}``."""
    check_int("window", window, low=1)
    check_int("size", size, low=window)
    check_int("channels", channels, low=1)
    check_int("steps", steps, low=1)
    check_number("noise", noise, low=0.0)
    shifts = [check_int("shift", k, low=0, high=size - 1) for k in shifts]
    for mode in modes:
        displacement_model(mode, (1, window, window), window)  # an unknown mode fails before any training
    runs = [(mode, "teacher") for mode in modes] + ([("global", "student")] if student_query else [])
    rows = []
    with tqdm(total=len(runs) * len(shifts), desc="displacement probe", disable=not progress) as bar:
        for mode, side in runs:
            for k in shifts:
                fitted = fit_displacement(mode, k, window=window, size=size, channels=channels, noise=noise,
                                          steps=steps, seed=seed, query_side=side)
                rows.append({"rebuild": mode, "query": side, "k": k, **fitted})
                bar.update()
    return rows


def reachable_fraction(shift: int, window: int, rolled: int | None = None) -> dict[str, float]:
    r"""The fraction of positions $x$ (per row of an unbounded map) whose source $x-k$ lies in the same regular
    window ($1-k/M$, at least 0), and in the same regular *or* shifted window (shift ``rolled``, default
    $\lfloor M/2\rfloor$): what a perfect fit of each rebuild could reach. Counted over one period of $M$."""
    check_int("window", window, low=1)
    rolled = window // 2 if rolled is None else check_int("rolled", rolled, low=0, high=window - 1)
    same = lambda x, s: (x - s) // window == (x - shift - s) // window  # noqa: E731
    xs = range(window, 2 * window)
    regular = sum(same(x, 0) for x in xs) / window
    either = sum(same(x, 0) or same(x, rolled) for x in xs) / window
    return {"regular window": regular, "regular or shifted window": either}


def effective_receptive_field(fn: Callable[[Tensor], Tensor], x: Tensor, *,
                              position: tuple[int, int] | None = None) -> tuple[Tensor, tuple[float, float]]:
    r"""$R(u, v)$ (see the module notes) of ``fn``'s output position ``(i, j)`` (default the centre
    $(\lfloor h/2\rfloor, \lfloor w/2\rfloor)$), averaged over the images ``x`` (N, C', H, W).

    ``fn`` maps (N, C', H, W) to (N, C, h, w) (a feature map or a depth map); put a model in eval mode first, so
    BatchNorm uses its running statistics and every image's gradient is its own. Returns the (H, W) map (sums to
    1) and its centre (row, column), the field's centre of mass: where the position looks (with padding, a
    stride-$s$ map's position $i$ sits near input pixel $s\,i$, not at the middle of its cell). Parameters receive no
    gradient.
    """
    if x.ndim != 4 or not len(x):
        raise ValueError(f"x must be a non-empty (N, C, H, W) batch, got shape {tuple(x.shape)}")
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    if out.ndim != 4 or out.shape[0] != x.shape[0]:
        raise ValueError(f"fn must return one (C, h, w) map per image, got {tuple(out.shape)} for {len(x)} images")
    h, w = out.shape[-2:]
    i, j = (h // 2, w // 2) if position is None else position
    check_int("position row", i, low=0, high=h - 1)
    check_int("position column", j, low=0, high=w - 1)
    (grad,) = torch.autograd.grad(out[:, :, i, j].sum(), x)
    field = grad.abs().sum(1).mean(0)
    total = field.sum()
    if not total > 0:
        raise ValueError("the output does not depend on the input at that position (zero gradient)")
    field = field / total
    rows = torch.arange(field.shape[0], dtype=field.dtype)
    cols = torch.arange(field.shape[1], dtype=field.dtype)
    return field, (float((field.sum(1) * rows).sum()), float((field.sum(0) * cols).sum()))


def _radii(field: Tensor, centre: tuple[float, float]) -> Tensor:
    """Each input pixel's distance from ``centre`` (row, column), in pixels."""
    rows = torch.arange(field.shape[0], dtype=torch.float64)[:, None] - centre[0]
    cols = torch.arange(field.shape[1], dtype=torch.float64)[None, :] - centre[1]
    return (rows ** 2 + cols ** 2).sqrt()


def mass_within(field: Tensor, centre: tuple[float, float], radii: Sequence[float]) -> list[float]:
    """The share of an effective receptive field (an (H, W) map summing to 1) within each radius (pixels) of
    ``centre``: a curve rising from near 0 to 1; the further right it rises, the wider the field."""
    if field.ndim != 2:
        raise ValueError(f"field must be an (H, W) map, got shape {tuple(field.shape)}")
    distance, weights = _radii(field, centre), field.double()
    return [float(weights[distance <= check_number("radius", r, low=0.0)].sum()) for r in radii]


def erf_radius(field: Tensor, centre: tuple[float, float], share: float = 0.5) -> float:
    """The smallest radius (pixels, over the pixels' distances from ``centre``) that holds ``share`` of the
    field: e.g. ``share=0.5`` is the radius of half the gradient mass."""
    check_number("share", share, low=0.0, high=1.0)
    distance = _radii(field, centre).flatten()
    order = distance.argsort()
    cumulative = field.double().flatten()[order].cumsum(0)
    reached = int(torch.searchsorted(cumulative, torch.tensor(share * float(cumulative[-1]), dtype=torch.float64)))
    return float(distance[order][min(reached, len(order) - 1)])
