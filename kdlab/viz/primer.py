r"""Figures of the primer notebook (00): linear-CKA heatmaps, softmax temperature, Hinton KD on one example
(:func:`render_temperature`, what :class:`kdlab.widgets.TemperatureExplorer` redraws), accuracy against the label
budget (:func:`plot_label_budgets`) and attention beside a CNN's class-activation map (:func:`render_attention`,
what :class:`kdlab.widgets.AttentionExplorer` redraws)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .common import (TICK_SIZE, TITLE_SIZE, label_axes, new_figure, plot_bars, probability_bars, show_heatmaps, softmax,
                     to_numpy)

CKA_CMAP = "viridis"
"""Colour map of CKA similarities (0 to 1)."""

def _draw_cka(ax: Axes, matrix: Any, row_labels: Sequence[str], col_labels: Sequence[str], *,
              title: str, xlabel: str, ylabel: str, colorbar: bool) -> None:
    values = to_numpy(matrix)
    if values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"CKA matrix of shape {values.shape} does not match "
            f"{len(row_labels)} row labels and {len(col_labels)} column labels"
        )
    sns.heatmap(values, ax=ax, vmin=0.0, vmax=1.0, cmap=CKA_CMAP, annot=True, fmt=".2f",
                annot_kws={"fontsize": TICK_SIZE - 1}, xticklabels=list(col_labels), yticklabels=list(row_labels),
                cbar=colorbar, cbar_kws={"label": "linear CKA"} if colorbar else None)
    label_axes(ax, title, xlabel, ylabel)
    ax.tick_params(axis="y", labelrotation=0)


def cka_heatmap(matrix: Any, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "Linear CKA",
                ax: Axes | None = None, xlabel: str = "student layer", ylabel: str = "teacher layer") -> Figure:
    r"""Heatmap of a CKA similarity matrix (rows x columns), annotated to 2 decimals, colour scale 0 to 1.

    Linear CKA of two feature matrices $X, Y$ (examples x features, centred) is
    $\mathrm{CKA}(X,Y) = \|Y^\top X\|_F^2 / (\|X^\top X\|_F \, \|Y^\top Y\|_F)$, between 0 and 1.
    Draws into ``ax`` when given (and returns its figure).
    """
    if ax is None:
        fig, axes = new_figure(figsize=(1.0 + 0.8 * len(col_labels), 1.0 + 0.6 * len(row_labels)))
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
    fig, axes = new_figure(1, len(panels), figsize=(width, height))
    for ax, (name, (matrix, rows, cols)) in zip(axes[0], panels.items(), strict=True):
        _draw_cka(ax, matrix, rows, cols, title=name, xlabel=xlabel, ylabel=ylabel, colorbar=False)
    mappable = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=CKA_CMAP)
    fig.colorbar(mappable, ax=list(axes[0]), label="linear CKA")
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def plot_softmax_temperature(logits: Any, temperatures: Sequence[float], title: str = "Softening with temperature",
                             class_names: Sequence[str] | None = None) -> Figure:
    r"""Bars of $\mathrm{softmax}(z/T)$ per class for each temperature $T$: higher $T$ flattens the distribution."""
    z = to_numpy(logits)
    if z.ndim != 1:
        raise ValueError(f"expected a 1-D logit vector, got shape {z.shape}")
    series = {f"T = {t:g}": softmax(z, t) for t in temperatures}
    return plot_bars(series, title=title, ylabel="probability", xticklabels=class_names)


class KDView(NamedTuple):
    """Hinton KD on one example: teacher and student soft distributions, the loss and its gradient."""

    teacher_probs: np.ndarray  # q = softmax(z_t / T)
    student_probs: np.ndarray  # p = softmax(z_s / T)
    loss: float  # T^2 KL(q || p)
    grad: np.ndarray  # d loss / d z_s = T (p - q)


def kd_view(teacher_logits: Any, student_logits: Any, temperature: float) -> KDView:
    r"""The Hinton KD loss of one example and its gradient with respect to the student logits.

    With $q = \mathrm{softmax}(z_\mathrm{t}/T)$ and $p = \mathrm{softmax}(z_\mathrm{s}/T)$,
    $\mathcal{L} = T^2\,\mathrm{KL}(q\|p) = T^2 \sum_i q_i(\log q_i - \log p_i)$.

    Gradient: $\log p_i = z_{\mathrm{s},i}/T - \log\sum_k \exp(z_{\mathrm{s},k}/T)$, so
    $\partial \log p_i / \partial z_{\mathrm{s},j} = (\mathbb{1}[i=j] - p_j)/T$ and, since $\sum_i q_i = 1$,
    $\partial\,\mathrm{KL}(q\|p)/\partial z_{\mathrm{s},j} = -\sum_i q_i(\mathbb{1}[i=j] - p_j)/T = (p_j - q_j)/T$.
    Times $T^2$: $\partial\mathcal{L}/\partial z_\mathrm{s} = T\,(p - q)$.
    """
    q = softmax(teacher_logits, temperature)
    p = softmax(student_logits, temperature)
    if q.ndim != 1 or q.shape != p.shape:
        raise ValueError(f"expected two 1-D logit vectors of equal length, got shapes {q.shape} and {p.shape}")
    support = q > 0  # 0 log 0 = 0
    loss = temperature**2 * float(np.sum(q[support] * (np.log(q[support]) - np.log(p[support]))))
    return KDView(q, p, loss, temperature * (p - q))


def render_temperature(teacher_logits: Any, student_logits: Any, temperature: float, target: int) -> Figure:
    r"""Three panels for one example at temperature $T$: the raw logits, the softened distributions
    $q = \mathrm{softmax}(z_\mathrm{t}/T)$ vs $p = \mathrm{softmax}(z_\mathrm{s}/T)$, and the KD gradient
    $T(p - q)$ on the student logits (see :func:`kd_view` for the derivation). The title gives $T$ and
    $\mathcal{L}_{KD} = T^2\,\mathrm{KL}(q\|p)$; the ``target`` class is shaded.
    """
    view = kd_view(teacher_logits, student_logits, temperature)
    fig, axes = new_figure(1, 3, figsize=(15, 4))
    plot_bars({r"teacher $z_\mathrm{t}$": teacher_logits, r"student $z_\mathrm{s}$": student_logits}, title="logits",
              ylabel="logit", highlight=target, ax=axes[0, 0])
    probability_bars(axes[0, 1], view.teacher_probs, view.student_probs, target)
    plot_bars({"T (p - q)": view.grad}, title="KD gradient on the student logits",
              ylabel=r"$\partial\mathcal{L}_{KD}/\partial z_\mathrm{s}$", highlight=target, ax=axes[0, 2])
    loss = rf"$T^2\,\mathrm{{KL}}(q\,\|\,p)$ = {view.loss:.4f}"
    fig.suptitle(f"T = {temperature:g}    KD loss {loss}", fontsize=TITLE_SIZE)
    return fig


def plot_label_budgets(per_budget: Mapping[str, Mapping[int, Sequence[float]]], *, title: str,
                       live: Mapping[str, Mapping[int, Sequence[float]]] | None = None,
                       ylabel: str = "test accuracy (%)") -> Figure:
    """Accuracy against the number of labelled images (log axis), one line per row (label -> {budget: per-seed
    fractions}): the mean over seeds with an error bar of one standard deviation. ``live`` adds another run's
    points of the same rows as open markers (the notebook's live run over the reference run's full sweep)."""
    if not per_budget:
        raise ValueError("plot_label_budgets needs at least one row")
    fig, axes = new_figure(figsize=(7, 4.5))
    ax = axes[0, 0]
    colours = dict(zip(per_budget, sns.color_palette("colorblind", len(per_budget))))
    for name, points in per_budget.items():
        budgets = sorted(points)
        values = [100 * np.asarray(points[b], dtype=float) for b in budgets]
        spread = [v.std(ddof=1) if len(v) > 1 else 0.0 for v in values]
        ax.errorbar(budgets, [v.mean() for v in values], yerr=spread, marker="o", capsize=3, color=colours[name],
                    label=f"{name} (mean ± std of {len(values[0])} seeds)")
    for name, points in (live or {}).items():
        budgets = sorted(points)
        ax.plot(budgets, [100 * np.mean(points[b]) for b in budgets], linestyle="none", marker="D", markersize=8,
                markerfacecolor="none", color=colours.get(name, "0.3"), label=f"{name}: this run")
    ax.set_xscale("log")
    every = sorted({b for points in per_budget.values() for b in points})
    ax.set_xticks(every, [str(b) for b in every])
    ax.minorticks_off()
    label_axes(ax, title, "labelled training images (log scale)", ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=TICK_SIZE)
    return fig


def render_attention(images: Any, attention: Mapping[str, Any], cams: Mapping[str, Any], index: int, block: int,
                     head: int, classes: Sequence[str] | None = None) -> Figure:
    """Test image ``index`` and, beside it, where each ViT's class token looks in ``block`` (``head``, or -1 for the
    mean over heads) next to each CNN's class-activation map: what :class:`kdlab.widgets.AttentionExplorer`
    redraws. ``attention`` maps a name to (N, blocks, heads, g, g) class-token rows
    (:func:`kdlab.models.cls_attention`), ``cams`` a name to (N, h, w) maps (:func:`kdlab.models.class_activation_map`).
    Each map has its own colour scale, named with the map."""
    images = to_numpy(images)
    maps = {}
    for name, rows in attention.items():
        rows = to_numpy(rows)
        chosen = rows[index, block].mean(axis=0) if head < 0 else rows[index, block, head]
        maps[f"{name}: attention (share)"] = chosen[None]
    maps.update({f"{name}: CAM (logit)": to_numpy(cam)[index][None] for name, cam in cams.items()})
    which = "mean over heads" if head < 0 else f"head {head}"
    return show_heatmaps(images[index][None], maps, cmap="magma",
                         title=f"Test image {index}: class-token attention in block {block + 1} ({which}) and the "
                               f"CNN's class-activation map")
