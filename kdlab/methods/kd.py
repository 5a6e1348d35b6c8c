r"""Hinton knowledge distillation (Hinton, Vinyals, Dean 2015): the baseline every paper compares with.

With student logits $z_s$, teacher logits $z_t$ and temperature $T$,

$$\mathcal{L}_{KD} = T^2 \cdot \frac{1}{B}\sum_{b=1}^{B} \mathrm{KL}\big(\mathrm{softmax}(z_t/T)\,\|\,\mathrm{softmax}(z_s/T)\big)$$

The $T^2$ keeps the gradient's size independent of $T$: $\partial\mathcal{L}/\partial z_s = T\,(p - q)/B$
with $p=\mathrm{softmax}(z_s/T)$, $q=\mathrm{softmax}(z_t/T)$. The distiller mixes it with the hard-label loss,

$$\mathcal{L} = (1-\alpha)\,\mathrm{CE}(z_s, y) + \alpha\,\mathcal{L}_{KD}.$$
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import Distiller, check_logits


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 4.0) -> Tensor:
    r"""$T^2\,\mathrm{KL}(\mathrm{softmax}(z_t/T)\|\mathrm{softmax}(z_s/T))$, averaged over the batch."""
    check_logits(student_logits, teacher_logits)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_p = F.log_softmax(student_logits / temperature, dim=1)
    log_q = F.log_softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_p, log_q, reduction="batchmean", log_target=True) * temperature**2


class KD(Distiller):
    """Hinton KD: ``terms = {"ce": (1 - alpha) CE(z_s, y), "kd": alpha kd_loss(z_s, z_t, T)}``."""

    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9) -> None:
        super().__init__(student, teacher)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.alpha = alpha

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student(x)
        teacher_logits = self.teacher_forward(x)
        return logits, {
            "ce": (1 - self.alpha) * F.cross_entropy(logits, y),
            "kd": self.alpha * kd_loss(logits, teacher_logits, self.temperature),
        }
