"""The ViT family, built with timm: ``vit`` (ViT/DeiT-style) and ``vit_distilled`` (DeiT's distilled ViT).

============= ======== ====================================================================
name           family   architecture (defaults; every keyword can be overridden in ``create``)
============= ======== ====================================================================
vit            vit      ViT/DeiT-style, patch 4, dim 96, depth 4, 3 heads, MLP ratio 2
vit_distilled  vit      the same ViT plus DeiT's distillation token and head (``head_dist``)
============= ======== ====================================================================
"""
from __future__ import annotations

from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .registry import register, register_family_class

VIT_DEFAULTS = dict(patch_size=4, embed_dim=96, depth=4, num_heads=3, mlp_ratio=2.0)

register_family_class(VisionTransformer, "vit")  # VisionTransformerDistilled is one too


@register("vit", family="vit", defaults=VIT_DEFAULTS)
def vision_transformer(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    return VisionTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **kwargs)


@register("vit_distilled", family="vit", defaults=VIT_DEFAULTS)
def vision_transformer_distilled(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    """DeiT's distilled ViT: a class and a distillation token, read by ``head`` and ``head_dist``; in eval
    mode (and in training unless ``set_distilled_training``) it outputs the mean of the two heads."""
    return VisionTransformerDistilled(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **kwargs)
