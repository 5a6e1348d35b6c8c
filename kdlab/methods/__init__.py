"""One file per paper: a pure loss function, the modules it needs, and a thin Distiller subclass."""
from .base import Distiller, Supervised
from .cafd import (CAFD, URFM, ArcFace, CosFace, FaceKD, MarginSupervised, PromptedSwin, SharedMSA, cafd_losses,
                   facial_distance_parts, facial_structure_distance, margin_head, piecewise_index)
from .cskd import (CSKD, DeiTHard, alpha_at_progress, alpha_schedule, cskd_loss, cskd_targets,
                   dense_and_global_logits, dense_teacher_logits, distilled_vit_logits)
from .disdepth import (DepthSupervised, DisDepth, FeatureAcclimation, LocalGlobalConv, LossAttention,
                       attentive_kd_loss, convert_to_lgconv, disdepth_ablation, silog_loss, warmup_fraction)
from .fitnet import FitNet, hint_loss
from .kd import KD, kd_loss
from .ofa import OFA, build_branches, ofa_loss, ofa_weights
from .swtat import (PatchMergingTaTLoss, SWTaT, SWTaTLoss, SWTaTSeg, TaT, TaTEmbedding, TaTPatchGroup, additive_mask,
                    anchor_tat_loss, patch_group_tat_loss, shifted_window_mask, swtat_loss, tat_loss, window_partition,
                    window_reverse, window_tat_loss)

__all__ = [
    "ArcFace", "CAFD", "CosFace", "FaceKD", "MarginSupervised", "PromptedSwin", "SharedMSA", "URFM", "cafd_losses",
    "facial_distance_parts", "facial_structure_distance", "margin_head", "piecewise_index",
    "CSKD", "DeiTHard", "DepthSupervised", "DisDepth", "Distiller", "FeatureAcclimation", "LocalGlobalConv",
    "LossAttention", "FitNet", "KD", "OFA", "PatchMergingTaTLoss", "SWTaT", "SWTaTLoss", "SWTaTSeg",
    "Supervised", "TaT", "TaTEmbedding", "TaTPatchGroup",
    "additive_mask", "alpha_at_progress", "alpha_schedule", "anchor_tat_loss", "attentive_kd_loss",
    "convert_to_lgconv", "disdepth_ablation", "silog_loss", "warmup_fraction", "build_branches", "cskd_loss",
    "cskd_targets", "dense_and_global_logits", "dense_teacher_logits", "distilled_vit_logits", "hint_loss", "kd_loss",
    "ofa_loss", "ofa_weights", "patch_group_tat_loss", "shifted_window_mask", "swtat_loss", "tat_loss",
    "window_partition", "window_reverse", "window_tat_loss",
]
