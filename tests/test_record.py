"""kdlab.record: named JSON results, in memory and (with KDLAB_RECORD_FILE) on disk, written atomically."""
from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
import torch

rec = importlib.import_module("kdlab.record")  # the module, even if kdlab re-exports the function `record`


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Every test starts with no records and no record file."""
    monkeypatch.setattr(rec, "_RECORDS", {})
    monkeypatch.delenv(rec.RECORD_FILE_ENV, raising=False)


def test_in_memory_without_env_var(tmp_path):
    value = torch.tensor(0.75)
    assert rec.record("kd/acc", value) is value  # returned unchanged, for chaining
    assert rec.recorded() == {"kd/acc": 0.75}
    assert list(tmp_path.iterdir()) == []
    rec.recorded()["other"] = 1  # a copy: the store is not changed from outside
    assert "other" not in rec.recorded()


def test_file_append_and_overwrite(tmp_path, monkeypatch):
    path = tmp_path / "nested" / "records.json"
    monkeypatch.setenv(rec.RECORD_FILE_ENV, str(path))
    rec.record("acc", 0.5)
    rec.record("curve", [1, 2.5])
    rec.record("acc", 0.6)
    assert rec.read_records(path) == {"acc": 0.6, "curve": [1, 2.5]}
    assert [p.name for p in path.parent.iterdir()] == ["records.json"]  # no temporary files left behind


def test_file_keeps_records_of_earlier_processes(tmp_path, monkeypatch):
    path = tmp_path / "records.json"
    path.write_text(json.dumps({"from_before": 1}))
    monkeypatch.setenv(rec.RECORD_FILE_ENV, str(path))
    rec.record("now", "ok")
    assert rec.read_records(path) == {"from_before": 1, "now": "ok"}
    assert rec.recorded() == {"now": "ok"}


def test_numpy_torch_and_nested_values_are_converted():
    value = {
        "np_float": np.float32(0.5),
        "np_int": np.int64(3),
        "np_bool": np.bool_(True),
        "tensor": torch.tensor([[1.0, 2.0]], requires_grad=True),
        "array": np.arange(3),
        "tuple": (1, "a", None),
    }
    rec.record("mixed", value)
    assert rec.recorded()["mixed"] == {
        "np_float": 0.5, "np_int": 3, "np_bool": True, "tensor": [[1.0, 2.0]], "array": [0, 1, 2],
        "tuple": [1, "a", None],
    }
    assert type(rec.recorded()["mixed"]["np_int"]) is int
    json.dumps(rec.recorded(), allow_nan=False)


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_bad_names(name):
    with pytest.raises(ValueError, match="non-empty string name"):
        rec.record(name, 1.0)


@pytest.mark.parametrize(
    ("value", "where"),
    [(math.nan, "record 'x' is nan"), (torch.tensor(math.inf), "record 'x' is inf"),
     ({"a": [0.0, np.float64("nan")]}, r"record 'x'\['a'\]\[1\] is nan")],
)
def test_non_finite_values_are_refused(value, where, tmp_path, monkeypatch):
    monkeypatch.setenv(rec.RECORD_FILE_ENV, str(tmp_path / "r.json"))
    with pytest.raises(ValueError, match=where):
        rec.record("x", value)
    assert rec.recorded() == {} and not (tmp_path / "r.json").exists()


def test_non_json_values_are_refused():
    with pytest.raises(TypeError, match="object is not JSON data"):
        rec.record("x", object())
    with pytest.raises(ValueError, match="non-string key 1"):
        rec.record("x", {1: 2.0})


def test_read_records_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        rec.read_records(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected an object"):
        rec.read_records(tmp_path / "list.json")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "data.json"
    rec.atomic_write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        rec.atomic_write_json(path, {"a": math.nan})  # json refuses NaN mid-write
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]
