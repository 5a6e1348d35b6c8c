"""Throughput benchmarks behind ``python -m kdlab bench``: measure, don't guess (and never in a timed test)."""
from __future__ import annotations

import time
from typing import Callable

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
