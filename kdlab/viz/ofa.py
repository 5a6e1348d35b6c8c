r"""Figures of the OFA notebook (01): the OFA class weights against teacher confidence, the gamma toy (what gamma
leaves of each teacher's non-target mass, and what it does to the student), and the OFA loss on one example
(:func:`render_ofa`, what :class:`kdlab.widgets.OFAExplorer` redraws)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure

from ..checks import check_int
from ..methods import ofa_loss, ofa_weights
from .common import (LABEL_SIZE, TICK_SIZE, TITLE_SIZE, label_axes, new_figure, plot_bars, probability_bars, softmax,
                     to_numpy)


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
    if len(gammas) == 0:
        raise ValueError("plot_ofa_weights needs at least one gamma")
    q = torch.linspace(0.0, 1.0, num_points, dtype=torch.float64)
    teacher_logits = torch.stack([q.log(), (1 - q).log()], dim=1)
    target = torch.zeros(num_points, dtype=torch.long)
    fig, axes = new_figure(1, 2, figsize=(12, 4.5))
    target_ax, other_ax = axes[0]
    for gamma in gammas:
        code = ofa_weights(teacher_logits, target, float(gamma), form="code").numpy()
        paper = ofa_weights(teacher_logits, target, float(gamma), form="paper").numpy()
        (line,) = target_ax.plot(q, code[:, 0], label=f"code, γ = {gamma:g}")
        target_ax.plot(q, paper[:, 0], linestyle="--", color=line.get_color(), label=f"paper, γ = {gamma:g}")
        other_ax.plot(1 - q, code[:, 1], color=line.get_color(), label=f"code, γ = {gamma:g}")
    other_ax.plot(1 - q, paper[:, 1], linestyle="--", color="0.4", label="paper, every γ")
    if target_probs is not None:
        probs = to_numpy(target_probs).ravel()
        if probs.size == 0 or not np.all((probs >= 0) & (probs <= 1)):
            raise ValueError("target_probs must be non-empty teacher probabilities in [0, 1]")
        counts = target_ax.twinx()
        counts.hist(probs, bins=20, range=(0.0, 1.0), color="0.6", alpha=0.3)
        counts.set_ylabel("examples (count)", fontsize=LABEL_SIZE)
        target_ax.set_zorder(counts.get_zorder() + 1)  # curves over the histogram
        target_ax.patch.set_visible(False)
    label_axes(target_ax, r"target: code $(1+q_y)^\gamma-1$ (solid), paper $(1+q_y)^\gamma$ (dashed)",
           "teacher probability of the target class q_y", "weight w_y")
    label_axes(other_ax, r"non-target: code $q_c^\gamma$ (solid), paper $q_c$ (dashed)",
           "teacher probability of a non-target class q_c", "weight w_c")
    for ax in (target_ax, other_ax):
        ax.set_xlim(0.0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=TICK_SIZE - 1, ncol=2 if ax is target_ax else 1)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig



class OFAView(NamedTuple):
    """The OFA loss on one example: soft distributions, class weights, the loss and its gradient."""

    teacher_probs: np.ndarray  # q = softmax(z_t / T)
    student_probs: np.ndarray  # p = softmax(z_s / T)
    weights: np.ndarray  # w from ofa_weights; code form: (q + m)^gamma - m
    loss: float  # -sum_c w_c log p_c
    grad: np.ndarray  # d loss / d z_s, by autograd


Interval = tuple[float, float, float]
"""(mean, low, high): a paired difference and its 95 % interval, in the unit the figure states."""


def plot_gamma_toy(non_target: Mapping[str, Mapping[float, float]], gains: Mapping[str, Mapping[float, Interval]], *,
                   title: str = "When does γ > 1 help?") -> Figure:
    r"""The gamma toy in two panels, one colour per teacher. Left: the total non-target weight
    $\sum_{c\neq y}q_c^\gamma$ the OFA loss keeps of that teacher (mean over the training images; ``non_target``:
    teacher -> {gamma: value}). Right: the student's test accuracy against the same teacher at $\gamma=1$, in points,
    with its 95 % interval (``gains``: teacher -> {gamma: (mean, low, high)}; the interval's ends may be NaN with
    one seed, then no bar is drawn)."""
    if not gains or set(gains) - set(non_target):
        raise ValueError(f"give the non-target weight of every teacher in gains; gains has {sorted(gains)}, "
                         f"non_target {sorted(non_target)}")
    fig, axes = new_figure(1, 2, figsize=(12, 4.5))
    left, right = axes[0]
    colours = dict(zip(non_target, sns.color_palette("colorblind", len(non_target))))
    for name, points in non_target.items():
        gammas = sorted(points)
        left.plot(gammas, [points[g] for g in gammas], marker="o", color=colours[name], label=name)
    for name, points in gains.items():
        gammas = sorted(points)
        mean, low, high = (np.array([points[g][k] for g in gammas], dtype=float) for k in range(3))
        errors = np.nan_to_num(np.vstack([mean - low, high - mean]))
        right.errorbar(gammas, mean, yerr=errors, marker="o", capsize=3, color=colours[name], label=name)
    right.axhline(0.0, color="0.3", linewidth=0.8)
    label_axes(left, "What the loss keeps of the teacher's other classes", "γ",
               "non-target weight Σ_{c≠y} q_c^γ (mean per image)")
    label_axes(right, "Student against the same teacher at γ = 1", "γ", "test accuracy change (points, 95 % CI)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=TICK_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def ofa_view(teacher_logits: Any, student_logits: Any, target: int, gamma: float, temperature: float,
             form: str = "code") -> OFAView:
    r"""The OFA loss of one example, its class weights and its gradient with respect to the student logits.

    With $q = \mathrm{softmax}(z_\mathrm{t}/T)$, $p = \mathrm{softmax}(z_\mathrm{s}/T)$ and the one-hot label
    $\mathbb{1}_y$, the code form weights the classes by $w = (q+\mathbb{1}_y)^\gamma - \mathbb{1}_y$
    ($w_y = (1+q_y)^\gamma - 1$, $w_{c\neq y} = q_c^\gamma$) and
    $\mathcal{L}_{OFA} = -\sum_c w_c \log p_c$ (the paper form: $w_y = (1+q_y)^\gamma$, $w_{c\neq y} = q_c$).

    Gradient: $\partial \log p_c / \partial z_{\mathrm{s},k} = (\mathbb{1}[c=k] - p_k)/T$ and $w$ does not depend on
    $z_\mathrm{s}$, so $\partial\mathcal{L}_{OFA}/\partial z_{\mathrm{s},k} = \frac1T\big[(\sum_c w_c)\,p_k - w_k\big]$
    in either form; at $\gamma = 1$ (code form) $w = q$ and it is $(p - q)/T$. The weights and the loss are those of
    :func:`~kdlab.methods.ofa.ofa_weights` and :func:`~kdlab.methods.ofa.ofa_loss`, and the gradient is their
    autograd gradient, so the picture shows exactly what training does.
    """
    z_t = torch.as_tensor(to_numpy(teacher_logits))
    z_s = torch.as_tensor(to_numpy(student_logits)).requires_grad_(True)
    if z_t.ndim != 1 or z_t.shape != z_s.shape:
        raise ValueError(f"expected two 1-D logit vectors of equal length, got shapes {tuple(z_t.shape)} and "
                         f"{tuple(z_s.shape)}")
    check_int("target", target, low=0, high=len(z_t) - 1)
    y = torch.tensor([int(target)])
    weights = ofa_weights(z_t[None], y, gamma, temperature, form)[0]
    with torch.enable_grad():  # the gradient is the point, even when called under no_grad
        loss = ofa_loss(z_s[None], z_t[None], y, gamma, temperature, form)
        loss.backward()
    return OFAView(softmax(z_t, temperature), softmax(z_s, temperature), weights.numpy(), loss.item(),
                   z_s.grad.numpy())


def render_ofa(teacher_logits: Any, student_logits: Any, target: int, gamma: float, temperature: float,
               form: str = "code") -> Figure:
    r"""Three panels for one example: the softened distributions $q$ vs $p$, the OFA class weights $w$ next to
    $q$, and the gradient $\frac1T[(\sum_c w_c)p - w]$ on the student logits (see :func:`ofa_view`). The title
    gives $\gamma$, $T$ and the loss $-\sum_c w_c\log p_c$; the ``target`` class is shaded.
    """
    view = ofa_view(teacher_logits, student_logits, target, gamma, temperature, form)
    q, w = view.teacher_probs, view.weights
    fig, axes = new_figure(1, 3, figsize=(15, 4))
    probability_bars(axes[0, 0], q, view.student_probs, target)
    plot_bars({"teacher $q$": q, f"weight $w$ ({form} form)": w}, ylabel="probability / weight", highlight=target,
              ax=axes[0, 1], title=rf"OFA weights: $w_y$ = {w[target]:.2f}, $\sum_c w_c$ = {w.sum():.2f}")
    plot_bars({r"$\frac{1}{T}[(\sum_c w_c)\,p - w]$": view.grad}, title="OFA gradient on the student logits",
              ylabel=r"$\partial\mathcal{L}_{OFA}/\partial z_\mathrm{s}$", highlight=target, ax=axes[0, 2])
    fig.suptitle(f"γ = {gamma:g}, T = {temperature:g}    OFA loss ({form} form) = {view.loss:.4f}",
                 fontsize=TITLE_SIZE)
    return fig
