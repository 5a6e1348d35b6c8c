"""Depth metrics: hand-computed values, the paper's toy cases, per-image vs pooled reduction, masks,
the evaluation clamp, streaming, bad inputs."""
import math

import pytest
import torch

from kdlab.metrics.depth import DEPTH_METRICS, HIGHER_IS_BETTER, DepthMetricAccumulator, depth_metrics


def _by_hand(pairs):
    """Every metric for a list of (gt, pred) pairs, in plain Python (one image, all pixels valid)."""
    n = len(pairs)
    e = [math.log(p) - math.log(y) for y, p in pairs]
    ratio = [max(p / y, y / p) for y, p in pairs]
    return {
        "abs_rel": sum(abs(y - p) / y for y, p in pairs) / n,
        "sq_rel": sum((y - p) ** 2 / y for y, p in pairs) / n,
        "rmse": math.sqrt(sum((y - p) ** 2 for y, p in pairs) / n),
        "rmse_log": math.sqrt(sum(v * v for v in e) / n),
        "log10": sum(abs(math.log10(p) - math.log10(y)) for y, p in pairs) / n,
        "silog": 100 * math.sqrt(sum(v * v for v in e) / n - (sum(e) / n) ** 2),
        "d1": sum(r < 1.25 for r in ratio) / n,
        "d2": sum(r < 1.25**2 for r in ratio) / n,
        "d3": sum(r < 1.25**3 for r in ratio) / n,
    }


def _assert_close(got, want, tol=1e-9):
    assert set(got) == set(DEPTH_METRICS)
    for k in DEPTH_METRICS:
        assert got[k] == pytest.approx(want[k], rel=tol, abs=tol), k


GT = [[1.0, 2.0], [4.0, 8.0]]
PRED = [[1.5, 2.0], [3.0, 5.0]]


def test_hand_computed_example():
    got = depth_metrics(torch.tensor([PRED]), torch.tensor([GT]))
    want = _by_hand([(1.0, 1.5), (2.0, 2.0), (4.0, 3.0), (8.0, 5.0)])
    _assert_close(got, want)
    # a few of those worked out on paper
    assert got["abs_rel"] == pytest.approx((0.5 + 0 + 0.25 + 0.375) / 4)
    assert got["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 1 + 9) / 4))
    # ratios 1.5, 1, 4/3, 1.6 against 1.25, 1.5625, 1.953125
    assert got["d1"] == pytest.approx(0.25) and got["d2"] == pytest.approx(0.75) and got["d3"] == 1.0
    assert list(got) == list(DEPTH_METRICS) and HIGHER_IS_BETTER == {"d1", "d2", "d3"}


def test_paper_toy_cases():
    y = 0.5 + 4 * torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    perfect = depth_metrics(y, y)
    for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog"):
        assert perfect[k] == pytest.approx(0.0, abs=1e-7), k
    assert perfect["d1"] == perfect["d2"] == perfect["d3"] == 1.0
    scaled = depth_metrics(1.3 * y, y, max_depth=80.0)
    assert scaled["abs_rel"] == pytest.approx(0.3)
    assert scaled["d1"] == 0.0 and scaled["d2"] == 1.0
    assert scaled["log10"] == pytest.approx(0.1139, abs=5e-5)
    assert scaled["silog"] == pytest.approx(0.0, abs=1e-4)  # a global scale is invisible to SILog


def test_silog_metric_is_scale_invariant_unlike_the_others():
    g = torch.Generator().manual_seed(1)
    y = 1 + 3 * torch.rand(2, 6, 6, generator=g)
    pred = y * torch.exp(0.2 * torch.randn(2, 6, 6, generator=g))
    a = depth_metrics(pred, y, max_depth=80.0)
    b = depth_metrics(2.5 * pred, y, max_depth=80.0)
    assert a["silog"] > 5
    assert b["silog"] == pytest.approx(a["silog"], rel=1e-6)
    assert b["abs_rel"] > a["abs_rel"] + 0.5 and b["rmse_log"] > a["rmse_log"]


def test_per_image_average_vs_pooled_pixels():
    # image 0: the 4 pixels above; image 1: only 1 valid pixel (gt 0 = missing elsewhere)
    pred = torch.tensor([PRED, [[3.0, 9.9], [9.9, 9.9]]])
    gt = torch.tensor([GT, [[2.0, 0.0], [0.0, 0.0]]])
    img0 = _by_hand([(1.0, 1.5), (2.0, 2.0), (4.0, 3.0), (8.0, 5.0)])
    img1 = _by_hand([(2.0, 3.0)])
    per_image = depth_metrics(pred, gt)
    _assert_close(per_image, {k: (img0[k] + img1[k]) / 2 for k in DEPTH_METRICS})
    pooled = depth_metrics(pred, gt, reduction="pixel")
    _assert_close(pooled, _by_hand([(1.0, 1.5), (2.0, 2.0), (4.0, 3.0), (8.0, 5.0), (2.0, 3.0)]))
    assert per_image["rmse"] != pytest.approx(pooled["rmse"])


def test_mask_and_range_select_pixels():
    pred = torch.tensor([PRED])
    gt = torch.tensor([GT])
    mask = torch.tensor([[[True, False], [True, True]]])
    want = _by_hand([(1.0, 1.5), (4.0, 3.0), (8.0, 5.0)])
    _assert_close(depth_metrics(pred, gt, mask), want)
    # whatever the prediction is at a masked pixel, nothing changes
    wild = pred.clone()
    wild[0, 0, 1] = 1e6
    _assert_close(depth_metrics(wild, gt, mask), want)
    # (N, 1, H, W) inputs and masks are accepted
    _assert_close(depth_metrics(pred[:, None], gt[:, None], mask[:, None]), want)
    # ground truth outside (min_depth, max_depth), bounds excluded, does not count
    _assert_close(depth_metrics(pred, gt, min_depth=1.0, max_depth=8.0), _by_hand([(2.0, 2.0), (4.0, 3.0)]))
    _assert_close(depth_metrics(pred, torch.tensor([[[0.0, 2.0], [4.0, float("nan")]]])),
                  _by_hand([(2.0, 2.0), (4.0, 3.0)]))


def test_predictions_are_clamped_to_the_range():
    gt = torch.tensor([GT])
    pred = torch.tensor([[[-1.0, float("nan")], [float("inf"), 50.0]]])
    got = depth_metrics(pred, gt, min_depth=0.5, max_depth=10.0)
    # -1 and NaN become 0.5, +inf and 50 become 10
    _assert_close(got, _by_hand([(1.0, 0.5), (2.0, 0.5), (4.0, 10.0), (8.0, 10.0)]))
    assert all(math.isfinite(v) for v in got.values())


def test_accumulator_streams_like_one_call():
    g = torch.Generator().manual_seed(2)
    gt = 0.5 + 9 * torch.rand(7, 5, 5, generator=g)
    gt[gt > 9] = 0.0  # some missing pixels
    gt[3] = 0.0  # an image without any valid pixel: skipped, not averaged in as 0 or NaN
    pred = gt * (1 + 0.3 * torch.randn(7, 5, 5, generator=g)).abs() + 0.1
    mask = torch.rand(7, 5, 5, generator=g) > 0.2
    for reduction in ("image", "pixel"):
        acc = DepthMetricAccumulator(min_depth=0.5, max_depth=10.0, reduction=reduction)
        for start in (0, 2, 5):
            stop = {0: 2, 2: 5, 5: 7}[start]
            acc.update(pred[start:stop], gt[start:stop], mask[start:stop])
        whole = depth_metrics(pred, gt, mask, min_depth=0.5, max_depth=10.0, reduction=reduction)
        streamed = acc.compute()
        _assert_close(streamed, whole, tol=1e-9)
        assert acc.images == 6 and acc.pixels == int((mask & (gt > 0.5) & (gt < 10)).sum())
        acc.reset()
        with pytest.raises(ValueError, match="no valid pixels"):
            acc.compute()
    keep = torch.tensor([i for i in range(7) if i != 3])
    _assert_close(depth_metrics(pred, gt, mask, min_depth=0.5),
                  depth_metrics(pred[keep], gt[keep], mask[keep], min_depth=0.5), tol=1e-9)


def test_metrics_are_plain_floats_and_leave_inputs_alone():
    pred = torch.tensor([PRED], requires_grad=True)
    gt = torch.tensor([GT])
    before = pred.detach().clone()
    got = depth_metrics(pred * 20, gt, min_depth=0.5, max_depth=10.0)
    assert all(type(v) is float for v in got.values())
    assert torch.equal(pred.detach(), before)


@pytest.mark.parametrize("args, kwargs, match", [
    ((torch.ones(2, 4, 4), torch.ones(2, 4, 5)), {}, "same shape"),
    ((torch.ones(4, 4), torch.ones(4, 4)), {}, r"\(N, H, W\)"),
    ((torch.ones(2, 2, 4, 4), torch.ones(2, 2, 4, 4)), {}, r"\(N, H, W\)"),
    ((torch.ones(2, 4, 4, dtype=torch.int64), torch.ones(2, 4, 4, dtype=torch.int64)), {}, "floating"),
    ((torch.ones(2, 4, 4), torch.ones(2, 4, 4), torch.ones(2, 4, 4)), {}, "mask must be a bool"),
    ((torch.ones(2, 4, 4), torch.ones(2, 4, 4), torch.ones(2, 4, 3, dtype=torch.bool)), {}, "mask must be a bool"),
    ((torch.ones(2, 4, 4), torch.ones(2, 4, 4)), dict(min_depth=0.0), "min_depth"),
    ((torch.ones(2, 4, 4), torch.ones(2, 4, 4)), dict(min_depth=5.0, max_depth=1.0), "max_depth must be a finite number > 5, got 1.0"),
    ((torch.ones(2, 4, 4), torch.ones(2, 4, 4)), dict(reduction="mean"), "reduction"),
    ((torch.ones(2, 4, 4), torch.zeros(2, 4, 4)), {}, "no valid pixels"),
    (("pred", torch.ones(2, 4, 4)), {}, "must be a tensor"),
])
def test_bad_inputs_raise(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        depth_metrics(*args, **kwargs)


def test_scenes_metrics_use_the_scenes_range_and_fit_training():
    import kdlab.metrics as metrics
    from kdlab.metrics.depth import SCENES_RANGE, scenes_depth_metrics

    assert metrics.depth_metrics is depth_metrics and metrics.scenes_depth_metrics is scenes_depth_metrics
    target = torch.tensor([[[0.5, 2.0], [4.0, 10.0]]])  # the clamped bounds 0.5 and 10 are not scored
    pred = torch.tensor([[[3.0, 2.6], [4.0, 12.0]]])
    assert SCENES_RANGE == (0.5, 10.0)
    got = scenes_depth_metrics(pred.unsqueeze(1), target)
    assert got == depth_metrics(pred, target, min_depth=0.5, max_depth=10.0)
    assert got["abs_rel"] == pytest.approx((0.6 / 2.0 + 0.0) / 2)
