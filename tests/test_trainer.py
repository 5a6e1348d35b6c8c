"""python -m kdlab train: configs checked before training, checkpoints that resume exactly, torchrun with gloo."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdlab.__main__ import main
from kdlab.data.cifar import write_cifar_fixture
from kdlab.trainer import build, check_config, read_config, train

BASE = {
    "data": {"name": "shapes", "n_val": 64, "options": {"n_train": 128, "n_test": 64}},
    "teacher": {"shipped": "shapes_cnn"},
    "student": {"model": "mlp"},
    "method": {"name": "kd", "temperature": 2.0, "kd_weight": 0.5},
    "train": {"epochs": 3, "batch_size": 32, "lr": 0.002, "warmup_epochs": 0.5},
}


def config(tmp_path, name="run", **changes):
    raw = json.loads(json.dumps(BASE))
    for section, values in changes.items():
        raw.setdefault(section, {}).update(values)
    raw["output"] = {"dir": str(tmp_path / name)}
    return check_config(raw)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "checkpoint" / "weights.safetensors"))


def test_a_run_writes_its_history_checkpoint_and_final_metrics(tmp_path):
    final = train(config(tmp_path), progress=False)
    out = tmp_path / "run"
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3] and all("val/acc" in row and "train/kd" in row for row in rows)
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,")
    assert json.loads((out / "final_metrics.json").read_text())["test"] == final["test"]
    assert 0.0 <= final["test"]["acc"] <= 1.0 and final["world_size"] == 1
    with pytest.raises(ValueError, match="already holds a run's checkpoint: pass --resume"):
        train(config(tmp_path), progress=False)


def test_a_run_stopped_mid_epoch_and_resumed_ends_with_the_same_weights(tmp_path):
    train(config(tmp_path, "straight"), progress=False)
    stopped = config(tmp_path, "stopped")
    with pytest.raises(KeyboardInterrupt):
        train(stopped, interrupt_at_step=6, progress=False)  # 4 steps per epoch: in the middle of epoch 2
    state = json.loads((tmp_path / "stopped" / "checkpoint" / "state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"], state["step"]) == (1, 2, 6)
    final = train(stopped, resume=True, progress=False)
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "stopped")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight), "resumed weights differ from a straight run"
    assert final == json.loads((tmp_path / "straight" / "final_metrics.json").read_text())


def test_a_damaged_or_foreign_checkpoint_is_refused(tmp_path):
    first = config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train(first, interrupt_at_step=2, progress=False)
    with pytest.raises(ValueError, match="written by another config"):
        train(config(tmp_path, train={"lr": 0.001}), resume=True, progress=False)
    (tmp_path / "run" / "checkpoint" / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot resume from"):
        train(first, resume=True, progress=False)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(config(tmp_path, "empty"), resume=True, progress=False)


@pytest.mark.parametrize("changes, message", [
    ({"trian": {"epochs": 1}}, r"unknown section \[trian\]"),
    ({"train": {"epoch": 1}}, r"\[train\] unknown key 'epoch'"),
    ({"method": {"name": "distill"}}, r"\[method\] name must be one of supervised, kd"),
    ({"method": {"name": "kd", "temprature": 2}}, r"\[method\] kd takes no keyword 'temprature'"),
    ({"student": {"model": "resnet9000"}}, r"\[student\] model must be a registered model"),
    ({"data": {"name": "imagenet"}}, r"\[data\] name must be one of shapes"),
    ({"data": {"name": "cifar10"}}, r"\[data\] cifar10 needs root"),
    ({"teacher": {"shipped": "shapes_cnn", "file": "t.safetensors"}}, r"either shipped"),
])
def test_bad_configs_fail_before_training_naming_the_problem(changes, message):
    raw = json.loads(json.dumps(BASE)) | {}
    for section, values in changes.items():
        raw[section] = values if section not in raw else {**raw[section], **values}
    if "method" in changes and "name" in changes["method"] and changes["method"]["name"] != "kd":
        raw["method"] = changes["method"]
    with pytest.raises(ValueError, match=message):
        check_config(raw)


def test_a_teacher_needed_missing_or_of_other_classes_is_refused(tmp_path):
    raw = json.loads(json.dumps(BASE))
    raw.pop("teacher")
    with pytest.raises(ValueError, match=r"\[teacher\] method kd needs a teacher"):
        check_config(raw)
    write_cifar_fixture(tmp_path / "c100", "cifar100", n_train=40, n_test=10, seed=0)
    wrong = config(tmp_path, data={"name": "cifar100", "root": str(tmp_path / "c100"), "n_val": 8, "options": {}})
    with pytest.raises(ValueError, match=r"teacher outputs \(10,\) per image but the data has 100 classes"):
        build(wrong)


def test_a_cifar_folder_and_a_safetensors_teacher_train_end_to_end_from_the_command_line(tmp_path):
    from safetensors.torch import save_file

    from kdlab.models import create

    write_cifar_fixture(tmp_path / "c10", "cifar10", n_train=96, n_test=32, seed=0)
    teacher = create("cnn_small", num_classes=10)
    save_file(teacher.state_dict(), str(tmp_path / "teacher.safetensors"))
    text = f"""
[data]
name = "cifar10"
root = "{tmp_path / 'c10'}"
n_val = 32
[teacher]
file = "{tmp_path / 'teacher.safetensors'}"
model = "cnn_small"
[student]
model = "mlp"
[method]
name = "kd"
[train]
epochs = 1
batch_size = 16
[output]
dir = "{tmp_path / 'cifar-run'}"
"""
    (tmp_path / "cifar.toml").write_text(text)
    assert read_config(tmp_path / "cifar.toml")["data"]["name"] == "cifar10"
    assert main(["train", str(tmp_path / "cifar.toml"), "--dry-run"]) == 0
    assert main(["train", str(tmp_path / "cifar.toml"), "--quiet"]) == 0
    final = json.loads((tmp_path / "cifar-run" / "final_metrics.json").read_text())
    assert set(final["test"]) == {"acc", "loss"}
    (tmp_path / "bad.toml").write_text(text.replace('model = "cnn_small"', 'model = "mlp"', 1))
    assert main(["train", str(tmp_path / "bad.toml")]) == 2, "weights of another model are refused"
    (tmp_path / "x.json").write_text("{}")
    assert main(["train", str(tmp_path / "x.json")]) == 2


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    single = train(config(tmp_path, "one"), progress=False)
    raw = json.loads(json.dumps(BASE)) | {"output": {"dir": str(tmp_path / "two")}}
    toml = "\n".join(f"[{section}]\n" + "\n".join(f"{k} = {json.dumps(v) if not isinstance(v, dict) else _inline(v)}"
                                                  for k, v in values.items()) for section, values in raw.items())
    (tmp_path / "two.toml").write_text(toml)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                             "-m", "kdlab", "train", str(tmp_path / "two.toml"), "--quiet"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    double = json.loads((tmp_path / "two" / "final_metrics.json").read_text())
    assert double["world_size"] == 2
    assert abs(double["test"]["acc"] - single["test"]["acc"]) <= 1 / 64 + 1e-9, "at most one test image apart"
    assert double["test"]["loss"] == pytest.approx(single["test"]["loss"], rel=1e-3)
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-4


def _inline(table: dict) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + " }"


def test_the_shipped_example_configs_are_valid_and_the_shapes_one_builds(capsys):
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
    assert len(configs) >= 3
    for path in configs:
        check_config(read_config(path))
    assert main(["train", str(configs[[p.name for p in configs].index("kd_shapes.toml")]), "--dry-run"]) == 0
    assert "student mlp:" in capsys.readouterr().out
