"""kdlab.viz: every plot is a titled, labelled Figure; bad inputs fail with a clear message."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from kdlab import viz  # noqa: E402
from kdlab.methods import CKF_SCHEDULES, ckf_share  # noqa: E402

ROWS = [
    {"epoch": 1, "train/loss": 2.0, "train/ce": 1.5, "train/kd": 0.5, "val/acc": 0.30, "lr": 0.1, "time_s": 3.0},
    {"epoch": 2, "train/loss": 1.5, "train/ce": 1.1, "val/acc": 0.45, "val/loss": 1.2},
    {"epoch": 3, "train/loss": 1.2, "train/ce": 0.9, "train/kd": 0.3, "val/acc": 0.55},
]


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def test_figures_are_not_kept_by_pyplot():
    before = len(plt.get_fignums())
    viz.plot_history(ROWS)
    viz.plot_softmax_temperature([1.0, 0.0], [1.0])
    viz.plot_ofa_weights(target_probs=[0.5])
    viz.plot_dense_share_schedules(3)
    viz.show_heatmaps(torch.rand(1, 3, 8, 8), {"m": torch.rand(1, 2, 2)}, title="h")
    viz.show_label_maps(torch.rand(1, 3, 8, 8), {"m": torch.zeros(1, 2, 2)}, ["a"], title="l", reference=[0])
    assert len(plt.get_fignums()) == before


def test_plot_history_panels():
    fig = viz.plot_history(ROWS, title="run A")
    assert isinstance(fig, Figure)
    assert fig.get_suptitle() == "run A"
    train, val = fig.axes
    assert legend_texts(train) == ["loss", "ce", "kd"]
    assert legend_texts(val) == ["acc", "loss"]
    assert train.get_xlabel() == "epoch" and "loss" in train.get_ylabel()
    kd = train.get_lines()[2]
    np.testing.assert_array_equal(kd.get_xdata(), [1, 3])  # epoch 2 has no kd: skipped, not zero
    np.testing.assert_array_equal(kd.get_ydata(), [0.5, 0.3])


def test_plot_history_single_row_and_metric_filter():
    fig = viz.plot_history(ROWS[:1], metrics=["train/kd", "val/acc"])
    train, val = fig.axes
    assert legend_texts(train) == ["kd"] and legend_texts(val) == ["acc"]
    assert train.get_lines()[0].get_marker() == "o"  # one epoch still shows as a point


def test_plot_history_without_val_and_empty():
    fig = viz.plot_history([{"train/loss": 1.0}, {"train/loss": 0.5}])
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [1, 2])  # epoch defaults to index + 1
    assert "no val/" in fig.axes[1].texts[0].get_text()
    with pytest.raises(ValueError, match="at least one row"):
        viz.plot_history([])


def test_plot_histories_single_runs_and_seeds():
    seeds = [ROWS, [{**row, "val/acc": row["val/acc"] + 0.1} for row in ROWS]]
    fig = viz.plot_histories({"kd": seeds, "baseline": ROWS})
    ax = fig.axes[0]
    assert ax.get_title() == "validation accuracy per epoch" and ax.get_xlabel() == "epoch"
    assert ax.get_ylabel() == "validation accuracy"  # the readable name, never the raw key
    assert legend_texts(ax) == ["kd (mean ± std of 2 seeds)", "baseline"]
    mean, single = ax.get_lines()
    np.testing.assert_allclose(mean.get_ydata(), [0.35, 0.50, 0.60])
    np.testing.assert_allclose(single.get_ydata(), [0.30, 0.45, 0.55])
    (band,) = ax.collections
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    spread = np.std([0.4, 0.5], ddof=1)  # the last epoch's two seeds: mean ± sample std
    assert (low, high) == pytest.approx((0.30 + 0.05 - np.std([0.3, 0.4], ddof=1), 0.60 + spread))


def test_plot_histories_missing_metric():
    with pytest.raises(ValueError, match="'val/miou'"):
        viz.plot_histories({"kd": ROWS}, metric="val/miou")
    with pytest.raises(ValueError, match="at least one run"):
        viz.plot_histories({})


def test_cka_heatmap_annotations_scale_and_labels():
    matrix = torch.tensor([[0.91234, 0.2], [0.3, 0.4], [0.5, 0.6]])
    fig = viz.cka_heatmap(matrix, ["t1", "t2", "t3"], ["s1", "s2"], title="CNN vs ViT")
    ax = fig.axes[0]
    assert ax.get_title() == "CNN vs ViT"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("student layer", "teacher layer")
    assert [t.get_text() for t in ax.texts][:2] == ["0.91", "0.20"]
    assert ax.collections[0].get_clim() == (0.0, 1.0)
    assert fig.axes[1].get_ylabel() == "linear CKA"  # the colour bar
    assert [t.get_text() for t in ax.get_yticklabels()] == ["t1", "t2", "t3"]


def test_cka_heatmap_into_given_axes_and_shape_check():
    fig, ax = plt.subplots()
    plt.close(fig)
    assert viz.cka_heatmap(np.eye(2), ["a", "b"], ["c", "d"], ax=ax) is fig
    with pytest.raises(ValueError, match="does not match"):
        viz.cka_heatmap(np.eye(2), ["a"], ["c", "d"])


def test_cka_heatmaps_share_one_colour_bar():
    panels = {"CNN": (np.eye(2), ["a", "b"], ["c", "d"]), "ViT": (np.full((2, 3), 0.5), ["a", "b"], ["x", "y", "z"])}
    fig = viz.cka_heatmaps(panels, title="CKA")
    assert fig.get_suptitle() == "CKA"
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["CNN", "ViT"]
    assert len(fig.axes) == 3 and fig.axes[2].get_ylabel() == "linear CKA"
    assert all(ax.collections[0].get_clim() == (0.0, 1.0) for ax in fig.axes[:2])


def test_show_images_grid_captions_and_masks():
    x = torch.rand(10, 3, 8, 8)
    masks = torch.zeros(10, 8, 8, dtype=torch.long)
    masks[:, 2:5, 2:5] = 1
    fig = viz.show_images(x, labels=torch.arange(10) % 3, classes=["cat", "dog", "eel"], n=6, ncols=4, masks=masks)
    assert fig.get_suptitle() == "Samples"
    assert len(fig.axes) == 8  # 2 rows of 4, two left empty
    assert [ax.get_title() for ax in fig.axes[:6]] == ["cat", "dog", "eel", "cat", "dog", "eel"]
    assert len(fig.axes[0].images) == 2 and len(fig.axes[6].images) == 0
    overlay = fig.axes[0].images[1].get_array()
    assert overlay.mask[0, 0] and not overlay.mask[3, 3]  # background stays clear


def test_show_images_grayscale_and_bad_shapes():
    fig = viz.show_images(np.random.rand(3, 1, 8, 8), labels=[4, 5, 6])
    assert [ax.get_title() for ax in fig.axes] == ["4", "5", "6"]
    assert fig.axes[0].images[0].get_array().shape == (8, 8)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        viz.show_images(np.random.rand(3, 2, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        viz.show_images(np.random.rand(8, 8, 3))


def test_softmax_temperature():
    z = np.array([2.0, 1.0, 0.0])
    np.testing.assert_allclose(viz.softmax(z, 2.0), torch.softmax(torch.tensor(z) / 2.0, 0).numpy())
    np.testing.assert_allclose(viz.softmax([1000.0, 0.0]), [1.0, 0.0])  # no overflow
    with pytest.raises(ValueError, match="temperature"):
        viz.softmax(z, 0.0)


def test_plot_softmax_temperature_bars():
    fig = viz.plot_softmax_temperature([3.0, 1.0, 0.0, -1.0], [1, 4], class_names=list("abcd"))
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_ylabel() == "probability" and ax.get_xlabel() == "class"
    assert legend_texts(ax) == ["T = 1", "T = 4"]
    heights = np.array([bar.get_height() for bar in ax.patches]).reshape(2, 4)
    np.testing.assert_allclose(heights.sum(axis=1), 1.0)
    assert heights[1].max() < heights[0].max()  # higher T is flatter
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    with pytest.raises(ValueError, match="1-D"):
        viz.plot_softmax_temperature(np.zeros((2, 3)), [1.0])


def test_plot_bars_length_check_and_highlight():
    fig = viz.plot_bars({"a": [1, 2, 3]}, title="bars", highlight=1)
    assert fig.axes[0].get_title() == "bars"
    with pytest.raises(ValueError, match="same length"):
        viz.plot_bars({"a": [1, 2], "b": [1, 2, 3]}, title="bars")


def test_plot_paired_gains_bars_intervals_and_highlight():
    gains = {"base": {"kd": (1.0, -0.5, 2.5), "cafd": (-1.0, -2.0, 0.0)},
             "more": {"kd": (3.0, 2.0, 4.0), "cafd": (0.5, float("nan"), float("nan"))}}
    fig = viz.plot_paired_gains(gains, title="gains", ylabel="change (points)", highlight="more")
    ax = fig.axes[0]
    assert ax.get_title() == "gains" and ax.get_ylabel() == "change (points)" and legend_texts(ax) == ["kd", "cafd"]
    bars = [p for p in ax.patches if p.get_width() < 0.5]
    assert sorted(round(b.get_height(), 6) for b in bars) == [-1.0, 0.5, 1.0, 3.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["base", "more"]
    assert viz.common.series_colours(["kd", "cafd"])["kd"] == pytest.approx(bars[0].get_facecolor()[:3])
    with pytest.raises(ValueError, match="same, non-empty rows"):
        viz.plot_paired_gains({"a": {"kd": (0, 0, 0)}, "b": {"x": (0, 0, 0)}}, title="t", ylabel="y")
    with pytest.raises(ValueError, match="highlight"):
        viz.plot_paired_gains(gains, title="t", ylabel="y", highlight="nope")
    with pytest.raises(ValueError, match="at least one"):
        viz.plot_paired_gains({}, title="t", ylabel="y")
    plt.close("all")


def test_plot_ofa_weights_curves_labels_and_legend():
    fig = viz.plot_ofa_weights()
    assert isinstance(fig, Figure) and fig.get_suptitle()
    target_ax, other_ax = fig.axes
    assert target_ax.get_xlabel() == "teacher probability of the target class q_y"
    assert target_ax.get_ylabel() == "weight w_y"
    assert other_ax.get_xlabel() == "teacher probability of a non-target class q_c"
    assert other_ax.get_ylabel() == "weight w_c"
    assert "code" in target_ax.get_title() and "paper" in target_ax.get_title() and other_ax.get_title()
    gammas = (1.0, 1.2, 1.5, 2.0)
    assert legend_texts(target_ax) == [f"{form}, γ = {g:g}" for g in gammas for form in ("code", "paper")]
    assert legend_texts(other_ax) == [f"code, γ = {g:g}" for g in gammas] + ["paper, every γ"]
    lines = target_ax.get_lines()
    for gamma, code, paper in zip(gammas, lines[::2], lines[1::2], strict=True):
        q = code.get_xdata()
        assert (q.min(), q.max()) == (0.0, 1.0)
        np.testing.assert_allclose(code.get_ydata(), (1 + q) ** gamma - 1, atol=1e-12)
        np.testing.assert_allclose(paper.get_ydata(), (1 + q) ** gamma, atol=1e-12)
        assert paper.get_linestyle() == "--" and paper.get_color() == code.get_color()
    np.testing.assert_allclose(lines[0].get_ydata(), lines[0].get_xdata(), atol=1e-12)  # code, gamma = 1: w_y = q_y
    for gamma, line in zip(gammas, other_ax.get_lines()):
        np.testing.assert_allclose(line.get_ydata(), line.get_xdata() ** gamma, atol=1e-12)
    paper_other = other_ax.get_lines()[-1]
    np.testing.assert_allclose(paper_other.get_ydata(), paper_other.get_xdata(), atol=1e-12)


def test_plot_ofa_weights_histogram_and_bad_inputs():
    fig = viz.plot_ofa_weights(gammas=[1.5], target_probs=torch.tensor([0.9, 0.95, 0.2]), title="OFA")
    assert fig.get_suptitle() == "OFA" and len(fig.axes) == 3  # the histogram's count axis
    counts = fig.axes[2]
    assert counts.get_ylabel() == "examples (count)"
    assert sum(patch.get_height() for patch in counts.patches) == 3
    assert legend_texts(fig.axes[0]) == ["code, γ = 1.5", "paper, γ = 1.5"]
    with pytest.raises(ValueError, match="at least one gamma"):
        viz.plot_ofa_weights(gammas=())
    with pytest.raises(ValueError, match="gamma must be a finite number > 0, got 0"):
        viz.plot_ofa_weights(gammas=(1.0, 0.0))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        viz.plot_ofa_weights(target_probs=[0.5, 1.5])


def test_plot_gamma_toy_panels_points_and_bad_inputs():
    non_target = {"confident": {1.0: 0.01, 2.0: 0.001}, "softened": {1.0: 0.4, 2.0: 0.1}}
    gains = {"confident": {1.0: (0.0, 0.0, 0.0), 2.0: (-0.5, -1.0, 0.1)},
             "softened": {2.0: (-2.0, float("nan"), float("nan")), 1.0: (0.0, 0.0, 0.0)}}
    fig = viz.plot_gamma_toy(non_target, gains, title="toy")
    left, right = fig.axes
    assert fig.get_suptitle() == "toy" and left.get_xlabel() == right.get_xlabel() == "γ"
    assert "points, 95 % CI" in right.get_ylabel() and "q_c^γ" in left.get_ylabel()
    assert legend_texts(left) == legend_texts(right) == ["confident", "softened"]
    np.testing.assert_allclose(left.get_lines()[1].get_ydata(), [0.4, 0.1])
    softened = [line for line in right.get_lines() if line.get_marker() == "o"][1]
    np.testing.assert_allclose(np.asarray(softened.get_xdata(), dtype=float), [1.0, 2.0])  # sorted by gamma
    np.testing.assert_allclose(np.asarray(softened.get_ydata(), dtype=float), [0.0, -2.0])
    with pytest.raises(ValueError, match="non-target weight of every teacher"):
        viz.plot_gamma_toy({"confident": {1.0: 0.0}}, gains)
    with pytest.raises(ValueError, match="non-target weight of every teacher"):
        viz.plot_gamma_toy(non_target, {})


# ------------------------------------------------------------------------------------------- CSKD dense share
@pytest.mark.parametrize("epochs", [1, 4, 10])
def test_plot_dense_share_schedules_steps_smooth_curves_and_global_weight(epochs):
    fig = viz.plot_dense_share_schedules(epochs, steps_per_epoch=5, title="CKF")
    ax, twin = fig.axes
    assert ax.get_title() == "CKF" and ax.get_xlabel() == "epoch"
    assert ax.get_ylabel() == "ω (weight of the dense, local logits)"
    assert twin.get_ylabel() == "1 − ω (weight of the global logits)"
    assert ax.get_xlim() == (0, epochs)
    lines = ax.get_lines()
    assert len(lines) == 2 * len(CKF_SCHEDULES)
    for kind, steps, smooth in zip(CKF_SCHEDULES, lines[::2], lines[1::2], strict=True):
        per_epoch = [ckf_share(e / epochs, epochs, kind) for e in range(epochs)]
        assert steps.get_drawstyle() == "steps-post"  # constant over each epoch [e, e + 1)
        np.testing.assert_array_equal(steps.get_xdata(), np.arange(epochs + 1))
        np.testing.assert_allclose(steps.get_ydata(), [*per_epoch, per_epoch[-1]])
        x = smooth.get_xdata()
        assert len(x) == 5 * epochs + 1 and (x[0], x[-1]) == (0.0, epochs)
        np.testing.assert_allclose(smooth.get_ydata(), [CKF_SCHEDULES[kind](e / epochs) for e in x], atol=1e-12)
        np.testing.assert_allclose(smooth.get_ydata()[::5][:-1], per_epoch)  # they meet at each epoch's start
        assert smooth.get_linestyle() == "--" and smooth.get_color() == steps.get_color()
        assert smooth.get_linewidth() < steps.get_linewidth()
    assert lines[0].get_ydata()[-1] == pytest.approx(1 / epochs)  # linear, per epoch: never 0
    assert lines[1].get_ydata()[-1] == pytest.approx(0.0)  # per iteration: 0 at the end
    (global_weight,) = twin.get_lines()
    np.testing.assert_allclose(global_weight.get_ydata(), 1 - lines[0].get_ydata())
    assert global_weight.get_drawstyle() == "steps-post"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        *(f"{kind}, {how}" for kind in CKF_SCHEDULES for how in ("per epoch (official)", "per iteration")),
        "1 − ω, linear only (right axis)",
    ]


def test_plot_dense_share_schedules_other_kinds_and_bad_inputs():
    fig = viz.plot_dense_share_schedules(6, kinds=["cos"])
    assert len(fig.axes[0].get_lines()) == 2
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), 1 - fig.axes[0].get_lines()[0].get_ydata())
    assert fig.legends[0].get_texts()[-1].get_text() == "1 − ω, cos only (right axis)"
    for epochs in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="epochs must be an int >= 1"):
            viz.plot_dense_share_schedules(epochs)
    with pytest.raises(ValueError, match="kind must be one of 'linear', 'x2', 'cos', got 'exp'"):
        viz.plot_dense_share_schedules(5, kinds=("linear", "exp"))
    with pytest.raises(ValueError, match="at least one kind"):
        viz.plot_dense_share_schedules(5, kinds=())
    for steps in (0, 1.5, True):
        with pytest.raises(ValueError, match="steps_per_epoch must be an int >= 1"):
            viz.plot_dense_share_schedules(5, steps_per_epoch=steps)


# ------------------------------------------------------------------------------------------- maps over images
def test_show_heatmaps_grid_overlays_and_colour_bars():
    images = torch.rand(4, 3, 16, 16)
    cam = torch.randn(4, 4, 4)
    attention = torch.rand(4, 2, 2)
    fig = viz.show_heatmaps(images, {"dense logit (nats)": cam, "attention (fraction)": attention}, title="maps", n=3)
    assert fig.get_suptitle() == "maps"
    grid, bars = fig.axes[:9], fig.axes[9:]
    assert [ax.get_title() for ax in grid[:3]] == ["image", "dense logit (nats)", "attention (fraction)"]
    assert [bar.get_ylabel() for bar in bars] == ["dense logit (nats)", "attention (fraction)"]  # one bar per map
    for row in range(3):
        image_ax, cam_ax, attention_ax = grid[3 * row: 3 * row + 3]
        assert len(image_ax.images) == 1 and len(cam_ax.images) == 2
        np.testing.assert_allclose(image_ax.images[0].get_array(), images[row].permute(1, 2, 0).numpy(), rtol=1e-6)
        np.testing.assert_allclose(cam_ax.images[1].get_array(), cam[row].numpy(), rtol=1e-6)
        overlay = attention_ax.images[1]
        np.testing.assert_allclose(overlay.get_array(), attention[row].numpy(), rtol=1e-6)
        assert overlay.get_extent() == [-0.5, 15.5, 15.5, -0.5]  # the 2x2 cells cover the 16x16 image
        assert overlay.get_interpolation() == "nearest" and 0 < overlay.get_alpha() < 1
        assert overlay.cmap.name == "magma"
        shown = cam[:3]  # the fourth image is not shown and does not stretch the scale
        assert cam_ax.images[1].get_clim() == pytest.approx((shown.min().item(), shown.max().item()))


def test_show_heatmaps_fixed_scale_defaults_and_bad_inputs():
    images = np.random.rand(2, 1, 8, 8)
    fig = viz.show_heatmaps(images, {"m": np.random.rand(2, 4, 4)}, title="t", cmap="viridis", vmin=0.0, vmax=2.0)
    assert len(fig.axes) == 2 * 2 + 1  # all rows without n
    assert fig.axes[1].images[1].get_clim() == (0.0, 2.0) and fig.axes[1].images[1].cmap.name == "viridis"
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        viz.show_heatmaps(np.random.rand(8, 8), {"m": np.zeros((1, 2, 2))}, title="t")
    with pytest.raises(ValueError, match=r"map 'm' must have shape \(N, h, w\) with N = 2 \(one per image\), "
                                         r"got \(2, 4\)"):
        viz.show_heatmaps(images, {"m": np.zeros((2, 4))}, title="t")
    with pytest.raises(ValueError, match=r"map 'm' must have shape \(N, h, w\) with N = 2 .* got \(3, 4, 4\)"):
        viz.show_heatmaps(images, {"m": np.zeros((3, 4, 4))}, title="t")
    with pytest.raises(ValueError, match="non-finite"):
        viz.show_heatmaps(images, {"m": np.full((2, 4, 4), np.nan)}, title="t")
    with pytest.raises(ValueError, match="at least one map"):
        viz.show_heatmaps(images, {}, title="t")
    with pytest.raises(ValueError, match="at least one image"):
        viz.show_heatmaps(np.zeros((0, 3, 8, 8)), {"m": np.zeros((0, 2, 2))}, title="t")
    for n in (0, 1.5, True):
        with pytest.raises(ValueError, match="n .* must be an int >= 1"):
            viz.show_heatmaps(images, {"m": np.zeros((2, 4, 4))}, title="t", n=n)
    with pytest.raises(ValueError, match="vmin must be below vmax"):
        viz.show_heatmaps(images, {"m": np.zeros((2, 4, 4))}, title="t", vmin=1.0, vmax=1.0)


CLASSES = ["circle", "square", "star", "triangle"]


def test_show_label_maps_colours_hatching_titles_and_legend():
    images = torch.rand(3, 3, 12, 12)
    dense = torch.tensor([[[0, 1, 2], [2, 2, 2], [3, 2, 2]]] * 3)
    fused = torch.full((3, 3, 3), 2)
    fused[1, 0, 0] = 0
    fig = viz.show_label_maps(images, {"dense": dense, "fused": fused}, CLASSES, title="labels", n=2,
                              reference=torch.tensor([2, 0, 1]))
    assert fig.get_suptitle() == "labels" and len(fig.axes) == 2 * 3
    palette = viz.common.class_colours(4)
    assert palette == sns.color_palette("colorblind", 4)
    for row, reference in enumerate([2, 0]):
        image_ax, dense_ax, fused_ax = fig.axes[3 * row: 3 * row + 3]
        assert image_ax.get_title() == f"global: {CLASSES[reference]}"
        for ax, name, labels in ((dense_ax, "dense", dense[row]), (fused_ax, "fused", fused[row])):
            overlay = ax.images[1]
            np.testing.assert_array_equal(overlay.get_array(), labels.numpy())
            for k in range(4):  # one fixed colour per class
                assert overlay.cmap(overlay.norm(k))[:3] == pytest.approx(palette[k])
            differ = (labels != reference).numpy()
            marks = [patch for patch in ax.patches if patch.get_hatch() == viz.common.MARK_HATCH]
            assert len(marks) == differ.sum()  # one hatched cell per label that is not the global one
            corners = {(round(m.get_x() + 0.5), round(m.get_y() + 0.5)) for m in marks}
            assert corners == {(4 * c, 4 * r) for r, c in zip(*np.nonzero(differ))}  # 3x3 cells of 4x4 pixels
            assert ax.get_title() == f"{name}\n{differ.mean():.0%} of cells ≠ global"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["circle", "square", "star", "triangle", "≠ global label"]  # the shown rows' classes


def test_show_label_maps_without_reference_and_large_palettes():
    classes = [f"c{i}" for i in range(12)]
    fig = viz.show_label_maps(np.random.rand(2, 3, 8, 8), {"argmax": np.array([[[11, 0]], [[3, 3]]])}, classes,
                              title="no reference")
    assert [ax.get_title() for ax in fig.axes] == ["image", "argmax", "", ""]
    assert not any(ax.patches for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["c0", "c3", "c11"]
    assert viz.common.class_colours(12) == sns.color_palette("husl", 12)
    many = viz.common.class_colours(25)
    assert len(set(many)) == 25  # distinct colours beyond the colour-blind palette


def test_show_label_maps_bad_inputs():
    images = np.random.rand(2, 3, 8, 8)
    good = np.zeros((2, 2, 2))
    with pytest.raises(ValueError, match=r"map 'm' must hold integer class labels in 0..3, got values from 0 to 0.5"):
        viz.show_label_maps(images, {"m": np.full((2, 2, 2), 0.5) * [0, 1]}, CLASSES, title="t")
    with pytest.raises(ValueError, match=r"map 'm' must hold integer class labels in 0..3, got values from -1 to 4"):
        viz.show_label_maps(images, {"m": np.array([[[-1, 4]], [[0, 0]]])}, CLASSES, title="t")
    with pytest.raises(ValueError, match=r"reference must have shape \(N,\) with N = 2 .* got \(2, 1\)"):
        viz.show_label_maps(images, {"m": good}, CLASSES, title="t", reference=[[0], [1]])
    with pytest.raises(ValueError, match=r"reference must hold integer class labels in 0..3"):
        viz.show_label_maps(images, {"m": good}, CLASSES, title="t", reference=[0, 7])
    with pytest.raises(ValueError, match="at least one class name"):
        viz.show_label_maps(images, {"m": good}, [], title="t")
    with pytest.raises(ValueError, match=r"map 'm' must have shape \(N, h, w\)"):
        viz.show_label_maps(images, {"m": np.zeros((2, 4))}, CLASSES, title="t")


def test_plot_lines_draws_one_labelled_curve_per_series_and_checks_lengths():
    from kdlab.viz import plot_lines

    fig = plot_lines([0, 1, 2], {"a": [0.1, 0.2, 0.3], "b": np.array([1.0, 0.5, 0.0])}, title="t", xlabel="epoch",
                     ylabel="share")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["a", "b"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [1.0, 0.5, 0.0])
    assert ax.get_title() == "t" and ax.get_xlabel() == "epoch" and ax.get_ylabel() == "share"
    plt.close(fig)
    with pytest.raises(ValueError, match="3 values"):
        plot_lines([0, 1, 2], {"short": [1, 2]}, title="t", xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="at least one"):
        plot_lines([0], {}, title="t", xlabel="x", ylabel="y")


# --------------------------------------------------------------------------------------------- SW-TaT
def test_window_partition_picture_draws_window_and_masked_region_borders():
    fig = viz.plot_window_partition(torch.rand(3, 64, 64), (16, 16), 4)
    regular, shifted, rolled = fig.axes[:3]
    assert "shift 0" in regular.get_title() and "shift 2" in shifted.get_title() and "roll" in rolled.get_title()
    red = lambda ax: [ln for ln in ax.get_lines() if ln.get_color() == "red"]  # noqa: E731
    # regular windows need no mask; after the roll the last window row and column hold masked region borders
    assert not red(regular) and red(rolled)
    assert fig._suptitle.get_text()
    with pytest.raises(ValueError, match="shift"):
        viz.plot_window_partition(torch.rand(3, 64, 64), (16, 16), 4, shift=4)
    with pytest.raises(ValueError, match="grid"):
        viz.plot_window_partition(torch.rand(3, 64, 64), (0, 16), 4)


def test_window_masks_picture_shows_swin_fig4_fractions():
    fig = viz.plot_window_masks(8, 8, 4, 2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["window 0: 0% masked", "window 1: 50% masked", "window 2: 50% masked", "window 3: 75% masked"]
    assert all(ax.get_xlabel() == "key token j" for ax in fig.axes)


def _window_attention_inputs(seed: int = 0):
    """Two 64x64 images and random (2, 8, 16, 16) query and key maps: 4x4 image pixels per map cell."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(2, 3, 64, 64, generator=generator), torch.randn(2, 8, 16, 16, generator=generator),
            torch.randn(2, 8, 16, 16, generator=generator))


def _panels(fig):
    """The figure's panels without its colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_window_attention_shows_four_panels_with_the_query_marked_and_weights_summing_to_one():
    from kdlab.methods import position_attention
    from kdlab.viz.swtat import render_window_attention

    images, q, k = _window_attention_inputs()
    fig = render_window_attention(images, q, k, (7, 7), 4, 2, index=1)
    panels = _panels(fig)
    assert len(panels) == 4 and len(fig.axes) - len(panels) == 3  # a colour bar per attention panel
    titles = [ax.get_title() for ax in panels]
    assert titles[0].startswith("may attend (window 4, shift 2)") and "16 regular, 16 shifted, 0 masked" in titles[0]
    assert titles[1].startswith("global") and "shift 0" in titles[2] and "window 4, shift 2" in titles[3]
    assert all(cb.get_ylabel() == "attention weight (sums to 1)" for cb in fig.axes if cb not in panels)
    assert "(7, 7)" in fig._suptitle.get_text() and "Image 1" in fig._suptitle.get_text()
    for ax in panels:  # the query cell (7, 7) of 4x4-pixel cells, outlined in cyan
        cyan = [p for p in ax.patches if p.get_edgecolor()[:3] == (0.0, 1.0, 1.0)]
        assert [(p.get_x(), p.get_y(), p.get_width()) for p in cyan] == [(27.5, 27.5, 4.0)]
    for ax, window, shift in zip(panels[1:], (None, 4, 4), (0, 0, 2)):
        shown = ax.get_images()[-1].get_array()
        expected = position_attention(q[1:2], k[1:2], (7, 7), window=window, shift=shift)[0].numpy()
        assert shown.sum() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(shown.filled(0.0), expected, atol=1e-7)


def test_allowed_keys_follow_window_layout_and_the_attention_they_allow():
    from kdlab.methods import effective_window, position_attention, window_layout
    from kdlab.viz.swtat import allowed_keys, render_window_attention

    images, q, k = _window_attention_inputs(1)
    for position in [(7, 7), (15, 0), (0, 15), (15, 15), (5, 9)]:
        reach = allowed_keys((16, 16), position, 4, 2)
        for allowed, shift in ((reach.regular, 0), (reach.shifted, 2)):
            window_id, region = (t.numpy() for t in window_layout(16, 16, 4, shift))
            np.testing.assert_array_equal(allowed, (window_id == window_id[position]) & (region == region[position]))
        window_id, region = (t.numpy() for t in window_layout(16, 16, 4, 2))
        np.testing.assert_array_equal(reach.masked, (window_id == window_id[position]) & (region != region[position]))
        weights = position_attention(q[:1], k[:1], position, window=4, shift=2)[0].numpy()
        np.testing.assert_array_equal(weights > 0, reach.shifted)  # exactly the keys the softmax may use
        drawn = render_window_attention(images[0], q, k, position, 4, 2).axes[0].get_images()[-1].get_array()
        np.testing.assert_array_equal(drawn.filled(0), reach.regular + 2 * reach.shifted)
    corner = allowed_keys((16, 16), (15, 0), 4, 2)  # its shifted window wraps round all four corners
    assert (corner.regular.sum(), corner.shifted.sum(), corner.masked.sum()) == (16, 4, 12)
    # a window as long as the map is one window, unshifted (effective_window)
    whole = allowed_keys((16, 16), (3, 3), 16, 5)
    assert effective_window(16, 16, 16, 5) == ((16, 16), (0, 0)) and whole.shifted.all() and not whole.masked.any()


def test_window_attention_refuses_bad_inputs_with_a_message():
    from kdlab.viz.swtat import allowed_keys, render_window_attention

    images, q, k = _window_attention_inputs()
    cases = [((images, q, k, (16, 0), 4, 2), {}, r"position must be a \(row, col\) cell of the 16x16 map"),
             ((images, q, k, (-1, 3), 4, 2), {}, "position"),
             ((images, q, k, (1, 2, 3), 4, 2), {}, "position"),
             ((images, q, k[:, :4], (1, 2), 4, 2), {}, "query and key must be .* of one shape"),
             ((images, q[0], k[0], (1, 2), 4, 2), {}, "query and key must be"),
             ((images, q, k, (1, 2), 0, 0), {}, "window must be an int >= 1"),
             ((images, q, k, (1, 2), 4, 4), {}, "shift must be an int >= 0 and <= 3"),
             ((images, q, k, (1, 2), 4, -1), {}, "shift must be"),
             ((images, q, k, (1, 2), 4, 2), {"index": 2}, "index must be an int"),
             ((images[:1], q, k, (1, 2), 4, 2), {}, "same batch size"),
             ((images[0, 0], q, k, (1, 2), 4, 2), {}, "one image of shape")]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            render_window_attention(*args, **kwargs)
    with pytest.raises(ValueError, match="position"):
        allowed_keys((16, 16), (0, 16), 4, 2)


def test_window_attention_names_the_effective_window_of_a_small_map():
    from kdlab.viz.swtat import render_window_attention

    images, q, k = _window_attention_inputs()
    fig = render_window_attention(images[0], q, k, (3, 15), 16, 5)  # one image; a window as long as the map
    assert "windows 16x16, shift (0, 0)" in fig._suptitle.get_text()
    assert "256 regular, 256 shifted, 0 masked" in fig.axes[0].get_title()


def test_scaling_plot_is_log_log_with_guides():
    fig = viz.plot_scaling([64, 256, 1024], {"global": [1, 16, 256], "window": [1, 4, 16]}, {"∝ N²": 2},
                           title="cost", xlabel="tokens", ylabel="ms")
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_ylabel() == "ms"
    guide = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"][0]
    assert np.allclose(guide.get_ydata(), [1, 16, 256])  # slope 2 through the first point
    with pytest.raises(ValueError, match="positive"):
        viz.plot_scaling([1, 2], {"a": [0, 1]}, {}, title="t", xlabel="x", ylabel="y")


def test_depth_maps_share_one_depth_scale_and_show_errors():
    images, truth = torch.rand(3, 3, 16, 16), torch.rand(3, 16, 16) * 9 + 0.5
    mask = torch.ones(3, 16, 16, dtype=torch.bool)
    mask[:, :2] = False
    fig = viz.show_depth_maps(images, truth, {"exact": truth, "far": truth.unsqueeze(1) + 1.0}, title="depth",
                              n=2, depth_range=(0.5, 10.0), mask=mask, overlays={"A (weight)": torch.rand(3, 4, 4)})
    labels = [ax.get_ylabel() or ax.get_xlabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert "depth (m)" in labels and "absolute error |ŷ − y| (m)" in labels and "A (weight)" in labels
    assert fig._suptitle.get_text() == "depth"
    titles = [ax.get_title() for ax in fig.axes]
    assert titles.count("error: 0.00 m mean") == 2 and titles.count("error: 1.00 m mean") == 2
    depth_images = [im for ax in fig.axes[:8] for im in ax.get_images() if im.cmap.name == viz.disdepth.DEPTH_CMAP]
    assert depth_images and all(im.norm.vmin == 0.5 and im.norm.vmax == 10.0 for im in depth_images)
    error = [im for ax in fig.axes for im in ax.get_images() if im.cmap.name == viz.disdepth.ERROR_CMAP][1].get_array()
    assert np.ma.getmaskarray(error)[:2].all() or np.isnan(np.ma.filled(error, np.nan)[:2]).all()


def test_depth_maps_reject_bad_inputs():
    images, truth = torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8) + 0.5
    with pytest.raises(ValueError, match="prediction"):
        viz.show_depth_maps(images, truth, {}, title="t")
    with pytest.raises(ValueError, match="shape"):
        viz.show_depth_maps(images, truth, {"p": torch.rand(2, 4, 4)}, title="t")
    with pytest.raises(ValueError, match="non-finite"):
        viz.show_depth_maps(images, truth, {"p": torch.full((2, 8, 8), float("nan"))}, title="t")
    with pytest.raises(ValueError, match="at most two"):
        viz.show_depth_maps(images, truth, {"p": truth}, title="t", overlays={k: torch.rand(2, 2, 2) for k in "abc"})


def test_feature_pca_maps_project_on_the_main_direction_with_a_fixed_sign():
    pattern = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4)
    features = torch.cat([3 * pattern, 2 * pattern, torch.zeros(1, 1, 4, 4)], dim=1).repeat(2, 1, 1, 1)
    maps = viz.feature_pca_maps(features)
    assert maps.shape == (2, 4, 4)
    assert np.corrcoef(maps.ravel(), pattern.repeat(2, 1, 1, 1).numpy().ravel())[0, 1] > 0.999  # sign follows the norm
    assert not viz.feature_pca_maps(torch.ones(1, 3, 2, 2)).any()
    with pytest.raises(ValueError, match="feature maps"):
        viz.feature_pca_maps(torch.ones(3, 2, 2))


def test_heatmaps_can_outline_one_cell_in_every_panel():
    fig = viz.show_heatmaps(torch.rand(2, 3, 16, 16), {"a": torch.rand(2, 4, 4), "b": torch.rand(2, 4, 4)},
                            title="t", mark=(1, 2))
    boxes = [p for ax in fig.axes for p in ax.patches if isinstance(p, plt.Rectangle)]
    assert len(boxes) == 4 and boxes[0].get_xy() == (2 * 4 - 0.5, 1 * 4 - 0.5) and boxes[0].get_width() == 4
    with pytest.raises(ValueError, match="mark"):
        viz.show_heatmaps(torch.rand(1, 3, 16, 16), {"a": torch.rand(1, 4, 4)}, title="t", mark=(4, 0))


# faces (CAFD) -------------------------------------------------------------------------------------

def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def _colorbar_labels(fig):
    return [ax.get_ylabel() or ax.get_xlabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]


def test_plot_face_grid_maps_labels_every_panel_and_colour_bar():
    from kdlab.methods import template_landmarks

    maps = {"D (grid cells)": torch.rand(4, 4), "D_rel (IOD units)": torch.rand(4, 4)}
    fig = viz.plot_face_grid_maps(maps, title="distances", landmarks=template_landmarks(),
                                  anchor=template_landmarks()[2], image=torch.rand(3, 16, 16))
    assert isinstance(fig, Figure) and fig._suptitle.get_text() == "distances"
    assert set(maps) <= set(_titles(fig)) and set(maps) <= set(_colorbar_labels(fig))
    panel = next(ax for ax in fig.axes if ax.get_title() == "D (grid cells)")
    assert "fraction of the image width" in panel.get_xlabel() and "height" in panel.get_ylabel()
    buckets = viz.plot_face_grid_maps({"bucket": torch.tensor([[0, 1], [2, 6]])}, title="b", discrete=True)
    bar = next(ax for ax in buckets.axes if ax.get_label() == "<colorbar>")
    assert [t.get_text() for t in bar.get_yticklabels()] == [str(k) for k in range(7)]
    with pytest.raises(ValueError, match="rows, cols"):
        viz.plot_face_grid_maps({"bad": torch.rand(4)}, title="x")
    with pytest.raises(ValueError, match="landmarks"):
        viz.plot_face_grid_maps(maps, title="x", landmarks=torch.rand(4, 2))


def test_plot_roc_curves_uses_a_log_far_axis_and_marks_the_operating_point():
    far = torch.tensor([0.0, 0.001, 0.01, 0.5, 1.0])
    fig = viz.plot_roc_curves({"student": (far, far.sqrt()), "teacher": (far, far ** 0.25)}, title="ROC",
                              far_marks=(1e-2,), min_far=1e-4)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_title() == "ROC" and "FAR" in ax.get_xlabel() and "TAR" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["student", "teacher"]
    assert ax.get_lines()[0].get_xdata()[0] == pytest.approx(1e-4)  # FAR 0 drawn at min_far
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        viz.plot_roc_curves({"bad": (far, far * 2)}, title="x")


def test_show_centre_attention_draws_one_block_per_network_with_notes():
    from kdlab.methods import grid_centres

    maps = {"teacher": torch.rand(4, 4, 4), "student": torch.rand(4, 2, 2)}
    fig = viz.show_centre_attention(torch.rand(3, 16, 16), maps, grid_centres(2), grid=(2, 2), title="centres",
                                    notes={"teacher": ["p 1%"] * 4})
    assert "teacher c0, p 1%" in _titles(fig) and "student c3" in _titles(fig)
    assert {"teacher: attention weight (share of the centre)", "student: attention weight (share of the centre)"} <= set(
        _colorbar_labels(fig))
    with pytest.raises(ValueError, match="centres"):
        viz.show_centre_attention(torch.rand(3, 16, 16), maps, grid_centres(3), grid=(2, 2), title="x")


def _urfm_maps(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {"teacher, facial distance": torch.softmax(torch.randn(4, 9, generator=g), -1).reshape(4, 3, 3) * 0.8,
            "teacher, no facial term (κ = 0)": torch.softmax(torch.randn(4, 9, generator=g), -1).reshape(4, 3, 3),
            "student": torch.softmax(torch.randn(4, 4, generator=g), -1).reshape(4, 2, 2)}


def test_render_urfm_attention_shows_one_centre_per_map_on_one_scale():
    from kdlab.methods import grid_centres, template_landmarks

    maps, centres = _urfm_maps(), grid_centres(2)
    fig = viz.cafd.render_urfm_attention(torch.rand(3, 16, 16), maps, 3, grid=2, centres=centres,
                                         landmarks=template_landmarks(),
                                         prompt_share={"teacher, facial distance": torch.full((4,), 0.2)})
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title().split("\n")[0] for ax in panels] == list(maps)
    assert "3x3 tokens" in panels[0].get_title() and "prompts 20%" in panels[0].get_title()
    assert "prompts" not in panels[1].get_title() and "2x2 tokens" in panels[2].get_title()
    assert _colorbar_labels(fig) == ["attention weight (share of the centre's attention)"]  # one shared bar
    assert "centre c3 (row 1, col 1 of the 2x2 grid)" in fig.get_suptitle()
    for ax, values in zip(panels, maps.values()):
        np.testing.assert_allclose(ax.images[-1].get_array(), values[3].numpy(), rtol=1e-6)
        assert ax.images[-1].get_cmap().name == "magma" and ax.images[-1].norm.vmax == pytest.approx(
            max(float(m[3].max()) for m in maps.values()))
        ring, crosses = ax.collections[-1], ax.collections[0]
        np.testing.assert_allclose(ring.get_offsets(), centres[3:].numpy())  # the centre's grid position
        np.testing.assert_allclose(crosses.get_offsets(), template_landmarks().numpy(), rtol=1e-6)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["landmarks (eyes, nose, mouth corners)",
                                                                  "the local centre's grid position"]
    plain = viz.cafd.render_urfm_attention(torch.rand(1, 16, 16), {"student": maps["student"]}, 0, grid=(2, 2),
                                           centres=centres, title="one")
    assert plain.get_suptitle() == "one" and len(plain.axes[0].collections) == 1  # no landmarks: the ring only


def test_render_urfm_attention_rejects_bad_input():
    from kdlab.methods import grid_centres

    maps, image, centres = _urfm_maps(), torch.rand(3, 16, 16), grid_centres(2)
    for kwargs, message in [({"maps": {}}, "non-empty mapping"), ({"centre": 4}, "centre must be"),
                            ({"centre": -1}, "centre must be"), ({"grid": 3}, "maps 'teacher, facial distance'"),
                            ({"grid": 0}, "grid must be"), ({"maps": {"s": torch.rand(4, 2)}}, "maps 's'"),
                            ({"centres": grid_centres(3)}, "centres must be"),
                            ({"landmarks": torch.rand(4, 2)}, "landmarks must be"),
                            ({"prompt_share": {"other": torch.zeros(4)}}, "not one of the maps"),
                            ({"prompt_share": {"student": torch.full((4,), 1.5)}}, "shares in \\[0, 1\\]"),
                            ({"image": torch.rand(16, 16)}, "one image")]:
        args = {"image": image, "maps": maps, "centre": 0, "grid": 2, "centres": centres, **kwargs}
        with pytest.raises(ValueError, match=message):
            viz.cafd.render_urfm_attention(args.pop("image"), args.pop("maps"), args.pop("centre"), **args)


def test_plot_landmark_distances_annotates_a_labelled_matrix():
    from kdlab.methods import LANDMARK_NAMES, facial_distance_parts, template_landmarks

    lm = template_landmarks()
    matrix = torch.stack([facial_distance_parts(lm, lm, k, 1.0, 4)["total"] for k in range(5)])
    fig = viz.plot_landmark_distances(matrix, LANDMARK_NAMES, title="D between landmarks")
    ax = fig.axes[0]
    assert ax.get_title() == "D between landmarks" and ax.get_xlabel() and ax.get_ylabel()
    names = ["left eye", "right eye", "nose", "mouth left", "mouth right"]
    assert [t.get_text() for t in ax.get_xticklabels()] == names == [t.get_text() for t in ax.get_yticklabels()]
    assert [t.get_text() for t in ax.texts] == [f"{v:.2f}" for v in matrix.flatten().tolist()]
    assert _colorbar_labels(fig) == ["facial structure distance (grid cells)"]
    for bad, message in [(torch.rand(5, 4), "square"), (torch.rand(0, 0), "square"), (-torch.ones(5, 5), ">= 0"),
                         (torch.full((5, 5), float("nan")), "finite")]:
        with pytest.raises(ValueError, match=message):
            viz.plot_landmark_distances(bad, LANDMARK_NAMES, title="x")
    with pytest.raises(ValueError, match="one name per row"):
        viz.plot_landmark_distances(matrix, LANDMARK_NAMES[:4], title="x")


def test_show_faces_and_attention_matrices():
    fig = viz.show_faces(torch.rand(3, 3, 16, 16), torch.rand(3, 5, 2), ["a", "b", "c"], title="faces", ncols=2)
    assert fig._suptitle.get_text() == "faces" and {"a", "b", "c"} <= set(_titles(fig))
    with pytest.raises(ValueError, match="landmarks"):
        viz.show_faces(torch.rand(3, 3, 16, 16), torch.rand(3, 4, 2), title="x")
    m = torch.softmax(torch.randn(4, 4), -1)
    fig = viz.plot_attention_matrices({"A_T": m, "A_S": m.t()}, title="MSA", label="attention weight")
    assert {"A_T", "A_S"} <= set(_titles(fig)) and "attention weight" in _colorbar_labels(fig)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes if ax.get_title() in ("A_T", "A_S"))


def test_seed_points_show_the_mean_the_spread_and_every_seed():
    fig = viz.plot_seed_points({"a": [0.5, 0.7, 0.6], "b": [0.2]}, title="t", ylabel="accuracy (%)")
    ax = fig.axes[0]
    assert [round(p.get_height(), 6) for p in ax.patches] == [60.0, 20.0]
    assert sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets")) >= 4  # every seed a dot
    assert ax.get_ylabel() == "accuracy (%)" and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    with pytest.raises(ValueError, match="at least one"):
        viz.plot_seed_points({}, title="t", ylabel="y")
    with pytest.raises(ValueError, match="seed"):
        viz.plot_seed_points({"a": []}, title="t", ylabel="y")
    plt.close("all")


def test_label_budget_curves_use_a_log_axis_and_mark_the_live_run():
    sweep = {"labels only": {100: [0.2, 0.3], 1000: [0.8, 0.9]}, "KD": {100: [0.5, 0.6], 1000: [0.85, 0.9]}}
    fig = viz.plot_label_budgets(sweep, live={"KD": {100: [0.55]}}, title="budgets")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "labelled training images" in ax.get_xlabel()
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert any(label.startswith("KD: this run") for label in lines)
    np.testing.assert_allclose(np.asarray(ax.get_lines()[0].get_ydata(), dtype=float), [25.0, 85.0])
    with pytest.raises(ValueError, match="at least one"):
        viz.plot_label_budgets({}, title="t")
    plt.close("all")


def test_history_axes_read_the_metric_s_name_not_its_key():
    rows = [{"epoch": 1, "val/acc": 0.5}, {"epoch": 2, "val/acc": 0.7}]
    assert viz.plot_histories({"a": rows}).axes[0].get_ylabel() == "validation accuracy"
    assert viz.plot_histories({"a": rows}, ylabel="custom").axes[0].get_ylabel() == "custom"
    with pytest.raises(ValueError, match="no readable axis name"):
        viz.plot_histories({"a": [{"epoch": 1, "val/top5": 0.9}]}, metric="val/top5")
    assert all("/" not in name.replace("/ y", "") for name in viz.common.AXIS_NAMES.values()), "names, not keys"
    plt.close("all")


def test_plot_training_diagnosis_draws_heads_dense_term_and_share():
    epochs = 5
    ramp = list(np.linspace(0.1, 0.5, epochs))
    curves = {"CSKD": {**{head: ramp for head in viz.cskd.HEADS}, "dense loss": [2.3, 2.0, 1.5, 1.2, 1.0]},
              "CSKD without CKF": {**{head: ramp[::-1] for head in viz.cskd.HEADS}, "dense loss": [2.2] * epochs}}
    fig = viz.cskd.plot_training_diagnosis(curves, [0.2] * epochs, epochs, "linear", 10, title="diagnosis")
    acc_ax, loss_ax, share_ax = fig.axes
    assert fig.get_suptitle() == "diagnosis"
    assert acc_ax.get_ylabel() == "validation accuracy (fraction)" and loss_ax.get_ylabel() == "L_CSKD, epoch mean (nats)"
    assert len(acc_ax.get_lines()) == 1 + 2 * len(viz.cskd.HEADS)  # no KD, then each run's heads
    assert acc_ax.get_lines()[0].get_label() == "no KD (its one head)"
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_ydata(), curves["CSKD"]["dense loss"])
    assert loss_ax.get_lines()[-1].get_ydata()[0] == pytest.approx(np.log(10)), "a uniform guess"
    with_ckf, without = share_ax.get_lines()
    np.testing.assert_allclose(with_ckf.get_ydata(), [ckf_share(e / epochs, epochs) for e in range(epochs)])
    assert set(without.get_ydata()) == {1.0}, "a run without CKF keeps the dense share at 1"
    assert with_ckf.get_linestyle() != without.get_linestyle()
    with pytest.raises(ValueError, match="at least one run"):
        viz.cskd.plot_training_diagnosis({}, [0.2] * epochs, epochs)
    with pytest.raises(ValueError, match="'CSKD': every curve needs 4 values"):
        viz.cskd.plot_training_diagnosis({"CSKD": curves["CSKD"]}, [0.2] * 4, epochs)
    with pytest.raises(ValueError, match="kind must be one of"):
        viz.cskd.plot_training_diagnosis(curves, [0.2] * epochs, epochs, "steep")


def test_receptive_field_figure_shares_one_log_scale_and_draws_the_mass_curves():
    from kdlab.probes import effective_receptive_field
    from kdlab.viz import plot_receptive_fields

    x = torch.rand(4, 3, 16, 16)
    conv = torch.nn.Conv2d(3, 2, 3, padding=1)
    spread = lambda x: x.mean(dim=(2, 3), keepdim=True).expand(-1, -1, 4, 4)  # noqa: E731
    fields = {"3x3 conv": effective_receptive_field(conv, x), "global mean": effective_receptive_field(spread, x)}
    fig = plot_receptive_fields(fields, title="two fields")
    curve_ax = [ax for ax in fig.axes if ax.get_xlabel() == "radius from the centre (pixels)"][0]
    conv_curve, mean_curve = (line.get_ydata() for line in curve_ax.get_lines())
    assert conv_curve[2] == pytest.approx(1.0) and mean_curve[2] < 0.2 and mean_curve[-1] == pytest.approx(1.0)
    assert any("log scale" in ax.get_xlabel() for ax in fig.axes), "one shared, labelled colour bar"
    with pytest.raises(ValueError, match="at least one field"):
        plot_receptive_fields({}, title="none")
    with pytest.raises(ValueError, match=r"\(H, W\) map"):
        plot_receptive_fields({"bad": (torch.rand(1, 4, 4), (1.0, 1.0))}, title="bad")


def test_every_figure_cycles_through_the_colour_blind_safe_palette_not_tab10():
    from matplotlib.colors import to_rgb

    from kdlab.viz import plot_bars, plot_lines
    from kdlab.viz.common import PALETTE

    tab10 = [to_rgb(c) for c in plt.get_cmap("tab10").colors]
    fig = plot_lines([1, 2, 3], {f"run {k}": [k, k + 1, k + 2] for k in range(4)}, title="t", xlabel="epoch",
                     ylabel="accuracy (%)")
    colours = [to_rgb(line.get_color()) for line in fig.axes[0].get_lines()]
    assert colours == [to_rgb(c) for c in PALETTE[:4]] and not set(colours) & set(tab10[:4])
    bars = plot_bars({"a": [1, 2], "b": [2, 1]}, title="t", ylabel="accuracy (%)")
    faces = {to_rgb(patch.get_facecolor()[:3]) for patch in bars.axes[0].patches}
    assert faces <= {to_rgb(c) for c in PALETTE}


def test_the_baseline_has_one_colour_in_every_figure():
    from matplotlib.colors import to_rgb

    from kdlab.viz.common import BASELINE_COLOUR, PALETTE, series_colours

    assert series_colours(["KD", "no KD", "OFA"]) == {"KD": PALETTE[0], "no KD": BASELINE_COLOUR, "OFA": PALETTE[2]}
    rows = [{"epoch": 1, "val/acc": 0.5}, {"epoch": 2, "val/acc": 0.6}]
    lines = viz.plot_histories({"labels only": rows, "Hinton KD": rows}).axes[0].get_lines()
    assert to_rgb(lines[0].get_color()) == BASELINE_COLOUR and to_rgb(lines[1].get_color()) == to_rgb(PALETTE[0])
    bars = viz.plot_seed_points({"Hinton KD": [0.6, 0.7], "no KD": [0.5, 0.55]}, title="t", ylabel="accuracy (%)")
    faces = [to_rgb(patch.get_facecolor()[:3]) for patch in bars.axes[0].patches]
    assert faces == [to_rgb(PALETTE[0]), BASELINE_COLOUR]
    plt.close("all")


def test_a_method_keeps_its_colour_across_notebooks_and_variants_are_shades_of_it():
    from kdlab.viz.common import BASELINE_COLOUR, METHOD_FAMILIES, PALETTE, method_family, series_colours

    primer = series_colours(["labels only", "Hinton KD", "labels only + bias fix", "Hinton KD + bias fix"])
    ofa = series_colours(["labels only", "FitNet hint", "OFA final logits", "Hinton KD", "OFA all stages"])
    face = series_colours(["no KD", "embedding KD", "feature MSE", "CAFD", "CAFD without APT"])
    depth = series_colours(["no KD", "+ LGConv", "+ feature-MSE KD", "+ ghost-decoder KD", "DisDepth"])
    assert primer["Hinton KD"] == ofa["Hinton KD"] == face["embedding KD"] == PALETTE[0]  # logit KD: blue everywhere
    assert ofa["FitNet hint"] == face["feature MSE"] == depth["+ feature-MSE KD"] == PALETTE[1]  # feature matching
    assert primer["labels only"] == face["no KD"] == BASELINE_COLOUR
    assert ofa["OFA final logits"] == PALETTE[2] and face["CAFD"] == PALETTE[5] and depth["DisDepth"] == PALETTE[6]
    # a family's second row is a lighter shade of the family colour, never another family's colour
    assert primer["Hinton KD + bias fix"] != PALETTE[0] and min(primer["Hinton KD + bias fix"]) > min(PALETTE[0])
    assert ofa["OFA all stages"] not in PALETTE and primer["labels only + bias fix"] != BASELINE_COLOUR
    # rows of no family never borrow a colour of the families shared by several notebooks
    assert depth["+ LGConv"] == PALETTE[9] and {depth["+ LGConv"], depth["+ ghost-decoder KD"]}.isdisjoint(
        {PALETTE[0], PALETTE[1], BASELINE_COLOUR})
    assert len(set(depth.values())) == len(depth) and len(set(face.values())) == len(face)
    assert method_family("windows, no shift") == "SW-TaT" and method_family("no KD") == "baseline"
    assert method_family("+ ghost-decoder KD") is None and method_family("KD") == "logit KD"
    assert len({index for _, index, _ in METHOD_FAMILIES}) == len(METHOD_FAMILIES)
