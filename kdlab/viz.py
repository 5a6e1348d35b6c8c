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
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

TITLE_SIZE = 13
LABEL_SIZE = 11
TICK_SIZE = 10
CKA_CMAP = "viridis"

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
def show_images(x: Any, labels: Sequence[int] | None = None, classes: Sequence[str] | None = None, n: int = 16,
                ncols: int = 8, title: str = "Samples", masks: Any = None) -> Figure:
    """A grid of the first ``n`` images of an (N, C, H, W) batch with values in [0, 1] and C = 1 or 3.

    Captions are ``classes[label]`` (or the label itself without ``classes``). ``masks`` (N, H, W), integer
    or boolean, is overlaid half-transparently, one colour per value 1-9 (matplotlib's tab10), with 0
    (background) left clear.
    """
    images = _to_numpy(x)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, C, H, W) with C in (1, 3), got {images.shape}")
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
        image = np.clip(images[i].transpose(1, 2, 0), 0.0, 1.0)
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0.0, vmax=1.0)
        if mask_values is not None:
            ax.imshow(np.ma.masked_equal(mask_values[i], 0), cmap="tab10", vmin=0, vmax=9, alpha=0.5,
                      interpolation="nearest")
        if label_values is not None:
            caption = classes[label_values[i]] if classes is not None else str(label_values[i])
            ax.set_title(caption, fontsize=TICK_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
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
