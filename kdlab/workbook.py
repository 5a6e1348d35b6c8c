"""Notebook glue, written once: what every notebook needs around its own experiment (layer 6: may import all).

The notebooks share one skeleton (DESIGN.md §6; the § numbers here are the notebooks' own headings): §5 shows
the data and the shipped teachers, §6 runs the same-budget, same-seed experiment grid (:mod:`kdlab.experiments`)
and compares each row with the no-KD baseline seed by seed, §8 retrains one row quickly behind a
``RetrainPanel``, and §11 records the results the tests read (and, in the long reference run, writes them to
``data/results/``). The helpers below are those steps:

- :func:`mean`, :func:`summary_table`: a run's mean over seeds, and the grid's table (mean ± std over seeds);
  :func:`per_seed_table` the same test columns from a reference file's per-seed numbers, and :data:`HEADLINES`,
  :func:`reference_tables`, :func:`show_reference`: a shipped reference run's headline tables with their verdicts;
- :func:`paired_differences` (from :mod:`kdlab.experiments`), :func:`paired_report`, :func:`verdicts`: each row
  against the baseline on the same seeds, with its 95 % interval and the verdict sentence generated from it;
- :func:`teacher_rows`, :func:`model_row`: the rows of the §5 table of teachers and students;
- :func:`quick_retrain`: the §8 retrain (seed, build, fit quietly);
- :func:`latency_ms`: CPU milliseconds per image of a deployed model;
- :func:`sweep_runs`, :func:`sweep_record`, :func:`rows_at`, :func:`sweep_table`, :func:`sweep_verdict`: a loss-weight
  sweep chosen on the
  validation split (03 §6: every feature row at every weight, one weight for all, test read at that weight);
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
from .checks import check_int, check_tensor
from .config import describe_device, seed_everything
from .experiments import (Outcome, PairedDifference, Run, choose_weight, method_runs, paired_differences, summarize,
                          sweep_val_scores, term_ratio)
from .methods import Distiller
from .models import count_parameters
from .record import record
from .recipes import DISDEPTH_LAM_TOY_ROWS, DISDEPTH_ROWS, weighted_rows
from .tables import ResultsTable, format_mean_std, results_table
from .teachers import teacher_info
from .train import History, TensorData, evaluate, fit


def mean(values: Sequence[float]) -> float:
    """``sum(values) / len(values)``: the mean over seeds behind every notebook's §6 tables and §11 records."""
    values = list(values)
    if not values:
        raise ValueError("mean needs at least one value, got an empty sequence")
    return sum(values) / len(values)


def summary_table(outcomes: Mapping[str, Outcome], metric: str = "acc", *, baseline: str | None = None,
                  lower_is_better: bool = False, pct: bool = True, digits: int = 1,
                  unit: str = "") -> list[dict[str, Any]]:
    """The experiment grid as table rows (§6 "Experiments"): per run the seeds, the **test** ``metric`` (read once
    per run, after training) as mean ± std over the seeds, the validation ``metric`` at the last epoch, and, with
    a ``baseline`` label, each row's paired difference to it on the test metric: mean, 95 % interval, how many
    seeds it wins, and the verdict (:class:`~kdlab.experiments.PairedDifference`). ``pct`` shows fractions as
    percentages (differences in points); otherwise values show with ``digits`` decimals and ``unit``.

    The numbers are :func:`kdlab.experiments.summarize`'s; this only formats them, for ``results_table``.
    """
    name = METRIC_NAMES.get(metric, metric)
    scale = 100.0 if pct else 1.0
    shown = digits if pct else digits + 2
    rows = []
    for row in summarize(dict(outcomes), metric, baseline=baseline, lower_is_better=lower_is_better, scale=scale):
        cells = {"run": row["run"], "seeds": row["seeds"],
                 f"test {name}": format_mean_std(row["test"], pct=pct, digits=shown)}
        if row["val_last"] is not None:
            cells[f"val {name}, last epoch"] = format_mean_std(row["val_last"], pct=pct, digits=shown)
        if baseline is not None:
            cells.update(_paired_cells(row["paired"], baseline, pct=pct, digits=digits, unit=unit))
        cells["s / run"] = f"{row['seconds_per_run']:.0f}"
        rows.append(cells)
    return rows


def per_seed_table(per_seed: Mapping[str, Sequence[float]], metric: str = "acc", *, baseline: str | None = None,
                   lower_is_better: bool = False, pct: bool = True, digits: int = 1,
                   unit: str = "") -> list[dict[str, Any]]:
    """:func:`summary_table`'s test columns from recorded numbers instead of live outcomes: ``per_seed`` maps each
    run's label to its per-seed test ``metric`` (a results file's ``*_per_seed`` entry, the same seeds in the same
    order), so a notebook shows its shipped reference run (``kdlab.results``) in the same form as the live run."""
    if not per_seed:
        raise ValueError("per_seed must hold at least one run's per-seed values")
    name = METRIC_NAMES.get(metric, metric)
    paired = (paired_differences(per_seed, baseline, scale=100.0 if pct else 1.0, lower_is_better=lower_is_better)
              if baseline is not None else {})
    rows = []
    for label, values in per_seed.items():
        cells = {"run": label, "seeds": len(values),
                 f"test {name}": format_mean_std(list(values), pct=pct, digits=digits if pct else digits + 2)}
        if baseline is not None:
            cells.update(_paired_cells(paired.get(label), baseline, pct=pct, digits=digits, unit=unit))
        rows.append(cells)
    return rows


@dataclass(frozen=True)
class Headline:
    """One headline comparison of a notebook's results file: the per-seed test numbers at ``key`` in its metrics
    (restricted to ``rows`` when given), each row against ``baseline``; ``metric`` names the column
    (:data:`METRIC_NAMES`), ``pct`` shows fractions as percentages (differences in points)."""

    title: str
    key: tuple[str, ...]
    baseline: str
    metric: str = "acc"
    rows: tuple[str, ...] | None = None
    lower_is_better: bool = False
    pct: bool = True
    digits: int = 1

    def per_seed(self, metrics: Mapping[str, Any]) -> dict[str, list[float]]:
        """The per-seed numbers this headline compares, from a results file's ``metrics``: ``rows`` in their
        order (default: the baseline, then the others as stored)."""
        values: Any = metrics
        for part in self.key:
            values = values[part]
        rows = self.rows or (self.baseline, *(row for row in values if row != self.baseline))
        return {row: list(values[row]) for row in rows}


OFA_ROWS = ("labels only", "Hinton KD", "FitNet hint", "OFA final logits", "OFA all stages")
CSKD_ROWS = ("no KD", "DeiT hard distillation", "CSKD without CKF", "CSKD")
STRUCTURE_TOY_ROWS = ("no KD", "CAFD, facial distance (κ = 1)", "CAFD, Euclidean distance (κ = 0)",
                      "CAFD, no position encoding")
"""The rows of notebook 04's structure toy (section 6.2), in table order."""
LAM_TOY_ROWS = (*DISDEPTH_LAM_TOY_ROWS, "no KD")
"""05 §6.1's rows: uniform and LAM's weights behind the partly noisy teacher (the first is the table's baseline), then
section 6's no-KD student."""
REGIME_ROWS = ("no KD", "embedding KD", "feature MSE", "CAFD without APT", "CAFD without facial distance", "CAFD",
               "embedding KD, CNN teacher", "feature MSE, CNN teacher")
"""The rows of notebook 04's chosen-regime grid (section 6.4): section 6's and the homologous teacher's."""
SWTAT_FEATURE_ROWS = ("TaT (global)", "windows, no shift", "SW-TaT", "SW-TaT union", "SW-TaT + PM")

HEADLINES: dict[str, tuple[Headline, ...]] = {
    "00_primer": (Headline("Dark knowledge (digits, one class never seen): accuracy on the omitted class",
                           ("dark_omitted_per_seed",), "labels only", "omitted_acc"),
                  Headline("Label budget: CNN student with 100 labelled of its training images, test accuracy",
                           ("budget_accuracy_per_seed", "100"), "labels only"),
                  Headline("CNN teacher → ViT student: test accuracy", ("across_accuracy_per_seed",),
                           "labels only")),
    "01_ofa": (Headline("γ toy, teacher trained on confused labels: student test accuracy",
                        ("toy_accuracy_per_seed", "confused labels"), "γ = 1"),
               Headline("γ toy, softened teacher: student test accuracy", ("toy_accuracy_per_seed", "softened"), "γ = 1"),
               Headline("ViT teacher → CNN student: test accuracy", ("accuracy_per_seed", "vit_to_cnn"), "labels only",
                        rows=OFA_ROWS[:3] + ("FitNet hint at stage 1", "FitNet hint, untrained teacher") + OFA_ROWS[3:]),
               Headline("ViT teacher → CNN student, OFA's branches: stages and λ_ofa, test accuracy",
                        ("branch_sweep_accuracy_per_seed",), "OFA final logits"),
               Headline("CNN teacher → ViT student: test accuracy", ("accuracy_per_seed", "cnn_to_vit"), "labels only",
                        rows=OFA_ROWS)),
    "02_cskd": (Headline("Mosaics (the class is the one on two tiles), CNN teacher → distilled ViT: test accuracy",
                         ("mosaic_accuracy_per_seed",), "no KD", rows=CSKD_ROWS),
                Headline("Mosaics, twice the epochs: test accuracy", ("mosaic_longer_accuracy_per_seed",), "no KD",
                         rows=("no KD", "DeiT hard distillation", "CSKD")),
                Headline("Single-object shapes, CNN teacher → distilled ViT: test accuracy", ("accuracy_per_seed",),
                         "no KD", rows=CSKD_ROWS),
                Headline("Single-object shapes, CSKD with one change at a time: test accuracy",
                         ("diagnosis_accuracy_per_seed",), "CSKD",
                         rows=("CSKD", "CSKD, per-iteration schedule", "CSKD, λ_cskd ÷ 4", "CSKD, twice the epochs",
                               "CSKD, read by the class token", "CSKD, read by the DeiT average")),
                Headline("Single-object shapes, strong teacher: CKF on and off, test accuracy",
                         ("ckf_accuracy_per_seed", "strong teacher"), "CSKD without CKF"),
                Headline("Single-object shapes, weak teacher (an early checkpoint): CKF on and off, test accuracy",
                         ("ckf_accuracy_per_seed", "weak teacher"), "CSKD without CKF")),
    "03_swtat": (Headline("Classification, Swin → CNN: test accuracy at the λ_tat chosen on validation",
                          ("cls_sweep", "test"), "no KD", rows=("no KD", "KD") + SWTAT_FEATURE_ROWS[:4]),
                 Headline("Classification, the shift: SW-TaT against the same windows without it, test accuracy",
                          ("cls_sweep", "test"), "windows, no shift", rows=SWTAT_FEATURE_ROWS[1:4]),
                 Headline("Segmentation, CNN → smaller CNN: test mIoU at the λ_sw-tat chosen on validation",
                          ("seg_sweep", "test"), "no KD", "miou",
                          rows=("no KD", "TaT patch groups + anchors") + SWTAT_FEATURE_ROWS),
                 Headline("Segmentation, the shift: SW-TaT against the same windows without it, test mIoU",
                          ("seg_sweep", "test"), "windows, no shift", "miou", rows=SWTAT_FEATURE_ROWS[1:4])),
    "04_cafd_face": (Headline("Swin → CNN faces: test verification accuracy (10-fold)", ("verif_acc_per_seed",), "no KD",
                              "verif_acc", digits=2,
                              rows=("no KD", "embedding KD", "feature MSE", "CAFD without APT",
                                    "CAFD without facial distance", "CAFD", "CAFD, uniform prompt init (VPT)")),
                     Headline("Geometry-only faces (identities differ only in landmark positions): CAFD's position "
                              "encoding, test verification accuracy (10-fold)", ("structure_toy", "verif_acc_per_seed"),
                              "no KD", "verif_acc", digits=2, rows=STRUCTURE_TOY_ROWS),
                     Headline("The regime section 6.3 chose on validation: test verification accuracy (10-fold), "
                              "Swin and CNN teachers", ("regime", "verif_acc_per_seed"), "no KD", "verif_acc",
                              digits=2, rows=REGIME_ROWS)),
    "05_disdepth": (Headline("Swin → CNN depth, each component alone: test AbsRel (lower is better)",
                             ("abs_rel_per_seed",), "no KD", "abs_rel", lower_is_better=True, pct=False, digits=2,
                             rows=tuple(DISDEPTH_ROWS)),
                    Headline("LAM toy, teacher features noisy on the right half: test AbsRel (lower is better)",
                             ("lam_toy", "abs_rel_per_seed"), LAM_TOY_ROWS[0], "abs_rel", lower_is_better=True,
                             pct=False, digits=2, rows=LAM_TOY_ROWS)),
}
"""Each notebook's headline comparisons, read from its results file by :func:`reference_tables` (the notebooks'
"Reference results" and ``python -m kdlab results``, which prints the README's tables)."""


def reference_tables(reference: reference_results.ReferenceResult) -> list[tuple[ResultsTable, str]]:
    """A shipped reference run's headline comparisons (:data:`HEADLINES`) in the live tables' form: per headline
    the :func:`per_seed_table` (titled with where, how and when the run was measured) and the verdict sentences
    generated from its paired differences (:func:`verdicts`)."""
    if reference.notebook not in HEADLINES:
        raise ValueError(f"no headline comparison declared for {reference.notebook!r}; known: {', '.join(HEADLINES)}")
    tables = []
    for headline in HEADLINES[reference.notebook]:
        per_seed = headline.per_seed(reference.metrics)
        sentences = verdicts(paired_differences(per_seed, headline.baseline, scale=100.0 if headline.pct else 1.0,
                                                lower_is_better=headline.lower_is_better),
                             headline.baseline, fmt=_difference_format(headline.pct, headline.digits),
                             unit=" points" if headline.pct else "")
        rows = per_seed_table(per_seed, headline.metric, baseline=headline.baseline,
                              lower_is_better=headline.lower_is_better, pct=headline.pct, digits=headline.digits)
        tables.append((results_table(rows, title=f"{headline.title} — reference run, {reference.describe()}"), sentences))
    return tables


def live_or_reference(live: Any, reference: reference_results.ReferenceResult | None,
                      key: str | Sequence[str]) -> tuple[Any, str]:
    """``(numbers, where they come from)`` for an experiment a profile may not train: ``live`` (measured by this
    run) unless it is ``None`` or empty, else the shipped reference run's ``metrics`` at ``key`` (a name, or a path
    of names into nested metrics), described with where and when it was measured (and as STALE when its recipe
    changed since), else ``(None, why not)``. A results file stores mappings sorted by name: reorder rows as needed.
    """
    if live:
        return live, "measured now"
    path = (key,) if isinstance(key, str) else tuple(key)
    if reference is None:
        return None, "not trained in this profile, and no reference run is shipped"
    value: Any = reference.metrics
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None, (f"not trained in this profile, and the reference run has no {'/'.join(path)} "
                          f"(re-record it: python -m kdlab reference {reference.notebook})")
        value = value[part]
    return value, f"reference run{' (STALE)' if reference.stale else ''}, {reference.describe()}"


VERDICTS = ("better beyond seed noise", "worse beyond seed noise", "inside seed noise")
"""The three readings of a paired difference with an interval (:attr:`PairedDifference.verdict`): what a critique
exercise asks the reader to write down."""


def reference_claim(reference: reference_results.ReferenceResult | None, headline: str,
                    row: str) -> PairedDifference | None:
    """A paper's claim read off the shipped reference run, for the critique exercises: ``row`` against the baseline
    of the notebook's headline table whose title starts with ``headline`` (:data:`HEADLINES`), paired on the same
    seeds. ``None`` when no reference is shipped."""
    if reference is None:
        return None
    found = [h for h in HEADLINES.get(reference.notebook, ()) if h.title.startswith(headline)]
    if len(found) != 1:
        titles = [h.title for h in HEADLINES.get(reference.notebook, ())]
        raise ValueError(f"{len(found)} headline tables of {reference.notebook} start with {headline!r}; "
                         f"titles: {titles}")
    per_seed = found[0].per_seed(reference.metrics)
    if row not in per_seed or row == found[0].baseline:
        raise ValueError(f"{row!r} is not a compared row of {found[0].title!r}; rows: {list(per_seed)[1:]}")
    return paired_differences({row: per_seed[row], found[0].baseline: per_seed[found[0].baseline]},
                              found[0].baseline, scale=100.0 if found[0].pct else 1.0,
                              lower_is_better=found[0].lower_is_better)[row]


def check_verdict(mine: str | None, claim: PairedDifference | None) -> None:
    """A critique exercise's check: the reader's verdict (one of :data:`VERDICTS`) against the one the reference
    run's paired difference gives; says so when the exercise is not attempted yet or no reference is shipped."""
    if claim is None:
        print("No reference run is shipped for this notebook: nothing to check against.")
        return
    if mine is None:
        print("MY_VERDICT is None: the critique exercise is not attempted yet.")
        return
    if mine not in VERDICTS:
        raise ValueError(f"write one of {VERDICTS}, got {mine!r}")
    assert mine == claim.verdict, (f"the reference run says {claim.verdict!r}, not {mine!r}: read the interval "
                                   f"[{claim.low:+.4g}, {claim.high:+.4g}] again")
    print(f"Right: {claim.verdict} ({claim.describe('+.4g')}).")


def show_reference(reference: reference_results.ReferenceResult | None) -> None:
    """A notebook's "Reference results" cell: say that none is shipped, or show the stale warning (when the recipe
    changed since) and every headline table of :func:`reference_tables` with its verdict sentences."""
    from IPython.display import display

    if reference is None:
        print("No reference results shipped for this notebook yet.")
        return
    if reference.stale:
        print(reference.stale_warning())
        try:
            tables = reference_tables(reference)
        except KeyError as missing:  # a recipe change that renamed the headline results: nothing to compare yet
            print(f"The stale reference has no {missing} entry that this notebook's tables read; re-record it "
                  f"(python -m kdlab reference {reference.notebook}).")
            return
    else:
        tables = reference_tables(reference)
    for table, sentences in tables:
        display(table)
        print(sentences)


def _paired_cells(paired: PairedDifference | None, baseline: str, *, pct: bool, digits: int,
                  unit: str) -> dict[str, str]:
    """The paired columns of a table row: the mean difference to ``baseline``, its 95 % interval, wins and the
    verdict (``paired`` is ``None`` on the baseline's own row)."""
    fmt, points = _difference_format(pct, digits), " pt" if pct else unit
    if paired is None:
        return {f"Δ vs {baseline} (paired)": "—", "95 % interval": "—", "wins": "—", "verdict": "baseline"}
    return {f"Δ vs {baseline} (paired)": f"{paired.change:{fmt}}{points}", "95 % interval": paired.interval(fmt, points),
            "wins": f"{paired.better_on} of {paired.seeds}", "verdict": paired.verdict}


def _difference_format(pct: bool, digits: int) -> str:
    """How a paired difference is written: signed, ``digits`` decimals in percentage points, two more for a raw
    metric (an AbsRel of 0.1234 moves in the third decimal)."""
    return f"+.{digits}f" if pct else f"+.{digits + 2}f"


METRIC_NAMES = {"acc": "accuracy", "miou": "mIoU", "abs_rel": "AbsRel", "verif_acc": "verification accuracy",
                "loss": "loss", "omitted_acc": "accuracy on the omitted class",
                "omitted_acc_bias": "omitted class, bias-corrected", "acc_bias": "accuracy, bias-corrected",
                "agreement": "agreement with the teacher", "acc_shifted": "accuracy on shifted images",
                "acc_rotated": "accuracy on rotated images", "tar_far1e-2": "TAR@FAR 1e-2",
                "tar_far1e-2_fold": "TAR@FAR 1e-2 (per fold)"}
"""Readable names of the metric keys the tables show (never a raw key like ``val/acc``)."""


def verdicts(paired: Mapping[str, PairedDifference], baseline: str, *, fmt: str = "+.1%", unit: str = "") -> str:
    """The sentences under a table, generated from its paired differences: one per row, e.g. ``"Hinton KD against
    labels only: +1.2% [-0.3%, +2.7%], higher on 2 of 3 seeds: inside seed noise."``, then a closing
    sentence that counts the rows beyond seed noise. ``fmt`` / ``unit`` format the differences as given (their
    scale is the one ``paired`` was computed with)."""
    lines = [f"{label} against {baseline}: {p.describe(fmt, unit)}." for label, p in paired.items()]
    beyond = [label for label, p in paired.items() if p.verdict.endswith("beyond seed noise")]
    if not paired:
        return "No row to compare with the baseline."
    if any(p.seeds < 2 for p in paired.values()):
        lines.append("With one seed there is no interval: run more seeds (N_SEEDS) before reading a difference.")
    elif beyond:
        lines.append(f"{len(beyond)} of {len(paired)} row(s) differ from {baseline} beyond seed noise "
                     f"(95 % interval excludes 0): {', '.join(beyond)}.")
    else:
        lines.append(f"No row differs from {baseline} beyond seed noise: every 95 % interval contains 0.")
    return "\n".join(lines)


def paired_report(title: str, paired: Mapping[str, PairedDifference], *, fmt: str = "+.1%", unit: str = "") -> str:
    """``title`` and one line per row, ``"  <label>: +1.2% [-0.3%, +2.7%], higher on 2 of 3 seeds: inside seed
    noise"``, labels aligned."""
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


__all__ = ["HEADLINES", "METRIC_NAMES", "VERDICTS", "Headline", "PairedDifference", "check_verdict", "histories_of",
           "latency_ms", "live_or_reference",
           "mean", "model_row",
           "paired_differences", "paired_report", "per_seed_table", "quick_retrain", "record_results", "reference_claim",
           "reference_tables",
           "show_reference", "summary_table", "teacher_rows", "verdicts"]


# --------------------------------------------------------------------------------------------- weight sweeps


def sweep_runs(task: Mapping[str, Any], make_student: Callable[[], nn.Module], teacher: nn.Module,
               fit_kwargs: Mapping[str, Any]) -> list[Run]:
    """The runs of a task's weight sweep (notebook 03 §6): its ``baselines``, then every ``feature_rows`` entry at
    every weight of ``weights``, labelled ``"<row> @ <weight>"`` (:func:`kdlab.recipes.weighted_rows`)."""
    rows = dict(task["baselines"])
    for weight in task["weights"]:
        rows.update(weighted_rows(task["feature_rows"], weight))
    return method_runs(rows, make_student, teacher, fit_kwargs)


def rows_at(outcomes: Mapping[str, Outcome], task: Mapping[str, Any], weight: float,
            labels: Sequence[str] | None = None) -> dict[str, Outcome]:
    """The sweep's baselines and feature rows at one ``weight``, under their plain labels (``labels``: these only,
    in this order)."""
    found = {**{label: outcomes[label] for label in task["baselines"]},
             **{row: outcomes[f"{row} @ {float(weight):g}"] for row in task["feature_rows"]}}
    return found if labels is None else {label: found[label] for label in labels}


def sweep_record(outcomes: Mapping[str, Outcome], task: Mapping[str, Any], *, metric: str = "acc",
                 task_terms: Sequence[str] = ("ce", "kd")) -> dict[str, Any]:
    """What a results file keeps of a sweep: ``val`` (weight -> row -> per-seed last-epoch validation ``metric``),
    ``ratio`` (weight -> row -> the feature terms over ``task_terms`` in the last epoch's training loss,
    :func:`kdlab.experiments.term_ratio`), ``chosen`` (:func:`kdlab.experiments.choose_weight` on ``val``) and
    ``test`` (row -> per-seed test ``metric`` of the baselines and of every feature row at the chosen weight: the
    only test scores the sweep reports). Weights are keyed as text (JSON)."""
    rows = list(task["feature_rows"])
    val = sweep_val_scores(outcomes, rows, task["weights"], metric=metric)
    chosen = choose_weight(val, metric=metric).chosen
    return {
        "val": {f"{w:g}": scores for w, scores in val.items()},
        "ratio": {f"{w:g}": {row: term_ratio(outcomes[f"{row} @ {w:g}"], task_terms) for row in rows}
                  for w in val},
        "chosen": chosen,
        "test": {label: outcome.test(metric) for label, outcome in rows_at(outcomes, task, chosen).items()},
    }


def sweep_table(record_: Mapping[str, Any], metric: str = "acc") -> list[dict[str, Any]]:
    """One row per weight of a :func:`sweep_record`: the feature term's size next to the task loss (mean over the
    rows), each row's mean validation score, their mean (what the choice maximises) and the choice."""
    name = METRIC_NAMES.get(metric, metric)
    choice = choose_weight({float(w): rows for w, rows in record_["val"].items()}, metric=metric)
    table = []
    for w, rows in record_["val"].items():
        ratios = record_["ratio"][w]
        cells = {"weight": float(w), "feature term / task loss": f"{sum(ratios.values()) / len(ratios):.2f}"}
        cells.update({f"{row}: val {name}": f"{mean(v):.1%}" for row, v in rows.items()})
        cells[f"mean val {name}"] = f"{choice.scores[float(w)]:.1%}"
        cells["chosen"] = "✓" if float(w) == choice.chosen else ""
        table.append(cells)
    return table


def sweep_verdict(record_: Mapping[str, Any], symbol: str, metric: str = "acc") -> str:
    """The sentence under a :func:`sweep_table`, generated from its numbers: the chosen weight, its mean validation
    score, the feature term's size there, and whether the choice sits at an end of the grid (then the best weight
    may lie beyond it) or how much the grid's worst weight costs."""
    name = METRIC_NAMES.get(metric, metric)
    choice = choose_weight({float(w): rows for w, rows in record_["val"].items()}, metric=metric)
    weights = sorted(choice.scores)
    ratios = record_["ratio"][f"{choice.chosen:g}"]
    text = (f"{symbol} = {choice.chosen:g} chosen on validation (mean val {name} {choice.scores[choice.chosen]:.1%} "
            f"over the feature rows; there the feature term is {mean(list(ratios.values())):.2f} of the task loss).")
    if len(weights) > 1 and choice.chosen in (weights[0], weights[-1]):
        end = "smallest" if choice.chosen == weights[0] else "largest"
        text += f" It is the {end} weight of the grid: the best weight may lie beyond it."
    if len(weights) > 1:
        worst = min(weights, key=lambda w: choice.scores[w])
        text += (f" The grid's worst, {symbol} = {worst:g}, is "
                 f"{100 * (choice.scores[choice.chosen] - choice.scores[worst]):.1f} points lower.")
    return text
