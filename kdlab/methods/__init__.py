"""One file per paper: a pure loss function, the modules it needs, and a thin Distiller subclass."""
from .base import Distiller, Supervised
from .cskd import (CSKD, DeiTHard, alpha_at_progress, alpha_schedule, cskd_loss, cskd_targets,
                   dense_and_global_logits, dense_teacher_logits, distilled_vit_logits)
from .fitnet import FitNet, hint_loss
from .kd import KD, kd_loss
from .ofa import OFA, build_branches, ofa_loss, ofa_weights

__all__ = [
    "CSKD", "DeiTHard", "Distiller", "FitNet", "KD", "OFA", "Supervised",
    "alpha_at_progress", "alpha_schedule", "build_branches", "cskd_loss", "cskd_targets",
    "dense_and_global_logits", "dense_teacher_logits", "distilled_vit_logits", "hint_loss", "kd_loss",
    "ofa_loss", "ofa_weights",
]
