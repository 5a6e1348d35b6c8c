"""Shipped reference results (data/results/*.json) parse and match the current recipes (never stale)."""
import json
import statistics

import pytest

from kdlab.config import DATA_DIR
from kdlab.recipes import RECIPES, REFERENCE, reference_recipe
from kdlab.record import recipe_hash
from kdlab.results import check_all

SHIPPED = sorted((DATA_DIR / "results").glob("*.json"))


def test_primer_ships_a_reference_result():
    assert DATA_DIR / "results" / "00_primer.json" in SHIPPED


def test_every_shipped_file_is_well_formed():
    assert check_all() == []


PENDING_RERECORD = {"00_primer", "01_ofa", "02_cskd", "03_swtat", "04_cafd_face", "05_disdepth"}
"""References recorded under the protocol before issue 15 (the test set doubled as validation; fewer seeds in cpu):
stale until rerun with ``python -m kdlab reference NAME``; each notebook shows them labelled as such. The claims
tests below read these old files as they are."""


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_reference_matches_the_current_recipe(path):
    data = json.loads(path.read_text())
    recipe = reference_recipe(data["notebook"])
    if path.stem in PENDING_RERECORD:
        assert data["recipe_hash"] != recipe_hash(recipe), f"{path.stem} was re-recorded: drop it from PENDING_RERECORD"
        return
    assert data["recipe"] == json.loads(json.dumps(recipe)), "the recipe changed since this file was measured"
    assert data["recipe_hash"] == recipe_hash(recipe), f"stale: rerun `python -m kdlab reference {path.stem}`"


def test_recipes_differ_by_profile_rebuild_from_knobs_and_validate():
    primer = RECIPES["00_primer"]
    assert primer("smoke") != primer("cpu") and primer("cpu")["seeds"] == [0, 1, 2]
    custom = primer("cpu", seed=3, temperature=2.0, n_seeds=3)
    assert custom["seeds"] == [3, 4, 5] and primer(**custom["knobs"]) == custom
    assert reference_recipe("00_primer")["knobs"] == primer(**REFERENCE["00_primer"])["knobs"]
    with pytest.raises(ValueError, match="valid profiles"):
        primer("turbo")
    with pytest.raises(KeyError, match="no reference"):
        reference_recipe("99_nothing")


def test_primer_reference_shows_what_the_primer_claims():
    """The calibration goals (issue 2, data/README.md), measured in the 5-seed reference run."""
    metrics = json.loads((DATA_DIR / "results" / "00_primer.json").read_text())["metrics"]
    acc, cka = metrics["accuracy"], metrics["cka_diagonal_mean"]
    assert acc["cnn_small · labels only"] >= 0.85
    for token in ("vit", "mixer"):
        assert 0.5 <= acc[f"{token} · labels only"] < acc["cnn_small · labels only"]
    assert cka["cnn_vs_cnn"] > cka["cnn_vs_vit"] and cka["cnn_vs_cnn"] > cka["vit_vs_mixer"]


def test_ofa_recipe_rebuilds_from_knobs_and_follows_the_spec_weights():
    ofa = RECIPES["01_ofa"]
    cpu = ofa("cpu")
    assert cpu["seeds"] == [0, 1, 2] and ofa("gpu")["seeds"] == [0, 1, 2, 3, 4]
    custom = ofa("cpu", seed=2, gamma=1.5, temperature=2.0, n_seeds=2)
    assert custom["seeds"] == [2, 3] and ofa(**custom["knobs"]) == custom
    assert {pair["ofa"]["gamma"] for pair in custom["pairs"].values()} == {1.5}
    # the official arguments: lambda_ofa = 1 for a token student, 0.1 for a CIFAR CNN student
    assert cpu["pairs"]["cnn_to_vit"]["ofa"]["ofa_weight"] == 1.0
    assert cpu["pairs"]["vit_to_cnn"]["ofa"]["ofa_weight"] == 0.1
    assert ofa("smoke")["gamma_sweep"]["gammas"] == [1.0, 2.0] and len(ofa("gpu")["gamma_sweep"]["gammas"]) == 4
    assert reference_recipe("01_ofa")["gamma_sweep"]["gammas"] == [1.0, 1.2, 1.5, 2.0]
    for profile in ("smoke", "cpu", "gpu"):
        for pair in ofa(profile)["pairs"].values():
            assert pair["fit"]["warmup_epochs"] <= pair["fit"]["epochs"] / 4


def test_cskd_recipe_rebuilds_from_knobs_and_matches_the_primer_vit():
    cskd, primer = RECIPES["02_cskd"], RECIPES["00_primer"]
    cpu = cskd("cpu")
    custom = cskd("cpu", seed=1, cskd_weight=2.0, kind="cos", n_seeds=2)
    assert custom["seeds"] == [1, 2] and cskd(**custom["knobs"]) == custom and custom["cskd"]["kind"] == "cos"
    # the no-KD row is the primer's ViT: same data, model and training
    assert cpu["data"] == primer("cpu")["data"]
    assert cpu["student"] == {key: primer("cpu")["students"]["vit"][key] for key in ("model", "fit")}
    assert all(n < cpu["data"]["n_train"] for n in cpu["size_sweep"])
    assert cskd("smoke")["student"]["fit"]["warmup_epochs"] <= cskd("smoke")["student"]["fit"]["epochs"] / 4


def test_ofa_reference_shows_what_the_notebook_says_it_shows():
    """The statements of 01_ofa's reference paragraph (section 6), measured in its 5-seed reference run."""
    metrics = json.loads((DATA_DIR / "results" / "01_ofa.json").read_text())["metrics"]
    acc, per_seed = metrics["accuracy"], metrics["accuracy_per_seed"]
    logit_rows = ("Hinton KD", "OFA final logits", "OFA all stages")
    for pair in ("cnn_to_vit", "vit_to_cnn"):
        assert max(logit_rows, key=acc[pair].get) == "OFA all stages"
        assert acc[pair]["OFA all stages"] > acc[pair]["Hinton KD"]
    vit = acc["cnn_to_vit"]
    spread = statistics.stdev(per_seed["cnn_to_vit"]["labels only"])
    assert all(vit[row] - vit["labels only"] < spread for row in vit)  # no row clears the seed spread
    assert vit["Hinton KD"] < vit["labels only"]
    cnn = acc["vit_to_cnn"]
    assert max(cnn, key=cnn.get) == "FitNet hint" and cnn["FitNet hint"] - max(
        v for k, v in cnn.items() if k != "FitNet hint") > 0.05
    gammas = metrics["gamma_accuracy"]
    assert set(gammas) == {"1", "1.2", "1.5", "2"} and max(gammas.values()) - min(gammas.values()) < 0.03


def test_cskd_reference_shows_what_the_notebook_says_it_shows():
    """The statements of 02_cskd's reference paragraph, measured in its 5-seed reference run."""
    results = DATA_DIR / "results"
    cskd = json.loads((results / "02_cskd.json").read_text())["metrics"]
    primer = json.loads((results / "00_primer.json").read_text())["metrics"]
    per_seed, acc = cskd["accuracy_per_seed"], cskd["accuracy"]
    # same data, model, training and seeds: the no-KD row is the primer's labels-only ViT, seed for seed
    assert per_seed["no KD"] == pytest.approx(primer["accuracy_per_seed"]["vit · labels only"], abs=1e-6)
    assert acc["DeiT hard distillation"] < acc["no KD"] and acc["CSKD without CKF"] < acc["no KD"]
    assert all(c < n for c, n in zip(per_seed["CSKD"], per_seed["no KD"]))
    assert 0.2 < acc["no KD"] - acc["CSKD"] < 0.35
    assert cskd["dense_mean_error"] < 1e-4 and cskd["teacher_acc"] > 0.95


def test_swtat_recipe_rebuilds_from_knobs_and_matches_the_primer_cnn():
    swtat = RECIPES["03_swtat"]
    cpu = swtat("cpu", window=8, n_seeds=2)
    assert swtat(**cpu["knobs"]) == cpu and cpu["seeds"] == [0, 1]
    assert cpu["classification"]["swtat"]["window"] == cpu["segmentation"]["swtat_seg"]["window"] == 8
    assert cpu["segmentation"]["swtat_seg_pm"]["window"] == 8
    # the classification student trains as the primer's CNN (model, epochs, optimiser), on fewer images in cpu
    primer = RECIPES["00_primer"]("cpu")
    data = cpu["classification"]["data"]
    assert {k: v for k, v in data.items() if k != "n_train"} == {k: v for k, v in primer["data"].items() if k != "n_train"}
    assert data["n_train"] == 1200 < primer["data"]["n_train"]
    assert cpu["classification"]["student"] == "cnn_small"
    assert cpu["classification"]["fit"] == primer["students"]["cnn_small"]["fit"]
    assert swtat("smoke")["cost_sizes"][-1] == 32 and swtat("cpu")["cost_sizes"][-1] == 64


def test_swtat_reference_shows_what_the_notebook_says_it_shows():
    """The statements of 03_swtat's reference paragraph (and the issue's cost criterion), from its 3-seed run."""
    results = DATA_DIR / "results"
    swtat = json.loads((results / "03_swtat.json").read_text())["metrics"]
    primer = json.loads((results / "00_primer.json").read_text())["metrics"]
    cls, seg = swtat["cls_accuracy_per_seed"], swtat["seg_miou_per_seed"]
    # same data, model, training and seeds: the classification no-KD row is the primer's labels-only CNN
    assert cls["no KD"] == pytest.approx(primer["accuracy_per_seed"]["cnn_small · labels only"][:3], abs=1e-6)
    for row in ("TaT", "SW-TaT"):
        assert all(t < n for t, n in zip(cls[row], cls["no KD"])), f"{row} is lower than no KD on every seed"
    assert abs(statistics.mean(cls["KD"]) - statistics.mean(cls["no KD"])) < 0.01
    # segmentation: no row clears the no-KD seed spread; the order is the reverse of the paper's
    spread = statistics.stdev(seg["no KD"])
    means = {row: statistics.mean(values) for row, values in seg.items()}
    assert all(abs(m - means["no KD"]) < spread for m in means.values())
    assert means["TaT patch groups + anchors"] > means["SW-TaT"] > means["SW-TaT + PM"]
    assert all(statistics.stdev(seg[row]) < spread for row in seg if row != "no KD")
    # the criterion, measured by bench.swtat inside the run: at 64x64, window 8, >= 10x time and memory
    at64 = {row["loss"]: row for row in swtat["cost"] if row["map"] == "64x64"}
    for loss in ("window", "shifted window"):
        assert at64[loss]["speedup"] >= 10 and at64[loss]["mem_saving"] >= 10, at64[loss]
    assert swtat["seg_teacher_miou"] > 0.95


def test_disdepth_reference_shows_what_the_notebook_says_it_shows():
    """The statements of 05_disdepth's reference paragraph, from its 3-seed run."""
    disdepth = json.loads((DATA_DIR / "results" / "05_disdepth.json").read_text())["metrics"]
    per_seed = disdepth["abs_rel_per_seed"]
    means = {row: statistics.mean(values) for row, values in per_seed.items()}
    assert 0.0035 < statistics.stdev(per_seed["no KD"]) < 0.0045
    for row in ("+ LGConv", "+ feature-MSE KD", "DisDepth"):
        assert abs(means[row] - means["no KD"]) < 0.002, row
    assert all(g < n for g, n in zip(per_seed["+ ghost-decoder KD"], per_seed["no KD"]))
    assert disdepth["paired_vs_no_kd"]["DisDepth"]["better_on"] == 2
    assert disdepth["teacher_metrics"]["abs_rel"] < disdepth["ghost_metrics"]["abs_rel"] < means["no KD"]


def test_cafd_reference_shows_what_the_notebook_says_it_shows():
    """The statements of 04_cafd_face's reference paragraph, from its 3-seed run."""
    cafd = json.loads((DATA_DIR / "results" / "04_cafd_face.json").read_text())["metrics"]
    per_seed, verification = cafd["verif_acc_per_seed"], cafd["verification"]
    means = {row: statistics.mean(values) for row, values in per_seed.items()}
    spread = statistics.stdev(per_seed["no KD"])
    assert 0.006 < spread < 0.008 and all(abs(m - means["no KD"]) < spread for m in means.values())
    for row in ("embedding KD", "feature MSE"):  # nominally above no KD, on two seeds of three
        assert means[row] > means["no KD"] and cafd["paired_vs_no_kd"][row]["better_on"] == 2, row
    assert verification["feature MSE"]["tar_far1e-2"] > verification["no KD"]["tar_far1e-2"] + 0.05
    cafd_rows = ("CAFD without APT", "CAFD without facial distance", "CAFD")
    for row in cafd_rows:  # nominally below no KD and below both classic losses, with a lower TAR@FAR 1e-2
        assert means[row] < means["no KD"] < min(means["embedding KD"], means["feature MSE"]), row
        assert verification[row]["tar_far1e-2"] < verification["no KD"]["tar_far1e-2"], row
    assert max(means[row] for row in cafd_rows) - min(means[row] for row in cafd_rows) < spread
    # the homologous check: the CNN teacher adds no more than the Swin to either classic loss
    assert cafd["cnn_teacher_verification"]["verif_acc"] > cafd["teacher_verification"]["verif_acc"]
    for loss, h in cafd["homologous"].items():
        assert h["seeds"] == 3 and 0 < h["gain_cnn"] <= h["gain_swin"] and abs(h["gap_points"]) < 100 * spread, loss
    # APT: the trained prompts cost the Swin's own embedding accuracy; the centres' centroids drift apart
    assert cafd["teacher_verification"]["verif_acc"] - cafd["teacher_with_prompts"]["verif_acc"] > 0.05
    assert cafd["centroid_distance"]["after training"] > 2 * cafd["centroid_distance"]["before training"]
    assert cafd["backbone_grad_params"] == 0 and cafd["apt_zero_prompt_max_diff"] < 1e-5
