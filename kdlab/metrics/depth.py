r"""Monocular depth evaluation metrics, as computed by the BTS / AdaBins / NeWCRFs evaluation code.

For an image with ground truth :math:`y` and prediction :math:`\hat y` (metres), first **clamp** the
prediction and pick the **valid** pixels :math:`V`:

.. math::
    \hat y\leftarrow\mathrm{clip}(\hat y,\ d_{min},\ d_{max})\quad(\text{NaN}\to d_{min},\ +\infty\to d_{max}),
    \qquad V=\{p:\ d_{min}<y_p<d_{max}\}\cap\text{mask},

then, with means over :math:`p\in V`, :math:`e_p=\log\hat y_p-\log y_p` and
:math:`\theta_p=\max(\hat y_p/y_p,\ y_p/\hat y_p)`:

.. math::
    \mathrm{AbsRel}=\mathrm{mean}\frac{|y-\hat y|}{y},\quad
    \mathrm{SqRel}=\mathrm{mean}\frac{(y-\hat y)^2}{y},\quad
    \mathrm{RMSE}=\sqrt{\mathrm{mean}(y-\hat y)^2},\quad
    \mathrm{RMSE}_{\log}=\sqrt{\mathrm{mean}\,e^2},

.. math::
    \log_{10}=\mathrm{mean}\,|\log_{10}\hat y-\log_{10}y|,\qquad
    \delta_k=\mathrm{mean}\,[\theta<1.25^k]\ (k=1,2,3),\qquad
    \mathrm{SILog}=100\sqrt{\mathrm{mean}\,e^2-(\mathrm{mean}\,e)^2}.

The **SILog metric** above (:math:`\lambda=1`, :math:`\times100`) is fully scale-invariant; it is *not*
the SILog **training loss** (:math:`10\sqrt{\mathrm{mean}\,d^2-0.85\,(\mathrm{mean}\,d)^2}`), which lives
with the method in ``kdlab.methods.disdepth``.

Reduction: like BTS's ``eval`` (``compute_errors`` per test image, then the mean over images),
``reduction="image"`` (default) computes every metric per image and averages over the images that
have at least one valid pixel (so the reported RMSE is the mean of per-image RMSEs). ``reduction="pixel"``
pools all valid pixels of the set instead (one big image; what AdaBins' ``RunningAverageDict`` gives
only for per-pixel means). :class:`DepthMetricAccumulator` streams either over batches, with the
same result as one call on the whole set.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import check_choice, check_number, check_same_shape, check_tensor

DEPTH_METRICS: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "d1", "d2", "d3")
"""The keys of :func:`depth_metrics`' result, in table order (lower is better except for ``d1..d3``)."""

HIGHER_IS_BETTER: frozenset[str] = frozenset({"d1", "d2", "d3"})
"""The metrics where larger values are better."""

REDUCTIONS = ("image", "pixel")
"""``"image"``: per-image metrics averaged over images (BTS); ``"pixel"``: all valid pixels pooled."""

# the per-pixel sums every metric is built from, in this order
_SUMS = ("n", "abs_rel", "sq_rel", "sq", "log_sq", "log10", "log", "d1", "d2", "d3")


def _as_maps(name: str, t: object) -> Tensor:
    """(N, H, W) or (N, 1, H, W) -> (N, H, W); anything else raises."""
    check_tensor(name, t)
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W) or (N, 1, H, W) depth maps, got {tuple(t.shape)}")
    return t


def _per_image_sums(pred: Tensor, target: Tensor, mask: Tensor | None, min_depth: float,
                    max_depth: float) -> Tensor:
    """(N, len(_SUMS)) float64: for every image the number of valid pixels and the sums over them."""
    pred, target = _as_maps("pred", pred), _as_maps("target", target)
    check_same_shape("pred", pred, "target", target)
    if not pred.is_floating_point() or not target.is_floating_point():
        raise ValueError(f"pred and target must be floating tensors, got {pred.dtype} and {target.dtype}")
    if pred.device != target.device:
        raise ValueError(f"pred is on {pred.device} but target is on {target.device}")
    y = target.detach().double()
    p = pred.detach().to(y.device, torch.float64)
    p = torch.nan_to_num(p, nan=min_depth, posinf=max_depth, neginf=min_depth).clamp(min_depth, max_depth)
    valid = (y > min_depth) & (y < max_depth)  # NaN ground truth fails both tests
    if mask is not None:
        mask = _as_maps("mask", mask)
        if mask.dtype != torch.bool or mask.shape != y.shape:
            raise ValueError(f"mask must be a bool tensor of shape {tuple(y.shape)} (or with a channel dim of 1), "
                             f"got {tuple(mask.shape)} {mask.dtype}")
        valid = valid & mask.to(valid.device)
    y = torch.where(valid, y, torch.ones((), dtype=y.dtype, device=y.device))  # keep logs finite off V
    p = torch.where(valid, p, y)
    diff = p - y
    log = p.log() - y.log()
    ratio = torch.maximum(p / y, y / p)
    terms = [
        valid.double(), diff.abs() / y, diff * diff / y, diff * diff, log * log, (log / math.log(10)).abs(), log,
        (ratio < 1.25).double(), (ratio < 1.25**2).double(), (ratio < 1.25**3).double(),
    ]
    v = valid.double()
    return torch.stack([(t * v).flatten(1).sum(1) for t in terms], dim=1)


def _metrics_from_sums(s: Tensor) -> Tensor:
    """(..., len(_SUMS)) sums -> (..., len(DEPTH_METRICS)) metrics (rows with n = 0 give NaN)."""
    n = s[..., 0]
    mean = {name: s[..., i] / n for i, name in enumerate(_SUMS) if i}
    silog = 100 * (mean["log_sq"] - mean["log"] ** 2).clamp(min=0).sqrt()
    values = {
        "abs_rel": mean["abs_rel"], "sq_rel": mean["sq_rel"], "rmse": mean["sq"].sqrt(),
        "rmse_log": mean["log_sq"].sqrt(), "log10": mean["log10"], "silog": silog,
        "d1": mean["d1"], "d2": mean["d2"], "d3": mean["d3"],
    }
    return torch.stack([values[k] for k in DEPTH_METRICS], dim=-1)


class DepthMetricAccumulator:
    """Streams :func:`depth_metrics` over batches: ``update(pred, target, mask)`` per batch, then
    ``compute()``. The result equals one ``depth_metrics`` call on the concatenated batches.

    Args:
        min_depth, max_depth: the evaluation range (metres): predictions are clamped into it, ground
            truth outside ``(min_depth, max_depth)`` is ignored. NYU: ``1e-3, 10``; KITTI: ``1e-3, 80``;
            kdlab's scenes: ``0.5, 10``.
        reduction: ``"image"`` (BTS: mean of per-image metrics) or ``"pixel"`` (all valid pixels pooled).
    """

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 10.0, reduction: str = "image") -> None:
        self.min_depth = check_number("min_depth", min_depth, low=0.0, strict=True)
        self.max_depth = check_number("max_depth", max_depth, low=self.min_depth, strict=True)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self._total = torch.zeros(len(DEPTH_METRICS) if self.reduction == "image" else len(_SUMS), dtype=torch.float64)
        self.images = 0  # images with at least one valid pixel
        self.pixels = 0  # valid pixels

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        """Add a batch: ``pred`` and ``target`` (N, H, W) or (N, 1, H, W) metres, optional bool ``mask``."""
        sums = _per_image_sums(pred, target, mask, self.min_depth, self.max_depth).cpu()
        has = sums[:, 0] > 0
        self.images += int(has.sum())
        self.pixels += int(sums[:, 0].sum())
        if self.reduction == "image":
            self._total += _metrics_from_sums(sums[has]).sum(dim=0)
        else:
            self._total += sums.sum(dim=0)

    def compute(self) -> dict[str, float]:
        """The metrics so far, keyed as :data:`DEPTH_METRICS`.

        Raises:
            ValueError: no valid pixel has been seen (every ground-truth value outside the range or masked).
        """
        if self.pixels == 0:
            raise ValueError(f"no valid pixels: every ground-truth depth is masked or outside "
                             f"({self.min_depth:g}, {self.max_depth:g}) m")
        values = self._total / self.images if self.reduction == "image" else _metrics_from_sums(self._total)
        return dict(zip(DEPTH_METRICS, (float(v) for v in values)))


def depth_metrics(pred: Tensor, target: Tensor, mask: Tensor | None = None, *, min_depth: float = 1e-3,
                  max_depth: float = 10.0, reduction: str = "image") -> dict[str, float]:
    """AbsRel, SqRel, RMSE, RMSE log, log10, SILog (x100) and delta < 1.25, 1.25^2, 1.25^3 of depth maps.

    Args:
        pred: predicted depth in metres, (N, H, W) or (N, 1, H, W); clamped to ``[min_depth, max_depth]``
            (NaN to ``min_depth``, +inf to ``max_depth``) before scoring, as BTS does.
        target: ground-truth depth, same shape; only pixels with ``min_depth < target < max_depth``
            count (so 0 = "no measurement" is skipped).
        mask: optional bool (N, H, W) or (N, 1, H, W); ``False`` pixels are skipped as well
            (``DepthSet.valid``, an evaluation crop, ...).
        min_depth, max_depth: the evaluation range (NYU: 1e-3 and 10 m, the defaults).
        reduction: ``"image"``: metrics per image, averaged over the images with a valid pixel (BTS);
            ``"pixel"``: all valid pixels of the set pooled.

    Returns:
        a dict of floats keyed as :data:`DEPTH_METRICS` (``abs_rel``, ``sq_rel``, ``rmse``, ``rmse_log``,
        ``log10``, ``silog``, ``d1``, ``d2``, ``d3``); ``d*`` are fractions in [0, 1].

    Raises:
        ValueError: mismatched or non-floating inputs, a bad mask, range or reduction, or no valid pixel.

    It fits ``kdlab.train.evaluate(model, data, metrics=depth_metrics)`` (use ``functools.partial`` to
    set the range).
    """
    acc = DepthMetricAccumulator(min_depth, max_depth, reduction)
    acc.update(pred, target, mask)
    return acc.compute()


SCENES_RANGE: tuple[float, float] = (0.5, 10.0)
"""The evaluation range (metres) of kdlab's procedural scenes (``kdlab.data.scenes.DEPTH_RANGE``)."""


def scenes_depth_metrics(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> dict[str, float]:
    """:func:`depth_metrics` in the scenes' range ``min_depth=0.5, max_depth=10`` (BTS per-image reduction):
    the ``metrics=`` that ``kdlab.train.fit`` / ``evaluate`` use for :class:`~kdlab.data.scenes.DepthSet` data.
    Ground truth clamped onto a bound by the generator sits exactly on it and is not scored."""
    return depth_metrics(pred, target, mask, min_depth=SCENES_RANGE[0], max_depth=SCENES_RANGE[1])


__all__ = ["DEPTH_METRICS", "HIGHER_IS_BETTER", "REDUCTIONS", "SCENES_RANGE", "DepthMetricAccumulator",
           "depth_metrics", "scenes_depth_metrics"]
