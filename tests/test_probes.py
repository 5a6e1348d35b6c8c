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


# ------------------------------------------------------------------ effective receptive field (05 §7.2)
from kdlab.probes import effective_receptive_field, erf_radius, mass_within  # noqa: E402


def test_erf_of_one_3x3_conv_is_its_kernel_and_a_global_mean_is_uniform():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.rand(5, 3, 9, 9)
    field, centre = effective_receptive_field(conv, x)
    assert max(abs(centre[0] - 4), abs(centre[1] - 4)) < 1 and abs(field.sum().item() - 1) < 1e-6
    assert field[3:6, 3:6].sum().item() == pytest.approx(1.0) and field[3:6, 3:6].min() > 0
    assert mass_within(field, (4.0, 4.0), [0.0, 1.5, 10.0])[1:] == pytest.approx([1.0, 1.0])
    assert erf_radius(field, (4.0, 4.0), 1.0) <= 2 ** 0.5 + 1e-9
    assert conv.weight.grad is None, "the probe must not leave gradients on the parameters"
    mean_map = lambda x: x.mean(dim=(2, 3), keepdim=True).expand(-1, -1, 3, 3)  # noqa: E731
    uniform, _ = effective_receptive_field(mean_map, x)
    assert torch.allclose(uniform, torch.full((9, 9), 1 / 81))
    corner = effective_receptive_field(conv, x, position=(0, 0))[1]
    assert 0 <= corner[0] <= 1 and 0 <= corner[1] <= 1
    assert effective_receptive_field(mean_map, x)[1] == pytest.approx((4.0, 4.0))
    curve = mass_within(uniform, (4.0, 4.0), range(7))
    assert curve == sorted(curve) and curve[-1] == pytest.approx(1.0)
    assert erf_radius(uniform, (4.0, 4.0), 0.5) > erf_radius(field, centre, 0.5)


def test_erf_rejects_bad_inputs():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        effective_receptive_field(conv, torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="one \\(C, h, w\\) map per image"):
        effective_receptive_field(lambda x: x.flatten(1), torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="position row"):
        effective_receptive_field(conv, torch.rand(2, 3, 8, 8), position=(8, 0))
    with pytest.raises(ValueError, match="zero gradient"):
        effective_receptive_field(lambda x: 0 * x, torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(H, W\) map"):
        mass_within(torch.rand(1, 4, 4), (1.0, 1.0), [1.0])
    with pytest.raises(ValueError, match="radius"):
        mass_within(torch.rand(4, 4), (1.0, 1.0), [-1.0])
    with pytest.raises(ValueError, match="share"):
        erf_radius(torch.rand(4, 4), (1.0, 1.0), 1.5)
