"""Datasets as tensors: procedural shapes, scikit-learn digits, procedural RGB-D scenes, procedural faces, local
CIFAR, RGB-D and aligned-face folders, batch augmentation. Every data set shares the
:class:`~kdlab.data.tensors.TensorSet` surface (``x``, ``y``, ``name``, ``task``, ``len``, ``subset``, ``split``,
``to``, one ``repr`` style).

Everything is generated or read locally; nothing is downloaded. ``load_dataset(name, ...)`` gives the (train, test)
splits the shipped teachers were trained on; ``load_splits(name, n_val=..., ...)`` adds the validation split every
notebook experiment reads during training (the experiment protocol, ``docs/architecture.md`` §4), without changing
the other two.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, NamedTuple

from ..checks import check_choice, check_int
from .augment import crop_flip, rotate, translate
from .cifar import load_cifar
from .digits import load_digits
from .faces import TEMPLATE as FACE_TEMPLATE
from .faces import FaceSet, FaceStyle, faces_splits, faces_val, load_face_folder, make_faces, make_pairs
from .scenes import DepthSet, load_depth_folder, make_scenes, scenes_splits, scenes_val
from .shapes import CLASSES as SHAPE_CLASSES
from .shapes import make_shapes, mosaic_cell_classes, shapes_splits, shapes_val
from .tensors import TASKS, UNLABELLED, ImageSet, TensorSet


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


class Splits(NamedTuple):
    """The three disjoint splits of the experiment protocol: ``train`` to fit, ``val`` for every choice made while
    or after training (curves, epochs, weights, sweeps), ``test`` read once per run at its end."""

    train: TensorSet
    val: TensorSet
    test: TensorSet


def _val_stream(builder: Callable[..., TensorSet]):
    """A validation builder that draws ``n_val`` new samples (identities for faces) from the generator's own
    disjoint stream, so the training set stays the one :func:`load_dataset` gives."""
    def make(train: TensorSet, n_val: int, kwargs: dict[str, Any]) -> tuple[TensorSet, TensorSet]:
        return train, builder(n_val, **{k: v for k, v in kwargs.items() if k not in ("n_train", "n_test")})
    return make


def _held_out(train: TensorSet, n_val: int, kwargs: dict[str, Any]) -> tuple[TensorSet, TensorSet]:
    """A validation slice of ``n_val`` training images (shuffled from the data seed), for data with no generator
    stream to draw from (the bundled real digits): the training set shrinks by ``n_val``."""
    if n_val >= len(train):
        raise ValueError(f"n_val must leave training images: got {n_val} of {len(train)}")
    val, rest = train.split(n_val, seed=kwargs.get("seed", 0))
    return replace_name(rest, "train"), replace_name(val, "val")


def replace_name(data: TensorSet, role: str) -> TensorSet:
    """``data`` renamed ``<dataset>-<role>`` (``digits-train`` -> ``digits-val``)."""
    return replace(data, name=f"{data.name.rsplit('-', 1)[0]}-{role}")


VALIDATION = {"shapes": _val_stream(shapes_val), "scenes": _val_stream(scenes_val), "faces": _val_stream(faces_val),
              "digits": _held_out}
"""Dataset -> how :func:`load_splits` makes its validation split: a disjoint generator stream (``n_val`` images,
identities for faces) or, for real data, a held-out slice of the training set."""


def load_splits(name: str, *, n_val: int, target: str = "label", **kwargs: Any) -> Splits:
    """``Splits(train, val, test)`` of a built-in dataset: ``train`` and ``test`` as :func:`load_dataset` gives them
    (the shipped teachers' splits) and ``n_val`` validation samples (:data:`VALIDATION`: images, or identities with
    verification pairs for faces) disjoint from both. Sets are named ``<dataset>-train|val|test``, which is what
    :attr:`TensorSet.role` reads and ``fit`` checks (it refuses to validate on a test set)."""
    n_val = check_int("n_val", n_val, low=1)
    train, test = load_dataset(name, target=target, **kwargs)
    train, val = VALIDATION[name](train, n_val, kwargs)
    if target == "mask":
        val = val.segmentation()
    return Splits(train, val, test)


def standard_augment(flip: bool = True):
    """The augmentation kdlab trains with: random 4-pixel-padded crop (+ horizontal flip).

    Segmentation-safe: called as ``aug(x, mask, generator=g)`` it applies the same crop and flip to the
    masks (the zero border is label 0, background); ``fit`` does so for per-pixel targets.
    """
    return crop_flip(padding=4, p_flip=0.5 if flip else 0.0)


__all__ = ["DATASETS", "Splits", "VALIDATION", "load_splits", "faces_val", "scenes_val", "shapes_val", "DEPTH_DATASETS", "DepthSet", "FACE_DATASETS", "FACE_TEMPLATE", "FaceSet", "FaceStyle",
           "TARGETS", "TASKS", "TensorSet", "UNLABELLED", "faces_splits", "load_face_folder", "make_faces", "make_pairs",
           "ImageSet", "SHAPE_CLASSES",
           "crop_flip", "load_cifar", "load_dataset",
           "load_depth_folder", "load_digits", "make_scenes", "mosaic_cell_classes", "rotate", "translate", "make_shapes", "scenes_splits", "shapes_splits",
           "standard_augment"]
