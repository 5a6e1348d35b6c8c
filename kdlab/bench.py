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
    windows (shift M/2) and SW-TaT (both passes: sequential, kdlab's default, and union), with their Conv1x1 + BN
    embeddings.

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
        union = SWTaTLoss(shape, shape, window, stacking="union").to(device)
        windowed = tat_cost(size, size, channels, window)["logits"]
        losses = {
            "global": (lambda: tat_loss(student, teacher, *embedding.qkv).backward(),
                       tat_cost(size, size, channels)["logits"]),
            "window": (lambda: window_tat_loss(student, teacher, *embedding.qkv, window).backward(), windowed),
            "shifted window": (lambda: window_tat_loss(student, teacher, *embedding.qkv, window,
                                                       window // 2).backward(), windowed),
            "SW-TaT (2 passes)": (lambda: sw(student, teacher).backward(), 2 * windowed),
            "SW-TaT union (2 passes)": (lambda: union(student, teacher).backward(), 2 * windowed),
        }
        measured = {label: (_median_ms(step, device, repeats), _peak_bytes(step, device), logits)
                    for label, (step, logits) in losses.items()}
        global_ms, global_peak, _ = measured["global"]
        for label, (ms, peak, logits) in measured.items():
            rows.append({"map": f"{size}x{size}", "loss": label, "device": str(device), "ms": round(ms, 2),
                         "peak_mb": round(peak / 2**20, 2), "logits": batch_size * logits,
                         "speedup": round(global_ms / ms, 1), "mem_saving": round(global_peak / peak, 1)})
    return rows


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def matmul_flops(seconds: float = 2.0, size: int = 512, threads: int = 1) -> float:
    """The dense-matmul FLOP/s of this machine on ``threads`` threads (fp32, ``size`` x ``size`` by ``size`` x
    ``size``, ``2 size^3`` FLOPs each): the hardware limit that training utilisation is measured against."""
    a, b = torch.rand(size, size), torch.rand(size, size)
    with _threads(threads):
        return 2 * size**3 * _rate(lambda: torch.mm(a, b), 1, seconds)


def _step_flops(step: Callable[[], None]) -> int:
    """FLOPs of one training step (forward and backward) by PyTorch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def train(batch_size: int = 64, seconds: float = 3.0, img_size: int = 32) -> list[dict[str, object]]:
    """Training steps of the calibrated students (the primer's CNN, ViT and Mixer) with no KD, Hinton KD and OFA on
    the final logits, from the shipped-size CNN teacher, on one CPU thread: images/s, FLOPs per image and step
    (forward + backward, teacher included), and the achieved FLOP/s as a fraction of the thread's measured
    dense-matmul FLOP/s (``utilisation``) — how far from the hardware limit training runs. The teacher-output
    memo is off here, so a KD step pays its teacher forward."""
    from .methods import KD, OFA, TEACHER_OUTPUTS, Supervised
    from .recipes import TOKEN_STUDENT

    students = {"cnn_small": {}, "vit": TOKEN_STUDENT, "mixer": {"patch_size": 8, "embed_dim": 128}}
    methods = {"no KD": lambda s, t: Supervised(s), "Hinton KD": lambda s, t: KD(s, t, temperature=2.0),
               "OFA final logits": lambda s, t: OFA(s, t, stages=())}
    x, y = torch.rand(batch_size, 3, img_size, img_size), torch.randint(0, 10, (batch_size,))
    rows: list[dict[str, object]] = []
    saved = TEACHER_OUTPUTS.max_bytes
    TEACHER_OUTPUTS.max_bytes = 0
    try:
        with _threads(1):
            peak = matmul_flops(seconds=min(seconds, 2.0))
            torch.manual_seed(0)
            teacher = create("cnn_small", img_size=img_size).eval()
            for student, kwargs in students.items():
                for label, make in methods.items():
                    torch.manual_seed(0)
                    distiller = make(create(student, img_size=img_size, **kwargs), teacher).train()
                    opt = torch.optim.AdamW(distiller.trainable_parameters(), lr=1e-3)

                    def step() -> None:
                        opt.zero_grad()
                        sum(distiller(x, y)[1].values()).backward()
                        opt.step()

                    rate = _rate(step, batch_size, seconds)
                    flops = _step_flops(step) / batch_size
                    rows.append({"student": student, "method": label, "img_s": round(rate),
                                 "mflop_per_img": round(flops / 1e6, 1), "utilisation": f"{rate * flops / peak:.0%}"})
    finally:
        TEACHER_OUTPUTS.max_bytes = saved
    return rows


def grid(n_train: int = 512, epochs: int = 1, seeds: int = 3) -> list[dict[str, object]]:
    """The training work per wall-clock second of an experiment grid like the primer's ``cpu`` one (three student
    families x labels only / Hinton KD from the shipped CNN teacher, ``seeds`` seeds, ``n_train`` images for
    ``epochs`` epochs), measured twice in one run on this machine:

    - ``before``: one process using every core, the teacher run on every batch of every row (memo off) — how the
      notebooks trained before the protocol issue;
    - ``after``: :func:`kdlab.experiments.run_experiments`'s default, :func:`~kdlab.experiments.default_workers`
      one-thread processes, with the teacher-output memo.

    ``images_per_s`` is images seen (``n_train x epochs x runs``) per wall-clock second; ``speedup`` is ``after``
    over ``before``. Both give the same kind of numbers (one-thread workers give the numbers of a one-thread run)."""
    from .data import load_splits, standard_augment
    from .experiments import Run, default_workers, run_experiments
    from .methods import KD, TEACHER_OUTPUTS, Supervised
    from .recipes import TOKEN_STUDENT
    from .teachers import load_teacher

    train_set, val, test = load_splits("shapes", n_train=n_train, n_test=64, n_val=64, seed=0)
    teacher = load_teacher("shapes_cnn").cpu().eval()
    students = {"cnn_small": {}, "vit": TOKEN_STUDENT, "mixer": {"patch_size": 8, "embed_dim": 128}}
    fit = {"epochs": epochs, "lr": 2e-3, "warmup_epochs": 0.0, "augment": standard_augment()}
    runs = []
    for name, kwargs in students.items():
        runs += [Run(f"{name} · labels only", lambda n=name, k=kwargs: Supervised(create(n, **k)), fit),
                 Run(f"{name} · Hinton KD", lambda n=name, k=kwargs: KD(create(n, **k), teacher, temperature=2.0), fit)]
    work = n_train * epochs * len(runs) * seeds
    settings = {"before": (1, 0), "after": (default_workers(len(runs) * seeds), TEACHER_OUTPUTS.max_bytes or 2**30)}
    rows: list[dict[str, object]] = []
    saved = TEACHER_OUTPUTS.max_bytes
    try:
        for label, (workers, memo_bytes) in settings.items():
            TEACHER_OUTPUTS.clear()
            TEACHER_OUTPUTS.max_bytes = memo_bytes
            start = time.perf_counter()
            run_experiments(runs, train_set, val, test, seeds=list(range(seeds)), workers=workers, progress=False)
            wall = time.perf_counter() - start
            rows.append({"setting": label, "processes": workers, "threads_each": torch.get_num_threads() if workers == 1 else 1,
                         "teacher_memo": "on" if memo_bytes else "off", "runs": len(runs) * seeds,
                         "wall_s": round(wall, 1), "images_per_s": round(work / wall),
                         "speedup": round(rows[0]["wall_s"] / wall, 2) if rows else 1.0})
    finally:
        TEACHER_OUTPUTS.max_bytes = saved
        TEACHER_OUTPUTS.clear()
    return rows
