"""The benchmarks run and report consistent rows (what they measure is never asserted on time)."""
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
