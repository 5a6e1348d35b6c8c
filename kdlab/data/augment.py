"""On-device batch augmentation: random padded crops and horizontal flips, vectorised over the batch.

Every function works on a whole ``(N, C, H, W)`` batch on its own device (CPU or CUDA) with no Python
loop over samples: a crop is one ``gather`` through per-sample source indices (no padded image is built;
border pixels read a single appended zero or a reflected index), a flip is one ``torch.where``.
Segmentation masks ``(N, H, W)`` passed as ``mask=`` receive exactly the same crop and flip, and the
functions then return ``(x, mask)`` instead of ``x``.

Randomness comes from ``generator`` (or torch's global generator when it is ``None``): the same
generator state gives the same output. The generator must live on the batch's device
(``torch.Generator(device=x.device)``); a CPU generator with a CUDA batch is refused.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..checks import check_choice, check_fraction, check_int, check_tensor

MODES = ("zeros", "reflect")
"""Crop padding modes: ``"zeros"`` fills with 0 (and masks with label 0, background); ``"reflect"``
mirrors the border without repeating the edge pixel (as ``F.pad(mode="reflect")``), masks alike."""


def random_crop(x: Tensor, padding: int = 4, generator: torch.Generator | None = None, *, mode: str = "zeros",
                mask: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """Pad each image by ``padding`` on every side and crop it back to ``H x W`` at a random offset.

    Each sample draws its own offset ``(dy, dx)`` uniformly in ``[0, 2 * padding]``; output pixel
    ``(i, j)`` is the padded image's pixel ``(i + dy, j + dx)``, so every output is a translation of its
    input by up to ``padding`` pixels. The offsets are ``torch.randint(0, 2 * padding + 1, (2, N))``
    from ``generator`` (rows ``dy``, then ``dx``); ``padding=0`` returns the inputs unchanged.

    Args:
        x: ``(N, C, H, W)`` batch (any dtype).
        padding: pixels of padding per side, an int >= 0 (``"reflect"`` needs ``padding < H`` and ``< W``).
        generator: source of randomness, on ``x``'s device.
        mode: ``"zeros"`` or ``"reflect"`` (see :data:`MODES`).
        mask: optional ``(N, H, W)`` per-pixel labels that get the same crop (zero padding -> label 0).

    Returns:
        the cropped batch, or ``(batch, mask)`` when a mask was given.
    """
    _check_batch(x, mask)
    _check_crop(padding, mode, x)
    _check_generator(generator, x.device)
    return _result(*_crop(x, mask, padding, mode, generator))


def random_hflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None, *,
                 mask: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """Mirror each image left-right with probability ``p``.

    Sample ``i`` is flipped when the ``i``-th value of ``torch.rand(N, generator=generator)`` is below ``p``.

    Args:
        x: ``(N, C, H, W)`` batch (any dtype).
        p: flip probability in ``[0, 1]``.
        generator: source of randomness, on ``x``'s device.
        mask: optional ``(N, H, W)`` per-pixel labels flipped together with their images.

    Returns:
        the batch, or ``(batch, mask)`` when a mask was given.
    """
    _check_batch(x, mask)
    check_fraction("p", p)
    _check_generator(generator, x.device)
    return _result(*_hflip(x, mask, p, generator))


@dataclass(frozen=True)
class CropFlip:
    """The standard augmentation as one callable: :func:`random_crop` then :func:`random_hflip`.

    ``aug(x, generator=g)`` returns the augmented batch; ``aug(x, mask, generator=g)`` returns
    ``(x, mask)`` with both transformed alike. Arguments as in the two functions (``p_flip`` is ``p``).
    """

    padding: int = 4
    p_flip: float = 0.5
    mode: str = "zeros"

    def __post_init__(self) -> None:
        """Check the settings once, so a bad augmentation fails when built, not mid-training."""
        _check_padding(self.padding, self.mode)
        check_fraction("p_flip", self.p_flip)

    def __call__(self, x: Tensor, mask: Tensor | None = None, *,
                 generator: torch.Generator | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Crop then flip ``x`` (and ``mask``) with randomness from ``generator``."""
        _check_batch(x, mask)
        _check_crop(self.padding, self.mode, x)
        _check_generator(generator, x.device)
        x, mask = _crop(x, mask, self.padding, self.mode, generator)
        return _result(*_hflip(x, mask, self.p_flip, generator))


def crop_flip(padding: int = 4, p_flip: float = 0.5, mode: str = "zeros") -> CropFlip:
    """A :class:`CropFlip`: random ``padding``-pixel crop, then a horizontal flip with probability ``p_flip``."""
    return CropFlip(padding=padding, p_flip=p_flip, mode=mode)


def _crop(x: Tensor, mask: Tensor | None, padding: int, mode: str,
          generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
    """Random crop of a checked batch (and mask): one gather through per-sample flat source indices."""
    if padding == 0:
        return x, mask
    n, _, h, w = x.shape
    shift = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=x.device) - padding
    rows, rows_ok = _source_index(shift[0], h, mode)
    cols, cols_ok = _source_index(shift[1], w, mode)
    index = rows[:, :, None] * w + cols[:, None, :]
    zero = mode == "zeros"
    if zero:  # border pixels read the one zero appended after the image's pixels
        index = index.masked_fill(~(rows_ok[:, :, None] & cols_ok[:, None, :]), h * w)
    return _take(x, index, zero), None if mask is None else _take(mask[:, None], index, zero)[:, 0]


def _source_index(shift: Tensor, size: int, mode: str) -> tuple[Tensor, Tensor]:
    """For output positions ``0..size-1`` shifted by ``shift`` (N,), the source indices ``(N, size)``
    inside the image and whether each one fell inside before reflecting or clamping."""
    index = torch.arange(size, device=shift.device)[None, :] + shift[:, None]
    inside = (index >= 0) & (index < size)
    if mode == "reflect":
        index = index.abs()
        index = torch.where(index >= size, 2 * (size - 1) - index, index)
    else:
        index = index.clamp(0, size - 1)
    return index, inside


def _take(t: Tensor, index: Tensor, append_zero: bool) -> Tensor:
    """``out[n, c, i, j] = t_flat[n, c, index[n, i, j]]`` for ``t`` (N, C, H, W), where ``t_flat`` is ``t``
    with its pixels flattened (plus one zero pixel at position ``H * W`` when ``append_zero``)."""
    n, c, h, w = t.shape
    flat = t.flatten(2)
    if append_zero:
        flat = torch.cat([flat, flat.new_zeros(n, c, 1)], dim=2)
    return flat.gather(2, index.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)


def _hflip(x: Tensor, mask: Tensor | None, p: float,
           generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
    """Flip the samples whose uniform draw is below ``p``."""
    flip = torch.rand(len(x), generator=generator, device=x.device) < p
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    mask = None if mask is None else torch.where(flip[:, None, None], mask.flip(-1), mask)
    return x, mask


def _result(x: Tensor, mask: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
    """``x`` alone, or ``(x, mask)`` when a mask travels with it."""
    return x if mask is None else (x, mask)


def _check_batch(x: object, mask: object) -> None:
    """``x`` must be an (N, C, H, W) tensor; ``mask``, if any, (N, H, W) on the same device."""
    check_tensor("x", x, ndim=4)
    if mask is None:
        return
    n, _, h, w = x.shape
    if not isinstance(mask, Tensor) or mask.shape != (n, h, w):
        got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be an ({n}, {h}, {w}) tensor to match the batch, got {got}")
    if mask.device != x.device:
        raise ValueError(f"mask must be on the batch's device {x.device}, got {mask.device}")


def _check_padding(padding: object, mode: str) -> None:
    """``padding`` must be an int >= 0 and ``mode`` one of :data:`MODES`."""
    check_int("padding", padding, low=0)
    check_choice("mode", mode, MODES)


def _check_crop(padding: object, mode: str, x: Tensor) -> None:
    """Padding and mode are valid for this batch (reflection needs ``padding`` below the image size)."""
    _check_padding(padding, mode)
    if mode == "reflect" and padding >= min(x.shape[-2:]):
        raise ValueError(f"reflect padding must be smaller than the image size {tuple(x.shape[-2:])}, got {padding}")


def _check_generator(generator: object, device: torch.device) -> None:
    """``generator`` is ``None`` or a ``torch.Generator`` on ``device`` (a missing index matches any)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    gd = generator.device
    if gd.type != device.type or (gd.index is not None and device.index is not None and gd.index != device.index):
        raise ValueError(f"the generator is on {gd} but the batch is on {device}; "
                         "create it with torch.Generator(device=x.device)")


# ----------------------------------------------------------------------------- fixed test-time transforms


def translate(x: Tensor, dy: int, dx: int) -> Tensor:
    """Every image of the batch moved by ``dy`` rows and ``dx`` columns (down / right when positive), the
    uncovered border filled with 0: output pixel ``(i, j)`` is input pixel ``(i - dy, j - dx)``. The primer's
    shifted test set (§8) moves the images further than training's 4-pixel crops ever did."""
    _check_batch(x, None)
    h, w = x.shape[-2:]
    dy, dx = check_int("dy", dy, low=-(h - 1), high=h - 1), check_int("dx", dx, low=-(w - 1), high=w - 1)
    out = torch.zeros_like(x)
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def rotate(x: Tensor, degrees: float) -> Tensor:
    r"""Every image of the batch rotated by ``degrees`` counter-clockwise as displayed (row 0 at the top) about its centre, bilinear, 0 outside:
    ``grid_sample`` through the rotation $\begin{pmatrix}\cos\theta & -\sin\theta\\ \sin\theta & \cos\theta
    \end{pmatrix}$ of the normalised coordinates (square images rotate exactly)."""
    _check_batch(x, None)
    if not torch.is_floating_point(x):
        raise ValueError(f"rotate needs floating-point images, got {x.dtype}")
    theta = torch.deg2rad(torch.tensor(float(degrees), dtype=x.dtype, device=x.device))
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    matrix = torch.stack([torch.stack([cos, -sin, zero]), torch.stack([sin, cos, zero])])  # output -> input coordinates
    grid = torch.nn.functional.affine_grid(matrix.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


__all__ = ["MODES", "CropFlip", "crop_flip", "random_crop", "random_hflip", "rotate", "translate"]
