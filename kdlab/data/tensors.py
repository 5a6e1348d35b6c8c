"""``ImageSet``: a whole image dataset held as tensors (images, labels, optional per-pixel masks).

Every kdlab dataset (shapes, digits, CIFAR folders) is an :class:`ImageSet`. Images stay in ``[0, 1]``;
normalisation is the models' job. A set's targets ``y`` are one class per image (classification) or one
class per pixel (segmentation): :meth:`ImageSet.segmentation` turns a set with masks into the latter, so
``fit`` / ``evaluate`` train and score segmentation models on it unchanged. The set is immutable:
:meth:`ImageSet.subset`, :meth:`ImageSet.split` and :meth:`ImageSet.to` return new sets (sharing storage
where torch indexing allows).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Index = slice | Tensor | Sequence[int]
"""What :meth:`ImageSet.subset` accepts: a slice, an int tensor or list of indices, or a bool tensor."""


@dataclass(frozen=True, eq=False, repr=False)
class ImageSet:
    """A labelled image dataset as tensors.

    Attributes:
        x: images, ``(N, C, H, W)`` floating point (float32 by convention) with values in ``[0, 1]``.
        y: class indices in ``[0, len(classes))``, int64: ``(N,)`` (one per image, classification) or
            ``(N, H, W)`` (one per pixel, segmentation; see :meth:`segmentation` and :attr:`task`).
        classes: class names; ``y == k`` means ``classes[k]`` (any sequence of str is stored as a tuple).
        mask: optional per-pixel labels, ``(N, H, W)`` int64, on the same device as ``x``. kdlab's
            generators store ``0`` on background and ``1 + y`` on the object (see :meth:`segmentation`).
        name: a short label shown in ``repr`` and plots (``"digits-train"``, ...).

    Raises:
        ValueError: when a shape, dtype, device, label or value range is off; the message names the field.
    """

    x: Tensor
    y: Tensor
    classes: tuple[str, ...]
    mask: Tensor | None = None
    name: str = ""

    def __post_init__(self) -> None:
        """Validate every field (and store ``classes`` as a tuple)."""
        if isinstance(self.classes, str) or not all(isinstance(c, str) for c in self.classes) or not self.classes:
            raise ValueError(f"classes must be a non-empty sequence of str, got {self.classes!r}")
        object.__setattr__(self, "classes", tuple(self.classes))
        _check_images(self.x)
        _check_labels(self.y, self.x, len(self.classes))
        if self.mask is not None:
            _check_mask(self.mask, self.x)

    def __len__(self) -> int:
        """The number of images ``N``."""
        return len(self.x)

    def __repr__(self) -> str:
        """A one-line summary: name, size, image shape, number of classes (marked per pixel for a
        segmentation set), whether masks are present."""
        _, c, h, w = self.x.shape
        mask = "yes" if self.mask is not None else "no"
        per_pixel = " per pixel" if self.task == "segmentation" else ""
        return (f"ImageSet({self.name!r}, n={len(self)}, image={c}x{h}x{w}, classes={self.num_classes}{per_pixel}, "
                f"mask={mask}, device={self.x.device})")

    @property
    def num_classes(self) -> int:
        """``len(classes)``."""
        return len(self.classes)

    @property
    def task(self) -> str:
        """``"segmentation"`` when ``y`` holds one class per pixel ``(N, H, W)``, else ``"classification"``."""
        return "segmentation" if self.y.ndim == 3 else "classification"

    def segmentation(self, background: str = "background") -> ImageSet:
        """The same images with the masks as targets: ``y = mask`` (N, H, W) and
        ``classes = (background, *classes)``, so that ``classes[y[n, h, w]]`` names every pixel.

        Assumes kdlab's mask convention (``0`` background, ``1 + k`` for ``classes[k]``; shapes has 11
        pixel classes). ``mask`` is kept (the same tensor), the name too; storage is shared. A set that
        already has per-pixel targets is returned as it is.

        Raises:
            ValueError: if the set has no masks, or a mask value is outside ``[0, 1 + len(classes))``.
        """
        if self.task == "segmentation":
            return self
        if self.mask is None:
            raise ValueError(f"{self.name or 'this set'} has no per-pixel masks to use as segmentation targets")
        if not isinstance(background, str):
            raise ValueError(f"background must be a class name (str), got {background!r}")
        return ImageSet(x=self.x, y=self.mask, classes=(background, *self.classes), mask=self.mask, name=self.name)

    def subset(self, index: Index) -> ImageSet:
        """The images picked by ``index``: a slice, int indices (tensor or list, repeats allowed) or a
        bool tensor of length ``N``. Classes and name are kept."""
        if not isinstance(index, slice):
            index = _as_index(index, len(self), self.x.device)
        mask = None if self.mask is None else self.mask[index]
        return ImageSet(x=self.x[index], y=self.y[index], classes=self.classes, mask=mask, name=self.name)

    def split(self, size: float | int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """Shuffle deterministically from ``seed`` and cut into ``(first, rest)``.

        Args:
            size: the first part's size: a fraction in ``(0, 1)`` of ``N`` (rounded) or a count in ``[0, N]``.
            seed: the same seed gives the same split.
        """
        first, rest = split_indices(len(self), size, seed)
        return self.subset(first), self.subset(rest)

    def to(self, device: str | torch.device) -> ImageSet:
        """The same set with every tensor on ``device``."""
        mask = None if self.mask is None else self.mask.to(device)
        return ImageSet(x=self.x.to(device), y=self.y.to(device), classes=self.classes, mask=mask, name=self.name)


def _check_images(x: object) -> None:
    """``x`` must be a 4-D floating tensor with values in [0, 1]."""
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a floating (N, C, H, W) tensor, got {got}")
    if x.numel():
        lo, hi = torch.aminmax(x)
        if not (lo >= 0 and hi <= 1):
            raise ValueError(f"x must hold values in [0, 1] (kdlab never normalises data), got [{lo:.4g}, {hi:.4g}]")


def split_indices(n: int, size: float | int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A deterministic shuffle of ``range(n)`` from ``seed``, cut into ``(first, rest)``; ``size`` is a fraction in
    ``(0, 1)`` of ``n`` (rounded) or a count in ``[0, n]``. Behind every data set's ``split``."""
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise ValueError(f"size must be a fraction in (0, 1) or an int count, got {size!r}")
    if isinstance(size, float):
        if not 0.0 < size < 1.0:
            raise ValueError(f"a fractional size must be in (0, 1), got {size!r}")
        size = round(size * n)
    if not 0 <= size <= n:
        raise ValueError(f"size must be a count in [0, {n}], got {size!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:size], order[size:]


def _check_labels(y: object, x: Tensor, num_classes: int) -> None:
    """``y`` must be an int64 tensor on x's device, (N,) or (N, H, W) to match x, with values in [0, num_classes)."""
    n, _, h, w = x.shape
    if not isinstance(y, Tensor) or y.shape not in ((n,), (n, h, w)) or y.dtype != torch.int64:
        got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"y must be an int64 tensor of shape ({n},) (per image) or ({n}, {h}, {w}) (per pixel) "
                         f"to match x, got {got}")
    if y.device != x.device:
        raise ValueError(f"y is on {y.device} but x is on {x.device}; move both with ImageSet.to")
    if y.numel():
        lo, hi = (int(v) for v in torch.aminmax(y))
        if not (0 <= lo and hi < num_classes):
            raise ValueError(f"labels must be in [0, {num_classes}) for {num_classes} classes, got [{lo}, {hi}]")


def _check_mask(mask: object, x: Tensor) -> None:
    """``mask`` must be an (N, H, W) int64 tensor on x's device."""
    n, _, h, w = x.shape
    if not isinstance(mask, Tensor) or mask.shape != (n, h, w) or mask.dtype != torch.int64:
        got = f"{tuple(mask.shape)} {mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be an int64 tensor of shape ({n}, {h}, {w}) to match x, got {got}")
    if mask.device != x.device:
        raise ValueError(f"mask is on {mask.device} but x is on {x.device}; move both with ImageSet.to")


def _as_index(index: Tensor | Sequence[int], n: int, device: torch.device) -> Tensor:
    """A 1-D int64 or bool index tensor on ``device``, checked against the set size ``n``."""
    index = index.to(device) if isinstance(index, Tensor) else torch.as_tensor(index, dtype=torch.int64, device=device)
    if index.dim() != 1 or index.is_floating_point() or index.is_complex():
        raise ValueError(f"index must be a slice or a 1-D int/bool tensor, got {tuple(index.shape)} {index.dtype}")
    if index.dtype == torch.bool:
        if len(index) != n:
            raise ValueError(f"a bool index must have length {n}, got {len(index)}")
        return index
    if len(index) and not (-n <= int(index.min()) and int(index.max()) < n):
        raise ValueError(f"indices must be in [-{n}, {n}), got [{int(index.min())}, {int(index.max())}]")
    return index.long()


__all__ = ["ImageSet", "Index"]
