"""`create(name, num_classes, ...)`: the tiny CNN / ViT / Swin / MLP-Mixer family, all built with timm.

Every classification model is a plain timm module (``pretrained=False``, nothing downloaded) sized for
32x32 inputs in [0, 1]; the segmentation models (:class:`SegCNN`) wrap a timm ResNet-style encoder and are
sized for 64x64. Each gets three attributes that the rest of kdlab reads: ``kdlab_name`` (registry key),
``kdlab_family`` (``cnn``, ``vit``, ``swin`` or ``mixer``) and ``kdlab_task`` (``classification`` or
``segmentation``).

============= ======== ====================================================================
name           family   architecture (defaults; every keyword can be overridden in ``create``)
============= ======== ====================================================================
cnn            cnn      ResNet-style, 4 stages of basic blocks, widths 32/64/128/256 (~1.2 M)
cnn_small      cnn      the same, widths 16/32/64/128 (~0.3 M)
vit            vit      ViT/DeiT-style, patch 4, dim 96, depth 4, 3 heads, MLP ratio 2
vit_distilled  vit      the same ViT plus DeiT's distillation token and head (``head_dist``)
swin           swin     Swin, patch 2, window 4, dims 32/64/128, depths 2/2/2
mixer          mixer    MLP-Mixer, patch 4, dim 128, 4 blocks
seg_cnn        cnn      segmentation: encoder widths 32/64/128/192 (strides 2-16), FPN decoder dim 64
                        -> 64 x H/4 x W/4 features, 11 classes (~0.95 M)
seg_cnn_small  cnn      the same at half width: 16/32/64/96, decoder dim 32 (~0.24 M)
depth_student  cnn      depth (DisDepth's CNN student, :func:`kdlab.models.depth.depth_student`): ResNet-style
                        encoder 16/24/48/96, simple decoder, AdaBins-style bins head (~0.43 M)
depth_teacher_swin swin depth (DisDepth's Transformer teacher, :func:`kdlab.models.depth.depth_teacher`):
                        Swin patch 4, window 4, embed 48, depths 2/2/2, same decoder style (~1.36 M)
face_cnn       cnn      face (CAFD's CNN student, :class:`kdlab.models.face.MobileFaceNet`): MobileFaceNet-style,
                        stem 32, bottleneck widths 48/64/96, GDC head -> 128-d embedding (~0.13 M)
face_swin      swin     face (CAFD's Transformer teacher, :func:`kdlab.models.face.face_swin`): Swin patch 4,
                        window 4, embed 48, depths 2/2/2, avg pool -> Linear -> BN -> 128-d embedding (~0.9 M)
============= ======== ====================================================================

Depth models (task ``depth``) output (B, 1, H, W) metric depth; ``num_classes`` is ignored and they are
sized for 64x64 inputs: build them with ``create("depth_student", img_size=64)`` (the Swin teacher only
accepts the ``img_size`` it was built for).

Face models (task ``face``) output (B, E) **embeddings**, not logits: ``num_classes`` is the embedding width E
(default 128); identities are scored by a margin head (:class:`kdlab.methods.cafd.MarginSupervised`) in
training and by cosine similarity in verification. Build them at the face size, e.g.
``create("face_cnn", img_size=64)`` (both only accept the ``img_size`` they were built for).

:func:`list_models` lists the classification models unless asked for another ``task``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn.functional as F
from torch import Tensor, nn
from timm.models._features import feature_take_indices  # the indices rule of timm's forward_intermediates
from timm.models.byobnet import ByobNet, ByoBlockCfg, ByoModelCfg
from timm.models.deit import VisionTransformerDistilled
from timm.models.mlp_mixer import MlpMixer
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer

FAMILIES = ("cnn", "vit", "swin", "mixer")
TASKS = ("classification", "segmentation", "depth", "face")
SEG_NUM_CLASSES = 11
"""Default pixel classes of the segmentation models: background + the 10 shape classes (``kdlab.data.shapes``
masks store 0 on background and 1 + k on an object of class k)."""
VIT_DEFAULTS = dict(patch_size=4, embed_dim=96, depth=4, num_heads=3, mlp_ratio=2.0)


def _resnet(num_classes: int, img_size: int, in_chans: int, *, widths, depths, drop_path_rate=0.0,
            stem_stride: int = 1) -> nn.Module:
    """ResNet-style CNN from timm's ByobNet: 3x3 stem (stride ``stem_stride``), stage 1 at the stem's
    resolution, then /2 per stage."""
    if len(widths) != len(depths):
        raise ValueError(f"widths {widths} and depths {depths} must have the same length")
    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
    blocks = tuple(
        ByoBlockCfg(type="basic", d=depth, c=width, s=1 if i == 0 else 2, br=1.0)
        for i, (width, depth) in enumerate(zip(widths, depths))
    )
    cfg = ByoModelCfg(blocks=blocks, stem_chs=widths[0], stem_type="", stem_pool="", num_features=0)
    model = ByobNet(cfg, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                    drop_path_rate=drop_path_rate)
    model.stem.conv.stride = (stem_stride, stem_stride)  # timm's stems all stride 2; at 32x32 we keep stride 1
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


class SegCNN(nn.Module):
    r"""A small CNN encoder-decoder for semantic segmentation, with the interface of
    :class:`kdlab.methods.swtat.SegmentationTaT`: ``forward(x) == forward_head(forward_features(x))``.

    **Encoder**: timm's ResNet-style ByobNet (:func:`_resnet`), a 3x3 stride-2 stem and 4 stages of basic
    blocks, giving maps $E_2, E_4, E_8, E_{16}$ at strides 2, 4, 8, 16 (32, 16, 8, 4 px at 64 px).

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
        if isinstance(decoder_dim, bool) or not isinstance(decoder_dim, int) or decoder_dim < 1:
            raise ValueError(f"decoder_dim must be a positive int, got {decoder_dim!r}")
        self.num_classes = num_classes
        self.encoder = _resnet(0, None, in_chans, widths=widths, depths=depths, drop_path_rate=drop_path_rate,
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


def _seg_cnn(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    if img_size % SegCNN.output_stride:
        raise ValueError(f"img_size must be a multiple of {SegCNN.output_stride} for segmentation models, "
                         f"got {img_size}")
    return SegCNN(num_classes, in_chans, **kwargs)


def _depth_student(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    from .depth import depth_student  # depth.py imports this module (the ResNet builder)

    return depth_student(img_size, in_chans, **kwargs)


def _depth_teacher_swin(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    from .depth import depth_teacher

    return depth_teacher("swin", img_size, in_chans, **kwargs)


def _face_cnn(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    from .face import MobileFaceNet  # face.py imports this module (create)

    return MobileFaceNet(num_classes, img_size, in_chans, **kwargs)


def _face_swin(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    from .face import face_swin

    return face_swin(num_classes, img_size, in_chans, **kwargs)


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: the family, the builder, its default keywords, the task and the default class count."""

    family: str
    build: Callable[..., nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    task: str = "classification"
    num_classes: int = 10


MODELS: dict[str, ModelSpec] = {
    "cnn": ModelSpec("cnn", _resnet, dict(widths=(32, 64, 128, 256), depths=(1, 1, 1, 1))),
    "cnn_small": ModelSpec("cnn", _resnet, dict(widths=(16, 32, 64, 128), depths=(1, 1, 1, 1))),
    "vit": ModelSpec("vit", _vit, VIT_DEFAULTS),
    "vit_distilled": ModelSpec("vit", _vit_distilled, VIT_DEFAULTS),
    "swin": ModelSpec("swin", _swin, dict(patch_size=2, window_size=4, embed_dim=32, depths=(2, 2, 2),
                                          num_heads=(2, 4, 8), mlp_ratio=2.0)),
    "mixer": ModelSpec("mixer", _mixer, dict(patch_size=4, embed_dim=128, num_blocks=4)),
    "seg_cnn": ModelSpec("cnn", _seg_cnn, dict(widths=(32, 64, 128, 192), decoder_dim=64),
                         task="segmentation", num_classes=SEG_NUM_CLASSES),
    "seg_cnn_small": ModelSpec("cnn", _seg_cnn, dict(widths=(16, 32, 64, 96), decoder_dim=32),
                               task="segmentation", num_classes=SEG_NUM_CLASSES),
    "depth_student": ModelSpec("cnn", _depth_student, task="depth", num_classes=1),
    "depth_teacher_swin": ModelSpec("swin", _depth_teacher_swin, task="depth", num_classes=1),
    "face_cnn": ModelSpec("cnn", _face_cnn, task="face", num_classes=128),
    "face_swin": ModelSpec("swin", _face_swin, task="face", num_classes=128),
}


def list_models(task: str | None = "classification") -> list[str]:
    """Names accepted by :func:`create` for ``task`` (``classification``, ``segmentation``, ``depth``, ``face``;
    ``None``: all)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)} or None")
    return sorted(name for name, spec in MODELS.items() if task is None or spec.task == task)


def create(name: str, num_classes: int | None = None, img_size: int = 32, in_chans: int = 3,
           **overrides: Any) -> nn.Module:
    """Build registry model ``name`` with freshly initialised weights (never pretrained, never downloaded).

    ``num_classes`` defaults to the model's (10 for classification, :data:`SEG_NUM_CLASSES` for
    segmentation, the embedding width 128 for face models; depth models ignore it). ``overrides`` replace the registry defaults, e.g. ``create("vit", depth=6, embed_dim=128)``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models(None))}")
    spec = MODELS[name]
    num_classes = spec.num_classes if num_classes is None else num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(img_size, int) or img_size < 8:
        raise ValueError(f"img_size must be an int >= 8, got {img_size!r}")
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
    for cls, fam in ((VisionTransformer, "vit"), (SwinTransformer, "swin"), (MlpMixer, "mixer"), (ByobNet, "cnn"),
                     (SegCNN, "cnn")):
        if isinstance(model, cls):
            return fam
    raise ValueError(f"cannot tell the family of {type(model).__name__}; build it with kdlab.models.create")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
