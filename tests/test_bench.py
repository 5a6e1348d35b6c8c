"""The benchmarks run and report consistent rows (what they measure is never asserted on time)."""
import torch

from kdlab import bench


def test_ofa_bench_compares_three_methods_on_one_student():
    rows = bench.ofa("cnn_small", "cnn_small", batch_size=4, seconds=0.01)
    assert [row["method"] for row in rows] == ["no KD", "Hinton KD", "OFA"]
    no_kd, kd, ofa = rows
    assert no_kd["step_vs_no_kd"] == 1.0 and all(row["step_ms"] > 0 for row in rows)
    assert no_kd["branch_params"] == kd["branch_params"] == 0 < ofa["branch_params"]
    assert kd["train_fwd_gflops"] == no_kd["train_fwd_gflops"] < ofa["train_fwd_gflops"]


def test_data_bench_times_every_dataset():
    rows = bench.data(n=64)
    assert {row["dataset"] for row in rows} and all(row["images"] == 64 for row in rows)


def test_swtat_bench_measures_every_loss_per_size_against_global():
    rows = bench.swtat(sizes=(8, 12), channels=4, batch_size=2, window=4, repeats=1)
    labels = ["global", "window", "shifted window", "SW-TaT (2 passes)", "SW-TaT union (2 passes)"]
    assert [(row["map"], row["loss"]) for row in rows] == [(m, label) for m in ("8x8", "12x12") for label in labels]
    assert [row["logits"] for row in rows[5:]] == [2 * 144**2, 2 * 144 * 16, 2 * 144 * 16, 2 * 2 * 144 * 16,
                                                   2 * 2 * 144 * 16]
    assert all(row["ms"] > 0 and row["peak_mb"] >= 0 for row in rows)
    assert all(row["speedup"] == row["mem_saving"] == 1.0 for row in rows if row["loss"] == "global")


def test_bench_swtat_command_prints_one_table(capsys):
    from kdlab.__main__ import main

    args = ["bench", "swtat", "--sizes", "8", "--channels", "4", "--batch-size", "1", "--window", "4", "--repeats", "1"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["map", "loss", "device", "ms", "peak_mb", "logits", "speedup", "mem_saving"]
    assert len(lines) == 6 and "SW-TaT (2 passes)" in lines[-2] and "SW-TaT union (2 passes)" in lines[-1]


def test_cpu_peak_memory_probe_keeps_the_profiler_log_off_stderr(capfd):
    x = torch.randn(64, 64, requires_grad=True)
    peak = bench._peak_bytes(lambda: (x @ x).sum().backward(), torch.device("cpu"))
    assert peak >= 64 * 64 * 4  # at least the product matrix
    assert "profiler" not in capfd.readouterr().err
