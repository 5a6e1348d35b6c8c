"""scikit-learn's bundled handwritten digits (real data that ships with scikit-learn; never downloaded).

The 1797 grey 8x8 images (values 0..16) are scaled to ``[0, 1]``, upsampled bilinearly to ``img_size``
and replicated to ``channels``, then split per class into train and test sets, deterministically from
``seed``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_choice, check_int, is_number
from .tensors import ImageSet

CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
"""Class names ``"0"`` .. ``"9"``; ``y == k`` is the digit ``k``."""

_MAX_VALUE = 16.0
"""The digits' pixel values run from 0 to 16."""


def load_digits(img_size: int = 32, seed: int = 0, test_fraction: float = 0.25,
                channels: int = 3) -> tuple[ImageSet, ImageSet]:
    """(train, test) :class:`~kdlab.data.tensors.ImageSet` of scikit-learn's handwritten digits.

    Args:
        img_size: output side length in pixels (an int >= 8; 8 keeps the original resolution).
        seed: picks the split and the order of the samples; the same seed gives the same sets.
        test_fraction: the share of each class that goes to the test set, in ``(0, 1)`` (rounded per
            class, at least one image of each class on each side).
        channels: 1 (grey) or 3 (the grey image replicated, for RGB models).

    Returns:
        ``(train, test)`` named ``"digits-train"`` and ``"digits-test"``, classes ``"0"`` .. ``"9"``,
        both shuffled (so ``subset(slice(0, n))`` is a random, roughly balanced sample).
    """
    check_int("img_size", img_size, low=8)
    check_int("seed", seed, low=0)
    if not (is_number(test_fraction) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    check_choice("channels", check_int("channels", channels), (1, 3))
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / _MAX_VALUE
    if img_size != images.shape[-1]:
        images = F.interpolate(images, size=(img_size, img_size), mode="bilinear", align_corners=False)
    x = images.clamp_(0, 1).expand(-1, channels, -1, -1).contiguous()
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    train_idx, test_idx = stratified_split(y, test_fraction, seed)
    return (ImageSet(x=x[train_idx], y=y[train_idx], classes=CLASSES, name="digits-train"),
            ImageSet(x=x[test_idx], y=y[test_idx], classes=CLASSES, name="digits-test"))


def stratified_split(y: Tensor, test_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices ``(train, test)`` that put ``round(test_fraction * n_k)`` of each class ``k`` (clipped to
    ``[1, n_k - 1]`` where the class has two or more samples) in the test set; both shuffled from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for k in torch.unique(y).tolist():
        members = torch.nonzero(y == k).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        n_test = min(max(round(test_fraction * len(members)), 1), len(members) - 1) if len(members) > 1 else 0
        test.append(members[:n_test])
        train.append(members[n_test:])
    train_idx, test_idx = torch.cat(train), torch.cat(test)
    return (train_idx[torch.randperm(len(train_idx), generator=g)],
            test_idx[torch.randperm(len(test_idx), generator=g)])


__all__ = ["CLASSES", "load_digits", "stratified_split"]
