"""Reference results: the numbers of a long run, shipped next to the notebook that produced them (DESIGN.md §4).

A long run (the ``gpu`` profile on a GPU, or a long CPU run) calls :func:`save_reference`, which writes
``data/results/<notebook>.json`` with the recipe (every knob that shapes the numbers), its hash, where
and how it was measured, and every metric. A notebook then shows :func:`load_reference` next to the
reader's own quick run. When the notebook's recipe changes, the stored hash no longer matches: the
result is *stale* and says so in its first line wherever it is shown, so old numbers are never passed
off as the current recipe's.
"""
from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from . import config
from .record import atomic_write_json, recipe_hash, to_jsonable
from .tables import ResultsTable, format_mean_std, results_table

REQUIRED_KEYS = ("notebook", "recipe", "recipe_hash", "profile", "device", "date", "seeds", "wall_time_s",
                 "metrics", "kdlab_version", "torch_version")
"""The keys every results file holds."""


def _results_dir(root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    return config.DATA_DIR / "results"  # read at call time: tests point it elsewhere


def _results_path(notebook: str, root: str | Path | None) -> Path:
    if not isinstance(notebook, str) or not notebook or notebook.startswith(".") or any(c in notebook for c in "/\\"):
        raise ValueError(f"notebook must be a plain file stem such as '02_ofa', got {notebook!r}")
    return _results_dir(root) / f"{notebook}.json"


def _problems(data: Any, path: Path) -> list[str]:
    """What is wrong with the parsed contents ``data`` of the results file ``path`` (empty list: nothing)."""
    if not isinstance(data, dict):
        return [f"expected a JSON object, got {type(data).__name__}"]
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        return [f"missing keys: {', '.join(missing)}"]
    problems = []
    if data["notebook"] != path.stem:
        problems.append(f"notebook {data['notebook']!r} does not match the file name {path.name!r}")
    for key, kind in (("recipe", dict), ("metrics", dict), ("seeds", list)):
        if not isinstance(data[key], kind):
            problems.append(f"{key} should be a JSON {'object' if kind is dict else 'array'}")
    if isinstance(data["recipe"], dict) and data["recipe_hash"] != recipe_hash(data["recipe"]):
        problems.append(f"recipe_hash {data['recipe_hash']!r} is not the hash of the stored recipe")
    if not isinstance(data["wall_time_s"], (int, float)) or data["wall_time_s"] < 0:
        problems.append(f"wall_time_s should be a non-negative number, got {data['wall_time_s']!r}")
    return problems


def _inspect(path: Path) -> tuple[Any, list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, [f"not valid JSON: {error}"]
    return data, _problems(data, path)


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metric dicts as one level with "/"-joined names: {"kd": {"acc": 1}} -> {"kd/acc": 1}."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


PER_SEED = "per_seed"
"""A metric whose name contains this (``accuracy_per_seed/KD``) holds one number per seed, shown as mean ± std;
other number lists (per stage, per epoch, first and last loss) are shown as lists."""


def _metric_cell(name: str, value: Any) -> Any:
    """Per-seed numbers (``PER_SEED`` in the name) as mean ± std, other number lists as lists, the rest as is."""
    is_numbers = (isinstance(value, list) and value
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not is_numbers:
        return value
    if PER_SEED in name:
        return format_mean_std(value, pct=False, digits=4)
    return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"


@dataclass(frozen=True)
class ReferenceResult:
    """One results file, compared with the recipe the notebook runs now (``current_hash``)."""

    path: Path
    current_hash: str
    notebook: str
    recipe: dict[str, Any]
    recipe_hash: str
    profile: str
    device: str
    date: str
    seeds: list[int]
    wall_time_s: float
    metrics: dict[str, Any]
    kdlab_version: str
    torch_version: str

    @property
    def stale(self) -> bool:
        """True when the stored numbers were measured with a different recipe than the current one."""
        return self.recipe_hash != self.current_hash

    def stale_warning(self) -> str:
        """The loud first line shown for a stale result."""
        return (f"STALE: {self.path.name} was measured with recipe {self.recipe_hash}, but the current recipe is "
                f"{self.current_hash}; these numbers do not describe the current settings (rerun the long run).")

    def describe(self) -> str:
        """Where and how the numbers were measured, in one line."""
        n = len(self.seeds)
        return (f"measured on {self.device}, profile {self.profile}, {n} seed{'' if n == 1 else 's'}, "
                f"{self.wall_time_s / 60:.1f} min of training, {self.date[:10]}")

    def table(self) -> ResultsTable:
        """The metrics as a two-column table (per-seed lists as mean ± std, see :data:`PER_SEED`)."""
        rows = [{"metric": name, "value": _metric_cell(name, value)} for name, value in _flatten(self.metrics).items()]
        return results_table(rows, ["metric", "value"], title=f"Reference results: {self.notebook}")

    def __str__(self) -> str:
        lines = [self.stale_warning()] if self.stale else []
        return "\n".join([*lines, self.describe(), "", str(self.table())])

    def _repr_html_(self) -> str:
        banner = (f'<p style="color:#b00020;font-weight:bold;font-size:1.2em">{html.escape(self.stale_warning())}</p>'
                  if self.stale else "")
        return f"{banner}<p><i>{html.escape(self.describe())}</i></p>{self.table()._repr_html_()}"


def save_reference(notebook: str, recipe: Mapping[str, Any], metrics: Mapping[str, Any], *, seeds: Sequence[int],
                   wall_time_s: float, device: str, profile: str, root: str | Path | None = None) -> Path:
    """Write ``<root>/<notebook>.json`` (default root ``data/results``) and return its path.

    ``metrics`` may nest dicts and hold per-seed lists; values must be finite JSON numbers or strings.
    ``wall_time_s`` is the run's training time (``kdlab.workbook.record_results``: its runs' training times summed,
    or the training cells' elapsed time); the whole notebook's elapsed time is what ``python -m kdlab reference``
    prints.
    """
    path = _results_path(notebook, root)
    data = {
        "notebook": notebook,
        "recipe": to_jsonable(dict(recipe), "recipe"),
        "recipe_hash": recipe_hash(recipe),
        "profile": profile,
        "device": device,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seeds": [int(seed) for seed in seeds],
        "wall_time_s": float(wall_time_s),
        "metrics": to_jsonable(dict(metrics), "metrics"),
        "kdlab_version": config.__version__,
        "torch_version": torch.__version__,
    }
    problems = _problems(data, path)
    if problems:
        raise ValueError(f"refusing to write {path}: {'; '.join(problems)}")
    atomic_write_json(path, data)
    return path


def load_reference(notebook: str, recipe: Mapping[str, Any], root: str | Path | None = None) -> ReferenceResult | None:
    """The stored reference result of ``notebook`` (``None`` if there is none), checked against ``recipe``.

    A malformed file raises ``ValueError``; a file from another recipe loads with ``stale == True``.
    """
    path = _results_path(notebook, root)
    if not path.exists():
        return None
    data, problems = _inspect(path)
    if problems:
        raise ValueError(f"{path}: {'; '.join(problems)}")
    fields = {key: data[key] for key in REQUIRED_KEYS}
    return ReferenceResult(path=path, current_hash=recipe_hash(recipe), **fields)


def check_all(root: str | Path | None = None) -> list[tuple[Path, str]]:
    """(path, problem) for every results file under ``root`` that does not parse or lacks what it must hold."""
    return [(path, problem) for path in sorted(_results_dir(root).glob("*.json")) for problem in _inspect(path)[1]]
