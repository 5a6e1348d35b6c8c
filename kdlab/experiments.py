"""Same-budget, same-seed comparisons: the experiment grid every notebook runs, and its summary in numbers.

The protocol (``docs/architecture.md`` §4): every run trains on ``train``, reads ``val`` after every epoch (the
curves, and any choice of epochs, weights or sweep values), and reads ``test`` **once**, after its last epoch;
tables report that test score. A :class:`Run` names a training setting: how to build a fresh distiller and how
to fit it. The same seeds are used for every run, and ``seed_everything(seed)`` is called before each distiller
is built, so seed ``i`` of every row shares the initialisation draw, the batch order and the augmentation: a
row's difference to the baseline on the same seed is a *paired* difference (:func:`paired_differences`).

Independent runs go to ``workers`` processes with one thread each (``fork``: each inherits the notebook's
models and data, nothing is pickled but the results); the runs of one seed that share a teacher go to the same
worker (:func:`teacher_groups`), so its memo computes that teacher's outputs once for all of them. With one thread per run the numbers are the same as a
sequential run with one thread (``tests/test_experiments.py``).
"""
from __future__ import annotations

import inspect
import math
import multiprocessing
import os
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .checks import check_choice, check_int, check_number
from .config import seed_everything
from .methods import METHODS, Distiller, is_distilled_vit, student_heads
from .metrics import verification_summary
from .train import History, TensorData, Watch, check_not_test, classification_metrics, evaluate, fit, predict

Final = Callable[[Distiller, TensorData], Mapping[str, float]]
"""``final(distiller, test) -> {metric: value}``: a run's one evaluation on the test set."""


@dataclass
class Run:
    """One row of an experiment: ``make()`` builds a fresh distiller, ``fit`` holds ``kdlab.train.fit`` keywords and
    ``train``, when given, replaces the grid's training set for this row (a label budget, an unlabelled pool); the
    validation and test sets stay the grid's, so every row is scored on the same images."""

    label: str
    make: Callable[[], Distiller]
    fit: dict[str, Any] = field(default_factory=dict)
    train: TensorData | None = None


@dataclass
class Outcome:
    """One :class:`Run` over the seeds: its histories (validation curves), its test scores (read once per seed,
    after training) and the distiller trained with the first seed."""

    run: Run
    seeds: list[int]
    histories: list[History]
    tests: list[dict[str, float]]
    first: Distiller

    def test(self, metric: str = "acc") -> list[float]:
        """Per-seed test ``metric`` (the number tables report)."""
        if any(metric not in scores for scores in self.tests):
            raise KeyError(f"the test evaluation has no {metric!r}; it has {sorted(self.tests[0])}")
        return [scores[metric] for scores in self.tests]

    def val(self, metric: str = "acc", best: bool = False, mode: str = "max") -> list[float]:
        """Per-seed validation ``metric``: at the last epoch, or the best over the epochs when ``best``."""
        key = f"val/{metric}"
        return [h.best(key, mode) if best else h.last(key) for h in self.histories]


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


def default_workers(n_tasks: int) -> int:
    """How many processes :func:`run_experiments` uses by default: ``KDLAB_WORKERS`` when set, else one per CPU
    core (at most one per task) on a machine without CUDA, and 1 with CUDA (one device, one process).
    ``python -m kdlab bench grid`` measured this default against one process using both cores."""
    if "KDLAB_WORKERS" in os.environ:
        return check_int("KDLAB_WORKERS", int(os.environ["KDLAB_WORKERS"]), low=1)
    if torch.cuda.is_available():
        return 1
    return max(1, min(n_tasks, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))


def _default_final(run: Run) -> Final:
    metrics = run.fit.get("metrics", classification_metrics)
    return lambda distiller, test: evaluate(distiller, test, metrics=metrics)


@dataclass
class _Grid:
    """What every task of one :func:`run_experiments` call reads (set before the workers fork, never pickled)."""

    runs: Sequence[Run]
    train: TensorData
    val: TensorData | None
    test: TensorData
    final: Final | None
    progress: bool
    first_seed: int


_GRID: _Grid | None = None


def _run_task(task: tuple[int, int], as_state: bool = False) -> tuple[int, int, list[dict], bool, dict, Any]:
    """Train run ``task[0]`` with seed ``task[1]`` and evaluate it once on the test set: ``(run index, seed,
    history rows, interrupted, test scores, distiller)``. The distiller is kept for the first seed only, and
    from a worker it travels as its state dict (``as_state``)."""
    index, seed = task
    grid = _GRID
    run = grid.runs[index]
    seed_everything(seed)
    distiller = run.make()
    history = fit(distiller, grid.train if run.train is None else run.train, grid.val, seed=seed, progress=grid.progress,
                  desc=f"{run.label} · seed {seed}", **run.fit)
    scores = dict((grid.final or _default_final(run))(distiller, grid.test))
    if seed != grid.first_seed:
        distiller = None
    elif as_state:
        distiller = distiller.state_dict()
    return index, seed, history.rows, history.interrupted, scores, distiller


def _worker_group(group: list[tuple[int, int]]) -> list[tuple]:
    """A worker's share: the runs of ``group`` one after the other on one thread (they share its teacher memo)."""
    torch.set_num_threads(1)
    return [_run_task(task, as_state=True) for task in group]


def teacher_groups(runs: Sequence[Run], seeds: Sequence[int]) -> list[list[tuple[int, int]]]:
    """The tasks ``(run index, seed)`` in groups for the workers: per seed, the runs whose teacher outputs are
    memoised under one key (:meth:`~kdlab.methods.Distiller.teacher_cache_key`) form one group, so one worker
    computes those outputs once for all of them (:data:`~kdlab.methods.common.TEACHER_OUTPUTS`); every other run
    (no teacher, or a teacher side that learns and is never memoised) is a group of its own, which keeps the groups
    small enough to balance. Largest groups first, for the pool's dynamic scheduling. The key is read from one
    ``make()`` per run."""
    keys = []
    for index, run in enumerate(runs):
        distiller = run.make()
        key = distiller.teacher_cache_key() if isinstance(distiller, Distiller) else None
        keys.append(("memo", key) if key is not None else ("alone", index))
    groups: list[list[tuple[int, int]]] = []
    for seed in seeds:
        by_key: dict[Hashable, list[tuple[int, int]]] = {}
        for index, key in enumerate(keys):
            by_key.setdefault(key, []).append((index, seed))
        groups += by_key.values()
    return sorted(groups, key=len, reverse=True)


def run_experiments(runs: Sequence[Run], train: TensorData, val: TensorData | None, test: TensorData, *,
                    seeds: Sequence[int], final: Final | None = None, workers: int | None = None,
                    progress: bool = True) -> dict[str, Outcome]:
    """Train every run once per seed (the same seeds for all) and return ``{label: Outcome}`` in run order.

    ``val`` is what ``fit`` evaluates after every epoch (``None``: no curves); it must not be a test set.
    ``test`` is read once per run, after training, by ``final(distiller, test)`` (default: ``evaluate`` with the
    run's ``fit`` metrics). ``workers`` processes (default :func:`default_workers`) train runs in parallel, one
    thread each; ``workers=1`` trains them here, one after the other, with this process's threads.
    """
    seeds = [check_int("seed", seed, low=0) for seed in seeds]
    if not seeds:
        raise ValueError("give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    labels = [run.label for run in runs]
    if not runs or len(set(labels)) != len(labels):
        raise ValueError(f"give runs with unique labels, got {labels}")
    check_not_test(val)
    if getattr(test, "role", "test") not in ("test", ""):
        raise ValueError(f"test must be the test split, got the {test.role!r} set {test.name!r}")
    tasks = [(index, seed) for seed in seeds for index in range(len(runs))]  # seed-major: rows share teacher outputs
    workers = default_workers(len(tasks)) if workers is None else check_int("workers", workers, low=1)
    global _GRID
    _GRID = _Grid(runs, train, val, test, final, progress and workers == 1, seeds[0])
    try:
        results = _sequential(tasks) if workers == 1 else _parallel(teacher_groups(runs, seeds), workers, progress)
    finally:
        _GRID = None
    return _outcomes(runs, seeds, results)


def _sequential(tasks: list[tuple[int, int]]) -> list[tuple]:
    return [_run_task(task) for task in tasks]


def _parallel(groups: list[list[tuple[int, int]]], workers: int, progress: bool) -> list[tuple]:
    """The task groups in ``workers`` forked processes; a bar counts finished runs. Each result's distiller is the
    state dict of the first seed's run, rebuilt here by :func:`_outcomes`."""
    context = multiprocessing.get_context("fork")
    results: list[tuple] = []
    with context.Pool(min(workers, len(groups))) as pool, \
            tqdm(total=sum(map(len, groups)), desc=f"runs on {workers} processes", disable=not progress) as bar:
        for group_results in pool.imap_unordered(_worker_group, groups):
            results += group_results
            bar.update(len(group_results))
    return results


def _outcomes(runs: Sequence[Run], seeds: list[int], results: list[tuple]) -> dict[str, Outcome]:
    """Sort the task results back into one :class:`Outcome` per run (seeds in the given order)."""
    by_task = {(index, seed): rest for index, seed, *rest in results}
    outcomes = {}
    for index, run in enumerate(runs):
        histories, tests = [], []
        for seed in seeds:
            rows, interrupted, scores, _ = by_task[index, seed]
            histories.append(History(rows, interrupted))
            tests.append(scores)
        first = by_task[index, seeds[0]][3]
        if not isinstance(first, Distiller):  # a worker's state dict: rebuild the distiller here
            seed_everything(seeds[0])
            distiller = run.make()
            distiller.load_state_dict(first)
            first = distiller.eval()
        outcomes[run.label] = Outcome(run, list(seeds), histories, tests, first)
    return outcomes


# ----------------------------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class PairedDifference:
    """One row against the baseline on the same seeds. ``change`` is the mean over seeds of
    ``scale * (value - baseline value)``; ``low`` / ``high`` its 95 % confidence interval (Student's t with
    ``seeds - 1`` degrees of freedom; ``nan`` for one seed); ``better_on`` the number of seeds where the row is
    better (higher, or lower when ``lower_is_better``), out of ``seeds``."""

    change: float
    low: float
    high: float
    better_on: int
    seeds: int
    lower_is_better: bool = False

    @property
    def verdict(self) -> str:
        """What the interval says, in words: ``"better beyond seed noise"`` when it excludes 0 on the better
        side, ``"worse beyond seed noise"`` on the other, ``"inside seed noise"`` when it contains 0, and
        ``"one seed: no interval"``."""
        if self.seeds < 2:
            return "one seed: no interval"
        if self.low <= 0 <= self.high:
            return "inside seed noise"
        improved = (self.high < 0) if self.lower_is_better else (self.low > 0)
        return "better beyond seed noise" if improved else "worse beyond seed noise"

    def interval(self, fmt: str = "+.1%", unit: str = "") -> str:
        """``"[-0.3%, +2.7%]"`` (``"—"`` for one seed)."""
        if self.seeds < 2:
            return "—"
        return f"[{self.low:{fmt}}{unit}, {self.high:{fmt}}{unit}]"

    def describe(self, fmt: str = "+.1%", unit: str = "") -> str:
        """``"+1.2% [-0.3%, +2.7%], higher on 2 of 3 seeds: inside seed noise"``."""
        direction = "lower" if self.lower_is_better else "higher"
        span = f" {self.interval(fmt, unit)}" if self.seeds > 1 else ""
        return (f"{self.change:{fmt}}{unit}{span}, {direction} on {self.better_on} of {self.seeds} "
                f"seed{'s' if self.seeds != 1 else ''}: {self.verdict}")

    def as_record(self, change_key: str = "change") -> dict[str, float | int | str | None]:
        """``{change_key: change, "low", "high", "better_on", "seeds", "verdict"}``, the form the notebooks record
        (``low`` and ``high`` are ``None`` for one seed: JSON has no NaN)."""
        bounds = (self.low, self.high) if self.seeds > 1 else (None, None)
        return {change_key: self.change, "low": bounds[0], "high": bounds[1], "better_on": self.better_on,
                "seeds": self.seeds, "verdict": self.verdict}


def t_quantile_975(dof: int) -> float:
    """The 97.5 % quantile of Student's t with ``dof`` degrees of freedom (the half-width factor of a 95 %
    interval)."""
    from scipy.stats import t

    return float(t.ppf(0.975, check_int("dof", dof, low=1)))


def paired_difference(values: Sequence[float], baseline: Sequence[float], *, scale: float = 1.0,
                      lower_is_better: bool = False) -> PairedDifference:
    """``values`` against ``baseline`` seed by seed (the same seeds in the same order): a :class:`PairedDifference`
    of ``d_i = scale * (values_i - baseline_i)``, mean ``d̄`` and interval ``d̄ ± t_{0.975, n-1} s_d / sqrt(n)``."""
    values, baseline = list(values), list(baseline)
    if len(values) != len(baseline) or not values:
        raise ValueError(f"give one value per baseline seed ({len(baseline)}), got {len(values)}")
    diffs = [scale * (value - reference) for value, reference in zip(values, baseline)]
    n = len(diffs)
    change = sum(diffs) / n
    if n > 1:
        sd = math.sqrt(sum((d - change) ** 2 for d in diffs) / (n - 1))
        half = t_quantile_975(n - 1) * sd / math.sqrt(n)
        low, high = change - half, change + half
    else:
        low = high = math.nan
    better = sum(d < 0 for d in diffs) if lower_is_better else sum(d > 0 for d in diffs)
    return PairedDifference(change, low, high, better, n, lower_is_better)


def paired_differences(values: Mapping[str, Sequence[float]], baseline: str, *, scale: float = 1.0,
                       lower_is_better: bool = False) -> dict[str, PairedDifference]:
    """Every row of ``values`` (label -> per-seed values, the same seeds in the same order) but ``baseline``,
    against ``baseline`` seed by seed (:func:`paired_difference`); e.g. notebook 04 in verification points
    (``scale=100``), 05 on AbsRel (``lower_is_better=True``)."""
    if baseline not in values:
        raise ValueError(f"baseline must be one of the rows {list(values)}, got {baseline!r}")
    check_number("scale", scale, low=0.0, strict=True)
    return {label: paired_difference(row, values[baseline], scale=scale, lower_is_better=lower_is_better)
            for label, row in values.items() if label != baseline}


def summarize(outcomes: Mapping[str, Outcome], metric: str = "acc", *, baseline: str | None = None,
              lower_is_better: bool = False, scale: float = 1.0) -> list[dict[str, Any]]:
    """One row of numbers per run: ``run`` (its label), ``seeds`` (how many), ``test`` (the per-seed test
    ``metric``), ``val_last`` / ``val_best`` (the per-seed validation ``metric`` at the last and the best epoch),
    ``seconds_per_run`` (mean wall time of one seed's training) and, with a ``baseline`` label, ``paired`` (the
    row's :class:`PairedDifference` on the test metric; ``None`` on the baseline row)."""
    mode = "min" if lower_is_better else "max"
    tests = {label: outcome.test(metric) for label, outcome in outcomes.items()}
    paired = paired_differences(tests, baseline, scale=scale, lower_is_better=lower_is_better) if baseline else {}
    rows = []
    for label, outcome in outcomes.items():
        has_val = all(f"val/{metric}" in h.keys() for h in outcome.histories)
        seconds = [h.wall_time_s for h in outcome.histories]
        rows.append({
            "run": label,
            "seeds": len(outcome.seeds),
            "test": tests[label],
            "val_last": outcome.val(metric) if has_val else None,
            "val_best": outcome.val(metric, best=True, mode=mode) if has_val else None,
            "seconds_per_run": sum(seconds) / len(seconds),
            "paired": paired.get(label),
        })
    return rows


@torch.no_grad()
def head_accuracies(distiller: Distiller, data: TensorData, *, batch_size: int = 512) -> dict[str, float]:
    """Accuracy (a fraction) on ``data`` of every readout of a distilled ViT student (class token, distillation
    token, patch average, DeiT's and CSKD's averages: :func:`kdlab.methods.student_heads`), in eval mode, on the
    student's device, ``batch_size`` images at a time."""
    student = distiller.student
    check_int("batch_size", batch_size, low=1)
    device, was_training = next(student.parameters()).device, student.training
    student.eval()
    correct: dict[str, float] = {}
    for start in range(0, len(data.x), batch_size):
        x, y = data.x[start:start + batch_size].to(device), data.y[start:start + batch_size].to(device)
        for name, logits in student_heads(student, x).items():
            correct[name] = correct.get(name, 0.0) + (logits.argmax(1) == y).sum().item()
    student.train(was_training)
    return {name: count / len(data.x) for name, count in correct.items()}


def head_watch(data: TensorData) -> Watch:
    """A ``fit(watch=...)`` that follows :func:`head_accuracies` on ``data`` (the validation split) after each epoch."""
    def watch(distiller: Distiller) -> dict[str, float]:
        return head_accuracies(distiller, data)
    return watch


def face_embeddings(model: nn.Module, x: Tensor, *, flip_test: bool = False) -> Tensor:
    r"""(N, E) embeddings of the faces ``x`` (N, C, H, W) by ``model`` (eval mode, no gradient). ``flip_test``:
    insightface's verification embedding, $e(x) + e(\mathrm{mirror}(x))$ (the pair score is a cosine, so the sum
    and the mean give the same accuracy)."""
    embeddings = predict(model, x, device="cpu")
    return embeddings + predict(model, x.flip(-1), device="cpu") if flip_test else embeddings


def verify_faces(model: nn.Module, data: TensorData, *, flip_test: bool = False) -> dict[str, float]:
    """:func:`kdlab.metrics.verification_summary` of ``model``'s :func:`face_embeddings` on ``data``'s pairs (a
    face set with ``pairs`` and ``same``)."""
    if not hasattr(data, "pairs") or not hasattr(data, "same"):
        raise TypeError(f"verification needs a face set with pairs and same, got {type(data).__name__}")
    return verification_summary(face_embeddings(model, data.x, flip_test=flip_test), data.pairs, data.same)


def verification_watch(data: TensorData, models: Mapping[str, Callable[[Distiller], nn.Module]], *,
                       flip_test: bool = False) -> Watch:
    """A ``fit(watch=...)`` that follows the verification accuracy of embedding models read off the distiller,
    ``{name: get}`` (e.g. ``{"student": lambda d: d.student, "prompted teacher": lambda d: d.apt}``), on the
    pairs of ``data`` (the validation identities) after each epoch: ``watch/<name> verif_acc``."""
    def watch(distiller: Distiller) -> dict[str, float]:
        return {f"{name} verif_acc": verify_faces(get(distiller), data, flip_test=flip_test)["verif_acc"]
                for name, get in models.items()}
    return watch


def head_final(distiller: Distiller, test: TensorData) -> dict[str, float]:
    """A ``final`` for :func:`run_experiments` that reads the test set once for the deployed output (``acc``,
    ``loss``) and, for a distilled ViT student, every readout (``head/<name>``: :func:`head_accuracies`), so a table
    can compare readouts of the same trained students. Other students (a plain ViT row) get the first two only."""
    scores = evaluate(distiller, test)
    if is_distilled_vit(distiller.student):
        scores.update({f"head/{name}": acc for name, acc in head_accuracies(distiller, test).items()})
    return scores


# ------------------------------------------------------------------------------------ choosing on validation


@dataclass(frozen=True)
class WeightChoice:
    """A loss weight chosen on the validation split: ``chosen`` (the weight), ``scores`` (weight -> the mean
    validation ``metric`` over the compared rows and seeds, at the last epoch) and ``per_row`` (weight -> row label
    -> that row's mean validation score)."""

    chosen: float
    scores: dict[float, float]
    per_row: dict[float, dict[str, float]]
    metric: str


def choose_weight(val_scores: Mapping[float, Mapping[str, Sequence[float]]], *, metric: str = "acc",
                  lower_is_better: bool = False) -> WeightChoice:
    """The one weight with the best mean validation score over every row it was tried on (the same choice for all
    rows, so no row gets a weight tuned to itself). ``val_scores`` is weight -> row label -> per-seed validation
    scores (every weight with the same rows). Ties (equal to 12 decimals) go to the smaller weight. The test set plays
    no part."""
    if not val_scores:
        raise ValueError("give the validation scores of at least one weight")
    labels = {tuple(sorted(rows)) for rows in val_scores.values()}
    if len(labels) != 1 or not next(iter(labels)):
        raise ValueError(f"every weight needs the same, non-empty rows, got {[sorted(r) for r in val_scores.values()]}")
    per_row = {float(w): {label: sum(v) / len(v) for label, v in rows.items()} for w, rows in val_scores.items()}
    scores = {w: sum(rows.values()) / len(rows) for w, rows in per_row.items()}
    sign = -1.0 if lower_is_better else 1.0
    chosen = max(sorted(scores), key=lambda w: (round(sign * scores[w], 12), -w))  # equal up to rounding: a tie
    return WeightChoice(chosen, scores, per_row, metric)


@dataclass(frozen=True)
class GainChoice:
    """A setting chosen on the validation split by what the compared rows gain over ``baseline`` there:
    ``chosen`` (the option), ``gains`` (option -> row -> its :class:`PairedDifference` to the baseline on the
    validation scores) and ``mean_gain`` (option -> the mean of those changes over the rows)."""

    chosen: str
    gains: dict[str, dict[str, PairedDifference]]
    mean_gain: dict[str, float]
    baseline: str


def choose_by_gain(val_scores: Mapping[str, Mapping[str, Sequence[float]]], baseline: str, *, scale: float = 1.0,
                   lower_is_better: bool = False) -> GainChoice:
    """The option (a training regime, notebook 04 §6.3) whose rows gain most over its own ``baseline`` row on
    validation: ``val_scores`` is option -> row -> per-seed validation scores (every option with the baseline and
    the same other rows); the gain of a row is its mean paired difference (:func:`paired_difference`, ``scale``)
    and an option's score the mean over its rows. Unlike :func:`choose_weight` this compares gains, not levels, so
    an option that lowers every row alike (a smaller student) is judged by what distillation adds in it. Ties (equal
    to 12 decimals) go to the earlier option; the test set plays no part."""
    if not val_scores:
        raise ValueError("give the validation scores of at least one option")
    rows = {tuple(sorted(scores)) for scores in val_scores.values()}
    if len(rows) != 1 or baseline not in next(iter(rows)) or len(next(iter(rows))) < 2:
        raise ValueError(f"every option needs the baseline {baseline!r} and the same other rows, got "
                         f"{[sorted(scores) for scores in val_scores.values()]}")
    gains = {option: paired_differences(scores, baseline, scale=scale, lower_is_better=lower_is_better)
             for option, scores in val_scores.items()}
    sign = -1.0 if lower_is_better else 1.0
    mean_gain = {option: sum(p.change for p in by_row.values()) / len(by_row) for option, by_row in gains.items()}
    chosen = max(mean_gain, key=lambda option: round(sign * mean_gain[option], 12))  # max keeps the first of ties
    return GainChoice(chosen, gains, mean_gain, baseline)


def sweep_val_scores(outcomes: Mapping[str, Outcome], rows: Sequence[str], weights: Sequence[float], *,
                     metric: str = "acc") -> dict[float, dict[str, list[float]]]:
    """weight -> row -> per-seed last-epoch validation ``metric``, read from a sweep's outcomes labelled
    ``"<row> @ <weight>"`` (:func:`kdlab.recipes.weighted_rows`)."""
    return {float(w): {row: outcomes[f"{row} @ {float(w):g}"].val(metric) for row in rows} for w in weights}


def term_ratio(outcome: Outcome, task_terms: Sequence[str] = ("ce", "kd"), ignore: Sequence[str] = ()) -> float:
    """The weighted feature terms over the task terms (``task_terms``) in the last epoch's mean training loss,
    averaged over seeds: how loud the distillation term is next to the task it serves. Terms in ``ignore`` count
    as neither (CAFD's ``teacher_margin`` trains the teacher side, not the student)."""
    ratios = []
    for history in outcome.histories:
        last = history.rows[-1]
        terms = {key[len("train/"):]: value for key, value in last.items()
                 if key.startswith("train/") and key != "train/loss"}
        task = sum(value for name, value in terms.items() if name in task_terms)
        feature = sum(value for name, value in terms.items() if name not in task_terms and name not in ignore)
        if task <= 0:
            raise ValueError(f"the task terms {list(task_terms)} are zero or missing in {sorted(terms)}")
        ratios.append(feature / task)
    return sum(ratios) / len(ratios)
