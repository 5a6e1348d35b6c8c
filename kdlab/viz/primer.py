r"""Figures of the primer notebook (00): linear-CKA heatmaps, softmax temperature, and Hinton KD on one example
(:func:`render_temperature`, what :class:`kdlab.widgets.TemperatureExplorer` redraws)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .common import TICK_SIZE, TITLE_SIZE, label_axes, new_figure, plot_bars, probability_bars, softmax, to_numpy

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

    With $q = \mathrm{softmax}(z_t/T)$ and $p = \mathrm{softmax}(z_s/T)$,
    $\mathcal{L} = T^2\,\mathrm{KL}(q\|p) = T^2 \sum_i q_i(\log q_i - \log p_i)$.

    Gradient: $\log p_i = z_{s,i}/T - \log\sum_k e^{z_{s,k}/T}$, so
    $\partial \log p_i / \partial z_{s,j} = (\delta_{ij} - p_j)/T$ and, since $\sum_i q_i = 1$,
    $\partial\,\mathrm{KL}(q\|p)/\partial z_{s,j} = -\sum_i q_i(\delta_{ij} - p_j)/T = (p_j - q_j)/T$.
    Times $T^2$: $\partial\mathcal{L}/\partial z_s = T\,(p - q)$.
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
    $q = \mathrm{softmax}(z_t/T)$ vs $p = \mathrm{softmax}(z_s/T)$, and the KD gradient $T(p - q)$ on the
    student logits (see :func:`kd_view` for the derivation). The title gives $T$ and
    $\mathcal{L}_{KD} = T^2\,\mathrm{KL}(q\|p)$; the ``target`` class is shaded.
    """
    view = kd_view(teacher_logits, student_logits, temperature)
    fig, axes = new_figure(1, 3, figsize=(15, 4))
    plot_bars({"teacher $z_t$": teacher_logits, "student $z_s$": student_logits}, title="logits",
              ylabel="logit", highlight=target, ax=axes[0, 0])
    probability_bars(axes[0, 1], view.teacher_probs, view.student_probs, target)
    plot_bars({"T (p - q)": view.grad}, title="KD gradient on the student logits",
              ylabel=r"$\partial\mathcal{L}_{KD}/\partial z_s$", highlight=target, ax=axes[0, 2])
    loss = rf"$T^2\,\mathrm{{KL}}(q\,\|\,p)$ = {view.loss:.4f}"
    fig.suptitle(f"T = {temperature:g}    KD loss {loss}", fontsize=TITLE_SIZE)
    return fig
