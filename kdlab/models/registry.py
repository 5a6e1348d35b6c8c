"""`create(name, num_classes, ...)`: the tiny CNN / ViT / Swin / MLP-Mixer family, all built with timm.

Every model is a plain timm module (``pretrained=False``, nothing downloaded) sized for 32x32 inputs in
[0, 1]. Each gets two attributes that the rest of kdlab reads: ``kdlab_name`` (registry key) and
``kdlab_family`` (``cnn``, ``vit``, ``swin`` or ``mixer``).

============= ======== ====================================================================
name           family   architecture (defaults; every keyword can be overridden in ``create``)
============= ======== ====================================================================
cnn            cnn      ResNet-style, 4 stages of basic blocks, widths 32/64/128/256 (~1.2 M)
cnn_small      cnn      the same, widths 16/32/64/128 (~0.3 M)
vit            vit      ViT/DeiT-style, patch 4, dim 96, depth 4, 3 heads, MLP ratio 2
vit_distilled  vit      the same ViT plus DeiT's distillation token and head (``head_dist``)
swin           swin     Swin, patch 2, window 4, dims 32/64/128, depths 2/2/2
mixer          mixer    MLP-Mixer, patch 4, dim 128, 4 blocks
============= ======== ====================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn
from timm.models.byobnet import ByobNet, ByoBlockCfg, ByoModelCfg
from timm.models.deit import VisionTransformerDistilled
from timm.models.mlp_mixer import MlpMixer
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer

FAMILIES = ("cnn", "vit", "swin", "mixer")
VIT_DEFAULTS = dict(patch_size=4, embed_dim=96, depth=4, num_heads=3, mlp_ratio=2.0)


def _resnet(num_classes: int, img_size: int, in_chans: int, *, widths, depths, drop_path_rate=0.0) -> nn.Module:
    """ResNet-style CNN from timm's ByobNet: 3x3 stride-1 stem, stage 1 at full resolution, then /2 per stage."""
    if len(widths) != len(depths):
        raise ValueError(f"widths {widths} and depths {depths} must have the same length")
    blocks = tuple(
        ByoBlockCfg(type="basic", d=depth, c=width, s=1 if i == 0 else 2, br=1.0)
        for i, (width, depth) in enumerate(zip(widths, depths))
    )
    cfg = ByoModelCfg(blocks=blocks, stem_chs=widths[0], stem_type="", stem_pool="", num_features=0)
    model = ByobNet(cfg, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                    drop_path_rate=drop_path_rate)
    model.stem.conv.stride = (1, 1)  # timm's stems all stride 2; at 32x32 we keep full resolution
    return model


def _vit(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    return VisionTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **kwargs)


def _vit_distilled(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    """DeiT's distilled ViT: a class and a distillation token, read by ``head`` and ``head_dist``; in eval
    mode (and in training unless ``set_distilled_training``) it outputs the mean of the two heads."""
    return VisionTransformerDistilled(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **kwargs)


def _swin(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    return SwinTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **kwargs)


def _mixer(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    return MlpMixer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **kwargs)


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: the family, the builder and its default keywords."""

    family: str
    build: Callable[..., nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {
    "cnn": ModelSpec("cnn", _resnet, dict(widths=(32, 64, 128, 256), depths=(1, 1, 1, 1))),
    "cnn_small": ModelSpec("cnn", _resnet, dict(widths=(16, 32, 64, 128), depths=(1, 1, 1, 1))),
    "vit": ModelSpec("vit", _vit, VIT_DEFAULTS),
    "vit_distilled": ModelSpec("vit", _vit_distilled, VIT_DEFAULTS),
    "swin": ModelSpec("swin", _swin, dict(patch_size=2, window_size=4, embed_dim=32, depths=(2, 2, 2),
                                          num_heads=(2, 4, 8), mlp_ratio=2.0)),
    "mixer": ModelSpec("mixer", _mixer, dict(patch_size=4, embed_dim=128, num_blocks=4)),
}


def list_models() -> list[str]:
    """Names accepted by :func:`create`."""
    return sorted(MODELS)


def create(name: str, num_classes: int = 10, img_size: int = 32, in_chans: int = 3, **overrides: Any) -> nn.Module:
    """Build registry model ``name`` with freshly initialised weights (never pretrained, never downloaded).

    ``overrides`` replace the registry defaults, e.g. ``create("vit", depth=6, embed_dim=128)``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(img_size, int) or img_size < 8:
        raise ValueError(f"img_size must be an int >= 8, got {img_size!r}")
    spec = MODELS[name]
    try:
        model = spec.build(num_classes, img_size, in_chans, **{**spec.defaults, **overrides})
    except TypeError as err:
        raise ValueError(f"bad keyword for model {name!r}: {err}") from None
    model.kdlab_name = name
    model.kdlab_family = spec.family
    return model


def family_of(model: nn.Module) -> str:
    """The family (``cnn``, ``vit``, ``swin``, ``mixer``) of a kdlab or plain timm model."""
    family = getattr(model, "kdlab_family", None)
    if family:
        return family
    for cls, fam in ((VisionTransformer, "vit"), (SwinTransformer, "swin"), (MlpMixer, "mixer"), (ByobNet, "cnn")):
        if isinstance(model, cls):
            return fam
    raise ValueError(f"cannot tell the family of {type(model).__name__}; build it with kdlab.models.create")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
