import pytest
import torch

from kdlab.probes import (DISPLACEMENT_MODES, displaced_maps, displacement_model, displacement_probe, fit_displacement,
                          reachable_fraction, rebuild_error)


def test_displaced_maps_roll_the_student_content_to_the_right():
    student, teacher = displaced_maps(2, 3, 8, 2, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(teacher[..., 2:], student[..., :-2]) and torch.equal(teacher[..., :2], student[..., -2:])


def test_reachable_fraction_counts_the_positions_whose_source_shares_a_window():
    assert [reachable_fraction(k, 4)["regular window"] for k in range(6)] == [1, 0.75, 0.5, 0.25, 0, 0]
    assert [reachable_fraction(k, 4)["regular or shifted window"] for k in range(5)] == [1, 1, 1, 0.5, 0]
    assert reachable_fraction(1, 4, rolled=0)["regular or shifted window"] == 0.75  # no shift: nothing gained
    with pytest.raises(ValueError, match="rolled"):
        reachable_fraction(1, 4, rolled=4)


def test_rebuild_error_is_zero_for_a_perfect_rebuild_and_skips_the_wrapped_columns():
    class Exact(torch.nn.Module):
        def rebuild(self, student, teacher):
            out = teacher.clone()
            out[..., :2] = 0  # wrong only on the wrapped columns, which e(k) leaves out
            return (out,)

    student, teacher = displaced_maps(2, 3, 8, 2, 0.1, torch.Generator().manual_seed(0))
    assert rebuild_error(Exact(), student, teacher, 2) == 0.0
    assert rebuild_error(Exact(), student, teacher, 1) > 0.0


def test_every_mode_builds_and_bad_modes_fail_before_training():
    for mode in DISPLACEMENT_MODES:
        model = displacement_model(mode, (4, 8, 8), 4)
        out = model.rebuild(torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8))
        assert len(out) == 1 and out[0].shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match="mode"):
        displacement_probe([0], ["windows, shifted"], steps=1, progress=False)
    with pytest.raises(ValueError, match="shift"):
        displacement_probe([16], steps=1, progress=False)
    with pytest.raises(ValueError, match="size"):
        displacement_probe([0], size=2, window=4, steps=1, progress=False)


def test_the_probe_separates_windows_with_and_without_the_shift():
    """The mechanism in small: at k = M/2 the union still reaches every source, windows without the shift half of
    them; a short fit shows it, and the same seed gives the same numbers."""
    kwargs = {"window": 4, "size": 8, "channels": 16, "steps": 150, "seed": 0}
    union = fit_displacement("SW-TaT union", 2, **kwargs)["error"]
    no_shift = fit_displacement("windows, no shift", 2, **kwargs)["error"]
    assert union < 0.2 < no_shift, (union, no_shift)
    assert fit_displacement("SW-TaT union", 2, **kwargs)["error"] == union
    rows = displacement_probe([0, 1], ["global"], size=8, steps=2, progress=False)
    assert [(r["rebuild"], r["query"], r["k"]) for r in rows] == [("global", "teacher", 0), ("global", "teacher", 1),
                                                                  ("global", "student", 0), ("global", "student", 1)]
    assert all(r["ms_per_step"] > 0 and 0 <= r["error"] for r in rows)
