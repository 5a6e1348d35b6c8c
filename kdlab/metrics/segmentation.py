r"""Segmentation is scored from one confusion matrix $M\in\mathbb{N}^{K\times K}$ over every pixel of the set
($M_{ij}$ = pixels of true class $i$ predicted as $j$), as in the VOC / mmseg protocol:

$$\mathrm{IoU}_k=\frac{M_{kk}}{\sum_j M_{kj}+\sum_i M_{ik}-M_{kk}},\qquad
  \mathrm{mIoU}=\frac{1}{|P|}\sum_{k\in P}\mathrm{IoU}_k,\qquad
  \text{pixel acc}=\frac{\mathrm{tr}\,M}{\sum_{ij}M_{ij}},$$

where $P$ holds the classes present in the target or in the prediction (a class absent from both has a
0/0 IoU and is left out; a class only predicted scores 0 and counts). Pixels labelled ``ignore_index``
are not counted anywhere.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_int

SEG_IGNORE_INDEX = -100
"""The target value :func:`segmentation_metrics` skips (``F.cross_entropy``'s default ``ignore_index``)."""


def confusion_matrix(pred_labels: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """(K, K) int64 counts, ``cm[i, j]`` = number of elements of true class ``i`` predicted as ``j``.

    One ``bincount`` over ``K * target + pred`` (no loop), on the inputs' device.

    Args:
        pred_labels: predicted class indices, an integer tensor of any shape (e.g. (N, H, W)).
        target: true class indices, an integer tensor of the same shape.
        num_classes: ``K``; every counted label must lie in ``[0, K)``.
        ignore_index: target value whose elements are skipped (``None``: none is skipped).
    """
    check_int("num_classes", num_classes, low=1)
    for name, t in (("pred_labels", pred_labels), ("target", target)):
        if not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            got = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be an integer tensor of class indices, got {got}")
    if pred_labels.shape != target.shape:
        raise ValueError(f"pred_labels and target must have the same shape, got {tuple(pred_labels.shape)} "
                         f"and {tuple(target.shape)}")
    if pred_labels.device != target.device:
        raise ValueError(f"pred_labels is on {pred_labels.device} but target is on {target.device}")
    pred, target = pred_labels.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, t in (("pred_labels", pred), ("target", target)):
        if t.numel():
            lo, hi = (int(v) for v in torch.aminmax(t))
            if not (0 <= lo and hi < num_classes):
                aside = f" (ignore_index {ignore_index} aside)" if name == "target" and ignore_index is not None else ""
                raise ValueError(f"{name} must hold labels in [0, {num_classes}){aside}, got [{lo}, {hi}]")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_iou(confusion: Tensor) -> Tensor:
    """(K,) float64 IoU of every class from a (K, K) confusion matrix (rows: target, columns: prediction);
    NaN for a class absent from both target and prediction (its IoU is 0/0)."""
    if not isinstance(confusion, Tensor) or confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        got = tuple(confusion.shape) if isinstance(confusion, Tensor) else type(confusion).__name__
        raise ValueError(f"confusion must be a square (K, K) matrix, got {got}")
    confusion = confusion.double()
    tp = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(logits_or_labels: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None) -> float:
    r"""Mean intersection over union, $\frac{1}{|P|}\sum_{k\in P}\mathrm{IoU}_k$, over one confusion matrix
    of all elements (dataset-level, not a mean of per-image scores).

    Classes absent from both the target and the prediction are excluded from the mean (their IoU is 0/0);
    a class that is predicted but never true scores 0 and counts.

    Args:
        logits_or_labels: (N, K, *S) floating scores (the argmax over dim 1 is the prediction) or integer
            labels of ``target``'s shape (N, *S).
        target: (N, *S) integer class indices, e.g. (N, H, W) masks.
        num_classes: ``K``.
        ignore_index: target value to skip (``None``: none).

    Raises:
        ValueError: on bad shapes or labels, or when no element is left to score.
    """
    labels = _as_labels(logits_or_labels, target, num_classes)
    return _mean_of_present(per_class_iou(confusion_matrix(labels, target, num_classes, ignore_index)))


def segmentation_metrics(logits: Tensor, targets: Tensor, ignore_index: int = SEG_IGNORE_INDEX) -> dict[str, float]:
    """``{"miou": mean IoU, "pixel_acc": fraction of correct pixels}`` of (N, K, H, W) logits against (N, H, W)
    masks (pixels equal to ``ignore_index`` skipped); both in [0, 1]. Pass it as ``fit(..., metrics=...)``
    or ``evaluate(..., metrics=...)``; ``K`` is read from the logits."""
    if not isinstance(logits, Tensor) or logits.ndim != 4 or not logits.is_floating_point():
        got = f"{tuple(logits.shape)} {logits.dtype}" if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"expected floating (N, K, H, W) logits, got {got}")
    num_classes = logits.shape[1]
    confusion = confusion_matrix(_as_labels(logits, targets, num_classes), targets, num_classes, ignore_index)
    miou = _mean_of_present(per_class_iou(confusion))  # raises when no pixel is left, so the sum below is > 0
    return {"miou": miou, "pixel_acc": (confusion.diagonal().sum() / confusion.sum()).item()}


def _mean_of_present(iou: Tensor) -> float:
    """Mean of the non-NaN IoUs; a ``ValueError`` when every class is absent (nothing was scored)."""
    present = ~iou.isnan()
    if not present.any():
        raise ValueError("nothing to score: the target is empty or every element is ignore_index")
    return iou[present].mean().item()


def _as_labels(scores: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Predicted labels of ``target``'s shape: the argmax over dim 1 of (N, K, *S) scores, or integer labels
    as given."""
    check_int("num_classes", num_classes, low=1)
    if not isinstance(scores, Tensor) or not isinstance(target, Tensor):
        raise ValueError("predictions and target must be tensors")
    if scores.is_floating_point():
        if target.ndim == 0:
            raise ValueError("target must have a sample dimension, got a 0-d tensor")
        expected = (target.shape[0], num_classes, *target.shape[1:])
        if scores.shape != expected:
            raise ValueError(f"scores must have shape (N, K, *S) = {expected} for {num_classes} classes and target "
                             f"{tuple(target.shape)}, got {tuple(scores.shape)}")
        return scores.argmax(1)
    return scores  # integer labels: confusion_matrix checks the dtype, shape and range
