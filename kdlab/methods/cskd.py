r"""CSKD: Cumulative Spatial Knowledge Distillation for Vision Transformers (Zhao, Song, Liang, ICCV 2023).

A CNN teacher helps a ViT early (locality) but holds it back late (its features sit at another semantic
level, and a ViT can already integrate global information). CSKD skips intermediate features: it applies
the CNN's own classifier at **every location** of its last feature map and supervises the ViT's patch
tokens with these dense hard labels, blended from local to global over training.

**Dense teacher predictions.** With the teacher's last map $F\in\mathbb{R}^{N\times C\times h\times w}$ and
its GAP + Linear head $W\in\mathbb{R}^{K\times C}$, $b\in\mathbb{R}^K$,

$$P^T[n,:,i,j] = W\,F[n,:,i,j] + b,\qquad
  P^T_g = \frac{1}{hw}\sum_{i,j}P^T[:,:,i,j] = W\,\mathrm{GAP}(F) + b,$$

so the global logits are exactly the teacher's ordinary logits (the head is linear).

**Dense student predictions.** With the distilled ViT's tokens $X\in\mathbb{R}^{N\times(2+g^2)\times D}$
after the final LayerNorm, $z_{cls}=\mathrm{head}(X_{:,0})$, $z_{dist}=\mathrm{head\_dist}(X_{:,1})$ and the
patch tokens share the distillation head, $P^S=\mathrm{head\_dist}(X_{:,2:})$, laid on the $g\times g$ grid in
row-major token order and average-pooled **as logits** to the teacher's $h\times w$ grid ($g$ a multiple of $h$).

**Cumulative Knowledge Fusion.** Per-location hard targets fuse dense and global logits (in logit space):

$$Y^T[n,i,j] = \arg\max_c\big(\omega\,P^T[n,c,i,j] + (1-\omega)\,P^T_g[n,c]\big),$$

where $\omega$ (the paper's $\alpha$; kdlab keeps $\alpha$ for Hinton KD's weight), the weight of the **dense** logits, decreases over training: the code calls it ``dense_share``
(the share of the fused target taken from the teacher's dense prediction) and :func:`ckf_share` is its schedule.
Official code: per epoch, $\omega(e) = 1 - e/E$ for $e=0,\dots,E-1$ (so $\omega(E-1)=1/E$, never 0), or
$(1-x)^2$ or $\cos(\pi x/2)$ with $x=e/E$, where $e=\min(\lfloor E\cdot\mathrm{progress}\rfloor, E-1)$ for training
progress in [0, 1]. [our choice] A per-iteration share with $e=E\cdot\mathrm{progress}$ is an option.

**Objective** (DeiT plumbing, official code; the paper's $\tfrac12,\tfrac12,1$ at $\lambda_{\text{deit}}=0.5$, $\lambda_{\text{cskd}}=1$):

$$\mathcal{L}_{CSKD} = \frac{1}{Nhw}\sum_{n,i,j}\mathrm{CE}\big(\mathrm{pool}(P^S)[n,:,i,j],\,Y^T[n,i,j]\big),$$
$$\mathcal{L} = (1-\lambda_{\text{deit}})\,\mathrm{CE}(z_{cls}, y) + \lambda_{\text{deit}}\,\mathrm{CE}\big(z_{dist}, \arg\max_c P^T_g\big)
  + \lambda_{\text{cskd}}\,\mathcal{L}_{CSKD}.$$

The weights are ``deit_weight`` ($\lambda_{\text{deit}}$, DeiT's $a$; CE gets the complement) and ``cskd_weight``
($\lambda_{\text{cskd}}$, the paper's $\lambda$). $\lambda_{\text{cskd}}=0$ is DeiT hard distillation (:class:`DeiTHard`); $\omega\equiv1$ is
spatial-only CSKD (no CKF).
**Inference** averages three outputs (plain DeiT averages the first two):

$$\hat z = \tfrac13\Big(z_{cls} + z_{dist} + \tfrac{1}{g^2}\textstyle\sum_j P^S_j\Big).$$

[our choice] Only the hard targets of the paper's default; no soft (KL) variants.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.models.deit import VisionTransformerDistilled
from torch import Tensor, nn

from ..checks import check_choice, check_fraction, check_int, check_same_shape, check_weights
from ..models import tokens_to_map
from .base import Distiller
from .common import check_progress, epoch_at, teacher_pass, teacher_token

CKF_SCHEDULES = {  # the CKF dense share as a function of x = e / E in [0, 1]
    "linear": lambda x: 1.0 - x,
    "x2": lambda x: (1.0 - x) ** 2,
    "cos": lambda x: math.cos(math.pi * x / 2),
}


# ------------------------------------------------------------------------------------------ teacher


def dense_teacher_logits(feature_map: Tensor, classifier: nn.Linear) -> Tensor:
    r"""$P^T[n,:,i,j] = W\,F[n,:,i,j] + b$: the classifier, bias included, at every location.

    (N, C, h, w) -> (N, K, h, w). For a GAP + Linear head the spatial mean is the teacher's logits $P^T_g$.
    """
    if not isinstance(classifier, nn.Linear):
        raise ValueError(f"classifier must be an nn.Linear, got {type(classifier).__name__}")
    if feature_map.ndim != 4 or feature_map.shape[1] != classifier.in_features:
        raise ValueError(f"expected an (N, {classifier.in_features}, h, w) feature map for a classifier with "
                         f"{classifier.in_features} inputs, got shape {tuple(feature_map.shape)}")
    return classifier(feature_map.movedim(1, -1)).movedim(-1, 1)


def gap_linear_classifier(teacher: nn.Module) -> nn.Linear:
    r"""The teacher's classifier $(W, b)$, after checking that its head is GAP -> Linear.

    The check is a probe: on a fixed random (2, C, 3, 3) map, ``teacher.forward_head`` must equal the spatial
    mean of :func:`dense_teacher_logits` (in fp32; the head must be in eval mode if it has dropout, as a
    Distiller keeps it). Max pooling, a pre-logits MLP or a token head (ViT) fail it: for them the mean of the
    dense logits is not the teacher's output.
    """
    get_classifier = getattr(teacher, "get_classifier", None)
    classifier = get_classifier() if callable(get_classifier) else None
    expected = f"CSKD needs a CNN teacher whose head is global average pooling -> Linear; {type(teacher).__name__}"
    if not isinstance(classifier, nn.Linear):
        raise ValueError(f"{expected}'s classifier is {type(classifier).__name__}, not an nn.Linear")
    generator = torch.Generator().manual_seed(0)  # leaves the global RNG alone
    weight = classifier.weight
    probe = torch.randn(2, classifier.in_features, 3, 3, generator=generator).to(weight.device, weight.dtype)
    with torch.no_grad(), torch.autocast(probe.device.type, enabled=False):
        try:
            head = teacher.forward_head(probe)
        except RuntimeError:
            head = None
        dense_mean = dense_teacher_logits(probe, classifier).mean(dim=(2, 3))
    if head is None or head.shape != dense_mean.shape or not torch.allclose(head, dense_mean, rtol=1e-4, atol=1e-4):
        raise ValueError(f"{expected}'s forward_head is not the spatial mean of its per-location logits")
    return classifier


def dense_and_global_logits(teacher: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    r"""$(P^T, P^T_g)$ of a CNN teacher (eval mode) on images ``x``: (N, K, h, w) and their spatial mean (N, K).

    Works for any timm CNN with ``forward_features`` (the last map) and a GAP + Linear head (checked by
    :func:`gap_linear_classifier`), e.g. ``create("cnn")``. Gradients flow unless the caller disables them.
    """
    dense = dense_teacher_logits(teacher.forward_features(x), gap_linear_classifier(teacher))
    return dense, dense.mean(dim=(2, 3))


# ------------------------------------------------------------------------------------------ student


def is_distilled_vit(model: nn.Module) -> bool:
    """True for a distilled ViT (timm's ``VisionTransformerDistilled``: class and distillation tokens, ``head_dist``)."""
    return isinstance(model, VisionTransformerDistilled)


def check_distilled_vit(student: nn.Module) -> None:
    """Raise a ``ValueError`` unless ``student`` is a distilled ViT (:func:`is_distilled_vit`)."""
    if not is_distilled_vit(student):
        raise ValueError("expected a distilled ViT student (timm's VisionTransformerDistilled, e.g. "
                         f"kdlab.models.create('vit_distilled')), got {type(student).__name__}")


def distilled_vit_logits(student: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""$(z_{cls}, z_{dist}, P^S)$: (N, K), (N, K) and the (N, K, g, g) dense logits, from one forward.

    All tokens come after the final LayerNorm (and timm's ``head_drop``). ``head_dist`` runs on every token:
    token 1 is the distillation token, tokens 2.. are the patches, laid back on the grid row-major.
    """
    check_distilled_vit(student)
    tokens = student.head_drop(student.forward_features(x))
    token_logits = student.head_dist(tokens)
    dense = tokens_to_map(token_logits, tuple(student.patch_embed.grid_size), student.num_prefix_tokens)
    return student.head(tokens[:, 0]), token_logits[:, 1], dense


def pool_student_logits(student_dense: Tensor, grid: Sequence[int]) -> Tensor:
    r"""$\mathrm{pool}(P^S)$: average-pool (N, K, g, g) logits to the teacher's (h, w) grid.

    $g$ must be a multiple of $h$. [our choice] An adaptive pool: the official 2x2 kernel (14 -> 7) for any
    integer factor $g/h$.
    """
    grid = tuple(grid)
    if student_dense.ndim != 4 or len(grid) != 2:
        raise ValueError(f"expected (N, K, g, g) student logits and an (h, w) grid, got shape "
                         f"{tuple(student_dense.shape)} and grid {grid}")
    size = tuple(student_dense.shape[2:])
    if any(t < 1 or s % t for s, t in zip(size, grid)):
        raise ValueError(f"the student's {size[0]}x{size[1]} patch grid must be an integer multiple of the "
                         f"teacher's {grid[0]}x{grid[1]} grid")
    return F.adaptive_avg_pool2d(student_dense, grid)


def cskd_prediction(cls_logits: Tensor, dist_logits: Tensor, student_dense: Tensor) -> Tensor:
    r"""$\hat z = \frac13(z_{cls} + z_{dist} + \mathrm{mean}_j P^S_j)$: CSKD's three-way inference average."""
    return (cls_logits + dist_logits + student_dense.mean(dim=(2, 3))) / 3


def student_heads(student: nn.Module, x: Tensor) -> dict[str, Tensor]:
    r"""Every readout of a distilled ViT from one forward, (N, K) each: the class token $z_{cls}$, the distillation
    token $z_{dist}$, the mean patch logits $rac{1}{g^2}\sum_j P^S_j$, DeiT's $rac12(z_{cls}+z_{dist})$ and CSKD's
    three-way average (:func:`cskd_prediction`). Notebook 02 follows them over training (§6.2)."""
    cls_logits, dist_logits, dense = distilled_vit_logits(student, x)
    return {"class token": cls_logits, "distillation token": dist_logits, "patch average": dense.mean(dim=(2, 3)),
            "DeiT average": (cls_logits + dist_logits) / 2,
            "CSKD average": cskd_prediction(cls_logits, dist_logits, dense)}


# -------------------------------------------------------------------------------------- CKF schedule


def check_ckf_schedule(epochs: int, kind: str) -> None:
    """Raise a ``ValueError`` unless ``epochs`` is an int >= 1 and ``kind`` a known CKF schedule."""
    check_choice("kind", kind, tuple(CKF_SCHEDULES))
    check_int("epochs", epochs, low=1)


def ckf_share(progress: float, epochs: int, kind: str = "linear", per_iteration: bool = False) -> float:
    r"""$\omega$ (the paper's $\alpha$), the share of the dense (local) logits in the fused target, at ``progress``
    (fraction of training done, the trainer's ``step / total_steps``): $1-x$ (``linear``), $(1-x)^2$ (``x2``) or
    $\cos(\pi x/2)$ (``cos``) with $x = e/E$.

    Per epoch (default, the official step): $e = \min(\lfloor E\cdot\mathrm{progress}\rfloor, E-1)$
    (:func:`~kdlab.methods.common.epoch_at`), so the last epoch's share is $1/E$ for ``linear``; per iteration:
    $e = E\cdot\mathrm{progress}$ (smooth).
    """
    check_progress(progress)
    check_ckf_schedule(epochs, kind)
    epoch = progress * epochs if per_iteration else epoch_at(progress, epochs)
    return CKF_SCHEDULES[kind](epoch / epochs)


# --------------------------------------------------------------------------------------------- loss


def cskd_targets(dense_logits: Tensor, global_logits: Tensor, dense_share: float) -> Tensor:
    r"""$Y^T = \arg\max_c(\omega P^T + (1-\omega) P^T_g)$: (N, h, w) hard labels, fused in logit space.

    ``dense_share`` is $\omega$ (see :func:`ckf_share`).
    """
    check_fraction("dense_share", dense_share)
    if dense_logits.ndim != 4 or global_logits.shape != dense_logits.shape[:2]:
        raise ValueError("expected dense teacher logits (N, K, h, w) and global logits (N, K), got "
                         f"{tuple(dense_logits.shape)} and {tuple(global_logits.shape)}")
    return (dense_share * dense_logits + (1 - dense_share) * global_logits[:, :, None, None]).argmax(dim=1)


def cskd_loss(student_pooled: Tensor, targets: Tensor) -> Tensor:
    r"""$\mathcal{L}_{CSKD} = \frac{1}{Nhw}\sum_{n,i,j}\mathrm{CE}(\mathrm{pool}(P^S)[n,:,i,j], Y^T[n,i,j])$."""
    if (student_pooled.ndim != 4 or targets.shape != student_pooled.shape[:1] + student_pooled.shape[2:]
            or targets.is_floating_point()):
        raise ValueError("expected pooled student logits (N, K, h, w) and integer targets (N, h, w) on the same "
                         f"grid, got {tuple(student_pooled.shape)} and {tuple(targets.shape)} ({targets.dtype})")
    return F.cross_entropy(student_pooled, targets)


def deit_hard_loss(dist_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    r"""$\mathrm{CE}(z_{dist}, \arg\max_c z_t)$: DeiT's hard distillation of the distillation token."""
    check_same_shape("distillation-token logits", dist_logits, "teacher logits", teacher_logits, ndim=2)
    return F.cross_entropy(dist_logits, teacher_logits.argmax(dim=1))


# ---------------------------------------------------------------------------------------- distillers


class DeiTHard(Distiller):
    r"""DeiT hard distillation, the baseline CSKD beats: ``terms = {"ce": (1 - deit_weight) CE(z_cls, y),
    "deit": deit_weight CE(z_dist, argmax z_t)}``.

    ``deit_weight`` is $\lambda_{\text{deit}}$ (DeiT's $a$, 0.5 in the CSKD objective); ``label_smoothing`` applies to the base CE
    only; ``y`` may be class indices or soft labels. :meth:`predict` (the bare distilled ViT in eval mode) is
    $\frac12(z_{cls} + z_{dist})$. The teacher may be any classifier.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, deit_weight: float = 0.5,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(student, teacher)
        check_distilled_vit(student)
        check_fraction("deit_weight", deit_weight)
        self.deit_weight, self.label_smoothing = deit_weight, label_smoothing

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        cls_logits, dist_logits, _ = distilled_vit_logits(self.student, x)
        return (cls_logits + dist_logits) / 2, self.deit_terms(cls_logits, dist_logits, y, self.teacher_forward(x))

    def deit_terms(self, cls_logits: Tensor, dist_logits: Tensor, y: Tensor,
                   teacher_logits: Tensor) -> dict[str, Tensor]:
        """The weighted base CE on the class token and DeiT's hard term on the distillation token."""
        return {
            "ce": (1 - self.deit_weight) * F.cross_entropy(cls_logits, y, label_smoothing=self.label_smoothing),
            "deit": self.deit_weight * deit_hard_loss(dist_logits, teacher_logits),
        }


class CSKD(DeiTHard):
    r"""CSKD: the :class:`DeiTHard` terms plus ``"cskd": cskd_weight * cskd_loss(pool(P^S), Y^T)``.

    ``epochs`` is the number of training epochs (as given to ``fit``): the dense share $\omega$ follows
    :func:`ckf_share` with ``kind`` and ``per_iteration``; ``use_ckf=False`` fixes it at 1 (spatial-only CSKD).
    ``cskd_weight`` is $\lambda_{\text{cskd}}$ (the paper's $\lambda$), ``deit_weight`` $\lambda_{\text{deit}}$ (DeiT's $a$). The teacher must be a CNN with a GAP + Linear head; its
    global logits feed both the DeiT term and the fusion (:meth:`teacher_forward` gives the dense and the global
    logits). :meth:`predict` is the three-way average :func:`cskd_prediction`.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, epochs: int, kind: str = "linear",
                 per_iteration: bool = False, use_ckf: bool = True, deit_weight: float = 0.5,
                 cskd_weight: float = 1.0, label_smoothing: float = 0.0) -> None:
        super().__init__(student, teacher, deit_weight, label_smoothing)
        self.classifier = gap_linear_classifier(teacher)  # checked once here, not at every training step
        check_ckf_schedule(epochs, kind)
        check_weights(cskd_weight=cskd_weight)
        self.epochs, self.kind, self.per_iteration, self.use_ckf = epochs, kind, per_iteration, use_ckf
        self.cskd_weight = cskd_weight

    def dense_share(self, progress: float) -> float:
        r"""The share $\omega$ of the dense logits in the fused target at ``progress`` (1 without CKF)."""
        if not self.use_ckf:
            check_progress(progress)
            return 1.0
        return ckf_share(progress, self.epochs, self.kind, self.per_iteration)

    @teacher_pass
    def teacher_forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The teacher's dense (N, K, h, w) and global (N, K) logits without autograd."""
        dense = dense_teacher_logits(self.teacher.forward_features(x), self.classifier)
        return dense, dense.mean(dim=(2, 3))

    def teacher_cache_key(self) -> tuple:
        return ("dense", teacher_token(self.teacher))

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        cls_logits, dist_logits, dense = distilled_vit_logits(self.student, x)
        teacher_dense, teacher_global = self.teacher_forward(x)
        targets = cskd_targets(teacher_dense, teacher_global, self.dense_share(progress))
        pooled = pool_student_logits(dense, teacher_dense.shape[2:])
        terms = self.deit_terms(cls_logits, dist_logits, y, teacher_global)
        terms["cskd"] = self.cskd_weight * cskd_loss(pooled, targets)
        return cskd_prediction(cls_logits, dist_logits, dense), terms

    def predict(self, x: Tensor) -> Tensor:
        """The three-way average of the class head, the distillation head and the mean patch logits."""
        return cskd_prediction(*distilled_vit_logits(self.student, x))

    @torch.no_grad()
    def label_maps(self, x: Tensor, dense_share: float) -> tuple[Tensor, Tensor]:
        """(student, teacher) (N, h, w) label maps: argmax of the pooled student logits, and $Y^T$ at
        ``dense_share``."""
        _, _, dense = distilled_vit_logits(self.student, x)
        teacher_dense, teacher_global = self.teacher_forward(x)
        student_labels = pool_student_logits(dense, teacher_dense.shape[2:]).argmax(dim=1)
        return student_labels, cskd_targets(teacher_dense, teacher_global, dense_share)
