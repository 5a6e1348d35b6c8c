"""Pretrained teachers (layer 4): deterministic recipes, shipped as ``.safetensors`` with a sha256 manifest.

``data/teachers/manifest.json`` maps each teacher key to its file, sha256, the recipe it was trained
with (and that recipe's hash) and the test metric it reached. :func:`load_teacher` verifies the file
against the manifest and the recipe in this code before loading it; a missing, corrupt or stale file
is reported and the teacher is retrained into the cache (``KDLAB_CACHE``) with a progress bar.
Weights are only ever read with ``safetensors`` (never ``pickle`` / ``torch.load``).

Build or check them from a shell: ``python -m kdlab teachers build|verify|list``. A teacher is trained with the
package's own parts: a registry model (:mod:`kdlab.models`), a labels-only objective (:mod:`kdlab.methods`), the
trainer (:mod:`kdlab.train`) and the task's metrics (:mod:`kdlab.metrics`).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .checks import check_fraction, check_positive
from .config import DATA_DIR, cache_dir, pick_device, seed_everything
from .data import load_dataset, standard_augment
from .methods import DepthSupervised, MarginSupervised, Supervised
from .metrics import scenes_depth_metrics, segmentation_metrics, verification_summary
from .models import MODELS, count_parameters, create
from .record import recipe_hash
from .train import classification_metrics, evaluate, fit, predict

MANIFEST = "manifest.json"
SCENES_TEACHER_TRAIN, SCENES_TEACHER_EPOCHS = 12000, 16
"""The depth teacher's budget: 192 000 image-steps on 12 000 scenes, 886 s measured on two CPU threads (about 4.6 ms
per 64 px image and training step). Notebook 05 needs a teacher with something to give: the first recipe (3000 scenes
x 20 epochs, 60 000 image-steps, 338 s on one thread) reached test AbsRel 0.212 against the no-KD student's 0.270, and no
feature-imitation row moved beyond seed noise; four times the scenes at 3.2 times the steps widen that gap.
"""
FACES_TEACHER_IDS, FACES_TEACHER_PER_ID, FACES_TEACHER_EPOCHS = 160, 40, 14
"""The face teacher's budget: 6400 faces x 14 epochs = 89 600 image-steps at about 3.3-4.8 ms each on one CPU thread
(measured on a shared machine), 5-7 minutes. Calibration, 8 epochs with crop + flip on 100 identities x 40 faces:
verification 93.7 % at lr 1e-3, 94.2 % at 2e-3; without the embedding BatchNorm of ``face_swin`` the CosFace train
loss stayed at 3.1 after 8 epochs on 50 x 40 faces (0.4 with it)."""

FACES_CNN_TEACHER = {"stem_width": 48, "widths": [64, 128, 192], "depths": [2, 3, 3], "num_features": 256}
FACES_CNN_TEACHER_EPOCHS = 3
"""A wider, deeper ``face_cnn`` as the homologous (CNN -> CNN) face teacher: 0.68 M parameters against the Swin's
0.90 M, the same data and margin, about 5.4 ms per 64 px image and step on one CPU thread. Its epochs are chosen so
that its verification accuracy matches the Swin's (96.4 %), which keeps teacher quality out of notebook 04's
homologous-vs-cross comparison: 3 / 5 / 14 epochs gave 97.7 / 98.9 / 99.5 % (TAR@FAR 1e-2 92.8 / 98.5 / 99.7 %)."""


@dataclass(frozen=True)
class TeacherRecipe:
    """Everything needed to retrain a teacher bit-for-bit on the CPU (same seed, same thread count)."""

    key: str
    model: str
    data: dict[str, Any]
    epochs: int
    lr: float
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    augment: bool = True
    seed: int = 0
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hash(self) -> str:
        return recipe_hash(self.as_dict())


def _shapes(n_train: int, **options: Any) -> dict[str, Any]:
    """Shapes data for teachers: its own seed stream (1000), so no student's training image is a teacher's.

    ``options`` are :func:`~kdlab.data.make_shapes` keywords: ``img_size=64, target="mask"`` asks for per-pixel
    masks (those test sets hold 500 images, since evaluation keeps every pixel's logits: 2000 images at 64 px would
    be ~360 MB), ``layout="mosaic"`` for 2x2 mosaics."""
    return {"name": "shapes", "n_train": n_train, "n_test": 500 if options.get("target") == "mask" else 2000,
            "seed": 1000, **options}


def _scenes(n_train: int, n_test: int = 500) -> dict[str, Any]:
    """RGB-D scenes for depth teachers at 64 px, on their own seed stream (1000, test from 1000 + 1_000_003), so
    no student's training or test scene is a teacher's training scene."""
    return {"name": "scenes", "n_train": n_train, "n_test": n_test, "img_size": 64, "seed": 1000}


def _faces(n_train_ids: int, per_id: int, n_test_ids: int = 50, test_per_id: int = 10,
           n_pairs: int = 3000) -> dict[str, Any]:
    """Face identities for face teachers at 64 px, from their own identity world and image stream (seed 1000), so no
    student identity (notebook 04 uses worlds 0, 1, ...) is a teacher identity. The test identities are held out:
    the teacher is scored by verification on ``n_pairs`` pairs of them (half same, half different)."""
    return {"name": "faces", "n_train_ids": n_train_ids, "per_id": per_id, "n_test_ids": n_test_ids,
            "test_per_id": test_per_id, "n_pairs": n_pairs, "img_size": 64, "seed": 1000}


FACE_MARGIN = {"margin": "cosface", "s": 16.0, "m": 0.2}
"""The margin head face teachers train with (CosFace, the CAFD workbook's s and m, spec §3.2); the head is
dropped after training: a face teacher ships as an embedder."""


TEACHERS: dict[str, TeacherRecipe] = {
    recipe.key: recipe
    for recipe in (
        TeacherRecipe("shapes_cnn", "cnn_small", _shapes(4000), epochs=12, lr=2e-3,
                      description="ResNet-style CNN (0.3 M): strong, not saturated, and cheap enough to "
                                  "label every augmented batch on a CPU"),
        TeacherRecipe("shapes_cnn_weak", "cnn_small", _shapes(4000), epochs=3, lr=2e-3,
                      description="shapes_cnn's recipe in 3 epochs (about 49 % test accuracy; 1 and 2 epochs gave 19 "
                                  "and 31 %): the poor teacher of 02's double-edged-sword test"),
        TeacherRecipe("shapes_mosaic_cnn", "cnn_small", _shapes(4000, layout="mosaic"), epochs=24, lr=2e-3,
                      description="shapes_cnn's recipe on 2x2 mosaics (the class is the one shown on two tiles): "
                                  "02's dense-regime teacher"),
        TeacherRecipe("shapes_vit", "vit", _shapes(8000), epochs=30, lr=1e-3, warmup_epochs=2,
                      model_kwargs={"patch_size": 8, "embed_dim": 128, "num_heads": 4},
                      description="ViT, patch 8 (0.56 M), trained on 4x the students' data"),
        TeacherRecipe("shapes_swin", "swin", _shapes(8000), epochs=15, lr=1e-3, warmup_epochs=2,
                      description="Swin, patch 2, window 4 (0.39 M), trained on 4x the students' data"),
        TeacherRecipe("shapes_seg", "seg_cnn", _shapes(4000, img_size=64, target="mask"), epochs=30, lr=2e-3,
                      description="FPN-style CNN segmenter (0.95 M), 64 px shapes with per-pixel masks"),
        TeacherRecipe("scenes_depth_swin", "depth_teacher_swin", _scenes(SCENES_TEACHER_TRAIN), epochs=SCENES_TEACHER_EPOCHS,
                      lr=1e-3, batch_size=32, weight_decay=1e-2,
                      description="Swin depth net (1.36 M): patch 4, window 4, simple decoder, bins head, 64 px scenes"),
        TeacherRecipe("faces_swin", "face_swin", _faces(FACES_TEACHER_IDS, FACES_TEACHER_PER_ID),
                      epochs=FACES_TEACHER_EPOCHS, lr=2e-3, warmup_epochs=1.0, model_kwargs={"drop_path_rate": 0.0},
                      description="Swin face embedder (0.9 M): patch 4, window 4, CosFace, 64 px faces"),
        TeacherRecipe("faces_cnn", "face_cnn", _faces(FACES_TEACHER_IDS, FACES_TEACHER_PER_ID),
                      epochs=FACES_CNN_TEACHER_EPOCHS, lr=2e-3, warmup_epochs=1.0, model_kwargs=FACES_CNN_TEACHER,
                      description="CNN face embedder (0.68 M): the homologous teacher of 04, at the Swin's accuracy"),
    )
}


def _recipe(key: str) -> TeacherRecipe:
    if key not in TEACHERS:
        raise KeyError(f"unknown teacher {key!r}; available: {', '.join(sorted(TEACHERS))}")
    return TEACHERS[key]


def shipped_dir() -> Path:
    """The repository's ``data/teachers`` folder."""
    return DATA_DIR / "teachers"


def cached_dir() -> Path:
    """Where retrained teachers go: ``<cache>/teachers``."""
    return cache_dir() / "teachers"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """The manifest in ``root`` (default: shipped teachers), ``{}`` if there is none."""
    path = Path(root or shipped_dir()) / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"teacher manifest {path} is not valid JSON: {err}") from None


def _write_manifest(root: Path, manifest: dict[str, dict[str, Any]]) -> None:
    path = root / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def check_teacher(key: str, root: Path | None = None) -> str | None:
    """``None`` if ``root`` holds a valid copy of teacher ``key``, else what is wrong, in words."""
    root = Path(root or shipped_dir())
    recipe = _recipe(key)
    entry = read_manifest(root).get(key)
    if entry is None:
        return f"not listed in {root / MANIFEST}"
    path = root / entry["file"]
    if not path.exists():
        return f"file {path} is missing"
    if sha256_file(path) != entry["sha256"]:
        return f"file {path} is corrupt (sha256 differs from the manifest)"
    if entry.get("recipe_hash") != recipe.hash:
        return f"file {path} was trained with another recipe than the one in kdlab.teachers (stale)"
    return None


@dataclass(frozen=True)
class TeacherTask:
    """How the teachers of one registry task are trained and scored.

    ``objective(model, num_classes)`` wraps the model in what :func:`kdlab.train.fit` trains, ``fit_metrics`` is
    logged per epoch, ``score(model, test, device)`` gives the manifest's ``test_*`` metrics, ``model_classes`` says
    whether ``num_classes`` is the model's output width (a face embedder's is its embedding width instead) and
    ``extras(objective, num_classes)`` adds task-specific manifest keys.
    """

    objective: Callable[[nn.Module, int | None], nn.Module]
    fit_metrics: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
    score: Callable[[nn.Module, Any, torch.device], dict[str, float]]
    model_classes: bool = True
    extras: Callable[[nn.Module, int | None], dict[str, Any]] = lambda objective, num_classes: {}


def teacher_tasks() -> dict[str, TeacherTask]:
    """Registry task -> :class:`TeacherTask`."""
    def scored_by(metrics):
        return lambda model, test, device: evaluate(model, test, metrics=metrics, device=device)

    def verification(model, test, device):  # cosine of the embeddings over pairs of held-out identities
        return verification_summary(predict(model, test.x, device=device), test.pairs, test.same)

    return {
        "classification": TeacherTask(lambda model, _: Supervised(model), classification_metrics,
                                      scored_by(classification_metrics)),
        "segmentation": TeacherTask(lambda model, _: Supervised(model), segmentation_metrics,
                                    scored_by(segmentation_metrics)),
        "depth": TeacherTask(lambda model, _: DepthSupervised(model), scenes_depth_metrics,
                             scored_by(scenes_depth_metrics)),
        "face": TeacherTask(lambda model, identities: MarginSupervised(model, identities, **FACE_MARGIN),
                            classification_metrics, verification, model_classes=False,
                            extras=lambda objective, identities: {"identities": identities,
                                                                  "embedding_dim": objective.head.embed_dim}),
    }


def build_teacher(key: str, root: Path | None = None, *, device: str = "cpu", progress: bool = True) -> nn.Module:
    """Train teacher ``key`` from its recipe, save it into ``root`` and record it in the manifest.

    Defaults to the CPU so the shipped weights are reproducible; pass ``device="auto"`` to use a GPU. How a teacher
    trains and is scored depends on its registry task (:func:`teacher_tasks`): face embedders (task ``face``) train
    with a :data:`FACE_MARGIN` head over the training identities (dropped afterwards) and are scored by
    verification on the test set's pairs (``test_verif_acc``, ``test_tar_far1e-2``, ...; the manifest's
    ``num_classes`` is then ``None`` and ``identities`` / ``embedding_dim`` say what they were).
    """
    recipe = _recipe(key)
    root = Path(root or shipped_dir())
    root.mkdir(parents=True, exist_ok=True)
    device = pick_device(device)
    seed_everything(recipe.seed)
    train, test = load_dataset(**recipe.data)
    task_name = MODELS[recipe.model].task
    task = teacher_tasks()[task_name]
    num_classes = getattr(train, "num_classes", None)  # depth sets have none (the model predicts metres)
    model_classes = num_classes if task.model_classes else None
    model = create(recipe.model, num_classes=model_classes, img_size=train.x.shape[-1], **recipe.model_kwargs)
    objective = task.objective(model, num_classes)
    start = time.perf_counter()
    fit(objective, train, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
        warmup_epochs=recipe.warmup_epochs, weight_decay=recipe.weight_decay, seed=recipe.seed,
        augment=standard_augment() if recipe.augment else None, metrics=task.fit_metrics, device=device,
        progress=progress, desc=f"teacher {key}")
    train_time = time.perf_counter() - start
    metrics = task.score(model, test, device)
    model.cpu().eval()
    path = root / f"{key}.safetensors"
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    # one metadata entry: safetensors writes a multi-key map in arbitrary order, which would change the sha256
    save_file(state, str(path), metadata={"kdlab": json.dumps({"key": key, "recipe_hash": recipe.hash}, sort_keys=True)})
    manifest = read_manifest(root)
    manifest[key] = {
        "file": path.name,
        "sha256": sha256_file(path),
        "recipe": recipe.as_dict(),
        "recipe_hash": recipe.hash,
        "task": task_name,
        "metrics": {f"test_{name}": round(value, 4) for name, value in metrics.items()},
        "num_classes": model_classes,
        **task.extras(objective, num_classes),
        "img_size": train.x.shape[-1],
        "params": count_parameters(model),
        "train_time_s": round(train_time, 1),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "date": _dt.date.today().isoformat(),
    }
    _write_manifest(root, manifest)
    return model.requires_grad_(False)


def _load(key: str, root: Path) -> nn.Module:
    recipe = _recipe(key)
    entry = read_manifest(root)[key]
    model = create(recipe.model, num_classes=entry["num_classes"], img_size=entry["img_size"], **recipe.model_kwargs)
    model.load_state_dict(load_file(str(root / entry["file"])))
    return model.eval().requires_grad_(False)


def load_teacher(key: str, *, allow_retrain: bool = True, progress: bool = True) -> nn.Module:
    """Teacher ``key`` in eval mode with frozen weights, on the CPU (move it with ``.to(device)``).

    Looks in ``data/teachers`` first, then in the cache. If neither holds a valid copy, says why and,
    when ``allow_retrain``, retrains the teacher into the cache (minutes on a CPU), else raises.
    """
    problem = check_teacher(key, shipped_dir())
    if problem is None:
        return _load(key, shipped_dir())
    cache_problem = check_teacher(key, cached_dir())
    if cache_problem is None:
        print(f"Teacher {key!r}: shipped copy unusable ({problem}); using the retrained copy in {cached_dir()}.")
        return _load(key, cached_dir())
    if not allow_retrain:
        raise FileNotFoundError(f"teacher {key!r} unavailable: {problem}; cache: {cache_problem}")
    print(f"Teacher {key!r}: {problem}. Retraining it from its recipe into {cached_dir()} ...")
    return build_teacher(key, cached_dir(), progress=progress)


class Softened(nn.Module):
    r"""A teacher whose logits are divided by ``temperature`` $\tau$: $q=\mathrm{softmax}(z_t/\tau)$ keeps the
    teacher's ranking of the classes (so its accuracy and its dark knowledge) but lowers its confidence in the top
    class, ``notebooks/01_ofa.ipynb`` §3.3's unconfident but faithful teacher. Frozen like the teacher it wraps."""

    def __init__(self, teacher: nn.Module, temperature: float) -> None:
        super().__init__()
        self.teacher, self.temperature = teacher, check_positive("temperature", temperature)
        self.num_classes = teacher.num_classes
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher(x) / self.temperature


class PartlyNoisy(nn.Module):
    r"""A depth teacher that is wrong where we say: on the right ``fraction`` of every encoder map its features
    are replaced by Gaussian noise with each channel's mean and standard deviation over the batch (so the noise is
    as loud as the features, and only their spatial structure gives it away). 05's LAM toy: uniform feature KD
    makes the student imitate that noise; LAM, trained by the ghost depth loss, can learn to weigh it down.

    The noise is drawn from a generator seeded by ``seed`` and the input's pixel sum, so the same batch gets the
    same noise (the teacher memo and reruns agree). ``forward_head`` is the teacher's own; frozen like the teacher
    it wraps."""

    def __init__(self, teacher: nn.Module, fraction: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        for method in ("forward_features", "forward_head"):
            if not callable(getattr(teacher, method, None)):
                raise ValueError(f"PartlyNoisy wraps a depth model with {method}(...), got {type(teacher).__name__}")
        self.teacher, self.fraction, self.seed = teacher, check_fraction("fraction", fraction), int(seed)
        self.eval().requires_grad_(False)

    def noisy_columns(self, width: int) -> slice:
        """The columns of a ``width``-wide map that carry noise: the last ``round(fraction * width)``."""
        return slice(width - round(self.fraction * width), width)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed + int(x.double().sum().item() * 1000) % 2 ** 31)
        out = []
        for feat in self.teacher.forward_features(x):
            columns = self.noisy_columns(feat.shape[-1])
            mean, std = feat.mean(dim=(0, 2, 3), keepdim=True), feat.std(dim=(0, 2, 3), keepdim=True)
            noise = torch.randn(feat[..., columns].shape, generator=generator).to(feat.device)
            feat = feat.clone()
            feat[..., columns] = mean + std * noise
            out.append(feat)
        return out

    def forward_head(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.teacher.forward_head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def teacher_info(key: str) -> dict[str, Any]:
    """The manifest entry of a shipped teacher (metrics, params, recipe, date)."""
    _recipe(key)
    entry = read_manifest(shipped_dir()).get(key)
    if entry is None:
        raise KeyError(f"teacher {key!r} is not in {shipped_dir() / MANIFEST}; run `python -m kdlab teachers build {key}`")
    return entry
