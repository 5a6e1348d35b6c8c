"""The ResNet-style CNN family, built with timm's ``ByobNet``: the ``cnn`` and ``cnn_small`` classifiers, and
:func:`resnet`, the builder the dense models' encoders use too.

============= ======== ====================================================================
name           family   architecture (defaults; every keyword can be overridden in ``create``)
============= ======== ====================================================================
cnn            cnn      ResNet-style, 4 stages of basic blocks, widths 32/64/128/256 (~1.2 M)
cnn_small      cnn      the same, widths 16/32/64/128 (~0.3 M)
============= ======== ====================================================================
"""
from __future__ import annotations

from timm.models.byobnet import ByobNet, ByoBlockCfg, ByoModelCfg
from torch import nn

from ..checks import check_choice
from .registry import register, register_family_class

register_family_class(ByobNet, "cnn")


@register("cnn", family="cnn", defaults=dict(widths=(32, 64, 128, 256), depths=(1, 1, 1, 1)))
@register("cnn_small", family="cnn", defaults=dict(widths=(16, 32, 64, 128), depths=(1, 1, 1, 1)))
def resnet(num_classes: int, img_size: int | None, in_chans: int, *, widths, depths, drop_path_rate=0.0,
           stem_stride: int = 1) -> nn.Module:
    """ResNet-style CNN from timm's ByobNet: 3x3 stem (stride ``stem_stride``), stage 1 at the stem's
    resolution, then /2 per stage."""
    if len(widths) != len(depths):
        raise ValueError(f"widths {widths} and depths {depths} must have the same length")
    check_choice("stem_stride", stem_stride, (1, 2))
    blocks = tuple(
        ByoBlockCfg(type="basic", d=depth, c=width, s=1 if i == 0 else 2, br=1.0)
        for i, (width, depth) in enumerate(zip(widths, depths))
    )
    cfg = ByoModelCfg(blocks=blocks, stem_chs=widths[0], stem_type="", stem_pool="", num_features=0)
    model = ByobNet(cfg, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                    drop_path_rate=drop_path_rate)
    model.stem.conv.stride = (stem_stride, stem_stride)  # timm's stems all stride 2; at 32x32 we keep stride 1
    return model
