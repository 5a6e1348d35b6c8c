r"""Figures of the CSKD notebook (02): the cumulative knowledge fusion schedule (the share of the fused target
taken from the teacher's dense logits, :math:`\omega`, the paper's :math:`\alpha`) and the fused targets of one image at one epoch
(:func:`render_dense_share`, what :class:`kdlab.widgets.DenseShareExplorer` redraws), and a CSKD student's outputs,
dense term and dense share over training (:func:`plot_training_diagnosis`, the notebook's §6.2)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..checks import check_int
from ..methods import CKF_SCHEDULES, check_ckf_schedule, ckf_share, cskd_targets
from .common import (LABEL_SIZE, TICK_SIZE, TITLE_SIZE, class_colours, class_legend, draw_label_map, epoch_axis,
                     label_axes, new_figure, one_image, to_numpy)

DENSE_SHARE_LABEL = "ω (weight of the dense, local logits)"
"""Axis label of the dense share ω (the paper's α)."""


def _draw_share_steps(ax: Axes, epochs: int, kind: str, **style: Any) -> Line2D:
    r"""The official per-epoch $\omega(t)$, $t = 0,\dots,E-1$, as a step curve over $[0, E]$ (constant within each
    epoch); ``style`` goes to ``ax.step``."""
    values = [ckf_share(e / epochs, epochs, kind) for e in range(epochs)]
    (line,) = ax.step(np.arange(epochs + 1), [*values, values[-1]], where="post", **style)
    return line


HEADS = ("class token", "distillation token", "patch average")
"""The student outputs :func:`plot_training_diagnosis` follows (keys of :func:`kdlab.methods.student_heads`)."""


def plot_training_diagnosis(curves: dict[str, dict[str, Sequence[float]]], baseline: Sequence[float], epochs: int,
                            kind: str = "linear", num_classes: int = 10,
                            title: str = "CSKD during training (first seed)") -> Figure:
    r"""Three panels over the epochs of one seed's runs, to see when and where a CSKD student learns.

    Left: the validation accuracy of each output head (:data:`HEADS`) of every run in ``curves`` (one colour per
    head, one line style per run) next to ``baseline``, the no-KD student's validation accuracy. Middle: each run's
    dense term $\mathcal{L}_{CSKD}$ per epoch (the training mean, unweighted) with $\log K$, the loss of a uniform
    guess over ``num_classes``. Right: the dense share $\omega$ of each run: the ``kind`` schedule over ``epochs``
    for runs with CKF, 1 for a run whose name says "without CKF". ``curves[run]`` holds ``"dense loss"`` and one
    list per head, each as long as ``baseline``.
    """
    if not curves:
        raise ValueError("plot_training_diagnosis needs at least one run's curves")
    check_ckf_schedule(epochs, kind)
    x = np.arange(1, len(baseline) + 1)
    for run, series in curves.items():
        lengths = {key: len(series.get(key, ())) for key in (*HEADS, "dense loss")}
        if set(lengths.values()) != {len(x)}:
            raise ValueError(f"{run!r}: every curve needs {len(x)} values (one per epoch), got {lengths}")
    fig, axes = new_figure(1, 3, figsize=(16, 4.6))
    acc_ax, loss_ax, share_ax = axes[0]
    styles = dict(zip(curves, ("-", "--", ":", "-.")))
    colours = dict(zip(HEADS, class_colours(len(HEADS))))
    acc_ax.plot(x, baseline, color="black", linewidth=2, label="no KD (its one head)")
    for run, series in curves.items():
        for head in HEADS:
            acc_ax.plot(x, series[head], linestyle=styles[run], color=colours[head], label=f"{run}: {head}")
        loss_ax.plot(x, series["dense loss"], linestyle=styles[run], color="0.2", label=run)
        shares = [1.0 if "without CKF" in run else ckf_share((e - 1) / epochs, epochs, kind) for e in x]
        share_ax.step(x, shares, where="mid", linestyle=styles[run], color="0.2", label=run)
    loss_ax.axhline(np.log(num_classes), color="0.5", linewidth=1, label=f"uniform guess, log {num_classes}")
    label_axes(acc_ax, "Validation accuracy of each output", "epoch", "validation accuracy (fraction)")
    label_axes(loss_ax, "Dense term during training", "epoch", "L_CSKD, epoch mean (nats)")
    label_axes(share_ax, "Dense share of the targets", "epoch", DENSE_SHARE_LABEL)
    share_ax.set_ylim(-0.02, 1.05)
    for ax in (acc_ax, loss_ax, share_ax):
        ax.grid(alpha=0.3)
        epoch_axis(ax)
        ax.legend(fontsize=TICK_SIZE - 2)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def plot_dense_share_schedules(epochs: int, kinds: Sequence[str] = ("linear", "x2", "cos"),
                               steps_per_epoch: int = 20,
                               title: str = "CSKD: the weight ω of the dense logits over training") -> Figure:
    r"""CSKD's cumulative knowledge fusion schedule: $\omega$, the weight of the dense (local) teacher logits in
    $y^\mathrm{T} = \arg\max_c(\omega Z^\mathrm{T} + (1-\omega) Z^\mathrm{T}_\mathrm{g})$, over $E$ = ``epochs``.

    For each kind (:data:`kdlab.methods.CKF_SCHEDULES`; $x = t/E$: ``linear`` $1-x$, ``x2`` $(1-x)^2$, ``cos``
    $\cos(\pi x/2)$) a solid step curve shows the official per-epoch $\omega(t)$, $t = 0,\dots,E-1$ (it ends at
    $\omega(E-1) > 0$, e.g. $1/E$ for ``linear``), and a thin dashed curve of the same colour the per-iteration
    $\omega$ after every step, a fraction ``1 / steps_per_epoch`` of an epoch apart, which reaches 0 at $E$. A dotted
    curve on the right axis
    is the global weight $1-\omega$ per epoch, of the first kind only (``linear`` by default), to stay readable.
    Values come from :func:`kdlab.methods.ckf_share`.
    """
    if len(kinds) == 0:
        raise ValueError("plot_dense_share_schedules needs at least one kind of schedule")
    for kind in kinds:
        check_ckf_schedule(epochs, kind)
    check_int("steps_per_epoch", steps_per_epoch, low=1)
    fig, axes = new_figure(figsize=(10, 4.5))
    ax = axes[0, 0]
    epoch = np.arange(epochs * steps_per_epoch + 1) / steps_per_epoch  # epochs done, step by step, in [0, E]
    steps = []
    for kind in kinds:
        steps.append(_draw_share_steps(ax, epochs, kind, linewidth=2, label=f"{kind}, per epoch (official)"))
        ax.plot(epoch, [ckf_share(e / epochs, epochs, kind, per_iteration=True) for e in epoch], linestyle="--",
                linewidth=1, color=steps[-1].get_color(), label=f"{kind}, per iteration")
    twin = ax.twinx()
    twin.step(steps[0].get_xdata(), 1 - steps[0].get_ydata(), where="post", linestyle=":", linewidth=2, color="0.25",
              label=f"1 − ω, {kinds[0]} only (right axis)")
    label_axes(ax, title, "epoch", DENSE_SHARE_LABEL)
    twin.set_ylabel("1 − ω (weight of the global logits)", fontsize=LABEL_SIZE)
    twin.tick_params(labelsize=TICK_SIZE)
    for axis in (ax, twin):
        axis.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, epochs)
    epoch_axis(ax)
    handles, labels = zip(*(pair for axis in (ax, twin) for pair in zip(*axis.get_legend_handles_labels())))
    fig.legend(handles, labels, loc="outside right upper", fontsize=TICK_SIZE)
    return fig


class DenseShareView(NamedTuple):
    """CSKD's fused targets for one image at one epoch of the cumulative knowledge fusion schedule."""

    dense_share: float  # omega (the paper's alpha): weight of the dense logits, ckf_share(epoch / epochs, epochs, kind)
    labels: np.ndarray  # y^T (H, W) = argmax_c(share Z^T + (1 - share) Z^T_g)
    global_label: int  # argmax_c P^T_g
    differ: float  # fraction of the h * w cells whose label is not the global label


def dense_share_view(dense_logits: Any, global_logits: Any, kind: str, epochs: int, epoch: int) -> DenseShareView:
    r"""The fused label map of one image at ``epoch`` of ``epochs``: $\omega = \omega(t)$
    (:func:`~kdlab.methods.ckf_share`, per epoch) and, with :func:`~kdlab.methods.cskd.cskd_targets`,

    $$y^\mathrm{T}[i,j] = \arg\max_c\big(\omega Z^\mathrm{T}[c,i,j] + (1-\omega) Z^\mathrm{T}_\mathrm{g}[c]\big).$$

    ``dense_logits`` $P^T$ is (K, h, w) and ``global_logits`` $P^T_g$ (K,). A cell's label, once it is the global
    label $\arg\max_c P^T_g$, stays so as $\omega$ decreases (the fused margin is linear in $\omega$ and positive at
    both ends), so ``differ`` never rises over the epochs and is 0 at $\omega = 0$ (when the global argmax is unique).
    """
    dense, global_ = torch.as_tensor(to_numpy(dense_logits)), torch.as_tensor(to_numpy(global_logits))
    if dense.ndim != 3 or global_.shape != dense.shape[:1]:
        raise ValueError("expected one image's dense teacher logits (K, h, w) and global logits (K,), got shapes "
                         f"{tuple(dense.shape)} and {tuple(global_.shape)}")
    check_ckf_schedule(epochs, kind)
    share = ckf_share(check_int("epoch", epoch, low=0, high=epochs - 1) / epochs, epochs, kind)
    labels = cskd_targets(dense[None], global_[None], share)[0].numpy()
    global_label = int(global_.argmax())
    return DenseShareView(share, labels, global_label, float(np.mean(labels != global_label)))


def render_dense_share(kind: str, epochs: int, epoch: int, image: Any, dense_logits: Any, global_logits: Any,
                       classes: list[str]) -> Figure:
    r"""Three panels at ``epoch`` of ``epochs``: left, $\omega$ per epoch for every kind of
    :data:`~kdlab.methods.CKF_SCHEDULES` (``kind`` drawn bold, the current epoch marked and $\omega$ read out); middle,
    the share of this image's cells whose target differs from its global label, over the epochs, for every kind;
    right, the fused targets $y^\mathrm{T}$ (:func:`dense_share_view`) over the (C, H, W) ``image``, one colour per
    class, with
    the cells that differ from the global label hatched. ``classes`` names the K classes of the logits.
    """
    view = dense_share_view(dense_logits, global_logits, kind, epochs, epoch)
    num_classes = len(to_numpy(global_logits))
    if len(classes) != num_classes:
        raise ValueError(f"the logits have {num_classes} classes but {len(classes)} class names were given")
    pixels = one_image(image)
    fig, axes = new_figure(1, 3, figsize=(16, 4.6))
    curve_ax, differ_ax, map_ax = axes[0]
    for other, colour in zip(CKF_SCHEDULES, class_colours(len(CKF_SCHEDULES))):
        current = other == kind
        line = _draw_share_steps(curve_ax, epochs, other, linewidth=2.5 if current else 1, label=other,
                                 alpha=1.0 if current else 0.6, color=colour)
        differ = [dense_share_view(dense_logits, global_logits, other, epochs, e).differ for e in range(epochs)]
        differ_ax.step(np.arange(epochs + 1), [*differ, differ[-1]], where="post", color=line.get_color(),
                       linewidth=2.5 if current else 1, alpha=1.0 if current else 0.6, label=other)
    curve_ax.plot([epoch], [view.dense_share], "o", color="black", markersize=8, label=f"epoch {epoch}")
    differ_ax.plot([epoch], [view.differ], "o", color="black", markersize=8, label=f"epoch {epoch}")
    label_axes(curve_ax, f"{kind} schedule: ω({epoch}) = {view.dense_share:.3f}", "epoch", DENSE_SHARE_LABEL)
    label_axes(differ_ax, "This image: targets that are not the global label", "epoch", "fraction of the cells")
    for ax in (curve_ax, differ_ax):
        ax.set_xlim(0, epochs)
        ax.set_ylim(-0.02, 1.02)
        epoch_axis(ax)
        ax.legend(fontsize=TICK_SIZE)
    draw_label_map(map_ax, pixels, view.labels, classes, view.global_label)
    map_ax.set_title(f"$y^{{\\mathrm{{T}}}}$ at ω = {view.dense_share:.2f}: {view.differ:.0%} of cells ≠ global "
                     f"label ({classes[view.global_label]})", fontsize=LABEL_SIZE + 1)
    class_legend(fig, classes, np.append(view.labels.ravel(), view.global_label), marked=True)
    fig.suptitle(f"CSKD cumulative knowledge fusion: epoch {epoch} of 0..{epochs - 1}", fontsize=TITLE_SIZE)
    return fig
