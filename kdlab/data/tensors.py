"""Data sets held as tensors: the surface every kdlab data set shares (:class:`TensorSet`) and :class:`ImageSet`,
images with one class per image or per pixel.

Every kdlab data set is a frozen dataclass built on :class:`TensorSet`: :class:`ImageSet` (shapes, digits, CIFAR
folders), :class:`~kdlab.data.faces.FaceSet` (an ImageSet of identities with landmarks and verification pairs)
and :class:`~kdlab.data.scenes.DepthSet` (images with metric depth maps). They share one surface:

* ``x``: the images, ``(N, C, H, W)`` floating point in ``[0, 1]`` (normalisation is the models' job);
* ``y``: the targets ``fit`` / ``evaluate`` train on: one class per image ``(N,)``, one class per pixel
  ``(N, H, W)``, or one depth in metres per pixel ``(N, H, W)``; :attr:`TensorSet.task` says which
  (one of :data:`TASKS`);
* ``name``: a short label for ``repr`` and plots;
* ``len(s)``, :meth:`TensorSet.subset`, :meth:`TensorSet.split`, :meth:`TensorSet.to`, and one ``repr``
  style, ``Kind('name', n=N, image=CxHxW, task=..., <what y holds>, device=...)``.

Class names (``classes``, ``num_classes``) belong to the class-target sets (ImageSet, FaceSet); a DepthSet has
a ``depth_range`` instead. A set is immutable: ``subset``, ``split`` and ``to`` return new sets of the same type
(sharing storage where torch indexing allows).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from ..checks import check_fraction, check_int, check_tensor, is_int, is_number

Index = slice | Tensor | Sequence[int]
"""What :meth:`TensorSet.subset` accepts: a slice, an int tensor or list of indices, or a bool tensor."""

TASKS = ("classification", "segmentation", "depth")
"""What a set's ``y`` holds (:attr:`TensorSet.task`): a class per image, a class per pixel, a depth per pixel."""

ROLES = ("train", "val", "test")
"""The three splits of the experiment protocol (:attr:`TensorSet.role`)."""

UNLABELLED = -1
"""The class index of an image without a label (:meth:`ImageSet.with_labels`): the cross-entropy skips it
(:func:`kdlab.methods.labelled_cross_entropy`), a teacher's term still sees it. Only a training set carries it."""

AnySet = TypeVar("AnySet", bound="TensorSet")


class TensorSet:
    """The surface every kdlab data set shares (see the module notes); subclasses are frozen dataclasses with
    fields ``x``, ``y`` and ``name`` (plus their own).

    Class attributes a subclass sets:
        ROW_FIELDS: the tensor fields with one row per image (``x``, ``y``, ...): :meth:`subset` picks their rows.
        INDEX_FIELDS: fields that hold indices into the rows (a face set's pairs): :meth:`subset` drops them,
            since the indices would no longer hold.
    """

    ROW_FIELDS: ClassVar[tuple[str, ...]] = ("x", "y")
    INDEX_FIELDS: ClassVar[tuple[str, ...]] = ()

    x: Tensor
    y: Tensor
    name: str

    def __len__(self) -> int:
        """The number of images ``N``."""
        return len(self.x)

    def __repr__(self) -> str:
        """One line: kind, name, size, image shape, task, what ``y`` holds (:meth:`describe_targets`), device."""
        _, c, h, w = self.x.shape
        return (f"{type(self).__name__}({self.name!r}, n={len(self)}, image={c}x{h}x{w}, task={self.task}, "
                f"{self.describe_targets()}, device={self.x.device})")

    @property
    def task(self) -> str:
        """What ``y`` holds, one of :data:`TASKS`."""
        raise NotImplementedError

    @property
    def role(self) -> str:
        """The split this set is, read from its name ``<dataset>-<role>``: one of :data:`ROLES`, or ``""`` when the
        name does not say (a folder named by its user). ``fit`` refuses to validate on a ``"test"`` set."""
        suffix = self.name.rsplit("-", 1)[-1] if "-" in self.name else ""
        return suffix if suffix in ROLES else ""

    def describe_targets(self) -> str:
        """The ``repr``'s description of ``y`` and the fields that go with it (``"classes=10, mask=yes"``)."""
        raise NotImplementedError

    def subset(self: AnySet, index: Index) -> AnySet:
        """The images picked by ``index``: a slice, int indices (tensor, list or range; repeats allowed) or a
        bool tensor of length ``N``. Every row field is picked alike; the other fields are kept, except the
        :attr:`INDEX_FIELDS`, which are dropped."""
        if not isinstance(index, slice):
            index = _as_index(index, len(self), self.x.device)
        rows = {f: None if getattr(self, f) is None else getattr(self, f)[index] for f in self.ROW_FIELDS}
        return replace(self, **rows, **{f: None for f in self.INDEX_FIELDS})

    def split(self: AnySet, size: float | int, seed: int = 0) -> tuple[AnySet, AnySet]:
        """Shuffle deterministically from ``seed`` and cut into ``(first, rest)`` (:func:`split_indices`).

        Args:
            size: the first part's size: a fraction in ``(0, 1)`` of ``N`` (rounded) or a count in ``[0, N]``.
            seed: the same seed gives the same split.
        """
        first, rest = split_indices(len(self), size, seed)
        return self.subset(first), self.subset(rest)

    def repeat_to(self: AnySet, size: int) -> AnySet:
        """The rows cycled to exactly ``size`` (``size >= len``): ``subset(arange(size) % N)``. One "epoch" of the
        result is ``size`` samples, so runs on sets of different sizes can share epochs and steps (the primer's
        label budgets train every row on the same number of samples)."""
        size = check_int("size", size, low=max(1, len(self)))
        return self.subset(torch.arange(size) % len(self))

    def to(self: AnySet, device: str | torch.device) -> AnySet:
        """The same set with every tensor on ``device``."""
        tensors = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: v.to(device) for k, v in tensors.items() if isinstance(v, Tensor)})


@dataclass(frozen=True, eq=False, repr=False)
class ImageSet(TensorSet):
    """A labelled image dataset as tensors.

    Attributes:
        x: images, ``(N, C, H, W)`` floating point (float32 by convention) with values in ``[0, 1]``.
        y: class indices in ``[0, len(classes))``, int64: ``(N,)`` (one per image, classification) or
            ``(N, H, W)`` (one per pixel, segmentation; see :meth:`segmentation` and :attr:`task`). A
            classification set may mark images without a label with :data:`UNLABELLED` (:meth:`with_labels`).
        classes: class names; ``y == k`` means ``classes[k]`` (any sequence of str is stored as a tuple).
        mask: optional per-pixel labels, ``(N, H, W)`` int64, on the same device as ``x``. kdlab's
            generators store ``0`` on background and ``1 + y`` on the object (see :meth:`segmentation`).
        name: a short label shown in ``repr`` and plots (``"digits-train"``, ...).

    Raises:
        ValueError: when a shape, dtype, device, label or value range is off; the message names the field.
    """

    ROW_FIELDS: ClassVar[tuple[str, ...]] = ("x", "y", "mask")

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
        check_images("x", self.x)
        n, _, h, w = self.x.shape
        check_rows("y", self.y, self.x, ((n,), (n, h, w)), dtype=torch.int64)
        labelled = self.y if self.y.ndim > 1 else self.y[self.y != UNLABELLED]
        check_labels("labels", labelled, len(self.classes))
        if self.mask is not None:
            check_rows("mask", self.mask, self.x, ((n, h, w),), dtype=torch.int64)

    def describe_targets(self) -> str:
        """``"classes=K, mask=yes|no"`` (``"classes=K per pixel, ..."`` for a segmentation set)."""
        per_pixel = " per pixel" if self.task == "segmentation" else ""
        return f"classes={self.num_classes}{per_pixel}, mask={'yes' if self.mask is not None else 'no'}"

    @property
    def num_classes(self) -> int:
        """``len(classes)``."""
        return len(self.classes)

    @property
    def n_labelled(self) -> int:
        """How many images carry a label (all but the :data:`UNLABELLED` ones; every pixel set counts all)."""
        return len(self) if self.y.ndim > 1 else int((self.y != UNLABELLED).sum())

    def with_labels(self, n: int) -> ImageSet:
        """The same images, of which only the first ``n`` keep their label; the rest are :data:`UNLABELLED` (the
        primer's label budgets, ``notebooks/00_primer.ipynb`` §7: a teacher labels those, the labels-only student
        cannot use them). Sets are shuffled when made, so the first ``n`` are a random sample."""
        if self.y.ndim != 1:
            raise ValueError(f"only a classification set can hide labels; {self.name!r} has per-pixel targets")
        n = check_int("n", n, low=0, high=len(self))
        y = self.y.clone()
        y[n:] = UNLABELLED
        return replace(self, y=y, name=f"{self.name} ({n} labelled)")

    def with_confused_labels(self, fraction: float, *, seed: int) -> ImageSet:
        """The same images, where each label moves to the next class, ``(y + 1) mod K``, with probability
        ``fraction`` (drawn from ``seed``): a systematic confusion, so a teacher trained on them is unsure, and
        wrong, in a structured way (the noisy-label teacher of ``notebooks/01_ofa.ipynb`` §3.3). The name says so."""
        if self.y.ndim != 1 or bool((self.y == UNLABELLED).any()):
            raise ValueError(f"only a fully labelled classification set can confuse labels; {self.name!r} is not one")
        fraction = check_fraction("fraction", fraction)
        moved = torch.rand(len(self), generator=torch.Generator().manual_seed(check_int("seed", seed, low=0))) < fraction
        y = torch.where(moved, (self.y + 1) % self.num_classes, self.y)
        return replace(self, y=y, name=f"{self.name} ({fraction:.0%} labels confused)")

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


def split_indices(n: int, size: float | int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A deterministic shuffle of ``range(n)`` from ``seed``, cut into ``(first, rest)``; ``size`` is a fraction in
    ``(0, 1)`` of ``n`` (rounded) or a count in ``[0, n]``. Behind every data set's ``split``."""
    if not (is_int(size) or is_number(size)):
        raise ValueError(f"size must be a fraction in (0, 1) or an int count, got {size!r}")
    if not is_int(size):
        if not 0.0 < size < 1.0:
            raise ValueError(f"a fractional size must be in (0, 1), got {size!r}")
        size = round(size * n)
    if not 0 <= size <= n:
        raise ValueError(f"size must be a count in [0, {n}], got {size!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:size], order[size:]


def check_images(name: str, x: object) -> Tensor:
    """``x`` unchanged; ``ValueError`` unless it is a floating ``(N, C, H, W)`` tensor with values in ``[0, 1]``."""
    check_tensor(name, x, ndim=4, floating=True)
    if x.numel():
        lo, hi = torch.aminmax(x)
        if not (lo >= 0 and hi <= 1):
            raise ValueError(f"{name} must hold values in [0, 1] (kdlab never normalises data), "
                             f"got [{lo:.4g}, {hi:.4g}]")
    return x


def check_rows(name: str, value: object, x: Tensor, shapes: Sequence[tuple[int, ...]], *,
               dtype: torch.dtype | None = None, floating: bool = False) -> Tensor:
    """``value`` unchanged; ``ValueError`` unless it is a tensor of one of ``shapes``, of ``dtype`` (or of a
    floating dtype, when ``floating``), on the device of the images ``x`` it goes with (a set's targets, masks,
    landmarks)."""
    ok = (isinstance(value, Tensor) and tuple(value.shape) in shapes and (dtype is None or value.dtype == dtype)
          and (not floating or value.is_floating_point()))
    if not ok:
        got = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
        kind = "floating point" if floating else str(dtype).removeprefix("torch.")
        want = " or ".join(str(s) for s in shapes)
        raise ValueError(f"{name} must be a tensor of dtype {kind} and shape {want} to match x, got {got}")
    if value.device != x.device:
        raise ValueError(f"{name} must be on x's device {x.device}, got {value.device}; move the set with .to")
    return value


def check_labels(name: str, y: Tensor, num_classes: int) -> Tensor:
    """``y`` unchanged; ``ValueError`` unless every class index in it lies in ``[0, num_classes)``."""
    if y.numel():
        lo, hi = (int(v) for v in torch.aminmax(y))
        if not (0 <= lo and hi < num_classes):
            raise ValueError(f"{name} must be in [0, {num_classes}) for {num_classes} classes, got [{lo}, {hi}]")
    return y


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


__all__ = ["ROLES", "TASKS", "UNLABELLED", "ImageSet", "Index", "TensorSet", "check_images", "check_labels", "check_rows", "split_indices"]
