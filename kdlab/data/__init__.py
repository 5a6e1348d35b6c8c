"""Datasets as tensors: procedural shapes, scikit-learn digits, procedural RGB-D scenes, procedural faces, local
CIFAR, RGB-D and aligned-face folders, batch augmentation. Every data set shares the
:class:`~kdlab.data.tensors.TensorSet` surface (``x``, ``y``, ``name``, ``task``, ``len``, ``subset``, ``split``,
``to``, one ``repr`` style).

Everything is generated or read locally; nothing is downloaded. ``load_dataset(name, ...)`` is the one
entry point the teacher recipes and notebooks use for (train, test) splits.
"""
from __future__ import annotations

from typing import Any, Callable

from ..checks import check_choice
from .augment import crop_flip
from .cifar import load_cifar
from .digits import load_digits
from .faces import TEMPLATE as FACE_TEMPLATE
from .faces import FaceSet, FaceStyle, faces_splits, load_face_folder, make_faces, make_pairs
from .scenes import DepthSet, load_depth_folder, make_scenes, scenes_splits
from .shapes import CLASSES as SHAPE_CLASSES
from .shapes import make_shapes, shapes_splits
from .tensors import TASKS, ImageSet, TensorSet


def _digits(n_train: int | None = None, n_test: int | None = None, seed: int = 0, **kwargs: Any):
    train, test = load_digits(seed=seed, **kwargs)
    return _first(train, n_train), _first(test, n_test)


def _faces(n_train: int | None = None, n_test: int | None = None, **kwargs: Any):
    """:func:`faces_splits` (``n_train_ids``, ``per_id``, ``n_test_ids``, ``n_pairs``, ...). ``n_train`` / ``n_test``,
    the image counts the other datasets take, render just enough identities and keep that many images (a test set
    cut this way loses its pairs)."""
    if n_train is not None:
        kwargs["n_train_ids"] = max(1, -(-n_train // kwargs.get("per_id", 40)))
    train, test = faces_splits(**kwargs)
    return _first(train, n_train), _first(test, n_test)


def _first(data: TensorSet, n: int | None) -> TensorSet:
    """The first ``n`` images of ``data`` (all of them for ``None`` or 0)."""
    return data.subset(slice(0, n)) if n else data


DATASETS: dict[str, Callable[..., tuple[ImageSet | DepthSet, ImageSet | DepthSet]]] = {
    "shapes": shapes_splits, "digits": _digits, "scenes": scenes_splits, "faces": _faces}
DEPTH_DATASETS = ("scenes",)
"""Datasets whose ``y`` is a metric depth map (N, H, W) in metres (:class:`DepthSet`), not a class label."""
FACE_DATASETS = ("faces",)
"""Datasets of face identities (:class:`FaceSet`: ``y`` is the identity, plus landmarks; the test set carries
verification pairs of identities never seen in training)."""


TARGETS = ("label", "mask")
"""What ``load_dataset(..., target=...)`` returns as ``y``: one class per image, or the per-pixel masks."""


def load_dataset(name: str, *, target: str = "label", **kwargs: Any) -> tuple[ImageSet | DepthSet, ImageSet | DepthSet]:
    """(train, test) of a built-in dataset: ``shapes`` (``n_train``, ``n_test``, ``img_size``, ``seed``, ...),
    ``digits``, ``scenes`` (:func:`~kdlab.data.scenes.scenes_splits`: RGB-D :class:`DepthSet` pairs whose
    ``y`` is already the (N, H, W) depth in metres, so the default ``target="label"`` keeps it), or ``faces``
    (:func:`~kdlab.data.faces.faces_splits`: ``n_train_ids``, ``n_test_ids``, ``per_id``, ``n_pairs``, ``img_size``,
    ``seed``, ...; :class:`FaceSet` s with disjoint identities, verification pairs on the test set).

    ``target="mask"`` gives segmentation sets (:meth:`ImageSet.segmentation`: ``y`` is the (N, H, W) mask,
    class 0 is background), e.g. ``load_dataset("shapes", img_size=64, target="mask")``; only datasets
    with masks (shapes) have them.
    """
    check_choice("name", name, tuple(DATASETS))
    check_choice("target", target, TARGETS)
    if target == "mask" and name in DEPTH_DATASETS:
        raise ValueError(f"dataset {name!r} has depth maps, not segmentation masks: use target='label' "
                         f"(its y is already the per-pixel depth in metres)")
    train, test = DATASETS[name](**kwargs)
    return (train.segmentation(), test.segmentation()) if target == "mask" else (train, test)


def standard_augment(flip: bool = True):
    """The augmentation kdlab trains with: random 4-pixel-padded crop (+ horizontal flip).

    Segmentation-safe: called as ``aug(x, mask, generator=g)`` it applies the same crop and flip to the
    masks (the zero border is label 0, background); ``fit`` does so for per-pixel targets.
    """
    return crop_flip(padding=4, p_flip=0.5 if flip else 0.0)


__all__ = ["DATASETS", "DEPTH_DATASETS", "DepthSet", "FACE_DATASETS", "FACE_TEMPLATE", "FaceSet", "FaceStyle",
           "TARGETS", "TASKS", "TensorSet", "faces_splits", "load_face_folder", "make_faces", "make_pairs",
           "ImageSet", "SHAPE_CLASSES",
           "crop_flip", "load_cifar", "load_dataset",
           "load_depth_folder", "load_digits", "make_scenes", "make_shapes", "scenes_splits", "shapes_splits",
           "standard_augment"]
