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
"""
from __future__ import annotations

from typing import Any, NamedTuple

import ipywidgets as widgets
import numpy as np
from IPython.display import clear_output, display
from matplotlib.figure import Figure

from .viz import TITLE_SIZE, _figure, _to_numpy, plot_bars, softmax

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
        for control in controls.values():
            control.observe(lambda _change: self.refresh(), names="value")
        self.refresh()

    def state(self) -> dict[str, Any]:
        return {**self.fixed, **{name: control.value for name, control in self.controls.items()}}

    def render(self, **state: Any) -> Figure:
        raise NotImplementedError("an Explorer subclass defines render(**state) -> Figure")

    def refresh(self) -> Figure:
        """Render the current state into ``figure`` and show it in ``output``."""
        self.figure = self.render(**self.state())
        with self.output:
            clear_output(wait=True)
            display(self.figure)
        return self.figure

    def _ipython_display_(self) -> None:
        display(self.ui)


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
    q, p = view.teacher_probs, view.student_probs
    plot_bars({"teacher $q$": q, "student $p$": p}, ylabel="probability", highlight=target, ax=axes[0, 1],
              title=f"softmax(z / T): target q = {q[target]:.2f}, p = {p[target]:.2f}")
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
        teacher = _to_numpy(DEFAULT_TEACHER_LOGITS if logits is None else logits).ravel().tolist()
        student = _to_numpy(DEFAULT_STUDENT_LOGITS if student_logits is None else student_logits).ravel().tolist()
        if len(teacher) != len(student):
            raise ValueError(f"teacher has {len(teacher)} logits but student has {len(student)}")
        self.temperature = widgets.FloatSlider(value=temperature, min=0.5, max=20.0, step=0.5, description="T",
                                               continuous_update=False, readout_format=".1f")
        self.target = widgets.Dropdown(options=[(f"class {i}", i) for i in range(len(teacher))], value=target,
                                       description="target")
        super().__init__({"temperature": self.temperature, "target": self.target},
                         teacher_logits=teacher, student_logits=student)
