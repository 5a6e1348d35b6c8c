"""One file per paper: a pure loss function, the modules it needs, and a thin Distiller subclass."""
from .base import Distiller, Supervised
from .fitnet import FitNet, hint_loss
from .kd import KD, kd_loss
from .ofa import OFA, build_branches, ofa_loss, ofa_weights

__all__ = [
    "Distiller", "FitNet", "KD", "OFA", "Supervised",
    "build_branches", "hint_loss", "kd_loss", "ofa_loss", "ofa_weights",
]
