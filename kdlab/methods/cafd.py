r"""CAFD: Cross-Architecture Distillation for Face Recognition (Zhao et al., ACM MM 2023), a Swin teacher
with prompts distilled into a CNN student through learnable local centres. No code was released; everything
marked [our choice] fills a gap of the paper (spec ``papers/cafd.md``).

The method's three parts live in three modules: APT, the prompted Swin teacher (:mod:`.prompted_swin`); URFM,
the mapping of both networks' pixel features onto $L$ local centres with the facial position encoding
(:mod:`.urfm`); and here the losses and the distillers. The face objective (CosFace / ArcFace heads) is in
:mod:`.margin_heads`.

**Losses.** One MSA (pre-LayerNorm, $h$ heads, residual, no MLP) shared by both sides gives $L\times L$ attention
maps $A$ and outputs $\mathrm{MSA}(h)$:

$$\mathcal{L}_{Attn} = \mathrm{MSE}(A_T, A_S),\qquad \mathcal{L}_{Feat} = \mathrm{MSE}(\mathrm{MSA}(h^T),
  \mathrm{MSA}(h^S)),$$
$$\mathcal{L} = \mathcal{L}_{margin}(\text{student}) + \lambda_A\mathcal{L}_{Attn} + \lambda_F\mathcal{L}_{Feat}
  + \lambda_T\mathcal{L}^{aux}_{margin}\big(\overline{\mathrm{MSA}(h^T)}\big),$$

the last term [our choice] keeping the trainable teacher side discriminative, so that both sides cannot
collapse onto one constant. $\lambda_A, \lambda_F, \lambda_T$ are ``attn_weight``, ``feat_weight`` and
``teacher_margin_weight``, after the loss terms ``"attn"``, ``"feat"`` and ``"teacher_margin"`` they weight.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformer
from torch import Tensor, nn

from ..checks import check_choice, check_fraction, check_int, check_same_shape, check_weights
from ..models import dry_run, require_methods
from .base import Distiller
from .common import teacher_pass, teacher_token
from .margin_heads import embedding_width, face_img_size, margin_head
from .prompted_swin import PROMPT_INITS, PromptedSwin
from .urfm import URFM, attend, merge_heads, split_heads

TEACHER_UPDATES = ("joint", "aux", "detach")
FACE_KD_KINDS = ("embedding", "feature")


class SharedMSA(nn.Module):
    r"""The MSA both sides share (spec §2.6): $\mathrm{MSA}(h) = h + W_o\,\mathrm{softmax}(QK^\top/\sqrt{d_h})V$,
    $Q, K, V$ from $\mathrm{LN}(h)$, $h$ heads, no MLP [our choice: the pre-LN residual sub-block].

    ``forward(h)`` with h (B, L, d) -> (output (B, L, d), attention (B, heads, L, L)).
    """

    def __init__(self, dim: int = 64, num_heads: int = 4) -> None:
        super().__init__()
        self.dim, self.num_heads = check_int("dim", dim, low=1), check_int("num_heads", num_heads, low=1)
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        if h.ndim != 3 or h.shape[2] != self.dim:
            raise ValueError(f"expected (B, L, {self.dim}) local features, got {tuple(h.shape)}")
        q, k, v = (split_heads(t, self.num_heads) for t in self.qkv(self.norm(h)).chunk(3, dim=-1))
        out, attn = attend(q, k, v)
        return h + self.proj(merge_heads(out)), attn


# -------------------------------------------------------------------------------------------- losses


def cafd_losses(teacher_msa: tuple[Tensor, Tensor], student_msa: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    r"""``{"attn": L_Attn, "feat": L_Feat}`` (unweighted): $\mathrm{MSE}(A_T, A_S)$ and $\mathrm{MSE}(\mathrm{MSA}(h^T),
    \mathrm{MSA}(h^S))$, means over (B, heads, L, L) and (B, L, d).

    ``teacher_msa`` and ``student_msa`` are the (output, attention) pairs of the ONE :class:`SharedMSA` on each
    side's local features, ``cafd_losses(msa(h_t), msa(h_s))``; both terms are 0 when $h^T = h^S$.
    """
    (teacher_out, teacher_attn), (student_out, student_attn) = teacher_msa, student_msa
    check_same_shape("teacher MSA output", teacher_out, "student MSA output", student_out, ndim=3)
    check_same_shape("teacher attention", teacher_attn, "student attention", student_attn, ndim=4)
    return {"attn": F.mse_loss(student_attn, teacher_attn), "feat": F.mse_loss(student_out, teacher_out)}


# ----------------------------------------------------------------------------------------- distillers


def _check_student(student: nn.Module, img_size: int, in_chans: int) -> tuple[int, int]:
    """(last-map channels, embedding width) of a student with timm's forward_features / forward_head split."""
    require_methods(student, "the CAFD student must provide forward_features(x) -> (B, C, h, w) and "
                             "forward_head(map) -> (B, E)")
    fmap, emb = dry_run(student, lambda x: (fmap := student.forward_features(x), student.forward_head(fmap)),
                        img_size, in_chans, batch=2)
    if fmap.ndim != 4 or emb.ndim != 2:
        raise ValueError(f"the student's forward_features must give a (B, C, h, w) map and forward_head a (B, E) "
                         f"embedding, got {tuple(fmap.shape)} and {tuple(emb.shape)}")
    return fmap.shape[1], emb.shape[1]


class FaceKD(Distiller):
    r"""The classic face-KD baselines next to CAFD: the student's margin loss plus one imitation term, ``"face_kd"``
    [our choice of the two standard forms; the paper's baseline list is unverified, spec §4].

    * ``kind="embedding"``: $\lambda\,\mathrm{mean}_b\big(1 - \cos(e^S_b, e^T_b)\big)$, the student's embedding
      pulled towards the frozen teacher's (the face-recognition form of logit KD: the teacher's classifier was
      trained on other identities, so its embedding, not its logits, is what transfers). A linear projector
      maps $E_S\to E_T$ when the widths differ.
    * ``kind="feature"``: FitNet-style $\lambda\,\mathrm{MSE}\big(W * F^S, F^T\big)$ between the student's last
      map $F^S$ (B, C_S, h, w) through a 1x1 conv $W$ and the teacher's last-stage tokens as a map (B, C_K, h, w),
      resized to the student's grid when they differ ("feature MSE", the plain cross-architecture feature KD).

    ``teacher`` is a frozen face embedder with timm's split: the Swin of :func:`kdlab.models.face_swin` (the
    cross-architecture case) or a CNN such as :class:`kdlab.models.MobileFaceNet` (homologous); the terms are
    ``"margin"`` (the student's margin head, as :class:`~kdlab.methods.MarginSupervised`) and ``"face_kd"``
    ($\lambda$ = ``face_kd_weight``), already weighted. ``predict`` gives the head's $s\cos\theta$ logits,
    :meth:`embed` the student's embeddings.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, num_classes: int, kind: str = "embedding",
                 face_kd_weight: float = 1.0, margin: str = "cosface", s: float | None = None,
                 m: float | None = None, img_size: int | None = None, in_chans: int = 3) -> None:
        check_choice("kind", kind, FACE_KD_KINDS)
        check_weights(face_kd_weight=face_kd_weight)
        size = face_img_size(img_size, student, teacher)
        super().__init__(student, teacher)
        self.head = margin_head(margin, embedding_width(student, size, in_chans), num_classes, s, m)
        self.kind, self.face_kd_weight = kind, float(face_kd_weight)
        if kind == "embedding":
            e_s, e_t = embedding_width(student, size, in_chans), embedding_width(teacher, size, in_chans)
            self.projector = nn.Identity() if e_s == e_t else nn.Linear(e_s, e_t)
        else:
            c_s, _ = _check_student(student, size, in_chans)
            t_map = dry_run(teacher, self.teacher_forward, size, in_chans, batch=2)
            self.projector = nn.Conv2d(c_s, t_map.shape[1], 1)

    def embed(self, x: Tensor) -> Tensor:
        return self.student(x)

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.student(x))

    @teacher_pass
    def teacher_forward(self, x: Tensor) -> Tensor:
        """The frozen teacher's target: its (B, E_T) embedding (``"embedding"``) or its last map (B, C_K, h, w)
        (``"feature"``; a timm Swin's (B, h, w, C) tokens are permuted to a map)."""
        if self.kind == "embedding":
            return self.teacher(x)
        features = self.teacher.forward_features(x)  # timm Swin: (B, h, w, C) tokens; a CNN: (B, C, h, w)
        return features.permute(0, 3, 1, 2) if isinstance(self.teacher, SwinTransformer) else features

    def teacher_cache_key(self) -> tuple:
        return teacher_token(self.teacher), self.kind

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        if self.kind == "embedding":
            emb = self.student(x)
            target = self.teacher_forward(x)
            imitation = (1 - F.cosine_similarity(self.projector(emb), target, dim=1)).mean()
        else:
            fmap = self.student.forward_features(x)
            emb = self.student.forward_head(fmap)
            target = self.teacher_forward(x)
            pred = self.projector(fmap)
            if target.shape[-2:] != pred.shape[-2:]:
                target = F.interpolate(target, size=pred.shape[-2:], mode="bilinear", align_corners=False)
            imitation = F.mse_loss(pred, target)
        return self.head(emb), {"margin": F.cross_entropy(self.head(emb, y), y),
                                "face_kd": self.face_kd_weight * imitation}


class CAFD(Distiller):
    r"""CAFD: margin loss on the student + $\lambda_A\mathcal{L}_{Attn}$ + $\lambda_F\mathcal{L}_{Feat}$ +
    $\lambda_T\mathcal{L}^{aux}_{margin}$ (teacher side), spec §2.6-2.7.

    **Student**: an embedding CNN with timm's split, ``forward_features(x)`` -> last map (B, C_S, h, w) and
    ``forward_head(map)`` -> (B, E) (:class:`kdlab.models.MobileFaceNet`, or a registry CNN built with
    ``num_classes=E``), plus a margin ``head`` over the ``num_classes`` training identities. **Teacher**: a
    pretrained timm ``SwinTransformer`` (:func:`kdlab.models.face_swin`), frozen, wrapped in
    :class:`~kdlab.methods.PromptedSwin` (``self.apt``) with ``num_prompts`` per stage (0: no APT; ``prompt_init``
    ``"uniform"``, VPT's rule, or ``"token_mean"``, set from the first training batch); its pixel
    features (B, hw + t, C_K) feed :class:`~kdlab.methods.URFM` (``self.urfm``, networks ``"teacher"`` /
    ``"student"``); one :class:`SharedMSA` (``self.msa``); the auxiliary head (``self.aux_head``, the same margin
    kind) reads the token mean of $\mathrm{MSA}(h^T)$.

    Terms (always the same keys; inactive ones are 0), from :func:`cafd_losses`: ``"margin"``, ``"attn"``
    ($\lambda_A$ = ``attn_weight``), ``"feat"`` ($\lambda_F$ = ``feat_weight``), ``"teacher_margin"``
    ($\lambda_T$ = ``teacher_margin_weight``).

    **Schedule** [our choice]: while ``progress < acclimation`` (phase A, default the first 10 % of the steps; the
    workbook's 2 + 20 epochs is ``2 / 22``, 0 skips it) only ``teacher_margin`` is active (the student runs
    without gradient, in eval mode); then everything (phase B). **Teacher-side update**
    (``teacher_update``; which loss trains the prompts is unknown, spec §2.2):

    * ``"joint"`` (default): the distillation losses and the auxiliary loss train the prompts and the teacher side;
    * ``"aux"``: the prompts are trained by the auxiliary loss only (the distillation branch reads detached pixel
      features; the teacher's URFM projections still get distillation gradients);
    * ``"detach"``: in phase B the teacher side enters $\mathcal{L}_{Attn}$, $\mathcal{L}_{Feat}$ detached (the "no
      APT adaptation" ablation); it learns from the auxiliary loss only.

    ``facial_scale`` is $\gamma_{face}$ of the facial structure distance; 0 gives URFM's plain Euclidean PE, and
    ``position_encoding=False`` no PE at all.
    Defaults follow the workbook (spec §3.2): $L = 16$ (4x4), $d = 64$, 4 heads, $t = 4$, ratio 3,
    $\gamma_{face} = 1$, CosFace $s = 16$, $m = 0.2$, $\lambda_A = 10$, $\lambda_F = \lambda_T = 1$. ``predict(x)``
    gives the student head's $s\cos\theta$ logits; :meth:`embed` the student embeddings; :meth:`inspect` every
    intermediate for plots. ``img_size`` (for one dry run of the student at construction) defaults to the
    student's ``img_size`` attribute, else the teacher's input size.
    """

    def __init__(self, student: nn.Module, teacher: SwinTransformer, num_classes: int, *, num_prompts: int = 4,
                 deep_prompts: bool = False, prompt_init: str = "uniform", grid: int | Sequence[int] = 4,
                 dim: int = 64, num_heads: int = 4, facial_scale: float = 1.0, position_encoding: bool = True,
                 pif_ratio: float = 3.0, anchor: int | str | Sequence[float] = "nose", landmarks: Tensor | None = None,
                 margin: str = "cosface", s: float | None = None, m: float | None = None, attn_weight: float = 10.0,
                 feat_weight: float = 1.0,
                 teacher_margin_weight: float = 1.0, teacher_update: str = "joint", acclimation: float = 0.1,
                 img_size: int | None = None, in_chans: int = 3) -> None:
        if not isinstance(teacher, SwinTransformer):
            raise ValueError(f"the CAFD teacher must be a timm SwinTransformer, got {type(teacher).__name__}")
        super().__init__(student, teacher)
        check_weights(attn_weight=attn_weight, feat_weight=feat_weight, teacher_margin_weight=teacher_margin_weight)
        check_choice("teacher_update", teacher_update, TEACHER_UPDATES)
        check_choice("prompt_init", prompt_init, PROMPT_INITS)
        self.acclimation = check_fraction("acclimation", acclimation)
        student_dim, embed_dim = _check_student(student, face_img_size(img_size, student, teacher), in_chans)
        self.apt = PromptedSwin(teacher, num_prompts, deep_prompts, init=prompt_init)
        self.urfm = URFM({"teacher": self.apt.num_features, "student": student_dim}, dim, grid, num_heads,
                         facial_scale=facial_scale, pif_ratio=pif_ratio, anchor=anchor, landmarks=landmarks,
                         position_encoding=position_encoding)
        self.msa = SharedMSA(dim, num_heads)
        self.head = margin_head(margin, embed_dim, num_classes, s, m)
        self.aux_head = margin_head(margin, dim, num_classes, s, m)
        self.attn_weight, self.feat_weight = attn_weight, feat_weight
        self.teacher_margin_weight, self.teacher_update = teacher_margin_weight, teacher_update

    def embed(self, x: Tensor) -> Tensor:
        """The deployed student's (B, E) embeddings."""
        return self.student(x)

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.student(x))

    def teacher_forward(self, x: Tensor) -> Tensor:
        """$f^T$ (B, hw + t, C_K), the prompted teacher's pixel features; with gradient (to the prompts only) when
        there are prompts, else without autograd."""
        with nullcontext() if self.apt.num_prompts else torch.no_grad():
            return self.apt.pixel_features(x)

    def _student(self, x: Tensor, train_student: bool) -> tuple[Tensor, Tensor]:
        if train_student:
            fmap = self.student.forward_features(x)
            return fmap, self.student.forward_head(fmap)
        was_training = self.student.training
        self.student.eval()
        try:
            with torch.no_grad():
                fmap = self.student.forward_features(x)
                return fmap, self.student.forward_head(fmap)
        finally:
            self.student.train(was_training)

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        phase_b = progress >= self.acclimation
        fmap, emb = self._student(x, phase_b)
        output = self.head(emb)
        zero = emb.new_zeros(())
        f_t = self.teacher_forward(x)
        teacher_msa = self.msa(self.urfm(f_t, "teacher")[0])
        aux = F.cross_entropy(self.aux_head(teacher_msa[0].mean(1), y), y)
        terms = {"margin": zero, "attn": zero, "feat": zero, "teacher_margin": self.teacher_margin_weight * aux}
        if not phase_b:
            return output, terms
        if self.teacher_update == "aux" and self.apt.num_prompts:
            teacher_msa = self.msa(self.urfm(f_t.detach(), "teacher")[0])
        elif self.teacher_update == "detach":
            teacher_msa = (teacher_msa[0].detach(), teacher_msa[1].detach())
        losses = cafd_losses(teacher_msa, self.msa(self.urfm(fmap, "student")[0]))
        terms.update(margin=F.cross_entropy(self.head(emb, y), y), attn=self.attn_weight * losses["attn"],
                     feat=self.feat_weight * losses["feat"])
        return output, terms

    @torch.no_grad()
    def inspect(self, x: Tensor) -> dict[str, Tensor]:
        """Every intermediate, without gradient: ``teacher_pixels`` (B, N_T + t, C_K), ``student_map``
        (B, C_S, h, w), URFM ``teacher_local`` / ``student_local`` (B, L, d) and ``teacher_urfm_attn`` (B, heads,
        L, N_T + t) / ``student_urfm_attn`` (B, heads, L, N_S), MSA ``teacher_msa`` / ``student_msa`` (B, L, d)
        and ``teacher_msa_attn`` / ``student_msa_attn`` (B, heads, L, L), ``prompt_mass`` (num_stages,), and the
        URFM ``distance`` / ``bucket`` (L,)."""
        f_t = self.apt.pixel_features(x)
        fmap = self.student.forward_features(x)
        h_t, a_t = self.urfm(f_t, "teacher")
        h_s, a_s = self.urfm(fmap, "student")
        (o_t, m_t), (o_s, m_s) = self.msa(h_t), self.msa(h_s)
        return {"teacher_pixels": f_t, "student_map": fmap, "teacher_local": h_t, "student_local": h_s,
                "teacher_urfm_attn": a_t, "student_urfm_attn": a_s, "teacher_msa": o_t, "student_msa": o_s,
                "teacher_msa_attn": m_t, "student_msa_attn": m_s, "prompt_mass": self.apt.prompt_attention_mass(x),
                "distance": self.urfm.distance, "bucket": self.urfm.bucket}
