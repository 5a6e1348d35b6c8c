"""kdlab: a workbook on cross-architecture knowledge distillation (one notebook per paper).

The notebooks import from here; see DESIGN.md for the layout.
"""
from .config import __version__, by_profile, env_report, pick_device, resolve_profile, seed_everything

__all__ = ["__version__", "by_profile", "env_report", "pick_device", "resolve_profile", "seed_everything"]
