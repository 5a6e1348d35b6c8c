"""kdlab: a workbook on cross-architecture knowledge distillation (one notebook per paper).

The notebooks import from here; see DESIGN.md for the layout.
"""
__version__ = "0.1.0"

from .config import by_profile, env_report, pick_device, resolve_profile, seed_everything  # noqa: E402

__all__ = ["__version__", "by_profile", "env_report", "pick_device", "resolve_profile", "seed_everything"]
