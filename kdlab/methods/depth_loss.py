r"""The depth task's training loss, BTS / NeWCRFs's SILog [official code of both], and the target / validity mask it
reads; used by DisDepth (Zheng et al., arXiv:2404.16386) and the labels-only depth baseline.

With $d = \log\hat y - \log y$ over the valid pixels of the batch,

$$\mathcal{L}_{SILog} = 10\sqrt{\mathrm{mean}(d^2) - \lambda\,\mathrm{mean}(d)^2},\qquad \lambda = 0.85,$$

i.e. $10\sqrt{\mathrm{Var}_{biased}(d) + 0.15\,\mathrm{mean}(d)^2}$: *not* scale-invariant (the evaluation
metric, $\lambda=1$ and $\times100$, is; see :mod:`kdlab.metrics`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_fraction

PRED_EPS = 1e-6  # predictions are clamped to >= this before the log (our heads never go below d_min > 0)
RADICAND_EPS = 1e-12  # the sqrt's argument is clamped to >= this: a perfect prediction gives 1e-5, zero gradient


def silog_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None, variance_focus: float = 0.85) -> Tensor:
    r"""BTS's SILog training loss $10\sqrt{\mathrm{mean}(d^2) - \lambda\,\mathrm{mean}(d)^2}$, $d = \log\hat y -
    \log y$ over the valid pixels of the whole batch, $\lambda$ = ``variance_focus``.

    ``pred`` and ``target`` are depth maps of one shape (e.g. (B, 1, H, W)); ``mask`` a boolean tensor of
    that shape (``None``: finite targets > 0). Computed in float32. [our choice, for safety; BTS has no
    epsilon] ``pred`` is clamped to $\ge$ ``PRED_EPS`` = 1e-6 before the log and the radicand to $\ge$
    ``RADICAND_EPS`` = 1e-12, so a perfect prediction gives $10^{-5}$ with a zero (not NaN) gradient; both are
    inactive for any realistic prediction, where the value is exactly BTS's.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    check_fraction("variance_focus", variance_focus)
    if mask is None:
        mask = torch.isfinite(target) & (target > 0)
    elif mask.dtype != torch.bool or mask.shape != target.shape:
        raise ValueError(f"mask must be a boolean tensor of the target's shape {tuple(target.shape)}, "
                         f"got {mask.dtype} of shape {tuple(mask.shape)}")
    if not bool(mask.any()):
        raise ValueError("silog_loss: no valid pixel (the mask is empty); check the depth range / validity mask")
    pred, target = pred[mask].float(), target[mask].float()
    if not bool((target > 0).all()):
        raise ValueError("silog_loss: the mask selects targets <= 0, whose log is undefined")
    d = torch.log(pred.clamp_min(PRED_EPS)) - torch.log(target)
    radicand = (d * d).mean() - variance_focus * d.mean() ** 2
    return 10.0 * torch.sqrt(radicand.clamp_min(RADICAND_EPS))



def depth_target(y: Tensor, min_valid_depth: float = 1e-3) -> tuple[Tensor, Tensor]:
    """``(target, mask)``: ``y`` (B, H, W) or (B, 1, H, W) as (B, 1, H, W), and its validity mask (finite and
    > ``min_valid_depth``)."""
    if y.ndim == 3:
        y = y.unsqueeze(1)
    if y.ndim != 4 or y.shape[1] != 1:
        raise ValueError(f"depth targets must be (B, H, W) or (B, 1, H, W), got shape {tuple(y.shape)}")
    return y, torch.isfinite(y) & (y > min_valid_depth)

