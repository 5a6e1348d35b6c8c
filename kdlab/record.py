"""Named results that a notebook records for its tests (DESIGN.md §6, last cell).

``record("kd/val_acc", 0.83)`` keeps the value in memory and, when the environment variable
``KDLAB_RECORD_FILE`` is set (the test harness sets it for each notebook run), also merges it into that
JSON file, so the test can read every recorded value back with :func:`read_records` after papermill is
done. Values must be JSON data: numbers, strings, booleans, None, lists and dicts with string keys;
NumPy and torch scalars and arrays are converted. A NaN or infinite number is refused (``ValueError``):
a notebook recording one has a bug, and a test should see it at once rather than compare with ``null``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RECORD_FILE_ENV = "KDLAB_RECORD_FILE"

_RECORDS: dict[str, Any] = {}


def to_jsonable(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON data (tensors and arrays via ``tolist()``); ``where`` names it in errors.

    Raises ``ValueError`` for NaN/inf and for non-string dict keys, ``TypeError`` for other objects.
    """
    if hasattr(value, "tolist"):
        value = value.tolist()  # torch tensors, NumPy arrays and NumPy scalars
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: only finite numbers can be recorded")
        return value
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"{where} has a non-string key {key!r}: JSON keys must be strings")
        return {key: to_jsonable(item, f"{where}[{key!r}]") for key, item in value.items()}
    raise TypeError(f"{where} of type {type(value).__name__} is not JSON data (numbers, str, lists, dicts)")


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON to a temporary file next to ``path``, then rename it over ``path``.

    Readers never see a half-written file; a crash leaves the old file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, sort_keys=True, allow_nan=False)
            file.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the recipe as canonical JSON (sorted keys, no spaces).

    Tuples hash like lists and NumPy/torch scalars like Python numbers, as they would be stored.
    """
    if not isinstance(recipe, Mapping):
        raise TypeError(f"a recipe is a dict of settings, got {type(recipe).__name__}")
    canonical = json.dumps(to_jsonable(dict(recipe), "recipe"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def record(name: str, value: Any) -> Any:
    """Record ``value`` under ``name`` (overwriting an earlier value) and return ``value`` unchanged.

    Stored in memory (see :func:`recorded`) and, if ``KDLAB_RECORD_FILE`` is set, merged into that file.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a record needs a non-empty string name, got {name!r}")
    clean = to_jsonable(value, where=f"record {name!r}")
    _RECORDS[name] = clean
    path = os.environ.get(RECORD_FILE_ENV)
    if path:
        records = read_records(path) if Path(path).exists() else {}
        records[name] = clean
        atomic_write_json(path, records)
    return value


def read_records(path: str | os.PathLike) -> dict[str, Any]:
    """The records stored in the JSON file at ``path`` (``FileNotFoundError`` if nothing was recorded)."""
    with open(path, encoding="utf-8") as file:
        records = json.load(file)
    if not isinstance(records, dict):
        raise ValueError(f"{path} holds a JSON {type(records).__name__}, expected an object of named records")
    return records


def recorded() -> dict[str, Any]:
    """A copy of the values recorded in this process so far."""
    return dict(_RECORDS)
