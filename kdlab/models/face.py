r"""Face embedding networks for the CAFD workbook: a MobileFaceNet-style CNN student and a Swin teacher.

Both map an aligned face image to an **embedding** $e\in\mathbb{R}^E$ (not to logits): identities are
scored by a margin head (:class:`kdlab.methods.CosFace` / ``ArcFace``) during training and by the
cosine $\cos(e_1, e_2)$ at verification time. Both follow timm's split,
``forward(x) == forward_head(forward_features(x))``, so distillation code can read the last feature map and
the embedding from a single pass.

:class:`MobileFaceNet` (after Chen et al., "MobileFaceNets", 2018, scaled down) [our choice of sizes]:

* stem: Conv3x3/2 -> BN -> PReLU, then a depthwise Conv3x3 -> BN -> PReLU;
* stages: inverted-residual bottlenecks, Conv1x1 ($C\to tC$) -> BN -> PReLU -> depthwise Conv3x3 (stride 2
  in a stage's first block) -> BN -> PReLU -> Conv1x1 ($tC\to C'$) -> BN, plus the identity when the
  shape is kept;
* a Conv1x1 -> BN -> PReLU to ``num_features`` channels: **the last feature map** $F\in
  \mathbb{R}^{C\times h\times w}$ that ``forward_features`` returns ($h=w=$ ``img_size`` / 16: 4x4 at 64 px);
* head (``forward_head``): the **global depthwise convolution** (GDC, a depthwise conv whose kernel covers
  the whole $h\times w$ map) -> BN -> Linear ($C\to E$, no bias) -> BatchNorm1d: the embedding.

Because the GDC kernel is the map size, the network accepts exactly ``img_size`` x ``img_size`` inputs.

:func:`face_swin` builds the teacher: kdlab's timm Swin (:func:`kdlab.models.swin.swin_transformer`, the
registry's ``"swin"``) whose classifier head outputs ``embedding_dim`` numbers, i.e. global average pool -> Linear
gives the embedding.

============= ======== ====================================================================
name           family   architecture (defaults; every keyword can be overridden in ``create``)
============= ======== ====================================================================
face_cnn       cnn      CAFD's CNN student (:class:`MobileFaceNet`): MobileFaceNet-style, stem 32,
                        bottleneck widths 48/64/96, GDC head -> 128-d embedding (~0.13 M)
face_swin      swin     CAFD's Transformer teacher (:func:`face_swin`): Swin patch 4, window 4, embed 48,
                        depths 2/2/2, avg pool -> Linear -> BN -> 128-d embedding (~0.9 M)
============= ======== ====================================================================

Face models (task ``face``) output (B, E) embeddings, not logits: ``num_classes`` is the embedding width E
(default 128). Build them at the face size, e.g. ``create("face_cnn", img_size=64)`` (both only accept the
``img_size`` they were built for).
"""
from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor, nn

from ..checks import check_int
from .registry import register
from .swin import swin_transformer

FACE_SWIN_DEFAULTS = dict(patch_size=4, window_size=4, embed_dim=48, depths=(2, 2, 2), num_heads=(2, 4, 8),
                          mlp_ratio=2.0)
"""The CAFD workbook's tiny Swin teacher (spec §3.2): grids 16 -> 8 -> 4 at 64 px."""


def conv_bn(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
            act: bool = True) -> nn.Sequential:
    """Conv (no bias, 'same' padding for odd kernels) -> BN (-> PReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.PReLU(c_out))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """MobileFaceNet's inverted residual: expand 1x1 -> depthwise 3x3 (stride) -> linear 1x1 (+ identity)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, expansion: int = 2) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.body = nn.Sequential(
            conv_bn(c_in, hidden, 1),
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            conv_bn(hidden, c_out, 1, act=False),
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) if self.residual else self.body(x)


@register("face_cnn", family="cnn", task="face", num_classes=128)
class MobileFaceNet(nn.Module):
    r"""A small MobileFaceNet-style face embedding CNN (see the module docstring for the layout).

    ``forward(x)`` -> (B, ``embed_dim``) embedding (not normalised); ``forward_features(x)`` -> the last
    (B, ``num_features``, h, w) map, $h = w =$ ``img_size`` / 16; ``forward_head(F)`` -> the embedding.
    ``stem_width`` and the per-stage ``widths`` / ``depths`` (each stage halves the map) size the network;
    the defaults give ~0.13 M parameters.
    """

    def __init__(self, embed_dim: int = 128, img_size: int = 64, in_chans: int = 3, *, stem_width: int = 32,
                 widths: Sequence[int] = (48, 64, 96), depths: Sequence[int] = (1, 2, 2), expansion: int = 2,
                 num_features: int = 128) -> None:
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("img_size", img_size), ("in_chans", in_chans),
                            ("stem_width", stem_width), ("expansion", expansion), ("num_features", num_features)):
            check_int(name, value, low=1)
        widths, depths = tuple(widths), tuple(depths)
        if not widths or len(widths) != len(depths):
            raise ValueError(f"widths {widths} and depths {depths} must be non-empty and of the same length")
        for i, (w, d) in enumerate(zip(widths, depths)):
            check_int(f"widths[{i}]", w, low=1), check_int(f"depths[{i}]", d, low=1)
        stride = 2 ** (len(widths) + 1)
        if img_size % stride:
            raise ValueError(f"img_size must be a multiple of {stride} (stem /2 and one /2 per stage), got {img_size}")
        self.img_size, self.embed_dim, self.num_features = img_size, embed_dim, num_features
        self.feature_size = (img_size // stride, img_size // stride)
        self.stem = nn.Sequential(conv_bn(in_chans, stem_width, 3, 2), conv_bn(stem_width, stem_width, 3,
                                                                                groups=stem_width))
        blocks: list[nn.Module] = []
        c_in = stem_width
        for width, depth in zip(widths, depths):
            for i in range(depth):
                blocks.append(Bottleneck(c_in, width, 2 if i == 0 else 1, expansion))
                c_in = width
        self.stages = nn.Sequential(*blocks)
        self.conv_last = conv_bn(c_in, num_features, 1)
        self.gdc = nn.Sequential(nn.Conv2d(num_features, num_features, self.feature_size, groups=num_features,
                                           bias=False), nn.BatchNorm2d(num_features), nn.Flatten())
        self.embedding = nn.Linear(num_features, embed_dim, bias=False)
        self.bn = nn.BatchNorm1d(embed_dim)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: Tensor) -> Tensor:
        """The last (B, num_features, h, w) feature map (after Conv1x1 -> BN -> PReLU)."""
        if x.ndim != 4 or tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(f"expected a (B, C, {self.img_size}, {self.img_size}) batch (the GDC head needs the "
                             f"built size), got shape {tuple(x.shape)}")
        return self.conv_last(self.stages(self.stem(x)))

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, E) embedding from the last map: GDC -> BN -> Linear -> BatchNorm1d."""
        if features.ndim != 4 or tuple(features.shape[1:]) != (self.num_features, *self.feature_size):
            raise ValueError(f"expected a (B, {self.num_features}, {self.feature_size[0]}, {self.feature_size[1]}) "
                             f"map, got shape {tuple(features.shape)}")
        return self.bn(self.embedding(self.gdc(features)))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register("face_swin", family="swin", task="face", num_classes=128)
def face_swin(embedding_dim: int = 128, img_size: int = 64, in_chans: int = 3, *, embedding_norm: bool = True,
              **overrides: Any) -> nn.Module:
    """kdlab's timm Swin as a face embedder: ``forward(x)`` -> (B, ``embedding_dim``) (avg pool -> Linear -> BN).

    Defaults :data:`FACE_SWIN_DEFAULTS` (patch 4, window 4, embed 48, depths (2, 2, 2)); ``overrides`` replace
    them (e.g. ``patch_size=2, embed_dim=32`` for the registry's ``swin``). ``forward_features(x)`` gives timm's
    normed (B, h, w, C) tokens of the last stage.

    ``embedding_norm`` [our choice, as MobileFaceNet's head and insightface's backbones]: the head's Linear (no
    bias) is followed by a BatchNorm1d. Without it the pooled tokens of similar faces share one large common
    direction, every cosine starts near 1 and a margin loss trains very slowly (measured: CosFace train loss 3.1
    against 0.4 after 8 epochs on 2000 faces).
    """
    check_int("embedding_dim", embedding_dim, low=1)
    try:
        model = swin_transformer(embedding_dim, img_size, in_chans, **{**FACE_SWIN_DEFAULTS, **overrides})
    except TypeError as err:
        raise ValueError(f"bad keyword for face_swin: {err}") from None
    if embedding_norm:
        fc = model.head.fc
        model.head.fc = nn.Sequential(nn.Linear(fc.in_features, embedding_dim, bias=False),
                                      nn.BatchNorm1d(embedding_dim))
    return model
