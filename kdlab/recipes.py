"""Each notebook's experiment recipe per profile: data sizes, epochs, seeds, models and their training.

A recipe is a plain dict, so it prints in the notebook, is hashed into reference results
(``kdlab.results``) and can be rebuilt by the tests to flag stale reference files. The numbers were
calibrated on 2 CPU cores so that the ``cpu`` profile fits its 10-minute budget (``data/README.md``).
"""
from __future__ import annotations

from typing import Any

from .config import by_profile, resolve_profile


TOKEN_STUDENT = {"patch_size": 8, "embed_dim": 128, "num_heads": 4}
"""The calibrated ViT student: patch 8 (16 tokens) learns far faster per CPU second than patch 4 (64 tokens)."""


def primer_recipe(profile: str, *, seed: int = 0, temperature: float = 2.0, alpha: float = 0.5,
                  n_seeds: int | None = None) -> dict[str, Any]:
    """The primer (00): CNN / ViT / Mixer students, labels only vs Hinton KD from the shipped CNN teacher.

    ``n_seeds`` defaults to the profile's (1 / 2 / 3); runs use seeds ``seed, seed + 1, ...``.
    Measured on 2 cores: one ``cpu`` run of the CNN / ViT / Mixer takes about 38 / 39 / 25 s, and 45 / 52 / 30 s
    with KD (the teacher labels every augmented batch); the whole ``cpu`` notebook about 500 s.
    """
    profile = resolve_profile(profile)
    n_seeds = n_seeds or by_profile(profile, smoke=1, cpu=2, gpu=3)
    knobs = {"profile": profile, "seed": seed, "temperature": temperature, "alpha": alpha, "n_seeds": n_seeds}
    scale = by_profile(profile, smoke=0.25, cpu=1.0, gpu=2.5)  # epochs relative to the cpu calibration
    epochs = lambda cpu_epochs: max(2, round(cpu_epochs * scale))  # noqa: E731
    fit = lambda cpu_epochs, lr, cpu_warmup: {  # noqa: E731  (a short run warms up for at most a quarter of it)
        "epochs": epochs(cpu_epochs), "lr": lr, "warmup_epochs": min(cpu_warmup, epochs(cpu_epochs) / 4)}
    return {
        "knobs": knobs,
        "data": {"name": "shapes", "n_train": by_profile(profile, smoke=1000, cpu=2000, gpu=8000),
                 "n_test": by_profile(profile, smoke=500, cpu=1000, gpu=4000), "seed": seed},
        "seeds": [seed + i for i in range(n_seeds)],
        "teachers": ["shapes_cnn", "shapes_vit"],
        "kd_teacher": "shapes_cnn",
        "kd": {"temperature": temperature, "alpha": alpha},
        "students": {
            "cnn_small": {"model": {}, "fit": fit(12, 2e-3, 1.0)},
            "vit": {"model": TOKEN_STUDENT, "fit": fit(20, 1e-3, 2.0)},
            "mixer": {"model": {"patch_size": 8, "embed_dim": 128}, "fit": fit(12, 2e-3, 2.0)},
        },
        "cka_samples": by_profile(profile, smoke=256, cpu=1000, gpu=2000),
    }


RECIPES = {"00_primer": primer_recipe}
"""Notebook name -> recipe function; ``RECIPES[name](**recipe["knobs"])`` rebuilds any recipe."""

REFERENCE = {"00_primer": {"profile": "cpu", "n_seeds": 5}}
"""The knobs of each notebook's long reference run (``python -m kdlab reference NAME``). No GPU was lent
while the primer was built, so its reference is the ``cpu`` recipe with 5 seeds instead of 2."""


def reference_recipe(notebook: str) -> dict[str, Any]:
    """The recipe of ``notebook``'s reference run."""
    if notebook not in REFERENCE:
        raise KeyError(f"no reference run declared for {notebook!r}; known: {', '.join(REFERENCE)}")
    return RECIPES[notebook](**REFERENCE[notebook])
