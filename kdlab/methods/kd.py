r"""Hinton knowledge distillation (Hinton, Vinyals, Dean 2015): the baseline every paper compares with.

With student logits $z_s$, teacher logits $z_t$ and temperature $T$,

$$\mathcal{L}_{KD} = T^2 \cdot \frac{1}{B}\sum_{b=1}^{B} \mathrm{KL}\big(\mathrm{softmax}(z_t/T)\,\|\,\mathrm{softmax}(z_s/T)\big)$$

The $T^2$ keeps the gradient's size independent of $T$: $\partial\mathcal{L}/\partial z_s = T\,(p - q)/B$
with $p=\mathrm{softmax}(z_s/T)$, $q=\mathrm{softmax}(z_t/T)$. The distiller mixes it with the hard-label loss,

$$\mathcal{L} = (1-\alpha)\,\mathrm{CE}(z_s, y) + \alpha\,\mathcal{L}_{KD},$$

where the mixing weight $\alpha$ of the paper is ``kd_weight`` (the weight of the ``"kd"`` term; CE gets the
complement).

**The bias correction of the omitted-class experiment (paper §3).** A student distilled on a transfer set without
one class $k$ learns the class from the teacher's soft targets alone, and its bias for $k$ ends up too low; the
paper raises that one logit by a constant, $z_k \leftarrow z_k + b$, chosen for the best overall accuracy
(:func:`with_class_bias`, :func:`choose_class_bias`; kdlab chooses $b$ on the validation split, never on test).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_fraction, check_int, check_positive, check_same_shape
from .base import Distiller
from .common import labelled_cross_entropy


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 4.0) -> Tensor:
    r"""$T^2\,\mathrm{KL}(\mathrm{softmax}(z_t/T)\|\mathrm{softmax}(z_s/T))$, averaged over the batch."""
    check_same_shape("student logits", student_logits, "teacher logits", teacher_logits, ndim=2)
    check_positive("temperature", temperature)
    log_p = F.log_softmax(student_logits / temperature, dim=1)
    log_q = F.log_softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_p, log_q, reduction="batchmean", log_target=True) * temperature**2


class KD(Distiller):
    r"""Hinton KD: ``terms = {"ce": (1 - kd_weight) CE(z_s, y), "kd": kd_weight kd_loss(z_s, z_t, T)}``.

    ``kd_weight`` is the paper's $\alpha$, in [0, 1]; ``temperature`` is $T$.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float = 4.0,
                 kd_weight: float = 0.9) -> None:
        super().__init__(student, teacher)
        check_fraction("kd_weight", kd_weight)
        check_positive("temperature", temperature)
        self.temperature = temperature
        self.kd_weight = kd_weight

    def forward(self, x: Tensor, y: Tensor, *, progress: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student(x)
        teacher_logits = self.teacher_forward(x)
        return logits, {
            "ce": (1 - self.kd_weight) * labelled_cross_entropy(logits, y),
            "kd": self.kd_weight * kd_loss(logits, teacher_logits, self.temperature),
        }


def with_class_bias(logits: Tensor, k: int, bias: float) -> Tensor:
    """``logits`` (N, K) with ``bias`` added to column ``k``: $z_k + b$ (a new tensor)."""
    check_int("k", k, low=0, high=logits.shape[1] - 1)
    shifted = logits.clone()
    shifted[:, k] += bias
    return shifted


def choose_class_bias(val_logits: Tensor, val_y: Tensor, k: int, grid: Sequence[float]) -> float:
    """The $b$ of ``grid`` whose :func:`with_class_bias` gives the highest accuracy on the validation logits (the
    paper's bias correction, chosen on validation; ties go to the smallest $|b|$)."""
    if not grid:
        raise ValueError("grid must hold at least one bias")
    scores = [((with_class_bias(val_logits, k, b).argmax(1) == val_y).float().mean().item(), -abs(b), b)
              for b in map(float, grid)]
    return max(scores)[2]
