r"""``python -m kdlab train``: one method at real scale from a config file, on one process or data-parallel with
``torchrun``, checkpointed every epoch and on Ctrl-C, resumable.

A config (TOML, or YAML with PyYAML) has the sections of a notebook recipe (:data:`CONFIG_KEYS`)::

    [data]     name = "cifar100", root = "~/data"   (or shapes / digits / scenes / cifar10 / depth-folder), n_val
    [teacher]  shipped = "shapes_cnn"  — or — file = "teacher.safetensors", model = "resnet18", options = {...}
    [student]  model = "vit_tiny", options = {...}
    [method]   name = "kd", then the method's constructor keywords, passed straight (temperature, kd_weight, ...)
    [train]    epochs, batch_size (the global batch), lr, optimizer, weight_decay, warmup_epochs, grad_clip, seed
    [output]   dir

Everything is checked before any training (:func:`check_config`, :func:`build`): unknown sections or keys, an
unknown method or model, a method keyword its constructor does not take, a teacher whose outputs disagree with the
data's classes — each a ``ValueError`` naming the problem.

**Data parallel.** Under ``torchrun --nproc-per-node N``, every rank builds the same run, draws the same global batch
order and trains on its contiguous 1/N of each global batch inside ``DistributedDataParallel`` (NCCL on GPUs, gloo
on CPUs), whose gradient average equals the gradient of the global batch's mean loss when the shards have equal
sizes; the loss terms are averaged across ranks, validation runs on rank 0 and only rank 0 writes. What can differ
from one process: batch statistics of BatchNorm (per shard), augmentation and dropout draws (per rank), the last
partial batch's weighting, and floating-point summation order.

**Checkpoints.** After every epoch and on Ctrl-C the run writes ``checkpoint/weights.safetensors`` (the distiller's
state) and ``checkpoint/state.safetensors`` + ``checkpoint/state.json`` (optimiser tensors, scheduler, the batch
order's and augmentation's generators, the global RNG, the epoch and the step within it); ``--resume`` continues
exactly there — a run stopped and resumed ends with the same weights as one that was not. A checkpoint whose config
differs from the run's, or whose files are damaged, is refused with the reason. The output folder also holds the
history (``history.jsonl``, ``history.csv``), the resolved ``config.json`` and ``final_metrics.json`` (the test set,
read once, after the last epoch). The teacher-output memo of the notebooks (``KDLAB_TEACHER_CACHE_MB``) works here
too: it lives inside each method's forward.
"""
from __future__ import annotations

import csv
import hashlib
import inspect
import json
import os
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .checks import check_choice, check_int
from .config import pick_device, seed_everything
from .data import DEPTH_DATASETS, ImageSet, load_cifar, load_depth_folder, load_splits
from .methods import METHODS, Distiller
from .metrics import depth_metrics
from .models import create, list_models
from .record import atomic_write_json, to_jsonable
from .teachers import load_teacher, read_manifest
from .train import (
    History, TrainingState, batch_indices, classification_metrics, evaluate, prepare_training, train_step,
)

CONFIG_KEYS: dict[str, tuple[str, ...] | None] = {
    "data": ("name", "root", "test_root", "n_val", "options"),
    "teacher": ("shipped", "file", "model", "options"),
    "student": ("model", "options"),
    "method": None,  # "name" and the method's constructor keywords (checked against its signature)
    "train": ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "warmup_epochs", "grad_clip", "seed",
              "device"),
    "output": ("dir",),
}
"""The sections of a config and the keys each may hold."""
TRAIN_DEFAULTS = {"epochs": 10, "batch_size": 64, "lr": 2e-3, "optimizer": "adamw", "weight_decay": 0.05,
                  "warmup_epochs": 1.0, "grad_clip": None, "seed": 0, "device": "auto"}
DATA_SOURCES = ("shapes", "digits", "scenes", "cifar10", "cifar100", "depth-folder")
"""``data.name``: a built-in procedural set, a CIFAR folder (``root``) or an NYU-style RGB-D folder (``root``,
``test_root``)."""


# ---------------------------------------------------------------------------------------------- the config
def read_config(path: str | Path) -> dict[str, Any]:
    """The raw config of a ``.toml`` file (or ``.yaml`` / ``.yml`` with PyYAML installed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file {path}")
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(path.read_text(encoding="utf-8"))
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as error:
            raise ValueError(f"{path} is YAML: install PyYAML, or write the config as TOML") from error
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of sections, got {type(loaded).__name__}")
        return loaded
    raise ValueError(f"config {path}: use a .toml, .yaml or .yml file")


def check_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The config with its defaults filled in, or one ``ValueError`` listing every problem found: unknown sections
    and keys, a missing ``data.name`` / ``student.model`` / ``method.name``, an unknown data source, method or model,
    a method keyword its constructor does not take, a teacher missing where the method needs one."""
    problems = [f"unknown section [{name}] (sections: {', '.join(CONFIG_KEYS)})" for name in raw
                if name not in CONFIG_KEYS]
    for section, keys in CONFIG_KEYS.items():
        block = raw.get(section, {})
        if not isinstance(block, Mapping):
            problems.append(f"[{section}] must be a table of keys, got {type(block).__name__}")
        elif keys is not None:
            problems += [f"[{section}] unknown key {key!r} (keys: {', '.join(keys)})"
                         for key in block if key not in keys]
    if problems:
        raise ValueError("config problems:\n  " + "\n  ".join(problems))
    config = {section: dict(raw.get(section, {})) for section in CONFIG_KEYS}
    config["train"] = {**TRAIN_DEFAULTS, **config["train"]}
    config["output"].setdefault("dir", "runs/kdlab")
    problems += _check_names(config)
    if problems:
        raise ValueError("config problems:\n  " + "\n  ".join(problems))
    return config


def _check_names(config: dict[str, Any]) -> list[str]:
    problems = []
    data, method, student = config["data"], config["method"], config["student"]
    if data.get("name") not in DATA_SOURCES:
        problems.append(f"[data] name must be one of {', '.join(DATA_SOURCES)}, got {data.get('name')!r}")
    elif data["name"] in ("cifar10", "cifar100", "depth-folder") and "root" not in data:
        problems.append(f"[data] {data['name']} needs root = the folder that holds it")
    if student.get("model") not in list_models(None):
        problems.append(f"[student] model must be a registered model (kdlab.models.list_models()), "
                        f"got {student.get('model')!r}")
    name = method.get("name")
    if name not in METHODS:
        return problems + [f"[method] name must be one of {', '.join(METHODS)}, got {name!r}"]
    parameters = inspect.signature(METHODS[name]).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    problems += [f"[method] {name} takes no keyword {key!r} (it takes: "
                 f"{', '.join(k for k in parameters if k not in ('student', 'teacher'))})"
                 for key in method if key != "name" and key not in parameters and not takes_any]
    teacher = config["teacher"]
    if "teacher" in parameters and not teacher:
        problems.append(f"[teacher] method {name} needs a teacher: shipped = one of {', '.join(read_manifest())}, "
                        "or file + model")
    if teacher and ("shipped" in teacher) == ("file" in teacher):
        problems.append("[teacher] give either shipped = <key> or file = <.safetensors> with model = <name>")
    elif "file" in teacher and "model" not in teacher:
        problems.append("[teacher] file needs model = the registered model the weights belong to")
    return problems


def config_digest(config: Mapping[str, Any]) -> str:
    """A short hash of everything that decides the trained weights (not the output folder): a checkpoint of another
    config is refused on resume."""
    decisive = {k: v for k, v in config.items() if k != "output"}
    return hashlib.sha256(json.dumps(to_jsonable(decisive), sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- the run's parts
@dataclass
class Run:
    """What :func:`build` makes of a config: the three splits, the distiller, how to score it and its task."""

    train: Any
    val: Any
    test: Any
    distiller: Distiller
    metrics: Any
    task: str
    epochs: int


def load_data(data: Mapping[str, Any], seed: int):
    """``(train, val, test)`` for the ``[data]`` section: built-in sets through ``load_splits`` (their own validation
    stream), folders with ``n_val`` images held out of the training folder (seeded)."""
    options, n_val = dict(data.get("options", {})), check_int("data.n_val", data.get("n_val", 500), low=1)
    if data["name"] in ("shapes", "digits", "scenes"):
        return tuple(load_splits(data["name"], n_val=n_val, **options))
    root = Path(data["root"]).expanduser()
    if data["name"] == "depth-folder":
        train = load_depth_folder(root, **options)
        test = load_depth_folder(Path(data.get("test_root", root)).expanduser(), **options)
    else:
        train, test = (load_cifar(root, data["name"], split, **options) for split in ("train", "test"))
    if n_val >= len(train):
        raise ValueError(f"[data] n_val = {n_val} leaves no training images of {len(train)}")
    val, train = train.split(n_val, seed=seed)
    return train, val, test


def load_config_teacher(teacher: Mapping[str, Any], num_classes: int | None, image_shape: tuple[int, ...]) -> nn.Module:
    """The ``[teacher]``: a shipped teacher by key (checked against the manifest), or a ``.safetensors`` file of a
    registered model (never a pickle), frozen and in eval mode."""
    if "shipped" in teacher:
        check_choice("[teacher] shipped", teacher["shipped"], list(read_manifest()))
        return load_teacher(teacher["shipped"], allow_retrain=False, progress=False)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(teacher["file"]).expanduser()
    if path.suffix != ".safetensors" or not path.is_file():
        raise ValueError(f"[teacher] file must be an existing .safetensors file, got {path}")
    model = create(teacher["model"], num_classes=num_classes, img_size=image_shape[-1], in_chans=image_shape[0],
                   **dict(teacher.get("options", {})))
    try:
        state = load_file(str(path))
    except SafetensorError as error:
        raise ValueError(f"[teacher] {path} is not a readable .safetensors file: {error}") from error
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"[teacher] {path.name} does not fit model {teacher['model']!r}: missing {list(missing)[:5]}, "
                         f"unexpected {list(unexpected)[:5]}")
    return model.eval().requires_grad_(False)


def check_teacher_classes(teacher: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """A classification teacher must predict the data's classes: its output width on two images is compared."""
    with torch.no_grad():
        out = teacher(x[:2])
    out = out[0] if isinstance(out, (tuple, list)) else out
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise ValueError(f"the teacher outputs {tuple(out.shape[1:])} per image but the data has {num_classes} "
                         "classes: pick a teacher trained on this data, or set its model's num_classes")


def build(config: Mapping[str, Any]) -> Run:
    """The data, teacher, student and distiller of a checked config, seeded by ``train.seed`` (every rank builds
    the same run)."""
    seed = config["train"]["seed"]
    seed_everything(seed)
    train, val, test = load_data(config["data"], seed)
    task = "depth" if config["data"]["name"] in (*DEPTH_DATASETS, "depth-folder") else "classification"
    num_classes = train.num_classes if isinstance(train, ImageSet) else None
    shape = tuple(train.x.shape[1:])
    method_block = {k: v for k, v in config["method"].items() if k != "name"}
    distiller_class = METHODS[config["method"]["name"]]
    teacher = load_config_teacher(config["teacher"], num_classes, shape) if config["teacher"] else None
    if teacher is not None and task == "classification":
        check_teacher_classes(teacher, val.x, num_classes)
    seed_everything(seed)
    student = create(config["student"]["model"], num_classes=num_classes, img_size=shape[-1], in_chans=shape[0],
                     **dict(config["student"].get("options", {})))
    if "teacher" in inspect.signature(distiller_class).parameters:
        distiller = distiller_class(student, teacher, **method_block)
    else:
        distiller = distiller_class(student, **method_block)
    metrics = depth_metrics if task == "depth" else classification_metrics
    return Run(train, val, test, distiller, metrics, task, config["train"]["epochs"])


def describe(config: Mapping[str, Any], run: Run) -> str:
    """What ``--dry-run`` prints: the resolved config and the parameter counts."""
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    student = getattr(run.distiller, "student", run.distiller)
    lines = [json.dumps(to_jsonable(config), indent=2),
             f"data: {len(run.train)} train / {len(run.val)} val / {len(run.test)} test images, task {run.task}",
             f"student {config['student']['model']}: {count(student) / 1e6:.3f} M parameters",
             f"trainable (student and the method's own modules): "
             f"{sum(p.numel() for p in run.distiller.trainable_parameters()) / 1e6:.3f} M parameters"]
    teacher = getattr(run.distiller, "teacher", None)
    if isinstance(teacher, nn.Module):
        lines.append(f"teacher: {count(teacher) / 1e6:.3f} M parameters (frozen)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- processes
@dataclass
class World:
    """This process's place in a ``torchrun`` job (one process: rank 0 of 1) and its device."""

    rank: int
    size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


@contextmanager
def world(device: str = "auto"):
    """The process group of a ``torchrun`` job (``WORLD_SIZE`` > 1: NCCL on CUDA, gloo on CPUs), torn down on exit;
    one process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        yield World(0, 1, pick_device(device))
        return
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        rank = dist.get_rank()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        yield World(rank, size, torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu"))
    finally:
        dist.destroy_process_group()


def mean_across(values: dict[str, float], where: World) -> dict[str, float]:
    """The mean of each value over the ranks (itself on one process)."""
    if where.size == 1:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64, device=where.device)
    dist.all_reduce(tensor)
    return {n: float(v) / where.size for n, v in zip(names, tensor.tolist(), strict=True)}


# ---------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(folder: Path, distiller: Distiller, training: TrainingState, *, epoch: int, step_in_epoch: int,
                    epoch_order: torch.Tensor, digest: str, history: History) -> None:
    """The run's exact state (see the module notes), written atomically enough: files first, ``state.json`` last."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in distiller.state_dict().items()},
              str(folder / "weights.safetensors"))
    optimizer = training.optimizer.state_dict()
    tensors = {f"optimizer.{index}.{name}": value.contiguous().cpu()
               for index, state in optimizer["state"].items() for name, value in state.items()
               if isinstance(value, torch.Tensor)}
    tensors |= {"rng.torch": torch.get_rng_state(), "rng.order": epoch_order,
                "rng.augment": training.aug_gen.get_state().cpu()}
    save_file(tensors, str(folder / "state.safetensors"))
    scalars = {index: {n: v for n, v in state.items() if not isinstance(v, torch.Tensor)}
               for index, state in optimizer["state"].items()}
    atomic_write_json(folder / "state.json", {
        "config_digest": digest, "epoch": epoch, "step_in_epoch": step_in_epoch, "step": training.step,
        "scheduler": training.scheduler.state_dict(), "optimizer_groups": optimizer["param_groups"],
        "optimizer_scalars": scalars, "history": history.rows})


def load_checkpoint(folder: Path, distiller: Distiller, training: TrainingState, digest: str) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote; the saved epoch, step in it and the epoch's batch-order generator
    state. A checkpoint of another config, or missing or damaged files, is a ``ValueError`` saying which."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        weights, tensors = load_file(str(folder / "weights.safetensors")), load_file(str(folder / "state.safetensors"))
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise ValueError(f"cannot resume from {folder}: {error}") from error
    if state.get("config_digest") != digest:
        raise ValueError(f"cannot resume from {folder}: it was written by another config (digest "
                         f"{state.get('config_digest')} ≠ {digest}); use a new output dir or the same config")
    try:
        distiller.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise ValueError(f"cannot resume from {folder}: its weights do not fit this run ({error})") from error
    optimizer_state = {int(index): {**scalars, **{name.split(".", 2)[2]: value for name, value in tensors.items()
                                                  if name.startswith(f"optimizer.{index}.")}}
                       for index, scalars in state["optimizer_scalars"].items()}
    training.optimizer.load_state_dict({"state": optimizer_state, "param_groups": state["optimizer_groups"]})
    training.scheduler.load_state_dict(state["scheduler"])
    training.step = state["step"]
    torch.set_rng_state(tensors["rng.torch"])
    training.aug_gen.set_state(tensors["rng.augment"])
    return {"epoch": state["epoch"], "step_in_epoch": state["step_in_epoch"], "order": tensors["rng.order"],
            "history": state["history"]}


# ---------------------------------------------------------------------------------------------- training
def write_history(folder: Path, rows: list[dict[str, float]]) -> None:
    """``history.jsonl`` (one epoch per line) and ``history.csv`` (one column per key seen)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    keys = list(dict.fromkeys(key for row in rows for key in row))
    with (folder / "history.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _epoch(model: nn.Module, training: TrainingState, where: World, epoch: int, skip: int,
           interrupt_at_step: int | None) -> dict[str, float]:
    """One epoch of this rank's shards of the global batches (the first ``skip`` batches were done before a resume);
    the loss terms' means over the batches, averaged across ranks."""
    sums: dict[str, float] = {}
    done = 0
    for number, index in enumerate(batch_indices(len(training.x), training.batch_size, training.order_gen)):
        if number < skip:
            continue
        if interrupt_at_step is not None and training.step == interrupt_at_step:
            raise KeyboardInterrupt(f"interrupt_at_step={interrupt_at_step}")
        values = train_step(model, training, index.chunk(where.size)[where.rank], epoch)
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value
        done += 1
    return mean_across({name: total / max(done, 1) for name, total in sums.items()}, where)


def _output(config: Mapping[str, Any], resume: bool) -> Path:
    out = Path(config["output"]["dir"]).expanduser()
    if not resume and (out / "checkpoint" / "state.json").exists():
        raise ValueError(f"{out} already holds a run's checkpoint: pass --resume to continue it, or choose another "
                         "[output] dir")
    if resume and not (out / "checkpoint" / "state.json").exists():
        raise ValueError(f"nothing to resume in {out}: no checkpoint/state.json")
    return out


def train(config: Mapping[str, Any], *, resume: bool = False, interrupt_at_step: int | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train a checked config (:func:`check_config`) on this process or on every rank of a ``torchrun`` job; return
    the final metrics (rank 0; other ranks return ``{}``). ``interrupt_at_step`` behaves like Ctrl-C just before that
    global step (for tests and demonstrations of ``--resume``): the checkpoint is written and ``KeyboardInterrupt``
    raised."""
    out, digest, settings = _output(config, resume), config_digest(config), config["train"]
    with world(settings["device"]) as where:
        if settings["batch_size"] % where.size:
            raise ValueError(f"[train] batch_size {settings['batch_size']} must divide among {where.size} processes")
        run = build(config)
        training = prepare_training(run.distiller, run.train, epochs=settings["epochs"], lr=settings["lr"],
                                    batch_size=settings["batch_size"], optimizer=settings["optimizer"],
                                    weight_decay=settings["weight_decay"], warmup_epochs=settings["warmup_epochs"],
                                    grad_clip=settings["grad_clip"], augment=None, seed=settings["seed"],
                                    device=where.device)
        model = run.distiller
        if where.size > 1:
            model = nn.parallel.DistributedDataParallel(run.distiller, find_unused_parameters=True)
        history, start, skip = History(), 0, 0
        if resume:
            state = load_checkpoint(out / "checkpoint", run.distiller, training, digest)
            start, skip, history.rows = state["epoch"], state["step_in_epoch"], state["history"]
            training.order_gen.set_state(state["order"])
        if where.main:
            atomic_write_json(out / "config.json", {"config": config, "config_digest": digest,
                                                    "world_size": where.size})
        _loop(run, model, training, where, out, digest, history, (start, skip), interrupt_at_step, progress)
        if not where.main:
            return {}
        final = {"test": evaluate(run.distiller, run.test, metrics=run.metrics, device=where.device),
                 "epochs": settings["epochs"], "world_size": where.size, "config_digest": digest}
        atomic_write_json(out / "final_metrics.json", final)
        return final


def _loop(run: Run, model: nn.Module, training: TrainingState, where: World, out: Path, digest: str,
          history: History, start: tuple[int, int], interrupt_at_step: int | None, progress: bool) -> None:
    """The epochs from ``start`` = (epoch, batches already done in it); a checkpoint after each, and on Ctrl-C."""
    from tqdm.auto import tqdm

    epochs = run.epochs
    steps_per_epoch = training.total_steps // epochs
    bar = tqdm(total=training.total_steps, initial=training.step, desc="train", disable=not (progress and where.main))
    epoch, skip = start
    epoch_order = training.order_gen.get_state()
    try:
        for epoch in range(start[0], epochs):
            epoch_order = training.order_gen.get_state()
            run.distiller.train()
            before = training.step
            means = _epoch(model, training, where, epoch, skip if epoch == start[0] else 0, interrupt_at_step)
            bar.update(training.step - before)
            if where.main:
                row = {"epoch": epoch + 1, **{f"train/{k}": v for k, v in means.items()},
                       "lr": training.scheduler.get_last_lr()[0]}
                row |= {f"val/{k}": v for k, v in evaluate(run.distiller, run.val, metrics=run.metrics,
                                                           device=where.device).items()}
                history.rows.append(row)
                save_checkpoint(out / "checkpoint", run.distiller, training, epoch=epoch + 1, step_in_epoch=0,
                                epoch_order=training.order_gen.get_state(), digest=digest, history=history)
                write_history(out, history.rows)
            if where.size > 1:
                dist.barrier()
    except KeyboardInterrupt:
        if where.main:
            save_checkpoint(out / "checkpoint", run.distiller, training, epoch=epoch,
                            step_in_epoch=training.step - epoch * steps_per_epoch, epoch_order=epoch_order,
                            digest=digest, history=history)
            print(f"Interrupted at step {training.step}: checkpoint in {out / 'checkpoint'}; --resume continues.")
        raise
    finally:
        bar.close()
