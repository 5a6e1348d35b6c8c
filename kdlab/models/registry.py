"""The model registry: :func:`register`, :func:`create`, :func:`list_models`, :func:`family_of`.

This module holds the machinery only and imports no model file. Each family file (``cnn.py``, ``vit.py``,
``swin.py``, ``mixer.py``, ``dense.py``, ``face.py``) registers its own models with the :func:`register`
decorator, as timm's model files do, and the classes :func:`family_of` recognises with
:func:`register_family_class`; ``kdlab/models/__init__.py`` imports the family files so that they register.

Every model :func:`create` builds gets three attributes that the rest of kdlab reads: ``kdlab_name`` (registry
key), ``kdlab_family`` (one of :data:`FAMILIES`) and ``kdlab_task`` (one of :data:`TASKS`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ..checks import check_choice, check_int

FAMILIES = ("cnn", "vit", "swin", "mixer", "mlp")
TASKS = ("classification", "segmentation", "depth", "face")

Builder = Callable[..., nn.Module]
"""``build(num_classes, img_size, in_chans, **keywords) -> nn.Module``: what a registry entry calls."""


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: the family, the builder, its default keywords, the task and the default class count."""

    family: str
    build: Builder
    defaults: dict[str, Any] = field(default_factory=dict)
    task: str = "classification"
    num_classes: int = 10


MODELS: dict[str, ModelSpec] = {}
"""Registry key -> :class:`ModelSpec`, filled by the family files' :func:`register` decorators."""

FAMILY_CLASSES: dict[type, str] = {}
"""Module class -> family, for :func:`family_of` on models built without :func:`create` (a plain timm model)."""


def register(name: str, *, family: str, task: str = "classification", num_classes: int = 10,
             defaults: dict[str, Any] | None = None) -> Callable[[Builder], Builder]:
    """Decorator that registers ``build`` as model ``name`` and returns it unchanged.

    ``build(num_classes, img_size, in_chans, **keywords)`` makes the module; ``defaults`` are its keywords unless
    :func:`create` overrides them, ``num_classes`` the class count (or embedding width) when none is asked for.
    Stack decorators to register one builder under several names (``cnn`` and ``cnn_small``).
    """
    check_choice("family", family, FAMILIES)
    check_choice("task", task, TASKS)
    if name in MODELS:
        raise ValueError(f"a model name is registered once, got {name!r} a second time")
    spec_defaults = dict(defaults or {})

    def decorator(build: Builder) -> Builder:
        MODELS[name] = ModelSpec(family, build, spec_defaults, task, num_classes)
        return build

    return decorator


def register_family_class(cls: type, family: str) -> None:
    """Let :func:`family_of` tell the family of any instance of ``cls`` (e.g. timm's ``VisionTransformer``)."""
    FAMILY_CLASSES[cls] = check_choice("family", family, FAMILIES)


def list_models(task: str | None = "classification") -> list[str]:
    """Names accepted by :func:`create` for ``task`` (``classification``, ``segmentation``, ``depth``, ``face``;
    ``None``: all)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)} or None")
    return sorted(name for name, spec in MODELS.items() if task is None or spec.task == task)


def create(name: str, num_classes: int | None = None, img_size: int = 32, in_chans: int = 3,
           **overrides: Any) -> nn.Module:
    """Build registry model ``name`` with freshly initialised weights (never pretrained, never downloaded).

    ``num_classes`` defaults to the model's (10 for classification, ``SEG_NUM_CLASSES`` for segmentation, the
    embedding width 128 for face models; depth models ignore it). ``overrides`` replace the registry defaults,
    e.g. ``create("vit", depth=6, embed_dim=128)``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models(None))}")
    spec = MODELS[name]
    num_classes = check_int("num_classes", spec.num_classes if num_classes is None else num_classes, low=1)
    img_size = check_int("img_size", img_size, low=8)
    try:
        model = spec.build(num_classes, img_size, in_chans, **{**spec.defaults, **overrides})
    except TypeError as err:
        raise ValueError(f"bad keyword for model {name!r}: {err}") from None
    model.kdlab_name = name
    model.kdlab_family = spec.family
    model.kdlab_task = spec.task
    return model


def family_of(model: nn.Module) -> str:
    """The family (``cnn``, ``vit``, ``swin``, ``mixer``) of a kdlab or plain timm model."""
    family = getattr(model, "kdlab_family", None)
    if family:
        return family
    for cls, fam in FAMILY_CLASSES.items():
        if isinstance(model, cls):
            return fam
    raise ValueError(f"cannot tell the family of {type(model).__name__}; build it with kdlab.models.create")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
