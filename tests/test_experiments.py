import pytest
import torch
from torch import nn

from kdlab.experiments import Outcome, Run, method_runs, run_experiments, summarize
from kdlab.methods import METHODS, Supervised


def blobs(n=64, seed=0):
    """Two linearly separable Gaussian blobs as 1x4x4 'images'."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 1, 4, 4, generator=g) * 0.5 + (y.float() * 2 - 1)[:, None, None, None]
    return x, y


def make():
    return Supervised(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)))


FIT = {"epochs": 2, "batch_size": 16, "lr": 1e-2}


def test_same_seeds_give_the_same_histories_for_every_run():
    data = blobs()
    outcomes = run_experiments([Run("a", make, FIT), Run("b", make, FIT)], data, data, seeds=[0, 1], progress=False)
    assert list(outcomes) == ["a", "b"]
    a, b = outcomes["a"], outcomes["b"]
    assert isinstance(a, Outcome) and a.seeds == [0, 1] and len(a.histories) == 2
    rows = lambda o: [[{k: v for k, v in r.items() if k != "time_s"} for r in h.rows] for h in o.histories]  # noqa: E731
    assert rows(a) == rows(b), "same make, same seeds: same numbers"
    assert a.values() == [h.last("val/acc") for h in a.histories]
    assert a.values(best=True) == [h.best("val/acc") for h in a.histories]
    assert isinstance(a.first, Supervised) and a.first is not b.first


def test_summarize_returns_numbers_per_run():
    data = blobs()
    outcomes = run_experiments([Run("a", make, FIT)], data, data, seeds=[0, 1], progress=False)
    (row,) = summarize(outcomes)
    seconds = [h.wall_time_s for h in outcomes["a"].histories]
    assert row == {"run": "a", "seeds": 2, "last": outcomes["a"].values(), "best": outcomes["a"].values(best=True),
                   "seconds_per_run": sum(seconds) / len(seconds)}
    (loss_row,) = summarize(outcomes, metric="val/loss")
    assert loss_row["last"] == outcomes["a"].values("val/loss")


def test_bad_experiment_grids():
    data = blobs()
    with pytest.raises(ValueError, match="seed"):
        run_experiments([Run("a", make, FIT)], data, data, seeds=[], progress=False)
    with pytest.raises(ValueError, match="unique"):
        run_experiments([Run("a", make, FIT), Run("a", make, FIT)], data, data, seeds=[0], progress=False)


def test_method_runs_build_each_method_from_its_block():
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    student = lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 2))  # noqa: E731
    runs = method_runs({"no KD": ("supervised", {"label_smoothing": 0.1}),
                        "KD": ("kd", {"temperature": 2.0})}, student, teacher, FIT)
    assert [run.label for run in runs] == ["no KD", "KD"] and all(run.fit == FIT for run in runs)
    baseline, kd = (run.make() for run in runs)
    assert type(baseline) is METHODS["supervised"] and baseline.teacher is None and baseline.label_smoothing == 0.1
    assert type(kd) is METHODS["kd"] and kd.teacher is teacher and kd.temperature == 2.0
    assert runs[1].make().student is not kd.student, "a fresh student for every make()"


def test_method_runs_bad_rows():
    student = lambda: nn.Linear(2, 2)  # noqa: E731
    with pytest.raises(ValueError, match="method must be one of"):
        method_runs({"x": ("no_such_method", {})}, student, None, FIT)
    with pytest.raises(ValueError, match="needs a teacher"):
        method_runs({"KD": ("kd", {})}, student, None, FIT)
