"""Notebook glue, written once: what every notebook needs around its own experiment (layer 6: may import all).

The notebooks share one skeleton (DESIGN.md §6; the § numbers here are the notebooks' own headings): §5 shows
the data and the shipped teachers, §6 runs the same-budget, same-seed experiment grid (:mod:`kdlab.experiments`)
and compares each row with the no-KD baseline seed by seed, §8 retrains one row quickly behind a
``RetrainPanel``, and §11 records the results the tests read (and, in the long reference run, writes them to
``data/results/``). The helpers below are those steps:

- :func:`mean`, :func:`summary_table`: a run's mean over seeds, and the grid's table (mean ± std over seeds);
- :func:`paired_differences`, :func:`paired_report`: each row against the baseline on the same seeds
  ("+1.2%, higher on 2 of 3 seed(s)");
- :func:`teacher_rows`, :func:`model_row`: the rows of the §5 table of teachers and students;
- :func:`quick_retrain`: the §8 retrain (seed, build, fit quietly);
- :func:`latency_ms`: CPU milliseconds per image of a deployed model;
- :func:`histories_of`, :func:`record_results`: the §11 closing cell.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import results as reference_results
from .checks import check_int, check_number, check_tensor
from .config import describe_device, seed_everything
from .experiments import Outcome, summarize
from .methods import Distiller
from .models import count_parameters
from .record import record
from .tables import format_mean_std
from .teachers import teacher_info
from .train import History, TensorData, evaluate, fit


def mean(values: Sequence[float]) -> float:
    """``sum(values) / len(values)``: the mean over seeds behind every notebook's §6 tables and §11 records."""
    values = list(values)
    if not values:
        raise ValueError("mean needs at least one value, got an empty sequence")
    return sum(values) / len(values)


def summary_table(outcomes: Mapping[str, Outcome], metric: str = "val/acc") -> list[dict[str, Any]]:
    """The experiment grid as table rows (§6 "Experiments" of notebooks 00–04): per run the seeds, the last and
    the best ``metric`` as mean ± std over the seeds (in %), and the mean seconds of one seed's run.

    The numbers are :func:`kdlab.experiments.summarize`'s; this only formats them, for ``results_table``.
    """
    return [{
        "run": row["run"],
        "seeds": row["seeds"],
        f"last {metric}": format_mean_std(row["last"]),
        f"best {metric}": format_mean_std(row["best"]),
        "s / run": f"{row['seconds_per_run']:.0f}",
    } for row in summarize(dict(outcomes), metric)]


@dataclass(frozen=True)
class PairedDifference:
    """One row against the baseline on the same seeds: ``change`` is the mean over seeds of
    ``scale * (value - baseline value)``, ``better_on`` the number of seeds where the row is better
    (higher, or lower when ``lower_is_better``), out of ``seeds``."""

    change: float
    better_on: int
    seeds: int
    lower_is_better: bool = False

    def describe(self, fmt: str = "+.1%", unit: str = "") -> str:
        """``"+1.2%, higher on 2 of 3 seed(s)"`` (``fmt`` formats ``change``, ``unit`` follows it)."""
        direction = "lower" if self.lower_is_better else "higher"
        return f"{self.change:{fmt}}{unit}, {direction} on {self.better_on} of {self.seeds} seed(s)"

    def as_record(self, change_key: str = "change") -> dict[str, float | int]:
        """``{change_key: change, "better_on": ..., "seeds": ...}``, the form the notebooks record."""
        return {change_key: self.change, "better_on": self.better_on, "seeds": self.seeds}


def paired_differences(values: Mapping[str, Sequence[float]], baseline: str, *, scale: float = 1.0,
                       lower_is_better: bool = False) -> dict[str, PairedDifference]:
    """Every row of ``values`` (label -> per-seed values, the same seeds in the same order) but ``baseline``,
    against ``baseline`` seed by seed: a :class:`PairedDifference` per row (§6 "Experiments": notebook 01
    against "labels only", notebooks 02–05 against "no KD"; 04 in verification points, ``scale=100``; 05 on
    AbsRel, ``lower_is_better=True``).

    Because every run of the grid uses the same seeds, seed ``i`` of a row and seed ``i`` of the baseline share
    the initialisation, the batch order and the augmentation: their difference is a paired comparison.
    """
    if baseline not in values:
        raise ValueError(f"baseline must be one of the rows {list(values)}, got {baseline!r}")
    base = list(values[baseline])
    check_number("scale", scale, low=0.0, strict=True)
    paired = {}
    for label, row in values.items():
        row = list(row)
        if label == baseline:
            continue
        if len(row) != len(base) or not row:
            raise ValueError(f"{label!r} must have one value per baseline seed ({len(base)}), got {len(row)}")
        diffs = [scale * (value - reference) for value, reference in zip(row, base)]
        better = sum(d < 0 for d in diffs) if lower_is_better else sum(d > 0 for d in diffs)
        paired[label] = PairedDifference(mean(diffs), better, len(diffs), lower_is_better)
    return paired


def paired_report(title: str, paired: Mapping[str, PairedDifference], *, fmt: str = "+.1%", unit: str = "") -> str:
    """``title`` and one line per row, ``"  <label>: +1.2%, higher on 2 of 3 seed(s)"``, labels aligned."""
    width = max((len(label) for label in paired), default=0)
    lines = [title] + [f"  {label:>{width}}: {p.describe(fmt, unit)}" for label, p in paired.items()]
    return "\n".join(lines)


def model_row(name: str, model: nn.Module, columns: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A row of a §5 "Data and teacher(s)" table (notebooks 02–04): ``model`` (the name), ``params (M)``, then
    ``columns``."""
    return {"model": name, "params (M)": f"{count_parameters(model) / 1e6:.2f}", **(columns or {})}


def teacher_rows(teachers: Mapping[str, nn.Module], test: TensorData) -> list[dict[str, Any]]:
    """The §5 "Data and teachers" table of notebooks 00 and 01: per shipped classification teacher its family,
    size, test accuracy measured now on ``test`` and the accuracy its manifest states."""
    return [{"teacher": key, "family": model.kdlab_family, "params (M)": f"{count_parameters(model) / 1e6:.2f}",
             "test acc, our test set": f"{evaluate(model, test)['acc']:.1%}",
             "test acc, manifest": f"{teacher_info(key)['metrics']['test_acc']:.1%}"}
            for key, model in teachers.items()]


def quick_retrain(make: Callable[[], Distiller], train: TensorData, val: TensorData | None, *, seed: int,
                  **fit_kwargs: Any) -> tuple[Distiller, History]:
    """The quick retrain behind the ``RetrainPanel`` of a notebook's §8 "Try it" (01–05):
    ``seed_everything(seed)``, build a fresh distiller with ``make()``, ``fit`` it quietly on ``train`` (usually
    a subset) with ``seed`` and ``fit_kwargs``, validating on ``val``; return the distiller and its history (the
    panel plots the history)."""
    check_int("seed", seed, low=0)
    seed_everything(seed)
    distiller = make()
    history = fit(distiller, train, val, seed=seed, progress=False, **fit_kwargs)
    return distiller, history


@torch.no_grad()
def latency_ms(model: nn.Module, x: Tensor, *, repeats: int = 1) -> float:
    """CPU milliseconds per image of ``model`` on the batch ``x``: the model moves to the CPU in eval mode,
    runs ``x`` once to warm up, then ``repeats`` times timed; the time is divided by ``repeats * len(x)``
    (notebook 04 §5 "Data and teacher" and notebook 05 §6 "Experiments" show it next to the parameter counts)."""
    check_tensor("x", x, floating=True)
    repeats = check_int("repeats", repeats, low=1)
    if len(x) == 0:
        raise ValueError("x must hold at least one image, got an empty batch")
    model = model.cpu().eval()
    model(x)
    start = time.perf_counter()
    for _ in range(repeats):
        model(x)
    return 1000 * (time.perf_counter() - start) / (repeats * len(x))


def histories_of(*groups: Mapping[str, Outcome]) -> list[History]:
    """Every history of every outcome in ``groups`` (``run_experiments`` results), in order."""
    return [history for group in groups for outcome in group.values() for history in outcome.histories]


def record_results(notebook: str, recipe: Mapping[str, Any], results: Mapping[str, Any], *, save_reference: bool,
                   profile: str, histories: Iterable[History] | None = None,
                   wall_time_s: float | None = None) -> Path | None:
    """The closing cell of every notebook, §11 "Recorded results": ``record`` every entry of ``results`` (the
    tests read them), then, when ``save_reference`` (the long ``python -m kdlab reference`` run), write them with
    the recipe, its seeds, this device and the wall time to ``data/results/<notebook>.json``, print and return
    that path.

    The wall time is ``wall_time_s``, or else the summed wall time of ``histories`` (give one of the two).
    """
    if not isinstance(results, Mapping):
        raise ValueError(f"results must be a mapping of record names to values, got {type(results).__name__}")
    if (histories is None) == (wall_time_s is None):
        raise ValueError("give exactly one of histories (their wall times are summed) and wall_time_s")
    for name, value in results.items():
        record(name, value)
    if not save_reference:
        return None
    wall = sum(h.wall_time_s for h in histories) if wall_time_s is None else wall_time_s
    path = reference_results.save_reference(notebook, recipe, results, seeds=recipe["seeds"], wall_time_s=wall,
                                            device=describe_device(), profile=profile)
    print(path)
    return path
