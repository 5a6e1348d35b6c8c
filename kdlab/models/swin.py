"""The Swin family, built with timm: ``swin``, and :func:`swin_transformer`, which the face teacher builds on.

============= ======== ====================================================================
name           family   architecture (defaults; every keyword can be overridden in ``create``)
============= ======== ====================================================================
swin           swin     Swin, patch 2, window 4, dims 32/64/128, depths 2/2/2
============= ======== ====================================================================
"""
from __future__ import annotations

from timm.models.swin_transformer import SwinTransformer
from torch import nn

from .registry import register, register_family_class

register_family_class(SwinTransformer, "swin")


@register("swin", family="swin", defaults=dict(patch_size=2, window_size=4, embed_dim=32, depths=(2, 2, 2),
                                              num_heads=(2, 4, 8), mlp_ratio=2.0))
def swin_transformer(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    return SwinTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **kwargs)
