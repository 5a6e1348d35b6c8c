"""kdlab.viz: every plot is a titled, labelled Figure; bad inputs fail with a clear message."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from kdlab import viz  # noqa: E402

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
    assert ax.get_title() == "val/acc per epoch" and ax.get_xlabel() == "epoch" and ax.get_ylabel() == "val/acc"
    assert legend_texts(ax) == ["kd (mean of 2 seeds)", "baseline"]
    mean, single = ax.get_lines()
    np.testing.assert_allclose(mean.get_ydata(), [0.35, 0.50, 0.60])
    np.testing.assert_allclose(single.get_ydata(), [0.30, 0.45, 0.55])
    (band,) = ax.collections
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert (low, high) == pytest.approx((0.30, 0.65))


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


def test_format_mean_std():
    assert viz.format_mean_std([0.81, 0.83]) == "82.0 ± 1.4%"  # sample std (ddof = 1)
    assert viz.format_mean_std([0.5]) == "50.0%"
    assert viz.format_mean_std(torch.tensor([1.0, 2.0, 3.0]), pct=False, digits=2) == "2.00 ± 1.00"
    with pytest.raises(ValueError, match="at least one"):
        viz.format_mean_std([])


def test_results_table_text_and_html():
    rows = [
        {"method": "KD", "acc": viz.format_mean_std([0.81, 0.83]), "loss": 0.123456},
        {"method": "<b>OFA</b>", "acc": "85.0%"},
    ]
    table = viz.results_table(rows, ["method", "acc", "loss"], title="CIFAR")
    text = str(table).splitlines()
    assert text[2:5] == ["| method | acc | loss |", "|---|---|---|", "| KD | 82.0 ± 1.4% | 0.1235 |"]
    assert text[5] == "| <b>OFA</b> | 85.0% | – |"
    page = table._repr_html_()
    assert page.startswith("<table><caption>CIFAR</caption>")
    assert "&lt;b&gt;OFA&lt;/b&gt;" in page and "<th>loss</th>" in page
    assert str(viz.results_table(rows)).splitlines()[0] == "| method | acc | loss |"  # default columns
    with pytest.raises(ValueError, match="column"):
        viz.results_table([])
