"""Training and evaluation for any Distiller (DESIGN.md §3).

``fit`` minimises ``sum(terms.values())`` of ``distiller(x, y, progress=...)`` with AdamW (or SGD) and a
cosine schedule after a linear warm-up, shows a progress bar with the live loss terms, evaluates after
every epoch and returns a :class:`History`. On CUDA it trains in bf16 autocast with channels-last
memory. A non-finite loss stops training with the name of the offending term; interrupting the kernel
(Ctrl-C) stops cleanly and keeps the history so far.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .checks import check_choice, check_int, check_number, check_positive
from .config import pick_device
from .methods import Distiller

Metrics = Callable[[Tensor, Tensor], dict[str, float]]
Watch = Callable[[Distiller], dict[str, float]]
"""``watch(distiller) -> {name: number}``: what ``fit`` records after each epoch besides the validation metrics."""
Augment = Callable[..., Tensor | tuple[Tensor, Tensor]]
"""``augment(x, generator=g) -> x``; for per-pixel targets ``augment(x, y, generator=g) -> (x, y)``."""


class TensorData(Protocol):
    """Anything with tensors ``x`` (N, ...) and ``y`` (N, ...), e.g. :class:`kdlab.data.ImageSet`."""

    x: Tensor
    y: Tensor


def _tensors(data: TensorData | tuple[Tensor, Tensor], what: str) -> tuple[Tensor, Tensor]:
    x, y = data if isinstance(data, tuple) else (getattr(data, "x", None), getattr(data, "y", None))
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"{what} must be an (x, y) tuple of tensors or have tensor attributes .x and .y")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{what}: x and y must be non-empty with the same length, got {len(x)} and {len(y)}")
    return x, y


@dataclass
class History:
    """Per-epoch records of one training run: ``rows[i]`` holds ``epoch``, ``train/<term>``,
    ``train/loss``, ``val/<metric>``, ``lr`` and ``time_s`` (seconds since the start)."""

    rows: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False

    def __len__(self) -> int:
        return len(self.rows)

    def series(self, key: str) -> list[float]:
        """The values of ``key`` over the epochs that recorded it."""
        return [row[key] for row in self.rows if key in row]

    def last(self, key: str = "val/acc") -> float:
        """The value of ``key`` at the last epoch that recorded it."""
        values = self.series(key)
        if not values:
            raise KeyError(f"no epoch recorded {key!r}; keys: {sorted(self.keys())}")
        return values[-1]

    def best(self, key: str = "val/acc", mode: str = "max") -> float:
        """The best value of ``key`` over the epochs (``mode`` ``max`` or ``min``)."""
        check_choice("mode", mode, ("max", "min"))
        values = self.series(key)
        if not values:
            raise KeyError(f"no epoch recorded {key!r}; keys: {sorted(self.keys())}")
        return max(values) if mode == "max" else min(values)

    def keys(self) -> set[str]:
        return {key for row in self.rows for key in row}

    @property
    def wall_time_s(self) -> float:
        return self.rows[-1]["time_s"] if self.rows else 0.0

    def to_records(self) -> list[dict[str, float]]:
        """A plain list of dicts (a copy), ready for JSON or a DataFrame."""
        return [dict(row) for row in self.rows]

    def __repr__(self) -> str:
        if not self.rows:
            return "History(empty)"
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.rows[-1].items() if k.startswith("val/"))
        flag = ", interrupted" if self.interrupted else ""
        return f"History({len(self.rows)} epochs, {self.wall_time_s:.1f} s, last: {last}{flag})"


def classification_metrics(logits: Tensor, targets: Tensor) -> dict[str, float]:
    """Top-1 accuracy (a fraction in [0, 1]) and mean cross-entropy of (N, K) logits against (N,) labels."""
    return {
        "acc": (logits.argmax(1) == targets).float().mean().item(),
        "loss": F.cross_entropy(logits.float(), targets).item(),
    }


def _predict_fn(model: nn.Module) -> Callable[[Tensor], Tensor]:
    return model.predict if isinstance(model, Distiller) else model


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, *, batch_size: int = 512, device: str | torch.device = "auto") -> Tensor:
    """Outputs of ``model`` (a Distiller's :meth:`~Distiller.predict`, or a plain module) on ``x``, on the CPU."""
    batch_size = check_int("batch_size", batch_size, low=1)
    device = pick_device(device)
    was_training = model.training
    model.eval().to(device)
    forward = _predict_fn(model)
    try:
        with _autocast(device):
            outputs = [forward(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outputs)


def evaluate(model: nn.Module, data: TensorData | tuple[Tensor, Tensor], *, metrics: Metrics = classification_metrics,
             batch_size: int = 512, device: str | torch.device = "auto") -> dict[str, float]:
    """``metrics(outputs, targets)`` of ``model`` on ``data`` (default: accuracy and cross-entropy)."""
    x, y = _tensors(data, "data")
    return metrics(predict(model, x, batch_size=batch_size, device=device), y)


def _autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op elsewhere (bf16 slowed token models down on the CPUs we measured)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def batch_indices(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Shuffled index batches covering ``n`` samples; the last, smaller batch is dropped if it has < 2."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        if len(index) >= 2:
            yield index


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine from 1 to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(params, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW (default) or SGD with Nesterov momentum 0.9; no weight decay on biases and norm weights."""
    check_choice("optimizer", name, ("adamw", "sgd"))
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires a gradient")
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)


@dataclass
class TrainingState:
    """What one :func:`fit` call sets up: the data on the device, the optimiser and its LR schedule, the two
    generators (batch order on the CPU, augmentation on the device) and the global step counter."""

    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    order_gen: torch.Generator
    aug_gen: torch.Generator
    x: Tensor
    y: Tensor
    dense_targets: bool
    batch_size: int
    total_steps: int
    augment: Augment | None
    grad_clip: float | None
    step: int = 0


def fit(
    distiller: Distiller,
    train: TensorData | tuple[Tensor, Tensor],
    val: TensorData | tuple[Tensor, Tensor] | None = None,
    *,
    epochs: int,
    lr: float = 2e-3,
    batch_size: int = 64,
    optimizer: str = "adamw",
    weight_decay: float = 0.05,
    warmup_epochs: float = 1.0,
    grad_clip: float | None = None,
    augment: Augment | None = None,
    metrics: Metrics = classification_metrics,
    watch: Watch | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    desc: str | None = None,
) -> History:
    """Train ``distiller`` for ``epochs`` epochs and return its :class:`History`.

    ``augment(x, generator=g)`` is applied to every training batch on the device. When the targets are
    per-pixel maps, ``y`` of shape (N, H, W) with the images' H and W (segmentation masks), it is called as
    ``augment(x, y, generator=g)`` and must return ``(x, y)`` with the same crop/flip applied to both, as
    :func:`kdlab.data.standard_augment` does. ``seed`` fixes the batch order and the augmentation; seed
    the model's initialisation yourself (``seed_everything``) before building it. Validation runs after
    every epoch with ``metrics`` (``kdlab.metrics.segmentation_metrics`` for masks) and is stored as
    ``val/<name>``; ``val`` must not be a test set (:func:`check_not_test`). Each step passes ``progress = step / total_steps`` to the distiller.
    ``watch(distiller)``, when given, is called after each epoch with the distiller in eval mode and returns more
    numbers to follow over training (e.g. :func:`kdlab.experiments.head_watch`: each output head's validation
    accuracy); they are stored as ``watch/<name>``.
    """
    if not isinstance(distiller, Distiller):
        raise TypeError(f"fit expects a kdlab Distiller (wrap a plain model in Supervised), got {type(distiller).__name__}")
    check_not_test(val)
    epochs = check_int("epochs", epochs, low=1)
    if watch is not None and not callable(watch):
        raise TypeError(f"watch must be a function of the distiller returning {{name: number}}, got {type(watch).__name__}")
    training = prepare_training(distiller, train, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
                        weight_decay=weight_decay, warmup_epochs=warmup_epochs, grad_clip=grad_clip,
                        augment=augment, seed=seed, device=device)
    history = History()
    start = time.perf_counter()
    bar = tqdm(total=training.total_steps, desc=desc or type(distiller).__name__, disable=not progress, leave=True)
    try:
        for epoch in range(epochs):
            train_means = _train_epoch(distiller, training, epoch, bar)
            row = _epoch_row(distiller, training, epoch, train_means, val, metrics, watch)
            row["time_s"] = time.perf_counter() - start
            history.rows.append(row)
            bar.set_postfix({k.split("/")[1]: f"{v:.3f}" for k, v in row.items() if k.startswith("val/")})
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"Interrupted after {len(history.rows)} complete epoch(s); the history so far is kept.")
    finally:
        bar.close()
        distiller.eval()
    return history


def check_not_test(val: object) -> None:
    """``ValueError`` when ``val`` is a test set (its ``role``, read from a name like ``shapes-test``): ``fit`` reads
    its validation data after every epoch, for curves and choices, so the test set must never be it (the
    experiment protocol: the test set is read once, at the end of a run)."""
    if getattr(val, "role", "") == "test":
        raise ValueError(f"fit must not validate on the test set {getattr(val, 'name', '')!r}: pass the validation "
                         "split (kdlab.data.load_splits) and evaluate the test set once, after training")


def prepare_training(distiller: Distiller, train: TensorData | tuple[Tensor, Tensor], *, epochs: int, lr: float,
                     batch_size: int, optimizer: str, weight_decay: float, warmup_epochs: float,
                     grad_clip: float | None, augment: Augment | None, seed: int,
                     device: str | torch.device) -> TrainingState:
    """Check the settings, move the distiller and the training data to the device, and build the optimiser,
    the warm-up + cosine LR schedule over ``epochs * steps_per_epoch`` steps and the seeded generators."""
    batch_size = check_int("batch_size", batch_size, low=2)
    lr = check_positive("lr", lr)
    check_number("weight_decay", weight_decay, low=0.0)
    check_number("warmup_epochs", warmup_epochs, low=0.0)
    if grad_clip is not None:
        check_positive("grad_clip", grad_clip)
    check_int("seed", seed, low=0)
    x_train, y_train = _tensors(train, "train")
    device = pick_device(device)
    distiller.to(device)
    if device.type == "cuda":
        distiller.to(memory_format=torch.channels_last)
    opt = make_optimizer(distiller.trainable_parameters(), optimizer, lr, weight_decay)
    steps_per_epoch = len(x_train) // batch_size + (len(x_train) % batch_size >= 2)
    total_steps = epochs * steps_per_epoch
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total_steps, warmup_steps))
    order_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed)
    x_train, y_train = x_train.to(device), y_train.to(device)
    dense_targets = y_train.ndim == 3 and y_train.shape[1:] == x_train.shape[-2:]  # masks move with the pixels
    return TrainingState(device, opt, scheduler, order_gen, aug_gen, x_train, y_train, dense_targets, batch_size,
                     total_steps, augment, grad_clip)


def _train_epoch(distiller: Distiller, training: TrainingState, epoch: int, bar: tqdm) -> dict[str, float]:
    """One pass over the shuffled training batches; the mean of each loss term over the epoch's batches."""
    distiller.train()
    sums: dict[str, float] = defaultdict(float)
    n_batches = 0
    for index in batch_indices(len(training.x), training.batch_size, training.order_gen):
        values = train_step(distiller, training, index, epoch)
        n_batches += 1
        for name, value in values.items():
            sums[name] += value
        bar.update(1)
        bar.set_postfix({name: f"{value:.3f}" for name, value in values.items()}, refresh=False)
    return {name: total / n_batches for name, total in sums.items()}


def train_step(distiller: nn.Module, training: TrainingState, index: Tensor, epoch: int) -> dict[str, float]:
    """Augment one batch, minimise ``sum(terms.values())`` by one optimiser and LR-schedule step; the term values.
    ``distiller`` is the Distiller or a wrapper that forwards to it (``DistributedDataParallel``, kdlab.trainer)."""
    x, y = training.x[index], training.y[index]
    if training.augment is not None and training.dense_targets:
        x, y = training.augment(x, y, generator=training.aug_gen)
    elif training.augment is not None:
        x = training.augment(x, generator=training.aug_gen)
    with _autocast(training.device):
        _, terms = distiller(x, y, progress=training.step / training.total_steps)
    loss = sum(terms.values())
    values = {name: term.item() for name, term in terms.items()}
    _check_finite(values, epoch, training.step)
    training.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if training.grad_clip is not None:
        nn.utils.clip_grad_norm_([p for group in training.optimizer.param_groups for p in group["params"]],
                                 training.grad_clip)
    training.optimizer.step()
    training.scheduler.step()
    training.step += 1
    return values


def _epoch_row(distiller: Distiller, training: TrainingState, epoch: int, train_means: dict[str, float],
               val: TensorData | tuple[Tensor, Tensor] | None, metrics: Metrics,
               watch: Watch | None) -> dict[str, float]:
    """The epoch's History row (without ``time_s``): ``epoch``, ``train/<term>``, ``train/loss`` (their sum),
    ``lr``, with validation data ``val/<metric>``, and with a ``watch`` its ``watch/<name>``."""
    row = {"epoch": epoch + 1, **{f"train/{k}": v for k, v in train_means.items()}}
    row["train/loss"] = sum(v for k, v in row.items() if k.startswith("train/"))
    row["lr"] = training.scheduler.get_last_lr()[0]
    if val is not None:
        row.update({f"val/{k}": v for k, v in evaluate(distiller, val, metrics=metrics, device=training.device).items()})
    if watch is not None:
        distiller.eval()
        with torch.no_grad():
            row.update({f"watch/{k}": float(v) for k, v in watch(distiller).items()})
    return row


def _check_finite(values: dict[str, float], epoch: int, step: int) -> None:
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise FloatingPointError(
            f"loss term(s) {', '.join(bad)} became non-finite at epoch {epoch + 1}, step {step + 1} "
            f"({values}); try a lower learning rate or gradient clipping (grad_clip=1.0)"
        )
