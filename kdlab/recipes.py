"""Each notebook's experiment recipe per profile: data sizes, epochs, seeds, models and their training.

A recipe is a plain dict, so it prints in the notebook, is hashed into reference results
(``kdlab.results``) and can be rebuilt by the tests to flag stale reference files. The numbers were
calibrated on 2 CPU cores so that the ``cpu`` profile fits its 10-minute budget (``data/README.md``).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from .checks import check_choice, check_number
from .config import by_profile, resolve_profile
from .methods import PROMPT_INITS, epoch_progress


TOKEN_STUDENT = {"patch_size": 8, "embed_dim": 128, "num_heads": 4}
"""The calibrated ViT student: patch 8 (16 tokens) learns far faster per CPU second than patch 4 (64 tokens)."""


TOY_GAMMAS = [1.0, 1.2, 1.5, 2.0, 3.0]
"""01's gamma toy: the paper's sweep (1, 1.2, 1.5, 2) and 3, where the target-class enhancement is unmistakable."""


PRIMER_BUDGETS = (100, 200, 500, 1000, 2000)
"""The primer's label budgets (§7): how many of the ``cpu`` profile's 2000 training images keep their label."""


def primer_recipe(profile: str, *, seed: int = 0, temperature: float = 2.0, kd_weight: float = 0.5,
                  omitted_class: int = 3, dark_temperature: float = 8.0, budgets: list[int] | None = None,
                  n_seeds: int | None = None) -> dict[str, Any]:
    """The primer (00): three experiments, each isolating one mechanism of Hinton KD.

    * ``dark``: the omitted-class experiment of Hinton et al. §3 on the bundled 8x8 digits: an MLP teacher (2x512,
      dropout) trained on every class, MLP students (2x64) trained without one image of ``omitted_class``, from the
      labels or from the teacher's soft targets at ``dark_temperature`` (soft targets only, ``kd_weight`` 1: the
      label term would push the omitted class down on every image), the paper's bias correction chosen on the
      validation split from ``bias_grid``.
    * ``budgets``: the shipped CNN teacher and the primer's CNN student on shapes; of the ``pool`` training images
      only the first ``n`` of each budget keep their label. Rows: labels only (the ``n`` images), Hinton KD on the
      same ``n``, and KD that also sees the rest of the pool unlabelled. Every run trains on the same number of
      samples (each set is cycled to the pool's size, ``TensorSet.repeat_to``). ``budgets`` (default: the smallest
      of :data:`PRIMER_BUDGETS`; the reference run does them all) picks the budgets trained.
    * ``across``: the same CNN teacher and the primer's ViT student at one budget (``labels``), plus the control
      that says whether the ViT can use more information at all: labels only on the whole pool.

    ``temperature`` and ``kd_weight`` (the paper's T and α) are the CNN teacher's Hinton KD (``recipe["kd"]``,
    :class:`~kdlab.methods.KD`'s keywords). ``students`` and ``data`` are the shapes students and splits that
    02 and 03 build on. ``n_seeds`` defaults to the profile's (1 / 3 / 5); runs use seeds ``seed, seed + 1, ...``.
    Measured on 2 cores (one thread per run, ``cpu``): a digits student about 8 s, a CNN budget run 30 s (KD 37 s),
    a ViT run 32 s; the whole ``cpu`` notebook about 8 minutes.
    """
    profile = resolve_profile(profile)
    n_seeds = n_seeds or by_profile(profile, smoke=1, cpu=3, gpu=5)
    budgets = sorted(budgets or PRIMER_BUDGETS[:1])
    pool = by_profile(profile, smoke=1000, cpu=2000, gpu=8000)
    if not budgets or any(not isinstance(b, int) or not 1 <= b <= pool for b in budgets):
        raise ValueError(f"budgets must be label counts in [1, {pool}] (the {profile} pool), got {budgets!r}")
    knobs = {"profile": profile, "seed": seed, "temperature": temperature, "kd_weight": kd_weight,
             "omitted_class": omitted_class, "dark_temperature": dark_temperature, "budgets": budgets,
             "n_seeds": n_seeds}
    scale = by_profile(profile, smoke=0.25, cpu=1.0, gpu=2.5)  # epochs relative to the cpu calibration
    epochs = lambda cpu_epochs, least=2: max(least, round(cpu_epochs * scale))  # noqa: E731
    fit = lambda cpu_epochs, lr, cpu_warmup, least=2: {  # noqa: E731  (a short run warms up for a quarter of it at most)
        "epochs": epochs(cpu_epochs, least), "lr": lr, "warmup_epochs": min(cpu_warmup, epochs(cpu_epochs, least) / 4)}
    smoke_scale = by_profile(profile, smoke=0.3, cpu=1.0, gpu=1.0)  # the smoke test's experiments: one epoch each
    students = {"cnn_small": {"model": {}, "fit": fit(12, 2e-3, 1.0)},
                "vit": {"model": TOKEN_STUDENT, "fit": fit(20, 1e-3, 2.0)}}
    return {
        "knobs": knobs,
        "data": {"name": "shapes", "n_train": pool, "n_test": by_profile(profile, smoke=500, cpu=1000, gpu=4000),
                 "n_val": by_profile(profile, smoke=250, cpu=500, gpu=2000), "seed": seed},
        "seeds": [seed + i for i in range(n_seeds)],
        "teachers": ["shapes_cnn", "shapes_vit"],
        "kd_teacher": "shapes_cnn",
        "kd": {"temperature": temperature, "kd_weight": kd_weight},
        "students": students,
        "dark": _dark_knowledge(profile, seed, omitted_class, dark_temperature),
        "budgets": {"student": "cnn_small", "labels": budgets, "pool": pool,
                    "fit": fit(8 * smoke_scale, 2e-3, 1.0, least=1)},
        "across": {"student": "vit", "labels": by_profile(profile, smoke=250, cpu=500, gpu=2000),
                   "label_smoothing": 0.1, "fit": fit(15 * smoke_scale, 1e-3, 2.0, least=1), "shift_px": 6, "rotate_deg": 20,
                   "attention_images": 16},
        "cka_samples": by_profile(profile, smoke=256, cpu=1000, gpu=2000),
    }


DIGITS_TEACHER = {"hidden": (512, 512), "dropout": 0.5, "input_dropout": 0.2}
"""The digits MLP teacher of the primer's omitted-class experiment and of 01's gamma toy (Hinton et al.'s, scaled)."""

DIGITS_STUDENT = {"hidden": (64, 64)}
"""The digits MLP student of both experiments."""


def _digits_data(seed: int) -> dict[str, Any]:
    """The bundled digits at their native 8x8 grey with 300 validation images (``load_splits`` keywords)."""
    return {"name": "digits", "img_size": 8, "channels": 1, "n_val": 300, "seed": seed}


def _dark_knowledge(profile: str, seed: int, omitted_class: int, dark_temperature: float) -> dict[str, Any]:
    """The primer's omitted-class experiment (``primer_recipe``'s ``dark`` block): digits at their native 8x8 grey,
    300 validation images, the teacher's and the student's MLP and training, soft targets only at T, the bias grid."""
    return {
        "data": _digits_data(seed),
        "omitted_class": omitted_class,
        "teacher": {"model": dict(DIGITS_TEACHER),
                    "fit": {"epochs": by_profile(profile, smoke=20, cpu=100, gpu=100), "lr": 1e-3}},
        "student": {"model": dict(DIGITS_STUDENT),
                    "fit": {"epochs": by_profile(profile, smoke=40, cpu=300, gpu=300), "lr": 1e-3}},
        "kd": {"temperature": dark_temperature, "kd_weight": 1.0},
        "bias_grid": [step / 4 for step in range(0, 41)],
    }


def ofa_recipe(profile: str, *, seed: int = 0, gamma: float = 1.0, temperature: float = 1.0,
               n_seeds: int | None = None, gammas: list[float] | None = None) -> dict[str, Any]:
    """OFA-KD (01): the gamma toy, two heterogeneous pairs with six / five same-budget rows, and the sweeps.

    * ``gamma_toy`` (§3.3) isolates the target-class enhancement: the primer's 8x8 digits, an MLP teacher trained
      on the whole training split and three variants of it that are unsure of the true class in different ways
      (``teachers``: softened by a temperature, trained for only a few epochs, trained on labels of which a
      fraction moved to the next class), MLP students that learn from ``labelled`` images (cycled to the split's size) with
      OFA on the final logits at each of ``gammas`` (default :data:`TOY_GAMMAS`; smoke [1, 3]), and labels only.
    * ``pairs``: ``vit_to_cnn`` (the shipped ViT teacher -> ``cnn_small``, DeiT/Swin -> ResNet: the pair whose
      student has something to gain) and ``cnn_to_vit`` (the shipped CNN teacher -> a from-scratch ViT, the paper's
      ConvNeXt -> DeiT row, which the primer's control shows cannot use more information at this budget). The
      candidates are labels only, Hinton KD (the primer's calibrated T = 2, kd_weight = 0.5), a FitNet hint at
      stage 3 (spec 6.4), OFA on the final logits only and OFA with branches on all four stages, and two FitNet
      controls for the geometry question: the hint into student stage 1 (``fitnet_stage_1``: its 32x32 map
      against block 3's 4x4) and the stage-3 hint from an ``untrained_teacher`` of the ViT teacher's
      architecture. A pair's ``rows`` run in every profile, its ``more_rows`` when ``live_sweeps`` (below).
      ``ofa_weight`` follows the official arguments: 1 for token students, 0.1 for CNN students.
    * ``branch_sweep`` (on its pair): branches on fewer stages, and a larger ``ofa_weight`` on all four;
      ``readout``: the ViT student read out by the mean of its patch tokens (``global_pool="avg"``) instead of its
      class token (timm's default, the paper's DeiT setting), labels only and OFA all stages. The sweeps and the ``more_rows`` run live when
      ``live_sweeps`` (smoke, with one row of each sweep, and gpu) and in the reference run; the ``cpu`` notebook
      shows them from the reference run (they do not fit its 10 minutes next to the ``rows``).

    ``kd``, ``fitnet`` and each pair's ``ofa`` are the keywords of :class:`~kdlab.methods.KD`,
    :class:`~kdlab.methods.FitNet` and :class:`~kdlab.methods.OFA`. ``n_seeds`` defaults to 1 / 3 / 5 (smoke /
    cpu / gpu). The shapes students see 1200 training images in ``cpu`` and train 12 epochs (at 8 epochs the CNN
    student reached only 63 % on its own). Measured on 2 cores, one thread per run: a ViT run 16 s (OFA all
    stages 60 s: its branches hold up to three transformer blocks), a CNN run 26-41 s, a digits student 1-2 s.
    """
    profile = resolve_profile(profile)
    n_seeds = n_seeds or by_profile(profile, smoke=1, cpu=3, gpu=5)
    gammas = list(gammas or by_profile(profile, smoke=[1.0, 3.0], cpu=TOY_GAMMAS, gpu=TOY_GAMMAS))
    knobs = {"profile": profile, "seed": seed, "gamma": gamma, "temperature": temperature, "n_seeds": n_seeds,
             "gammas": gammas}
    scale = by_profile(profile, smoke=0.2, cpu=1.0, gpu=2.5)
    epochs = lambda cpu_epochs: max(2, round(cpu_epochs * scale))  # noqa: E731
    fit = lambda cpu_epochs, lr, cpu_warmup: {  # noqa: E731
        "epochs": epochs(cpu_epochs), "lr": lr, "warmup_epochs": min(cpu_warmup, epochs(cpu_epochs) / 4)}
    return {
        "knobs": knobs,
        "data": {"name": "shapes", "n_train": by_profile(profile, smoke=256, cpu=1200, gpu=8000),
                 "n_test": by_profile(profile, smoke=200, cpu=1000, gpu=4000),
                 "n_val": by_profile(profile, smoke=100, cpu=500, gpu=2000), "seed": seed},
        "seeds": [seed + i for i in range(n_seeds)],
        "gamma_toy": _gamma_toy(profile, seed, gammas),
        "kd": {"temperature": 2.0, "kd_weight": 0.5},
        "fitnet": {"pairs": [[3, 3]]},
        "fitnet_stage_1": {"pairs": [[1, 3]]},
        "untrained_teacher": {"name": "vit", "model": TOKEN_STUDENT},
        "pairs": _ofa_pairs(fit, gamma, temperature),
        "branch_sweep": {"pair": "vit_to_cnn",
                         "stages": by_profile(profile, smoke=[[4]], cpu=[[4], [3, 4]], gpu=[[4], [3, 4]]),
                         "ofa_weights": by_profile(profile, smoke=[1.0], cpu=[0.5, 1.0], gpu=[0.5, 1.0])},
        "readout": {"pair": "cnn_to_vit", "global_pool": "avg"},
        "live_sweeps": by_profile(profile, smoke=True, cpu=False, gpu=True),
        "cka_samples": by_profile(profile, smoke=256, cpu=500, gpu=2000),
    }


def _ofa_pairs(fit: Callable[[int, float, float], dict[str, Any]], gamma: float,
               temperature: float) -> dict[str, Any]:
    """01's two teacher -> student pairs (``ofa_recipe``'s ``pairs`` block): models, training (``fit(cpu_epochs, lr,
    cpu_warmup)``), OFA keywords (``ofa_weight``: 0.1 for a CNN student, 1 for a token student, as the official
    arguments), the rows every profile trains and the ``more_rows`` trained with the sweeps."""
    ofa = lambda ofa_weight: {"gamma": gamma, "temperature": temperature, "ofa_weight": ofa_weight}  # noqa: E731
    return {
        "vit_to_cnn": {"teacher": "shapes_vit", "student": "cnn_small", "model": {},
                       "fit": fit(12, 2e-3, 1.0), "ofa": ofa(0.1),
                       "rows": ["labels only", "Hinton KD", "FitNet hint", "OFA final logits", "OFA all stages"],
                       "more_rows": ["FitNet hint at stage 1", "FitNet hint, untrained teacher"]},
        "cnn_to_vit": {"teacher": "shapes_cnn", "student": "vit", "model": TOKEN_STUDENT,
                       "fit": fit(12, 1e-3, 2.0), "ofa": ofa(1.0),
                       "rows": ["labels only", "Hinton KD", "OFA all stages"],
                       "more_rows": ["FitNet hint", "OFA final logits"]},
    }


def _gamma_toy(profile: str, seed: int, gammas: list[float]) -> dict[str, Any]:
    """01's gamma toy (``ofa_recipe``'s ``gamma_toy`` block): the primer's digits and MLPs (``_dark_knowledge``),
    the teacher variants' one knob each, the students' label budget, training and the gammas (1 among them: every
    gamma is compared with gamma = 1 on the same teacher)."""
    if 1.0 not in gammas or any(not isinstance(g, (int, float)) or g < 1 for g in gammas):
        raise ValueError(f"gammas must be numbers >= 1 that include 1 (the toy compares each with gamma = 1), got {gammas}")
    return {
        "data": _digits_data(seed),
        "teacher": {"model": dict(DIGITS_TEACHER),
                    "fit": {"epochs": by_profile(profile, smoke=10, cpu=100, gpu=100), "lr": 1e-3}},
        "teachers": {"softened": {"temperature": 4.0}, "undertrained": {"epochs": 2},
                     "confused labels": {"fraction": 0.4}},
        "labelled": 150,
        "student": {"model": dict(DIGITS_STUDENT),
                    "fit": {"epochs": by_profile(profile, smoke=6, cpu=60, gpu=60), "lr": 1e-3}},
        "gammas": gammas,
    }


def cskd_recipe(profile: str, *, seed: int = 0, cskd_weight: float = 1.0, deit_weight: float = 0.5,
                kind: str = "linear", n_seeds: int | None = None) -> dict[str, Any]:
    """CSKD (02): a CNN teacher -> a distilled ViT, in two data regimes, with a diagnosis and a weak-teacher test.

    The student is the primer's ViT (patch 8: a 4x4 patch grid, the CNN teacher's 4x4 last map, so the pooling
    factor is 1) plus DeiT's distillation token; the no-KD row is the primer's plain ViT with the primer's data and
    training. ``kind`` is the CKF schedule (linear / x2 / cos), ``cskd_weight`` the lambda_cskd of the dense term
    and ``deit_weight`` DeiT's a. ``deit_hard`` and ``cskd`` are the keywords of :class:`~kdlab.methods.DeiTHard` and
    :class:`~kdlab.methods.CSKD` (whose per-epoch schedule needs the student's ``epochs``). ``n_seeds`` defaults to
    1 / 3 / 5.

    The blocks: ``data`` / ``teacher``, the single-object shapes and ``shapes_cnn`` (§6.1: no KD, DeiT, CSKD without
    and with CKF); ``mosaic``, the dense regime (2x2 mosaics whose class is the one on two tiles, and
    ``shapes_mosaic_cnn``; §6.3: the same four rows, then no KD, DeiT and CSKD with ``longer`` training);
    ``diagnosis``, the one-change-at-a-time variants of CSKD (§6.2: the per-iteration schedule, a lighter dense
    weight, twice the epochs, the last with no KD beside it);
    ``weak_teacher``, CSKD with and without CKF from an early checkpoint (§6.4); ``size_sweep`` (§6.5, first seed).
    ``live`` says what the profile trains now: ``cpu`` and ``gpu`` train the dense regime at its first budget and show
    the other experiments from the reference run, which trains everything (10 minutes on 2 cores hold the 12 runs of
    one regime, not the 55 of all; ``gpu`` keeps to the same part at its larger sizes, untimed: no GPU was lent);
    ``smoke`` trains everything, tiny.
    """
    profile = resolve_profile(profile)
    n_seeds = n_seeds or by_profile(profile, smoke=1, cpu=3, gpu=5)
    knobs = {"profile": profile, "seed": seed, "cskd_weight": cskd_weight, "deit_weight": deit_weight,
             "kind": kind, "n_seeds": n_seeds}
    epochs = max(2, round(20 * by_profile(profile, smoke=0.15, cpu=1.0, gpu=2.5)))
    data = {"name": "shapes", "n_train": by_profile(profile, smoke=200, cpu=2000, gpu=8000),
            "n_test": by_profile(profile, smoke=200, cpu=1000, gpu=4000),
            "n_val": by_profile(profile, smoke=100, cpu=500, gpu=2000), "seed": seed}
    cskd = {"epochs": epochs, "cskd_weight": cskd_weight, "deit_weight": deit_weight, "kind": kind}
    return {
        "knobs": knobs,
        "data": data,
        "seeds": [seed + i for i in range(n_seeds)],
        "teacher": "shapes_cnn",
        "student": {"model": TOKEN_STUDENT, "fit": {"epochs": epochs, "lr": 1e-3, "warmup_epochs": min(2.0, epochs / 4)}},
        "deit_hard": {"deit_weight": deit_weight},
        "cskd": cskd,
        "mosaic": {"data": {**data, "layout": "mosaic"}, "teacher": "shapes_mosaic_cnn", "longer": {"epochs": 2 * epochs}},
        "diagnosis": {"per-iteration schedule": {"per_iteration": True},
                      "λ_cskd ÷ 4": {"cskd_weight": cskd_weight / 4},
                      "twice the epochs": {"epochs": 2 * epochs}},
        "weak_teacher": "shapes_cnn_weak",
        "size_sweep": by_profile(profile, smoke=[100], cpu=[500, 1000], gpu=[1000, 2000, 4000]),
        "live": {"original regime": profile == "smoke", "mosaic": True, "mosaic, twice the epochs": profile == "smoke"},
        "n_show": by_profile(profile, smoke=4, cpu=6, gpu=6),
    }


def swtat_recipe(profile: str, *, seed: int = 0, window: int = 4, cls_weights: Sequence[float] | None = None,
                 seg_weights: Sequence[float] | None = None, n_seeds: int | None = None) -> dict[str, Any]:
    """SW-TaT (03): classification (Swin teacher -> CNN) and segmentation (CNN segmenter -> smaller CNN).

    Classification distils the shipped Swin's stage-2 map into the primer's CNN student's stage-3 map (both
    8x8 at 32 px), so a 4x4 window cuts the map into four; the student is the primer's CNN with the primer's
    learning rate, trained in ``cpu`` on 1000 of the primer's 2000 images for 10 epochs at batch 32 (below).
    Segmentation distils the shipped segmenter's stride-4 decoder map (16x16 at 64 px, four windows of ``window``
    = 4 per side) into the small segmenter's.

    Each task has ``baselines`` (no feature term) and ``feature_rows``, ``label: [method, keywords, weight
    scales]``: the row trains ``METHODS[method](..., **keywords)`` with every ``weight scales`` keyword set to
    its scale times the swept weight (:func:`weighted_rows`). The weight is the feature term's: lambda_tat (the
    paper's epsilon) in classification (``cls_weights``, TaT's official 0.1 in the middle; alpha = beta = 0.5 stay
    TaT's), lambda_sw-tat (the paper's delta) in segmentation (``seg_weights``; the patch-merging and anchor terms
    get lambda_sw-tat / 2, TaT's ratio). Every
    feature row trains at every weight on the same seeds; notebook 03 picks the one weight with the best mean
    validation score over a task's feature rows, the same for all of them, and reports the test scores there.
    The grids span the feature term from a few percent of the task loss to about its size (notebook 03 §6.1
    measures the ratio). ``live`` says what the profile trains now: ``smoke`` everything (one weight); ``cpu`` and
    ``gpu`` the segmentation shift ablation (no KD, no shift, SW-TaT sequential and union) at the weight the
    reference run chose, and show the sweeps from the reference run, which trains all (129 runs; the whole reference
    run took 38 minutes on 2 cores). ``n_seeds`` defaults to 1 / 3 / 5.
    Sizing (``cpu``, 2 cores): 1200 x 12 classification and 800 x 10 segmentation images took 646 s for 8 rows x 3
    seeds; 1000 x 12 and 600 x 10 at batch 64 500 s, but too few steps (labels only 52 % accuracy, 11.6 % mIoU).
    One-seed validation probes at a similar cost: 1000 images at batch 32 78 %, 800 at batch 8 71 % mIoU (2000 at
    batch 64: 87 %; 83 % at 15 epochs). Hence 1000 x 10 at batch 32 and 500 x 10 at batch 8; smoke batch 64.
    """
    profile = resolve_profile(profile)
    n_seeds = n_seeds or by_profile(profile, smoke=1, cpu=3, gpu=5)
    cls_weights = [float(w) for w in cls_weights or by_profile(profile, smoke=[0.1], cpu=[0.03, 0.1, 0.3, 1.0],
                                                                gpu=[0.03, 0.1, 0.3, 1.0])]
    seg_weights = [float(w) for w in seg_weights or by_profile(profile, smoke=[0.1], cpu=[0.01, 0.03, 0.1, 0.3],
                                                                gpu=[0.01, 0.03, 0.1, 0.3])]
    knobs = {"profile": profile, "seed": seed, "window": window, "cls_weights": cls_weights,
             "seg_weights": seg_weights, "n_seeds": n_seeds}
    return {
        "knobs": knobs,
        "seeds": [seed + i for i in range(n_seeds)],
        "classification": _swtat_classification(profile, seed, window, cls_weights),
        "segmentation": _swtat_segmentation(profile, seed, window, seg_weights),
        "probe": {"shifts": by_profile(profile, smoke=[0, 2, 3], cpu=[0, 1, 2, 3, 4], gpu=[0, 1, 2, 3, 4]),
                  "steps": by_profile(profile, smoke=30, cpu=300, gpu=300), "window": 4, "size": 16, "channels": 16,
                  "student_query": profile != "smoke"},
        "live": {"sweeps": profile == "smoke", "shift ablation": True},
        "cost_sizes": by_profile(profile, smoke=[8, 16, 32], cpu=[8, 16, 32, 64], gpu=[8, 16, 32, 64]),
        "window_sweep": by_profile(profile, smoke=[4], cpu=[2, 4, 8, 16], gpu=[2, 4, 8, 16]),
        "n_show": by_profile(profile, smoke=3, cpu=4, gpu=4),
    }


def _swtat_classification(profile: str, seed: int, window: int, weights: list[float]) -> dict[str, Any]:
    """:func:`swtat_recipe`'s classification task: Swin stage 2 -> the primer's CNN stage 3 (8x8 maps)."""
    epochs, batch = by_profile(profile, smoke=2, cpu=10, gpu=30), by_profile(profile, smoke=64, cpu=32, gpu=64)
    tat = {"stages": [3, 2], "ce_weight": 0.5, "kd_weight": 0.5}
    sw = {"sw_tat_weight": 1.0}
    return {
        "data": {"name": "shapes", "n_train": by_profile(profile, smoke=200, cpu=1000, gpu=8000),
                 "n_test": by_profile(profile, smoke=300, cpu=1000, gpu=4000),
                 "n_val": by_profile(profile, smoke=150, cpu=500, gpu=2000), "seed": seed},
        "teacher": "shapes_swin", "student": "cnn_small",
        "fit": {"epochs": epochs, "lr": 2e-3, "warmup_epochs": min(1.0, epochs / 4), "batch_size": batch},
        "baselines": {"no KD": ["supervised", {}], "KD": ["kd", {"temperature": 1.0, "kd_weight": 0.5}]},
        "feature_rows": {
            "TaT (global)": ["tat", tat, {"tat_weight": 1.0}],
            "windows, no shift": ["swtat", {**tat, "window": window, "shift": 0}, sw],
            "SW-TaT": ["swtat", {**tat, "window": window}, sw],
            "SW-TaT union": ["swtat", {**tat, "window": window, "stacking": "union"}, sw],
        },
        "weights": weights,
    }


def _swtat_segmentation(profile: str, seed: int, window: int, weights: list[float]) -> dict[str, Any]:
    """:func:`swtat_recipe`'s segmentation task: the shipped segmenter's stride-4 decoder map (16x16) -> the small one's."""
    epochs, batch = by_profile(profile, smoke=2, cpu=10, gpu=38), by_profile(profile, smoke=64, cpu=8, gpu=64)
    tat = {"ce_weight": 1.0, "img_size": 64}
    sw, pm = {"sw_tat_weight": 1.0}, {"sw_tat_weight": 1.0, "pm_tat_weight": 0.5}
    return {
        "data": {"name": "shapes", "img_size": 64, "target": "mask",
                 "n_train": by_profile(profile, smoke=100, cpu=500, gpu=8000),
                 "n_test": by_profile(profile, smoke=200, cpu=500, gpu=500),
                 "n_val": by_profile(profile, smoke=100, cpu=250, gpu=500), "seed": seed},
        "teacher": "shapes_seg", "student": "seg_cnn_small",
        "fit": {"epochs": epochs, "lr": 2e-3, "warmup_epochs": min(1.0, epochs / 4), "batch_size": batch},
        "baselines": {"no KD": ["supervised", {}]},
        "feature_rows": {
            "TaT patch groups + anchors": ["tat_patch_group", {**tat, "patches": 4, "group_size": 4, "anchors": 4},
                                           {"patch_tat_weight": 1.0, "anchor_tat_weight": 0.5}],
            "TaT (global)": ["tat_patch_group", {**tat, "patches": 1, "group_size": 1, "anchors": 1},
                             {"patch_tat_weight": 1.0, "anchor_tat_weight": 0.0}],
            "windows, no shift": ["swtat_seg", {**tat, "window": window, "shift": 0, "pm_levels": 0}, sw],
            "SW-TaT": ["swtat_seg", {**tat, "window": window, "pm_levels": 0}, sw],
            "SW-TaT union": ["swtat_seg", {**tat, "window": window, "stacking": "union", "pm_levels": 0}, sw],
            "SW-TaT + PM": ["swtat_seg", {**tat, "window": window, "pm_levels": 1}, pm],
        },
        "weights": weights,
        "shift_ablation": ["no KD", "windows, no shift", "SW-TaT", "SW-TaT union"],
    }


def weighted_rows(rows: Mapping[str, Sequence[Any]], weight: float, *, suffix: bool = True
                  ) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{label: (method, keywords)}`` for :func:`~kdlab.experiments.method_runs` from a recipe's ``feature_rows``
    (``label: [method, keywords, weight scales]``): each scaled keyword set to scale x ``weight``; the label gets
    `` @ weight`` when ``suffix``."""
    weight = check_number("weight", weight, low=0.0)
    out = {}
    for label, (method, keywords, scales) in rows.items():
        name = f"{label} @ {weight:g}" if suffix else label
        out[name] = (method, {**keywords, **{key: scale * weight for key, scale in scales.items()}})
    return out


DISDEPTH_ROWS = {"no KD": "baseline", "+ LGConv": "lgconv", "+ feature-MSE KD": "feature_mse",
                 "+ ghost-decoder KD": "ghost", "+ ghost-decoder KD + LAM": "lam", "DisDepth": "disdepth"}
"""Notebook 05's rows, label -> :func:`~kdlab.methods.disdepth_ablation` name: the no-KD student, each component
added alone (LGConv; feature KD with FAM trained by the KD loss; KD on features acclimated through the ghost
decoder; the same with LAM's weights), and the full method."""

DISDEPTH_LAM_TOY_ROWS = {"uniform weights (+ ghost-decoder KD)": "ghost",
                         "LAM's weights (+ ghost-decoder KD + LAM)": "lam"}
"""Notebook 05 §6.1's rows behind the partly noisy teacher: KD with uniform weights, then with LAM's."""

DISDEPTH_STEPS = (("LGConv", "+ LGConv", "no KD"), ("feature KD", "+ feature-MSE KD", "no KD"),
                  ("acclimation (ghost decoder)", "+ ghost-decoder KD", "+ feature-MSE KD"),
                  ("LAM's weights", "+ ghost-decoder KD + LAM", "+ ghost-decoder KD"),
                  ("LGConv, under KD", "DisDepth", "+ ghost-decoder KD + LAM"))
"""What each component adds: (component, the row with it, the row without it), paired on the same seeds."""


def disdepth_recipe(profile: str, *, seed: int = 0, attentive_kd_weight: float = 1.0, kd_warmup_epochs: float = 2.0,
                    n_seeds: int | None = None) -> dict[str, Any]:
    """DisDepth (05): the shipped Swin depth teacher -> the CNN depth student, :data:`DISDEPTH_ROWS` (``rows``) on
    the same budget and seeds, each component isolated; ``lam_toy``: the rows with uniform and with LAM's weights
    again behind a teacher whose features are noise on the right ``noisy_fraction`` of every map
    (:class:`~kdlab.teachers.PartlyNoisy`), the setting where weighting pixels must matter; ``erf``: how many
    validation images the effective receptive fields average over; ``weight_sweep``: every KD row at each of
    ``weights`` (lambda), one lambda chosen for all of them on the validation split (trained live where ``live``,
    else shown from the reference run, which trains it).

    ``attentive_kd_weight`` is lambda, ``kd_warmup_epochs`` the warm-up W in epochs before KD starts (capped at
    half the epochs; ``disdepth.warmup_fraction`` is the resulting fraction of training). ``disdepth`` is the
    keywords of :class:`~kdlab.methods.DisDepth` (:func:`~kdlab.methods.disdepth_ablation` passes them on).
    ``n_seeds`` defaults to 1 / 3 / 5. Measured on one CPU thread, per 64 px training image and epoch: about
    1.7 / 3.6 / 3.4 / 6.1 / 7.2 / 9.1 ms for the six rows (the teacher runs in the last four, the ghost decoder
    in the last three), 31 ms in all, so the ``cpu`` grid (500 images x 12 epochs x 3 seeds) and the toy's two
    rows train in about 13 minutes of one thread, 7 on two workers (409 s measured). Smoke halves the student's
    widths (8/16/24/48: timm rounds stage widths to multiples of 8) and uses 16 bins (spec 3.2).
    """
    profile = resolve_profile(profile)
    n_seeds = n_seeds or by_profile(profile, smoke=1, cpu=3, gpu=5)
    knobs = {"profile": profile, "seed": seed, "attentive_kd_weight": attentive_kd_weight,
             "kd_warmup_epochs": kd_warmup_epochs, "n_seeds": n_seeds}
    epochs = by_profile(profile, smoke=2, cpu=12, gpu=20)
    warmup_epochs = min(float(kd_warmup_epochs), epochs / 2)
    return {
        "knobs": knobs,
        "data": {"name": "scenes", "n_train": by_profile(profile, smoke=128, cpu=500, gpu=4000),
                 "n_test": by_profile(profile, smoke=32, cpu=300, gpu=500),
                 "n_val": by_profile(profile, smoke=32, cpu=150, gpu=500), "img_size": 64, "seed": seed},
        "seeds": [seed + i for i in range(n_seeds)],
        "teacher": "scenes_depth_swin",
        "depth_range": [0.5, 10.0],
        "rows": dict(DISDEPTH_ROWS),
        "student": {
            "model": by_profile(profile, smoke={"widths": [8, 16, 24, 48], "n_bins": 16}, cpu={}, gpu={}),
            "fit": {"epochs": epochs, "lr": 2e-3, "warmup_epochs": min(1.0, epochs / 4),
                    "batch_size": by_profile(profile, smoke=16, cpu=32, gpu=32), "weight_decay": 1e-2},
        },
        "disdepth": {"attentive_kd_weight": attentive_kd_weight,
                     "warmup_fraction": epoch_progress(warmup_epochs, epochs),
                     "lgconv_heads": 4, "lgconv_reduction": 4, "attention_dim": 32},
        "weight_sweep": {"weights": [0.1, 0.3, 1.0], "rows": [label for label, name in DISDEPTH_ROWS.items()
                                                               if name not in ("baseline", "lgconv")],
                         "live": by_profile(profile, smoke=False, cpu=False, gpu=True)},
        "lam_toy": {"noisy_fraction": 0.5, "noise_seed": 7,
                    "rows": dict(DISDEPTH_LAM_TOY_ROWS)},
        "erf": {"n_images": by_profile(profile, smoke=8, cpu=32, gpu=64)},
        "n_show": by_profile(profile, smoke=2, cpu=3, gpu=3),
        "n_probe": by_profile(profile, smoke=32, cpu=128, gpu=256),
        "retrain": {"n_train": by_profile(profile, smoke=32, cpu=300, gpu=1000),
                    "epochs": by_profile(profile, smoke=1, cpu=3, gpu=6)},
    }


def cafd_recipe(profile: str, *, seed: int = 0, facial_scale: float = 1.0, pif_ratio: float = 3.0,
                num_prompts: int = 4, prompt_init: str = "token_mean", attn_weight: float = 10.0,
                feat_weight: float = 1.0, flip_test: bool = False, n_seeds: int | None = None) -> dict[str, Any]:
    """CAFD (04): the shipped Swin face teacher -> a MobileFaceNet-style CNN student, seven rows on the same budget
    and seeds (:data:`FACE_ROWS`, built by :func:`face_rows`): no KD, embedding KD, feature MSE, CAFD without APT
    (``num_prompts = 0``), CAFD without the facial distance (``facial_scale = 0``), full CAFD, and full CAFD with
    VPT's uniform prompt init (trained live in ``smoke`` and by the reference run, shown from it in ``cpu``:
    ``live``). Students learn ``n_train_ids`` identities of the world ``seed`` and are scored by verification on
    pairs of ``n_test_ids`` other identities (the teacher's identities come from world 1000, so no identity is
    shared). The two classic KD rows also run from ``homologous_teacher``, a CNN face teacher of the same data and
    budget: the homologous (CNN -> CNN) against cross-architecture (Swin -> CNN) check. ``structure_toy``: faces whose identities differ only in landmark geometry (``geometry_only``, another identity
    world, :data:`FACE_TOY_LOOK`), where no KD and CAFD with the facial distance, the Euclidean distance and no position encoding are
    compared (``live`` likewise). ``regime_study``: the changes notebook 04 §6.3 tries one at a time
    (:func:`face_regime` applies one), the rows each trains, and the changes a profile trains live (the reference
    run trains all; §6.4 retrains every row in the change chosen on validation).

    ``facial_scale`` ($\\kappa$, the paper's $\\gamma_{face}$), ``pif_ratio``, ``num_prompts``, ``prompt_init`` and the
    loss weights ``attn_weight`` / ``feat_weight`` ($\\lambda_{attn}$ / $\\lambda_{feat}$) are CAFD's knobs (spec §3.2
    defaults, but ``prompt_init``: ``"token_mean"``, because VPT's ``"uniform"`` costs the frozen teacher about 8
    points of verification before any training, notebook 04 §5.1); ``flip_test`` scores verification on the
    embedding of each face plus its mirror's (insightface's flip test); ``n_seeds`` defaults to
    1 / 3 / 5. The method blocks ``margin_supervised``, ``embedding_kd`` / ``feature_kd`` and ``cafd`` are the
    keywords of :class:`~kdlab.methods.MarginSupervised`, :class:`~kdlab.methods.FaceKD` and
    :class:`~kdlab.methods.CAFD` (besides ``num_classes``, the training identities). ``cafd.acclimation`` is
    phase A (teacher side only) as a fraction of training: one epoch. Measured on one CPU thread per 64 px
    training image: about 2.7 ms without KD, 4 ms with the teacher's forward and 5.8 ms for CAFD (prompts, URFM
    and MSA). Measured on 2 cores with 3 seeds (two one-thread workers, validation after every epoch): at 40
    identities x 20 faces x 10 epochs the six rows trained in 511 s and the two homologous runs in 200 s, the
    notebook in 815 s; hence 16 faces per identity and 8 epochs in ``cpu``. Smoke halves the student.
    """
    profile = resolve_profile(profile)
    n_seeds = n_seeds or by_profile(profile, smoke=1, cpu=3, gpu=5)
    check_choice("prompt_init", prompt_init, PROMPT_INITS)
    knobs = {"profile": profile, "seed": seed, "facial_scale": facial_scale, "pif_ratio": pif_ratio,
             "num_prompts": num_prompts, "prompt_init": prompt_init, "attn_weight": attn_weight,
             "feat_weight": feat_weight, "flip_test": bool(flip_test), "n_seeds": n_seeds}
    epochs = by_profile(profile, smoke=2, cpu=8, gpu=20)
    return {
        "knobs": knobs,
        "data": _face_data(profile, seed),
        "seeds": [seed + i for i in range(n_seeds)],
        "teacher": "faces_swin",
        "homologous_teacher": "faces_cnn",
        "student": {
            "model": "face_cnn",
            "model_kwargs": by_profile(profile, smoke={"stem_width": 16, "widths": [24, 32, 48], "num_features": 64},
                                       cpu={}, gpu={}),
            "fit": _face_fit(epochs),
        },
        **_face_method_blocks(knobs, epochs),
        "regime_study": _face_regime_study(profile, epochs, by_profile(profile, smoke=6, cpu=16, gpu=40)),
        "structure_toy": {"data": {**_face_data(profile, seed + 500), "geometry_only": True, **FACE_TOY_LOOK}},
        "live": {"uniform prompt init": profile == "smoke", "structure toy": profile == "smoke"},
        "verification": {"flip_test": bool(flip_test)},
        "n_show": by_profile(profile, smoke=3, cpu=4, gpu=4),
        "n_probe": by_profile(profile, smoke=64, cpu=256, gpu=512),
        "retrain": {"n_train_ids": by_profile(profile, smoke=10, cpu=30, gpu=50),
                    "epochs": by_profile(profile, smoke=1, cpu=6, gpu=8)},
    }


FACE_TOY_LOOK = {"geometry_gain": 3.0, "rotation": 0.0, "scale": 0.0, "shift": 0.0, "expression": 0.0}
"""The structure toy's faces besides ``geometry_only``: landmark moves tripled and no pose or expression, because
at the generator's own ranges (eyes move by at most 1.4 px) the default pose jitter hides the geometry from
teacher and student alike (notebook 04 §6.2 measures the teacher on all three looks)."""


def _face_data(profile: str, seed: int) -> dict[str, Any]:
    """The face splits of :func:`cafd_recipe` (``load_splits`` keywords) for identity world ``seed``."""
    return {"name": "faces", "n_train_ids": by_profile(profile, smoke=20, cpu=40, gpu=100),
            "per_id": by_profile(profile, smoke=6, cpu=16, gpu=40),
            "n_test_ids": by_profile(profile, smoke=20, cpu=50, gpu=50), "test_per_id": 10,
            "n_pairs": by_profile(profile, smoke=300, cpu=3000, gpu=3000), "img_size": 64,
            "n_val": by_profile(profile, smoke=10, cpu=50, gpu=50), "seed": seed}


def _face_fit(epochs: int) -> dict[str, Any]:
    """The face students' ``fit`` keywords for ``epochs`` epochs (AdamW 2e-3, one warm-up epoch at most)."""
    return {"epochs": epochs, "lr": 2e-3, "warmup_epochs": min(1.0, epochs / 4), "batch_size": 64}


FACE_HALF_STUDENT = {"stem_width": 16, "widths": [24, 32, 48], "num_features": 64}
"""``face_cnn`` keywords of the half-width student (smoke's student; a change of notebook 04's regime study)."""

FACE_HARD_VARIATION = {"rotation": 20.0, "scale": 0.12, "shift": 0.06, "brightness": 0.45, "gradient": 0.8,
                       "noise": 0.06, "occlusion": 0.3}
""":class:`~kdlab.data.faces.FaceStyle` overrides of the regime study's "harder variation" (pose, light, occluders)."""

FACE_STUDY_ROWS = ("no KD", "embedding KD", "CAFD")
"""The rows every change of notebook 04's regime study trains (no KD, the plain KD baseline, the method)."""


def _face_regime_study(profile: str, epochs: int, per_id: int, few: int = 4) -> dict[str, Any]:
    """Notebook 04 §6.3: the changes tried one at a time, each a partial recipe merged by :func:`face_regime`:
    ``data`` (``load_splits`` keywords), ``student`` (``face_cnn`` keywords), ``fit`` and ``kd_scale`` (every KD
    weight times it). ``live``: the changes a profile trains itself (the reference run trains all)."""
    changes = {
        "as in section 6": {},
        "twice the epochs": {"fit": _face_fit(2 * epochs)},
        f"{few} faces per identity, same steps": {"data": {"per_id": few}, "fit": _face_fit(round(epochs * per_id / few))},
        "half-width student": {"student": dict(FACE_HALF_STUDENT)},
        "harder variation": {"data": dict(FACE_HARD_VARIATION)},
        **{f"KD weights × {k}": {"kd_scale": float(k)} for k in (4, 16, 64)},
    }
    live = by_profile(profile, smoke=["as in section 6", "KD weights × 16"], cpu=[], gpu=[])
    return {"changes": changes, "rows": list(FACE_STUDY_ROWS), "live": live}


FACE_KD_WEIGHTS = {"embedding_kd": ("face_kd_weight",), "feature_kd": ("face_kd_weight",),
                   "cafd": ("attn_weight", "feat_weight")}
"""The student-side KD weights of :func:`cafd_recipe`'s method blocks (CAFD's teacher-side margin weight is not one)."""


def face_regime(recipe: Mapping[str, Any], change: str) -> dict[str, Any]:
    """``recipe`` (a :func:`cafd_recipe`) with one change of its ``regime_study`` applied: its ``data`` and
    ``student.fit`` updated, ``student.model_kwargs`` replaced when the change names a student, and every KD weight
    (:data:`FACE_KD_WEIGHTS`) multiplied by ``kd_scale``. The seeds, teachers and other method keywords stay."""
    changes = recipe["regime_study"]["changes"]
    check_choice("change", change, list(changes))
    spec = changes[change]
    out = {**recipe, "data": {**recipe["data"], **spec.get("data", {})},
           "student": {**recipe["student"], "fit": {**recipe["student"]["fit"], **spec.get("fit", {})}}}
    if "student" in spec:
        out["student"]["model_kwargs"] = dict(spec["student"])
    scale = spec.get("kd_scale", 1.0)
    for block, keys in FACE_KD_WEIGHTS.items():
        out[block] = {**recipe[block], **{key: recipe[block][key] * scale for key in keys}}
    return out


FACE_ROWS = {
    "no KD": ("margin_supervised", "margin_supervised", {}),
    "embedding KD": ("face_kd", "embedding_kd", {}),
    "feature MSE": ("face_kd", "feature_kd", {}),
    "CAFD without APT": ("cafd", "cafd", {"num_prompts": 0}),
    "CAFD without facial distance": ("cafd", "cafd", {"facial_scale": 0.0}),
    "CAFD": ("cafd", "cafd", {}),
    "CAFD, uniform prompt init (VPT)": ("cafd", "cafd", {"prompt_init": "uniform"}),
    "CAFD, facial distance (κ = 1)": ("cafd", "cafd", {"facial_scale": 1.0}),  # the structure toy's rows (§6.2)
    "CAFD, Euclidean distance (κ = 0)": ("cafd", "cafd", {"facial_scale": 0.0}),
    "CAFD, no position encoding": ("cafd", "cafd", {"position_encoding": False}),
}
"""Notebook 04's rows: label -> (method, the :func:`cafd_recipe` block it reads, keywords that replace the block's)."""


def face_rows(recipe: Mapping[str, Any], labels: Sequence[str], num_classes: int
              ) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{label: (method, keywords)}`` for :func:`~kdlab.experiments.method_runs`: the :data:`FACE_ROWS` named by
    ``labels`` (in that order), built from ``recipe``'s method blocks for ``num_classes`` training identities."""
    rows = {}
    for label in labels:
        method, block, replace = FACE_ROWS[check_choice("row", label, list(FACE_ROWS))]
        rows[label] = (method, {**recipe[block], **replace, "num_classes": int(num_classes)})
    return rows


def _face_method_blocks(knobs: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """:func:`cafd_recipe`'s method blocks: the constructor keywords of each row's distiller (CosFace s 16, m 0.2)."""
    margin = {"margin": "cosface", "s": 16.0, "m": 0.2}
    return {
        "margin_supervised": {**margin},
        "embedding_kd": {"kind": "embedding", "face_kd_weight": 1.0, **margin},
        "feature_kd": {"kind": "feature", "face_kd_weight": 1.0, **margin},
        "cafd": {"num_prompts": knobs["num_prompts"], "grid": 4, "dim": 64, "num_heads": 4,
                 "facial_scale": knobs["facial_scale"], "pif_ratio": knobs["pif_ratio"], "anchor": "nose",
                 "attn_weight": knobs["attn_weight"], "feat_weight": knobs["feat_weight"], "teacher_margin_weight": 1.0,
                 "acclimation": round(1 / epochs, 4), "prompt_init": knobs["prompt_init"], **margin},
    }


RECIPES = {"00_primer": primer_recipe, "01_ofa": ofa_recipe, "02_cskd": cskd_recipe,
           "03_swtat": swtat_recipe, "04_cafd_face": cafd_recipe, "05_disdepth": disdepth_recipe}
"""Notebook name -> recipe function; ``RECIPES[name](**recipe["knobs"])`` rebuilds any recipe."""

REFERENCE = {
    "00_primer": {"profile": "cpu", "budgets": list(PRIMER_BUDGETS)},
    "01_ofa": {"profile": "cpu"},
    "02_cskd": {"profile": "cpu"},
    "03_swtat": {"profile": "cpu"},
    "04_cafd_face": {"profile": "cpu"},
    "05_disdepth": {"profile": "cpu"},
}
"""The knobs of each notebook's reference run (``python -m kdlab reference NAME``). No GPU was lent while these
notebooks were built, so each reference is the ``cpu`` recipe itself, 3 seeds: the notebooks show a live ``cpu`` run
next to its recorded twin, and the README's ``cpu`` rows are these files. Where the live run does a subset of a
sweep, the reference does all of it (OFA: the branch / weight sweep and the class-token readout, which the live
``cpu`` run shows from here; the primer: all five label budgets, the live run the smallest)."""


def reference_recipe(notebook: str) -> dict[str, Any]:
    """The recipe of ``notebook``'s reference run."""
    if notebook not in REFERENCE:
        raise KeyError(f"no reference run declared for {notebook!r}; known: {', '.join(REFERENCE)}")
    return RECIPES[notebook](**REFERENCE[notebook])
