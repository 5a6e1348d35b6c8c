"""Uniform per-stage features for any kdlab model: a list of (B, C, H, W) maps.

CNN and Swin stages are spatial maps already. ViT blocks and Mixer blocks are token sequences: their patch
tokens are laid back on the patch grid (row-major) and prefix tokens (class / distillation / register)
are split off, so every family speaks the same (B, C, H, W) language. For a ViT a "stage" is a block.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .registry import family_of


def stage_features(model: nn.Module, x: Tensor, indices: int | list[int] | None = None) -> list[Tensor]:
    """Stage outputs of ``model`` on ``x`` as (B, C, H, W) maps, shallowest first.

    ``indices`` selects stages (ViT/Mixer: blocks) as in timm's ``forward_intermediates``: ``None`` means
    every stage, an int ``n`` the last ``n``. Gradients flow unless the caller disables them.
    """
    kwargs = _intermediates_kwargs(model, x, indices)  # checks the model before its forward_intermediates is read
    return list(model.forward_intermediates(x, **kwargs, intermediates_only=True))


def logits_and_stage_features(model: nn.Module, x: Tensor, indices: list[int]) -> tuple[Tensor, list[Tensor]]:
    """The final logits and the chosen stages' (B, C, H, W) maps from ONE forward pass (methods that supervise
    both, such as OFA's branches and FitNet's hints, must not run the student twice). ``indices`` are 0-based."""
    if not indices:
        return model(x), []
    kwargs = _intermediates_kwargs(model, x, indices)
    final, intermediates = model.forward_intermediates(x, **kwargs)
    return model.forward_head(final), list(intermediates)


def _intermediates_kwargs(model: nn.Module, x: Tensor, indices: int | list[int] | None) -> dict:
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    require_methods(model, "stage features need a model with stage maps (timm's forward_intermediates)",
                    ("forward_intermediates",))
    kwargs: dict = {"indices": indices}
    if family_of(model) == "vit":
        kwargs["output_fmt"] = "NCHW"  # timm reshapes patch tokens and drops the prefix tokens
    return kwargs


def dry_run(model: nn.Module, fn: Callable[[Tensor], Any], img_size: int, in_chans: int = 3, batch: int = 1) -> Any:
    """``fn(zeros)`` on a (batch, in_chans, img_size, img_size) batch of zeros on the model's device and dtype, in
    eval mode under ``no_grad`` (the model's train/eval mode is restored): to read off output shapes."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            weight = next(model.parameters())
            return fn(torch.zeros(batch, in_chans, img_size, img_size, device=weight.device, dtype=weight.dtype))
    finally:
        model.train(was_training)


def require_methods(model: nn.Module, contract: str, methods: tuple[str, ...] = ("forward_features", "forward_head")) -> None:
    """A ``ValueError`` naming the missing method unless ``model`` has all ``methods``; ``contract`` says what
    they must return (e.g. "a segmentation model must provide forward_features(x) -> ...")."""
    for method in methods:
        if not callable(getattr(model, method, None)):
            raise ValueError(f"{contract}; {type(model).__name__} has no {method}")


def stage_shapes(model: nn.Module, img_size: int = 32, in_chans: int = 3) -> list[tuple[int, int, int]]:
    """(C, H, W) of every stage, from one dry run on zeros (:func:`dry_run`)."""
    return [tuple(f.shape[1:]) for f in dry_run(model, lambda x: stage_features(model, x), img_size, in_chans)]


def pre_logits(model: nn.Module, x: Tensor) -> Tensor:
    """The (B, D) vector the classifier reads: pooled final features, before the last linear layer."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


@torch.no_grad()
def class_activation_map(model: nn.Module, x: Tensor, classes: Tensor | None = None) -> Tensor:
    r"""Where a CNN's evidence for a class lies (CAM, Zhou et al. 2016): with the last stage's map
    $F\in\mathbb{R}^{C\times h\times w}$, global average pooling and the linear classifier $W\in\mathbb{R}^{K\times C}$,

    $$M_k[i, j] = \sum_c W_{kc}\,F_c[i, j],\qquad z_k = \frac{1}{hw}\sum_{i,j} M_k[i, j] + b_k,$$

    so the map averages to the logit. Returns (N, h, w) maps for ``classes`` (default: each image's predicted class).
    Needs timm's ``ClassifierHead`` (``head.global_pool`` average, ``head.fc`` linear), which the CNNs have."""
    fc = getattr(getattr(model, "head", None), "fc", None)
    pool = getattr(getattr(model, "head", None), "global_pool", None)
    if not isinstance(fc, nn.Linear) or getattr(pool, "pool_type", None) != "avg":
        raise ValueError(f"class_activation_map needs an average-pooled linear head (timm ClassifierHead); "
                         f"{type(model).__name__} has none")
    was_training = model.training
    model.eval()
    try:
        fmap = model.forward_features(x)
    finally:
        model.train(was_training)
    maps = torch.einsum("kc,nchw->nkhw", fc.weight, fmap)
    if classes is None:
        classes = (maps.mean(dim=(2, 3)) + fc.bias).argmax(dim=1)
    return maps[torch.arange(len(x)), classes.to(maps.device)]


def tokens_to_map(tokens: Tensor, grid: tuple[int, int] | None = None, num_prefix_tokens: int = 0) -> Tensor:
    """(B, N_prefix + H*W, C) tokens -> (B, C, H, W) map of the patch tokens (row-major order).

    ``grid`` defaults to a square grid. Prefix tokens are dropped; take ``tokens[:, :num_prefix_tokens]``
    yourself if you need them.
    """
    if tokens.ndim != 3:
        raise ValueError(f"expected (B, N, C) tokens, got shape {tuple(tokens.shape)}")
    patches = tokens[:, num_prefix_tokens:]
    n = patches.shape[1]
    if grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patch tokens do not form a square grid; pass grid=(H, W)")
        grid = (side, side)
    if grid[0] * grid[1] != n:
        raise ValueError(f"grid {grid} holds {grid[0] * grid[1]} tokens, but there are {n} patch tokens")
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


def map_to_tokens(fmap: Tensor) -> Tensor:
    """(B, C, H, W) map -> (B, H*W, C) tokens in row-major order (inverse of :func:`tokens_to_map`)."""
    if fmap.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) map, got shape {tuple(fmap.shape)}")
    return fmap.flatten(2).transpose(1, 2)
