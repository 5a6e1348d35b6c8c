"""Every labels-only baseline: the student trained on its task's labels alone, no teacher.

Each is the "no KD" row its method's notebook compares with.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import Distiller
from .common import labelled_cross_entropy
from .depth_loss import depth_target, silog_loss
from .lgconv import convert_to_lgconv
from .margin_heads import embedding_width, face_img_size, margin_head


class Supervised(Distiller):
    """The classification (and segmentation) baseline: ``terms = {"ce": CE(z_s, y)}``."""

    def __init__(self, student: nn.Module, label_smoothing: float = 0.0) -> None:
        super().__init__(student)
        self.label_smoothing = label_smoothing

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student(x)
        return logits, {"ce": labelled_cross_entropy(logits, y, self.label_smoothing)}


class MarginSupervised(Distiller):
    r"""The face baseline: ``{"margin": CE(head(e, y), y)}`` with $e$ = ``student(x)``, a (B, E) embedding, and a
    margin ``head`` (``margin`` = cosface / arcface / softmax, :func:`~kdlab.methods.margin_head`).

    Pre-trains the Swin face teacher (:func:`kdlab.models.face_swin`) and gives the "student from scratch" row.
    ``forward`` and ``predict`` return the head's $s\cos\theta$ logits over the training identities (for
    accuracy); :meth:`embed` gives the embeddings (for verification). ``img_size`` (one dry run to read $E$)
    defaults to the student's ``img_size`` attribute or timm input size, else 64.
    """

    def __init__(self, student: nn.Module, num_classes: int, margin: str = "cosface", s: float | None = None,
                 m: float | None = None, img_size: int | None = None, in_chans: int = 3) -> None:
        super().__init__(student)
        width = embedding_width(student, face_img_size(img_size, student), in_chans)
        self.head = margin_head(margin, width, num_classes, s, m)

    def embed(self, x: Tensor) -> Tensor:
        return self.student(x)

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.student(x))

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        emb = self.student(x)
        return self.head(emb), {"margin": F.cross_entropy(self.head(emb, y), y)}


class DepthSupervised(Distiller):
    r"""The depth baseline: ``{"silog": L_SILog(student(x), y)}`` (:func:`~kdlab.methods.silog_loss`);
    ``lgconv=True`` converts the student's encoder in place first (DisDepth's "+ LGConv" row,
    :func:`~kdlab.methods.convert_to_lgconv`)."""

    def __init__(self, student: nn.Module, *, lgconv: bool = False, lgconv_heads: int = 4, lgconv_reduction: int = 4,
                 lgconv_init_std: float = 1e-4, variance_focus: float = 0.85, min_valid_depth: float = 1e-3,
                 in_chans: int = 3) -> None:
        super().__init__(student)
        if lgconv:
            convert_to_lgconv(getattr(student, "encoder", student), lgconv_heads, lgconv_reduction, lgconv_init_std,
                              stem_channels=in_chans)
        self.variance_focus, self.min_valid_depth = variance_focus, min_valid_depth

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        target, mask = depth_target(y, self.min_valid_depth)
        depth = self.student(x)
        return depth, {"silog": silog_loss(depth, target, mask, self.variance_focus)}
