import json
import math

import pytest
import torch
from torch import nn

import kdlab.workbook as workbook
from kdlab.experiments import Run, run_experiments, summarize
from kdlab.methods import Supervised
from kdlab.recipes import RECIPES
from kdlab.record import recorded
from kdlab.results import load_reference, save_reference
from kdlab.tables import format_mean_std
from kdlab.train import fit
from kdlab.workbook import (PairedDifference, histories_of, latency_ms, mean, model_row, paired_differences,
                            paired_report, per_seed_table, quick_retrain, record_results, reference_tables,
                            show_reference, summary_table, teacher_rows, verdicts)
from kdlab.workbook import HEADLINES, METRIC_NAMES, rows_at, sweep_record, sweep_runs, sweep_table, sweep_verdict


def blobs(n=64):
    """1x4x4 noise 'images', labelled by the sign of their mean."""
    x = torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    return x, (x.mean((1, 2, 3)) > 0).long()


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))


FIT = {"epochs": 2, "batch_size": 16, "lr": 1e-2}


@pytest.fixture(scope="module")
def outcomes():
    data = blobs()
    return run_experiments([Run("no KD", lambda: Supervised(mlp()), FIT),
                            Run("smoothed", lambda: Supervised(mlp(), label_smoothing=0.1), FIT)],
                           data, data, data, seeds=[0, 1], workers=1, progress=False)


def test_mean_is_sum_over_len():
    assert mean([0.1, 0.2, 0.4]) == (0.1 + 0.2 + 0.4) / 3
    assert mean(iter([2.0])) == 2.0
    with pytest.raises(ValueError, match="at least one value"):
        mean([])


def test_summary_table_formats_the_summary(outcomes):
    rows = summary_table(outcomes)
    numbers = summarize(outcomes)
    assert [row["run"] for row in rows] == ["no KD", "smoothed"]
    assert rows[0] == {"run": "no KD", "seeds": 2, "test accuracy": format_mean_std(numbers[0]["test"]),
                       "val accuracy, last epoch": format_mean_std(numbers[0]["val_last"]),
                       "s / run": f"{numbers[0]['seconds_per_run']:.0f}"}
    paired = summary_table(outcomes, baseline="no KD")
    diff = summarize(outcomes, baseline="no KD", scale=100)[1]["paired"]
    assert paired[0]["verdict"] == "baseline" and paired[0]["Δ vs no KD (paired)"] == "—"
    assert paired[1]["Δ vs no KD (paired)"] == f"{diff.change:+.1f} pt"
    assert paired[1]["95 % interval"] == diff.interval("+.1f", " pt") and paired[1]["verdict"] == diff.verdict
    assert paired[1]["wins"] == f"{diff.better_on} of 2"
    loss = summary_table(outcomes, "loss", baseline="no KD", lower_is_better=True, pct=False)
    assert "test loss" in loss[1] and "val loss, last epoch" in loss[1]


def test_per_seed_table_shows_recorded_numbers_as_the_live_table_does(outcomes):
    """A reference file's per-seed test numbers give the same test and paired columns as the live outcomes."""
    live = summary_table(outcomes, baseline="no KD")
    recorded_rows = per_seed_table({label: o.test() for label, o in outcomes.items()}, baseline="no KD")
    for row, live_row in zip(recorded_rows, live):
        assert row == {k: v for k, v in live_row.items() if not k.startswith(("val ", "s / run"))}
    depth = per_seed_table({"no KD": [0.12, 0.13, 0.11], "KD": [0.10, 0.12, 0.10]}, "abs_rel", baseline="no KD",
                           lower_is_better=True, pct=False)
    assert depth[1]["test AbsRel"] == format_mean_std([0.10, 0.12, 0.10], pct=False, digits=3)
    assert depth[1]["wins"] == "3 of 3" and depth[1]["Δ vs no KD (paired)"] == "-0.013"
    assert list(per_seed_table({"a": [0.5]})[0]) == ["run", "seeds", "test accuracy"]  # no baseline: no paired columns
    with pytest.raises(ValueError, match="at least one run"):
        per_seed_table({})
    with pytest.raises(ValueError, match="baseline must be one of"):
        per_seed_table({"a": [0.5, 0.6]}, baseline="b")
    with pytest.raises(ValueError, match="one value per baseline seed"):
        per_seed_table({"a": [0.5, 0.6], "b": [0.5]}, baseline="a")


def test_reference_tables_show_a_results_file_with_its_verdicts(tmp_path, capsys):
    per_seed = {"CSKD": [0.79, 0.84, 0.80], "CSKD without CKF": [0.80, 0.82, 0.80], "DeiT hard distillation": [0.85, 0.86, 0.86],
                "no KD": [0.80, 0.82, 0.81]}
    ckf = {"CSKD without CKF": [0.5, 0.6, 0.55], "CSKD": [0.4, 0.5, 0.45]}
    metrics = {"accuracy_per_seed": per_seed, "mosaic_accuracy_per_seed": per_seed,
               "mosaic_longer_accuracy_per_seed": {row: per_seed[row] for row in ("no KD", "DeiT hard distillation", "CSKD")},
               "diagnosis_accuracy_per_seed": {row: [0.5, 0.5, 0.6] for row in HEADLINES["02_cskd"][3].rows},
               "ckf_accuracy_per_seed": {"strong teacher": ckf, "weak teacher": ckf}}
    save_reference("02_cskd", {"n": 1}, metrics, seeds=[0, 1, 2], wall_time_s=60.0, device="cpu", profile="cpu",
                   root=tmp_path)
    reference = load_reference("02_cskd", {"n": 1}, root=tmp_path)
    tables = reference_tables(reference)
    assert [t.title.split(":")[0] for t, _ in tables] == [h.title.split(":")[0] for h in HEADLINES["02_cskd"]]
    diagnosis = [line.split(" | ")[0] for line in str(tables[3][0]).splitlines()[4:]]
    assert diagnosis == [f"| {row}" for row in HEADLINES["02_cskd"][3].rows], "the declared order, not the file's"
    assert diagnosis[0] == "| CSKD"
    assert "CSKD against CSKD without CKF: -10.0 points" in tables[5][1]
    table, sentences = tables[2]
    assert sentences.startswith("DeiT hard distillation against no KD: +4.7 points [")  # the headline's row order
    assert "1 of 3 row(s) differ from no KD beyond seed noise (95 % interval excludes 0): DeiT hard distillation." in sentences
    assert table.title.endswith(f"— reference run, {reference.describe()}")
    assert [line.split(" | ")[0] for line in str(table).splitlines()[4:]] == [
        "| no KD", "| DeiT hard distillation", "| CSKD without CKF", "| CSKD"]
    assert table.columns == list(per_seed_table(per_seed, baseline="no KD")[0])
    show_reference(reference)
    shown = capsys.readouterr().out
    assert "STALE" not in shown and sentences in shown and "CSKD" in shown
    show_reference(load_reference("02_cskd", {"n": 2}, root=tmp_path))
    assert capsys.readouterr().out.startswith("STALE: 02_cskd.json")
    show_reference(None)
    assert capsys.readouterr().out == "No reference results shipped for this notebook yet.\n"
    save_reference("05_disdepth", {"n": 1}, {"abs_rel_per_seed": {"no KD": [0.25, 0.26], "+ LGConv": [0.24, 0.25],
                   "DisDepth": [0.2, 0.21]}}, seeds=[0, 1], wall_time_s=1.0, device="cpu", profile="cpu", root=tmp_path)
    with pytest.raises(KeyError, match="feature-MSE"):  # a file that lacks a declared row
        reference_tables(load_reference("05_disdepth", {"n": 1}, root=tmp_path))
    show_reference(load_reference("05_disdepth", {"n": 2}, root=tmp_path))  # stale and renamed: says so, shows none
    shown = capsys.readouterr().out
    assert shown.startswith("STALE") and "no '+ feature-MSE KD' entry" in shown and "kdlab reference 05_disdepth" in shown
    with pytest.raises(KeyError):  # a current file that lacks a row is a bug, not a stale recipe
        show_reference(load_reference("05_disdepth", {"n": 1}, root=tmp_path))
    save_reference("99_other", {"n": 1}, {}, seeds=[0], wall_time_s=1.0, device="cpu", profile="cpu", root=tmp_path)
    with pytest.raises(ValueError, match="no headline comparison declared for '99_other'"):
        reference_tables(load_reference("99_other", {"n": 1}, root=tmp_path))


def test_live_or_reference_says_where_the_numbers_come_from(tmp_path):
    from kdlab.workbook import live_or_reference
    save_reference("02_cskd", {"n": 1}, {"size_accuracy": {"CSKD": {"500": 0.5}}, "flat": [1, 2]}, seeds=[0],
                   wall_time_s=60.0, device="cpu", profile="cpu", root=tmp_path)
    reference = load_reference("02_cskd", {"n": 1}, root=tmp_path)
    assert live_or_reference({"a": [1.0]}, reference, "flat") == ({"a": [1.0]}, "measured now")
    value, source = live_or_reference(None, reference, ("size_accuracy", "CSKD"))
    assert value == {"500": 0.5} and source == f"reference run, {reference.describe()}"
    assert live_or_reference({}, reference, "flat")[0] == [1, 2], "an empty live result falls back to the reference"
    value, source = live_or_reference(None, reference, ("flat", "deeper"))
    assert value is None and "has no flat/deeper" in source and "kdlab reference 02_cskd" in source
    stale = load_reference("02_cskd", {"n": 2}, root=tmp_path)
    assert live_or_reference(None, stale, "flat")[1].startswith("reference run (STALE), ")
    assert live_or_reference(None, None, "flat") == (None, "not trained in this profile, and no reference run is shipped")


def test_every_notebook_declares_headlines_that_read_its_recorded_results():
    """HEADLINES names a per-seed entry and a baseline row that each notebook's smoke record holds (the smoke
    records are read by tests/test_notebooks.py; here their keys are checked against the recipes' notebooks)."""
    assert set(HEADLINES) == set(RECIPES)
    for notebook, headlines in HEADLINES.items():
        for headline in headlines:
            per_seed = any(part.endswith("per_seed") for part in headline.key) or headline.key[-1] == "test"  # sweep
            assert per_seed and headline.metric in METRIC_NAMES, (notebook, headline)
            assert headline.rows is None or headline.baseline in headline.rows


def test_paired_differences_seed_by_seed():
    values = {"no KD": [0.5, 0.6, 0.7], "KD": [0.55, 0.58, 0.8], "bad": [0.4, 0.5, 0.6]}
    paired = paired_differences(values, "no KD")
    assert list(paired) == ["KD", "bad"]
    kd = paired["KD"]
    assert kd.change == pytest.approx(mean([0.55 - 0.5, 0.58 - 0.6, 0.8 - 0.7])) and kd.better_on == 2 and kd.seeds == 3
    assert kd.describe() == f"{kd.change:+.1%} {kd.interval()}, higher on 2 of 3 seeds: inside seed noise"
    assert paired["bad"].better_on == 0 and paired["bad"].verdict == "worse beyond seed noise"
    points = paired_differences(values, "no KD", scale=100)["KD"]
    assert points.change == pytest.approx(100 * kd.change)
    assert points.as_record("acc_change_points") == {"acc_change_points": points.change, "low": points.low,
                                                     "high": points.high, "better_on": 2, "seeds": 3,
                                                     "verdict": "inside seed noise"}
    lower = paired_differences(values, "no KD", lower_is_better=True)["KD"]
    assert lower.better_on == 1 and "lower on 1 of 3 seeds" in lower.describe("+.2f")


def test_paired_differences_bad_input():
    with pytest.raises(ValueError, match="baseline"):
        paired_differences({"a": [1.0]}, "no KD")
    with pytest.raises(ValueError, match="one value per baseline seed"):
        paired_differences({"no KD": [1.0, 2.0], "a": [1.0]}, "no KD")
    with pytest.raises(ValueError, match="scale"):
        paired_differences({"no KD": [1.0], "a": [1.0]}, "no KD", scale=0)


def test_paired_report_aligns_the_labels():
    paired = {"KD": PairedDifference(0.012, 0.002, 0.022, 3, 3), "FitNet hint": PairedDifference(-0.004, -0.01, 0.002, 1, 3)}
    text = paired_report("Against no KD:", paired)
    assert text.splitlines() == ["Against no KD:",
                                 "           KD: +1.2% [+0.2%, +2.2%], higher on 3 of 3 seeds: better beyond seed noise",
                                 "  FitNet hint: -0.4% [-1.0%, +0.2%], higher on 1 of 3 seeds: inside seed noise"]
    points = paired_report("t", paired, fmt="+.2f", unit=" points").splitlines()
    assert points[1].endswith("+0.01 points [+0.00 points, +0.02 points], higher on 3 of 3 seeds: better beyond seed noise")


def test_verdicts_are_generated_from_the_intervals():
    paired = {"KD": PairedDifference(0.012, 0.002, 0.022, 3, 3), "FitNet hint": PairedDifference(-0.004, -0.01, 0.002, 1, 3)}
    text = verdicts(paired, "no KD").splitlines()
    assert text[0] == "KD against no KD: +1.2% [+0.2%, +2.2%], higher on 3 of 3 seeds: better beyond seed noise."
    assert text[-1] == "1 of 2 row(s) differ from no KD beyond seed noise (95 % interval excludes 0): KD."
    noise = verdicts({"FitNet hint": paired["FitNet hint"]}, "no KD").splitlines()[-1]
    assert noise == "No row differs from no KD beyond seed noise: every 95 % interval contains 0."
    one = verdicts({"KD": PairedDifference(0.01, math.nan, math.nan, 1, 1)}, "no KD")
    assert "one seed: no interval" in one and "run more seeds" in one
    assert verdicts({}, "no KD") == "No row to compare with the baseline."


def test_model_and_teacher_rows(monkeypatch):
    model = mlp()
    params = sum(p.numel() for p in model.parameters())
    assert model_row("student", model, {"test acc": "—"}) == {"model": "student", "params (M)": f"{params / 1e6:.2f}",
                                                               "test acc": "—"}
    assert list(model_row("student", model)) == ["model", "params (M)"]
    model.kdlab_family = "mlp"
    monkeypatch.setattr(workbook, "teacher_info", lambda key: {"metrics": {"test_acc": 0.875}})
    x, y = blobs()
    (row,) = teacher_rows({"toy": model}, (x, y))
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert row == {"teacher": "toy", "family": "mlp", "params (M)": f"{params / 1e6:.2f}",
                   "test acc, our test set": f"{accuracy:.1%}", "test acc, manifest": "87.5%"}


def test_quick_retrain_repeats_a_seeded_fit():
    data = blobs()
    distiller, history = quick_retrain(lambda: Supervised(mlp()), data, data, seed=3, **FIT)
    workbook.seed_everything(3)
    expected = fit(Supervised(mlp()), data, data, seed=3, progress=False, **FIT)
    drop_time = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h.rows]  # noqa: E731
    assert drop_time(history) == drop_time(expected) and isinstance(distiller, Supervised)
    assert not distiller.training
    with pytest.raises(ValueError, match="seed"):
        quick_retrain(lambda: Supervised(mlp()), data, data, seed=-1, **FIT)


def test_latency_ms():
    model = mlp()
    ms = latency_ms(model, blobs(8)[0], repeats=2)
    assert math.isfinite(ms) and ms > 0 and not model.training
    with pytest.raises(ValueError, match="repeats"):
        latency_ms(model, blobs(8)[0], repeats=0)
    with pytest.raises(ValueError, match="tensor"):
        latency_ms(model, [1, 2])
    with pytest.raises(ValueError, match="at least one image"):
        latency_ms(model, torch.zeros(0, 1, 4, 4))


def test_histories_of_keeps_the_order(outcomes):
    more = {"x": outcomes["smoothed"]}
    assert histories_of(outcomes, more) == [*outcomes["no KD"].histories, *outcomes["smoothed"].histories,
                                            *outcomes["smoothed"].histories]


def test_record_results_records_and_saves_on_request(outcomes, tmp_path, monkeypatch, capsys):
    results = {"profile": "smoke", "accuracy": {"no KD": 0.5}}
    assert record_results("00_primer", {"seeds": [0, 1]}, results, save_reference=False, profile="smoke",
                          histories=histories_of(outcomes)) is None
    assert recorded()["accuracy"] == {"no KD": 0.5}
    saved = {}

    def fake_save(notebook, recipe, metrics, **kwargs):
        saved.update(notebook=notebook, metrics=metrics, **kwargs)
        return tmp_path / f"{notebook}.json"

    monkeypatch.setattr(workbook.reference_results, "save_reference", fake_save)
    histories = histories_of(outcomes)
    path = record_results("00_primer", {"seeds": [0, 1]}, results, save_reference=True, profile="smoke",
                          histories=histories)
    assert path == tmp_path / "00_primer.json" and str(path) in capsys.readouterr().out
    assert saved["wall_time_s"] == sum(h.wall_time_s for h in histories) and saved["seeds"] == [0, 1]
    assert saved["profile"] == "smoke" and saved["metrics"] is results
    record_results("00_primer", {"seeds": [0]}, results, save_reference=True, profile="smoke", wall_time_s=12.5)
    assert saved["wall_time_s"] == 12.5
    json.dumps(recorded()["accuracy"])


def test_record_results_bad_input():
    with pytest.raises(ValueError, match="mapping"):
        record_results("00_primer", {"seeds": [0]}, [("a", 1)], save_reference=False, profile="smoke", wall_time_s=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        record_results("00_primer", {"seeds": [0]}, {"a": 1}, save_reference=False, profile="smoke")
    with pytest.raises(ValueError, match="exactly one"):
        record_results("00_primer", {"seeds": [0]}, {"a": 1}, save_reference=False, profile="smoke",
                       histories=[], wall_time_s=1.0)


# ------------------------------------------------------------------------------------------- weight sweeps

SWEEP_TASK = {"baselines": {"no KD": ["supervised", {}]},
              "feature_rows": {"smoothed": ["supervised", {}, {"label_smoothing": 1.0}],
                               "lighter": ["supervised", {"label_smoothing": 0.05}, {}]},
              "weights": [0.0, 0.2]}


@pytest.fixture(scope="module")
def sweep():
    data = blobs()
    runs = sweep_runs(SWEEP_TASK, mlp, None, FIT)
    assert [run.label for run in runs] == ["no KD", "smoothed @ 0", "lighter @ 0", "smoothed @ 0.2", "lighter @ 0.2"]
    return run_experiments(runs, data, data, data, seeds=[0, 1], workers=1, progress=False)


def test_sweep_record_chooses_on_validation_and_reports_the_test_there(sweep):
    record_ = sweep_record(sweep, SWEEP_TASK, metric="acc", task_terms=("ce",))
    assert set(record_["val"]) == set(record_["ratio"]) == {"0", "0.2"}
    assert record_["val"]["0.2"]["smoothed"] == sweep["smoothed @ 0.2"].val("acc")
    means = {w: mean([mean(v) for v in rows.values()]) for w, rows in record_["val"].items()}
    assert record_["chosen"] == float(max(sorted(means, key=float), key=lambda w: means[w]))
    chosen = f"{record_['chosen']:g}"
    assert record_["test"] == {"no KD": sweep["no KD"].test("acc"), "smoothed": sweep[f"smoothed @ {chosen}"].test("acc"),
                               "lighter": sweep[f"lighter @ {chosen}"].test("acc")}
    assert all(ratio == 0.0 for ratio in record_["ratio"]["0"].values())  # Supervised has one term: no feature term
    json.dumps(record_)  # a results file can hold it
    table = sweep_table(record_, "acc")
    assert [row["weight"] for row in table] == [0.0, 0.2] and sum(row["chosen"] == "✓" for row in table) == 1
    assert "smoothed: val accuracy" in table[0] and "feature term / task loss" in table[0]
    assert list(rows_at(sweep, SWEEP_TASK, 0.2, ["lighter", "no KD"])) == ["lighter", "no KD"]
    with pytest.raises(KeyError):
        rows_at(sweep, SWEEP_TASK, 0.5)


def test_sweep_verdict_names_the_choice_and_an_edge_of_the_grid():
    record_ = {"val": {"0.1": {"a": [0.5], "b": [0.7]}, "0.3": {"a": [0.4], "b": [0.4]}, "1": {"a": [0.3], "b": [0.3]}},
               "ratio": {"0.1": {"a": 0.1, "b": 0.3}, "0.3": {"a": 0.5, "b": 0.5}, "1": {"a": 2.0, "b": 2.0}}}
    text = sweep_verdict(record_, "λ", "acc")
    assert text.startswith("λ = 0.1 chosen on validation (mean val accuracy 60.0%")
    assert "feature term is 0.20 of the task loss" in text and "smallest weight of the grid" in text
    assert "The grid's worst, λ = 1, is 30.0 points lower." in text
    record_["val"]["0.3"] = {"a": [0.9], "b": [0.9]}
    assert "of the grid" not in sweep_verdict(record_, "λ", "acc")


def test_reference_claim_and_check_verdict_grade_a_critique(tmp_path, capsys):
    from kdlab.results import load_reference, save_reference
    from kdlab.workbook import VERDICTS, check_verdict, reference_claim

    per_seed = {"no KD": [0.30, 0.31, 0.29], "+ LGConv": [0.30, 0.30, 0.30], "+ feature-MSE KD": [0.20, 0.21, 0.19],
                "+ ghost-decoder KD": [0.30, 0.31, 0.29], "+ ghost-decoder KD + LAM": [0.30, 0.31, 0.29],
                "DisDepth": [0.40, 0.41, 0.39]}
    toy = {"uniform weights (+ ghost-decoder KD)": [0.3, 0.3, 0.3],
           "LAM's weights (+ ghost-decoder KD + LAM)": [0.3, 0.3, 0.3], "no KD": per_seed["no KD"]}
    save_reference("05_disdepth", {"n": 1}, {"abs_rel_per_seed": per_seed, "lam_toy": {"abs_rel_per_seed": toy}},
                   seeds=[0, 1, 2], wall_time_s=1.0, device="cpu", profile="cpu", root=tmp_path)
    reference = load_reference("05_disdepth", {"n": 1}, root=tmp_path)
    better = reference_claim(reference, "Swin → CNN depth", "+ feature-MSE KD")
    worse = reference_claim(reference, "Swin → CNN depth", "DisDepth")
    assert (better.verdict, worse.verdict) == ("better beyond seed noise", "worse beyond seed noise")
    assert better.change == pytest.approx(-0.10) and better.verdict in VERDICTS
    check_verdict("worse beyond seed noise", worse)
    assert "Right: worse beyond seed noise" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="the reference run says 'better beyond seed noise'"):
        check_verdict("inside seed noise", better)
    with pytest.raises(ValueError, match="write one of"):
        check_verdict("better", better)
    check_verdict(None, better)
    check_verdict("inside seed noise", None)
    assert "not attempted" in capsys.readouterr().out
    assert reference_claim(None, "anything", "row") is None
    with pytest.raises(ValueError, match="headline tables of 05_disdepth start with"):
        reference_claim(reference, "Faces", "DisDepth")
    with pytest.raises(ValueError, match="not a compared row"):
        reference_claim(reference, "Swin → CNN depth", "no KD")
