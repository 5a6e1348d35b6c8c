"""Each notebook's experiment recipe per profile: data sizes, epochs, seeds, models and their training.

A recipe is a plain dict, so it prints in the notebook, is hashed into reference results
(``kdlab.results``) and can be rebuilt by the tests to flag stale reference files. The numbers were
calibrated on 2 CPU cores so that the ``cpu`` profile fits its 10-minute budget (``data/README.md``).
"""
from __future__ import annotations

from typing import Any

from .config import by_profile, resolve_profile


def primer_recipe(profile: str, *, seed: int = 0, temperature: float = 4.0, alpha: float = 0.9) -> dict[str, Any]:
    """The primer (00): CNN / ViT / Mixer students, labels only vs Hinton KD from the shipped CNN teacher."""
    profile = resolve_profile(profile)
    n_seeds = by_profile(profile, smoke=1, cpu=2, gpu=3)
    epochs = by_profile(profile, smoke=1, cpu=12, gpu=40)
    token_fit = {"epochs": epochs, "lr": 2e-3, "warmup_epochs": min(2, epochs / 2), "batch_size": 64}
    return {
        "profile": profile,
        "data": {"name": "shapes", "n_train": by_profile(profile, smoke=600, cpu=2000, gpu=8000),
                 "n_test": by_profile(profile, smoke=500, cpu=2000, gpu=4000), "seed": seed},
        "seeds": [seed + i for i in range(n_seeds)],
        "teachers": ["shapes_cnn", "shapes_vit"],
        "kd_teacher": "shapes_cnn",
        "kd": {"temperature": temperature, "alpha": alpha},
        "students": {
            "cnn_small": {"model": {}, "fit": {"epochs": epochs, "lr": 2e-3, "warmup_epochs": min(1, epochs / 2)}},
            "vit": {"model": {}, "fit": token_fit},
            "mixer": {"model": {}, "fit": token_fit},
        },
        "cka_samples": by_profile(profile, smoke=256, cpu=1000, gpu=2000),
    }


RECIPES = {"00_primer": primer_recipe}
"""Notebook name -> recipe function (``recipe(profile)`` with default knobs is what reference runs use)."""
