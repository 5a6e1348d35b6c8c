"""Classification accuracy (top-k, and on one class) from logits."""
from __future__ import annotations

from torch import Tensor

from ..checks import check_int


def accuracy(logits: Tensor, targets: Tensor, topk: int = 1) -> float:
    """Fraction of samples whose true class is among the ``topk`` highest logits."""
    if logits.ndim != 2 or targets.ndim != 1 or len(logits) != len(targets):
        raise ValueError(f"expected (N, K) logits and (N,) targets, got {tuple(logits.shape)} and {tuple(targets.shape)}")
    check_int("topk", topk, low=1, high=logits.shape[1])
    top = logits.topk(topk, dim=1).indices
    return (top == targets[:, None]).any(dim=1).float().mean().item()


def class_accuracy(logits: Tensor, targets: Tensor, k: int) -> float:
    """Fraction of the images of class ``k`` that are predicted ``k`` (the recall of ``k``; ``nan`` when there is
    none): the primer's omitted-class score (``notebooks/00_primer.ipynb`` §6)."""
    if logits.ndim != 2 or targets.ndim != 1 or len(logits) != len(targets):
        raise ValueError(f"expected (N, K) logits and (N,) targets, got {tuple(logits.shape)} and {tuple(targets.shape)}")
    check_int("k", k, low=0, high=logits.shape[1] - 1)
    members = targets == k
    if not bool(members.any()):
        return float("nan")
    return (logits[members].argmax(dim=1) == k).float().mean().item()


def agreement(logits: Tensor, other_logits: Tensor) -> float:
    """Fraction of images on which two models predict the same class (top-1), whether right or wrong: how much of
    the teacher's behaviour a student took over (the primer's §8, after Abnar et al. 2020)."""
    if logits.ndim != 2 or logits.shape != other_logits.shape:
        raise ValueError(f"expected two (N, K) logits of one shape, got {tuple(logits.shape)} and "
                         f"{tuple(other_logits.shape)}")
    return (logits.argmax(dim=1) == other_logits.argmax(dim=1)).float().mean().item()
