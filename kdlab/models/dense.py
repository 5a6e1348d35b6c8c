r"""Dense-prediction models: per-pixel outputs at the input size, sized for 64x64 inputs.

============= ======== ====================================================================
name           family   architecture (defaults; every keyword can be overridden in ``create``)
============= ======== ====================================================================
seg_cnn        cnn      segmentation (:class:`SegCNN`): encoder widths 32/64/128/192 (strides 2-16), FPN
                        decoder dim 64 -> 64 x H/4 x W/4 features, 11 classes (~0.95 M)
seg_cnn_small  cnn      the same at half width: 16/32/64/96, decoder dim 32 (~0.24 M)
depth_student  cnn      depth (DisDepth's CNN student, :func:`depth_student`): ResNet-style encoder
                        16/24/48/96, simple decoder, AdaBins-style bins head (~0.43 M)
depth_teacher_swin swin depth (DisDepth's Transformer teacher, :func:`depth_teacher`): Swin patch 4,
                        window 4, embed 48, depths 2/2/2, same decoder style (~1.36 M)
============= ======== ====================================================================

**Segmentation** (task ``segmentation``): :class:`SegCNN` wraps a timm ResNet-style encoder
(:func:`kdlab.models.cnn.resnet`) and outputs (B, K, H, W) pixel logits.

**Depth** (task ``depth``, DisDepth, ``papers/disdepth.md`` §2.1, §3.2): a Transformer teacher and a CNN
student that share one decoder design; they output (B, 1, H, W) metric depth, ``num_classes`` is ignored
(build them with ``create("depth_student", img_size=64)``; the Swin teacher only accepts the ``img_size`` it
was built for).

Both depth models are a :class:`DepthNet`: an **encoder** giving multi-scale maps $F_l\in\mathbb{R}^{B\times
C_l\times H_l \times W_l}$ at strides 4, 8 and 16 [our choice for the levels: §3.2's workbook scale], and a
:class:`DepthDecoder`, so that

$$\hat y = \texttt{forward\_head}(\texttt{forward\_features}(x)),\qquad \texttt{forward\_features}(x) =
  [F_4, F_8, F_{16}] .$$

``forward_features`` returns the encoder maps (what the decoder consumes and what DisDepth distils), and
``forward_head`` is the decoder plus the depth head. DisDepth's **ghost decoder** is the student's
``forward_head`` run on acclimated teacher maps, which is why every level must keep the student's shape.

**Decoder** (the paper's "simple decoder" of convolutions and upsampling [paper]; exact form [our choice]):
1x1 laterals $L_l$ to a common width $D$, a top-down path with bilinear upsampling $\uparrow$ and skip sums,
and a 3x3 conv + ReLU $S_l$ at every level,

$$P_{16} = S_{16}(L_{16}F_{16}),\qquad P_l = S_l\big(L_lF_l + {\uparrow}P_{2l}\big),\quad l = 8, 4 .$$

No normalisation layers [our choice], so the ghost path (the same decoder on teacher maps) has no batch
statistics to share with the student.

**Heads** on $P_4$, predicting metric depth in $(d_{min}, d_{max})$ at stride 4, then bilinearly upsampled
by 4 to the input size (a convex combination, so the range is kept):

* ``"sigmoid"``: $\hat y = d_{min} + (d_{max}-d_{min})\,\sigma(W P_4 + b)$ (the spec's "sigmoid·$d_{max}$"
  option, shifted so that $\hat y > d_{min} > 0$ and the log in SILog is always defined).
* ``"bins"`` (AdaBins [official code]): raw widths $o$ from the globally pooled bottleneck $F_{16}$ through a
  2-layer MLP [our choice], $w = \mathrm{ReLU}(o) + 0.1$ normalised to sum to 1 and scaled by
  $d_{max}-d_{min}$; edges $e = d_{min} + [0, \mathrm{cumsum}(w)]$, centres $c_k = (e_k + e_{k+1})/2$;
  per-pixel probabilities $\pi = \mathrm{softmax}_k(W P_4 + b)$ and $\hat y(p) = \sum_k \pi_k(p)\,c_k$.

Depth builders (registered as ``depth_student`` and ``depth_teacher_swin``; never pretrained):

============== ============================================================================= ==========
builder         encoder (defaults at 64 px)                                                   params
============== ============================================================================= ==========
depth_student   timm ResNet-style ByobNet, 3x3 stride-2 stem, widths 16/24/48/96, depths      ~0.43 M
                1/1/2/2 (strides 2-16, the last three used); decoder $D=32$; bins head 32
depth_teacher   timm Swin, patch 4, window 4, embed 48, depths 2/2/2, heads 3/6/12            ~1.36 M
                (grids 16/8/4); decoder $D=48$; bins head 32. ``arch="vit"``: timm ViT,
                patch 4, dim 144, depth 6, blocks 2/4/6 pooled to strides 4/8/16              ~1.40 M
============== ============================================================================= ==========

The Swin and ViT encoders are built for one ``img_size`` (timm's patch embedding checks it).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.models._features import feature_take_indices  # the indices rule of timm's forward_intermediates
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from ..checks import check_choice, check_int, check_range, is_int
from .cnn import resnet  # the timm ResNet-style builder: SegCNN's and the depth student's encoders
from .registry import register, register_family_class

SEG_NUM_CLASSES = 11
"""Default pixel classes of the segmentation models: background + the 10 shape classes (``kdlab.data.shapes``
masks store 0 on background and 1 + k on an object of class k)."""
HEADS = ("sigmoid", "bins")
TEACHER_ARCHS = ("swin", "vit")
DEPTH_RANGE = (0.5, 10.0)
"""Default (d_min, d_max) in metres: the range of the procedural scenes (spec §3.2)."""
BIN_WIDTH_FLOOR = 0.1  # AdaBins' "+ 0.1" on the raw widths, before normalisation
OUTPUT_STRIDE = 4


def _check_multiple(name: str, value: object, step: int, why: str = "") -> int:
    """``value`` as an ``int``; ``ValueError`` unless it is a positive multiple of ``step``."""
    if not is_int(value, step) or value % step:
        raise ValueError(f"{name} must be a positive multiple of {step}{why}, got {value!r}")
    return int(value)


def _check_depth_range(min_depth: float, max_depth: float) -> tuple[float, float]:
    return check_range("(min_depth, max_depth)", (min_depth, max_depth), low=0.0)


# ----------------------------------------------------------------------------------------- segmentation


class SegCNN(nn.Module):
    r"""A small CNN encoder-decoder for semantic segmentation, with the interface of
    :class:`kdlab.methods.swtat.SegmentationTaT`: ``forward(x) == forward_head(forward_features(x))``.

    **Encoder**: timm's ResNet-style ByobNet (:func:`kdlab.models.cnn.resnet`), a 3x3 stride-2 stem and 4 stages of
    basic blocks, giving maps $E_2, E_4, E_8, E_{16}$ at strides 2, 4, 8, 16 (32, 16, 8, 4 px at 64 px).

    **Decoder** (FPN-style top-down path, width $D$): 1x1 laterals $L_s$ and bilinear upsampling $\uparrow$,

    $$P_{16}=L_{16}E_{16},\quad P_8=L_8E_8+{\uparrow}P_{16},\quad P_4=L_4E_4+{\uparrow}P_8,\quad
      F=\mathrm{BN}(\mathrm{Conv}_{3\times3}P_4)\in\mathbb{R}^{D\times H/4\times W/4}.$$

    ``forward_features(x)`` returns $F$, the stride-4 map to distil (16x16 at 64 px), taken before the
    ReLU like TaT-seg's decoder output. ``forward_head(F)`` $=\uparrow_{\times4}(W\,\mathrm{ReLU}(F)+b)$: a
    1x1 classifier, then bilinear upsampling to the input size, giving (B, K, H, W) pixel logits.
    Input sides must be multiples of 4 (the output stride).

    ``forward_intermediates`` (hence :func:`~kdlab.models.stage_features`) yields 5 "stages" in computation
    order: the 4 encoder maps, then $F$; the last one is finer than the one before it.
    """

    output_stride = 4

    def __init__(self, num_classes: int = SEG_NUM_CLASSES, in_chans: int = 3, *, widths=(32, 64, 128, 192),
                 depths=(1, 1, 1, 1), decoder_dim: int = 64, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"a segmentation encoder has 4 stages (strides 2, 4, 8, 16), got widths {widths}")
        check_int("decoder_dim", decoder_dim, low=1)
        self.num_classes = num_classes
        self.encoder = resnet(0, None, in_chans, widths=widths, depths=depths, drop_path_rate=drop_path_rate,
                               stem_stride=2)
        self.lateral = nn.ModuleList(nn.Conv2d(w, decoder_dim, 1) for w in widths[1:])  # strides 4, 8, 16
        self.fuse = nn.Sequential(nn.Conv2d(decoder_dim, decoder_dim, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(decoder_dim))
        self.head_drop = nn.Dropout(drop_rate)
        self.classifier = nn.Conv2d(decoder_dim, num_classes, 1)

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[-2] % self.output_stride or x.shape[-1] % self.output_stride:
            raise ValueError(f"expected a (B, C, H, W) batch with H and W multiples of {self.output_stride}, "
                             f"got shape {tuple(x.shape)}")

    def _decode(self, encoded: list[Tensor]) -> Tensor:
        """The top-down path over the stride-4, 8 and 16 maps -> F (pre-ReLU)."""
        p = self.lateral[-1](encoded[-1])
        for lateral, e in zip(reversed(self.lateral[:-1]), reversed(encoded[1:-1])):
            p = lateral(e) + F.interpolate(p, size=e.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(p)

    def forward_features(self, x: Tensor) -> Tensor:
        """The (B, D, H/4, W/4) decoder map (before the ReLU): the map distillation methods use."""
        self._check_input(x)
        return self._decode(self.encoder.forward_intermediates(x, intermediates_only=True))

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, K, 4h, 4w) pixel logits from the (B, D, h, w) map; ``pre_logits`` returns ReLU(F) instead."""
        features = self.head_drop(F.relu(features))
        if pre_logits:
            return features
        logits = self.classifier(features)
        return F.interpolate(logits, scale_factor=self.output_stride, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: Tensor, indices: int | list[int] | None = None,
                              intermediates_only: bool = False) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm-style: the chosen stages (``None`` all 5, an int ``n`` the last ``n``, or a list of indices)
        of [E_2, E_4, E_8, E_16, F], plus the final map F unless ``intermediates_only``."""
        self._check_input(x)
        take, _ = feature_take_indices(5, indices)
        encoded = self.encoder.forward_intermediates(x, intermediates_only=True)
        final = self._decode(encoded)
        stages = [*encoded, final]
        intermediates = [stages[i] for i in take]
        return intermediates if intermediates_only else (final, intermediates)


register_family_class(SegCNN, "cnn")


@register("seg_cnn", family="cnn", task="segmentation", num_classes=SEG_NUM_CLASSES,
          defaults=dict(widths=(32, 64, 128, 192), decoder_dim=64))
@register("seg_cnn_small", family="cnn", task="segmentation", num_classes=SEG_NUM_CLASSES,
          defaults=dict(widths=(16, 32, 64, 96), decoder_dim=32))
def seg_cnn(num_classes: int, img_size: int, in_chans: int, **kwargs) -> SegCNN:
    """A :class:`SegCNN` for ``img_size`` inputs (a multiple of its output stride, 4)."""
    _check_multiple("img_size", img_size, SegCNN.output_stride, " for segmentation models")
    return SegCNN(num_classes, in_chans, **kwargs)


# ------------------------------------------------------------------------------------------------ heads


def bin_centers(raw_widths: Tensor, min_depth: float, max_depth: float) -> tuple[Tensor, Tensor, Tensor]:
    r"""AdaBins' bins from raw widths $o$ (B, n_b): returns ``(widths, edges, centres)``.

    $w = (\mathrm{ReLU}(o) + 0.1) / \sum(\mathrm{ReLU}(o) + 0.1)\cdot(d_{max}-d_{min})$ (B, n_b), edges
    $d_{min} + [0, \mathrm{cumsum}(w)]$ (B, n_b + 1), centres the edge midpoints (B, n_b): strictly
    increasing inside $(d_{min}, d_{max})$.
    """
    _check_depth_range(min_depth, max_depth)
    if raw_widths.ndim != 2 or raw_widths.shape[1] < 1:
        raise ValueError(f"expected raw bin widths of shape (B, n_bins), got {tuple(raw_widths.shape)}")
    widths = F.relu(raw_widths) + BIN_WIDTH_FLOOR
    widths = widths / widths.sum(dim=1, keepdim=True) * (max_depth - min_depth)
    edges = F.pad(torch.cumsum(widths, dim=1), (1, 0), value=0.0) + min_depth
    return widths, edges, 0.5 * (edges[:, :-1] + edges[:, 1:])


class SigmoidHead(nn.Module):
    r"""$\hat y = d_{min} + (d_{max}-d_{min})\,\sigma(\mathrm{Conv}_{1\times1}(P))$: (B, D, h, w) -> (B, 1, h, w)."""

    def __init__(self, dim: int, min_depth: float = DEPTH_RANGE[0], max_depth: float = DEPTH_RANGE[1]) -> None:
        super().__init__()
        _check_depth_range(min_depth, max_depth)
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.conv = nn.Conv2d(dim, 1, 1)

    def forward(self, decoded: Tensor, bottleneck: Tensor | None = None) -> Tensor:
        return self.min_depth + (self.max_depth - self.min_depth) * torch.sigmoid(self.conv(decoded))


class BinsHead(nn.Module):
    r"""AdaBins-style head: adaptive bin centres from the pooled bottleneck, per-pixel bin probabilities.

    ``forward(decoded, bottleneck)`` -> (B, 1, h, w) depth $\sum_k\pi_k c_k$; :meth:`bins` also returns the
    widths, edges, centres (B, n_b) and probabilities (B, n_b, h, w). The width MLP is
    Linear($C_{16}\to$ ``hidden``) -> ReLU -> Linear(``hidden`` $\to n_b$) [our choice].
    """

    def __init__(self, dim: int, bottleneck_channels: int, n_bins: int = 32, hidden: int = 64,
                 min_depth: float = DEPTH_RANGE[0], max_depth: float = DEPTH_RANGE[1]) -> None:
        super().__init__()
        _check_depth_range(min_depth, max_depth)
        check_int("n_bins", n_bins, low=2)
        self.min_depth, self.max_depth, self.n_bins = float(min_depth), float(max_depth), int(n_bins)
        self.widths = nn.Sequential(nn.Linear(bottleneck_channels, hidden), nn.ReLU(inplace=True),
                                    nn.Linear(hidden, n_bins))
        self.logits = nn.Conv2d(dim, n_bins, 1)

    def bins(self, decoded: Tensor, bottleneck: Tensor) -> dict[str, Tensor]:
        """``depth`` (B, 1, h, w), ``probs`` (B, n_b, h, w), ``widths``/``centres`` (B, n_b), ``edges`` (B, n_b+1)."""
        widths, edges, centres = bin_centers(self.widths(bottleneck.mean(dim=(2, 3))), self.min_depth,
                                             self.max_depth)
        probs = torch.softmax(self.logits(decoded), dim=1)
        depth = torch.einsum("bkhw,bk->bhw", probs, centres.to(probs.dtype)).unsqueeze(1)
        return {"depth": depth, "probs": probs, "widths": widths, "edges": edges, "centres": centres}

    def forward(self, decoded: Tensor, bottleneck: Tensor) -> Tensor:
        return self.bins(decoded, bottleneck)["depth"]


# ---------------------------------------------------------------------------------------------- decoder


class DepthDecoder(nn.Module):
    r"""The simple top-down decoder plus a depth head (module docstring): a list of maps, finest first,
    with channels ``in_channels`` and strides ``output_stride`` x 1, 2, 4, ... -> (B, 1, H, W) depth at
    ``output_stride`` times the finest map's size."""

    def __init__(self, in_channels: Sequence[int], dim: int = 32, head: str = "bins", n_bins: int = 32,
                 min_depth: float = DEPTH_RANGE[0], max_depth: float = DEPTH_RANGE[1],
                 output_stride: int = OUTPUT_STRIDE) -> None:
        super().__init__()
        check_choice("head", head, HEADS)
        if not in_channels or not all(is_int(c, 1) for c in in_channels):
            raise ValueError(f"in_channels must be a non-empty list of positive ints, got {in_channels!r}")
        check_int("dim", dim, low=1)
        check_int("output_stride", output_stride, low=1)
        self.in_channels, self.output_stride = tuple(int(c) for c in in_channels), int(output_stride)
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in self.in_channels)
        self.smooth = nn.ModuleList(nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(inplace=True))
                                    for _ in self.in_channels)
        self.head = (SigmoidHead(dim, min_depth, max_depth) if head == "sigmoid"
                     else BinsHead(dim, self.in_channels[-1], n_bins, min_depth=min_depth, max_depth=max_depth))

    def _check(self, features: Sequence[Tensor]) -> None:
        channels = tuple(f.shape[1] if f.ndim == 4 else None for f in features)
        if channels != self.in_channels:
            raise ValueError(f"the decoder expects {len(self.in_channels)} (B, C, h, w) maps with channels "
                             f"{self.in_channels} (finest first), got shapes {[tuple(f.shape) for f in features]}")

    def decode(self, features: Sequence[Tensor]) -> Tensor:
        """The fused (B, D, h, w) map $P_4$ at the finest map's size."""
        self._check(features)
        p = self.smooth[-1](self.lateral[-1](features[-1]))
        for lateral, smooth, f in zip(reversed(self.lateral[:-1]), reversed(self.smooth[:-1]),
                                      reversed(features[:-1])):
            p = smooth(lateral(f) + F.interpolate(p, size=f.shape[-2:], mode="bilinear", align_corners=False))
        return p

    def _upsample(self, depth: Tensor) -> Tensor:
        return F.interpolate(depth, scale_factor=self.output_stride, mode="bilinear", align_corners=False)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return self._upsample(self.head(self.decode(features), features[-1]))

    def bins(self, features: Sequence[Tensor]) -> dict[str, Tensor]:
        """The bins head's outputs (:meth:`BinsHead.bins`, at stride ``output_stride``), ``depth`` upsampled."""
        if not isinstance(self.head, BinsHead):
            raise ValueError("this decoder has a sigmoid head, not a bins head")
        out = self.head.bins(self.decode(features), features[-1])
        return {**out, "depth": self._upsample(out["depth"])}


# ---------------------------------------------------------------------------------------------- encoders


class ResNetEncoder(nn.Module):
    """timm's ResNet-style ByobNet (3x3 stride-2 stem, 4 stages of basic blocks at strides 2, 4, 8, 16);
    returns the stride-4, 8 and 16 maps."""

    def __init__(self, in_chans: int = 3, widths: Sequence[int] = (16, 24, 48, 96),
                 depths: Sequence[int] = (1, 1, 2, 2)) -> None:
        super().__init__()
        if len(widths) != 4 or len(depths) != 4:
            raise ValueError(f"the depth student's encoder has 4 stages (strides 2-16), got widths {widths} "
                             f"and depths {depths}")
        self.body = resnet(0, None, in_chans, widths=tuple(widths), depths=tuple(depths), stem_stride=2)
        # timm rounds stage widths up to multiples of 8 (12 -> 16): read what the stages really give
        self.channels = tuple(int(info["num_chs"]) for info in self.body.feature_info[1:])

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.body.forward_intermediates(x, intermediates_only=True)[1:])


class SwinEncoder(nn.Module):
    """timm Swin with 3 stages: (B, C, H/4, W/4), (B, 2C, H/8, W/8), (B, 4C, H/16, W/16) (NCHW, pre-norm)."""

    def __init__(self, img_size: int = 64, in_chans: int = 3, patch_size: int = 4, window_size: int = 4,
                 embed_dim: int = 48, depths: Sequence[int] = (2, 2, 2), num_heads: Sequence[int] = (3, 6, 12),
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if patch_size != OUTPUT_STRIDE or len(depths) != 3:
            raise ValueError(f"the Swin teacher needs patch_size {OUTPUT_STRIDE} and 3 stages (strides 4, 8, 16), "
                             f"got patch_size {patch_size} and depths {depths}")
        self.body = SwinTransformer(img_size=img_size, in_chans=in_chans, patch_size=patch_size,
                                    window_size=window_size, embed_dim=embed_dim, depths=tuple(depths),
                                    num_heads=tuple(num_heads), mlp_ratio=mlp_ratio, num_classes=0,
                                    drop_path_rate=drop_path_rate)
        self.channels = tuple(embed_dim * 2 ** i for i in range(3))

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.body.forward_intermediates(x, intermediates_only=True, output_fmt="NCHW"))


class ViTEncoder(nn.Module):
    """timm ViT (patch 4): the token maps after blocks ``taps`` (NCHW, stride 4), average-pooled by 1, 2 and 4
    into a stride-4/8/16 pyramid [our choice, a ViTDet-style simple pyramid]."""

    def __init__(self, img_size: int = 64, in_chans: int = 3, patch_size: int = 4, embed_dim: int = 144,
                 depth: int = 6, num_heads: int = 4, mlp_ratio: float = 3.0, taps: Sequence[int] = (1, 3, 5),
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if patch_size != OUTPUT_STRIDE or len(taps) != 3 or not all(is_int(t, 0) and t < depth for t in taps):
            raise ValueError(f"the ViT teacher needs patch_size {OUTPUT_STRIDE} and 3 block indices in 0..{depth - 1}, "
                             f"got patch_size {patch_size} and taps {taps}")
        self.body = VisionTransformer(img_size=img_size, in_chans=in_chans, patch_size=patch_size,
                                      embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                                      num_classes=0, drop_path_rate=drop_path_rate)
        self.taps = tuple(int(t) for t in taps)
        self.channels = (embed_dim,) * 3

    def forward(self, x: Tensor) -> list[Tensor]:
        maps = self.body.forward_intermediates(x, indices=list(self.taps), intermediates_only=True, output_fmt="NCHW")
        return [m if i == 0 else F.avg_pool2d(m, 2 ** i) for i, m in enumerate(maps)]


# ------------------------------------------------------------------------------------------------- model


class DepthNet(nn.Module):
    r"""Encoder + :class:`DepthDecoder`: ``forward(x) == forward_head(forward_features(x))`` -> (B, 1, H, W)
    metric depth in $(d_{min}, d_{max})$.

    ``forward_features(x)`` -> the encoder maps $[F_4, F_8, F_{16}]$ (finest first), ``forward_head(maps)`` ->
    depth. Input sides must be multiples of 16 (the coarsest stride).
    """

    def __init__(self, encoder: nn.Module, decoder: DepthDecoder) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        head = decoder.head
        self.min_depth, self.max_depth = head.min_depth, head.max_depth
        self.output_stride = decoder.output_stride
        self.reduction = decoder.output_stride * 2 ** (len(decoder.in_channels) - 1)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        if x.ndim != 4 or x.shape[-2] % self.reduction or x.shape[-1] % self.reduction:
            raise ValueError(f"expected a (B, C, H, W) batch with H and W multiples of {self.reduction}, "
                             f"got shape {tuple(x.shape)}")
        return list(self.encoder(x))

    def forward_head(self, features: Sequence[Tensor]) -> Tensor:
        return self.decoder(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _tag(model: DepthNet, name: str, family: str) -> DepthNet:
    model.kdlab_name, model.kdlab_family, model.kdlab_task = name, family, "depth"
    return model


def depth_student(img_size: int = 64, in_chans: int = 3, *, widths: Sequence[int] = (16, 24, 48, 96),
                  depths: Sequence[int] = (1, 1, 2, 2), decoder_dim: int = 32, head: str = "bins", n_bins: int = 32,
                  min_depth: float = DEPTH_RANGE[0], max_depth: float = DEPTH_RANGE[1]) -> DepthNet:
    """The CNN student (~0.43 M parameters by default): :class:`ResNetEncoder` + :class:`DepthDecoder`.

    ``img_size`` is only checked (a CNN takes any multiple of 16). Smoke scale (spec §3.2): halve the widths,
    ``n_bins=16``.
    """
    _check_multiple("img_size", img_size, 16)
    encoder = ResNetEncoder(in_chans, widths, depths)
    decoder = DepthDecoder(encoder.channels, decoder_dim, head, n_bins, min_depth, max_depth)
    return _tag(DepthNet(encoder, decoder), "depth_student", "cnn")


def depth_teacher(arch: str = "swin", img_size: int = 64, in_chans: int = 3, *, decoder_dim: int = 48,
                  head: str = "bins", n_bins: int = 32, min_depth: float = DEPTH_RANGE[0],
                  max_depth: float = DEPTH_RANGE[1], **encoder_kwargs) -> DepthNet:
    """The Transformer teacher: :class:`SwinEncoder` (``arch="swin"``, ~1.36 M) or :class:`ViTEncoder`
    (``"vit"``, ~1.40 M) + :class:`DepthDecoder`, for ``img_size`` inputs only. ``encoder_kwargs`` override the
    encoder's defaults (e.g. ``embed_dim=24, depths=(1, 1, 1), num_heads=(2, 2, 4)``)."""
    check_choice("arch", arch, TEACHER_ARCHS)
    _check_multiple("img_size", img_size, 16)
    cls = SwinEncoder if arch == "swin" else ViTEncoder
    try:
        encoder = cls(img_size, in_chans, **encoder_kwargs)
    except TypeError as err:
        raise ValueError(f"bad keyword for the {arch} teacher encoder: {err}") from None
    decoder = DepthDecoder(encoder.channels, decoder_dim, head, n_bins, min_depth, max_depth)
    return _tag(DepthNet(encoder, decoder), "depth_teacher", arch)


@register("depth_student", family="cnn", task="depth", num_classes=1)
def _registered_depth_student(num_classes: int, img_size: int, in_chans: int, **kwargs) -> DepthNet:
    """:func:`depth_student` for :func:`~kdlab.models.create` (a depth model has no classes)."""
    return depth_student(img_size, in_chans, **kwargs)


@register("depth_teacher_swin", family="swin", task="depth", num_classes=1)
def _registered_depth_teacher_swin(num_classes: int, img_size: int, in_chans: int, **kwargs) -> DepthNet:
    """:func:`depth_teacher` with the Swin encoder, for :func:`~kdlab.models.create`."""
    return depth_teacher("swin", img_size, in_chans, **kwargs)
