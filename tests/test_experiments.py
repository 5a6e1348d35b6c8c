import pytest
import torch
from torch import nn

from kdlab.data import ImageSet
from kdlab.experiments import (Outcome, Run, default_workers, method_runs, paired_difference, run_experiments,
                               summarize)
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


def rows_of(outcome):
    return [[{k: v for k, v in r.items() if k != "time_s"} for r in h.rows] for h in outcome.histories]


def test_same_seeds_give_the_same_histories_for_every_run():
    data = blobs()
    outcomes = run_experiments([Run("a", make, FIT), Run("b", make, FIT)], data, blobs(seed=1), blobs(seed=2),
                               seeds=[0, 1], workers=1, progress=False)
    assert list(outcomes) == ["a", "b"]
    a, b = outcomes["a"], outcomes["b"]
    assert isinstance(a, Outcome) and a.seeds == [0, 1] and len(a.histories) == 2 and len(a.tests) == 2
    assert rows_of(a) == rows_of(b) and a.tests == b.tests, "same make, same seeds: same numbers"
    assert a.val() == [h.last("val/acc") for h in a.histories]
    assert a.val(best=True) == [h.best("val/acc") for h in a.histories]
    assert a.val("loss", best=True, mode="min") == [h.best("val/loss", "min") for h in a.histories]
    assert a.test() == [t["acc"] for t in a.tests] and set(a.tests[0]) == {"acc", "loss"}
    assert isinstance(a.first, Supervised) and a.first is not b.first
    with pytest.raises(KeyError, match="miou"):
        a.test("miou")


class Spy:
    """A data set that logs every read of its images into ``events``."""

    def __init__(self, data, name, events):
        self._x, self.y, self.name, self.events = data[0], data[1], name, events

    @property
    def role(self):
        return self.name.rsplit("-", 1)[-1]

    @property
    def x(self):
        self.events.append(f"read {self.role}")
        return self._x


def test_the_test_set_is_read_once_per_run_after_its_training(monkeypatch):
    import kdlab.experiments as experiments

    events = []
    real_fit = experiments.fit

    def logged_fit(*args, **kwargs):
        events.append("fit start")
        history = real_fit(*args, **kwargs)
        events.append("fit end")
        return history

    monkeypatch.setattr(experiments, "fit", logged_fit)
    test = Spy(blobs(seed=2), "blobs-test", events)
    run_experiments([Run("a", make, FIT), Run("b", make, FIT)], blobs(), Spy(blobs(seed=1), "blobs-val", events),
                    test, seeds=[0, 1], workers=1, progress=False)
    assert events.count("read test") == 4, "once per run and seed"
    runs = " ".join(events).split("fit start")[1:]
    for run in runs:
        during, after = run.split("fit end")
        assert "read test" not in during and after.strip() == "read test", events


def test_validating_on_the_test_set_is_refused():
    test = ImageSet(x=torch.rand(8, 3, 4, 4), y=torch.zeros(8, dtype=torch.long), classes=("a",), name="toy-test")
    with pytest.raises(ValueError, match="must not validate on the test set 'toy-test'"):
        run_experiments([Run("a", make, FIT)], blobs(), test, test, seeds=[0], progress=False)
    val = ImageSet(x=test.x, y=test.y, classes=("a",), name="toy-val")
    with pytest.raises(ValueError, match="test must be the test split"):
        run_experiments([Run("a", make, FIT)], blobs(), val, val, seeds=[0], progress=False)


def test_parallel_workers_give_the_sequential_numbers(monkeypatch):
    torch.set_num_threads(1)
    runs = [Run("a", make, FIT), Run("b", make, {**FIT, "lr": 3e-2})]
    args = (runs, blobs(), blobs(seed=1), blobs(seed=2))
    sequential = run_experiments(*args, seeds=[0, 1, 2], workers=1, progress=False)
    parallel = run_experiments(*args, seeds=[0, 1, 2], workers=2, progress=False)
    for label in ("a", "b"):
        assert rows_of(parallel[label]) == rows_of(sequential[label])
        assert parallel[label].tests == sequential[label].tests
        first_p, first_s = parallel[label].first.state_dict(), sequential[label].first.state_dict()
        assert all(torch.equal(first_p[k], first_s[k]) for k in first_s), "the first seed's model comes back"


def test_default_workers(monkeypatch):
    monkeypatch.setenv("KDLAB_WORKERS", "3")
    assert default_workers(10) == 3
    monkeypatch.setenv("KDLAB_WORKERS", "0")
    with pytest.raises(ValueError, match="KDLAB_WORKERS"):
        default_workers(10)
    monkeypatch.delenv("KDLAB_WORKERS")
    assert 1 <= default_workers(1) <= 1 and default_workers(100) >= 1


def test_summarize_returns_numbers_per_run():
    data = blobs()
    outcomes = run_experiments([Run("a", make, FIT), Run("b", make, {**FIT, "lr": 3e-2})], data, blobs(seed=1),
                               blobs(seed=2), seeds=[0, 1], workers=1, progress=False)
    row, other = summarize(outcomes, baseline="a")
    seconds = [h.wall_time_s for h in outcomes["a"].histories]
    assert row == {"run": "a", "seeds": 2, "test": outcomes["a"].test(), "val_last": outcomes["a"].val(),
                   "val_best": outcomes["a"].val(best=True), "seconds_per_run": sum(seconds) / len(seconds),
                   "paired": None}
    assert other["paired"] == paired_difference(outcomes["b"].test(), outcomes["a"].test())
    (loss_row, _) = summarize(outcomes, metric="loss", lower_is_better=True)
    assert loss_row["test"] == outcomes["a"].test("loss") and loss_row["paired"] is None
    assert loss_row["val_best"] == outcomes["a"].val("loss", best=True, mode="min")


def test_bad_experiment_grids():
    data = blobs()
    with pytest.raises(ValueError, match="seed"):
        run_experiments([Run("a", make, FIT)], data, data, data, seeds=[], progress=False)
    with pytest.raises(ValueError, match="distinct"):
        run_experiments([Run("a", make, FIT)], data, data, data, seeds=[1, 1], progress=False)
    with pytest.raises(ValueError, match="unique"):
        run_experiments([Run("a", make, FIT), Run("a", make, FIT)], data, data, data, seeds=[0], progress=False)
    with pytest.raises(ValueError, match="workers"):
        run_experiments([Run("a", make, FIT)], data, data, data, seeds=[0], workers=0, progress=False)


def test_paired_difference_interval_and_verdict():
    d = paired_difference([0.62, 0.64, 0.615], [0.60, 0.61, 0.59])
    diffs = [0.02, 0.03, 0.025]
    mean = sum(diffs) / 3
    sd = (sum((x - mean) ** 2 for x in diffs) / 2) ** 0.5
    half = 4.302652729911275 * sd / 3 ** 0.5  # t(0.975, 2)
    assert d.change == pytest.approx(mean) and d.low == pytest.approx(mean - half) and d.high == pytest.approx(mean + half)
    assert d.better_on == 3 and d.seeds == 3 and d.verdict == "better beyond seed noise"
    assert paired_difference([0.58, 0.62], [0.60, 0.60]).verdict == "inside seed noise"
    assert paired_difference([0.50, 0.52, 0.51], [0.60, 0.61, 0.60]).verdict == "worse beyond seed noise"
    lower = paired_difference([0.20, 0.21, 0.19], [0.25, 0.25, 0.26], lower_is_better=True)
    assert lower.verdict == "better beyond seed noise" and lower.better_on == 3
    one = paired_difference([0.7], [0.6])
    assert one.verdict == "one seed: no interval" and one.interval() == "—" and one.seeds == 1
    assert one.as_record()["low"] is None and one.as_record()["high"] is None, "JSON has no NaN"
    assert "inside seed noise" in paired_difference([0.58, 0.62], [0.60, 0.60]).describe()
    with pytest.raises(ValueError, match="one value per baseline seed"):
        paired_difference([0.1], [0.1, 0.2])


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


def test_teacher_groups_put_the_runs_of_one_seed_and_teacher_together():
    from kdlab.experiments import teacher_groups
    from kdlab.methods import KD

    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    student = lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 2))  # noqa: E731
    runs = [Run("no KD", make, FIT), Run("KD", lambda: KD(student(), teacher), FIT),
            Run("KD T=4", lambda: KD(student(), teacher, temperature=4.0), FIT)]
    groups = teacher_groups(runs, [0, 1])
    assert groups == [[(1, 0), (2, 0)], [(1, 1), (2, 1)], [(0, 0)], [(0, 1)]]
    assert sorted(task for group in groups for task in group) == [(i, s) for i in range(3) for s in (0, 1)]

    class LearningTeacherSide(KD):
        """A teacher side that learns (as CAFD's prompts): never memoised, so nothing to share."""

        def teacher_forward(self, x):
            return self.teacher(x)

    runs.append(Run("learning teacher side", lambda: LearningTeacherSide(student(), teacher), FIT))
    assert runs[-1].make().teacher_cache_key() is None
    assert teacher_groups(runs, [0]) == [[(1, 0), (2, 0)], [(0, 0)], [(3, 0)]]


def test_a_run_can_train_on_its_own_set_and_is_scored_on_the_grid_s():
    data, other = blobs(), blobs(n=32, seed=5)
    runs = [Run("grid set", make, FIT), Run("own set", make, FIT, other), Run("grid again", make, FIT)]
    outcomes = run_experiments(runs, data, blobs(seed=1), blobs(seed=2), seeds=[0], workers=1, progress=False)
    steps = {label: len(o.histories[0].rows) for label, o in outcomes.items()}
    assert steps == {"grid set": 2, "own set": 2, "grid again": 2}
    assert rows_of(outcomes["grid set"]) == rows_of(outcomes["grid again"])
    assert rows_of(outcomes["own set"]) != rows_of(outcomes["grid set"]), "the run trained on its own images"


# ------------------------------------------------------------------------------------ choosing on validation


def test_choose_weight_maximises_the_mean_over_rows_and_breaks_ties_to_the_smaller_weight():
    from kdlab.experiments import choose_weight

    scores = {0.1: {"a": [0.5, 0.7], "b": [0.6, 0.6]}, 0.3: {"a": [0.9, 0.9], "b": [0.2, 0.2]},
              1.0: {"a": [0.4, 0.4], "b": [0.8, 0.8]}}
    choice = choose_weight(scores)
    assert choice.chosen == 0.1 and choice.scores == pytest.approx({0.1: 0.6, 0.3: 0.55, 1.0: 0.6})
    assert choice.per_row[0.3] == pytest.approx({"a": 0.9, "b": 0.2})
    assert choose_weight(scores, lower_is_better=True).chosen == 0.3
    with pytest.raises(ValueError, match="same, non-empty rows"):
        choose_weight({0.1: {"a": [1.0]}, 0.3: {"b": [1.0]}})
    with pytest.raises(ValueError, match="at least one"):
        choose_weight({})


def test_term_ratio_reads_the_last_epoch_of_every_seed():
    from kdlab.experiments import Outcome, term_ratio
    from kdlab.train import History

    histories = [History([{"train/ce": 2.0, "train/kd": 1.0, "train/tat": 3.0, "train/loss": 6.0},
                          {"train/ce": 1.0, "train/kd": 1.0, "train/tat": 1.0, "train/loss": 3.0}]),
                 History([{"train/ce": 1.0, "train/kd": 0.0, "train/tat": 2.0, "train/loss": 3.0}])]
    outcome = Outcome(None, [0, 1], histories, [{}, {}], None)
    assert term_ratio(outcome) == pytest.approx((0.5 + 2.0) / 2)
    assert term_ratio(outcome, ("ce",)) == pytest.approx((2.0 + 2.0) / 2)
    with pytest.raises(ValueError, match="task terms"):
        term_ratio(outcome, ("seg",))


# ----------------------------------------------------------------------------------------- face verification


class _Pairs:
    """A minimal face set: images, index pairs and whether each pair is the same identity."""

    def __init__(self, n=40, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 8, 8, generator=g)
        self.pairs = torch.stack([torch.arange(0, n, 2), torch.arange(1, n, 2)], 1)
        self.same = torch.arange(n // 2) % 2 == 0


class _RowMeans(nn.Module):
    """An embedding that reads each image row's mean: a mirror does not change it."""

    def forward(self, x):
        return x.mean(-1).flatten(1)


def test_flip_test_embeddings_add_the_mirrors_and_leave_a_mirror_invariant_model_unchanged():
    from kdlab.experiments import face_embeddings, verify_faces
    data = _Pairs()
    invariant = _RowMeans()
    assert torch.allclose(face_embeddings(invariant, data.x, flip_test=True), 2 * face_embeddings(invariant, data.x))
    assert verify_faces(invariant, data, flip_test=True) == verify_faces(invariant, data)
    columns = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    plain, flipped = face_embeddings(columns, data.x), face_embeddings(columns, data.x, flip_test=True)
    assert torch.allclose(flipped, plain + columns(data.x.flip(-1)).detach(), atol=1e-6)
    assert not torch.allclose(flipped, 2 * plain)
    with pytest.raises(TypeError, match="pairs"):
        verify_faces(invariant, ImageSet(data.x.sigmoid(), torch.zeros(40, dtype=torch.long), ["face"]))


def test_verification_watch_reads_each_named_model_off_the_distiller():
    from kdlab.experiments import verification_watch, verify_faces
    data = _Pairs()
    distiller = Supervised(_RowMeans())
    watch = verification_watch(data, {"student": lambda d: d.student})
    assert watch(distiller) == {"student verif_acc": verify_faces(distiller.student, data)["verif_acc"]}


def test_choose_by_gain_compares_gains_over_each_options_own_baseline():
    from kdlab.experiments import choose_by_gain

    scores = {"base": {"no KD": [0.90, 0.92], "kd": [0.91, 0.93], "cafd": [0.89, 0.91]},  # gains +1, -1
              "small": {"no KD": [0.70, 0.72], "kd": [0.74, 0.76], "cafd": [0.71, 0.73]},  # +4, +1: lower levels
              "tie": {"no KD": [0.70, 0.72], "kd": [0.74, 0.76], "cafd": [0.71, 0.73]}}
    choice = choose_by_gain(scores, "no KD", scale=100)
    assert choice.chosen == "small", "judged by gains, not levels; ties go to the earlier option"
    assert choice.mean_gain == pytest.approx({"base": 0.0, "small": 2.5, "tie": 2.5})
    assert choice.gains["small"]["kd"].change == pytest.approx(4.0) and choice.baseline == "no KD"
    assert choose_by_gain(scores, "no KD", lower_is_better=True).chosen == "base"
    with pytest.raises(ValueError, match="baseline 'none'"):
        choose_by_gain(scores, "none")
    with pytest.raises(ValueError, match="same other rows"):
        choose_by_gain({"a": {"no KD": [1.0], "kd": [1.0]}, "b": {"no KD": [1.0], "x": [1.0]}}, "no KD")
    with pytest.raises(ValueError, match="same other rows"):
        choose_by_gain({"a": {"no KD": [1.0]}}, "no KD")
    with pytest.raises(ValueError, match="at least one"):
        choose_by_gain({}, "no KD")


def test_term_ratio_ignores_the_named_terms():
    from kdlab.experiments import Outcome, term_ratio
    from kdlab.train import History

    history = History([{"train/margin": 2.0, "train/attn": 1.0, "train/feat": 1.0, "train/teacher_margin": 4.0,
                        "train/loss": 8.0}])
    outcome = Outcome(None, [0], [history], [{}], None)
    assert term_ratio(outcome, ("margin",), ignore=("teacher_margin",)) == pytest.approx(1.0)
    assert term_ratio(outcome, ("margin",)) == pytest.approx(3.0)
