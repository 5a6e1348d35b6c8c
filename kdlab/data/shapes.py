"""Procedural shape scenes: 10 classes, one main object per image, a per-pixel mask for segmentation.

Every image holds one main object whose *shape* is the class (``CLASSES``), drawn with a random colour,
size, rotation and position over a textured background (smooth colour noise + stripes), with small
distractor blobs and pixel noise. ``mask[i, h, w]`` is ``0`` on background (distractors included) and
``1 + y[i]`` on the object's pixels, so the same data serve classification and segmentation.

Generation is vectorised in torch: every shape is an inside test on a coordinate grid (polar bounds
for polygons and stars, distance tests for disks, rings, ellipses and crescents), evaluated for a whole
chunk of images at once. It is deterministic from ``seed`` (a ``torch.Generator``) and takes about
2.5 s per 10k images at 32x32 on two CPU cores.

How hard the task is comes from a :class:`ShapeStyle` (clutter, distractors, rotation, size range,
contrast, noise). ``difficulty`` in ``[0, 1]`` picks a preset between :data:`EASY` and :data:`HARD`;
keyword overrides replace single levers::

    train, test = shapes_splits(2000, 2000)                       # the calibrated default
    easy = make_shapes(500, difficulty=0.0)                       # plain background, upright shapes
    tricky = make_shapes(500, difficulty=0.3, distractors=4)      # preset + one lever changed
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_choice, check_fraction, check_int, check_number, is_number
from .styles import Style
from .tensors import ImageSet

CLASSES: tuple[str, ...] = (
    "disk", "square", "triangle", "star", "cross", "ring", "ellipse", "pentagon", "hexagon", "crescent",
)
"""Class names; ``y == k`` means ``CLASSES[k]``, and the mask stores ``1 + k`` on the object."""

DEFAULT_DIFFICULTY = 0.08
"""The difficulty used when none is given (the calibrated setting, see ``data/README.md``)."""

_TEST_SEED_OFFSET = 1_000_003
"""``shapes_splits`` draws the test set from ``seed + _TEST_SEED_OFFSET`` (a disjoint stream)."""

_VAL_SEED_OFFSET = 2_000_029
"""``shapes_val`` draws the validation set from ``seed + _VAL_SEED_OFFSET`` (disjoint from train and test)."""

_CHUNK_PIXELS = 4_000_000
"""Images are rendered in chunks of about this many pixels to bound memory."""


@dataclass(frozen=True)
class ShapeStyle(Style):
    """The levers that make shape scenes easy or hard.

    Attributes:
        clutter: strength of the textured background (smooth colour noise + stripes), in ``[0, 1]``.
        distractors: the largest number of small distractor blobs per image (each image draws 0..n).
        rotation: the object's rotation is uniform in ``[-rotation, rotation]`` degrees, in ``[0, 180]``.
        size: ``(lo, hi)`` object radius as a fraction of half the image side, ``0 < lo <= hi <= 1``.
        contrast: in ``[0, 1]``; 1 keeps the background in ``[0, 0.5]`` and the object (and distractors)
            in ``[0.5, 1]`` per channel; 0 lets both use the full range.
        noise: standard deviation of the Gaussian pixel noise added at the end (images are clipped to [0, 1]).
    """

    clutter: float = 0.5
    distractors: int = 2
    rotation: float = 90.0
    size: tuple[float, float] = (0.4, 0.75)
    contrast: float = 0.5
    noise: float = 0.04

    def __post_init__(self) -> None:
        """Check every lever (the values are kept as given, except ``size``, stored as a pair of floats)."""
        check_fraction("clutter", self.clutter)
        check_int("distractors", self.distractors, low=0, high=16)
        check_number("rotation", self.rotation, low=0.0, high=180.0)
        object.__setattr__(self, "size", _check_size_range(self.size))
        check_fraction("contrast", self.contrast)
        check_number("noise", self.noise, low=0.0, high=0.5)

    @classmethod
    def from_difficulty(cls, difficulty: float, **overrides) -> "ShapeStyle":
        """The preset for ``difficulty`` in ``[0, 1]`` (linear between :data:`EASY` and :data:`HARD`),
        with any field replaced by ``overrides`` (e.g. ``distractors=0``)."""
        d = check_fraction("difficulty", difficulty)

        def lerp(a: float, b: float) -> float:
            return a + (b - a) * d

        style = cls(
            clutter=lerp(EASY.clutter, HARD.clutter),
            distractors=int(round(lerp(EASY.distractors, HARD.distractors))),
            rotation=lerp(EASY.rotation, HARD.rotation),
            size=(lerp(EASY.size[0], HARD.size[0]), lerp(EASY.size[1], HARD.size[1])),
            contrast=lerp(EASY.contrast, HARD.contrast),
            noise=lerp(EASY.noise, HARD.noise),
        )
        return style.replace(**overrides)


def _check_size_range(size: object) -> tuple[float, float]:
    """``size`` as a ``(lo, hi)`` pair of floats with ``0 < lo <= hi <= 1`` (object radius, fraction of half
    the image side)."""
    pair = tuple(size) if isinstance(size, (tuple, list)) else ()
    if len(pair) == 2 and all(is_number(v) for v in pair) and 0.0 < pair[0] <= pair[1] <= 1.0:
        return float(pair[0]), float(pair[1])
    raise ValueError(f"size must be a (lo, hi) pair of numbers with 0 < lo <= hi <= 1, got {size!r}")


EASY = ShapeStyle(clutter=0.0, distractors=0, rotation=0.0, size=(0.55, 0.8), contrast=1.0, noise=0.0)
"""``difficulty=0``: plain background, upright large objects, object brighter than the background."""

HARD = ShapeStyle(clutter=1.0, distractors=4, rotation=180.0, size=(0.3, 0.7), contrast=0.0, noise=0.1)
"""``difficulty=1``: strong texture, up to 4 distractors, any rotation, small objects, no contrast."""


def resolve_style(difficulty: float | ShapeStyle | None = None, **overrides) -> ShapeStyle:
    """A :class:`ShapeStyle` from a difficulty float (or a style, or ``None`` for the default) plus overrides."""
    if difficulty is None:
        difficulty = DEFAULT_DIFFICULTY
    if isinstance(difficulty, ShapeStyle):
        return difficulty.replace(**overrides)
    return ShapeStyle.from_difficulty(difficulty, **overrides)


# ---------------------------------------------------------------------------------------------------
# inside tests in the object's own frame: (u, v) in units of the object's radius, object centred at 0


def _polar_polygon(u: Tensor, v: Tensor, radii: list[float], phase: float = math.pi / 2) -> Tensor:
    """Inside test for a polygon star-shaped around 0 with evenly spaced vertices at radii ``radii``
    (first vertex at angle ``phase``): the ray at each pixel's angle is bounded by its edge."""
    m = len(radii)
    step = 2 * math.pi / m
    rho = torch.sqrt(u * u + v * v)
    phi = torch.remainder(torch.atan2(v, u) - phase, 2 * math.pi)
    k = torch.clamp((phi / step).floor().long(), max=m - 1)
    r = torch.tensor(radii, dtype=u.dtype, device=u.device)
    r1, r2 = r[k], r[(k + 1) % m]
    a = phi - k * step  # angle from the sector's first vertex, in [0, step)
    # distance along the ray to the segment between (r1, 0) and (r2, step) in polar coordinates
    bound = r1 * r2 * math.sin(step) / (r1 * torch.sin(a) + r2 * torch.sin(step - a))
    return rho <= bound


def _inside(cls: int, u: Tensor, v: Tensor) -> Tensor:
    rr = u * u + v * v
    if cls == 0:  # disk
        return rr <= 0.85**2
    if cls == 1:  # square (area close to the disk's)
        return torch.maximum(u.abs(), v.abs()) <= 0.75
    if cls == 2:  # triangle
        return _polar_polygon(u, v, [1.0] * 3)
    if cls == 3:  # five-pointed star
        return _polar_polygon(u, v, [1.0, 0.45] * 5)
    if cls == 4:  # cross (plus sign)
        au, av = u.abs(), v.abs()
        return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))
    if cls == 5:  # ring
        return (rr <= 0.95**2) & (rr >= 0.55**2)
    if cls == 6:  # ellipse
        return (u / 1.0) ** 2 + (v / 0.55) ** 2 <= 1.0
    if cls == 7:  # pentagon
        return _polar_polygon(u, v, [0.9] * 5)
    if cls == 8:  # hexagon
        return _polar_polygon(u, v, [0.9] * 6, phase=0.0)
    if cls == 9:  # crescent: a disk minus a shifted disk
        return (rr <= 0.95**2) & ((u - 0.45) ** 2 + v * v >= 0.75**2)
    raise ValueError(f"unknown class index {cls}")


def _frame(gx: Tensor, gy: Tensor, cx: Tensor, cy: Tensor, radius: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
    """Grid coordinates (1, H, W) mapped into each object's frame: (n, H, W) each, in radius units."""
    dx, dy = gx - cx[:, None, None], gy - cy[:, None, None]
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    r = radius[:, None, None]
    return (dx * c + dy * s) / r, (-dx * s + dy * c) / r


def _colours(n: int, contrast: float, g: Tensor | torch.Generator) -> Tensor:
    """Foreground colours (n, 3): uniform per channel in ``[contrast / 2, 1]``."""
    lo = 0.5 * contrast
    return lo + (1 - lo) * torch.rand(n, 3, generator=g)


def _render(y: Tensor, img_size: int, style: ShapeStyle, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Images (n, 3, H, W) and masks (n, H, W) for labels ``y``; all randomness from ``g``."""
    n, size = len(y), img_size
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    gx, gy = gx[None], gy[None]

    # --- background: a base colour + smooth colour noise + stripes, scaled by the clutter lever
    base = torch.rand(n, 3, 1, 1, generator=g)
    smooth = F.interpolate(torch.randn(n, 3, 5, 5, generator=g), size=(size, size), mode="bicubic",
                           align_corners=False)
    angle = torch.rand(n, 1, 1, generator=g) * math.pi
    freq = 2 + 4 * torch.rand(n, 1, 1, generator=g)  # cycles across the image
    phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    wave = torch.sin(math.pi * freq * (gx * torch.cos(angle) + gy * torch.sin(angle)) + phase)
    stripe_colour = torch.rand(n, 3, 1, 1, generator=g) * 2 - 1
    texture = 0.35 * smooth + 0.35 * wave[:, None] * stripe_colour
    image = (base + style.clutter * texture).clamp(0, 1) * (1 - 0.5 * style.contrast)

    # --- distractors: small disks / squares / bars, drawn under the main object
    if style.distractors > 0:
        count = torch.randint(0, style.distractors + 1, (n,), generator=g)
        for slot in range(style.distractors):
            kind = torch.randint(0, 3, (n,), generator=g)
            radius = 0.08 + 0.1 * torch.rand(n, generator=g)
            cx, cy = (torch.rand(2, n, generator=g) * 2 - 1) * 0.9
            theta = torch.rand(n, generator=g) * math.pi
            colour = _colours(n, style.contrast, g)
            u, v = _frame(gx, gy, cx, cy, radius, theta)
            au, av = u.abs(), v.abs()
            blob = torch.where(kind[:, None, None] == 0, u * u + v * v <= 1,
                               torch.where(kind[:, None, None] == 1, torch.maximum(au, av) <= 0.8,
                                           (au <= 1.2) & (av <= 0.3)))
            blob &= (slot < count)[:, None, None]
            image = torch.where(blob[:, None], colour[:, :, None, None], image)

    # --- the main object
    lo, hi = style.size
    radius = lo + (hi - lo) * torch.rand(n, generator=g)
    room = (1 - radius).clamp(min=0)  # keep the object (its bounding circle) inside the image
    cx, cy = (torch.rand(2, n, generator=g) * 2 - 1) * room
    theta = (torch.rand(n, generator=g) * 2 - 1) * math.radians(style.rotation)
    colour = _colours(n, style.contrast, g)
    u, v = _frame(gx, gy, cx, cy, radius, theta)
    inside = torch.zeros(n, size, size, dtype=torch.bool)
    for cls in range(len(CLASSES)):
        idx = (y == cls).nonzero(as_tuple=True)[0]
        if len(idx):
            inside[idx] = _inside(cls, u[idx], v[idx])
    image = torch.where(inside[:, None], colour[:, :, None, None], image)
    mask = torch.where(inside, y[:, None, None] + 1, torch.zeros((), dtype=torch.int64))

    if style.noise > 0:
        image = image + style.noise * torch.randn(image.shape, generator=g)
    return image.clamp_(0, 1).contiguous(), mask


LAYOUTS = ("single", "mosaic")
"""Scene layouts: ``single`` (one main object, the class) or ``mosaic`` (a 2x2 grid of tiles, the class the one
shown on two tiles; see :func:`make_shapes`)."""

MOSAIC_SIZE = (0.6, 0.9)
"""A mosaic tile's object radius range (fraction of half the tile side) unless ``size`` is given: at 16 pixels a
tile with the preset's range leaves shapes a few pixels wide (a CNN teacher reached 69 and 71 % after 12 epochs with
(0.4, 0.75) and (0.6, 0.9) alike, and 91 % after 24 with (0.6, 0.9))."""


def make_shapes(n: int, *, img_size: int = 32, difficulty: float | ShapeStyle | None = None, seed: int = 0,
                name: str = "shapes", layout: str = "single", **overrides) -> ImageSet:
    """``n`` shape scenes as an :class:`~kdlab.data.tensors.ImageSet` with ``x`` (n, 3, S, S) in [0, 1],
    ``y`` (n,) int64 class indices (as balanced as ``n`` allows), ``mask`` (n, S, S) int64 and
    ``classes == CLASSES``.

    ``layout="mosaic"`` builds each image from a 2x2 grid of (S/2)-pixel tiles, each an independent scene with one
    object: two tiles (at random places) show the class ``y``, the other two show two different other classes. The
    label is decided by half of the image, and the other half holds objects of other classes, so a location's own
    class differs from the image's on half of it (notebook 02, the dense regime). The mask stores each tile's own
    object (``1 + k`` for its class ``k``). Tiles draw their objects' size from :data:`MOSAIC_SIZE` unless ``size``
    is among the overrides.

    Args:
        n: number of images (>= 1).
        img_size: side length ``S`` in pixels (an int >= 16; 32 is the default, 64 works too; even and >= 32 for
            ``mosaic``).
        difficulty: a float in ``[0, 1]`` (preset between :data:`EASY` and :data:`HARD`), a
            :class:`ShapeStyle`, or ``None`` for :data:`DEFAULT_DIFFICULTY`.
        seed: the same seed gives the same images, labels and masks.
        name: stored as ``ImageSet.name``.
        layout: one of :data:`LAYOUTS`.
        **overrides: :class:`ShapeStyle` fields replacing the preset's (``clutter=0``, ``rotation=30``, ...).
    """
    check_int("n", n, low=1)
    check_int("img_size", img_size, low=16)
    check_int("seed", seed, low=0)
    check_choice("layout", layout, LAYOUTS)
    if layout == "mosaic" and (img_size % 2 or img_size < 32):
        raise ValueError(f"a mosaic needs an even img_size >= 32 (two tiles of at least 16 pixels), got {img_size}")
    if layout == "mosaic":
        overrides.setdefault("size", MOSAIC_SIZE)
    style = resolve_style(difficulty, **overrides)
    g = torch.Generator().manual_seed(seed)
    k = len(CLASSES)
    y = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    if layout == "single":
        x, mask = _render_chunks(y, img_size, style, g)
    else:
        x, mask = _mosaic(_tile_classes(y, k, g), img_size, style, g)
    return ImageSet(x=x, y=y, classes=CLASSES, mask=mask, name=name)


def _render_chunks(y: Tensor, img_size: int, style: ShapeStyle, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """:func:`_render` in chunks of about :data:`_CHUNK_PIXELS` pixels (bounded memory), concatenated."""
    chunk = max(1, _CHUNK_PIXELS // (img_size * img_size))
    parts = [_render(y[start:start + chunk], img_size, style, g) for start in range(0, len(y), chunk)]
    return torch.cat([x for x, _ in parts]), torch.cat([m for _, m in parts])


def _tile_classes(y: Tensor, k: int, g: torch.Generator) -> Tensor:
    """(n, 4) classes of the mosaic tiles in row-major order: ``y`` twice and two distinct other classes, shuffled."""
    scores = torch.rand(len(y), k, generator=g).scatter_(1, y[:, None], 2.0)  # y sorts last: never drawn as "other"
    others = scores.argsort(dim=1)[:, :2]
    tiles = torch.cat([y[:, None], y[:, None], others], dim=1)
    return tiles.gather(1, torch.rand(len(y), 4, generator=g).argsort(dim=1))


def _mosaic(tiles: Tensor, img_size: int, style: ShapeStyle, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Images (n, 3, S, S) and masks (n, S, S) from (n, 4) tile classes: one (S/2)-pixel scene per tile, laid
    out row-major on a 2x2 grid."""
    n, half = len(tiles), img_size // 2
    x, mask = _render_chunks(tiles.reshape(-1), half, style, g)
    x = x.reshape(n, 2, 2, 3, half, half).permute(0, 3, 1, 4, 2, 5).reshape(n, 3, img_size, img_size)
    mask = mask.reshape(n, 2, 2, half, half).permute(0, 1, 3, 2, 4).reshape(n, img_size, img_size)
    return x.contiguous(), mask.contiguous()


def mosaic_cell_classes(mask: Tensor, grid: int) -> Tensor:
    """(N, grid, grid) class of the tile under each cell of a ``grid`` x ``grid`` map laid over (N, S, S) mosaic masks
    (:func:`make_shapes` with ``layout="mosaic"``): the truth a dense teacher's per-location labels can be held
    against. ``grid`` must be even (each cell inside one tile) and divide ``S``; a tile's class is its object's
    (mask ``1 + k``), -1 where a tile shows no object pixel."""
    if mask.ndim != 3 or mask.shape[1] != mask.shape[2] or mask.is_floating_point():
        raise ValueError(f"expected (N, S, S) integer mosaic masks, got {tuple(mask.shape)} ({mask.dtype})")
    check_int("grid", grid, low=2)
    if grid % 2 or mask.shape[1] % grid:
        raise ValueError(f"grid must be even and divide the image side {mask.shape[1]}, got {grid}")
    tiles = F.max_pool2d(mask[:, None].float(), mask.shape[1] // 2)[:, 0].long() - 1  # (N, 2, 2)
    return tiles.repeat_interleave(grid // 2, dim=1).repeat_interleave(grid // 2, dim=2)


def _set_prefix(options: dict) -> str:
    """The data set names' prefix: ``mosaics`` for the mosaic layout, else ``shapes`` (``shapes-train``, ...)."""
    return "mosaics" if options.get("layout") == "mosaic" else "shapes"


def shapes_splits(n_train: int = 2000, n_test: int = 2000, *, img_size: int = 32,
                  difficulty: float | ShapeStyle | None = None, seed: int = 0,
                  **overrides) -> tuple[ImageSet, ImageSet]:
    """(train, test) shape scenes with the same style and layout; the test set comes from a separate seed stream
    (``seed + 1_000_003``), so the two never share samples. Arguments as in :func:`make_shapes`."""
    check_int("seed", seed, low=0)
    prefix = _set_prefix(overrides)
    train = make_shapes(n_train, img_size=img_size, difficulty=difficulty, seed=seed, name=f"{prefix}-train",
                        **overrides)
    test = make_shapes(n_test, img_size=img_size, difficulty=difficulty, seed=seed + _TEST_SEED_OFFSET,
                       name=f"{prefix}-test", **overrides)
    return train, test


def shapes_val(n_val: int, *, img_size: int = 32, difficulty: float | ShapeStyle | None = None, seed: int = 0,
               n_train: int | None = None, n_test: int | None = None, **overrides) -> ImageSet:
    """The validation set that goes with ``shapes_splits(..., seed=seed)``: ``n_val`` scenes of the same style from
    a third stream (``seed + _VAL_SEED_OFFSET``), so it shares no sample with the training or the test set and
    adding it changes neither. ``n_train`` / ``n_test`` are accepted (and ignored) so a recipe's data block can
    be passed as it is."""
    check_int("seed", seed, low=0)
    return make_shapes(check_int("n_val", n_val, low=1), img_size=img_size, difficulty=difficulty,
                       seed=seed + _VAL_SEED_OFFSET, name=f"{_set_prefix(overrides)}-val", **overrides)


__all__ = ["CLASSES", "DEFAULT_DIFFICULTY", "EASY", "HARD", "LAYOUTS", "MOSAIC_SIZE", "ShapeStyle", "mosaic_cell_classes", "make_shapes", "resolve_style",
           "shapes_splits", "shapes_val"]
