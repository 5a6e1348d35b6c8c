r"""Plotting helpers for the notebooks. Every plotting function returns a matplotlib ``Figure``.

The helpers take plain lists, NumPy arrays or torch tensors and know nothing about training. Figures are
made with ``plt.subplots`` (so Jupyter's inline backend renders them) and closed at once: a returned
figure is displayed exactly once, by the cell that returns it, and pyplot keeps no reference to it
(no memory growth when a widget redraws hundreds of times).

Besides figures, :func:`results_table` builds a small table object that renders as HTML in Jupyter
and as a Markdown table in text, with :func:`format_mean_std` for "mean ± std over seeds" cells.
"""
from __future__ import annotations

import html
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
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

TITLE_SIZE = 13
LABEL_SIZE = 11
TICK_SIZE = 10
CKA_CMAP = "viridis"
OVERLAY_ALPHA = 0.55
"""Opacity of a map drawn over an image (:func:`show_heatmaps`, :func:`show_label_maps`)."""
MARK_HATCH = "///"
"""Hatching of the label-map cells whose label differs from the reference (global) label."""

Rows = Sequence[Mapping[str, Any]]


# --------------------------------------------------------------------------------------------- helpers
def _to_numpy(x: Any) -> np.ndarray:
    """A tensor (any device, with or without grad), array or nested list as a float NumPy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def _figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A new figure with a (nrows, ncols) array of axes, already closed in pyplot (see module docstring)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained")
    plt.close(fig)
    return fig, axes


def _label(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=LABEL_SIZE + 1)
    ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)


def _epoch_axis(ax: Axes) -> None:
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
def plot_history(rows: Rows, metrics: Sequence[str] | None = None, title: str = "Training history") -> Figure:
    """Per-epoch curves of one run: training loss terms (left) and validation metrics (right).

    ``rows`` are per-epoch dicts such as ``{"epoch": 1, "train/loss": 2.1, "train/kd": 0.8, "val/acc": 0.5,
    "lr": 0.01, "time_s": 3.2}``. Every ``train/...`` key goes to the left panel and every ``val/...`` key to
    the right one (``lr``, ``time_s`` and other keys are not drawn); ``metrics`` restricts both panels to
    the listed keys. Keys missing from some rows are drawn where present; a single row gives points.
    """
    if not rows:
        raise ValueError("plot_history needs at least one row (one epoch)")
    fig, axes = _figure(1, 2, figsize=(11, 4))
    panels = (("train/", "training loss terms", "loss (nats)"), ("val/", "validation metrics", "value"))
    for ax, (prefix, panel_title, ylabel) in zip(axes[0], panels, strict=True):
        keys = _keys(rows, prefix, metrics)
        for key in keys:
            ax.plot(*_series(rows, key), marker="o", markersize=4, label=key.removeprefix(prefix))
        if keys:
            ax.legend(fontsize=TICK_SIZE)
        else:
            ax.text(0.5, 0.5, f"no {prefix}... keys", ha="center", va="center", transform=ax.transAxes)
        _label(ax, panel_title, "epoch", ylabel)
        _epoch_axis(ax)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def plot_histories(
    histories: Mapping[str, Rows | Sequence[Rows]], metric: str = "val/acc", title: str | None = None
) -> Figure:
    """Several runs' ``metric`` against the epoch on one axis, one line per label.

    A value of ``histories`` is either one run (a list of per-epoch dicts) or several seeds of the same
    recipe (a list of such lists); for seeds the line is the per-epoch mean and the band spans min to max.
    """
    if not histories:
        raise ValueError("plot_histories needs at least one run")
    fig, axes = _figure(figsize=(7, 4.5))
    ax = axes[0, 0]
    for label, runs in histories.items():
        seeds = [runs] if runs and isinstance(runs[0], Mapping) else list(runs)
        curves = [dict(zip(*_series(rows, metric), strict=True)) for rows in seeds]
        epochs = sorted(set().union(*curves))
        if not epochs:
            raise ValueError(f"run {label!r} has no {metric!r} values")
        values = [[curve[e] for curve in curves if e in curve] for e in epochs]
        name = label if len(seeds) == 1 else f"{label} (mean of {len(seeds)} seeds)"
        (line,) = ax.plot(epochs, [np.mean(v) for v in values], marker="o", markersize=4, label=name)
        if len(seeds) > 1:
            ax.fill_between(epochs, [min(v) for v in values], [max(v) for v in values], color=line.get_color(),
                            alpha=0.2)
    _label(ax, title or f"{metric} per epoch", "epoch", metric)
    ax.legend(fontsize=TICK_SIZE)
    _epoch_axis(ax)
    return fig


# --------------------------------------------------------------------------------------------- CKA
def _draw_cka(ax: Axes, matrix: Any, row_labels: Sequence[str], col_labels: Sequence[str], *,
              title: str, xlabel: str, ylabel: str, colorbar: bool) -> None:
    values = _to_numpy(matrix)
    if values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"CKA matrix of shape {values.shape} does not match "
            f"{len(row_labels)} row labels and {len(col_labels)} column labels"
        )
    sns.heatmap(values, ax=ax, vmin=0.0, vmax=1.0, cmap=CKA_CMAP, annot=True, fmt=".2f",
                annot_kws={"fontsize": TICK_SIZE - 1}, xticklabels=list(col_labels), yticklabels=list(row_labels),
                cbar=colorbar, cbar_kws={"label": "linear CKA"} if colorbar else None)
    _label(ax, title, xlabel, ylabel)
    ax.tick_params(axis="y", labelrotation=0)


def cka_heatmap(matrix: Any, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "Linear CKA",
                ax: Axes | None = None, xlabel: str = "student layer", ylabel: str = "teacher layer") -> Figure:
    r"""Heatmap of a CKA similarity matrix (rows x columns), annotated to 2 decimals, colour scale 0 to 1.

    Linear CKA of two feature matrices $X, Y$ (examples x features, centred) is
    $\mathrm{CKA}(X,Y) = \|Y^\top X\|_F^2 / (\|X^\top X\|_F \, \|Y^\top Y\|_F)$, between 0 and 1.
    Draws into ``ax`` when given (and returns its figure).
    """
    if ax is None:
        fig, axes = _figure(figsize=(1.0 + 0.8 * len(col_labels), 1.0 + 0.6 * len(row_labels)))
        ax = axes[0, 0]
    _draw_cka(ax, matrix, row_labels, col_labels, title=title, xlabel=xlabel, ylabel=ylabel, colorbar=True)
    return ax.figure


def cka_heatmaps(panels: Mapping[str, tuple[Any, Sequence[str], Sequence[str]]], title: str = "Linear CKA",
                 xlabel: str = "student layer", ylabel: str = "teacher layer") -> Figure:
    """Several CKA heatmaps side by side (panel title -> (matrix, row_labels, col_labels)), one shared colour bar."""
    if not panels:
        raise ValueError("cka_heatmaps needs at least one panel")
    width = sum(1.0 + 0.8 * len(cols) for _, _, cols in panels.values()) + 1.0
    height = 1.2 + 0.6 * max(len(rows) for _, rows, _ in panels.values())
    fig, axes = _figure(1, len(panels), figsize=(width, height))
    for ax, (name, (matrix, rows, cols)) in zip(axes[0], panels.items(), strict=True):
        _draw_cka(ax, matrix, rows, cols, title=name, xlabel=xlabel, ylabel=ylabel, colorbar=False)
    mappable = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=CKA_CMAP)
    fig.colorbar(mappable, ax=list(axes[0]), label="linear CKA")
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


# --------------------------------------------------------------------------------------------- images
def _image_batch(x: Any) -> np.ndarray:
    """An (N, C, H, W) batch with C = 1 or 3 as a float NumPy array, or a ``ValueError`` saying what is wrong."""
    images = _to_numpy(x)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, C, H, W) with C in (1, 3), got {images.shape}")
    return images


def _draw_image(ax: Axes, image: np.ndarray) -> None:
    """One (C, H, W) image with values in [0, 1] (clipped), grey when C = 1, without axis ticks."""
    pixels = np.clip(image.transpose(1, 2, 0), 0.0, 1.0)
    ax.imshow(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_axis_off()


def show_images(x: Any, labels: Sequence[int] | None = None, classes: Sequence[str] | None = None, n: int = 16,
                ncols: int = 8, title: str = "Samples", masks: Any = None) -> Figure:
    """A grid of the first ``n`` images of an (N, C, H, W) batch with values in [0, 1] and C = 1 or 3.

    Captions are ``classes[label]`` (or the label itself without ``classes``). ``masks`` (N, H, W), integer
    or boolean, is overlaid half-transparently, one colour per value 1-9 (matplotlib's tab10), with 0
    (background) left clear.
    """
    images = _image_batch(x)
    count = min(n, len(images))
    if count == 0:
        raise ValueError("show_images needs at least one image")
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    fig, axes = _figure(nrows, ncols, figsize=(1.4 * ncols, 1.5 * nrows + 0.5))
    label_values = None if labels is None else [int(v) for v in _to_numpy(labels).ravel()]
    mask_values = None if masks is None else _to_numpy(masks)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= count:
            continue
        _draw_image(ax, images[i])
        if mask_values is not None:
            ax.imshow(np.ma.masked_equal(mask_values[i], 0), cmap="tab10", vmin=0, vmax=9, alpha=0.5,
                      interpolation="nearest")
        if label_values is not None:
            caption = classes[label_values[i]] if classes is not None else str(label_values[i])
            ax.set_title(caption, fontsize=TICK_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


# --------------------------------------------------------------------------------------------- maps over images
def _overlay(ax: Axes, image: np.ndarray, values: np.ndarray, **style: Any) -> AxesImage:
    """A (C, H, W) image with an (h, w) map over it: h x w cells stretched over the H x W image (nearest
    neighbour, no smoothing, so every cell stays visible), :data:`OVERLAY_ALPHA` opaque. ``style`` goes to
    ``imshow`` (``cmap``, ``norm``); returns the map's image."""
    _draw_image(ax, image)
    height, width = image.shape[1:]
    return ax.imshow(values, extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest",
                     alpha=OVERLAY_ALPHA, **style)


def _per_image(name: str, values: Any, count: int, dims: Sequence[str]) -> np.ndarray:
    """``values`` as a finite array of shape ``dims`` (e.g. ``("N", "h", "w")``) with N = ``count`` images."""
    array = _to_numpy(values)
    if array.ndim != len(dims) or len(array) != count:
        shape = f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"
        raise ValueError(f"{name} must have shape {shape} with N = {count} (one per image), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values")
    return array


def _overlay_inputs(images: Any, maps: Mapping[str, Any], n: int | None,
                    caller: str) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """The checked (N, C, H, W) images, each (N, h, w) map by name, and how many rows to show (``n``, at most N)."""
    batch = _image_batch(images)
    if len(batch) == 0:
        raise ValueError(f"{caller} needs at least one image")
    if not maps:
        raise ValueError(f"{caller} needs at least one map")
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n (the number of rows) must be an int >= 1 or None, got {n!r}")
    arrays = {name: _per_image(f"map {name!r}", values, len(batch), ("N", "h", "w")) for name, values in maps.items()}
    return batch, arrays, len(batch) if n is None else min(n, len(batch))


def _overlay_grid(images: np.ndarray, names: Sequence[str], *, title: str,
                  extra_width: float) -> tuple[Figure, np.ndarray]:
    """One row per image: the image, then one axis per map (titled on the first row), for the caller to fill."""
    ncols = 1 + len(names)
    fig, axes = _figure(len(images), ncols, figsize=(2.4 * ncols + extra_width, 2.4 * len(images) + 0.7))
    for ax, image in zip(axes[:, 0], images):
        _draw_image(ax, image)
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
            _overlay(ax, image, cells, cmap=cmap, norm=norm)
            if mark is not None:
                ch, cw = image.shape[1] / cells.shape[0], image.shape[2] / cells.shape[1]
                ax.add_patch(Rectangle((mark[1] * cw - 0.5, mark[0] * ch - 0.5), cw, ch, fill=False,
                                       edgecolor="cyan", linewidth=2))
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(column), label=name, shrink=0.8)
    return fig


def _class_colours(num_classes: int) -> list[tuple[float, float, float]]:
    """One fixed colour per class index: tab10 up to 10 classes, tab20 up to 20, evenly spaced hues beyond."""
    palette = "tab10" if num_classes <= 10 else "tab20" if num_classes <= 20 else "husl"
    return sns.color_palette(palette, num_classes)


def _class_indices(name: str, values: np.ndarray, num_classes: int) -> np.ndarray:
    """``values`` as integer class indices, or a ``ValueError`` unless they are whole numbers in 0..num_classes-1."""
    if values.size and (np.any(values != np.round(values)) or values.min() < 0 or values.max() >= num_classes):
        raise ValueError(f"{name} must hold integer class labels in 0..{num_classes - 1}, "
                         f"got values from {values.min():g} to {values.max():g}")
    return values.astype(np.int64)


def _draw_label_map(ax: Axes, image: Any, labels: Any, classes: Sequence[str],
                    reference: int | None = None) -> float | None:
    """An (h, w) map of class labels over a (C, H, W) image, one colour per class (:func:`_class_colours`).

    With a ``reference`` label (the global prediction), the cells whose label differs from it are hatched
    (:data:`MARK_HATCH`); returns the fraction of such cells (``None`` without a reference).
    """
    image, labels = _to_numpy(image), _to_numpy(labels).astype(np.int64)
    colours = ListedColormap(_class_colours(len(classes)))
    _overlay(ax, image, labels, cmap=colours, norm=Normalize(-0.5, len(classes) - 0.5))
    if reference is None:
        return None
    differ = labels != int(reference)
    cell_height, cell_width = image.shape[1] / labels.shape[0], image.shape[2] / labels.shape[1]
    for row, col in zip(*np.nonzero(differ)):
        ax.add_patch(Rectangle((col * cell_width - 0.5, row * cell_height - 0.5), cell_width, cell_height,
                               fill=False, hatch=MARK_HATCH, edgecolor="black", linewidth=0.8))
    return float(differ.mean())


def _class_legend(fig: Figure, classes: Sequence[str], shown: np.ndarray, marked: bool) -> None:
    """One legend, right of the figure, naming the classes among the ``shown`` labels (and the hatching)."""
    colours = _class_colours(len(classes))
    handles = [Patch(facecolor=colours[k], label=classes[k]) for k in np.unique(shown)]
    if marked:
        handles.append(Patch(facecolor="none", edgecolor="black", hatch=MARK_HATCH, label="≠ global label"))
    fig.legend(handles=handles, loc="outside right upper", title="class", fontsize=TICK_SIZE)


def show_label_maps(images: Any, maps: Mapping[str, Any], classes: Sequence[str], *, title: str,
                    n: int | None = None, reference: Any = None) -> Figure:
    """Class-label maps over images, laid out as :func:`show_heatmaps`: each map (N, h, w) holds integer labels
    (e.g. the teacher's dense argmax or CSKD's fused targets $Y^T$), drawn as coloured cells, one fixed colour per
    class, with a single legend of the class names shown.

    ``reference`` (N,), the global labels, makes "local vs global" readable: each row's titles name it
    ("global: star") and the share of cells that differ from it, and those cells are hatched.
    """
    batch, arrays, count = _overlay_inputs(images, maps, n, "show_label_maps")
    if not classes:
        raise ValueError("show_label_maps needs at least one class name")
    labels = {name: _class_indices(f"map {name!r}", values[:count], len(classes)) for name, values in arrays.items()}
    refs = None
    if reference is not None:
        refs = _class_indices("reference", _per_image("reference", reference, len(batch), ("N",))[:count],
                              len(classes))
    fig, axes = _overlay_grid(batch[:count], list(labels), title=title, extra_width=1.8)
    for i, (row, image) in enumerate(zip(axes, batch)):
        if refs is not None:
            row[0].set_title(f"global: {classes[refs[i]]}", fontsize=LABEL_SIZE)
        for ax, (name, values) in zip(row[1:], labels.items()):
            differ = _draw_label_map(ax, image, values[i], classes, None if refs is None else refs[i])
            if differ is not None:
                ax.set_title(f"{name}\n{differ:.0%} of cells ≠ global", fontsize=LABEL_SIZE)
    shown = np.concatenate([values.ravel() for values in labels.values()] + ([] if refs is None else [refs]))
    _class_legend(fig, classes, shown, marked=refs is not None)
    return fig


# --------------------------------------------------------------------------------------------- lines
def plot_lines(x: Any, series: Mapping[str, Any], *, title: str, xlabel: str, ylabel: str) -> Figure:
    """Several named curves over the same x values on one axis (name -> 1-D values, each as long as ``x``)."""
    xs = _to_numpy(x).ravel()
    if not series:
        raise ValueError("plot_lines needs at least one series")
    arrays = {name: _to_numpy(values).ravel() for name, values in series.items()}
    wrong = {name: len(values) for name, values in arrays.items() if len(values) != len(xs)}
    if wrong:
        raise ValueError(f"every series needs {len(xs)} values (one per x), got {wrong}")
    fig, axes = _figure(figsize=(7, 4.5))
    ax = axes[0, 0]
    for name, values in arrays.items():
        ax.plot(xs, values, marker="o", markersize=3, label=name)
    _label(ax, title, xlabel, ylabel)
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
    arrays = {name: _to_numpy(values).ravel() for name, values in series.items()}
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"all series need the same length, got lengths {sorted(lengths)}")
    (length,) = lengths
    if ax is None:
        _, axes = _figure(figsize=(max(6.0, 0.6 * length * max(1, len(arrays))), 4))
        ax = axes[0, 0]
    width = 0.8 / len(arrays)
    index = np.arange(length)
    for k, (name, values) in enumerate(arrays.items()):
        ax.bar(index + (k - (len(arrays) - 1) / 2) * width, values, width=width, label=name)
    if highlight is not None:
        ax.axvspan(highlight - 0.5, highlight + 0.5, color="0.85", zorder=0)
    ax.set_xticks(index, xticklabels if xticklabels is not None else [str(i) for i in index])
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    _label(ax, title, xlabel, ylabel)
    ax.legend(fontsize=TICK_SIZE)
    return ax.figure


def softmax(logits: Any, temperature: float = 1.0) -> np.ndarray:
    r"""$\mathrm{softmax}(z/T)_i = e^{z_i/T} / \sum_j e^{z_j/T}$ along the last axis (NumPy, float64)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = _to_numpy(logits) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def plot_softmax_temperature(logits: Any, temperatures: Sequence[float], title: str = "Softening with temperature",
                             class_names: Sequence[str] | None = None) -> Figure:
    r"""Bars of $\mathrm{softmax}(z/T)$ per class for each temperature $T$: higher $T$ flattens the distribution."""
    z = _to_numpy(logits)
    if z.ndim != 1:
        raise ValueError(f"expected a 1-D logit vector, got shape {z.shape}")
    series = {f"T = {t:g}": softmax(z, t) for t in temperatures}
    return plot_bars(series, title=title, ylabel="probability", xticklabels=class_names)


# --------------------------------------------------------------------------------------------- OFA
def plot_ofa_weights(gammas: Sequence[float] = (1.0, 1.2, 1.5, 2.0), target_probs: Any = None,
                     title: str = "OFA loss weights against teacher confidence", num_points: int = 201) -> Figure:
    r"""The OFA class weights against the teacher's probability of the class, one colour per $\gamma$.

    Left, the target class: the official code's $w_y = (1+q_y)^\gamma - 1$ (solid; the hard cross-entropy is a
    separate term) and the paper's $(1+q_y)^\gamma$ (dashed; it holds the hard cross-entropy's 1). Right, a
    non-target class: the code's $w_c = q_c^\gamma$ (solid) and the paper's $q_c$ for every $\gamma$ (dashed).

    The weights come from :func:`kdlab.methods.ofa.ofa_weights` on two-class teacher logits
    $(\log q, \log(1-q))$, whose softmax is $(q, 1-q)$: with class 0 as the target, column 0 is $w_y(q)$ and
    column 1 is $w_c(1-q)$. ``target_probs`` (the teacher's $q_y$ on real examples) adds their histogram
    behind the left curves, counted on a right-hand axis.
    """
    # imported here so that the plotting helpers load without torch and timm
    import torch

    from .methods.ofa import ofa_weights

    if len(gammas) == 0:
        raise ValueError("plot_ofa_weights needs at least one gamma")
    q = torch.linspace(0.0, 1.0, num_points, dtype=torch.float64)
    teacher_logits = torch.stack([q.log(), (1 - q).log()], dim=1)
    target = torch.zeros(num_points, dtype=torch.long)
    fig, axes = _figure(1, 2, figsize=(12, 4.5))
    target_ax, other_ax = axes[0]
    for gamma in gammas:
        code = ofa_weights(teacher_logits, target, float(gamma), form="code").numpy()
        paper = ofa_weights(teacher_logits, target, float(gamma), form="paper").numpy()
        (line,) = target_ax.plot(q, code[:, 0], label=f"code, γ = {gamma:g}")
        target_ax.plot(q, paper[:, 0], linestyle="--", color=line.get_color(), label=f"paper, γ = {gamma:g}")
        other_ax.plot(1 - q, code[:, 1], color=line.get_color(), label=f"code, γ = {gamma:g}")
    other_ax.plot(1 - q, paper[:, 1], linestyle="--", color="0.4", label="paper, every γ")
    if target_probs is not None:
        probs = _to_numpy(target_probs).ravel()
        if probs.size == 0 or not np.all((probs >= 0) & (probs <= 1)):
            raise ValueError("target_probs must be non-empty teacher probabilities in [0, 1]")
        counts = target_ax.twinx()
        counts.hist(probs, bins=20, range=(0.0, 1.0), color="0.6", alpha=0.3)
        counts.set_ylabel("examples (count)", fontsize=LABEL_SIZE)
        target_ax.set_zorder(counts.get_zorder() + 1)  # curves over the histogram
        target_ax.patch.set_visible(False)
    _label(target_ax, r"target: code $(1+q_y)^\gamma-1$ (solid), paper $(1+q_y)^\gamma$ (dashed)",
           "teacher probability of the target class q_y", "weight w_y")
    _label(other_ax, r"non-target: code $q_c^\gamma$ (solid), paper $q_c$ (dashed)",
           "teacher probability of a non-target class q_c", "weight w_c")
    for ax in (target_ax, other_ax):
        ax.set_xlim(0.0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=TICK_SIZE - 1, ncol=2 if ax is target_ax else 1)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


# --------------------------------------------------------------------------------------------- CSKD
ALPHA_LABEL = "α (weight of the dense, local logits)"


def _draw_alpha_steps(ax: Axes, epochs: int, kind: str, **style: Any) -> Line2D:
    r"""The official per-epoch $\alpha(e)$, $e = 0,\dots,E-1$, as a step curve over $[0, E]$ (constant within each
    epoch); ``style`` goes to ``ax.step``."""
    from .methods.cskd import alpha_schedule  # see plot_ofa_weights: viz loads without torch and timm

    values = [alpha_schedule(e, epochs, kind) for e in range(epochs)]
    (line,) = ax.step(np.arange(epochs + 1), [*values, values[-1]], where="post", **style)
    return line


def plot_alpha_schedules(epochs: int, kinds: Sequence[str] = ("linear", "x2", "cos"), steps_per_epoch: int = 20,
                         title: str = "CSKD: the weight α of the dense logits over training") -> Figure:
    r"""CSKD's cumulative knowledge fusion schedule: $lpha$, the weight of the dense (local) teacher logits in
    $Y^T = rg\max_c(lpha P^T + (1-lpha) P^T_g)$, over $E$ = ``epochs``.

    For each kind (:data:`kdlab.methods.cskd.SCHEDULES`; $x = e/E$: ``linear`` $1-x$, ``x2`` $(1-x)^2$, ``cos``
    $\cos(\pi x/2)$) a solid step curve shows the official per-epoch $lpha(e)$, $e = 0,\dots,E-1$ (it ends at
    $lpha(E-1) > 0$, e.g. $1/E$ for ``linear``), and a thin dashed curve of the same colour the per-iteration
    $lpha$ at $e + i/I$ (``steps_per_epoch`` $= I$), which reaches 0 at $E$. A dotted curve on the right axis
    is the global weight $1-lpha$ per epoch, of the first kind only (``linear`` by default), to stay readable.
    Values come from :func:`kdlab.methods.cskd.alpha_schedule`.
    """
    from .methods.cskd import alpha_schedule, check_schedule

    if len(kinds) == 0:
        raise ValueError("plot_alpha_schedules needs at least one kind of schedule")
    for kind in kinds:
        check_schedule(epochs, kind)
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, (int, np.integer)) or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be an int >= 1, got {steps_per_epoch!r}")
    fig, axes = _figure(figsize=(10, 4.5))
    ax = axes[0, 0]
    progress = np.arange(epochs * steps_per_epoch + 1) / steps_per_epoch
    steps = []
    for kind in kinds:
        steps.append(_draw_alpha_steps(ax, epochs, kind, linewidth=2, label=f"{kind}, per epoch (official)"))
        ax.plot(progress, [alpha_schedule(float(e), epochs, kind) for e in progress], linestyle="--",
                linewidth=1, color=steps[-1].get_color(), label=f"{kind}, per iteration")
    twin = ax.twinx()
    twin.step(steps[0].get_xdata(), 1 - steps[0].get_ydata(), where="post", linestyle=":", linewidth=2, color="0.25",
              label=f"1 − α, {kinds[0]} only (right axis)")
    _label(ax, title, "epoch", ALPHA_LABEL)
    twin.set_ylabel("1 − α (weight of the global logits)", fontsize=LABEL_SIZE)
    twin.tick_params(labelsize=TICK_SIZE)
    for axis in (ax, twin):
        axis.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, epochs)
    _epoch_axis(ax)
    handles, labels = zip(*(pair for axis in (ax, twin) for pair in zip(*axis.get_legend_handles_labels())))
    fig.legend(handles, labels, loc="outside right upper", fontsize=TICK_SIZE)
    return fig


# --------------------------------------------------------------------------------------------- SW-TaT
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
    from .methods.swtat import window_layout

    window_id, region = (t.numpy() for t in window_layout(*grid, window, shift))
    values = window_id if colour_by == "window" else region
    if image is None:
        image = np.ones((3, *grid))
    _overlay(ax, image, values % 20, cmap="tab20", norm=Normalize(-0.5, 19.5))
    cell = (image.shape[1] / grid[0], image.shape[2] / grid[1])
    _draw_edges(ax, window_id, region, cell)


def _check_layout_args(grid: Any, window: Any, shift: Any) -> tuple[tuple[int, int], int, int]:
    grid = tuple(int(g) for g in grid)
    if len(grid) != 2 or min(grid) < 1:
        raise ValueError(f"grid must be (h, w) with h, w >= 1, got {grid!r}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or not 0 <= shift < window:
        raise ValueError(f"shift must be an int in [0, window), got {shift!r}")
    return grid, int(window), int(shift)


def plot_window_partition(image: Any, grid: Sequence[int], window: int, shift: int | None = None,
                          title: str = "Window partition and the cyclic shift") -> Figure:
    r"""How SW-TaT (and Swin) cut an (h, w) feature grid laid over a (C, H, W) image into $M\times M$ windows.

    Three panels: the regular windows (shift 0); the shifted windows in the image's own coordinates, where the
    windows wrapping round the border show up as the same colour in opposite corners; and the canvas after the
    cyclic roll by $-s$, where those pieces sit together in one window and the mask keeps them apart (dashed
    red: pairs the mask forbids). ``shift`` defaults to $\lfloor M/2\rfloor$.
    """
    picture = _image_batch(_to_numpy(image)[None])[0]
    grid, window, shift = _check_layout_args(grid, window, window // 2 if shift is None else shift)
    fig, axes = _figure(1, 3, figsize=(12, 4.6))
    _draw_layout(axes[0, 0], picture, grid, window, 0, "window")
    axes[0, 0].set_title(f"windows, shift 0 ({window}x{window} cells)", fontsize=LABEL_SIZE)
    _draw_layout(axes[0, 1], picture, grid, window, shift, "window")
    axes[0, 1].set_title(f"shifted windows, shift {shift}: colour = window", fontsize=LABEL_SIZE)
    from .methods.swtat import window_layout

    cell = (picture.shape[1] // grid[0], picture.shape[2] // grid[1])
    rolled = np.roll(picture, (-shift * cell[0], -shift * cell[1]), axis=(1, 2))
    region = np.roll(window_layout(*grid, window, shift)[1].numpy(), (-shift, -shift), axis=(0, 1))
    _overlay(axes[0, 2], rolled, region, cmap="Set3", norm=Normalize(-0.5, 11.5))
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
    from .methods.swtat import shifted_window_mask

    (height, width), window, shift = _check_layout_args((height, width), window, shift)
    masks = shifted_window_mask(height, width, window, shift).numpy()[:max_windows]
    ncols = min(4, len(masks))
    nrows = math.ceil(len(masks) / ncols)
    fig, axes = _figure(nrows, ncols, figsize=(2.6 * ncols + 0.6, 2.6 * nrows + 0.8))
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
    xs = _to_numpy(x).ravel()
    if np.any(xs <= 0) or any(np.any(_to_numpy(v) <= 0) for v in series.values()):
        raise ValueError("plot_scaling needs positive x and y values (log axes)")
    anchor = _to_numpy(next(iter(series.values()))).ravel()[0]
    for name, power in slopes.items():
        ax.plot(xs, anchor * (xs / xs[0]) ** power, linestyle="--", color="0.5", linewidth=1)
        ax.annotate(name, (xs[-1], anchor * (xs[-1] / xs[0]) ** power), fontsize=TICK_SIZE, color="0.35",
                    xytext=(4, 0), textcoords="offset points", va="center")
    ax.set_xscale("log")
    ax.set_yscale("log")
    return fig


# --------------------------------------------------------------------------------------------- tables
def format_mean_std(values: Any, pct: bool = True, digits: int = 1) -> str:
    """``"81.2 ± 0.4%"``: mean ± sample standard deviation (ddof = 1) of ``values``; one value prints alone.

    ``pct`` multiplies by 100 and appends ``%`` (for fractions such as accuracy).
    """
    array = _to_numpy(values).ravel() * (100.0 if pct else 1.0)
    if array.size == 0:
        raise ValueError("format_mean_std needs at least one value")
    suffix = "%" if pct else ""
    if array.size == 1:
        return f"{array[0]:.{digits}f}{suffix}"
    return f"{array.mean():.{digits}f} ± {array.std(ddof=1):.{digits}f}{suffix}"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ResultsTable:
    """A small table that shows as HTML in Jupyter and as a Markdown table with ``str()``."""

    def __init__(self, rows: Rows, columns: Sequence[str], title: str | None = None) -> None:
        self.columns = list(columns)
        self.cells = [[_cell(row.get(column)) for column in self.columns] for row in rows]
        self.title = title

    def __str__(self) -> str:
        lines = [f"**{self.title}**", ""] if self.title else []
        lines += ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.cells]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.cells)
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def results_table(rows: Rows, columns: Sequence[str] | None = None, title: str | None = None) -> ResultsTable:
    """A table of ``rows`` (dicts) with the given ``columns`` (default: every key, first-seen order).

    Cells are shown as given (strings such as :func:`format_mean_std`'s output), floats to 4 significant
    digits, missing entries as "–".
    """
    columns = list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))
    if not columns:
        raise ValueError("results_table needs at least one column")
    return ResultsTable(rows, columns, title)


# --------------------------------------------------------------------------------------------- depth maps
DEPTH_CMAP = "magma_r"
"""Depth colour map: near is bright, far is dark."""
ERROR_CMAP = "Reds"
"""Colour map of absolute depth errors |pred - target| (white = exact)."""


def _depth_maps(name: str, values: Any, count: int, size: tuple[int, int] | None) -> np.ndarray:
    """(N, H, W) or (N, 1, H, W) depth maps as a finite (N, H, W) array, N = ``count``, sides ``size``."""
    array = _to_numpy(values)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or len(array) != count or (size is not None and array.shape[1:] != size):
        want = f"({count}, {size[0]}, {size[1]})" if size else f"({count}, H, W)"
        raise ValueError(f"{name} must be depth maps of shape {want} (or with a channel of 1), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values")
    return array


def _hide(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def show_depth_maps(images: Any, target: Any, predictions: Mapping[str, Any], *, title: str,
                    n: int | None = None, depth_range: tuple[float, float] | None = None, mask: Any = None,
                    overlays: Mapping[str, Any] | None = None) -> Figure:
    r"""Depth predictions next to the ground truth, with their error maps.

    Two rows per image (N, 3, H, W in [0, 1]): the **depth row** shows the image, the ground truth ``target``
    (N, H, W) and one column per named prediction (N, H, W) or (N, 1, H, W), all on one shared colour scale
    (``depth_range`` in metres, default the range of the shown maps) with the colour bar "depth (m)"; the
    **error row** under it shows $|\hat y - y|$ of every prediction on one shared scale from 0 (colour bar
    "absolute error (m)"). Pixels where ``mask`` (bool, N x H x W) is False, or where the target is <= 0, are
    blank in the error maps. ``overlays`` (at most two, name -> (N, h, w)) fill the free cells of the error row
    under the image and the ground truth: each map is drawn over the image (e.g. LAM attention), with its own
    colour bar labelled with its name. ``n`` limits the images shown.
    """
    batch = _image_batch(images)
    count = len(batch) if n is None else n
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 1 <= count:
        raise ValueError(f"n (the number of images) must be an int >= 1 or None, got {n!r}")
    count = min(count, len(batch))
    if not predictions:
        raise ValueError("show_depth_maps needs at least one prediction")
    size = batch.shape[2:]
    truth = _depth_maps("target", target, len(batch), size)[:count]
    preds = {name: _depth_maps(f"prediction {name!r}", p, len(batch), size)[:count] for name, p in predictions.items()}
    valid = truth > 0
    if mask is not None:
        valid &= _depth_maps("mask", mask, len(batch), size)[:count] > 0
    overlays = dict(overlays or {})
    if len(overlays) > 2:
        raise ValueError(f"at most two overlays fit under the image and the ground truth, got {len(overlays)}")
    extra = {name: _per_image(f"overlay {name!r}", values, len(batch), ("N", "h", "w"))[:count]
             for name, values in overlays.items()}
    if depth_range is None:
        lo = min(truth.min(), *(p.min() for p in preds.values()))
        hi = max(truth.max(), *(p.max() for p in preds.values()))
    else:
        lo, hi = (float(v) for v in depth_range)
    if not lo < hi:
        raise ValueError(f"the depth range must have min < max, got ({lo}, {hi})")
    depth_norm = Normalize(lo, hi)
    errors = {name: np.where(valid, np.abs(p - truth), np.nan) for name, p in preds.items()}
    top = max(float(np.nanmax(e)) if np.any(np.isfinite(e)) else 0.0 for e in errors.values())
    error_norm = Normalize(0.0, max(top, 1e-6))
    ncols = 2 + len(preds)
    fig, axes = _figure(2 * count, ncols, figsize=(2.2 * ncols + 2.4, 2.2 * 2 * count + 0.8))
    for i in range(count):
        depth_axes, error_axes = axes[2 * i], axes[2 * i + 1]
        _draw_image(depth_axes[0], batch[i])
        depth_axes[1].imshow(truth[i], cmap=DEPTH_CMAP, norm=depth_norm)
        for ax, (name, p) in zip(depth_axes[2:], preds.items()):
            ax.imshow(p[i], cmap=DEPTH_CMAP, norm=depth_norm)
        for ax, name in zip(error_axes[2:], preds):
            ax.imshow(errors[name][i], cmap=ERROR_CMAP, norm=error_norm)
            ax.set_title(f"error: {errors[name][i][valid[i]].mean():.2f} m mean", fontsize=TICK_SIZE)
        for ax, (name, values) in zip(error_axes[:2], extra.items()):
            norm = Normalize(values.min(), max(values.max(), values.min() + 1e-6))
            _overlay(ax, batch[i], values[i], cmap="viridis", norm=norm)
            ax.set_title(name, fontsize=TICK_SIZE)
        for ax in error_axes[len(extra):2]:
            _hide(ax)
        for ax in [*depth_axes, *error_axes]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, name in zip(axes[0], ["image", "ground truth", *preds]):
        ax.set_title(name, fontsize=LABEL_SIZE)
    fig.colorbar(ScalarMappable(norm=depth_norm, cmap=DEPTH_CMAP), ax=list(axes[0::2].ravel()), label="depth (m)",
                 shrink=0.8)
    fig.colorbar(ScalarMappable(norm=error_norm, cmap=ERROR_CMAP), ax=list(axes[:, 2:].ravel()),
                 label="absolute error |ŷ − y| (m)", location="bottom", shrink=0.6 if len(preds) > 2 else 0.95,
                 aspect=40 if len(preds) > 2 else 15)
    for column, (name, values) in enumerate(extra.items()):
        fig.colorbar(ScalarMappable(norm=Normalize(values.min(), max(values.max(), values.min() + 1e-6)),
                                    cmap="viridis"), ax=list(axes[:, column]), label=name, location="bottom",
                     shrink=0.9, aspect=20)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def feature_pca_maps(features: Any) -> np.ndarray:
    r"""(N, C, h, w) feature maps -> (N, h, w): each pixel's feature projected on the **first principal
    component** of all N·h·w pixel features (centred), for pictures of what a feature map encodes.

    The sign is fixed so that the projection correlates positively with the mean feature norm (PCA signs are
    arbitrary otherwise, so two maps would not be comparable). Units: arbitrary (a.u.).
    """
    array = _to_numpy(features)
    if array.ndim != 4:
        raise ValueError(f"expected (N, C, h, w) feature maps, got {array.shape}")
    n, c, h, w = array.shape
    pixels = array.transpose(0, 2, 3, 1).reshape(-1, c)
    centred = pixels - pixels.mean(0, keepdims=True)
    if not np.any(centred):
        return np.zeros((n, h, w))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projection = centred @ vt[0]
    norms = np.linalg.norm(pixels, axis=1)
    if np.corrcoef(projection, norms)[0, 1] < 0 if norms.std() > 0 else False:
        projection = -projection
    return projection.reshape(n, h, w)


# --------------------------------------------------------------------------------------------- faces (CAFD)
LANDMARK_STYLE = dict(marker="x", color="cyan", s=45, linewidths=2, zorder=4)
"""How the five face landmarks are drawn over grid maps and faces."""
ANCHOR_STYLE = dict(marker="*", color="white", edgecolors="black", s=180, linewidths=1, zorder=5)
"""How the anchor of a facial distance (URFM's positional encoding) is drawn."""
FACE_AXES = ("x (fraction of the image width)", "y (fraction of the image height)")


def _points(name: str, values: Any, count: int | None) -> np.ndarray:
    """(count, 2) (or any (P, 2) when ``count`` is None) normalised (x, y) points as a finite array."""
    array = _to_numpy(values)
    if array.ndim != 2 or array.shape[1] != 2 or (count is not None and len(array) != count):
        want = f"({count}, 2)" if count is not None else "(P, 2)"
        raise ValueError(f"{name} must be {want} normalised (x, y) points, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values")
    return array


def _face_panel(ax: Axes, values: np.ndarray, *, image: np.ndarray | None, norm: Normalize, cmap: Any,
                landmarks: np.ndarray | None, anchor: np.ndarray | None, centre: np.ndarray | None = None) -> None:
    """One (rows, cols) map over the unit square of the face (x right, y down), over ``image`` when given,
    with the landmarks (x), the anchor (star) and one marked centre (a cyan ring)."""
    if image is not None:
        pixels = np.clip(image.transpose(1, 2, 0), 0.0, 1.0)
        ax.imshow(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=1,
                  extent=(0, 1, 1, 0))
    ax.imshow(values, extent=(0, 1, 1, 0), interpolation="nearest", cmap=cmap, norm=norm,
              alpha=OVERLAY_ALPHA if image is not None else 1.0)
    if landmarks is not None:
        ax.scatter(landmarks[:, 0], landmarks[:, 1], **LANDMARK_STYLE)
    if anchor is not None:
        ax.scatter([anchor[0]], [anchor[1]], **ANCHOR_STYLE)
    if centre is not None:
        ax.scatter([centre[0]], [centre[1]], s=90, facecolors="none", edgecolors="cyan", linewidths=2, zorder=5)
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)


def plot_face_grid_maps(maps: Mapping[str, Any], *, title: str, landmarks: Any = None, anchor: Any = None,
                        image: Any = None, discrete: bool = False, cmap: str | None = None,
                        ncols: int | None = None) -> Figure:
    """Maps over the centre grid of an aligned face, one panel per map (name -> (rows, cols) values).

    Every map covers the whole image as rows x cols cells (normalised coordinates, x to the right, y down), drawn
    over ``image`` (C, H, W in [0, 1]) when given, with the five ``landmarks`` ((5, 2) normalised (x, y), crosses)
    and the ``anchor`` ((2,), a star). Each panel gets its own colour bar labelled with the map's name (put the
    unit there, e.g. ``"D_sal (grid cells)"``). ``discrete=True`` draws integer maps (PIF buckets) with one colour
    per integer, shared by all panels. ``ncols`` panels per row (default: all in one row, at most 5).
    """
    if not maps:
        raise ValueError("plot_face_grid_maps needs at least one map")
    arrays = {}
    for name, values in maps.items():
        array = _to_numpy(values)
        if array.ndim != 2 or not np.all(np.isfinite(array)):
            raise ValueError(f"map {name!r} must be a finite (rows, cols) array, got shape {array.shape}")
        arrays[name] = array
    lm = None if landmarks is None else _points("landmarks", landmarks, 5)
    anc = None if anchor is None else _points("anchor", np.reshape(_to_numpy(anchor), (1, -1)), 1)[0]
    img = None
    if image is not None:
        img = _to_numpy(image)
        if img.ndim != 3 or img.shape[0] not in (1, 3):
            raise ValueError(f"image must be (C, H, W) with C in (1, 3), got {img.shape}")
    ncols = ncols or min(len(arrays), 5)
    nrows = math.ceil(len(arrays) / ncols)
    fig, axes = _figure(nrows, ncols, figsize=(3.3 * ncols + 0.6, 3.2 * nrows + 0.7))
    if discrete:
        top = int(max(a.max() for a in arrays.values()))
        low = int(min(a.min() for a in arrays.values()))
        colours = ListedColormap(sns.color_palette("viridis", top - low + 1))
        shared = Normalize(low - 0.5, top + 0.5)
    for ax, (name, values) in zip(axes.ravel(), arrays.items()):
        if discrete:
            norm, colour_map = shared, colours
        else:
            norm, colour_map = Normalize(values.min(), max(values.max(), values.min() + 1e-9)), cmap or "viridis"
        _face_panel(ax, values, image=img, norm=norm, cmap=colour_map, landmarks=lm, anchor=anc)
        _label(ax, name, *FACE_AXES)
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=colour_map), ax=ax, label=name, shrink=0.8)
        if discrete:
            bar.set_ticks(range(low, top + 1))
    for ax in axes.ravel()[len(arrays):]:
        _hide(ax)
    handles = [Line2D([], [], linestyle="none", marker="x", color="cyan",
                      label="landmarks (eyes, nose, mouth corners)")]
    if anc is not None:
        handles.append(Line2D([], [], linestyle="none", marker="*", markerfacecolor="white", markeredgecolor="black",
                              markersize=12, label="anchor"))
    if lm is not None or anc is not None:
        fig.legend(handles=handles if lm is not None else handles[1:], loc="outside lower center", ncols=2,
                   fontsize=TICK_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def plot_roc_curves(curves: Mapping[str, tuple[Any, Any]], *, title: str, far_marks: Sequence[float] = (1e-2,),
                    min_far: float = 1e-4) -> Figure:
    """Verification ROC curves (name -> (FAR, TAR) arrays, e.g. from ``kdlab.metrics.roc_curve``) on a log FAR axis.

    FAR = share of different-identity pairs accepted, TAR = share of same-identity pairs accepted. Points with
    FAR = 0 cannot sit on a log axis: they are drawn at ``min_far``. ``far_marks`` draws dotted verticals (the
    operating points of TAR@FAR).
    """
    if not curves:
        raise ValueError("plot_roc_curves needs at least one curve")
    fig, axes = _figure(figsize=(7, 4.8))
    ax = axes[0, 0]
    for name, (far, tar) in curves.items():
        far, tar = _to_numpy(far).ravel(), _to_numpy(tar).ravel()
        if far.shape != tar.shape or far.size < 2:
            raise ValueError(f"curve {name!r} needs FAR and TAR arrays of one length >= 2, got {far.shape}, "
                             f"{tar.shape}")
        if np.any((far < 0) | (far > 1) | (tar < 0) | (tar > 1)):
            raise ValueError(f"curve {name!r}: rates must lie in [0, 1]")
        ax.step(np.maximum(far, min_far), tar, where="post", label=name)
    for mark in far_marks:
        ax.axvline(mark, color="0.4", linestyle=":", linewidth=1)
        ax.text(mark, 0.02, f" FAR = {mark:g}", fontsize=TICK_SIZE, color="0.3")
    ax.set_xscale("log")
    ax.set_xlim(min_far, 1)
    ax.set_ylim(0, 1.01)
    _label(ax, title, "false accept rate FAR (share of different-identity pairs accepted, log scale)",
           "true accept rate TAR (share of same-identity pairs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=TICK_SIZE, loc="lower right")
    return fig


def show_centre_attention(image: Any, maps: Mapping[str, Any], centres: Any, *, title: str,
                          grid: tuple[int, int], notes: Mapping[str, Sequence[str]] | None = None) -> Figure:
    """URFM's cross-attention: for each network (name -> (L, h, w) maps, each centre's attention over that network's
    pixel grid), a rows x cols block of panels (``grid``, L = rows * cols, row-major like the centres), each the
    centre's attention map stretched over the face ``image`` (C, H, W) with the centre's own position (``centres``,
    (L, 2) normalised (x, y)) ringed. One colour scale per network, its colour bar labelled. ``notes`` (name -> L
    strings) are added to the panel titles (e.g. the share of attention on the prompt tokens).
    """
    rows, cols = grid
    img = _to_numpy(image)
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"image must be (C, H, W) with C in (1, 3), got {img.shape}")
    if not maps:
        raise ValueError("show_centre_attention needs at least one network's maps")
    pts = _points("centres", centres, rows * cols)
    arrays = {}
    for name, values in maps.items():
        array = _to_numpy(values)
        if array.ndim != 3 or len(array) != rows * cols or not np.all(np.isfinite(array)):
            raise ValueError(f"maps {name!r} must be finite ({rows * cols}, h, w) arrays, got shape {array.shape}")
        arrays[name] = array
    fig, axes = _figure(rows, cols * len(arrays),
                        figsize=(1.9 * cols * len(arrays) + 1.5 * len(arrays), 1.9 * rows + 1.2))
    for k, (name, array) in enumerate(arrays.items()):
        block = axes[:, k * cols:(k + 1) * cols]
        norm = Normalize(0.0, max(float(array.max()), 1e-9))
        for i in range(rows * cols):
            ax = block[i // cols, i % cols]
            _face_panel(ax, array[i], image=img, norm=norm, cmap="magma", landmarks=None, anchor=None, centre=pts[i])
            note = f", {notes[name][i]}" if notes and name in notes else ""
            ax.set_title(f"{name[:18]} c{i}{note}", fontsize=TICK_SIZE - 1)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(ScalarMappable(norm=norm, cmap="magma"), ax=list(block.ravel()),
                     label=f"{name}: attention weight (share of the centre)", shrink=0.8, location="bottom", aspect=30)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def show_faces(images: Any, landmarks: Any = None, labels: Sequence[str] | None = None, *, title: str,
               ncols: int = 8) -> Figure:
    """Aligned faces (N, C, H, W in [0, 1]) in a grid, with their five landmarks ((N, 5, 2) normalised (x, y),
    crosses) and a caption per face (``labels``, e.g. the identity). Axes are in pixels."""
    batch = _image_batch(images)
    if len(batch) == 0:
        raise ValueError("show_faces needs at least one image")
    lm = None
    if landmarks is not None:
        lm = _to_numpy(landmarks)
        if lm.shape != (len(batch), 5, 2):
            raise ValueError(f"landmarks must have shape ({len(batch)}, 5, 2), got {lm.shape}")
    if labels is not None and len(labels) != len(batch):
        raise ValueError(f"need one label per image ({len(batch)}), got {len(labels)}")
    ncols = min(ncols, len(batch))
    nrows = math.ceil(len(batch) / ncols)
    fig, axes = _figure(nrows, ncols, figsize=(1.9 * ncols, 2.1 * nrows + 0.8))
    size = batch.shape[-1]
    for i, ax in enumerate(axes.ravel()):
        if i >= len(batch):
            _hide(ax)
            continue
        _draw_image(ax, batch[i])
        if lm is not None:
            ax.scatter(lm[i, :, 0] * size - 0.5, lm[i, :, 1] * size - 0.5, marker="x", color="cyan", s=18,
                       linewidths=1.5)
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=TICK_SIZE)
    if lm is not None:
        fig.legend(handles=[Line2D([], [], linestyle="none", marker="x", color="cyan",
                                   label=f"landmarks ({size}x{size} px image: eyes, nose tip, mouth corners)")],
                   loc="outside lower center", fontsize=TICK_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def plot_attention_matrices(matrices: Mapping[str, Any], *, title: str, label: str = "attention weight",
                            xlabel: str = "key (local feature j)", ylabel: str = "query (local feature i)") -> Figure:
    """Square attention matrices side by side (name -> (L, L), rows summing to 1), one shared colour scale whose bar
    is labelled ``label``."""
    if not matrices:
        raise ValueError("plot_attention_matrices needs at least one matrix")
    arrays = {name: _to_numpy(m) for name, m in matrices.items()}
    for name, m in arrays.items():
        if m.ndim != 2 or not np.all(np.isfinite(m)):
            raise ValueError(f"matrix {name!r} must be a finite 2-D array, got shape {m.shape}")
    norm = Normalize(0.0, max(max(float(m.max()) for m in arrays.values()), 1e-9))
    fig, axes = _figure(1, len(arrays), figsize=(4.2 * len(arrays) + 1.0, 4.2))
    for ax, (name, m) in zip(axes[0], arrays.items()):
        ax.imshow(m, cmap="magma", norm=norm, interpolation="nearest")
        _label(ax, name, xlabel, ylabel)
    fig.colorbar(ScalarMappable(norm=norm, cmap="magma"), ax=list(axes[0]), label=label, shrink=0.85)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig
