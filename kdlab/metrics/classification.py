"""Classification accuracy (top-k) from logits."""
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
