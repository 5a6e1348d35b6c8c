"""kdlab.widgets: explorers redraw on .value changes; the KD maths in the picture matches autograd."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")


import ipywidgets as widgets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from kdlab.methods import CKF_SCHEDULES, ckf_share  # noqa: E402
from kdlab.viz.common import MARK_HATCH, new_figure  # noqa: E402
from kdlab.viz.cskd import dense_share_view, render_dense_share  # noqa: E402
from kdlab.viz.ofa import ofa_view, render_ofa  # noqa: E402
from kdlab.viz.primer import kd_view, render_temperature  # noqa: E402
from kdlab.viz.swtat import render_windows  # noqa: E402
from kdlab.widgets import (  # noqa: E402
    DEFAULT_STUDENT_LOGITS,
    DEFAULT_TEACHER_LOGITS,
    DenseShareExplorer,
    Explorer,
    MaskExplorer,
    OFAExplorer,
    RetrainPanel,
    TemperatureExplorer,
    WindowAttentionExplorer,
)


def autograd_kd(teacher, student, temperature):
    """Reference: T^2 KL(softmax(z_t/T) || softmax(z_s/T)) and its gradient, by torch autograd."""
    z_s = torch.tensor(student, dtype=torch.float64, requires_grad=True)
    log_q = F.log_softmax(torch.tensor(teacher, dtype=torch.float64) / temperature, dim=0)
    log_p = F.log_softmax(z_s / temperature, dim=0)
    loss = temperature**2 * torch.sum(log_q.exp() * (log_q - log_p))
    loss.backward()
    return loss.item(), z_s.grad.numpy()


def bar_heights(ax) -> np.ndarray:
    """Heights of the drawn bars, series after series (the shaded target column is not a bar)."""
    return np.array([bar.get_height() for container in ax.containers for bar in container])


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
def test_kd_view_matches_autograd(temperature):
    loss, grad = autograd_kd(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, temperature)
    view = kd_view(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, temperature)
    assert view.loss == pytest.approx(loss, rel=1e-10)
    np.testing.assert_allclose(view.grad, grad, atol=1e-12)
    np.testing.assert_allclose(view.grad, temperature * (view.student_probs - view.teacher_probs))
    assert view.grad.sum() == pytest.approx(0.0, abs=1e-12)  # softmax is shift-invariant


def test_kd_view_is_zero_when_student_matches_teacher():
    view = kd_view([2.0, 0.0, -1.0], [3.0, 1.0, 0.0], 3.0)  # same logits up to a constant
    assert view.loss == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(view.grad, 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="equal length"):
        kd_view([1.0, 2.0], [1.0, 2.0, 3.0], 1.0)
    with pytest.raises(ValueError, match="temperature"):
        kd_view([1.0, 2.0], [1.0, 2.0], -1.0)


def test_render_temperature_figure_shows_the_numbers():
    temperature = 3.0
    fig = render_temperature(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, temperature, target=2)
    logits_ax, probs_ax, grad_ax = fig.axes
    loss, grad = autograd_kd(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, temperature)
    assert "T = 3" in fig.get_suptitle() and f"{loss:.4f}" in fig.get_suptitle()
    np.testing.assert_allclose(bar_heights(grad_ax), grad, atol=1e-12)  # the drawn gradient bars
    probs = bar_heights(probs_ax).reshape(2, -1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(bar_heights(logits_ax)[:10], DEFAULT_TEACHER_LOGITS)
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() == "class" and ax.get_ylabel()
    assert f"q = {probs[0, 2]:.2f}" in probs_ax.get_title()  # target class read out


def test_temperature_explorer_rerenders_on_value_change():
    explorer = TemperatureExplorer()
    assert isinstance(explorer.temperature, widgets.FloatSlider)
    assert isinstance(explorer.output, widgets.Output) and isinstance(explorer.ui, widgets.VBox)
    first = explorer.figure
    assert isinstance(first, Figure) and "T = 4" in first.get_suptitle()

    explorer.temperature.value = 10.0
    state = explorer.state()
    assert state["temperature"] == 10.0
    assert state["teacher_logits"] == list(DEFAULT_TEACHER_LOGITS)
    assert explorer.figure is not first and "T = 10" in explorer.figure.get_suptitle()
    loss, grad = autograd_kd(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, 10.0)
    assert f"{loss:.4f}" in explorer.figure.get_suptitle()
    np.testing.assert_allclose(bar_heights(explorer.figure.axes[2]), grad, atol=1e-12)

    explorer.target.value = 3
    assert explorer.state()["target"] == 3
    assert "q = " in explorer.figure.axes[1].get_title()


def test_temperature_explorer_custom_logits_and_checks():
    explorer = TemperatureExplorer(logits=torch.tensor([1.0, 0.0, -1.0]), student_logits=np.zeros(3), temperature=2.0)
    assert explorer.state()["teacher_logits"] == [1.0, 0.0, -1.0]
    assert [value for _, value in explorer.target.options] == [0, 1, 2]
    with pytest.raises(ValueError, match="teacher has 3 logits but student has 2"):
        TemperatureExplorer(logits=[1.0, 0.0, -1.0], student_logits=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"temperature must be a finite number >= 0.5 and <= 20, got 50"):
        TemperatureExplorer(temperature=50.0)  # refused, not silently clamped to the slider's end
    with pytest.raises(ValueError, match=r"target must be an int >= 0 and <= 9, got 10"):
        TemperatureExplorer(target=10)


def test_explorer_subclass_api():
    class Line(Explorer):
        def __init__(self):
            self.slope = widgets.FloatSlider(value=1.0, min=-2, max=2)
            super().__init__({"slope": self.slope}, xs=[0.0, 1.0, 2.0])
            self.calls = getattr(self, "calls", 0)

        def render(self, slope, xs):
            self.calls = getattr(self, "calls", 0) + 1
            fig, axes = new_figure(figsize=(3, 2))
            axes[0, 0].plot(xs, [slope * x for x in xs])
            axes[0, 0].set_title(f"slope {slope:g}")
            return fig

    line = Line()
    assert line.calls == 1 and line.figure.axes[0].get_title() == "slope 1"
    line.slope.value = -0.5
    assert line.calls == 2 and line.state() == {"xs": [0.0, 1.0, 2.0], "slope": -0.5}
    assert line.figure.axes[0].get_title() == "slope -0.5"

    with pytest.raises(NotImplementedError):
        Explorer({"x": widgets.IntSlider()})


# ------------------------------------------------------------------------------------------------- OFA
@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("gamma,temperature", [(1.0, 1.0), (1.0, 4.0), (1.5, 1.0), (2.5, 2.0)])
def test_ofa_view_gradient_is_the_closed_form(gamma, temperature, form):
    view = ofa_view(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, 2, gamma, temperature, form)
    q, p, w = view.teacher_probs, view.student_probs, view.weights
    teacher = torch.tensor(DEFAULT_TEACHER_LOGITS, dtype=torch.float64)
    np.testing.assert_allclose(q, F.softmax(teacher / temperature, dim=0))
    np.testing.assert_allclose(view.grad, (w.sum() * p - w) / temperature, atol=1e-12)  # autograd = formula
    assert view.loss == pytest.approx(-np.sum(w * np.log(p)), rel=1e-12)
    others = np.arange(len(q)) != 2
    if form == "code":
        assert w[2] == pytest.approx((1 + q[2]) ** gamma - 1, rel=1e-12)
        np.testing.assert_allclose(w[others], q[others] ** gamma, rtol=1e-12)
    else:
        assert w[2] == pytest.approx((1 + q[2]) ** gamma, rel=1e-12)
        np.testing.assert_allclose(w[others], q[others], rtol=1e-12)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_ofa_view_at_gamma_one_is_soft_target_cross_entropy(temperature):
    view = ofa_view(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, 0, 1.0, temperature)
    np.testing.assert_allclose(view.weights, view.teacher_probs, atol=1e-12)  # code form, gamma = 1: w = q
    np.testing.assert_allclose(view.grad, (view.student_probs - view.teacher_probs) / temperature, atol=1e-12)
    _, kd_grad = autograd_kd(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, temperature)
    np.testing.assert_allclose(view.grad, kd_grad / temperature**2, atol=1e-12)  # Hinton KD without its T^2


def test_ofa_view_bad_inputs():
    with pytest.raises(ValueError, match="gamma must be a finite number > 0, got 0"):
        ofa_view([1.0, 0.0], [0.0, 0.0], 0, 0.0, 1.0)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0, got -1"):
        render_ofa([1.0, 0.0], [0.0, 0.0], 0, -1.0, 1.0)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        ofa_view([1.0, 0.0], [0.0, 0.0], 0, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"1-D logit vectors of equal length, got shapes \(1, 2\) and \(1, 2\)"):
        ofa_view([[1.0, 0.0]], [[0.0, 0.0]], 0, 1.0, 1.0)
    with pytest.raises(ValueError, match="equal length"):
        ofa_view([1.0, 0.0, 2.0], [0.0, 0.0], 0, 1.0, 1.0)
    for target in (2, -1, 1.0, True):
        with pytest.raises(ValueError, match=r"target must be an int >= 0 and <= 1"):
            ofa_view([1.0, 0.0], [0.0, 0.0], target, 1.0, 1.0)
    with pytest.raises(ValueError, match="form must be one of 'code', 'paper', got 'both'"):
        ofa_view([1.0, 0.0], [0.0, 0.0], 0, 1.0, 1.0, form="both")


def test_render_ofa_figure_shows_the_numbers():
    fig = render_ofa(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, target=1, gamma=2.0, temperature=2.0)
    probs_ax, weights_ax, grad_ax = fig.axes
    view = ofa_view(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, 1, 2.0, 2.0)
    title = fig.get_suptitle()
    assert "γ = 2" in title and "T = 2" in title and f"{view.loss:.4f}" in title and "code form" in title
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() == "class" and ax.get_ylabel()
        spans = [patch for patch in ax.patches if patch.get_facecolor()[:3] == pytest.approx((0.85,) * 3)]
        assert len(spans) == 1 and spans[0].get_x() == pytest.approx(0.5)  # the target column, class 1
    np.testing.assert_allclose(bar_heights(probs_ax).reshape(2, -1), [view.teacher_probs, view.student_probs])
    np.testing.assert_allclose(bar_heights(weights_ax).reshape(2, -1), [view.teacher_probs, view.weights])
    np.testing.assert_allclose(bar_heights(grad_ax), view.grad, atol=1e-12)
    assert f"= {view.weights[1]:.2f}" in weights_ax.get_title()
    assert "paper form" in render_ofa([1.0, 0.0], [0.0, 0.0], 0, 1.5, 1.0, form="paper").get_suptitle()


def test_ofa_explorer_rerenders_on_value_change():
    explorer = OFAExplorer()
    assert isinstance(explorer.gamma, widgets.FloatSlider) and isinstance(explorer.temperature, widgets.FloatSlider)
    assert (explorer.gamma.min, explorer.gamma.max, explorer.temperature.min, explorer.temperature.max) == (1, 3, 0.5, 8)
    assert isinstance(explorer.target, widgets.Dropdown) and isinstance(explorer.ui, widgets.VBox)
    first = explorer.figure
    assert isinstance(first, Figure) and "γ = 1.5, T = 1 " in first.get_suptitle()

    explorer.gamma.value = 2.5
    state = explorer.state()
    assert state["gamma"] == 2.5 and state["form"] == "code"
    assert state["teacher_logits"] == list(DEFAULT_TEACHER_LOGITS)
    assert explorer.figure is not first and "γ = 2.5" in explorer.figure.get_suptitle()
    view = ofa_view(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, 0, 2.5, 1.0)
    np.testing.assert_allclose(bar_heights(explorer.figure.axes[2]), view.grad, atol=1e-12)

    explorer.temperature.value = 4.0
    assert "T = 4" in explorer.figure.get_suptitle()
    explorer.target.value = 3
    view = ofa_view(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, 3, 2.5, 4.0)
    assert f"{view.loss:.4f}" in explorer.figure.get_suptitle()
    np.testing.assert_allclose(bar_heights(explorer.figure.axes[1])[10:], view.weights, atol=1e-12)


def test_ofa_explorer_custom_logits_and_checks():
    explorer = OFAExplorer(logits=torch.tensor([1.0, 0.0, -1.0]), student_logits=np.zeros(3), gamma=1.0,
                           temperature=2.0, target=2, form="paper")
    assert explorer.state()["teacher_logits"] == [1.0, 0.0, -1.0] and explorer.state()["form"] == "paper"
    assert [value for _, value in explorer.target.options] == [0, 1, 2]
    with pytest.raises(ValueError, match=r"gamma must be a finite number >= 1 and <= 3, got 0"):
        OFAExplorer(gamma=0.0)
    with pytest.raises(ValueError, match=r"temperature must be a finite number >= 0.5 and <= 8"):
        OFAExplorer(temperature=10.0)
    with pytest.raises(ValueError, match=r"1-D vector of teacher logits, got shape \(2, 5\)"):
        OFAExplorer(logits=np.zeros((2, 5)))
    with pytest.raises(ValueError, match="teacher has 3 logits but student has 10"):
        OFAExplorer(logits=[1.0, 0.0, -1.0])
    with pytest.raises(ValueError, match=r"target must be an int >= 0 and <= 2, got 3"):
        OFAExplorer(logits=[1.0, 0.0, -1.0], student_logits=[0.0, 0.0, 0.0], target=3)
    with pytest.raises(ValueError, match="form must be one of"):
        OFAExplorer(form="both")


def _fake_training(calls):
    def train(gamma, epochs):
        calls.append((gamma, epochs))
        return [{"epoch": e + 1, "val/acc": gamma * (e + 1) / 10} for e in range(epochs)]
    return train


def test_retrain_panel_trains_with_the_controls_and_overlays_runs():
    calls = []
    gamma, epochs = widgets.FloatSlider(value=1.0, min=1, max=3), widgets.IntSlider(value=2, min=1, max=5)
    panel = RetrainPanel({"gamma": gamma, "epochs": epochs}, _fake_training(calls))
    assert panel.figure is None and calls == []  # nothing trains until asked
    panel.run()
    gamma.value, epochs.value = 2.0, 3
    figure = panel.train_button.click() or panel.figure  # the button calls run()
    assert calls == [(1.0, 2), (2.0, 3)]
    assert list(panel.runs) == ["gamma=1.0, epochs=2", "gamma=2.0, epochs=3"]
    assert isinstance(figure, Figure) and len(figure.axes[0].lines) == 2
    assert "0.600" in panel.status.value and not panel.train_button.disabled
    panel.run()  # the same state again replaces its run instead of adding a third line
    assert len(panel.runs) == 2
    panel.clear()
    assert panel.runs == {} and panel.figure is None


def test_retrain_panel_accepts_a_history_and_rejects_runs_without_the_metric():
    class FakeHistory:
        rows = [{"epoch": 1, "val/acc": 0.5}]

    panel = RetrainPanel({}, lambda: FakeHistory())
    panel.run()
    assert list(panel.runs.values()) == [FakeHistory.rows]
    empty = RetrainPanel({}, lambda: [{"epoch": 1, "train/loss": 1.0}])
    with pytest.raises(ValueError, match="val/acc"):
        empty.run()
    assert not empty.train_button.disabled and "no 'val/acc'" in empty.status.value
    with pytest.raises(TypeError, match="callable"):
        RetrainPanel({}, train_fn=3)


def test_ofa_view_gradient_under_no_grad():
    """A notebook may build the explorer inside ``torch.no_grad()``: the gradient must still come out."""
    free = ofa_view(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, 0, 1.5, 2.0)
    with torch.no_grad():
        guarded = ofa_view(DEFAULT_TEACHER_LOGITS, DEFAULT_STUDENT_LOGITS, 0, 1.5, 2.0)
    np.testing.assert_allclose(guarded.grad, free.grad)



# ------------------------------------------------------------------------------------------------ CSKD dense share
CLASSES = ["circle", "square", "star", "triangle"]


def teacher_outputs():
    """One image's dense (K, h, w) teacher logits with mixed local labels and a clear global winner (star)."""
    generator = torch.Generator().manual_seed(0)
    dense = torch.randn(4, 5, 5, generator=generator)
    global_logits = torch.tensor([0.0, 0.5, 3.0, -1.0])
    return torch.rand(3, 20, 20, generator=generator), dense, global_logits


def map_axis(explorer):
    return explorer.figure.axes[2]


def test_dense_share_view_is_the_fused_argmax():
    _, dense, global_logits = teacher_outputs()
    view = dense_share_view(dense, global_logits, "x2", 10, 4)
    share = ckf_share(4 / 10, 10, "x2")
    assert view.dense_share == pytest.approx(0.36)
    expected = (share * dense + (1 - share) * global_logits[:, None, None]).argmax(0).numpy()
    np.testing.assert_array_equal(view.labels, expected)
    assert view.global_label == 2 and view.differ == pytest.approx(np.mean(expected != 2))


def test_dense_share_view_moves_from_local_to_global_and_never_back():
    _, dense, global_logits = teacher_outputs()
    first = dense_share_view(dense, global_logits, "linear", 100, 0)
    np.testing.assert_array_equal(first.labels, dense.argmax(0).numpy())  # share = 1: the dense argmax
    assert first.dense_share == 1.0 and first.differ > 0.5
    for kind in CKF_SCHEDULES:
        differ = [dense_share_view(dense, global_logits, kind, 100, e).differ for e in range(100)]
        assert all(a >= b for a, b in zip(differ, differ[1:]))  # the fused margin is linear in the share
    last = dense_share_view(dense, global_logits, "linear", 100, 99)  # share = 1/100
    assert last.differ == 0.0 and (last.labels == 2).all()


def test_dense_share_explorer_controls_state_and_figure():
    image, dense, global_logits = teacher_outputs()
    explorer = DenseShareExplorer(image, dense, global_logits, CLASSES, epochs=10)
    assert isinstance(explorer.kind, widgets.Dropdown) and list(explorer.kind.options) == list(CKF_SCHEDULES)
    assert isinstance(explorer.epochs, widgets.IntSlider) and (explorer.epochs.min, explorer.epochs.max) == (1, 100)
    assert isinstance(explorer.epoch, widgets.IntSlider) and (explorer.epoch.min, explorer.epoch.max) == (0, 9)
    state = explorer.state()
    assert (state["kind"], state["epochs"], state["epoch"], state["classes"]) == ("linear", 10, 0, CLASSES)
    curve_ax, differ_ax, labels_ax = explorer.figure.axes
    assert curve_ax.get_title() == "linear schedule: ω(0) = 1.000"
    assert curve_ax.get_xlabel() == "epoch" and curve_ax.get_ylabel().startswith("ω (weight of the dense")
    assert [line.get_label() for line in curve_ax.get_lines()] == [*CKF_SCHEDULES, "epoch 0"]  # every kind
    widths = [line.get_linewidth() for line in curve_ax.get_lines()[:3]]
    assert widths[0] > max(widths[1:]), "the chosen kind is drawn bold"
    assert differ_ax.get_ylabel() == "fraction of the cells"
    for kind, line in zip(CKF_SCHEDULES, differ_ax.get_lines()):  # this image's cells told another class, per epoch
        expected = [dense_share_view(dense, global_logits, kind, 10, e).differ for e in range(10)]
        np.testing.assert_allclose(line.get_ydata()[:10], expected)
    np.testing.assert_array_equal(labels_ax.images[1].get_array(), dense.argmax(0).numpy())  # share = 1
    differ = np.mean(dense.argmax(0).numpy() != 2)
    assert labels_ax.get_title() == f"$y^{{\\mathrm{{T}}}}$ at ω = 1.00: {differ:.0%} of cells ≠ global label (star)"
    assert len([p for p in labels_ax.patches if p.get_hatch() == MARK_HATCH]) == round(differ * 25)
    assert "epoch 0 of 0..9" in explorer.figure.get_suptitle()
    assert [t.get_text() for t in explorer.figure.legends[0].get_texts()][-1] == "≠ global label"

    first = explorer.figure
    explorer.kind.value = "cos"
    explorer.epoch.value = 6
    assert explorer.figure is not first
    share = ckf_share(6 / 10, 10, "cos")
    curve_ax, differ_ax, labels_ax = explorer.figure.axes
    assert curve_ax.get_title() == f"cos schedule: ω(6) = {share:.3f}"
    marker = curve_ax.get_lines()[3]
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (6, pytest.approx(share))
    assert curve_ax.get_lines()[2].get_linewidth() > curve_ax.get_lines()[0].get_linewidth(), "cos is now bold"
    differ_marker = differ_ax.get_lines()[3]
    assert differ_marker.get_ydata()[0] == dense_share_view(dense, global_logits, "cos", 10, 6).differ
    steps = curve_ax.get_lines()[2].get_ydata()[:10]
    np.testing.assert_allclose(steps, [ckf_share(e / 10, 10, "cos") for e in range(10)])
    expected = dense_share_view(dense, global_logits, "cos", 10, 6).labels
    np.testing.assert_array_equal(labels_ax.images[1].get_array(), expected)

    explorer.epochs.value = 100
    explorer.kind.value = "linear"
    explorer.epoch.value = 99  # share = 1/100: every cell takes the global label
    assert explorer.figure.axes[0].get_title() == "linear schedule: ω(99) = 0.010"
    assert (map_axis(explorer).images[1].get_array() == 2).all()
    assert "0% of cells" in map_axis(explorer).get_title() and not map_axis(explorer).patches


def test_dense_share_explorer_lowering_epochs_clamps_the_epoch_with_one_redraw():
    image, dense, global_logits = teacher_outputs()
    rendered = []

    class Counting(DenseShareExplorer):
        def render(self, **state):
            rendered.append((state["epochs"], state["epoch"]))
            return render_dense_share(**state)

    explorer = Counting(image, dense, global_logits, CLASSES, epochs=30, epoch=20)
    explorer.epochs.value = 5
    assert (explorer.epoch.value, explorer.epoch.max) == (4, 4)
    assert rendered == [(30, 20), (5, 4)]  # one redraw, never an epoch beyond the schedule
    explorer.epochs.value = 50
    assert (explorer.epoch.value, explorer.epoch.max) == (4, 49) and rendered[-1] == (50, 4)
    explorer.epochs.value = 1
    assert (explorer.epoch.value, explorer.epoch.max) == (0, 0) and len(rendered) == 4
    assert explorer.figure.axes[0].get_title() == "linear schedule: ω(0) = 1.000"


def test_dense_share_explorer_bad_inputs():
    image, dense, global_logits = teacher_outputs()
    with pytest.raises(ValueError, match="the logits have 4 classes but 3 class names were given"):
        DenseShareExplorer(image, dense, global_logits, CLASSES[:3])
    with pytest.raises(ValueError, match=r"dense teacher logits \(K, h, w\) and global logits \(K,\), got shapes "
                                         r"\(1, 4, 5, 5\) and \(4,\)"):
        DenseShareExplorer(image, dense[None], global_logits, CLASSES)
    with pytest.raises(ValueError, match=r"got shapes \(4, 5, 5\) and \(3,\)"):
        DenseShareExplorer(image, dense, global_logits[:3], CLASSES)
    with pytest.raises(ValueError, match=r"one image of shape \(C, H, W\) with C in \(1, 3\), got \(1, 3, 20, 20\)"):
        DenseShareExplorer(image[None], dense, global_logits, CLASSES)
    with pytest.raises(ValueError, match="kind must be one of 'linear', 'x2', 'cos', got 'step'"):
        DenseShareExplorer(image, dense, global_logits, CLASSES, kind="step")
    with pytest.raises(ValueError, match="epochs must be an int >= 1, got 0"):
        DenseShareExplorer(image, dense, global_logits, CLASSES, epochs=0)
    with pytest.raises(ValueError, match=r"epochs must be an int >= 1 and <= 100, got 200"):
        DenseShareExplorer(image, dense, global_logits, CLASSES, epochs=200)
    for epoch in (10, -1, 2.0):
        with pytest.raises(ValueError, match=r"epoch must be an int >= 0 and <= 9"):
            DenseShareExplorer(image, dense, global_logits, CLASSES, epochs=10, epoch=epoch)
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        render_dense_share("linear", 10, 10, image, dense, global_logits, CLASSES)  # the pure render checks too


def test_mask_explorer_redraws_and_keeps_the_shift_inside_the_window():
    explorer = MaskExplorer(height=8, width=8, window=4, shift=2)
    assert "window 3: 75% masked" in [ax.get_title() for ax in explorer.figure.axes]
    explorer.shift.value = 0  # no shift: nothing is masked
    assert all("0% masked" in ax.get_title() for ax in explorer.figure.axes[1:])
    explorer.shift.value = 3
    explorer.window.value = 2  # the shift slider's max follows the window, clamping the value
    assert explorer.shift.max == 1 and explorer.state()["shift"] == 1
    explorer.height.value, explorer.width.value = 7, 10  # not multiples of the window: padded, still drawn
    assert explorer.figure is not None and "7x10" in explorer.figure._suptitle.get_text()
    with pytest.raises(ValueError, match="window"):
        MaskExplorer(window=0)


def test_render_windows_names_the_effective_window_of_a_small_map():
    fig = render_windows(3, 8, 4, 2)  # the 3-row axis is no longer than the window: one window row, no shift
    assert fig.axes[0].get_title().startswith("2 windows of 3x4, shift (0, 2)")


def _attention_maps(count: int = 2):
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(count, 3, 64, 64, generator=generator), torch.randn(count, 8, 16, 16, generator=generator),
            torch.randn(count, 8, 16, 16, generator=generator))


def test_window_attention_explorer_redraws_and_keeps_the_shift_inside_the_window():
    images, q, k = _attention_maps()
    explorer = WindowAttentionExplorer(images, q, k, window=4, shift=2)
    assert explorer.state()["row"] == explorer.state()["col"] == 7  # (2M - 1, 2M - 1)
    assert list(explorer.controls) == ["index", "row", "col", "window", "shift"]
    assert explorer.window.options == (2, 4, 8, 16) and explorer.shift.max == 3
    suptitle = lambda: explorer.figure._suptitle.get_text()  # noqa: E731
    assert "Image 0" in suptitle() and "(7, 7)" in suptitle()
    explorer.index.value = 1
    explorer.row.value, explorer.col.value = 15, 0
    assert "Image 1" in suptitle() and "(15, 0)" in suptitle()
    assert "16 regular, 4 shifted, 12 masked" in explorer.figure.axes[0].get_title()
    explorer.window.value = 8  # a larger window: the shift keeps its value, its slider reaches further
    assert explorer.shift.max == 7 and explorer.state()["shift"] == 2
    explorer.shift.value = 7
    explorer.window.value = 2  # a smaller window clamps the shift, with one redraw
    assert explorer.shift.max == 1 and explorer.state()["shift"] == 1
    assert "window 2, shift 1" in suptitle()
    explorer.window.value = 16  # the map side: one window
    assert explorer.shift.max == 15 and "windows 16x16" in suptitle()
    redrawn = WindowAttentionExplorer.render(**explorer.state())  # the shown figure is the render of the state
    assert [ax.get_title() for ax in redrawn.axes] == [ax.get_title() for ax in explorer.figure.axes]


def test_window_attention_explorer_defaults_and_checks():
    images, q, k = _attention_maps(1)
    explorer = WindowAttentionExplorer(images[0], q, k, window=8, shift=0)  # one image: no image slider
    assert "index" not in explorer.controls and explorer.state()["index"] == 0
    assert (explorer.row.value, explorer.col.value) == (15, 15)  # (2M - 1, 2M - 1) clipped to the 16x16 map
    assert WindowAttentionExplorer(images, q, k, position=(3, 4)).state()["row"] == 3
    assert WindowAttentionExplorer(images, q, k, window=3, shift=1).window.options == (2, 3, 4, 8, 16)
    for kwargs, message in [({"window": 0}, "window must be an int >= 1"), ({"shift": 4}, "shift must be"),
                            ({"position": (16, 0)}, "position must be"), ({"index": 1}, "index must be")]:
        with pytest.raises(ValueError, match=message):
            WindowAttentionExplorer(images, q, k, **kwargs)
    with pytest.raises(ValueError, match="query and key"):
        WindowAttentionExplorer(images, q, k[:, :, :8])


def test_depth_explorer_picks_a_scene_and_shows_its_predictions_errors_and_attention():
    from kdlab.viz.disdepth import render_depth_pick
    from kdlab.widgets import DepthExplorer

    images, truth = torch.rand(4, 3, 16, 16), torch.rand(4, 16, 16) * 9 + 0.5
    preds = {"teacher": truth + 0.5, "student": truth.unsqueeze(1) * 1.2}
    explorer = DepthExplorer(images, truth, preds, {"LAM (weight)": torch.rand(4, 4, 4)}, depth_range=(0.5, 10.0))
    assert explorer.state()["index"] == 0 and "Scene 0 of 4" in explorer.figure._suptitle.get_text()
    explorer.index.value = 3
    assert "Scene 3 of 4" in explorer.figure._suptitle.get_text()
    titles = [ax.get_title() for ax in explorer.figure.axes]
    assert {"image", "ground truth", "teacher", "student", "LAM (weight)", "error: 0.50 m mean"} <= set(titles)
    expected = (0.2 * truth[3]).mean().item()
    assert f"error: {expected:.2f} m mean" in titles
    with pytest.raises(ValueError, match="index"):
        render_depth_pick(4, images, truth, preds)
    with pytest.raises(ValueError, match="at least one prediction"):
        DepthExplorer(images, truth, {})


def test_depth_explorer_picks_a_component_beside_the_fixed_predictions():
    from kdlab.viz.disdepth import render_depth_pick
    from kdlab.widgets import DepthExplorer

    images, truth = torch.rand(3, 3, 16, 16), torch.rand(3, 16, 16) * 9 + 0.5
    preds = {"teacher": truth + 0.5, "no KD": truth * 1.1, "+ LAM": truth * 0.9, "DisDepth": truth * 1.05}
    lam = {"+ LAM": {"LAM A (stride 4)": torch.rand(3, 4, 4)}, "DisDepth": {"LAM A (stride 4)": torch.rand(3, 4, 4)}}
    explorer = DepthExplorer(images, truth, preds, lam, depth_range=(0.5, 10.0), always=("teacher", "no KD"))
    titles = {ax.get_title() for ax in explorer.figure.axes}
    assert explorer.component.options == ("+ LAM", "DisDepth") and explorer.state()["component"] == "DisDepth"
    assert {"teacher", "no KD", "DisDepth", "LAM A (stride 4)"} <= titles and "+ LAM" not in titles
    explorer.component.value = "+ LAM"
    titles = {ax.get_title() for ax in explorer.figure.axes}
    assert "+ LAM" in titles and "DisDepth" not in titles and "+ LAM: " in explorer.figure._suptitle.get_text()
    depth_bars = [ax for ax in explorer.figure.axes if ax.get_ylabel() == "depth (m)"]
    assert len(depth_bars) == 1, "one shared depth colour bar"
    no_overlay = render_depth_pick(0, images, truth, {**preds, "+ LGConv": truth}, lam, component="+ LGConv",
                                   always=("teacher",))
    assert "LAM A (stride 4)" not in {ax.get_title() for ax in no_overlay.axes}
    with pytest.raises(ValueError, match="no prediction named"):
        render_depth_pick(0, images, truth, preds, component="KD")
    with pytest.raises(ValueError, match="always must name some"):
        DepthExplorer(images, truth, preds, always=("teacher", "no KD", "+ LAM", "DisDepth"))
    with pytest.raises(ValueError, match="always must name some"):
        DepthExplorer(images, truth, preds, always=("oracle",))
    with pytest.raises(ValueError, match="component"):
        DepthExplorer(images, truth, preds, always=("teacher",), component="teacher")


def test_facial_distance_view_and_explorer():
    from kdlab.methods import facial_distance_parts, grid_centres, template_landmarks
    from kdlab.viz.cafd import facial_distance_view, render_facial_distance
    from kdlab.widgets import FacialDistanceExplorer

    view = facial_distance_view("nose", 0.0, 1.9, 4)
    euclid = facial_distance_parts(grid_centres(4), template_landmarks(), "nose", 0.0, 4)["euclid"]
    assert np.allclose(view.distance.ravel(), euclid.numpy()) and view.counts.sum() == 16 and len(view.counts) == 4
    assert np.allclose(view.anchor, template_landmarks()[2].numpy())
    saturated = facial_distance_view("nose", 2.0, 1.9, 7)
    assert saturated.counts[-1] > facial_distance_view("nose", 2.0, 3.0, 7).counts[-1]  # ratio 1.9 saturates
    centre = facial_distance_view("image_centre", 1.0, 3.0, 4)
    assert np.allclose(centre.anchor, [0.5, 0.5]) and len(centre.counts) == 7

    explorer = FacialDistanceExplorer(image=torch.rand(3, 32, 32), facial_scale=1.0, pif_ratio=3.0, grid=4)
    assert explorer.state()["anchor"] == "nose" and "from the nose on a 4x4" in explorer.figure._suptitle.get_text()
    explorer.anchor.value = "left_eye"
    explorer.facial_scale.value = 2.0
    explorer.grid.value = 7
    assert "left eye on a 7x7" in explorer.figure._suptitle.get_text()
    titles = [ax.get_title() for ax in explorer.figure.axes]
    used = int((facial_distance_view("left_eye", 2.0, 3.0, 7).counts > 0).sum())
    assert f"{used} of 7 buckets used" in titles and "D = D~ + 2 (D_sal + D_rel)" in titles
    explorer.pif_ratio.value = 1.9
    assert any(t.endswith("of 4 buckets used") for t in [ax.get_title() for ax in explorer.figure.axes])
    bars = [ax for ax in explorer.figure.axes if ax.get_label() == "<colorbar>"]
    assert {"D (grid cells)", "PIF bucket I(D)"} <= {ax.get_ylabel() for ax in bars}
    with pytest.raises(ValueError, match="anchor"):
        render_facial_distance("chin", 1.0, 3.0, 4)
    with pytest.raises(ValueError, match="facial_scale"):
        FacialDistanceExplorer(facial_scale=9.0)


def test_urfm_explorer_redraws_the_chosen_centre():
    from kdlab.methods import grid_centres, template_landmarks
    from kdlab.viz.cafd import render_urfm_attention
    from kdlab.widgets import URFMExplorer

    g = torch.Generator().manual_seed(0)
    maps = {"teacher": torch.softmax(torch.randn(9, 16, generator=g), -1).reshape(9, 4, 4),
            "student": torch.softmax(torch.randn(9, 4, generator=g), -1).reshape(9, 2, 2)}
    share = {"teacher": torch.linspace(0.0, 0.8, 9)}
    explorer = URFMExplorer(torch.rand(3, 32, 32, generator=g), maps, grid=3, centres=grid_centres(3),
                            landmarks=template_landmarks(), prompt_share=share)
    assert list(explorer.controls) == ["centre"] and explorer.state()["centre"] == 0
    assert explorer.centre.options[5] == ("c5: row 1, col 2", 5) and len(explorer.centre.options) == 9
    first = explorer.figure
    assert "centre c0 (row 0, col 0 of the 3x3 grid)" in first.get_suptitle()
    explorer.centre.value = 5
    assert explorer.figure is not first and "centre c5 (row 1, col 2" in explorer.figure.get_suptitle()
    teacher = explorer.figure.axes[0]
    np.testing.assert_allclose(teacher.images[-1].get_array(), maps["teacher"][5].numpy(), rtol=1e-6)
    np.testing.assert_allclose(teacher.collections[-1].get_offsets(), grid_centres(3)[5:6].numpy())
    assert "prompts 50%" in teacher.get_title()
    redrawn = URFMExplorer.render(**explorer.state())  # the shown figure is the render of the state
    assert [ax.get_title() for ax in redrawn.axes] == [ax.get_title() for ax in explorer.figure.axes]
    assert render_urfm_attention is URFMExplorer.render
    explorer = URFMExplorer(torch.rand(3, 32, 32), maps, grid=(3, 3), centres=grid_centres(3), centre=8)
    assert explorer.state()["centre"] == 8 and "prompts" not in explorer.figure.axes[0].get_title()
    with pytest.raises(ValueError, match="centre must be"):
        URFMExplorer(torch.rand(3, 32, 32), maps, grid=3, centres=grid_centres(3), centre=9)
    with pytest.raises(ValueError, match="non-empty mapping"):
        URFMExplorer(torch.rand(3, 32, 32), {}, grid=3, centres=grid_centres(3))
    with pytest.raises(ValueError, match="maps 'teacher'"):
        URFMExplorer(torch.rand(3, 32, 32), maps, grid=2, centres=grid_centres(2))


def test_attention_explorer_redraws_the_chosen_image_block_and_head():
    from kdlab.widgets import AttentionExplorer

    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 32, 32, generator=g)
    attention = {"ViT": torch.rand(3, 2, 4, 4, 4, generator=g)}  # (N, blocks, heads, g, g)
    cams = {"CNN": torch.rand(3, 4, 4, generator=g)}
    explorer = AttentionExplorer(images, attention, cams)
    assert explorer.state()["block"] == 1 and explorer.state()["head"] == -1  # the last block, the mean of heads
    assert "block 2 (mean over heads)" in explorer.figure.get_suptitle()
    panel = explorer.figure.axes[1].images[-1].get_array()
    np.testing.assert_allclose(panel, attention["ViT"][0, 1].mean(0).numpy(), rtol=1e-6)
    explorer.index.value, explorer.head.value = 2, 3
    assert "Test image 2" in explorer.figure.get_suptitle() and "head 3" in explorer.figure.get_suptitle()
    np.testing.assert_allclose(explorer.figure.axes[1].images[-1].get_array(), attention["ViT"][2, 1, 3].numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(explorer.figure.axes[2].images[-1].get_array(), cams["CNN"][2].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        AttentionExplorer(images, {})
    with pytest.raises(ValueError, match="shape"):
        AttentionExplorer(images, {"ViT": torch.rand(2, 2, 4, 4, 4)})
