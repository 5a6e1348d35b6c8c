"""kdlab.results: reference results round-trip, stale recipes are flagged loudly, malformed files are found."""
from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
import torch

import kdlab
from kdlab.record import recipe_hash
from kdlab.results import REQUIRED_KEYS, check_all, load_reference, save_reference

RECIPE = {"epochs": 30, "lr": 0.05, "temperature": 4.0, "models": ("resnet", "vit"), "seeds": [0, 1, 2]}
METRICS = {"kd": {"acc_per_seed": [0.81, 0.83, 0.82], "loss_first_last": [2.31, 0.4567]}, "baseline/val/acc": 0.78,
           "note": "tiny ViT", "per_stage": [0.5, 0.25, 0.125]}


def save(root, notebook="02_ofa", recipe=RECIPE, **overrides):
    kwargs = {"seeds": [0, 1, 2], "wall_time_s": 540.0, "device": "NVIDIA H100", "profile": "gpu", **overrides}
    return save_reference(notebook, recipe, METRICS, root=root, **kwargs)


def test_recipe_hash_is_canonical():
    digest = recipe_hash(RECIPE)
    assert len(digest) == 16 and int(digest, 16) >= 0
    reordered = dict(reversed(list(RECIPE.items())))
    assert recipe_hash(reordered) == digest
    assert recipe_hash({**RECIPE, "models": ["resnet", "vit"], "epochs": np.int64(30)}) == digest
    assert recipe_hash({**RECIPE, "lr": 0.1}) != digest
    with pytest.raises(TypeError, match="dict of settings"):
        recipe_hash([("lr", 0.1)])


def test_save_writes_every_key(tmp_path):
    path = save(tmp_path)
    assert path == tmp_path / "02_ofa.json"
    data = json.loads(path.read_text())
    assert set(data) == set(REQUIRED_KEYS)
    assert data["recipe_hash"] == recipe_hash(RECIPE)
    assert data["recipe"]["models"] == ["resnet", "vit"]
    assert data["kdlab_version"] == kdlab.__version__ and data["torch_version"] == torch.__version__
    assert datetime.fromisoformat(data["date"]).utcoffset().total_seconds() == 0
    assert check_all(tmp_path) == []


def test_load_round_trip_and_describe(tmp_path):
    save(tmp_path)
    result = load_reference("02_ofa", RECIPE, root=tmp_path)
    assert not result.stale
    assert result.metrics == json.loads(json.dumps(METRICS))
    assert result.seeds == [0, 1, 2] and result.device == "NVIDIA H100"
    today = datetime.fromisoformat(result.date).date().isoformat()
    assert result.describe() == f"measured on NVIDIA H100, profile gpu, 3 seeds, 9.0 min of training, {today}"
    text = str(result)
    assert text.startswith("measured on") and "STALE" not in text
    assert "| kd/acc_per_seed | 0.8200 ± 0.0100 |" in text and "| baseline/val/acc | 0.78 |" in text
    # only lists named per seed are averaged: a first/last pair or a per-stage list shows as it is
    assert "| kd/loss_first_last | [2.31, 0.4567] |" in text and "| per_stage | [0.5, 0.25, 0.125] |" in text
    assert "STALE" not in result._repr_html_() and "<table>" in result._repr_html_()


def test_single_seed_wording(tmp_path):
    save(tmp_path, seeds=[7], wall_time_s=30.0, device="cpu", profile="cpu")
    result = load_reference("02_ofa", RECIPE, root=tmp_path)
    assert result.describe().startswith("measured on cpu, profile cpu, 1 seed, 0.5 min of training")


def test_missing_reference_is_none(tmp_path):
    assert load_reference("03_cskd", RECIPE, root=tmp_path) is None
    assert load_reference("03_cskd", RECIPE, root=tmp_path / "does-not-exist") is None


def test_stale_result_says_so_first(tmp_path):
    save(tmp_path)
    result = load_reference("02_ofa", {**RECIPE, "epochs": 60}, root=tmp_path)
    assert result.stale
    assert str(result).splitlines()[0].startswith("STALE")
    assert result.recipe_hash in str(result).splitlines()[0]
    page = result._repr_html_()
    assert page.startswith("<p") and page.split(">", 1)[1].startswith("STALE")


@pytest.mark.parametrize("notebook", ["", "../evil", "a/b", ".hidden", None])
def test_bad_notebook_names(tmp_path, notebook):
    with pytest.raises(ValueError, match="plain file stem"):
        save(tmp_path, notebook=notebook)


def test_save_refuses_bad_values(tmp_path):
    with pytest.raises(ValueError, match="nan"):
        save_reference("02_ofa", RECIPE, {"acc": float("nan")}, seeds=[0], wall_time_s=1.0, device="cpu",
                       profile="cpu", root=tmp_path)
    with pytest.raises(ValueError, match="wall_time_s"):
        save(tmp_path, wall_time_s=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_check_all_and_load_report_malformed_files(tmp_path):
    save(tmp_path, notebook="01_kd")
    good = json.loads((tmp_path / "01_kd.json").read_text())
    (tmp_path / "02_broken.json").write_text("{not json")
    (tmp_path / "03_list.json").write_text("[]")
    (tmp_path / "04_missing.json").write_text(json.dumps({k: v for k, v in good.items() if k not in ("seeds", "date")}))
    (tmp_path / "05_renamed.json").write_text(json.dumps(good))
    (tmp_path / "06_tampered.json").write_text(json.dumps({**good, "notebook": "06_tampered", "recipe": {"lr": 1}}))
    problems = {path.name: problem for path, problem in check_all(tmp_path)}
    assert set(problems) == {"02_broken.json", "03_list.json", "04_missing.json", "05_renamed.json", "06_tampered.json"}
    assert problems["02_broken.json"].startswith("not valid JSON")
    assert problems["03_list.json"] == "expected a JSON object, got list"
    assert problems["04_missing.json"] == "missing keys: date, seeds"
    assert "does not match the file name" in problems["05_renamed.json"]
    assert "is not the hash of the stored recipe" in problems["06_tampered.json"]
    with pytest.raises(ValueError, match="missing keys"):
        load_reference("04_missing", RECIPE, root=tmp_path)
    with pytest.raises(ValueError, match="not valid JSON"):
        load_reference("02_broken", RECIPE, root=tmp_path)


def test_default_root_is_data_results(monkeypatch, tmp_path):
    import kdlab.config

    monkeypatch.setattr(kdlab.config, "DATA_DIR", tmp_path)
    path = save(None)
    assert path == tmp_path / "results" / "02_ofa.json"
    assert load_reference("02_ofa", RECIPE) is not None and check_all() == []
