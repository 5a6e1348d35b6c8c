"""Same-budget, same-seed comparisons: the experiment grid every notebook runs, and its summary table.

A :class:`Run` names a training setting: how to build a fresh distiller and how to fit it. The same
seeds are used for every run, ``seed_everything(seed)`` is called before each distiller is built (so
initialisation, batch order and augmentation repeat exactly), and each run's histories are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .config import seed_everything
from .methods.base import Distiller
from .train import History, TensorData, fit
from .viz import format_mean_std


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
        return [h.best(metric) if best else h.last(metric) for h in self.histories]


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
            first = first or distiller
        outcomes[run.label] = Outcome(run, list(seeds), histories, first)
    return outcomes


def summarize(outcomes: dict[str, Outcome], metric: str = "val/acc") -> list[dict[str, Any]]:
    """One row per run: last and best ``metric`` as mean ± std over seeds (in %), and seconds per run."""
    rows = []
    for label, outcome in outcomes.items():
        seconds = [h.wall_time_s for h in outcome.histories]
        rows.append({
            "run": label,
            "seeds": len(outcome.seeds),
            f"last {metric}": format_mean_std(outcome.values(metric)),
            f"best {metric}": format_mean_std(outcome.values(metric, best=True)),
            "s / run": f"{sum(seconds) / len(seconds):.0f}",
        })
    return rows
