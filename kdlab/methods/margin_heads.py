r"""The face objective: margin heads over $\ell_2$-normalised embeddings (CosFace, ArcFace) and a plain
softmax head with their interface, used by every face method (:class:`~kdlab.methods.MarginSupervised`,
:class:`~kdlab.methods.FaceKD`, :class:`~kdlab.methods.CAFD`).

With $\ell_2$-normalised embedding $\hat e$ and class weights $\hat W_c$, $\cos\theta_c = \hat W_c^\top\hat e$; the
target class $y$ gets a margin, the others keep $s\cos\theta_c$:

$$\text{CosFace: } z_y = s(\cos\theta_y - m),\qquad
  \text{ArcFace: } z_y = \begin{cases} s\cos(\theta_y + m) & \theta_y + m \le \pi\\
                                        s(\cos\theta_y - m\sin m) & \text{otherwise}\end{cases}$$

(ArcFace's fallback is insightface's default, ``easy_margin=False``: $\cos(\theta+m)$ stops decreasing once
$\theta + m > \pi$, so there the CosFace-like $\cos\theta - m\sin m$ takes over; the target logit stays
increasing in $\cos\theta$, with a step from $-1$ down to $-\cos m - m\sin m$ at $\theta = \pi - m$.
``easy_margin=True`` applies the margin only where $\cos\theta_y > 0$.) Without labels, or in eval mode,
a head returns the plain $s\cos\theta$.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_choice, check_int, check_number
from ..models import dry_run

MARGINS = ("cosface", "arcface", "softmax")


def _check_cosine(cosine: Tensor, labels: Tensor) -> None:
    if cosine.ndim != 2:
        raise ValueError(f"expected (B, K) cosines, got shape {tuple(cosine.shape)}")
    if labels.ndim != 1 or labels.shape[0] != cosine.shape[0] or labels.is_floating_point():
        raise ValueError(f"expected ({cosine.shape[0]},) integer class labels, got {tuple(labels.shape)} "
                         f"({labels.dtype})")
    if labels.numel() and (labels.min() < 0 or labels.max() >= cosine.shape[1]):
        raise ValueError(f"labels must lie in [0, {cosine.shape[1]}), got values from {labels.min().item()} "
                         f"to {labels.max().item()}")


def cosface_logits(cosine: Tensor, labels: Tensor, s: float = 16.0, m: float = 0.2) -> Tensor:
    r"""$s(\cos\theta - m\,\mathrm{onehot}(y))$: CosFace's additive cosine margin on the target class."""
    _check_cosine(cosine, labels)
    onehot = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
    return s * (cosine - m * onehot)


def arcface_logits(cosine: Tensor, labels: Tensor, s: float = 16.0, m: float = 0.3,
                   easy_margin: bool = False) -> Tensor:
    r"""ArcFace's additive angular margin on the target class, insightface's ``CombinedMarginLoss`` rule.

    Target: $\cos(\theta_y + m) = \cos\theta_y\cos m - \sin\theta_y\sin m$ where $\cos\theta_y > \cos(\pi - m)$,
    else $\cos\theta_y - m\sin m$ (``easy_margin=False``, default); with ``easy_margin=True``,
    $\cos(\theta_y + m)$ where $\cos\theta_y > 0$, else $\cos\theta_y$. Times $s$; other classes $s\cos\theta_c$.
    The target cosine is clamped to $[-1+10^{-7}, 1-10^{-7}]$ so $\sin\theta$ keeps a finite gradient.
    """
    _check_cosine(cosine, labels)
    target = cosine.gather(1, labels[:, None]).clamp(-1 + 1e-7, 1 - 1e-7)
    sin = (1 - target * target).sqrt()
    with_margin = target * math.cos(m) - sin * math.sin(m)
    if easy_margin:
        target = torch.where(target > 0, with_margin, target)
    else:
        target = torch.where(target > math.cos(math.pi - m), with_margin, target - math.sin(math.pi - m) * m)
    return s * cosine.scatter(1, labels[:, None], target)


class MarginHead(nn.Module):
    r"""Shared body of :class:`CosFace` and :class:`ArcFace`: a (K, E) weight, $\cos\theta = \hat W\hat e$.

    ``forward(embeddings, labels=None)`` -> (B, K) logits: with labels and in training mode the margin is on
    the target class (:meth:`margin_logits`); otherwise $s\cos\theta$ (what evaluation and ``predict`` use).
    The weight starts from $\mathcal{N}(0, 0.01^2)$ (insightface).
    """

    def __init__(self, embed_dim: int, num_classes: int, s: float, m: float) -> None:
        super().__init__()
        self.embed_dim = check_int("embed_dim", embed_dim, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.s, self.m = check_number("s", s, low=0.0, strict=True), check_number("m", m, low=0.0)
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim).normal_(0, 0.01))

    def cosine(self, embeddings: Tensor) -> Tensor:
        """(B, K) cosines between the embeddings and the class weights."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"expected (B, {self.embed_dim}) embeddings, got shape {tuple(embeddings.shape)}")
        return F.normalize(embeddings, dim=1) @ F.normalize(self.weight, dim=1).t()

    def margin_logits(self, cosine: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        cosine = self.cosine(embeddings)
        if labels is None or not self.training:
            return self.s * cosine
        return self.margin_logits(cosine, labels)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_classes={self.num_classes}, s={self.s}, m={self.m}"


class CosFace(MarginHead):
    r"""CosFace / large-margin cosine loss head: $z_y = s(\cos\theta_y - m)$ (:func:`cosface_logits`).

    Defaults $s = 16$, $m = 0.2$: the small-scale workbook's [our choice]; paper scale uses $s = 64$,
    $m = 0.35$-$0.4$.
    """

    def __init__(self, embed_dim: int, num_classes: int, s: float = 16.0, m: float = 0.2) -> None:
        super().__init__(embed_dim, num_classes, s, m)

    def margin_logits(self, cosine: Tensor, labels: Tensor) -> Tensor:
        return cosface_logits(cosine, labels, self.s, self.m)


class ArcFace(MarginHead):
    r"""ArcFace / additive angular margin head: $z_y = s\cos(\theta_y + m)$ with insightface's fallback
    (:func:`arcface_logits`; ``easy_margin=False`` by default, as insightface's arcface_torch).

    Defaults $s = 16$, $m = 0.3$ [our choice for 64 px faces and ~100 identities]; paper scale $s = 64$,
    $m = 0.5$. Requires $0 \le m < \pi/2$.
    """

    def __init__(self, embed_dim: int, num_classes: int, s: float = 16.0, m: float = 0.3,
                 easy_margin: bool = False) -> None:
        super().__init__(embed_dim, num_classes, s, m)
        if not self.m < math.pi / 2:
            raise ValueError(f"ArcFace needs a margin m < pi/2, got {m}")
        self.easy_margin = bool(easy_margin)

    def margin_logits(self, cosine: Tensor, labels: Tensor) -> Tensor:
        return arcface_logits(cosine, labels, self.s, self.m, self.easy_margin)


class SoftmaxHead(nn.Module):
    """Plain linear classifier with the margin heads' interface (``labels`` is accepted and ignored)."""

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.embed_dim = check_int("embed_dim", embed_dim, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.fc = nn.Linear(embed_dim, num_classes)

    def forward(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"expected (B, {self.embed_dim}) embeddings, got shape {tuple(embeddings.shape)}")
        return self.fc(embeddings)


def margin_head(kind: str, embed_dim: int, num_classes: int, s: float | None = None,
                m: float | None = None) -> nn.Module:
    """``"cosface"`` (:class:`CosFace`), ``"arcface"`` (:class:`ArcFace`) or ``"softmax"`` (plain CE,
    :class:`SoftmaxHead`; ``s`` and ``m`` unused); ``None`` keeps a head's default ``s`` / ``m``."""
    check_choice("margin", kind, MARGINS)
    if kind == "softmax":
        return SoftmaxHead(embed_dim, num_classes)
    kwargs = {k: v for k, v in (("s", s), ("m", m)) if v is not None}
    return (CosFace if kind == "cosface" else ArcFace)(embed_dim, num_classes, **kwargs)


def face_img_size(img_size: int | None, *models: nn.Module) -> int:
    """``img_size``, else the first model's ``img_size`` attribute (MobileFaceNet) or timm patch-embed size, else 64."""
    if img_size is not None:
        return check_int("img_size", img_size, low=1)
    for model in models:
        size = getattr(model, "img_size", None) or getattr(getattr(model, "patch_embed", None), "img_size", None)
        if size is not None:
            return int(size if isinstance(size, numbers.Integral) else size[0])
    return 64


def embedding_width(model: nn.Module, img_size: int, in_chans: int) -> int:
    """$E$ of a face embedder ``model``: images -> (B, E), from one dry run."""
    out = dry_run(model, model, img_size, in_chans, batch=2)
    if out.ndim != 2:
        raise ValueError(f"the model must map images to (B, E) embeddings, got shape {tuple(out.shape)}")
    return out.shape[1]
