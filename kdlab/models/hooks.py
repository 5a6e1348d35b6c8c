"""Capture module outputs and attention maps by module path, without editing any ``forward()``.

timm computes attention with a fused kernel that never materialises the attention matrix. To look at
it, :func:`capture_attention` switches the chosen attention modules to their explicit path
(``fused_attn = False``, numerically the same) for the duration of the call, and records the input of
their ``attn_drop`` module: the post-softmax attention probabilities, (B, heads, N, N) for a ViT and
(B * windows, heads, N, N) for a Swin window attention. :func:`cls_attention` reads one ViT block's
class-token row off it and lays it on the patch grid.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn

from ..checks import check_int
from .features import tokens_to_map


def _modules(model: nn.Module, paths: list[str]) -> dict[str, nn.Module]:
    named = dict(model.named_modules())
    missing = [p for p in paths if p not in named]
    if missing:
        sample = ", ".join(list(named)[1:8])
        raise KeyError(f"no module at path(s) {missing}; paths look like: {sample}, ...")
    return {p: named[p] for p in paths}


@contextmanager
def capture_outputs(model: nn.Module, paths: list[str]) -> Iterator[dict[str, Tensor]]:
    """Within the ``with`` block, ``store[path]`` holds the latest output of each module at ``paths``.

    >>> with capture_outputs(model, ["blocks.0"]) as store:
    ...     model(x)
    >>> store["blocks.0"].shape
    """
    store: dict[str, Tensor] = {}
    handles = [
        module.register_forward_hook(lambda _m, _inp, out, path=path: store.__setitem__(path, out))
        for path, module in _modules(model, paths).items()
    ]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def attention_paths(model: nn.Module) -> list[str]:
    """Paths of every attention module that has an explicit softmax path (timm ViT / Swin blocks)."""
    return [name for name, m in model.named_modules() if hasattr(m, "fused_attn") and hasattr(m, "attn_drop")]


@torch.no_grad()
def capture_attention(model: nn.Module, x: Tensor, paths: list[str] | None = None) -> dict[str, Tensor]:
    """Run ``model(x)`` in eval mode and return ``{path: attention probabilities}`` for the chosen modules.

    ``paths`` defaults to :func:`attention_paths` (every attention module). Each value is
    (B', heads, N, N) and its rows sum to 1. The model's mode and fused-attention flags are restored.
    """
    paths = attention_paths(model) if paths is None else paths
    if not paths:
        raise ValueError(f"{type(model).__name__} has no timm attention modules to capture")
    modules = _modules(model, paths)
    not_attention = [p for p, m in modules.items() if not hasattr(m, "attn_drop")]
    if not_attention:
        raise ValueError(f"modules {not_attention} are not attention modules; see attention_paths(model)")
    store: dict[str, Tensor] = {}
    fused = {p: m.fused_attn for p, m in modules.items()}
    handles = [
        m.attn_drop.register_forward_hook(lambda _m, inp, _out, path=p: store.__setitem__(path, inp[0].detach()))
        for p, m in modules.items()
    ]
    was_training = model.training
    try:
        for m in modules.values():
            m.fused_attn = False
        model.eval()
        model(x)
    finally:
        for handle in handles:
            handle.remove()
        for p, m in modules.items():
            m.fused_attn = fused[p]
        model.train(was_training)
    return store


def cls_attention(model: nn.Module, x: Tensor, block: int = -1, head: int | None = None) -> Tensor:
    r"""Where the class token looks: its attention to the patches in one ViT block, (N, g_h, g_w).

    With $A\in\mathbb{R}^{N\times H\times T\times T}$ the block's post-softmax attention
    (:func:`capture_attention`, eval mode), $H$ heads and $p$ prefix tokens (the class token first, then
    DeiT's distillation token or register tokens; ``model.num_prefix_tokens``),

    $$a[n, k] = \frac{\bar A[n, 0, p + k]}{\sum_{k'} \bar A[n, 0, p + k']},\qquad
      \bar A = \frac1H\sum_h A[:, h],\quad k = 0,\dots,g_hg_w-1,$$

    the head-averaged row of token 0 restricted to the patch tokens and renormalised to sum to 1, laid on the
    ``patch_embed.grid_size`` grid row-major (as :func:`~kdlab.models.features.tokens_to_map`). ``block``
    indexes ``model.blocks`` (default the last); ``head`` picks one head's row $A[:, h]$ instead of the mean. Works for timm's ``VisionTransformer`` and
    ``VisionTransformerDistilled``; a model without a class token or patch grid (MLP-Mixer, Swin, a ViT with
    ``class_token=False``) raises a ``ValueError``.
    """
    blocks = getattr(model, "blocks", None)
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if getattr(model, "cls_token", None) is None or not isinstance(blocks, nn.Sequential) or grid is None:
        raise ValueError(f"cls_attention needs a ViT with a class token, blocks and a patch grid (timm "
                         f"VisionTransformer); {type(model).__name__} has none")
    depth = len(blocks)
    check_int(f"block (of a {depth}-block ViT)", block, low=-depth, high=depth - 1)
    path = f"blocks.{block % depth}.attn"
    rows = capture_attention(model, x, [path])[path][:, :, 0]  # (N, H, T): token 0's attention row per head
    if head is None:
        row = rows.mean(dim=1)
    else:
        row = rows[:, check_int(f"head (of {rows.shape[1]})", head, low=0, high=rows.shape[1] - 1)]
    patches = row[:, model.num_prefix_tokens:]
    patches = patches / patches.sum(dim=1, keepdim=True)
    return tokens_to_map(patches[:, :, None], tuple(grid), 0)[:, 0]
