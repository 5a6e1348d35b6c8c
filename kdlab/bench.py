"""Throughput benchmarks behind ``python -m kdlab bench``: measure, don't guess (and never in a timed test)."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .config import pick_device
from .models import count_parameters, create, list_models


def _rate(step: Callable[[], None], items_per_step: int, seconds: float) -> float:
    """Items per second of ``step`` over at least ``seconds`` (after one warm-up call)."""
    step()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    return items_per_step * count / (time.perf_counter() - start)


def models(batch_size: int = 64, seconds: float = 3.0, img_size: int = 32) -> list[dict[str, object]]:
    """Training and inference images/s of every registry model on the default device (fp32)."""
    device = pick_device("auto")
    x = torch.rand(batch_size, 3, img_size, img_size, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    rows = []
    for name in list_models():
        model = create(name, img_size=img_size).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def train_step() -> None:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

        @torch.no_grad()
        def infer_step() -> None:
            model(x)

        model.train()
        train_rate = _rate(train_step, batch_size, seconds)
        model.eval()
        infer_rate = _rate(infer_step, batch_size, seconds)
        rows.append({"model": name, "params": count_parameters(model), "device": str(device),
                     "train_img_s": round(train_rate), "infer_img_s": round(infer_rate)})
    return rows


def data(n: int = 10000) -> list[dict[str, object]]:
    """Seconds to generate ``n`` images of each procedural dataset."""
    from .data import DATASETS, load_dataset

    rows = []
    for name in DATASETS:
        start = time.perf_counter()
        train, _ = load_dataset(name, n_train=n, n_test=2)
        rows.append({"dataset": name, "images": len(train), "seconds": round(time.perf_counter() - start, 2)})
    return rows


def _forward_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (PyTorch's flop counter: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def ofa(student: str = "vit", teacher: str = "cnn_small", batch_size: int = 64, seconds: float = 3.0,
        img_size: int = 32) -> list[dict[str, object]]:
    """One training step of no KD, Hinton KD and OFA (default stages) on the same student and teacher.

    ``step_vs_no_kd`` is the step time relative to no KD, measured in the same run. ``branch_params``
    and ``train_fwd_gflops`` (student + branches, teacher excluded) show what the OFA branches add
    while training; at inference they are dropped, so the deployed student is unchanged.
    """
    from .methods import KD, OFA, Supervised

    device = pick_device("auto")
    x = torch.rand(batch_size, 3, img_size, img_size, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    teacher_model = create(teacher, img_size=img_size).to(device)
    methods = {
        "no KD": lambda s: Supervised(s),
        "Hinton KD": lambda s: KD(s, teacher_model),
        "OFA": lambda s: OFA(s, teacher_model, img_size=img_size),
    }
    rows: list[dict[str, object]] = []
    for label, make in methods.items():
        torch.manual_seed(0)
        distiller = make(create(student, img_size=img_size)).to(device).train()
        opt = torch.optim.AdamW(distiller.trainable_parameters(), lr=1e-3)

        def train_step() -> None:
            opt.zero_grad()
            _, terms = distiller(x, y)
            sum(terms.values()).backward()
            opt.step()

        step_ms = 1000 * batch_size / _rate(train_step, batch_size, seconds)
        is_ofa = isinstance(distiller, OFA)
        forward = (lambda: distiller.branch_logits(x)) if is_ofa else (lambda: distiller.student(x))
        rows.append({"method": label, "student": student, "teacher": teacher, "device": str(device),
                     "step_ms": round(step_ms, 1),
                     "step_vs_no_kd": round(step_ms / rows[0]["step_ms"], 2) if rows else 1.0,
                     "branch_params": distiller.branch_parameters() if is_ofa else 0,
                     "train_fwd_gflops": round(_forward_flops(forward) / 1e9, 3)})
    return rows


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block: the profiler's C++ side (kineto) logs every start and
    stop there, which a notebook cell would show as pages of red text. Python's own stderr is flushed first."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _peak_bytes(step: Callable[[], None], device: torch.device) -> int:
    """Peak bytes of tensor memory that one call of ``step`` allocates on top of what exists before it.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset. CPU: replay the allocation and free events that
    ``torch.profiler`` records with ``profile_memory=True`` in time order and take the running maximum.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    held = peak = 0
    for event in events:
        held += event.nbytes()
        peak = max(peak, held)
    return peak


def _median_ms(step: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Median wall time of ``step`` in ms over ``repeats`` calls, after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(1000 * (time.perf_counter() - start))
    return sorted(times)[len(times) // 2]


def swtat(sizes: tuple[int, ...] = (16, 32, 64), channels: int = 64, batch_size: int = 8, window: int = 8,
          repeats: int = 3) -> list[dict[str, object]]:
    """Forward + backward of the TaT losses on random (B, C, S, S) maps: global, windowed (shift 0), shifted
    windows (shift M/2) and SW-TaT (both passes, sequential), with their Conv1x1 + BN embeddings.

    ``ms`` is the median of ``repeats`` steps; ``peak_mb`` the tensor memory one step allocates on top of the
    inputs (:func:`_peak_bytes`); ``logits`` the analytic attention-logit count of the batch
    (:func:`~kdlab.methods.swtat.tat_cost`). ``speedup`` and ``mem_saving`` are global's time and peak over
    the row's, measured in the same run.
    """
    from .methods import SWTaTLoss, TaTEmbedding, tat_cost, tat_loss, window_tat_loss

    device = pick_device("auto")
    rows: list[dict[str, object]] = []
    for size in sizes:
        torch.manual_seed(0)
        shape = (channels, size, size)
        student = torch.randn(batch_size, *shape, device=device, requires_grad=True)
        teacher = torch.randn(batch_size, *shape, device=device)
        embedding = TaTEmbedding(shape, shape).to(device)
        sw = SWTaTLoss(shape, shape, window).to(device)
        windowed = tat_cost(size, size, channels, window)["logits"]
        losses = {
            "global": (lambda: tat_loss(student, teacher, *embedding.qkv).backward(),
                       tat_cost(size, size, channels)["logits"]),
            "window": (lambda: window_tat_loss(student, teacher, *embedding.qkv, window).backward(), windowed),
            "shifted window": (lambda: window_tat_loss(student, teacher, *embedding.qkv, window,
                                                       window // 2).backward(), windowed),
            "SW-TaT (2 passes)": (lambda: sw(student, teacher).backward(), 2 * windowed),
        }
        measured = {label: (_median_ms(step, device, repeats), _peak_bytes(step, device), logits)
                    for label, (step, logits) in losses.items()}
        global_ms, global_peak, _ = measured["global"]
        for label, (ms, peak, logits) in measured.items():
            rows.append({"map": f"{size}x{size}", "loss": label, "device": str(device), "ms": round(ms, 2),
                         "peak_mb": round(peak / 2**20, 2), "logits": batch_size * logits,
                         "speedup": round(global_ms / ms, 1), "mem_saving": round(global_peak / peak, 1)})
    return rows
