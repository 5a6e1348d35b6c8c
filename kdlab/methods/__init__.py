"""One file per paper: a pure loss function, the modules it needs, and a thin Distiller subclass."""
from .base import Distiller, Supervised
from .kd import KD, kd_loss

__all__ = ["Distiller", "KD", "Supervised", "kd_loss"]
