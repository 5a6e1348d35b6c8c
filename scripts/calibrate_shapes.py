#!/usr/bin/env python
"""Calibrate the shapes data against the `cpu` profile: CNN vs ViT vs MLP-Mixer students, Hinton KD from
a CNN teacher, per-run wall time. Prints a markdown table (and optionally writes JSON).

Reproduce the table in data/README.md (about 12 minutes on 2 free CPU cores, teachers included)::

    python scripts/calibrate_shapes.py --teachers cnn,vit,swin --runs cnn,vit,vit_kd,mixer,mixer_kd --seeds 0 1

Teachers are trained first (cached under ``--cache`` by recipe hash, so a second call reuses them);
students then train one at a time with ``kdlab.train.fit`` and the test split as validation set.
``--set`` changes any recipe value for a search, e.g. ``--set vit.lr=2e-3 --set kd.temperature=2``.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ----------------------------------------------------------------------------------------------------
# The calibrated recipes (what the notebooks' `cpu` profile uses). `model` = (registry name, overrides).
DATA = dict(difficulty=0.08, img_size=32, n_train=2000, n_test=2000, seed=0)
TRAIN = dict(batch_size=64, weight_decay=0.05, augment=True, padding=4)
VIT_STUDENT = dict(patch_size=8, embed_dim=128, depth=4, num_heads=4, mlp_ratio=2.0)
STUDENTS = {
    "cnn": dict(model=("cnn_small", {}), epochs=16, lr=2e-3, warmup_epochs=1.0),
    "vit": dict(model=("vit", VIT_STUDENT), epochs=20, lr=1e-3, warmup_epochs=2.0),
    "mixer": dict(model=("mixer", dict(patch_size=8, embed_dim=128, num_blocks=4)),
                  epochs=12, lr=2e-3, warmup_epochs=2.0),
}
# teachers: `n_train` images from the same training stream (shapes_splits(n_train, n_test, seed)[0])
TEACHERS = {
    "cnn": dict(model=("cnn_small", {}), n_train=2000, epochs=16, lr=2e-3, warmup_epochs=1.0),
    "vit": dict(model=("vit", VIT_STUDENT), n_train=8000, epochs=30, lr=1e-3, warmup_epochs=2.0),
    "swin": dict(model=("swin", {}), n_train=8000, epochs=15, lr=1e-3, warmup_epochs=2.0),
}
KD = dict(teacher="cnn", temperature=2.0, kd_weight=0.5)
# ----------------------------------------------------------------------------------------------------

RECIPE = dict(data=DATA, train=TRAIN, students=STUDENTS, teachers=TEACHERS, kd=KD)


def _apply_set(recipe: dict, assignments: list[str]) -> dict:
    """``path.to.key=value`` (value parsed as JSON when possible) into a deep copy of ``recipe``."""
    recipe = copy.deepcopy(recipe)
    for item in assignments:
        key, _, raw = item.partition("=")
        if not _:
            raise SystemExit(f"--set needs key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parts = key.split(".")
        node = recipe
        aliases = {"vit": "students.vit", "mixer": "students.mixer", "cnn": "students.cnn"}
        if parts[0] in aliases:
            parts = aliases[parts[0]].split(".") + parts[1:]
        for part in parts[:-1]:
            if part not in node:
                raise SystemExit(f"--set: unknown key {key!r}")
            node = node[part]
        if parts[-1] == "model" or (len(parts) >= 2 and parts[-2] == "model"):
            raise SystemExit("--set: change model overrides with <group>.<name>.overrides.<key>=value")
        if parts[-1] == "overrides":
            raise SystemExit("--set: use <group>.<name>.overrides.<key>=value")
        node[parts[-1]] = value
    return recipe


def _apply_model_overrides(recipe: dict, assignments: list[str]) -> dict:
    """``students.vit.overrides.patch_size=8`` style keys are split out of --set and handled here."""
    for item in assignments:
        key, _, raw = item.partition("=")
        parts = key.split(".")
        group = {"vit": ["students", "vit"], "mixer": ["students", "mixer"], "cnn": ["students", "cnn"]}
        if parts[0] in group:
            parts = group[parts[0]] + parts[1:]
        name, kwargs = recipe[parts[0]][parts[1]]["model"]
        kwargs = dict(kwargs)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if parts[3] == "name":
            name = value
        else:
            kwargs[parts[3]] = tuple(value) if isinstance(value, list) else value
        recipe[parts[0]][parts[1]]["model"] = (name, kwargs)
    return recipe


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teachers", default="cnn,vit,swin",
                        help="teachers to train/evaluate (comma list of: cnn, vit, swin; '' for none)")
    parser.add_argument("--runs", default="cnn,vit,vit_kd,mixer,mixer_kd",
                        help="student runs (comma list of: cnn, vit, mixer, and <student>_kd)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds for the ViT runs")
    parser.add_argument("--other-seeds", type=int, nargs="+", default=[0],
                        help="seeds for the CNN and Mixer runs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a recipe value (e.g. vit.lr=3e-3, kd.kd_weight=0.7, data.n_train=3000, "
                             "vit.overrides.patch_size=8)")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "kdlab" / "calibration"),
                        help="folder for the trained teachers (by recipe hash)")
    parser.add_argument("--json", default=None, help="also write the rows (and the recipe) to this JSON file")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--show-recipe", action="store_true", help="print the effective recipe and exit")
    args = parser.parse_args(argv)

    model_sets = [s for s in args.set if ".overrides." in s]
    recipe = _apply_set(RECIPE, [s for s in args.set if ".overrides." not in s])
    recipe = _apply_model_overrides(recipe, model_sets)
    if args.show_recipe:
        print(json.dumps(recipe, indent=2, default=list))
        return 0

    torch.set_num_threads(args.threads)
    from safetensors.torch import load_file, save_file

    from kdlab.config import seed_everything
    from kdlab.data import crop_flip, shapes_splits
    from kdlab.methods import KD as KDistiller
    from kdlab.methods import Supervised
    from kdlab.models import count_parameters, create
    from kdlab.train import evaluate, fit

    data, train_cfg = recipe["data"], recipe["train"]
    t0 = time.perf_counter()

    def splits(n_train: int):
        return shapes_splits(n_train, data["n_test"], img_size=data["img_size"], difficulty=data["difficulty"],
                             seed=data["seed"])

    train_set, test = splits(data["n_train"])
    train, testset = (train_set.x, train_set.y), (test.x, test.y)
    gen_s = time.perf_counter() - t0
    augment = crop_flip(padding=train_cfg["padding"], p_flip=0.5) if train_cfg["augment"] else None
    print(f"data: {data['n_train']} train + {data['n_test']} test images in {gen_s:.1f} s "
          f"(difficulty {data['difficulty']}, {data['img_size']}px)", flush=True)

    rows: list[dict] = []

    def train_one(cfg: dict, distiller_fn, train_data, seed: int, label: str, setting: str) -> tuple[torch.nn.Module, dict]:
        name, overrides = cfg["model"]
        seed_everything(seed)
        model = create(name, num_classes=10, img_size=data["img_size"], **overrides)
        distiller = distiller_fn(model)
        hist = fit(distiller, train_data, testset, epochs=cfg["epochs"], lr=cfg["lr"],
                   batch_size=train_cfg["batch_size"], warmup_epochs=cfg["warmup_epochs"],
                   weight_decay=train_cfg["weight_decay"], augment=augment, seed=seed, progress=False)
        row = dict(model=label, setting=setting, params_k=round(count_parameters(model) / 1e3),
                   epochs=cfg["epochs"], n_train=len(train_data[0]), seed=seed,
                   wall_s=round(hist.wall_time_s, 1), acc=round(100 * hist.last("val/acc"), 1),
                   best=round(100 * hist.best("val/acc"), 1),
                   train_loss=round(hist.last("train/loss"), 3),
                   curve=[round(100 * a, 1) for a in hist.series("val/acc")])
        rows.append(row)
        print(json.dumps(row), flush=True)
        return model, row

    teachers: dict[str, torch.nn.Module] = {}
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    needed = [t for t in args.teachers.split(",") if t]
    if any(r.endswith("_kd") for r in args.runs.split(",")) and recipe["kd"]["teacher"] not in needed:
        needed.append(recipe["kd"]["teacher"])
    for tname in needed:
        cfg = recipe["teachers"][tname]
        key = _hash(dict(data=data, train=train_cfg, teacher=cfg, version=1))
        path = cache / f"teacher-{tname}-{key}.safetensors"
        name, overrides = cfg["model"]
        if path.exists():
            model = create(name, num_classes=10, img_size=data["img_size"], **overrides)
            model.load_state_dict(load_file(str(path)))
            acc = 100 * evaluate(model, testset)["acc"]
            meta = json.loads(path.with_suffix(".json").read_text())
            rows.append(dict(model=f"{tname} teacher ({name})", setting="cached", params_k=meta["params_k"],
                             epochs=cfg["epochs"], n_train=cfg["n_train"], seed=0, wall_s=meta["wall_s"],
                             acc=round(acc, 1)))
            print(f"teacher {tname}: loaded {path.name}, test acc {acc:.1f} %", flush=True)
        else:
            tset = splits(cfg["n_train"])[0]
            model, row = train_one(cfg, Supervised, (tset.x, tset.y), 0, f"{tname} teacher ({name})", "scratch")
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
            path.with_suffix(".json").write_text(json.dumps(dict(row, recipe=cfg), default=list))
        teachers[tname] = model.eval()

    for run in [r for r in args.runs.split(",") if r]:
        student = run.removesuffix("_kd")
        if student not in recipe["students"]:
            raise SystemExit(f"unknown run {run!r}")
        cfg = recipe["students"][student]
        seeds = args.seeds if student == "vit" else args.other_seeds
        for seed in seeds:
            if run.endswith("_kd"):
                kd = recipe["kd"]
                teacher = teachers[kd["teacher"]]
                fn = lambda m: KDistiller(m, teacher, temperature=kd["temperature"], kd_weight=kd["kd_weight"])  # noqa: E731
                setting = f"KD from {kd['teacher']} teacher (T={kd['temperature']}, kd_weight={kd['kd_weight']})"
            else:
                fn, setting = Supervised, "scratch"
            train_one(cfg, fn, train, seed, student, setting)

    print()
    print(f"difficulty={data['difficulty']}, n_test={data['n_test']}, img {data['img_size']}px, "
          f"batch {train_cfg['batch_size']}, augment={train_cfg['augment']}, threads={args.threads}")
    print("| model | setting | params | epochs | n_train | seed | wall s | test acc % |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['setting']} | {r['params_k']} k | {r['epochs']} | {r['n_train']} | {r['seed']} "
              f"| {r['wall_s']} | {r['acc']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(recipe=recipe, rows=rows), indent=1, default=list))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
