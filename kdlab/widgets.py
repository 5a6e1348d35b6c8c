r"""Interactive explorers for the notebooks: controls + state wired to a render function, testable without a browser.

This module only wires ipywidgets controls to the render functions of :mod:`kdlab.viz` (one module per notebook:
``viz.primer.render_temperature``, ``viz.ofa.render_ofa``, ``viz.cskd.render_dense_share``,
``viz.swtat.render_windows``, ``viz.swtat.render_window_attention``, ``viz.disdepth.render_depth_pick``,
``viz.cafd.render_facial_distance``, ``viz.cafd.render_urfm_attention``); it draws nothing itself, so a figure a
widget shows is the same figure a notebook cell gets by calling the function.

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

from typing import Any

import ipywidgets as widgets
from IPython.display import clear_output, display
from matplotlib.figure import Figure

from . import viz
from .checks import check_choice, check_int, check_number, check_pair
from .methods import CKF_SCHEDULES, check_ckf_schedule

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
        self.figure = viz.plot_histories(self.runs, self.metric, title=self.title)
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
        values = viz.common.to_numpy(default if logits is None else logits)
        if values.ndim != 1:
            raise ValueError(f"expected a 1-D vector of {name} logits, got shape {values.shape}")
        pair.append(values.tolist())
    teacher, student = pair
    if len(teacher) != len(student):
        raise ValueError(f"teacher has {len(teacher)} logits but student has {len(student)}")
    return teacher, student


def _slider(name: str, description: str, value: float, low: float, high: float, step: float) -> widgets.FloatSlider:
    """A FloatSlider over [low, high] that refuses (rather than silently clamps) a start value outside it."""
    check_number(name, value, low=low, high=high)
    return widgets.FloatSlider(value=value, min=low, max=high, step=step, description=description,
                               continuous_update=False, readout_format=".1f")


def _int_slider(name: str, description: str, value: int, low: int, high: int) -> widgets.IntSlider:
    """An IntSlider over [low, high] that refuses (rather than silently clamps) a start value outside it."""
    check_int(name, value, low=low, high=high)
    return widgets.IntSlider(value=value, min=low, max=high, description=description, continuous_update=False)


def _target_dropdown(num_classes: int, target: int) -> widgets.Dropdown:
    """A dropdown of the class indices 0..num_classes-1, starting at ``target``."""
    check_int("target", target, low=0, high=num_classes - 1)
    return widgets.Dropdown(options=[(f"class {i}", i) for i in range(num_classes)], value=target,
                            description="target")


class TemperatureExplorer(Explorer):
    """Move the temperature and watch the teacher's "dark knowledge", the KD loss and its gradient change.

    ``logits`` are the teacher's (default :data:`DEFAULT_TEACHER_LOGITS`), ``student_logits`` the
    student's (default the flatter :data:`DEFAULT_STUDENT_LOGITS`); ``target`` is the true class, shaded.
    """

    render = staticmethod(viz.primer.render_temperature)

    def __init__(self, logits: Any = None, temperature: float = 4.0, student_logits: Any = None,
                 target: int = 0) -> None:
        teacher, student = _logit_pair(logits, student_logits)
        self.temperature = _slider("temperature", "T", temperature, 0.5, 20.0, 0.5)
        self.target = _target_dropdown(len(teacher), target)
        super().__init__({"temperature": self.temperature, "target": self.target},
                         teacher_logits=teacher, student_logits=student)


class AttentionExplorer(Explorer):
    """Pick a test image, a block and a head: where each ViT student's class token looks, beside the CNN teacher's
    class-activation map (:func:`kdlab.viz.primer.render_attention`; the primer's §9).

    ``attention`` (name -> (N, blocks, heads, g, g)) and ``cams`` (name -> (N, h, w)) are computed once for the
    ``images``, so moving a control only redraws; ``head = -1`` is the mean over heads.
    """

    render = staticmethod(viz.primer.render_attention)

    def __init__(self, images: Any, attention: dict[str, Any], cams: dict[str, Any] | None = None, index: int = 0,
                 block: int = -1, head: int = -1) -> None:
        images = viz.common.to_numpy(images)
        if not attention:
            raise ValueError("AttentionExplorer needs at least one model's attention")
        attention = {name: viz.common.to_numpy(rows) for name, rows in attention.items()}
        shapes = {rows.shape[:3] for rows in attention.values()}
        if len(shapes) != 1 or next(iter(shapes))[0] != len(images):
            raise ValueError(f"every attention needs shape (N={len(images)}, blocks, heads, g, g), got "
                             f"{[rows.shape for rows in attention.values()]}")
        _, blocks, heads = next(iter(shapes))
        self.index = _int_slider("index", "image", index, 0, len(images) - 1)
        self.block = widgets.Dropdown(options=[(f"block {b + 1}", b) for b in range(blocks)], value=block % blocks,
                                      description="block")
        self.head = widgets.Dropdown(options=[("mean of heads", -1)] + [(f"head {h}", h) for h in range(heads)],
                                     value=head, description="head")
        super().__init__({"index": self.index, "block": self.block, "head": self.head}, images=images,
                         attention=attention, cams={name: viz.common.to_numpy(c) for name, c in (cams or {}).items()})


class OFAExplorer(Explorer):
    """Move γ and T and watch the OFA weights shift towards the target class and the gradient follow.

    ``logits`` are the teacher's (default :data:`DEFAULT_TEACHER_LOGITS`), ``student_logits`` the student's
    (default :data:`DEFAULT_STUDENT_LOGITS`); ``target`` is the true class, shaded. ``form`` is ``"code"`` (the
    official code's weights) or ``"paper"``.
    """

    render = staticmethod(viz.ofa.render_ofa)

    def __init__(self, logits: Any = None, gamma: float = 1.5, temperature: float = 1.0, student_logits: Any = None,
                 target: int = 0, form: str = "code") -> None:
        teacher, student = _logit_pair(logits, student_logits)
        self.gamma = _slider("gamma", "γ", gamma, 1.0, 3.0, 0.1)
        self.temperature = _slider("temperature", "T", temperature, 0.5, 8.0, 0.5)
        self.target = _target_dropdown(len(teacher), target)
        super().__init__({"gamma": self.gamma, "temperature": self.temperature, "target": self.target},
                         teacher_logits=teacher, student_logits=student, form=form)


class DenseShareExplorer(Explorer):
    r"""Step through training and watch CSKD's fused targets $y^\mathrm{T}$ of one image move from the teacher's dense
    (local) labels to its global label as the dense share ω (the paper's α) decreases
    (:func:`kdlab.viz.cskd.render_dense_share`).

    ``image`` (C, H, W), ``dense_logits`` (K, h, w) and ``global_logits`` (K,) are one image's CNN-teacher outputs
    (e.g. from :func:`~kdlab.methods.cskd.dense_and_global_logits`), ``classes`` its K class names. Controls: the
    schedule ``kind``, the number of ``epochs`` (1-100) and the current ``epoch`` (0 to epochs - 1; lowering
    ``epochs`` clamps it, with one redraw).
    """

    render = staticmethod(viz.cskd.render_dense_share)

    def __init__(self, image: Any, dense_logits: Any, global_logits: Any, classes: list[str], kind: str = "linear",
                 epochs: int = 30, epoch: int = 0) -> None:
        check_ckf_schedule(epochs, kind)
        self.kind = widgets.Dropdown(options=list(CKF_SCHEDULES), value=kind, description="schedule")
        self.epochs = _int_slider("epochs", "epochs E", epochs, 1, 100)
        self.epoch = _int_slider("epoch", "epoch t", epoch, 0, epochs - 1)
        as_array = viz.common.to_numpy
        super().__init__({"kind": self.kind, "epochs": self.epochs, "epoch": self.epoch}, image=as_array(image),
                         dense_logits=as_array(dense_logits), global_logits=as_array(global_logits),
                         classes=list(classes))

    def sync(self, control: widgets.ValueWidget) -> None:
        """Keep ``epoch`` within 0..epochs-1 (lowering its ``max`` clamps its value)."""
        if control is self.epochs:
            self.epoch.max = self.epochs.value - 1


class MaskExplorer(Explorer):
    """Slide the map size, the window and the shift: the shifted-window layout and its attention masks
    (:func:`kdlab.viz.swtat.render_windows`). ``shift`` stays in [0, window) (changing the window clamps it, with
    one redraw)."""

    render = staticmethod(viz.swtat.render_windows)

    def __init__(self, height: int = 8, width: int = 8, window: int = 4, shift: int = 2) -> None:
        viz.swtat.check_window_layout((height, width), window, shift)
        self.height = _int_slider("height", "map H", height, 1, 32)
        self.width = _int_slider("width", "map W", width, 1, 32)
        self.window = _int_slider("window", "window M", window, 1, 16)
        self.shift = _int_slider("shift", "shift s", shift, 0, window - 1)
        super().__init__({"height": self.height, "width": self.width, "window": self.window, "shift": self.shift})

    def sync(self, control: widgets.ValueWidget) -> None:
        """Keep ``shift`` within 0..window-1."""
        if control is self.window:
            self.shift.max = self.window.value - 1


def _window_sizes(side: int, window: int) -> list[int]:
    """The window sizes a dropdown offers on a map whose longer side is ``side``: 2, 4, 8, ... below it, the side
    itself (one window, global attention within the map) and ``window``."""
    sizes = {2 ** k for k in range(1, side.bit_length()) if 2 ** k < side}
    return sorted(sizes | {side, window})


class WindowAttentionExplorer(Explorer):
    """Pick an image, a query position (row, col) of the feature map, the window M and the shift s: which keys that
    position may attend to under regular and shifted windows, and where it does attend in the teacher map under
    global, regular-window and shifted-window attention (:func:`kdlab.viz.swtat.render_window_attention`).

    ``images`` (N, C, H, W) or one (C, H, W) image; ``query`` and ``key`` the (N, d, h, w) embedded maps of those
    images (:func:`kdlab.methods.embed_maps`), computed once, so moving a control only recomputes one position's
    attention. ``position`` defaults to (2M - 1, 2M - 1), clipped to the map: the bottom-right corner of a regular
    window near the centre, which the shifted window moves across. ``shift`` stays in [0, window) (changing the
    window clamps it, with one redraw)."""

    def __init__(self, images: Any, query: Any, key: Any, *, window: int = 4, shift: int = 2,
                 position: tuple[int, int] | None = None, index: int = 0) -> None:
        query, key = viz.swtat.check_attention_maps(query, key)
        count, (height, width) = len(query), tuple(query.shape[2:])
        _, window, shift = viz.swtat.check_window_layout((height, width), window, shift)
        if position is None:
            position = (min(2 * window - 1, height - 1), min(2 * window - 1, width - 1))
        row, col = viz.swtat.check_position(position, (height, width))
        self.row = _int_slider("row", "query row", row, 0, height - 1)
        self.col = _int_slider("col", "query col", col, 0, width - 1)
        self.window = widgets.Dropdown(options=_window_sizes(max(height, width), window), value=window,
                                       description="window M")
        self.shift = _int_slider("shift", "shift s", shift, 0, window - 1)
        controls = {"row": self.row, "col": self.col, "window": self.window, "shift": self.shift}
        fixed = {"image": viz.common.to_numpy(images), "query": query, "key": key}
        self.index = None
        if count > 1:
            self.index = _int_slider("index", "image", index, 0, count - 1)
            controls = {"index": self.index, **controls}
        else:
            fixed["index"] = check_int("index", index, low=0, high=0)
        super().__init__(controls, **fixed)

    @staticmethod
    def render(row: int, col: int, **state: Any) -> Figure:
        """:func:`kdlab.viz.swtat.render_window_attention` at position (row, col)."""
        return viz.swtat.render_window_attention(position=(row, col), **state)

    def sync(self, control: widgets.ValueWidget) -> None:
        """Keep ``shift`` within 0..window-1."""
        if control is self.window:
            self.shift.max = self.window.value - 1


class DepthExplorer(Explorer):
    """Pick a scene (``index``) and, with ``always``, a component: the predictions, their error maps on one shared
    colour bar, and attention maps (:func:`kdlab.viz.disdepth.render_depth_pick`).

    ``always`` names the predictions shown for every pick (e.g. the teacher and the no-KD student); a
    ``component`` dropdown then picks one of the others (first shown: ``component``, default the last).
    ``attentions`` maps names to (N, h, w) maps, or a component to such a dict (shown with that component).
    Everything is computed once for the whole set, so moving a control only redraws.
    """

    render = staticmethod(viz.disdepth.render_depth_pick)

    def __init__(self, images: Any, target: Any, predictions: dict[str, Any], attentions: dict[str, Any] | None = None,
                 depth_range: tuple[float, float] | None = None, index: int = 0, *, always: tuple[str, ...] = (),
                 component: str | None = None) -> None:
        images, as_array = viz.common.to_numpy(images), viz.common.to_numpy
        if not predictions:
            raise ValueError("DepthExplorer needs at least one prediction")
        missing = [name for name in always if name not in predictions]
        choices = [name for name in predictions if name not in always]
        if missing or (always and not choices):
            raise ValueError(f"always must name some, not all, of the predictions {list(predictions)}, got {always}")
        self.index = _int_slider("index", "scene", index, 0, len(images) - 1)
        controls: dict[str, widgets.ValueWidget] = {"index": self.index}
        if always:
            component = choices[-1] if component is None else check_choice("component", component, choices)
            self.component = widgets.Dropdown(options=choices, value=component, description="component")
            controls["component"] = self.component
        attentions = {name: ({k: as_array(v) for k, v in maps.items()} if isinstance(maps, dict) else as_array(maps))
                      for name, maps in (attentions or {}).items()}
        super().__init__(controls, images=images, target=as_array(target),
                         predictions={name: as_array(p) for name, p in predictions.items()},
                         attentions=attentions, depth_range=depth_range, always=tuple(always))


class FacialDistanceExplorer(Explorer):
    """Move URFM's anchor, the facial scale (the paper's $\\gamma_{face}$), the PIF ratio and the grid: the facial
    distance map, its buckets and the bucket histogram (:func:`kdlab.viz.cafd.render_facial_distance`). ``image``
    (C, H, W) is an aligned face drawn underneath; ``landmarks`` (5, 2) normalised (default: the template)."""

    render = staticmethod(viz.cafd.render_facial_distance)

    def __init__(self, image: Any = None, landmarks: Any = None, anchor: str = "nose", facial_scale: float = 1.0,
                 pif_ratio: float = 3.0, grid: int = 4) -> None:
        check_choice("anchor", anchor, viz.cafd.FACE_ANCHORS)
        self.anchor = widgets.Dropdown(options=list(viz.cafd.FACE_ANCHORS), value=anchor, description="anchor")
        self.facial_scale = _slider("facial_scale", "γ_face", facial_scale, 0.0, 4.0, 0.25)
        self.pif_ratio = _slider("pif_ratio", "PIF ratio", pif_ratio, 1.0, 4.0, 0.1)
        self.grid = _int_slider("grid", "grid", grid, 2, 8)
        super().__init__({"anchor": self.anchor, "facial_scale": self.facial_scale, "pif_ratio": self.pif_ratio,
                          "grid": self.grid}, landmarks=landmarks, image=image)


class URFMExplorer(Explorer):
    """Pick one of URFM's local centres (by its row and column on the grid): where it looks in each network's tokens
    (:func:`kdlab.viz.cafd.render_urfm_attention`). Look whether the teacher's and the student's maps peak at the
    same part of the face, near the ringed centre or on a landmark (crosses), and how much of the teacher's attention
    the prompt tokens take. ``maps`` (name -> (L, h, w), e.g. the teacher with and without the facial term, the
    student), ``centres`` (L, 2) normalised, ``landmarks`` (5, 2) normalised and ``prompt_share`` (name -> (L,)) are
    computed once, so moving the control only redraws. ``centre`` is the one shown first."""

    render = staticmethod(viz.cafd.render_urfm_attention)

    def __init__(self, image: Any, maps: dict[str, Any], *, grid: int | tuple[int, int], centres: Any,
                 landmarks: Any = None, prompt_share: dict[str, Any] | None = None, centre: int = 0) -> None:
        rows, cols = check_pair("grid", grid)
        check_int("centre", centre, low=0, high=rows * cols - 1)
        as_array = viz.common.to_numpy
        self.centre = widgets.Dropdown(options=[(f"c{i}: row {i // cols}, col {i % cols}", i)
                                                for i in range(rows * cols)], value=centre, description="centre")
        super().__init__({"centre": self.centre}, image=as_array(image), grid=(rows, cols), centres=as_array(centres),
                         maps={name: as_array(m) for name, m in maps.items()},
                         landmarks=None if landmarks is None else as_array(landmarks),
                         prompt_share={name: as_array(s) for name, s in (prompt_share or {}).items()})
