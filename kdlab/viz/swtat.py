r"""Figures of the SW-TaT notebook (03): how Swin / SW-TaT cut a feature grid into (shifted) windows, the
shifted-window attention masks, cost scaling, :func:`render_windows` (what :class:`kdlab.widgets.MaskExplorer`
redraws) and :func:`render_window_attention` (what :class:`kdlab.widgets.WindowAttentionExplorer` redraws: which
keys one query position may attend to, and where it does attend under global, regular-window and shifted-window
attention)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..checks import check_int, check_pair, is_int
from ..methods import effective_window, position_attention, shifted_window_mask, window_layout
from .common import (LABEL_SIZE, TICK_SIZE, TITLE_SIZE, class_colours, draw_image, image_batch, label_axes,
                     new_figure, one_image, overlay_map, plot_lines, to_numpy)

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


# ------------------------------------------------------------------------ one query position on a real map
QUERY_EDGE = {"fill": False, "edgecolor": "cyan", "linewidth": 2.5}
"""How the query cell is outlined in every panel (as :func:`~kdlab.viz.common.show_heatmaps` marks a cell)."""
REACH_NAMES = ("allowed in the regular window only", "allowed in the shifted window only",
               "allowed in both windows")
"""The kinds of allowed key cell in :func:`render_window_attention`'s first panel, drawn as values 1, 2, 3."""
REACH_COLOURS = ListedColormap([class_colours(10)[k] for k in (0, 1, 2)])
"""Blue, orange, green (colour-blind safe) for :data:`REACH_NAMES`; cells allowed in neither stay clear."""
REACH_ALPHA = 0.8
"""Opacity of those cells over the image."""
MASKED_CELL = {"fill": False, "hatch": "xxx", "edgecolor": "red", "linewidth": 0.0}
"""Cells of the query's shifted window that the mask forbids (another region: the cyclic roll brought them in)."""
WEIGHT_CMAP = "magma"
"""The colour map of the attention weights (as notebook 03's ``show_heatmaps``)."""


def check_attention_maps(query: Any, key: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``query`` and ``key`` as (B, d, h, w) maps of one shape (detached float CPU tensors), or a ValueError."""
    query, key = (torch.as_tensor(x).detach().cpu().float() for x in (query, key))
    if query.ndim != 4 or key.shape != query.shape:
        raise ValueError(f"query and key must be (B, d, h, w) maps of one shape, got query {tuple(query.shape)} "
                         f"and key {tuple(key.shape)}")
    return query, key


def check_position(position: Any, grid: tuple[int, int]) -> tuple[int, int]:
    """``position`` as a (row, col) cell of an (h, w) ``grid``, or a ValueError naming the grid's bounds."""
    h, w = grid
    ok = isinstance(position, Sequence) and len(position) == 2 and all(is_int(v) for v in position)
    if not ok or not (0 <= position[0] < h and 0 <= position[1] < w):
        raise ValueError(f"position must be a (row, col) cell of the {h}x{w} map (row in 0..{h - 1}, col in "
                         f"0..{w - 1}), got {position!r}")
    return int(position[0]), int(position[1])


class KeyReach(NamedTuple):
    """The key cells one query position reaches, each an (h, w) boolean array (:func:`allowed_keys`)."""

    regular: np.ndarray
    """Allowed under regular windows (shift 0): the query's window."""
    shifted: np.ndarray
    """Allowed under shifted windows: the query's shifted window *and* its Swin region."""
    masked: np.ndarray
    """In the query's shifted window but another region: the pairs the shifted-window mask forbids."""


def allowed_keys(grid: Sequence[int], position: Any, window: int, shift: int) -> KeyReach:
    """Which key cells the query at ``position`` of an (h, w) ``grid`` may attend to under regular and under
    shifted windows, and which the mask takes away. The rule of :func:`kdlab.methods.position_attention`:
    :func:`~kdlab.methods.window_layout` of the :func:`~kdlab.methods.effective_window` (an axis no longer than
    the window is one window, unshifted)."""
    grid, window, shift = check_window_layout(grid, window, shift)
    r, c = check_position(position, grid)
    same = []
    for s in (0, shift):
        window_id, region = (t.numpy() for t in window_layout(*grid, *effective_window(*grid, window, s)))
        same.append((window_id == window_id[r, c], region == region[r, c]))
    (regular, _), (in_window, in_region) = same
    return KeyReach(regular, in_window & in_region, in_window & ~in_region)


def _mark_query(ax: Axes, position: tuple[int, int], cell: tuple[float, float]) -> None:
    """Outline the query cell (:data:`QUERY_EDGE`); ``cell`` = one map cell's (height, width) in image pixels."""
    (r, c), (ch, cw) = position, cell
    ax.add_patch(Rectangle((c * cw - 0.5, r * ch - 0.5), cw, ch, **QUERY_EDGE))


def _draw_reach(ax: Axes, picture: np.ndarray, grid: tuple[int, int], position: tuple[int, int], window: int,
                shift: int) -> tuple[float, float]:
    """Panel 1: the allowed keys (:func:`allowed_keys`, coloured by :data:`REACH_COLOURS`) over the image, the
    masked cells of the query's shifted window hatched red (:data:`MASKED_CELL`) and the shifted partition's borders
    (:func:`_draw_edges`: in the map's own coordinates a wrapped window's pieces sit in opposite corners, so its
    region borders rarely touch). Returns one cell's (height, width) in image pixels."""
    reach = allowed_keys(grid, position, window, shift)
    kind = reach.regular.astype(int) + 2 * reach.shifted.astype(int)
    draw_image(ax, picture)  # the cells more opaque than overlay_map's, so the three colours read apart
    ax.imshow(np.ma.masked_equal(kind, 0), extent=(-0.5, picture.shape[2] - 0.5, picture.shape[1] - 0.5, -0.5),
              interpolation="nearest", alpha=REACH_ALPHA, cmap=REACH_COLOURS, norm=Normalize(0.5, 3.5))
    cell = (picture.shape[1] / grid[0], picture.shape[2] / grid[1])
    layout = window_layout(*grid, *effective_window(*grid, window, shift))
    _draw_edges(ax, *(t.numpy() for t in layout), cell)
    for r, c in zip(*np.nonzero(reach.masked)):
        ax.add_patch(Rectangle((c * cell[1] - 0.5, r * cell[0] - 0.5), cell[1], cell[0], **MASKED_CELL))
    _mark_query(ax, position, cell)
    ax.set_title(f"may attend (window {window}, shift {shift})\nkeys: {int(reach.regular.sum())} regular, "
                 f"{int(reach.shifted.sum())} shifted, {int(reach.masked.sum())} masked", fontsize=LABEL_SIZE)
    return cell


def _draw_weights(fig: Figure, ax: Axes, picture: np.ndarray, weights: np.ndarray, title: str) -> None:
    """One attention panel: the (h, w) weights over the image on their own scale from 0, with a colour bar.
    Cells with exactly zero weight (outside the query's window) are left clear, so the image shows there."""
    norm = Normalize(0.0, max(float(weights.max()), 1e-12))
    overlay_map(ax, picture, np.ma.masked_equal(weights, 0.0), cmap=WEIGHT_CMAP, norm=norm)
    ax.set_title(f"{title}\nmax weight {weights.max():.3f}", fontsize=LABEL_SIZE)
    fig.colorbar(ScalarMappable(norm=norm, cmap=WEIGHT_CMAP), ax=ax, label="attention weight (sums to 1)",
                 shrink=0.75)


def _reach_legend(fig: Figure) -> None:
    """The legend of the first panel's colours and lines, below the figure."""
    handles = [Patch(facecolor=colour, alpha=REACH_ALPHA, label=name)
               for colour, name in zip(REACH_COLOURS.colors, REACH_NAMES)]
    handles += [Patch(**{**MASKED_CELL, "linewidth": 0.5}, label="masked: same shifted window, other region"),
                Patch(**QUERY_EDGE, label="query position"),
                Line2D([], [], **WINDOW_EDGE, label="shifted window border")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=TICK_SIZE)


def _attention_inputs(image: Any, query: Any, key: Any, index: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The checked picture (C, H, W) and the ``index``-th (1, d, h, w) query and key maps."""
    query, key = check_attention_maps(query, key)
    index = check_int("index", index, low=0, high=len(query) - 1)
    array = to_numpy(image)
    if array.ndim == 4:
        if len(array) != len(query):
            raise ValueError(f"images and maps need the same batch size, got {len(array)} images and "
                             f"{len(query)} maps")
        picture = image_batch(array)[index]
    else:
        picture = one_image(array)
    return picture, query[index:index + 1], key[index:index + 1]


def render_window_attention(image: Any, query: Any, key: Any, position: Sequence[int], window: int, shift: int,
                            *, index: int = 0) -> Figure:
    r"""Where one query position looks, on the real feature map of an image (what
    :class:`kdlab.widgets.WindowAttentionExplorer` redraws).

    ``image`` is one (C, H, W) image or a batch (``index`` picks one); ``query`` and ``key`` are (B, d, h, w)
    embedded maps (:func:`kdlab.methods.embed_maps`), ``position`` a (row, col) cell of the h x w map. Four panels,
    the query cell outlined in cyan in each:

    1. *may attend*: the keys the query may attend to under regular $M\times M$ windows (blue), under the
       windows shifted by $\Delta$ (orange), or both (green), with the shifted partition's borders. Look for the
       shifted window reaching across the regular window's border, and for dashed red borders where the mask
       cuts pieces of a window apart (a position near the map's border after the cyclic roll).
    2. *global*: the query's attention over all teacher positions (:func:`~kdlab.methods.position_attention`).
    3. *regular windows* (shift 0) and 4. *shifted windows* (shift $\Delta$): the same softmax confined to the allowed
       keys of panel 1, so all the weight lands there; compare where the global peak is and whether a window
       keeps it. Each panel has its own colour scale from 0 and sums to 1; clear cells get zero weight.
    """
    picture, query, key = _attention_inputs(image, query, key, index)
    grid = tuple(query.shape[2:])
    grid, window, shift = check_window_layout(grid, window, shift)
    position = check_position(position, grid)
    fig, axes = new_figure(1, 4, figsize=(17, 5.2))
    _draw_reach(axes[0, 0], picture, grid, position, window, shift)
    cell = (picture.shape[1] / grid[0], picture.shape[2] / grid[1])
    panels = (("global attention: every key", None, 0),
              (f"regular windows (window {window}, shift 0)", window, 0),
              (f"shifted windows (window {window}, shift {shift})", window, shift))
    with torch.no_grad():
        for ax, (title, m, s) in zip(axes[0, 1:], panels):
            weights = position_attention(query, key, position, window=m, shift=s)[0].numpy()
            _draw_weights(fig, ax, picture, weights, title)
            _mark_query(ax, position, cell)
    _reach_legend(fig)
    (wh, ww), (sh, sw) = effective_window(*grid, window, shift)
    note = "" if (wh, ww, sh, sw) == (window, window, shift, shift) else \
        f" (on this {grid[0]}x{grid[1]} map: windows {wh}x{ww}, shift ({sh}, {sw}))"
    fig.suptitle(f"Image {index}: where query position {position} (cyan) may and does attend in the teacher map, "
                 f"window {window}, shift {shift}{note}", fontsize=TITLE_SIZE)
    return fig


def plot_displacement_probe(rows: Sequence[Mapping[str, Any]], cost_rows: Sequence[Mapping[str, Any]], *,
                            window: int) -> Figure:
    r"""Notebook 03 §4.2. Left: the displacement probe's rebuild error $\mathcal{E}(\Delta)$ against the displacement
    $\Delta$
    (:func:`kdlab.probes.displacement_probe` rows), one line per rebuild (dashed: the student-side query), with the
    window border $\Delta = M/2$ (the shift) and $\Delta = M$ marked; look for the line that stays low up to the shift.
    Right: the measured forward + backward time of each loss against the map's tokens (``cost_rows``,
    :func:`kdlab.bench.swtat`), on log-log axes: global attention's price grows with $N^2$."""
    if not rows or not cost_rows:
        raise ValueError("plot_displacement_probe needs the probe's rows and the cost rows")
    fig, axes = new_figure(1, 2, figsize=(13, 4.6))
    ax = axes[0, 0]
    colours = dict(zip(dict.fromkeys(row["rebuild"] for row in rows), class_colours(10)))
    for (rebuild, query) in dict.fromkeys((row["rebuild"], row["query"]) for row in rows):
        points = sorted((row["k"], row["error"]) for row in rows if (row["rebuild"], row["query"]) == (rebuild, query))
        label = rebuild if query == "teacher" else f"{rebuild}, student query (official code)"
        ax.plot(*zip(*points), marker="o", markersize=4, color=colours[rebuild], label=label,
                linestyle="-" if query == "teacher" else "--")
    for k, text in ((window // 2, "Δ = shift"), (window, "Δ = M")):
        ax.axvline(k, color="0.6", linestyle=":", linewidth=1)
        ax.annotate(text, (k, 1.0), xycoords=("data", "axes fraction"), fontsize=TICK_SIZE, color="0.35",
                    xytext=(3, -12), textcoords="offset points")
    label_axes(ax, f"Rebuilding a map displaced by Δ (window M = {window})", "displacement Δ (map cells)",
               "relative rebuild error 𝓔(Δ)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=TICK_SIZE)
    ax = axes[0, 1]
    by_loss: dict[str, list[tuple[int, float]]] = {}
    for row in cost_rows:
        side = int(str(row["map"]).split("x")[0])
        by_loss.setdefault(str(row["loss"]), []).append((side * side, float(row["ms"])))
    for (loss, points), colour in zip(by_loss.items(), class_colours(len(by_loss))):
        ax.plot(*zip(*sorted(points)), marker="o", markersize=4, color=colour, label=loss)
    ax.set_xscale("log")
    ax.set_yscale("log")
    label_axes(ax, "Price: one loss step against the map size (section 4.1)", "tokens N = H·W (log)",
               "forward + backward time (ms, log)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=TICK_SIZE)
    return fig
