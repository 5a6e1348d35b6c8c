"""The multilayer-perceptron family: ``mlp`` (Hinton et al. 2015's digit networks, at the bundled digits' scale).

============= ======== ====================================================================
name           family   architecture (defaults; every keyword can be overridden in ``create``)
============= ======== ====================================================================
mlp            mlp      flatten, 2 hidden ReLU layers of 512, dropout 0 (``hidden``, ``dropout``)
============= ======== ====================================================================

An MLP reads the image as one flat vector, so it has no stage *maps*: :func:`kdlab.models.stage_features` and the
feature-based methods are for the image families. The primer's dark-knowledge experiment
(``notebooks/00_primer.ipynb`` §6) distils a 2x512 teacher with dropout into a 2x64 student on 8x8 digits, the
paper's §3 setting shrunk from 784-1200-1200-10 / 784-800-800-10 on MNIST.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..checks import check_fraction, check_int
from .registry import register, register_family_class


class MLP(nn.Module):
    r"""$z = W_{L+1}\,\mathrm{drop}(\mathrm{ReLU}(W_L \cdots \mathrm{drop}(\mathrm{ReLU}(W_1\,\mathrm{vec}(x)))))$:
    ``hidden`` widths, dropout ``dropout`` after every hidden layer (and ``input_dropout`` on the pixels)."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, dropout: float = 0.0,
                 input_dropout: float = 0.0) -> None:
        super().__init__()
        widths = [check_int("in_features", in_features, low=1)]
        widths += [check_int("hidden width", h, low=1) for h in hidden]
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(check_fraction("input_dropout", input_dropout))]
        for width_in, width_out in zip(widths, widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.ReLU(), nn.Dropout(check_fraction("dropout", dropout))]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


register_family_class(MLP, "mlp")


@register("mlp", family="mlp", defaults=dict(hidden=(512, 512), dropout=0.0, input_dropout=0.0))
def mlp(num_classes: int, img_size: int, in_chans: int, **kwargs) -> nn.Module:
    return MLP(in_chans * img_size * img_size, num_classes=num_classes, **kwargs)
