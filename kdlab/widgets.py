r"""Interactive explorers for the notebooks: state + a pure render function, testable without a browser.

An :class:`Explorer` holds a few ipywidgets controls and some fixed state, and redraws its figure into an
``Output`` whenever a control's value changes. The drawing itself is a pure function of the state
(``render(**state) -> Figure``), so a test sets ``explorer.some_control.value = ...`` and inspects
``explorer.state()`` and ``explorer.figure`` directly.

A new explorer is a subclass that builds its controls, passes them (and any fixed state) to
``Explorer.__init__`` and defines ``render``::

    class NoiseExplorer(Explorer):
        def __init__(self, sigma=0.1):
            self.sigma = widgets.FloatSlider(value=sigma, min=0, max=1, description="sigma")
            super().__init__({"sigma": self.sigma}, image=some_image)

        @staticmethod
        def render(sigma, image):
            ...  # return a Figure

Controls that depend on each other (an epoch slider bounded by an epochs slider) are kept consistent in
``sync``, which runs before the redraw; the changes it makes do not redraw again.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import ipywidgets as widgets
import numpy as np
import torch
from IPython.display import clear_output, display
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .methods.cskd import SCHEDULES, alpha_schedule, check_schedule, cskd_targets
from .methods.ofa import ofa_loss, ofa_weights
from .methods.swtat import effective_window, shifted_window_mask
from .viz import (ALPHA_LABEL, LABEL_SIZE, TICK_SIZE, TITLE_SIZE, WINDOW_EDGE, _check_layout_args,
                  _class_legend, _draw_alpha_steps, _draw_label_map, _draw_layout, _epoch_axis, _figure, _label,
                  _to_numpy, plot_bars, plot_histories, softmax)

DEFAULT_TEACHER_LOGITS = (6.0, 3.0, 2.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, -3.0)
"""A confident teacher: class 0 wins, classes 1-2 are plausible look-alikes, the rest unlikely."""
DEFAULT_STUDENT_LOGITS = (2.0, 1.5, 0.5, 1.0, 0.0, 0.5, -0.5, 0.0, -0.5, -1.0)
"""A flatter, partly wrong student: it ranks class 3 above class 2."""


class Explorer:
    """Base of the notebook explorers: ``controls`` (name -> widget) + fixed state, redrawn on every change.

    ``state()`` is the fixed state plus each control's current value; ``render(**state())`` must return a
    matplotlib Figure. ``figure`` is the last rendered one, ``output`` the Output it is shown in and ``ui``
    the whole thing (controls above the output); displaying the explorer displays ``ui``.
    """

    def __init__(self, controls: dict[str, widgets.ValueWidget], **fixed: Any) -> None:
        self.controls = controls
        self.fixed = fixed
        self.output = widgets.Output()
        self.figure: Figure | None = None
        self.ui = widgets.VBox([widgets.HBox(list(controls.values())), self.output])
        self._syncing = False
        for control in controls.values():
            control.observe(self._changed, names="value")
        self.refresh()

    def state(self) -> dict[str, Any]:
        return {**self.fixed, **{name: control.value for name, control in self.controls.items()}}

    def render(self, **state: Any) -> Figure:
        raise NotImplementedError("an Explorer subclass defines render(**state) -> Figure")

    def sync(self, control: widgets.ValueWidget) -> None:
        """Called after ``control``'s value changed, before the redraw: a subclass adjusts linked controls here."""

    def _changed(self, change: dict[str, Any]) -> None:
        if self._syncing:  # a change made by sync(): the redraw below covers it
            return
        self._syncing = True
        try:
            self.sync(change["owner"])
        finally:
            self._syncing = False
        self.refresh()

    def refresh(self) -> Figure:
        """Render the current state into ``figure`` and show it in ``output``."""
        self.figure = self.render(**self.state())
        _show(self.output, self.figure)
        return self.figure

    def _ipython_display_(self) -> None:
        display(self.ui)


def _show(output: widgets.Output, figure: Figure) -> None:
    """Replace what ``output`` shows by ``figure``."""
    with output:
        clear_output(wait=True)
        display(figure)


class RetrainPanel:
    """Controls, a *Train* button and the curves of every run so far: retrain briefly with other knobs, compare.

    ``train_fn(**state)`` trains and returns the run's per-epoch records: a list of dicts holding ``epoch`` and
    ``metric``, or an object with such a ``rows`` list (a :class:`kdlab.train.History`). Each run is labelled
    by its state (``"gamma=1.5, stages=(1, 2)"``); a run with the same state replaces the earlier one.
    :meth:`run` is what the button calls (a test calls it directly); *Clear* forgets the runs.
    """

    def __init__(self, controls: dict[str, widgets.ValueWidget], train_fn: Any, metric: str = "val/acc",
                 title: str = "Retrained runs") -> None:
        if not callable(train_fn):
            raise TypeError(f"train_fn must be callable, got {type(train_fn).__name__}")
        self.controls, self.train_fn, self.metric, self.title = controls, train_fn, metric, title
        self.runs: dict[str, list[dict[str, Any]]] = {}
        self.figure: Figure | None = None
        self.train_button = widgets.Button(description="Train", icon="play", button_style="primary")
        self.clear_button = widgets.Button(description="Clear", icon="trash")
        self.status = widgets.Label("Pick the knobs and press Train.")
        self.output = widgets.Output()
        self.train_button.on_click(lambda _button: self.run())
        self.clear_button.on_click(lambda _button: self.clear())
        self.ui = widgets.VBox([widgets.HBox([*controls.values(), self.train_button, self.clear_button]),
                                self.status, self.output])

    def state(self) -> dict[str, Any]:
        return {name: control.value for name, control in self.controls.items()}

    def run(self) -> Figure:
        """Train once with the current state, add its curve and redraw all runs."""
        state = self.state()
        label = ", ".join(f"{name}={value}" for name, value in state.items()) or "run"
        self.status.value, self.train_button.disabled = f"training {label} ...", True
        try:
            result = self.train_fn(**state)
            rows = list(result.rows if hasattr(result, "rows") else result)
        finally:
            self.train_button.disabled = False
        values = [row[self.metric] for row in rows if self.metric in row]
        if not values:
            self.status.value = f"{label}: the run returned no {self.metric!r} values"
            raise ValueError(f"train_fn returned no per-epoch records with {self.metric!r}")
        self.runs[label] = rows
        self.status.value = f"{label}: last {self.metric} = {values[-1]:.3f}"
        self.figure = plot_histories(self.runs, self.metric, title=self.title)
        _show(self.output, self.figure)
        return self.figure

    def clear(self) -> None:
        self.runs.clear()
        self.figure = None
        self.output.clear_output()
        self.status.value = "Cleared. Pick the knobs and press Train."

    def _ipython_display_(self) -> None:
        display(self.ui)


def _logit_pair(teacher_logits: Any, student_logits: Any) -> tuple[list[float], list[float]]:
    """Teacher and student logits as lists of equal length (``None``: the ``DEFAULT_*_LOGITS``)."""
    pair = []
    for name, logits, default in (("teacher", teacher_logits, DEFAULT_TEACHER_LOGITS),
                                  ("student", student_logits, DEFAULT_STUDENT_LOGITS)):
        values = _to_numpy(default if logits is None else logits)
        if values.ndim != 1:
            raise ValueError(f"expected a 1-D vector of {name} logits, got shape {values.shape}")
        pair.append(values.tolist())
    teacher, student = pair
    if len(teacher) != len(student):
        raise ValueError(f"teacher has {len(teacher)} logits but student has {len(student)}")
    return teacher, student


def _slider(name: str, description: str, value: float, low: float, high: float, step: float) -> widgets.FloatSlider:
    """A FloatSlider over [low, high] that refuses (rather than silently clamps) a start value outside it."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}] (the slider's range), got {value!r}")
    return widgets.FloatSlider(value=value, min=low, max=high, step=step, description=description,
                               continuous_update=False, readout_format=".1f")


def _int_slider(name: str, description: str, value: int, low: int, high: int) -> widgets.IntSlider:
    """An IntSlider over [low, high] that refuses (rather than silently clamps) a start value outside it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}] (the slider's range), got {value!r}")
    return widgets.IntSlider(value=value, min=low, max=high, description=description, continuous_update=False)


def _check_target(target: Any, num_classes: int) -> None:
    """Raise a ``ValueError`` unless ``target`` is an integer class index in 0..num_classes-1."""
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < num_classes:
        raise ValueError(f"target must be a class index in 0..{num_classes - 1}, got {target!r}")


def _target_dropdown(num_classes: int, target: int) -> widgets.Dropdown:
    """A dropdown of the class indices 0..num_classes-1, starting at ``target``."""
    _check_target(target, num_classes)
    return widgets.Dropdown(options=[(f"class {i}", i) for i in range(num_classes)], value=target,
                            description="target")


def _probability_panel(ax: Axes, q: np.ndarray, p: np.ndarray, target: int) -> None:
    """Bars of the softened teacher $q$ and student $p$, the target class shaded and read out in the title."""
    plot_bars({"teacher $q$": q, "student $p$": p}, ylabel="probability", highlight=target, ax=ax,
              title=f"softmax(z / T): target q = {q[target]:.2f}, p = {p[target]:.2f}")


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
    fig, axes = _figure(1, 3, figsize=(15, 4))
    plot_bars({"teacher $z_t$": teacher_logits, "student $z_s$": student_logits}, title="logits",
              ylabel="logit", highlight=target, ax=axes[0, 0])
    _probability_panel(axes[0, 1], view.teacher_probs, view.student_probs, target)
    plot_bars({"T (p - q)": view.grad}, title="KD gradient on the student logits",
              ylabel=r"$\partial\mathcal{L}_{KD}/\partial z_s$", highlight=target, ax=axes[0, 2])
    loss = rf"$T^2\,\mathrm{{KL}}(q\,\|\,p)$ = {view.loss:.4f}"
    fig.suptitle(f"T = {temperature:g}    KD loss {loss}", fontsize=TITLE_SIZE)
    return fig


class TemperatureExplorer(Explorer):
    """Move the temperature and watch the teacher's "dark knowledge", the KD loss and its gradient change.

    ``logits`` are the teacher's (default :data:`DEFAULT_TEACHER_LOGITS`), ``student_logits`` the
    student's (default the flatter :data:`DEFAULT_STUDENT_LOGITS`); ``target`` is the true class, shaded.
    """

    render = staticmethod(render_temperature)

    def __init__(self, logits: Any = None, temperature: float = 4.0, student_logits: Any = None,
                 target: int = 0) -> None:
        teacher, student = _logit_pair(logits, student_logits)
        self.temperature = _slider("temperature", "T", temperature, 0.5, 20.0, 0.5)
        self.target = _target_dropdown(len(teacher), target)
        super().__init__({"temperature": self.temperature, "target": self.target},
                         teacher_logits=teacher, student_logits=student)


class OFAView(NamedTuple):
    """The OFA loss on one example: soft distributions, class weights, the loss and its gradient."""

    teacher_probs: np.ndarray  # q = softmax(z_t / T)
    student_probs: np.ndarray  # p = softmax(z_s / T)
    weights: np.ndarray  # w from ofa_weights; code form: (q + m)^gamma - m
    loss: float  # -sum_c w_c log p_c
    grad: np.ndarray  # d loss / d z_s, by autograd


def ofa_view(teacher_logits: Any, student_logits: Any, target: int, gamma: float, temperature: float,
             form: str = "code") -> OFAView:
    r"""The OFA loss of one example, its class weights and its gradient with respect to the student logits.

    With $q = \mathrm{softmax}(z_t/T)$, $p = \mathrm{softmax}(z_s/T)$ and $m = \mathrm{onehot}(y)$, the code form
    weights the classes by $w = (q+m)^\gamma - m$ ($w_y = (1+q_y)^\gamma - 1$, $w_{c\neq y} = q_c^\gamma$) and
    $\ell = -\sum_c w_c \log p_c$ (the paper form: $w_y = (1+q_y)^\gamma$, $w_{c\neq y} = q_c$).

    Gradient: $\partial \log p_c / \partial z_{s,k} = (\delta_{ck} - p_k)/T$ and $w$ does not depend on $z_s$, so
    $\partial\ell/\partial z_{s,k} = \frac1T\big[(\sum_c w_c)\,p_k - w_k\big]$ in either form; at $\gamma = 1$
    (code form) $w = q$ and it is $(p - q)/T$. The weights and the loss are those of
    :func:`~kdlab.methods.ofa.ofa_weights` and :func:`~kdlab.methods.ofa.ofa_loss`, and the gradient is their
    autograd gradient, so the picture shows exactly what training does.
    """
    z_t = torch.as_tensor(_to_numpy(teacher_logits))
    z_s = torch.as_tensor(_to_numpy(student_logits)).requires_grad_(True)
    if z_t.ndim != 1 or z_t.shape != z_s.shape:
        raise ValueError(f"expected two 1-D logit vectors of equal length, got shapes {tuple(z_t.shape)} and "
                         f"{tuple(z_s.shape)}")
    _check_target(target, len(z_t))
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
    fig, axes = _figure(1, 3, figsize=(15, 4))
    _probability_panel(axes[0, 0], q, view.student_probs, target)
    plot_bars({"teacher $q$": q, f"weight $w$ ({form} form)": w}, ylabel="probability / weight", highlight=target,
              ax=axes[0, 1], title=rf"OFA weights: $w_y$ = {w[target]:.2f}, $\sum_c w_c$ = {w.sum():.2f}")
    plot_bars({r"$\frac{1}{T}[(\sum_c w_c)\,p - w]$": view.grad}, title="OFA gradient on the student logits",
              ylabel=r"$\partial\mathcal{L}_{OFA}/\partial z_s$", highlight=target, ax=axes[0, 2])
    fig.suptitle(f"γ = {gamma:g}, T = {temperature:g}    OFA loss ({form} form) = {view.loss:.4f}",
                 fontsize=TITLE_SIZE)
    return fig


class OFAExplorer(Explorer):
    """Move γ and T and watch the OFA weights shift towards the target class and the gradient follow.

    ``logits`` are the teacher's (default :data:`DEFAULT_TEACHER_LOGITS`), ``student_logits`` the student's
    (default :data:`DEFAULT_STUDENT_LOGITS`); ``target`` is the true class, shaded. ``form`` is ``"code"`` (the
    official code's weights) or ``"paper"``.
    """

    render = staticmethod(render_ofa)

    def __init__(self, logits: Any = None, gamma: float = 1.5, temperature: float = 1.0, student_logits: Any = None,
                 target: int = 0, form: str = "code") -> None:
        teacher, student = _logit_pair(logits, student_logits)
        self.gamma = _slider("gamma", "γ", gamma, 1.0, 3.0, 0.1)
        self.temperature = _slider("temperature", "T", temperature, 0.5, 8.0, 0.5)
        self.target = _target_dropdown(len(teacher), target)
        super().__init__({"gamma": self.gamma, "temperature": self.temperature, "target": self.target},
                         teacher_logits=teacher, student_logits=student, form=form)


class AlphaView(NamedTuple):
    """CSKD's fused targets for one image at one epoch of the cumulative knowledge fusion schedule."""

    alpha: float  # the weight of the dense logits, alpha_schedule(epoch, epochs, kind)
    labels: np.ndarray  # Y^T (h, w) = argmax_c(alpha P^T + (1 - alpha) P^T_g)
    global_label: int  # argmax_c P^T_g
    differ: float  # fraction of the h * w cells whose label is not the global label


def alpha_view(dense_logits: Any, global_logits: Any, kind: str, epochs: int, epoch: int) -> AlphaView:
    r"""The fused label map of one image at ``epoch`` of ``epochs``: $\alpha = \alpha(e)$
    (:func:`~kdlab.methods.cskd.alpha_schedule`, per epoch) and, with :func:`~kdlab.methods.cskd.cskd_targets`,

    $$Y^T[i,j] = \arg\max_c\big(\alpha P^T[c,i,j] + (1-\alpha) P^T_g[c]\big).$$

    ``dense_logits`` $P^T$ is (K, h, w) and ``global_logits`` $P^T_g$ (K,). A cell's label, once it is the global
    label $\arg\max_c P^T_g$, stays so as $\alpha$ decreases (the fused margin is linear in $\alpha$ and positive at
    both ends), so ``differ`` never rises over the epochs and is 0 at $\alpha = 0$ (when the global argmax is unique).
    """
    dense, global_ = torch.as_tensor(_to_numpy(dense_logits)), torch.as_tensor(_to_numpy(global_logits))
    if dense.ndim != 3 or global_.shape != dense.shape[:1]:
        raise ValueError("expected one image's dense teacher logits (K, h, w) and global logits (K,), got shapes "
                         f"{tuple(dense.shape)} and {tuple(global_.shape)}")
    alpha = alpha_schedule(epoch, epochs, kind)
    labels = cskd_targets(dense[None], global_[None], alpha)[0].numpy()
    global_label = int(global_.argmax())
    return AlphaView(alpha, labels, global_label, float(np.mean(labels != global_label)))


def render_alpha(kind: str, epochs: int, epoch: int, image: Any, dense_logits: Any, global_logits: Any,
                 classes: list[str]) -> Figure:
    r"""Two panels at ``epoch`` of ``epochs``: left, the ``kind`` schedule's per-epoch $\alpha$ with the current
    epoch marked and $\alpha$ read out; right, the fused targets $Y^T$ (:func:`alpha_view`) over the (C, H, W)
    ``image``, one colour per class, with the cells that differ from the global label hatched and their share in
    the title. ``classes`` names the K classes of the logits.
    """
    view = alpha_view(dense_logits, global_logits, kind, epochs, epoch)
    num_classes = len(_to_numpy(global_logits))
    if len(classes) != num_classes:
        raise ValueError(f"the logits have {num_classes} classes but {len(classes)} class names were given")
    pixels = _to_numpy(image)
    if pixels.ndim != 3 or pixels.shape[0] not in (1, 3):
        raise ValueError(f"expected one image of shape (C, H, W) with C in (1, 3), got {pixels.shape}")
    fig, axes = _figure(1, 2, figsize=(12, 4.5))
    curve_ax, map_ax = axes[0]
    _draw_alpha_steps(curve_ax, epochs, kind, linewidth=2, label=f"{kind}, per epoch")
    curve_ax.plot([epoch], [view.alpha], "o", color="black", markersize=8, label=f"epoch {epoch}")
    _label(curve_ax, f"{kind} schedule: α({epoch}) = {view.alpha:.3f}", "epoch", ALPHA_LABEL)
    curve_ax.set_xlim(0, epochs)
    curve_ax.set_ylim(-0.02, 1.02)
    _epoch_axis(curve_ax)
    curve_ax.legend(fontsize=TICK_SIZE)
    _draw_label_map(map_ax, pixels, view.labels, classes, view.global_label)
    map_ax.set_title(f"$Y^T$ at α = {view.alpha:.2f}: {view.differ:.0%} of cells ≠ global label "
                     f"({classes[view.global_label]})", fontsize=LABEL_SIZE + 1)
    _class_legend(fig, classes, np.append(view.labels.ravel(), view.global_label), marked=True)
    fig.suptitle(f"CSKD cumulative knowledge fusion: epoch {epoch} of 0..{epochs - 1}", fontsize=TITLE_SIZE)
    return fig


class AlphaExplorer(Explorer):
    """Step through training and watch CSKD's fused targets $Y^T$ of one image move from the teacher's dense
    (local) labels to its global label as α decreases.

    ``image`` (C, H, W), ``dense_logits`` (K, h, w) and ``global_logits`` (K,) are one image's CNN-teacher outputs
    (e.g. from :func:`~kdlab.methods.cskd.dense_and_global_logits`), ``classes`` its K class names. Controls: the
    schedule ``kind``, the number of ``epochs`` (1-100) and the current ``epoch`` (0 to epochs - 1; lowering
    ``epochs`` clamps it, with one redraw).
    """

    render = staticmethod(render_alpha)

    def __init__(self, image: Any, dense_logits: Any, global_logits: Any, classes: list[str], kind: str = "linear",
                 epochs: int = 30, epoch: int = 0) -> None:
        check_schedule(epochs, kind)
        self.kind = widgets.Dropdown(options=list(SCHEDULES), value=kind, description="schedule")
        self.epochs = _int_slider("epochs", "epochs E", epochs, 1, 100)
        self.epoch = _int_slider("epoch", "epoch e", epoch, 0, epochs - 1)
        super().__init__({"kind": self.kind, "epochs": self.epochs, "epoch": self.epoch}, image=_to_numpy(image),
                         dense_logits=_to_numpy(dense_logits), global_logits=_to_numpy(global_logits),
                         classes=list(classes))

    def sync(self, control: widgets.ValueWidget) -> None:
        """Keep ``epoch`` within 0..epochs-1 (lowering its ``max`` clamps its value)."""
        if control is self.epochs:
            self.epoch.max = self.epochs.value - 1


def render_windows(height: int, width: int, window: int, shift: int, max_masks: int = 3) -> Figure:
    """An $H\\times W$ map cut into shifted windows (colour = window, in the map's own coordinates) and the masks of the ``max_masks`` windows with the most forbidden pairs (light = allowed). Sizes that are not
    multiples of the window are padded bottom/right first; an axis no longer than the window is one window."""
    (height, width), window, shift = _check_layout_args((height, width), window, shift)
    masks = shifted_window_mask(height, width, window, shift)
    blocked = (~masks).float().mean(dim=(1, 2))
    shown = torch.argsort(blocked, descending=True, stable=True)[:max_masks].sort().values
    (wh, ww), (sh, sw) = effective_window(height, width, window, shift)
    fig, axes = _figure(1, 1 + len(shown), figsize=(3.6 + 2.8 * len(shown), 3.9))
    _draw_layout(axes[0, 0], None, (height, width), window, shift, "window")
    axes[0, 0].set_title(f"{masks.shape[0]} windows of {wh}x{ww}, shift ({sh}, {sw})", fontsize=LABEL_SIZE)
    for ax, w in zip(axes[0, 1:], shown.tolist()):
        ax.imshow(masks[w].numpy(), cmap="Greys_r", vmin=0, vmax=1, interpolation="nearest")
        _label(ax, f"window {w}: {blocked[w]:.0%} masked", "key token j", "query token i")
    fig.legend(handles=[Line2D([], [], **WINDOW_EDGE, label="window border (one colour per window: a window "
                                                            "wrapped round the border shows in opposite corners)")],
               loc="outside lower center", fontsize=TICK_SIZE)
    fig.suptitle(f"Shifted windows on a {height}x{width} map: window {window}, shift {shift}", fontsize=TITLE_SIZE)
    return fig


class MaskExplorer(Explorer):
    """Slide the map size, the window and the shift: the shifted-window layout and its attention masks
    (:func:`render_windows`). ``shift`` stays in [0, window) (changing the window clamps it, with one redraw)."""

    render = staticmethod(render_windows)

    def __init__(self, height: int = 8, width: int = 8, window: int = 4, shift: int = 2) -> None:
        _check_layout_args((height, width), window, shift)
        self.height = _int_slider("height", "map H", height, 1, 32)
        self.width = _int_slider("width", "map W", width, 1, 32)
        self.window = _int_slider("window", "window M", window, 1, 16)
        self.shift = _int_slider("shift", "shift s", shift, 0, window - 1)
        super().__init__({"height": self.height, "width": self.width, "window": self.window, "shift": self.shift})

    def sync(self, control: widgets.ValueWidget) -> None:
        """Keep ``shift`` within 0..window-1."""
        if control is self.window:
            self.shift.max = self.window.value - 1


def render_depth_pick(index: int, images: Any, target: Any, predictions: dict[str, Any],
                      attentions: dict[str, Any] | None = None,
                      depth_range: tuple[float, float] | None = None) -> Figure:
    """One scene of a set: the image, its ground-truth depth, every named prediction and its error map
    (:func:`kdlab.viz.show_depth_maps`), and up to two attention maps (e.g. LAM's $A_l$, name -> (N, h, w)) over
    the image. ``images`` (N, 3, H, W), ``target`` and each prediction (N, H, W) or (N, 1, H, W) metres."""
    from .viz import show_depth_maps

    count = len(_to_numpy(images))
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < count:
        raise ValueError(f"index must be an int in [0, {count - 1}], got {index!r}")
    pick = slice(index, index + 1)
    return show_depth_maps(_to_numpy(images)[pick], _to_numpy(target)[pick],
                           {name: _to_numpy(p)[pick] for name, p in predictions.items()},
                           overlays={name: _to_numpy(a)[pick] for name, a in (attentions or {}).items()},
                           depth_range=depth_range, title=f"Scene {index} of {count}: predictions and their errors")


class DepthExplorer(Explorer):
    """Pick a scene (``index``): its predictions, their error maps and attention maps (:func:`render_depth_pick`).

    ``predictions`` (and ``attentions``) are computed once for the whole set, so moving the slider only redraws.
    """

    render = staticmethod(render_depth_pick)

    def __init__(self, images: Any, target: Any, predictions: dict[str, Any], attentions: dict[str, Any] | None = None,
                 depth_range: tuple[float, float] | None = None, index: int = 0) -> None:
        images = _to_numpy(images)
        if not predictions:
            raise ValueError("DepthExplorer needs at least one prediction")
        self.index = _int_slider("index", "scene", index, 0, len(images) - 1)
        super().__init__({"index": self.index}, images=images, target=_to_numpy(target),
                         predictions={name: _to_numpy(p) for name, p in predictions.items()},
                         attentions={name: _to_numpy(a) for name, a in (attentions or {}).items()},
                         depth_range=depth_range)


# --------------------------------------------------------------------------------------------- CAFD
FACE_ANCHORS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right", "image_centre")
"""Anchors the facial-distance explorer offers: the five template landmarks, or the centre of the image."""


class FacialDistanceView(NamedTuple):
    """What :func:`render_facial_distance` draws: ``distance`` $D$ and ``buckets`` $I(D)$ as (rows, cols) arrays
    over URFM's centre grid, ``counts`` (n_buckets,) how many centres fall in each bucket, ``anchor`` (2,)
    normalised (x, y), and ``landmarks`` (5, 2) normalised."""

    distance: np.ndarray
    buckets: np.ndarray
    counts: np.ndarray
    anchor: np.ndarray
    landmarks: np.ndarray


def facial_distance_view(anchor: str, gamma_face: float, pif_ratio: float, grid: int,
                         landmarks: Any = None) -> FacialDistanceView:
    """$D = \\tilde D + \\gamma_{face}(D_{sal} + D_{rel})$ from ``anchor`` (a :data:`FACE_ANCHORS` name) on a
    ``grid`` x ``grid`` centre grid, in grid cells (:func:`kdlab.methods.cafd.facial_distance_parts`), and its PIF
    buckets at ratio ``pif_ratio`` (:func:`kdlab.methods.cafd.piecewise_index`, $\\lfloor 2r\\rfloor + 1$ buckets).
    ``landmarks``: (5, 2) normalised, default the ArcFace template."""
    from .methods.cafd import (LANDMARK_NAMES, facial_distance_parts, grid_centres, num_buckets, pif_params,
                               piecewise_index, template_landmarks)

    if anchor not in FACE_ANCHORS:
        raise ValueError(f"anchor must be one of {', '.join(FACE_ANCHORS)}, got {anchor!r}")
    if isinstance(grid, bool) or not isinstance(grid, numbers.Integral) or grid < 1:
        raise ValueError(f"grid must be an int >= 1, got {grid!r}")
    lm = template_landmarks() if landmarks is None else torch.as_tensor(_to_numpy(landmarks), dtype=torch.float32)
    point = (torch.tensor([0.5, 0.5]) if anchor == "image_centre" else lm[LANDMARK_NAMES.index(anchor)])
    parts = facial_distance_parts(grid_centres(grid), lm, point, gamma_face, grid)
    alpha, beta, gamma = pif_params(pif_ratio)
    buckets = piecewise_index(parts["total"], alpha, beta, gamma)
    counts = torch.bincount(buckets, minlength=num_buckets(beta))
    return FacialDistanceView(parts["total"].reshape(grid, grid).numpy().astype(np.float64),
                              buckets.reshape(grid, grid).numpy(), counts.numpy(), point.numpy().astype(np.float64),
                              lm.numpy().astype(np.float64))


def render_facial_distance(anchor: str, gamma_face: float, pif_ratio: float, grid: int, landmarks: Any = None,
                           image: Any = None) -> Figure:
    """Three panels: the facial distance $D$ from the anchor over the face (grid cells), its PIF bucket map, and how
    many centres each bucket holds (:func:`facial_distance_view`); ``image`` (C, H, W) is drawn under the maps."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize

    from .viz import ANCHOR_STYLE, FACE_AXES, LANDMARK_STYLE, OVERLAY_ALPHA

    view = facial_distance_view(anchor, gamma_face, pif_ratio, grid, landmarks)
    img = None if image is None else np.clip(_to_numpy(image).transpose(1, 2, 0), 0, 1)
    n_buckets = len(view.counts)
    fig, axes = _figure(1, 3, figsize=(14, 4.6))
    colours = ListedColormap(_palette(n_buckets))
    panels = ((view.distance, Normalize(view.distance.min(), max(view.distance.max(), 1e-9)), "viridis",
               "D (grid cells)", f"D = D~ + {gamma_face:g} (D_sal + D_rel)"),
              (view.buckets, Normalize(-0.5, n_buckets - 0.5), colours, "PIF bucket I(D)",
               f"buckets at ratio {pif_ratio:g}"))
    for ax, (values, norm, cmap, label, name) in zip(axes[0, :2], panels):
        if img is not None:
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", extent=(0, 1, 1, 0))
        ax.imshow(values, extent=(0, 1, 1, 0), interpolation="nearest", cmap=cmap, norm=norm,
                  alpha=OVERLAY_ALPHA if img is not None else 1.0)
        ax.scatter(view.landmarks[:, 0], view.landmarks[:, 1], **LANDMARK_STYLE)
        ax.scatter([view.anchor[0]], [view.anchor[1]], **ANCHOR_STYLE)
        ax.set_xlim(0, 1)
        ax.set_ylim(1, 0)
        _label(ax, name, *FACE_AXES)
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label, shrink=0.85)
        if cmap is colours:
            bar.set_ticks(range(n_buckets))
    ax = axes[0, 2]
    ax.bar(range(n_buckets), view.counts, color=[colours(k) for k in range(n_buckets)])
    ax.set_xticks(range(n_buckets))
    _label(ax, f"{int((view.counts > 0).sum())} of {n_buckets} buckets used", "PIF bucket I(D)",
           "centres in the bucket (count)")
    fig.suptitle(f"Facial distance from the {anchor.replace('_', ' ')} on a {grid}x{grid} centre grid",
                 fontsize=TITLE_SIZE)
    return fig


def _palette(n: int) -> list[tuple[float, float, float]]:
    """``n`` colours from viridis (one per PIF bucket)."""
    import seaborn as sns

    return sns.color_palette("viridis", n)


class FacialDistanceExplorer(Explorer):
    """Move URFM's anchor, $\\gamma_{face}$, the PIF ratio and the grid: the facial distance map, its buckets and
    the bucket histogram (:func:`render_facial_distance`). ``image`` (C, H, W) is an aligned face drawn underneath;
    ``landmarks`` (5, 2) normalised (default: the template)."""

    render = staticmethod(render_facial_distance)

    def __init__(self, image: Any = None, landmarks: Any = None, anchor: str = "nose", gamma_face: float = 1.0,
                 pif_ratio: float = 3.0, grid: int = 4) -> None:
        if anchor not in FACE_ANCHORS:
            raise ValueError(f"anchor must be one of {', '.join(FACE_ANCHORS)}, got {anchor!r}")
        self.anchor = widgets.Dropdown(options=list(FACE_ANCHORS), value=anchor, description="anchor")
        self.gamma_face = _slider("gamma_face", "γ_face", gamma_face, 0.0, 4.0, 0.25)
        self.pif_ratio = _slider("pif_ratio", "PIF ratio", pif_ratio, 1.0, 4.0, 0.1)
        self.grid = _int_slider("grid", "grid", grid, 2, 8)
        super().__init__({"anchor": self.anchor, "gamma_face": self.gamma_face, "pif_ratio": self.pif_ratio,
                          "grid": self.grid}, landmarks=landmarks, image=image)
