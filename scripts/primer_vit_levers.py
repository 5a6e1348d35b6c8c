#!/usr/bin/env python
"""Levers tried for the primer's experiment 3 (``notebooks/00_primer.ipynb`` §8): can the shipped CNN teacher lift the
primer's ViT student beyond seed noise at the ``cpu`` budget?

Every row trains the ViT (``primer_recipe("cpu")["students"]["vit"]``) on the same number of samples (30 000, one
pass over a set cycled to that size, ``TensorSet.repeat_to``), 500 of the training split's images labelled, the
usual crop / flip, lr 1e-3 with a warm-up of 13 % of the run (the recipe's 2 of 15 epochs), 3 seeds, and is read
once on the test split. Prints a Markdown table (per-seed test accuracy and the paired difference to the first row
with its 95 % interval), the form data/README.md records.

    python scripts/primer_vit_levers.py pool        # the unlabelled pool: 1 500 vs 9 500 images, and T / alpha
    python scripts/primer_vit_levers.py steps       # twice the optimiser steps (batch 32)
    python scripts/primer_vit_levers.py control     # the same 10 000 images, all with their true label

About 2 (control) to 8 minutes per group on 2 quiet cores (two one-thread workers).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdlab.data import ImageSet, load_splits, make_shapes, standard_augment  # noqa: E402
from kdlab.experiments import Run, paired_differences, run_experiments  # noqa: E402
from kdlab.methods import KD, Supervised  # noqa: E402
from kdlab.models import create  # noqa: E402
from kdlab.recipes import primer_recipe  # noqa: E402
from kdlab.teachers import load_teacher  # noqa: E402

SAMPLES = 30_000
LABELLED = 500
EXTRA_SEED = 424_242  # a generator stream no split of the primer uses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group", choices=("pool", "steps", "control"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    recipe = primer_recipe("cpu")
    train, val, test = load_splits(**recipe["data"])
    teacher = load_teacher(recipe["kd_teacher"])
    spec = recipe["students"]["vit"]["model"]
    extra = make_shapes(9500 - (len(train) - LABELLED), seed=EXTRA_SEED, name="shapes-train")
    big = ImageSet(x=torch.cat([train.x, extra.x]), y=torch.cat([train.y, extra.y]), classes=train.classes,
                   name="shapes-train")

    def vit():
        return create("vit", **spec)

    def fit(batch_size: int = 64) -> dict:
        return {"epochs": 1, "lr": 1e-3, "warmup_epochs": 0.13, "batch_size": batch_size,
                "augment": standard_augment()}

    labelled = train.subset(slice(0, LABELLED)).repeat_to(SAMPLES)
    kd = lambda temperature=2.0, weight=0.5: lambda: KD(vit(), teacher, temperature=temperature,  # noqa: E731
                                                          kd_weight=weight)
    if args.group == "pool":
        runs = [Run("labels only (smoothing 0.1)", lambda: Supervised(vit(), label_smoothing=0.1), fit(), labelled),
                Run("KD (T 2, α 0.5) + 1 500 unlabelled", kd(), fit(), train.with_labels(LABELLED).repeat_to(SAMPLES)),
                Run("KD (T 2, α 0.5) + 9 500 unlabelled", kd(), fit(), big.with_labels(LABELLED).repeat_to(SAMPLES)),
                Run("KD (T 1, α 0.9) + 9 500 unlabelled", kd(1.0, 0.9), fit(),
                    big.with_labels(LABELLED).repeat_to(SAMPLES))]
    elif args.group == "control":
        runs = [Run("labels only (smoothing 0.1)", lambda: Supervised(vit(), label_smoothing=0.1), fit(), labelled),
                Run("labels only (smoothing 0.1), all 10 000 labelled", lambda: Supervised(vit(), label_smoothing=0.1),
                    fit(), big.repeat_to(SAMPLES))]
    else:
        runs = [Run("labels only (smoothing 0.1), batch 32", lambda: Supervised(vit(), label_smoothing=0.1), fit(32),
                    labelled),
                Run("KD (T 2, α 0.5) + 9 500 unlabelled, batch 32", kd(), fit(32),
                    big.with_labels(LABELLED).repeat_to(SAMPLES))]
    outcomes = run_experiments(runs, train, val, test, seeds=args.seeds)
    accuracy = {label: outcome.test() for label, outcome in outcomes.items()}
    baseline = next(iter(accuracy))
    paired = paired_differences(accuracy, baseline, scale=100.0)
    print(f"| row | test accuracy, seeds {' / '.join(map(str, args.seeds))} | Δ vs the first row [95 % interval] |")
    print("|---|---|---|")
    for label, values in accuracy.items():
        seeds = " / ".join(f"{100 * v:.1f}" for v in values)
        p = paired.get(label)
        delta = "—" if p is None else f"{p.change:+.1f} [{p.low:+.1f}, {p.high:+.1f}] points"
        print(f"| {label} | {seeds} % | {delta} |")


if __name__ == "__main__":
    main()
