r"""LGConv, DisDepth's local-global convolution (Zheng et al., arXiv:2404.16386, §2.2): a global branch $G$ next to
a pretrained 3x3 conv, $y = \mathrm{Conv}_{3\times3}(x) + G(x)$, so a CNN student sees the whole image.

With $x\in\mathbb{R}^{B\times C\times H\times W}$, $c = C/r$ and $h$ heads [our choice: the public
``LocalGlobalConv`` of PU-MLC, co-authored by DisDepth's second author]:

$$z = \mathrm{ReLU}(\mathrm{Conv}^{1\times1}_{C\to c}x),\quad u = [z;\ \mathrm{mean}_{HW}z],\quad
  a = \mathrm{softmax}_{HW}(\mathrm{Conv}^{1\times1}_{2c\to h}u),\quad
  \beta = \sigma(\mathrm{Conv}^{1\times1}_{2c\to h}u),$$
$$v = \mathrm{Conv}^{1\times1}_{C\to C}x\ \text{split into } h \text{ heads},\quad
  g_{h'} = \sum_p a_{h'}(p)\,v_{h'}(p),\quad v'_{h'}(p) = \beta_{h'}(p)\,g_{h'},$$
$$G(x) = \mathrm{BN}(\mathrm{Conv}^{1\times1,\,s}_{C\to C_{out}}(x + v')).$$

The BN scale is drawn from $\mathcal{N}(0, (10^{-4})^2)$ and its bias is 0, so a converted network starts as
the original.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int, check_number


def lgconv_problem(conv: nn.Module, heads: int = 8, reduction: int = 4) -> str | None:
    """Why ``conv`` cannot be wrapped by :class:`LocalGlobalConv` (``None`` if it can)."""
    if not isinstance(conv, nn.Conv2d):
        return f"expected an nn.Conv2d, got {type(conv).__name__}"
    if tuple(conv.kernel_size) != (3, 3):
        return f"kernel {tuple(conv.kernel_size)} is not 3x3"
    same = conv.padding == "same" if isinstance(conv.padding, str) else tuple(conv.padding) == (1, 1)
    if not same:
        return f"padding {conv.padding!r} is not 1 ('same'), so a stride-s 1x1 projection would not match its size"
    if tuple(conv.dilation) != (1, 1):
        return f"dilation {tuple(conv.dilation)} is not 1"
    if conv.in_channels < reduction or conv.in_channels % heads:
        return (f"{conv.in_channels} input channels: need >= reduction ({reduction}) and a multiple of the "
                f"{heads} heads")
    return None


class LocalGlobalConv(nn.Module):
    r"""LGConv: ``y = conv(x) + G(x)`` with the global branch $G$ of the module docstring (§2.2).

    ``conv`` is kept untouched (any stride, groups; 3x3, padding 1, dilation 1). The branch has
    ~$C^2/r + 4ch + C^2 + C\,C_{out}$ parameters: dense even for a depthwise conv. Defaults $h=8$, $r=4$, BN
    scale std ``init_std`` = 1e-4 (the public module's).
    """

    def __init__(self, conv: nn.Conv2d, heads: int = 8, reduction: int = 4, init_std: float = 1e-4) -> None:
        super().__init__()
        check_int("heads", heads, low=1)
        check_int("reduction", reduction, low=1)
        check_number("init_std", init_std, low=0.0)
        problem = lgconv_problem(conv, heads, reduction)
        if problem:
            raise ValueError(f"cannot wrap this conv in LocalGlobalConv: {problem}")
        c_in, c_out, hidden = conv.in_channels, conv.out_channels, conv.in_channels // reduction
        kw = dict(device=conv.weight.device, dtype=conv.weight.dtype)
        self.conv, self.heads = conv, heads
        self.reduce = nn.Conv2d(c_in, hidden, 1, **kw)
        self.attend = nn.Conv2d(2 * hidden, heads, 1, **kw)
        self.gate = nn.Conv2d(2 * hidden, heads, 1, **kw)
        self.value = nn.Conv2d(c_in, c_in, 1, **kw)
        self.proj = nn.Conv2d(c_in, c_out, 1, stride=conv.stride, bias=False, **kw)
        self.norm = nn.BatchNorm2d(c_out, **kw)
        nn.init.normal_(self.norm.weight, 0.0, init_std)
        nn.init.zeros_(self.norm.bias)

    def maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""The aggregation attention $a$ (softmax over pixels) and broadcast gate $\beta$, both (B, h, H, W)."""
        z = F.relu(self.reduce(x))
        u = torch.cat([z, z.mean(dim=(2, 3), keepdim=True).expand_as(z)], dim=1)
        b, _, h, w = x.shape
        a = torch.softmax(self.attend(u).flatten(2), dim=-1).reshape(b, self.heads, h, w)
        return a, torch.sigmoid(self.gate(u))

    def global_branch(self, x: Tensor) -> Tensor:
        r"""$G(x)$: (B, C, H, W) -> (B, C_out, H', W'), the wrapped conv's output shape."""
        a, beta = self.maps(x)
        b, c, h, w = x.shape
        v = self.value(x).reshape(b, self.heads, c // self.heads, h * w)
        g = torch.einsum("bnp,bncp->bnc", a.flatten(2), v)  # one global token per head
        broadcast = g.unsqueeze(-1) * beta.flatten(2).unsqueeze(2)  # (B, h, C/h, HW)
        return self.norm(self.proj(x + broadcast.reshape(b, c, h, w)))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + self.global_branch(x)


def convert_to_lgconv(model: nn.Module, heads: int = 8, reduction: int = 4, init_std: float = 1e-4,
                      stem_channels: int = 3) -> nn.Module:
    """Wrap, **in place**, every eligible 3x3 ``Conv2d`` of ``model`` (depthwise included) in a
    :class:`LocalGlobalConv`, and return ``model``.

    Skipped: convs reading ``stem_channels`` channels (the RGB stem), convs that are not 3x3 with padding 1
    and dilation 1, convs whose input channels are not a multiple of ``heads`` or fewer than ``reduction``
    (:func:`lgconv_problem`), and convs already inside a ``LocalGlobalConv`` (converting twice is a no-op).
    New modules go to the wrapped conv's device and dtype.
    """
    for name, child in model.named_children():
        if isinstance(child, LocalGlobalConv):
            continue
        if (isinstance(child, nn.Conv2d) and child.in_channels != stem_channels
                and lgconv_problem(child, heads, reduction) is None):
            setattr(model, name, LocalGlobalConv(child, heads, reduction, init_std))
        else:
            convert_to_lgconv(child, heads, reduction, init_std, stem_channels)
    return model


def lgconv_layers(model: nn.Module) -> dict[str, LocalGlobalConv]:
    """The :class:`LocalGlobalConv` modules of ``model`` by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LocalGlobalConv)}
