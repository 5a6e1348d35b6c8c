"""One file per paper: a pure loss function, the modules it needs, and a thin Distiller subclass."""
from .base import Distiller, Supervised
from .kd import KD, kd_loss
from .ofa import OFA, build_branches, ofa_loss, ofa_weights

__all__ = ["Distiller", "KD", "OFA", "Supervised", "build_branches", "kd_loss", "ofa_loss", "ofa_weights"]
