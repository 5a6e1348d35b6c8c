r"""Figures of the SW-TaT notebook (03): how Swin / SW-TaT cut a feature grid into (shifted) windows, the
shifted-window attention masks, cost scaling, and :func:`render_windows` (what :class:`kdlab.widgets.MaskExplorer`
redraws)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..checks import check_int, check_pair
from ..methods import effective_window, shifted_window_mask, window_layout
from .common import (LABEL_SIZE, TICK_SIZE, TITLE_SIZE, label_axes, new_figure, one_image, overlay_map,
                     plot_lines, to_numpy)

WINDOW_EDGE = {"color": "black", "linewidth": 2.0}
REGION_EDGE = {"color": "red", "linewidth": 2.0, "linestyle": (0, (3, 2))}
"""How window borders (solid black) and masked region borders inside a window (dashed red) are drawn."""


def _draw_edges(ax: Axes, window_id: np.ndarray, region: np.ndarray, cell: tuple[float, float]) -> None:
    """Borders between neighbouring cells of an (h, w) layout, in image units of ``cell`` = (height, width):
    solid black between windows, dashed red between regions of one window (the pairs the mask forbids)."""
    ch, cw = cell
    for axis in (0, 1):
        same_window = np.diff(window_id, axis=axis) == 0
        same_region = np.diff(region, axis=axis) == 0
        for style, where in ((WINDOW_EDGE, ~same_window), (REGION_EDGE, same_window & ~same_region)):
            for r, c in zip(*np.nonzero(where)):
                if axis == 0:  # a border below cell (r, c)
                    ax.plot([c * cw - 0.5, (c + 1) * cw - 0.5], [(r + 1) * ch - 0.5] * 2, **style)
                else:  # a border right of cell (r, c)
                    ax.plot([(c + 1) * cw - 0.5] * 2, [r * ch - 0.5, (r + 1) * ch - 0.5], **style)


def _draw_layout(ax: Axes, image: np.ndarray | None, grid: tuple[int, int], window: int, shift: int,
                 colour_by: str) -> None:
    """One panel: the (C, H, W) image (or a blank canvas of the grid) with the layout's cells coloured by
    ``colour_by`` ("window" or "region") and the window / region borders drawn over it."""
    window_id, region = (t.numpy() for t in window_layout(*grid, window, shift))
    values = window_id if colour_by == "window" else region
    if image is None:
        image = np.ones((3, *grid))
    overlay_map(ax, image, values % 20, cmap="tab20", norm=Normalize(-0.5, 19.5))
    cell = (image.shape[1] / grid[0], image.shape[2] / grid[1])
    _draw_edges(ax, window_id, region, cell)


def check_window_layout(grid: Any, window: Any, shift: Any) -> tuple[tuple[int, int], int, int]:
    """``(grid, window, shift)`` checked: ``grid`` an (h, w) pair of ints >= 1, ``window`` an int >= 1 and
    ``shift`` an int in [0, window)."""
    grid = check_pair("grid (h, w)", tuple(grid))
    window = check_int("window", window, low=1)
    return grid, window, check_int("shift", shift, low=0, high=window - 1)


def plot_window_partition(image: Any, grid: Sequence[int], window: int, shift: int | None = None,
                          title: str = "Window partition and the cyclic shift") -> Figure:
    r"""How SW-TaT (and Swin) cut an (h, w) feature grid laid over a (C, H, W) image into $M\times M$ windows.

    Three panels: the regular windows (shift 0); the shifted windows in the image's own coordinates, where the
    windows wrapping round the border show up as the same colour in opposite corners; and the canvas after the
    cyclic roll by $-s$, where those pieces sit together in one window and the mask keeps them apart (dashed
    red: pairs the mask forbids). ``shift`` defaults to $\lfloor M/2\rfloor$.
    """
    picture = one_image(image)
    grid, window, shift = check_window_layout(grid, window, window // 2 if shift is None else shift)
    fig, axes = new_figure(1, 3, figsize=(12, 4.6))
    _draw_layout(axes[0, 0], picture, grid, window, 0, "window")
    axes[0, 0].set_title(f"windows, shift 0 ({window}x{window} cells)", fontsize=LABEL_SIZE)
    _draw_layout(axes[0, 1], picture, grid, window, shift, "window")
    axes[0, 1].set_title(f"shifted windows, shift {shift}: colour = window", fontsize=LABEL_SIZE)
    cell = (picture.shape[1] // grid[0], picture.shape[2] // grid[1])
    rolled = np.roll(picture, (-shift * cell[0], -shift * cell[1]), axis=(1, 2))
    region = np.roll(window_layout(*grid, window, shift)[1].numpy(), (-shift, -shift), axis=(0, 1))
    overlay_map(axes[0, 2], rolled, region, cmap="Set3", norm=Normalize(-0.5, 11.5))
    _draw_edges(axes[0, 2], window_layout(*grid, window, 0)[0].numpy(), region, cell)
    axes[0, 2].set_title(f"after rolling by -{shift}: colour = region", fontsize=LABEL_SIZE)
    fig.legend(handles=[Line2D([], [], **WINDOW_EDGE, label="window border"),
                        Line2D([], [], **REGION_EDGE, label="masked: regions the roll brought together")],
               loc="outside lower center", ncol=2, fontsize=TICK_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def plot_window_masks(height: int, width: int, window: int, shift: int, max_windows: int = 16,
                      title: str | None = None) -> Figure:
    r"""The attention mask of every shifted window of an $H\times W$ map (Swin's Fig. 4 idea): for window $w$,
    the $M^2\times M^2$ matrix of query token $i$ (rows) against key token $j$ (columns), light where $i$ may
    attend to $j$, dark where the mask forbids it. Tokens are numbered row-major inside the window; padded
    positions (non-divisible sizes) form a region of their own. At most ``max_windows`` are drawn.
    """
    (height, width), window, shift = check_window_layout((height, width), window, shift)
    masks = shifted_window_mask(height, width, window, shift).numpy()[:max_windows]
    ncols = min(4, len(masks))
    nrows = math.ceil(len(masks) / ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(2.6 * ncols + 0.6, 2.6 * nrows + 0.8))
    for w, ax in enumerate(axes.ravel()):
        if w >= len(masks):
            ax.set_axis_off()
            continue
        ax.imshow(masks[w], cmap="Greys_r", vmin=0, vmax=1, interpolation="nearest")
        blocked = 1 - masks[w].mean()
        ax.set_title(f"window {w}: {blocked:.0%} masked", fontsize=TICK_SIZE + 1)
        ax.set_xlabel("key token j", fontsize=TICK_SIZE)
        ax.set_ylabel("query token i", fontsize=TICK_SIZE)
        ax.tick_params(labelsize=TICK_SIZE - 2)
    fig.suptitle(title or f"Shifted-window masks: {height}x{width} map, window {window}, shift {shift} "
                          f"(light = allowed)", fontsize=TITLE_SIZE)
    return fig


def plot_scaling(x: Any, series: Mapping[str, Any], slopes: Mapping[str, float], *, title: str, xlabel: str,
                 ylabel: str) -> Figure:
    r"""Measured curves on log-log axes with dashed guides $y \propto x^k$ for each ``slopes`` entry (name -> k),
    anchored at the first point of the first series: a curve parallel to a guide grows with that power."""
    fig = plot_lines(x, series, title=title, xlabel=xlabel, ylabel=ylabel)
    ax = fig.axes[0]
    xs = to_numpy(x).ravel()
    if np.any(xs <= 0) or any(np.any(to_numpy(v) <= 0) for v in series.values()):
        raise ValueError("plot_scaling needs positive x and y values (log axes)")
    anchor = to_numpy(next(iter(series.values()))).ravel()[0]
    for name, power in slopes.items():
        ax.plot(xs, anchor * (xs / xs[0]) ** power, linestyle="--", color="0.5", linewidth=1)
        ax.annotate(name, (xs[-1], anchor * (xs[-1] / xs[0]) ** power), fontsize=TICK_SIZE, color="0.35",
                    xytext=(4, 0), textcoords="offset points", va="center")
    ax.set_xscale("log")
    ax.set_yscale("log")
    return fig


def render_windows(height: int, width: int, window: int, shift: int, max_masks: int = 3) -> Figure:
    """An $H\\times W$ map cut into shifted windows (colour = window, in the map's own coordinates) and the masks of
    the ``max_masks`` windows with the most forbidden pairs (light = allowed). Sizes that are not
    multiples of the window are padded bottom/right first; an axis no longer than the window is one window."""
    (height, width), window, shift = check_window_layout((height, width), window, shift)
    masks = shifted_window_mask(height, width, window, shift)
    blocked = (~masks).float().mean(dim=(1, 2))
    shown = torch.argsort(blocked, descending=True, stable=True)[:max_masks].sort().values
    (wh, ww), (sh, sw) = effective_window(height, width, window, shift)
    fig, axes = new_figure(1, 1 + len(shown), figsize=(3.6 + 2.8 * len(shown), 3.9))
    _draw_layout(axes[0, 0], None, (height, width), window, shift, "window")
    axes[0, 0].set_title(f"{masks.shape[0]} windows of {wh}x{ww}, shift ({sh}, {sw})", fontsize=LABEL_SIZE)
    for ax, w in zip(axes[0, 1:], shown.tolist()):
        ax.imshow(masks[w].numpy(), cmap="Greys_r", vmin=0, vmax=1, interpolation="nearest")
        label_axes(ax, f"window {w}: {blocked[w]:.0%} masked", "key token j", "query token i")
    fig.legend(handles=[Line2D([], [], **WINDOW_EDGE, label="window border (one colour per window: a window "
                                                            "wrapped round the border shows in opposite corners)")],
               loc="outside lower center", fontsize=TICK_SIZE)
    fig.suptitle(f"Shifted windows on a {height}x{width} map: window {window}, shift {shift}", fontsize=TITLE_SIZE)
    return fig
