"""``METHODS``: method name -> Distiller class, so a recipe's method block builds its method by name.

``METHODS[name](student, teacher, **block)`` (labels-only baselines take no teacher:
``METHODS["supervised"](student, **block)``). A new method adds its entry here (docs/architecture.md).
"""
from __future__ import annotations

from .base import Distiller
from .cafd import CAFD, FaceKD
from .cskd import CSKD, DeiTHard
from .disdepth import DisDepth
from .fitnet import FitNet
from .kd import KD
from .ofa import OFA
from .supervised import DepthSupervised, MarginSupervised, Supervised
from .swtat import SWTaT, SWTaTSeg, TaT, TaTPatchGroup

METHODS: dict[str, type[Distiller]] = {
    "supervised": Supervised,
    "kd": KD,
    "fitnet": FitNet,
    "ofa": OFA,
    "deit_hard": DeiTHard,
    "cskd": CSKD,
    "tat": TaT,
    "swtat": SWTaT,
    "tat_patch_group": TaTPatchGroup,
    "swtat_seg": SWTaTSeg,
    "margin_supervised": MarginSupervised,
    "face_kd": FaceKD,
    "cafd": CAFD,
    "depth_supervised": DepthSupervised,
    "disdepth": DisDepth,
}
"""Method name -> its :class:`~kdlab.methods.base.Distiller` subclass."""
