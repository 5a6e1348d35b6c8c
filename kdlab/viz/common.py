r"""What every notebook's figures share: sizes, the palette, labelling, and the drawing helpers the per-notebook
modules build on (history curves, bars, lines, images, maps over images, class-label maps).

Every figure function returns a matplotlib ``Figure``. The helpers take plain lists, NumPy arrays or torch
tensors and know nothing about training. Figures are made with :func:`new_figure` (``plt.subplots``, so
Jupyter's inline backend renders them) and closed at once: a returned figure is displayed exactly once, by
the cell that returns it, and pyplot keeps no reference to it (no memory growth when a widget redraws
hundreds of times).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from ..checks import check_int, check_positive

TITLE_SIZE = 13
LABEL_SIZE = 11
TICK_SIZE = 10
OVERLAY_ALPHA = 0.55
"""Opacity of a map drawn over an image (:func:`show_heatmaps`, :func:`show_label_maps`)."""
MARK_HATCH = "///"
"""Hatching of the label-map cells whose label differs from the reference (global) label."""

PALETTE = tuple(sns.color_palette("colorblind"))
"""The package's one colour cycle: seaborn's ``colorblind`` (Okabe–Ito-like, safe for the common colour-vision
deficiencies). Every axes :func:`new_figure` makes cycles through it, so no figure falls back to matplotlib's
default cycle, which is not colour-blind safe."""

BASELINES = ("no KD", "labels only")
"""The rows every notebook compares against: drawn in :data:`BASELINE_COLOUR` in every figure (:func:`series_colours`),
so the reader finds the baseline at a glance in any notebook."""
BASELINE_COLOUR = (0.45, 0.45, 0.45)

METHOD_FAMILIES = (
    ("DisDepth", 6, ("DisDepth",)),
    ("CAFD", 5, ("CAFD",)),
    ("SW-TaT", 4, ("SW-TaT", "TaT", "windows")),
    ("CSKD", 3, ("CSKD",)),
    ("DeiT", 8, ("DeiT",)),
    ("OFA", 2, ("OFA",)),
    ("feature matching", 1, ("FitNet", "feature MSE", "feature-MSE")),
    ("logit KD", 0, ("Hinton KD", "embedding KD")),
)
"""``(family, index into PALETTE, name keywords)``: a row whose name contains a keyword (the first family that
matches) is drawn in its family's colour in every notebook — Hinton KD always blue, feature matching (FitNet,
feature MSE) always orange, each paper's method its own colour. Rows of no family take the palette's other
colours."""
SPARE_COLOURS = (9, 2, 4, 3, 5, 8, 6)
"""The palette indices a row of no family may take, in order, when its figure has no row of their family: light blue
first, never blue or orange (logit KD and feature matching appear in several notebooks), grey (index 7, too close to
the baselines') only when these run out."""
_SHADES = (0.0, 0.45, -0.35, 0.7, -0.55)
"""How the k-th row of one family in one figure is shaded: towards white (> 0) or black (< 0) by that much."""


def method_family(name: str) -> str | None:
    """The family of a row name (:data:`METHOD_FAMILIES`; ``"baseline"`` for :data:`BASELINES` and their variants,
    such as "labels only + bias fix"), or ``None``."""
    if name in BASELINES or name.startswith(tuple(f"{b}{sep}" for b in BASELINES for sep in (" ", ","))):
        return "baseline"
    if name == "KD":  # Hinton KD's row where the notebook calls it plain KD (03)
        return "logit KD"
    return next((family for family, _, keywords in METHOD_FAMILIES if any(k in name for k in keywords)), None)


def _shade(colour: Sequence[float], amount: float) -> tuple[float, float, float]:
    target = 1.0 if amount > 0 else 0.0
    return tuple(float(c + abs(amount) * (target - c)) for c in colour[:3])


def series_colours(names: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per named series, the same for a method in every notebook: a baseline in :data:`BASELINE_COLOUR`,
    a row of a :data:`METHOD_FAMILIES` family in its family's colour, the second, third … row of one family in
    lighter and darker shades of it (in the order given), and rows of no family through the palette's colours
    that no family of this figure uses (:data:`SPARE_COLOURS`)."""
    families = {name: method_family(name) for name in names}
    base = {family: PALETTE[index] for family, index, _ in METHOD_FAMILIES} | {"baseline": BASELINE_COLOUR}
    used = {index for family, index, _ in METHOD_FAMILIES if family in families.values()}
    spare = [k for k in SPARE_COLOURS if k not in used] + [7]
    colours, seen = {}, {}
    for name in names:
        family = families[name]
        if family is None:
            k = sum(1 for other in colours if families[other] is None)
            colours[name] = PALETTE[spare[k % len(spare)]]
            continue
        rank = seen[family] = seen.get(family, -1) + 1
        colours[name] = _shade(base[family], _SHADES[rank % len(_SHADES)])
    return colours


Rows = Sequence[Mapping[str, Any]]


# --------------------------------------------------------------------------------------------- helpers
def to_numpy(x: Any) -> np.ndarray:
    """A tensor (any device, with or without grad), array or nested list as a float NumPy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A new figure with a (nrows, ncols) array of axes that cycle through :data:`PALETTE`, already closed in pyplot
    (see module docstring)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_prop_cycle(color=PALETTE)
    plt.close(fig)
    return fig, axes


def label_axes(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=LABEL_SIZE + 1)
    ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)


def epoch_axis(ax: Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _series(rows: Rows, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of ``key`` over the rows that have it; a row without "epoch" counts as its index + 1."""
    points = [(row.get("epoch", i + 1), row[key]) for i, row in enumerate(rows) if row.get(key) is not None]
    if not points:
        return np.empty(0), np.empty(0)
    epochs, values = zip(*points, strict=True)
    return np.asarray(epochs, dtype=np.float64), np.asarray(values, dtype=np.float64)


def _keys(rows: Rows, prefix: str, wanted: Sequence[str] | None) -> list[str]:
    """Keys starting with ``prefix`` in first-seen order, restricted to ``wanted`` when given."""
    keys = dict.fromkeys(key for row in rows for key in row if key.startswith(prefix))
    return [key for key in keys if wanted is None or key in wanted]


# --------------------------------------------------------------------------------------------- curves
def plot_history(rows: Rows, metrics: Sequence[str] | None = None, title: str = "Training history", *,
                 loss_label: str = "loss (nats)", metric_label: str = "value") -> Figure:
    """Per-epoch curves of one run: training loss terms (left, y axis ``loss_label``: the default fits
    cross-entropy terms; say what the terms are when they are not in nats, e.g. SILog) and validation metrics
    (right, y axis ``metric_label``).

    ``rows`` are per-epoch dicts such as ``{"epoch": 1, "train/loss": 2.1, "train/kd": 0.8, "val/acc": 0.5,
    "lr": 0.01, "time_s": 3.2}``. Every ``train/...`` key goes to the left panel and every ``val/...`` key to
    the right one (``lr``, ``time_s`` and other keys are not drawn); ``metrics`` restricts both panels to
    the listed keys. Keys missing from some rows are drawn where present; a single row gives points.
    """
    if not rows:
        raise ValueError("plot_history needs at least one row (one epoch)")
    fig, axes = new_figure(1, 2, figsize=(11, 4))
    panels = (("train/", "training loss terms", loss_label), ("val/", "validation metrics", metric_label))
    for ax, (prefix, panel_title, ylabel) in zip(axes[0], panels, strict=True):
        keys = _keys(rows, prefix, metrics)
        for key in keys:
            ax.plot(*_series(rows, key), marker="o", markersize=4, label=key.removeprefix(prefix))
        if keys:
            ax.legend(fontsize=TICK_SIZE)
        else:
            ax.text(0.5, 0.5, f"no {prefix}... keys", ha="center", va="center", transform=ax.transAxes)
        label_axes(ax, panel_title, "epoch", ylabel)
        epoch_axis(ax)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


AXIS_NAMES = {"val/acc": "validation accuracy", "val/loss": "validation loss (nats)", "train/loss": "training loss",
              "val/omitted_acc": "validation accuracy on the omitted class", "val/miou": "validation mIoU",
              "val/abs_rel": "validation AbsRel (mean |ŷ − y| / y, unitless)", "val/rmse": "validation RMSE (m)",
              "val/d1": "validation δ1 (share of pixels within 25 %)", "val/silog": "validation SILog metric (×100)"}
"""Readable axis labels of the history keys the figures plot (never a raw key like ``val/acc``)."""


def plot_histories(
    histories: Mapping[str, Rows | Sequence[Rows]], metric: str = "val/acc", title: str | None = None,
    ylabel: str | None = None,
) -> Figure:
    """Several runs' ``metric`` against the epoch on one axis, one line per label; the y axis is ``ylabel``, by
    default the metric's :data:`AXIS_NAMES` entry (a metric without one needs ``ylabel``: an axis never shows a raw
    key such as ``val/acc``).

    A value of ``histories`` is either one run (a list of per-epoch dicts) or several seeds of the same
    recipe (a list of such lists); for seeds the line is the per-epoch mean and the band spans mean ± one standard
    deviation over the seeds (sample std, ddof = 1), the legend says how many seeds.
    """
    if not histories:
        raise ValueError("plot_histories needs at least one run")
    if ylabel is None and metric not in AXIS_NAMES:
        raise ValueError(f"{metric!r} has no readable axis name in AXIS_NAMES: pass ylabel= (with its unit)")
    fig, axes = new_figure(figsize=(7, 4.5))
    ax = axes[0, 0]
    colours = series_colours(list(histories))
    for label, runs in histories.items():
        seeds = [runs] if runs and isinstance(runs[0], Mapping) else list(runs)
        curves = [dict(zip(*_series(rows, metric), strict=True)) for rows in seeds]
        epochs = sorted(set().union(*curves))
        if not epochs:
            raise ValueError(f"run {label!r} has no {metric!r} values")
        values = [[curve[e] for curve in curves if e in curve] for e in epochs]
        name = label if len(seeds) == 1 else f"{label} (mean ± std of {len(seeds)} seeds)"
        means = np.array([np.mean(v) for v in values])
        (line,) = ax.plot(epochs, means, marker="o", markersize=4, label=name, color=colours[label])
        if len(seeds) > 1:
            spread = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values])
            ax.fill_between(epochs, means - spread, means + spread, color=line.get_color(), alpha=0.2)
    name = ylabel or AXIS_NAMES[metric]
    label_axes(ax, title or f"{name} per epoch", "epoch", name)
    ax.legend(fontsize=TICK_SIZE)
    epoch_axis(ax)
    return fig


# --------------------------------------------------------------------------------------------- images
def image_batch(x: Any) -> np.ndarray:
    """An (N, C, H, W) batch with C = 1 or 3 as a float NumPy array, or a ``ValueError`` saying what is wrong."""
    images = to_numpy(x)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, C, H, W) with C in (1, 3), got {images.shape}")
    return images


def one_image(x: Any) -> np.ndarray:
    """One (C, H, W) image with C = 1 or 3 as a float NumPy array, or a ``ValueError`` saying what is wrong."""
    image = to_numpy(x)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected one image of shape (C, H, W) with C in (1, 3), got {image.shape}")
    return image


def draw_image(ax: Axes, image: np.ndarray) -> None:
    """One (C, H, W) image with values in [0, 1] (clipped), grey when C = 1, without axis ticks."""
    pixels = np.clip(image.transpose(1, 2, 0), 0.0, 1.0)
    ax.imshow(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_axis_off()


def show_images(x: Any, labels: Sequence[int] | None = None, classes: Sequence[str] | None = None, n: int = 16,
                ncols: int = 8, title: str = "Samples", masks: Any = None) -> Figure:
    """A grid of the first ``n`` images of an (N, C, H, W) batch with values in [0, 1] and C = 1 or 3.

    Captions are ``classes[label]`` (or the label itself without ``classes``). ``masks`` (N, H, W), integer
    or boolean, is overlaid half-transparently, one colour per value 1-9 (:func:`class_colours`, colour-blind safe), with 0
    (background) left clear.
    """
    images = image_batch(x)
    count = min(n, len(images))
    if count == 0:
        raise ValueError("show_images needs at least one image")
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(1.4 * ncols, 1.5 * nrows + 0.5))
    label_values = None if labels is None else [int(v) for v in to_numpy(labels).ravel()]
    mask_values = None if masks is None else to_numpy(masks)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= count:
            continue
        draw_image(ax, images[i])
        if mask_values is not None:
            ax.imshow(np.ma.masked_equal(mask_values[i], 0), cmap=ListedColormap(class_colours(10)), vmin=-0.5,
                      vmax=9.5, alpha=0.5, interpolation="nearest")
        if label_values is not None:
            caption = classes[label_values[i]] if classes is not None else str(label_values[i])
            ax.set_title(caption, fontsize=TICK_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


# --------------------------------------------------------------------------------------------- maps over images
def overlay_map(ax: Axes, image: np.ndarray, values: np.ndarray, **style: Any) -> AxesImage:
    """A (C, H, W) image with an (h, w) map over it: h x w cells stretched over the H x W image (nearest
    neighbour, no smoothing, so every cell stays visible), :data:`OVERLAY_ALPHA` opaque. ``style`` goes to
    ``imshow`` (``cmap``, ``norm``); returns the map's image."""
    draw_image(ax, image)
    height, width = image.shape[1:]
    return ax.imshow(values, extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest",
                     alpha=OVERLAY_ALPHA, **style)


def per_image(name: str, values: Any, count: int, dims: Sequence[str]) -> np.ndarray:
    """``values`` as a finite array of shape ``dims`` (e.g. ``("N", "h", "w")``) with N = ``count`` images."""
    array = to_numpy(values)
    if array.ndim != len(dims) or len(array) != count:
        shape = f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"
        raise ValueError(f"{name} must have shape {shape} with N = {count} (one per image), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values")
    return array


def _overlay_inputs(images: Any, maps: Mapping[str, Any], n: int | None,
                    caller: str) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """The checked (N, C, H, W) images, each (N, h, w) map by name, and how many rows to show (``n``, at most N)."""
    batch = image_batch(images)
    if len(batch) == 0:
        raise ValueError(f"{caller} needs at least one image")
    if not maps:
        raise ValueError(f"{caller} needs at least one map")
    if n is not None:
        check_int("n (the number of rows)", n, low=1)
    arrays = {name: per_image(f"map {name!r}", values, len(batch), ("N", "h", "w")) for name, values in maps.items()}
    return batch, arrays, len(batch) if n is None else min(n, len(batch))


def _overlay_grid(images: np.ndarray, names: Sequence[str], *, title: str,
                  extra_width: float) -> tuple[Figure, np.ndarray]:
    """One row per image: the image, then one axis per map (titled on the first row), for the caller to fill."""
    ncols = 1 + len(names)
    fig, axes = new_figure(len(images), ncols, figsize=(2.4 * ncols + extra_width, 2.4 * len(images) + 0.7))
    for ax, image in zip(axes[:, 0], images):
        draw_image(ax, image)
    for ax, name in zip(axes[0], ["image", *names]):
        ax.set_title(name, fontsize=LABEL_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig, axes


def show_heatmaps(images: Any, maps: Mapping[str, Any], *, title: str, cmap: str = "magma", n: int | None = None,
                  vmin: float | None = None, vmax: float | None = None, mark: tuple[int, int] | None = None) -> Figure:
    """Maps over images: one row per image (N, C, H, W, values in [0, 1]), first the image alone, then one column
    per named map (N, h, w), e.g. a CNN's dense logit of the true class or a ViT's class-token attention.

    Each map is drawn over its image as h x w cells (nearest neighbour, half transparent) with one colour bar
    per column, labelled with the map's name (put the unit there). A column's colour scale spans its shown
    values unless ``vmin`` / ``vmax`` fix it for every column. ``n`` limits the rows to the first ``n`` images.
    ``mark`` = (row, col) outlines one map cell in every panel (e.g. the query position of an attention map).
    """
    batch, arrays, count = _overlay_inputs(images, maps, n, "show_heatmaps")
    if mark is not None:
        h, w = next(iter(arrays.values())).shape[1:]
        if len(mark) != 2 or not (0 <= mark[0] < h and 0 <= mark[1] < w):
            raise ValueError(f"mark must be a (row, col) cell of the {h}x{w} maps, got {mark!r}")
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise ValueError(f"vmin must be below vmax, got vmin={vmin!r}, vmax={vmax!r}")
    fig, axes = _overlay_grid(batch[:count], list(arrays), title=title, extra_width=1.2 * len(arrays))
    for column, (name, values) in zip(axes[:, 1:].T, arrays.items()):
        shown = values[:count]
        norm = Normalize(shown.min() if vmin is None else vmin, shown.max() if vmax is None else vmax)
        for ax, image, cells in zip(column, batch, shown):
            overlay_map(ax, image, cells, cmap=cmap, norm=norm)
            if mark is not None:
                ch, cw = image.shape[1] / cells.shape[0], image.shape[2] / cells.shape[1]
                ax.add_patch(Rectangle((mark[1] * cw - 0.5, mark[0] * ch - 0.5), cw, ch, fill=False,
                                       edgecolor="cyan", linewidth=2))
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(column), label=name, shrink=0.8)
    return fig


def class_colours(num_classes: int) -> list[tuple[float, float, float]]:
    """One fixed colour per class index: seaborn's colour-blind-safe ``colorblind`` palette up to 10 classes
    (no safe palette tells more apart), evenly spaced hues beyond."""
    return sns.color_palette("colorblind" if num_classes <= 10 else "husl", num_classes)


def _class_indices(name: str, values: np.ndarray, num_classes: int) -> np.ndarray:
    """``values`` as integer class indices, or a ``ValueError`` unless they are whole numbers in 0..num_classes-1."""
    if values.size and (np.any(values != np.round(values)) or values.min() < 0 or values.max() >= num_classes):
        raise ValueError(f"{name} must hold integer class labels in 0..{num_classes - 1}, "
                         f"got values from {values.min():g} to {values.max():g}")
    return values.astype(np.int64)


def draw_label_map(ax: Axes, image: Any, labels: Any, classes: Sequence[str],
                    reference: int | None = None) -> float | None:
    """An (h, w) map of class labels over a (C, H, W) image, one colour per class (:func:`class_colours`).

    With a ``reference`` label (the global prediction), the cells whose label differs from it are hatched
    (:data:`MARK_HATCH`); returns the fraction of such cells (``None`` without a reference).
    """
    image, labels = to_numpy(image), to_numpy(labels).astype(np.int64)
    colours = ListedColormap(class_colours(len(classes)))
    overlay_map(ax, image, labels, cmap=colours, norm=Normalize(-0.5, len(classes) - 0.5))
    if reference is None:
        return None
    differ = labels != int(reference)
    cell_height, cell_width = image.shape[1] / labels.shape[0], image.shape[2] / labels.shape[1]
    for row, col in zip(*np.nonzero(differ)):
        ax.add_patch(Rectangle((col * cell_width - 0.5, row * cell_height - 0.5), cell_width, cell_height,
                               fill=False, hatch=MARK_HATCH, edgecolor="black", linewidth=0.8))
    return float(differ.mean())


def class_legend(fig: Figure, classes: Sequence[str], shown: np.ndarray, marked: bool) -> None:
    """One legend, right of the figure, naming the classes among the ``shown`` labels (and the hatching)."""
    colours = class_colours(len(classes))
    handles = [Patch(facecolor=colours[k], label=classes[k]) for k in np.unique(shown)]
    if marked:
        handles.append(Patch(facecolor="none", edgecolor="black", hatch=MARK_HATCH, label="≠ global label"))
    fig.legend(handles=handles, loc="outside right upper", title="class", fontsize=TICK_SIZE)


def show_label_maps(images: Any, maps: Mapping[str, Any], classes: Sequence[str], *, title: str,
                    n: int | None = None, reference: Any = None) -> Figure:
    r"""Class-label maps over images, laid out as :func:`show_heatmaps`: each map (N, h, w) holds integer labels
    (e.g. the teacher's dense argmax or CSKD's fused targets $y^\mathrm{T}$), drawn as coloured cells, one fixed
    colour per class, with a single legend of the class names shown.

    ``reference`` (N,), the global labels, makes "local vs global" readable: each row's titles name it
    ("global: star") and the share of cells that differ from it, and those cells are hatched.
    """
    batch, arrays, count = _overlay_inputs(images, maps, n, "show_label_maps")
    if not classes:
        raise ValueError("show_label_maps needs at least one class name")
    labels = {name: _class_indices(f"map {name!r}", values[:count], len(classes)) for name, values in arrays.items()}
    refs = None
    if reference is not None:
        refs = _class_indices("reference", per_image("reference", reference, len(batch), ("N",))[:count],
                              len(classes))
    fig, axes = _overlay_grid(batch[:count], list(labels), title=title, extra_width=1.8)
    for i, (row, image) in enumerate(zip(axes, batch)):
        if refs is not None:
            row[0].set_title(f"global: {classes[refs[i]]}", fontsize=LABEL_SIZE)
        for ax, (name, values) in zip(row[1:], labels.items()):
            differ = draw_label_map(ax, image, values[i], classes, None if refs is None else refs[i])
            if differ is not None:
                ax.set_title(f"{name}\n{differ:.0%} of cells ≠ global", fontsize=LABEL_SIZE)
    shown = np.concatenate([values.ravel() for values in labels.values()] + ([] if refs is None else [refs]))
    class_legend(fig, classes, shown, marked=refs is not None)
    return fig


# --------------------------------------------------------------------------------------------- lines
def plot_lines(x: Any, series: Mapping[str, Any], *, title: str, xlabel: str, ylabel: str) -> Figure:
    """Several named curves over the same x values on one axis (name -> 1-D values, each as long as ``x``)."""
    xs = to_numpy(x).ravel()
    if not series:
        raise ValueError("plot_lines needs at least one series")
    arrays = {name: to_numpy(values).ravel() for name, values in series.items()}
    wrong = {name: len(values) for name, values in arrays.items() if len(values) != len(xs)}
    if wrong:
        raise ValueError(f"every series needs {len(xs)} values (one per x), got {wrong}")
    fig, axes = new_figure(figsize=(7, 4.5))
    ax = axes[0, 0]
    for name, values in arrays.items():
        ax.plot(xs, values, marker="o", markersize=3, label=name)
    label_axes(ax, title, xlabel, ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=TICK_SIZE)
    return fig


# --------------------------------------------------------------------------------------------- bars
def plot_bars(series: Mapping[str, Any], *, title: str, xlabel: str = "class", ylabel: str = "value",
              xticklabels: Sequence[str] | None = None, highlight: int | None = None,
              ax: Axes | None = None) -> Figure:
    """Grouped bars: one group per index, one bar per series (name -> 1-D values of equal length).

    ``highlight`` shades the column of one index (e.g. the true class). Draws into ``ax`` when given.
    """
    arrays = {name: to_numpy(values).ravel() for name, values in series.items()}
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"all series need the same length, got lengths {sorted(lengths)}")
    (length,) = lengths
    if ax is None:
        _, axes = new_figure(figsize=(max(6.0, 0.6 * length * max(1, len(arrays))), 4))
        ax = axes[0, 0]
    width = 0.8 / len(arrays)
    index = np.arange(length)
    for k, (name, values) in enumerate(arrays.items()):
        ax.bar(index + (k - (len(arrays) - 1) / 2) * width, values, width=width, label=name)
    if highlight is not None:
        ax.axvspan(highlight - 0.5, highlight + 0.5, color="0.85", zorder=0)
    ax.set_xticks(index, xticklabels if xticklabels is not None else [str(i) for i in index])
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    label_axes(ax, title, xlabel, ylabel)
    ax.legend(fontsize=TICK_SIZE)
    return ax.figure


def plot_paired_gains(gains: Mapping[str, Mapping[str, Sequence[float]]], *, title: str, ylabel: str,
                      xlabel: str = "", highlight: str | None = None, ax: Axes | None = None) -> Figure:
    """Grouped bars of paired differences with their 95 % intervals: ``gains`` is option -> row ->
    ``(change, low, high)`` (every option with the same rows; an interval's ends may be NaN with one seed, then no
    error bar is drawn). One group per option (x), one colour per row; ``highlight`` shades the chosen option."""
    if not gains:
        raise ValueError("plot_paired_gains needs at least one option")
    rows = [list(by_row) for by_row in gains.values()]
    if any(r != rows[0] for r in rows) or not rows[0]:
        raise ValueError(f"every option needs the same, non-empty rows, got {rows}")
    options, names = list(gains), rows[0]
    if highlight is not None and highlight not in gains:
        raise ValueError(f"highlight must be one of the options {options}, got {highlight!r}")
    if ax is None:
        _, axes = new_figure(figsize=(max(7.0, 1.3 * len(options) * max(1, len(names)) / 2 + 2), 4.5))
        ax = axes[0, 0]
    width, index = 0.8 / len(names), np.arange(len(options))
    colours = series_colours(names)
    for k, name in enumerate(names):
        colour = colours[name]
        change, low, high = (np.array([gains[o][name][j] for o in options], dtype=float) for j in range(3))
        errors = np.nan_to_num(np.vstack([change - low, high - change]))
        ax.bar(index + (k - (len(names) - 1) / 2) * width, change, width=width, color=colour, label=name,
               yerr=errors, capsize=3)
    if highlight is not None:
        ax.axvspan(options.index(highlight) - 0.5, options.index(highlight) + 0.5, color="0.88", zorder=0)
    ax.set_xticks(index, options, rotation=20 if len(options) > 3 else 0, ha="right" if len(options) > 3 else "center")
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    label_axes(ax, title, xlabel, ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=TICK_SIZE)
    return ax.figure


def plot_seed_points(per_seed: Mapping[str, Sequence[float]], *, title: str, ylabel: str, scale: float = 100.0,
                     ax: Axes | None = None) -> Figure:
    """One bar per row at its mean over seeds (times ``scale``: 100 shows fractions as percent), an error bar of
    one standard deviation when there are two or more seeds, and every seed's value as a dot on top, so the reader
    sees the spread the paired differences are judged against. Draws into ``ax`` when given."""
    if not per_seed:
        raise ValueError("plot_seed_points needs at least one row")
    arrays = {name: scale * to_numpy(values).astype(float).ravel() for name, values in per_seed.items()}
    if any(len(values) == 0 for values in arrays.values()):
        raise ValueError(f"every row needs at least one seed, got {({k: len(v) for k, v in arrays.items()})}")
    if ax is None:
        _, axes = new_figure(figsize=(max(5.5, 1.6 * len(arrays)), 4))
        ax = axes[0, 0]
    colours = series_colours(list(arrays))
    for index, (name, values) in enumerate(arrays.items()):
        colour, spread = colours[name], values.std(ddof=1) if len(values) > 1 else None
        ax.bar(index, values.mean(), width=0.6, color=colour, alpha=0.55, yerr=spread, capsize=4)
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(index + jitter, values, color=colour, edgecolor="black", zorder=3, s=28)
    ax.set_xticks(np.arange(len(arrays)), list(arrays), rotation=15 if len(arrays) > 3 else 0, ha="right"
                  if len(arrays) > 3 else "center")
    label_axes(ax, title, "", ylabel)
    ax.grid(axis="y", alpha=0.3)
    return ax.figure


def softmax(logits: Any, temperature: float = 1.0) -> np.ndarray:
    r"""$\mathrm{softmax}(z/T)_i = e^{z_i/T} / \sum_j e^{z_j/T}$ along the last axis (NumPy, float64)."""
    check_positive("temperature", temperature)
    z = to_numpy(logits) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def hide_axes(ax: Axes) -> None:
    """An empty panel: no ticks, no frame."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def probability_bars(ax: Axes, q: np.ndarray, p: np.ndarray, target: int) -> None:
    """Bars of the softened teacher $q$ and student $p$, the target class shaded and read out in the title."""
    plot_bars({"teacher $q$": q, "student $p$": p}, ylabel="probability", highlight=target, ax=ax,
              title=f"softmax(z / T): target q = {q[target]:.2f}, p = {p[target]:.2f}")

