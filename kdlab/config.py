"""Profiles, seeds, devices and paths: the few settings every notebook shares.

A *profile* sizes a notebook's experiments to the machine it runs on (DESIGN.md §4):

========  ==========================================  ===========================
profile   where                                       budget per notebook
========  ==========================================  ===========================
smoke     tests / CI, 2 CPU cores                     <= 60 s
cpu       a laptop without a GPU                      <= 10 min on 2 cores
gpu       one CUDA GPU                                <= 10 min on one H100
========  ==========================================  ===========================

``auto`` resolves to ``gpu`` when CUDA is available and to ``cpu`` otherwise; the environment variable
``KDLAB_PROFILE`` overrides ``auto`` (never an explicit choice).
"""
from __future__ import annotations

import os
import platform
import random
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

__version__ = "0.1.0"
"""The package version (``kdlab.__version__``; pyproject.toml carries the same number)."""

PROFILES = ("smoke", "cpu", "gpu")
"""The concrete profiles, cheapest first."""

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT_DIR = PACKAGE_DIR.parent
DATA_DIR = Path(os.environ.get("KDLAB_DATA", ROOT_DIR / "data"))
"""Shipped artefacts (teachers, reference results); override with ``KDLAB_DATA``."""

T = TypeVar("T")


def resolve_profile(profile: str = "auto") -> str:
    """Return the concrete profile for ``profile`` (``smoke``, ``cpu``, ``gpu`` or ``auto``).

    ``auto`` reads ``KDLAB_PROFILE`` first, then picks ``gpu`` if CUDA is available, else ``cpu``.
    Unknown names raise ``ValueError`` listing the valid ones.
    """
    name = str(profile).strip().lower()
    if name == "auto":
        override = os.environ.get("KDLAB_PROFILE", "").strip().lower()
        if override and override != "auto":
            return _checked(override, source="KDLAB_PROFILE")
        return "gpu" if torch.cuda.is_available() else "cpu"
    return _checked(name, source="profile")


def _checked(name: str, *, source: str) -> str:
    if name not in PROFILES:
        valid = ", ".join((*PROFILES, "auto"))
        raise ValueError(f"unknown {source} {name!r}; valid profiles are: {valid}")
    return name


def by_profile(profile: str, *, smoke: T, cpu: T, gpu: T) -> T:
    """Pick the value for a resolved ``profile``: ``by_profile(P, smoke=512, cpu=6000, gpu=50000)``."""
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[resolve_profile(profile)]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a CPU ``torch.Generator`` seeded with ``seed``.

    On the CPU the same seed then gives the same numbers run after run (same thread count assumed).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; an explicit device is checked and returned."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available on this machine")
    return resolved


def cache_dir() -> Path:
    """Where retrained teachers and other derived files go: ``KDLAB_CACHE`` or ``~/.cache/kdlab``."""
    path = Path(os.environ.get("KDLAB_CACHE", Path.home() / ".cache" / "kdlab"))
    path.mkdir(parents=True, exist_ok=True)
    return path


class EnvReport(dict):
    """A dict of environment facts that prints as an aligned two-column table."""

    def __str__(self) -> str:
        width = max(map(len, self))
        return "\n".join(f"{key:<{width}}  {value}" for key, value in self.items())

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        rows = "\n".join(f"| {key} | {value} |" for key, value in self.items())
        return f"| setting | value |\n|---|---|\n{rows}"


def describe_device() -> str:
    """The compute device in words, as reference results record it: the GPU's name, or the CPU thread count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({torch.get_num_threads()} threads)"


def env_report(profile: str = "auto") -> EnvReport:
    """Versions, device, threads and the resolved profile: the first thing every notebook shows."""
    import timm  # local import: config must stay importable before the heavy stack is needed


    device = pick_device("auto")
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "none"
    return EnvReport(
        kdlab=__version__,
        python=platform.python_version(),
        torch=torch.__version__,
        timm=timm.__version__,
        device=str(device),
        gpu=gpu,
        cpu_threads=torch.get_num_threads(),
        profile=resolve_profile(profile),
        data_dir=str(DATA_DIR),
        cache_dir=str(cache_dir()),
    )
