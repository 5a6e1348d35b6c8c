"""Methods (layer 2): ``base`` (the Distiller contract), ``common`` (teacher forward, stage taps, progress
schedules), ``supervised`` (every labels-only baseline), one file per paper (a pure loss function, the modules
it needs, and a thin Distiller subclass) and ``registry`` (``METHODS``: name -> class)."""
from .base import Distiller
from .cafd import CAFD, FaceKD, SharedMSA, cafd_losses
from .common import TEACHER_OUTPUTS, TeacherOutputs, epoch_at, epoch_progress, labelled_cross_entropy
from .cskd import (CKF_SCHEDULES, CSKD, DeiTHard, check_ckf_schedule, ckf_share, cskd_loss, cskd_targets,
                   dense_and_global_logits, dense_teacher_logits, distilled_vit_logits, is_distilled_vit, student_heads)
from .depth_loss import depth_target, silog_loss
from .disdepth import DisDepth, FeatureAcclimation, LossAttention, attentive_kd_loss, disdepth_ablation, ghost_head
from .fitnet import FitNet, hint_loss
from .kd import KD, choose_class_bias, kd_loss, with_class_bias
from .lgconv import LocalGlobalConv, convert_to_lgconv, lgconv_layers, lgconv_problem
from .margin_heads import ArcFace, CosFace, SoftmaxHead, arcface_logits, cosface_logits, margin_head
from .ofa import OFA, build_branches, cnn_branch, ofa_loss, ofa_weights, sep_conv
from .prompted_swin import PROMPT_INITS, PromptedSwin, prompted_block
from .registry import METHODS
from .supervised import DepthSupervised, MarginSupervised, Supervised
from .swtat import (PatchMergingTaTLoss, SWTaT, SWTaTLoss, SWTaTSeg, TaT, TaTEmbedding, TaTPatchGroup, additive_mask,
                    anchor_tat_loss, effective_window, embed_maps, global_attention, patch_group_tat_loss,
                    position_attention, shifted_window_mask, swtat_loss, swtat_rebuild, tat_cost, tat_loss,
                    union_window_attention, window_attention, window_layout, window_partition, window_reverse,
                    window_tat_loss)
from .urfm import (LANDMARK_NAMES, URFM, facial_distance_parts, facial_structure_distance, grid_centres, num_buckets,
                   pif_params, piecewise_index, template_landmarks)

__all__ = [
    "TEACHER_OUTPUTS", "TeacherOutputs", "labelled_cross_entropy", "ArcFace", "CAFD", "CosFace", "FaceKD", "MarginSupervised", "PROMPT_INITS", "PromptedSwin", "SharedMSA", "SoftmaxHead", "URFM",
    "arcface_logits", "cafd_losses", "cosface_logits", "facial_distance_parts", "facial_structure_distance",
    "grid_centres", "LANDMARK_NAMES", "margin_head", "num_buckets", "pif_params", "piecewise_index", "prompted_block",
    "template_landmarks",
    "METHODS", "CSKD", "DeiTHard", "DepthSupervised", "DisDepth", "Distiller", "FeatureAcclimation", "LocalGlobalConv",
    "LossAttention", "FitNet", "KD", "OFA", "PatchMergingTaTLoss", "SWTaT", "SWTaTLoss", "SWTaTSeg",
    "Supervised", "TaT", "choose_class_bias", "with_class_bias", "TaTEmbedding", "TaTPatchGroup",
    "additive_mask", "CKF_SCHEDULES", "check_ckf_schedule", "ckf_share", "epoch_at", "epoch_progress", "anchor_tat_loss", "attentive_kd_loss",
    "convert_to_lgconv", "disdepth_ablation", "silog_loss", "build_branches", "cskd_loss",
    "depth_target", "ghost_head", "lgconv_layers", "lgconv_problem",
    "cskd_targets", "dense_and_global_logits", "dense_teacher_logits", "distilled_vit_logits", "student_heads", "is_distilled_vit", "hint_loss", "kd_loss",
    "cnn_branch", "ofa_loss", "ofa_weights", "sep_conv", "patch_group_tat_loss", "shifted_window_mask", "swtat_loss", "tat_loss",
    "window_partition", "window_reverse", "window_tat_loss", "effective_window", "embed_maps", "position_attention",
    "tat_cost", "window_layout", "global_attention", "swtat_rebuild", "union_window_attention", "window_attention",
]
