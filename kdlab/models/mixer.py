"""The MLP-Mixer family, built with timm: ``mixer``.

============= ======== ====================================================================
name           family   architecture (defaults; every keyword can be overridden in ``create``)
============= ======== ====================================================================
mixer          mixer    MLP-Mixer, patch 4, dim 128, 4 blocks
============= ======== ====================================================================
"""
from __future__ import annotations

from timm.models.mlp_mixer import MlpMixer
from torch import nn

from .registry import register, register_family_class

register_family_class(MlpMixer, "mixer")


@register("mixer", family="mixer", defaults=dict(patch_size=4, embed_dim=128, num_blocks=4))
def mlp_mixer(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    return MlpMixer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, **kwargs)
