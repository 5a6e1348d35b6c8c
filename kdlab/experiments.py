"""Same-budget, same-seed comparisons: the experiment grid every notebook runs, and its summary in numbers.

A :class:`Run` names a training setting: how to build a fresh distiller and how to fit it. The same
seeds are used for every run, ``seed_everything(seed)`` is called before each distiller is built (so
initialisation, batch order and augmentation repeat exactly), and each run's histories are kept.
:func:`summarize` gives the per-seed numbers of each run; :func:`kdlab.workbook.summary_table` formats them.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from .checks import check_choice
from .config import seed_everything
from .methods import METHODS, Distiller
from .train import History, TensorData, fit


@dataclass
class Run:
    """One row of an experiment: ``make()`` builds a fresh distiller, ``fit`` holds ``kdlab.train.fit`` keywords."""

    label: str
    make: Callable[[], Distiller]
    fit: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """Histories of one :class:`Run` over the seeds, and the distiller trained with the first seed."""

    run: Run
    seeds: list[int]
    histories: list[History]
    first: Distiller

    def values(self, metric: str = "val/acc", best: bool = False) -> list[float]:
        """Per-seed ``metric``: at the last epoch, or the best over the epochs when ``best``."""
        return [h.best(metric) if best else h.last(metric) for h in self.histories]


def method_runs(rows: Mapping[str, tuple[str, Mapping[str, Any]]], make_student: Callable[[], nn.Module],
                teacher: nn.Module | None, fit: Mapping[str, Any]) -> list[Run]:
    """One :class:`Run` per ``label: (method, block)`` of ``rows``, in order, each fitted with ``fit``: its
    ``make()`` builds ``METHODS[method](make_student(), teacher, **block)``, or, for a labels-only baseline (a
    constructor without a ``teacher`` parameter), ``METHODS[method](make_student(), **block)``.

    ``block`` is a recipe's method block, exactly the constructor's keywords; ``make_student()`` is called anew
    for every run, after the seeding :func:`run_experiments` does.
    """
    runs = []
    for label, (method, block) in rows.items():
        distiller_class = METHODS[check_choice("method", method, list(METHODS))]
        takes_teacher = "teacher" in inspect.signature(distiller_class).parameters
        if takes_teacher and teacher is None:
            raise ValueError(f"{label!r}: method {method!r} needs a teacher, got None")

        def make(distiller_class=distiller_class, block=dict(block), takes_teacher=takes_teacher) -> Distiller:
            if takes_teacher:
                return distiller_class(make_student(), teacher, **block)
            return distiller_class(make_student(), **block)

        runs.append(Run(label, make, dict(fit)))
    return runs


def run_experiments(runs: Sequence[Run], train: TensorData, test: TensorData, *, seeds: Sequence[int],
                    progress: bool = True) -> dict[str, Outcome]:
    """Train every run once per seed (same seeds for all) and return ``{label: Outcome}`` in run order."""
    if not seeds:
        raise ValueError("give at least one seed")
    labels = [run.label for run in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"run labels must be unique, got {labels}")
    outcomes: dict[str, Outcome] = {}
    for run in runs:
        histories, first = [], None
        for seed in seeds:
            seed_everything(seed)
            distiller = run.make()
            histories.append(fit(distiller, train, test, seed=seed, progress=progress,
                                 desc=f"{run.label} · seed {seed}", **run.fit))
            if first is None:
                first = distiller
        outcomes[run.label] = Outcome(run, list(seeds), histories, first)
    return outcomes


def summarize(outcomes: dict[str, Outcome], metric: str = "val/acc") -> list[dict[str, Any]]:
    """One row of numbers per run: ``run`` (its label), ``seeds`` (how many), ``last`` and ``best`` (the per-seed
    ``metric`` at the last epoch and at the best one) and ``seconds_per_run`` (mean wall time of one seed's run)."""
    rows = []
    for label, outcome in outcomes.items():
        seconds = [h.wall_time_s for h in outcome.histories]
        rows.append({
            "run": label,
            "seeds": len(outcome.seeds),
            "last": outcome.values(metric),
            "best": outcome.values(metric, best=True),
            "seconds_per_run": sum(seconds) / len(seconds),
        })
    return rows
