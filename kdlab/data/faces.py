r"""Procedural face identities aligned to the five-point ArcFace template, and a loader for real aligned faces.

**Identities.** An identity is a fixed vector of ``len(TRAITS)`` numbers in ``[0, 1]`` (face oval width and
height, jaw taper, eye spacing/height/size/aspect, brow height/thickness, nose length/width, mouth
width/height/curvature, lip thickness, skin tone, hair colour/extent/volume, eye colour). Trait ``j`` of
identity ``k`` is a pure function of ``(identity_seed, k, j)`` (a SplitMix64 hash, independent of torch's
random streams), so identity ``k`` looks the same whichever other identities share the batch.
:func:`identity_traits` returns the vectors; the renderer maps each entry linearly onto a physical range.

**Geometry.** All coordinates are *normalised*: ``(x, y)`` in ``[0, 1]``, ``x`` to the right, ``y`` down;
for an ``S``-pixel image the pixel coordinate is ``S * x`` (pixel ``j`` spans ``[j, j + 1)``, its centre is
``j + 0.5``). :data:`TEMPLATE` is the ArcFace/insightface 112-px template divided by 112. An identity's
*canonical* landmarks are the template moved by its geometry traits (eyes wider or narrower, nose longer,
mouth wider, ...: a few percent of the image side), and every facial part is drawn at those landmarks
(eye centres = pupils, the nose tip, the two mouth corners = the ends of the lips).

**Per-image variation** (a :class:`Variation`, drawn from ``seed``; its size is set by a :class:`FaceStyle`):

* pose, a similarity transform about the face centre :math:`c = (0.5, 0.56)`:
  :math:`p = c + s\,R(\theta)\,(q - c) + t` maps canonical point ``q`` to image point ``p``, with rotation
  :math:`\theta`, scale ``s`` and shift ``t``. The returned landmarks are the canonical ones mapped the same
  way, i.e. where the features really are in that image;
* expression: smile (mouth curvature), mouth opening, brow raise (the mouth corners stay on their landmarks);
* illumination: :math:`I \leftarrow I\cdot b\,\big(1 + 2\,g\cdot(p - \tfrac12)\big)` with brightness ``b`` and a
  directional gradient ``g``;
* an optional occluder (sunglasses band that follows the face, or a random rectangle in the image frame);
* Gaussian pixel noise, then clipping to ``[0, 1]``.

**Rendering** is vectorised in torch: every image pixel is mapped back to the canonical frame
(:math:`q = c + R(\theta)^\top (p - c - t)/s`) and each part is a soft inside test there (ellipses,
tapered arcs, rectangles with a one-pixel anti-aliased edge), evaluated for a whole chunk of images at once;
only the handful of parts is a Python loop. About 0.5 s per 1000 faces at 64 px on one CPU core.

**Data sets.** :func:`make_faces` renders any list of identity ids, :func:`faces_splits` gives a training set
and a test set with *disjoint* identities plus verification pairs (half same identity, half different) for
the test set, :func:`make_pairs` draws such pairs for any labels, and :func:`load_face_folder` reads real
aligned faces (one sub-folder per identity) with an optional LFW ``pairs.txt``. All return a
:class:`FaceSet` (an :class:`~kdlab.data.tensors.ImageSet` with landmarks and pairs)::

    train, test = faces_splits(100, 50, per_id=40, n_pairs=3000)       # the CAFD workbook's default
    train.x.shape, train.landmarks.shape, test.pairs.shape             # (4000,3,64,64) (4000,5,2) (3000,2)
    hard = make_faces(torch.arange(10).repeat(8), occlusion=0.5, rotation=15)
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..checks import check_int, check_number, check_tensor
from .styles import Style
from .tensors import ImageSet, Index, check_rows

TEMPLATE = torch.tensor([
    [38.2946, 51.6963],  # left eye (image left)
    [73.5318, 51.5014],  # right eye
    [56.0252, 71.7366],  # nose tip
    [41.5493, 92.3655],  # left mouth corner
    [70.7299, 92.2041],  # right mouth corner
], dtype=torch.float32) / 112.0
"""(5, 2) ArcFace five-point template in normalised ``(x, y)`` coordinates (the 112-px template / 112);
order: left eye, right eye, nose tip, left mouth corner, right mouth corner. Multiply by ``S`` for pixels."""

LANDMARKS: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Names of the five landmarks, in :data:`TEMPLATE` order (ArcFace order)."""

TRAITS: tuple[str, ...] = (
    "face_width", "face_height", "jaw", "eye_spacing", "eye_height", "eye_size", "eye_aspect",
    "brow_height", "brow_thickness", "nose_length", "nose_width", "mouth_width", "mouth_height",
    "mouth_curve", "lip_thickness", "skin_tone", "hair_colour", "hair_extent", "hair_volume", "eye_colour",
)
"""Names of the identity vector's entries (each in ``[0, 1]``; see :func:`identity_traits`)."""

LANDMARK_TRAITS: tuple[str, ...] = ("eye_spacing", "eye_height", "nose_length", "mouth_width", "mouth_height")
"""The traits that move the five landmarks (:func:`canonical_landmarks`). ``geometry_only=True`` keeps every
other trait at 0.5, so identities differ only in where their eyes, nose tip and mouth corners sit."""

FACE_CENTRE = (0.5, 0.56)
"""Centre of the face oval and of the pose transform, normalised ``(x, y)``."""

MIN_IMG_SIZE = 32
"""The smallest ``img_size`` (pixels) the faces render at."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
"""File types :func:`load_face_folder` reads (case-insensitive)."""

_TEST_SEED_OFFSET = 1_000_003
"""``faces_splits`` renders the test images from ``seed + _TEST_SEED_OFFSET`` and draws the pairs from
``seed + 2 * _TEST_SEED_OFFSET`` (disjoint streams)."""

_CHUNK_PIXELS = 262_144
"""Faces are rendered in chunks of about this many pixels, small enough to stay in the CPU cache. The
rendering is a few hundred cheap element-wise ops per chunk, so it runs on one thread (the previous
setting is restored afterwards): with two OpenMP threads every op pays a barrier, which made it 2x slower
on an idle 2-core machine and up to 50x slower when another process kept one core busy."""

_MASK64 = (1 << 64) - 1

# physical range of each trait: value = lo + (hi - lo) * trait (canonical normalised units unless noted)
_RANGES: dict[str, tuple[float, float]] = {
    "face_width": (0.30, 0.37),      # half-width of the face oval
    "face_height": (0.41, 0.46),     # half-height of the face oval
    "jaw": (0.0, 0.20),             # how much narrower the oval gets towards the chin (fraction)
    "eye_spacing": (-0.022, 0.022),  # each eye moves outwards by this much
    "eye_height": (-0.02, 0.02),     # both eyes move down by this much
    "eye_size": (0.045, 0.065),      # eye half-width
    "eye_aspect": (0.45, 0.62),      # eye half-height / half-width
    "brow_height": (0.055, 0.085),   # brow centre above the eye centre
    "brow_thickness": (0.008, 0.016),  # brow half-thickness
    "nose_length": (-0.03, 0.03),    # nose tip moves down by this much
    "nose_width": (0.022, 0.036),    # half the distance between the nostrils
    "mouth_width": (-0.025, 0.015),    # each mouth corner moves outwards by this much
    "mouth_height": (-0.02, 0.015),  # both mouth corners move down by this much
    "mouth_curve": (-0.008, 0.02),   # depth of the lip line's middle below the corners (> 0: smiling)
    "lip_thickness": (0.009, 0.017),  # lip half-thickness at the middle
    "hair_extent": (0.10, 0.26),     # hairline height at the face's midline (y)
    "hair_volume": (1.02, 1.18),     # hair oval / face oval size ratio
}

_SKIN = torch.tensor([[0.97, 0.83, 0.72], [0.86, 0.66, 0.50], [0.62, 0.42, 0.28], [0.36, 0.23, 0.15]])
"""Skin colour ramp (light to dark), interpolated by the ``skin_tone`` trait."""
_HAIR = torch.tensor([[0.06, 0.05, 0.05], [0.30, 0.18, 0.10], [0.55, 0.25, 0.10], [0.85, 0.72, 0.42],
                      [0.62, 0.60, 0.58]])
"""Hair colour ramp: black, brown, auburn, blond, grey (``hair_colour`` trait)."""
_IRIS = torch.tensor([[0.28, 0.15, 0.07], [0.35, 0.27, 0.12], [0.22, 0.35, 0.22], [0.18, 0.32, 0.52],
                      [0.35, 0.38, 0.42]])
"""Iris colour ramp: brown, hazel, green, blue, grey (``eye_colour`` trait)."""


# ----------------------------------------------------------------------------------------------- style


@dataclass(frozen=True)
class FaceStyle(Style):
    """How much the images of one identity vary.

    Attributes:
        rotation: in-plane rotation uniform in ``[-rotation, rotation]`` degrees, in ``[0, 45]``.
        scale: scale uniform in ``[1 - scale, 1 + scale]``, in ``[0, 0.3]``.
        shift: shift of each coordinate uniform in ``[-shift, shift]`` (fraction of the image side, in
            ``[0, 0.15]``; 0.03 is about 2 px at 64 px).
        expression: strength of smile, mouth opening and brow raise, in ``[0, 1]`` (0: neutral face).
        brightness: brightness factor uniform in ``[1 - brightness, 1 + brightness]``, in ``[0, 0.6]``.
        gradient: strength of the directional light gradient (uniform in ``[0, gradient]``), in ``[0, 1]``.
        noise: standard deviation of the Gaussian pixel noise, in ``[0, 0.3]``.
        occlusion: probability that an image gets an occluder (sunglasses or a random rectangle, half
            each), in ``[0, 1]``.
    """

    rotation: float = 8.0
    scale: float = 0.05
    shift: float = 0.03
    expression: float = 1.0
    brightness: float = 0.25
    gradient: float = 0.4
    noise: float = 0.03
    occlusion: float = 0.0

    _BOUNDS = {"rotation": 45.0, "scale": 0.3, "shift": 0.15, "expression": 1.0, "brightness": 0.6,
               "gradient": 1.0, "noise": 0.3, "occlusion": 1.0}

    def __post_init__(self) -> None:
        for f in fields(self):
            value = check_number(f.name, getattr(self, f.name), low=0.0, high=self._BOUNDS[f.name])
            object.__setattr__(self, f.name, value)


DEFAULT_STYLE = FaceStyle()
"""The default variation (the CAFD workbook's: about +-2 px jitter at 64 px, brightness, noise, no occluder)."""


# ------------------------------------------------------------------------------------------ identities


def _splitmix64(state: int) -> tuple[int, int]:
    """One SplitMix64 step: (new state, 64-bit output)."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def identity_traits(identities: Tensor | list[int], identity_seed: int = 0) -> Tensor:
    """The identity vectors, ``(K, len(TRAITS))`` float32 in ``[0, 1)``, one row per entry of ``identities``.

    Row ``i`` depends only on ``(identity_seed, identities[i])``: trait ``j`` is the ``j``-th output of a
    SplitMix64 stream seeded from the pair, divided by ``2**64`` (so it is the same on every platform and
    torch version).
    """
    ids = _check_identities(identities)
    check_int("identity_seed", identity_seed, low=0)
    rows = {}
    for k in torch.unique(ids).tolist():
        state, _ = _splitmix64((identity_seed * 0xD1B54A32D192ED03 + k * 0x9E3779B97F4A7C15) & _MASK64)
        row = []
        for _ in TRAITS:
            state, z = _splitmix64(state)
            row.append((z >> 11) / float(1 << 53))
        rows[k] = row
    return torch.tensor([rows[k] for k in ids.tolist()], dtype=torch.float32)


def _decode(traits: Tensor) -> dict[str, Tensor]:
    """Trait vectors (N, T) -> physical parameters: (N,) tensors, colours (N, 3)."""
    p = {name: traits[:, j] for j, name in enumerate(TRAITS)}
    out = {name: lo + (hi - lo) * p[name] for name, (lo, hi) in _RANGES.items()}
    out["skin"] = _ramp(_SKIN, p["skin_tone"])
    out["hair"] = _ramp(_HAIR, p["hair_colour"])
    out["iris"] = _ramp(_IRIS, p["eye_colour"])
    return out


def _ramp(colours: Tensor, t: Tensor) -> Tensor:
    """Piecewise-linear interpolation along a (M, 3) colour ramp at positions ``t`` in [0, 1]: (N, 3)."""
    pos = t.clamp(0, 1) * (len(colours) - 1)
    lo = pos.floor().long().clamp(max=len(colours) - 2)
    w = (pos - lo)[:, None]
    return colours[lo] * (1 - w) + colours[lo + 1] * w


def canonical_landmarks(traits: Tensor, geometry_gain: float = 1.0) -> Tensor:
    """(N, 5, 2) landmarks of identities ``traits`` (N, T) before any pose: :data:`TEMPLATE` with the
    eyes, nose tip and mouth corners moved by the geometry traits (symmetrically about the midline), each move
    times ``geometry_gain`` (in ``[0, 3]``; 1: the ranges of the trait table)."""
    gain = check_number("geometry_gain", geometry_gain, low=0.0, high=3.0)
    p = {k: v * gain if k in LANDMARK_TRAITS else v for k, v in _decode(_check_traits(traits)).items()}
    lm = TEMPLATE.expand(len(traits), 5, 2).clone()
    lm[:, 0, 0] -= p["eye_spacing"]
    lm[:, 1, 0] += p["eye_spacing"]
    lm[:, :2, 1] += p["eye_height"][:, None]
    lm[:, 2, 1] += p["nose_length"]
    lm[:, 3, 0] -= p["mouth_width"]
    lm[:, 4, 0] += p["mouth_width"]
    lm[:, 3:, 1] += p["mouth_height"][:, None]
    return lm


# ------------------------------------------------------------------------------------------- variation


class Variation(NamedTuple):
    """Per-image nuisance factors for ``N`` images (all float32 except ``occluder``).

    Attributes:
        angle: (N,) rotation in radians. scale: (N,) scale factor. shift: (N, 2) shift (normalised).
        smile: (N,) added to the mouth curvature. mouth_open: (N,) half-opening of the lips (>= 0).
        brow_raise: (N,) upward brow shift (>= 0). brightness: (N,) brightness factor.
        gradient: (N, 2) light gradient vector. background: (N, 3) background colour.
        occluder: (N,) int64, 0 none, 1 sunglasses, 2 rectangle. box: (N, 4) rectangle centre x, y and
        half-width, half-height (normalised image frame). box_colour: (N, 3).
    """

    angle: Tensor
    scale: Tensor
    shift: Tensor
    smile: Tensor
    mouth_open: Tensor
    brow_raise: Tensor
    brightness: Tensor
    gradient: Tensor
    background: Tensor
    occluder: Tensor
    box: Tensor
    box_colour: Tensor

    def subset(self, index: Index) -> "Variation":
        """The factors of the images picked by ``index`` (anything a tensor accepts as an index)."""
        return Variation(*(t[index] for t in self))


def sample_variation(n: int, style: FaceStyle = DEFAULT_STYLE, generator: torch.Generator | None = None) -> Variation:
    """Draw a :class:`Variation` for ``n`` images from ``generator`` (``None``: a generator seeded with 0).

    The same random numbers are drawn whatever the style (each factor is a uniform draw scaled by its
    lever), so two styles with the same generator state give the same faces, poses and lights, differing
    only in the amount of each factor: e.g. ``occlusion=0`` and ``occlusion=1`` differ only by the occluders.
    """
    if not isinstance(style, FaceStyle):
        raise ValueError(f"style must be a FaceStyle, got {type(style).__name__}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)

    def sym(*shape: int) -> Tensor:  # uniform in [-1, 1]
        return torch.rand(*shape, generator=g) * 2 - 1

    angle = sym(n) * math.radians(style.rotation)
    scale = 1 + sym(n) * style.scale
    shift = sym(n, 2) * style.shift
    smile = sym(n) * 0.012 * style.expression
    mouth_open = (sym(n) * 0.014).clamp(min=0) * style.expression  # about half the faces keep it closed
    brow_raise = torch.rand(n, generator=g) * 0.012 * style.expression
    brightness = 1 + sym(n) * style.brightness
    light_angle = torch.rand(n, generator=g) * 2 * math.pi
    light = torch.rand(n, generator=g) * style.gradient
    gradient = torch.stack([torch.cos(light_angle), torch.sin(light_angle)], dim=1) * light[:, None]
    background = 0.1 + 0.8 * torch.rand(n, 3, generator=g)
    occluded = torch.rand(n, generator=g) < style.occlusion
    kind = 1 + (torch.rand(n, generator=g) < 0.5).long()
    occluder = torch.where(occluded, kind, torch.zeros_like(kind))
    box = torch.cat([0.2 + 0.6 * torch.rand(n, 2, generator=g), 0.1 + 0.12 * torch.rand(n, 2, generator=g)], dim=1)
    box_colour = torch.rand(n, 3, generator=g)
    return Variation(angle, scale, shift, smile, mouth_open, brow_raise, brightness, gradient, background,
                     occluder, box, box_colour)


# ------------------------------------------------------------------------------------------- rendering


def _soft(sd: Tensor, px: Tensor) -> Tensor:
    """Coverage of a pixel of size ``px`` at signed distance ``sd`` (< 0 inside): a one-pixel linear ramp."""
    return (0.5 - sd / px).clamp_(0, 1)


def _ellipse(qx: Tensor, qy: Tensor, cx: Tensor, cy: Tensor, a: Tensor, b: Tensor, px: Tensor) -> Tensor:
    """Soft inside test of the axis-aligned ellipse centred at (cx, cy) with half-axes a, b (all (N,1,1)):
    signed distance approximated by (r - 1) sqrt(ab), r the ellipse radius."""
    r = torch.sqrt(((qx - cx) / a) ** 2 + ((qy - cy) / b) ** 2)
    return _soft((r - 1) * (a * b) ** 0.5, px)


def _arc(qx: Tensor, qy: Tensor, x0: Tensor, y0: Tensor, x1: Tensor, y1: Tensor, bend: Tensor,
         thick: Tensor, inner: Tensor, px: Tensor) -> tuple[Tensor, Tensor]:
    """A tapered curved band from (x0, y0) to (x1, y1) (a lip line or a brow).

    With ``t in [-1, 1]`` along the chord, the centre line is the chord lowered by ``bend * (1 - t^2)``;
    the band's half-thickness is ``thick * sqrt(1 - t^2) + inner * (1 - t^2)`` (0 at both ends) and an
    inner band of half-thickness ``inner * (1 - t^2)`` is returned too (the open mouth). Returns the soft
    coverage of (band, inner band).
    """
    half = (x1 - x0) / 2
    t = (qx - (x0 + x1) / 2) / half
    w = (1 - t * t).clamp_(min=0)
    centre = y0 + (y1 - y0) * (t + 1) / 2 + bend * w
    dist = (qy - centre).abs_()
    ends = _soft((t.abs() - 1) * half, px)
    inner_half = inner * w
    band = _soft(dist - thick * torch.sqrt(w) - inner_half, px) * ends
    hole = _soft(dist - inner_half, px) * ends
    return band, hole


def _rect(qx: Tensor, qy: Tensor, cx: Tensor, cy: Tensor, hw: Tensor, hh: Tensor, px: Tensor | float) -> Tensor:
    """Soft inside test of the axis-aligned rectangle centred at (cx, cy) with half-sizes hw, hh."""
    sd = torch.maximum((qx - cx).abs() - hw, (qy - cy).abs() - hh)
    return _soft(sd, px) if isinstance(px, Tensor) else (0.5 - sd / px).clamp_(0, 1)


def _paint(image: Tensor, alpha: Tensor, colour: Tensor) -> Tensor:
    """Composite ``colour`` (N, 3) over ``image`` (N, 3, S, S) with coverage ``alpha`` (N, S, S)."""
    return image.lerp_(colour[:, :, None, None].expand_as(image), alpha[:, None])


def _pose_landmarks(canonical: Tensor, var: Variation) -> Tensor:
    """Canonical (N, 5, 2) landmarks through each image's similarity transform ``p = c + s R (q - c) + t``."""
    c = torch.tensor(FACE_CENTRE)
    cos, sin = torch.cos(var.angle)[:, None], torch.sin(var.angle)[:, None]
    d = canonical - c
    x = cos * d[..., 0] - sin * d[..., 1]
    y = sin * d[..., 0] + cos * d[..., 1]
    return c + var.scale[:, None, None] * torch.stack([x, y], dim=-1) + var.shift[:, None, :]


def render_faces(traits: Tensor, variation: Variation, img_size: int = 64, *, noise: float = 0.0,
                 generator: torch.Generator | None = None, geometry_gain: float = 1.0) -> tuple[Tensor, Tensor]:
    """Render faces of identities ``traits`` (N, T) under ``variation`` (N images).

    Args:
        traits: identity vectors (N, ``len(TRAITS)``) in ``[0, 1]``, e.g. rows of :func:`identity_traits`.
        variation: per-image pose, expression, light and occluder (:func:`sample_variation`).
        img_size: image side ``S`` (an int >= 32).
        noise: standard deviation of the Gaussian pixel noise (drawn from ``generator``).
        generator: the random source of the noise (``None``: a generator seeded with 0).
        geometry_gain: the landmark traits' moves times this (:func:`canonical_landmarks`).

    Returns:
        ``(x, landmarks)``: images (N, 3, S, S) float32 in ``[0, 1]`` and landmarks (N, 5, 2) float32, the
        normalised ``(x, y)`` of the five features in each image (after the pose).
    """
    traits = _check_traits(traits)
    check_int("img_size", img_size, low=MIN_IMG_SIZE)
    n = len(traits)
    if not isinstance(variation, Variation) or any(len(t) != n for t in variation):
        got = f"{len(variation[0])} rows" if isinstance(variation, Variation) else type(variation).__name__
        raise ValueError(f"variation must be a Variation with {n} rows (one per face), got {got}")
    check_number("noise", noise, low=0.0, high=0.3)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    landmarks = _pose_landmarks(canonical_landmarks(traits, geometry_gain), variation)
    chunk = max(1, _CHUNK_PIXELS // (img_size * img_size))
    parts = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see _CHUNK_PIXELS: one thread is faster here, and immune to a busy CPU
    try:
        for start in range(0, n, chunk):
            sl = slice(start, start + chunk)
            image = _render_chunk(traits[sl], variation.subset(sl), img_size, geometry_gain)
            if noise > 0:
                image += noise * torch.randn(image.shape, generator=g)
            parts.append(image.clamp_(0, 1))
    finally:
        torch.set_num_threads(threads)
    return torch.cat(parts), landmarks


def _col(v: Tensor) -> Tensor:
    """(n,) -> (n, 1, 1), to broadcast a per-image value over a pixel grid."""
    return v[:, None, None]


class _Grid(NamedTuple):
    """The pixel grid of one chunk: image-frame pixel centres ``ix`` (1, 1, S) and ``iy`` (1, S, 1), each pixel
    mapped into the face's canonical frame ``qx``, ``qy`` (n, S, S), and one pixel in canonical units ``px``."""

    ix: Tensor
    iy: Tensor
    qx: Tensor
    qy: Tensor
    px: Tensor


def _canonical_grid(var: Variation, size: int) -> _Grid:
    """Pixel centres, mapped back through each image's pose: :math:`q = c + R(\theta)^\top (p - c - t)/s`."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    iy, ix = coords[None, :, None], coords[None, None, :]
    cx, cy = FACE_CENTRE
    dx, dy = ix - cx - _col(var.shift[:, 0]), iy - cy - _col(var.shift[:, 1])
    cos, sin, s = _col(torch.cos(var.angle)), _col(torch.sin(var.angle)), _col(var.scale)
    qx = cx + (cos * dx + sin * dy) / s
    qy = cy + (-sin * dx + cos * dy) / s
    return _Grid(ix, iy, qx, qy, 1.0 / (size * s))


def _render_chunk(traits: Tensor, var: Variation, size: int, geometry_gain: float = 1.0) -> Tensor:
    """Noise-free images (n, 3, S, S) (not yet clipped) for one chunk: background, then the parts back to
    front (head, brows and eyes, nose, mouth, occluders), then the illumination."""
    n = len(traits)
    p = {k: (v[:, None, None] if v.ndim == 1 else v) for k, v in _decode(traits).items()}
    lm = canonical_landmarks(traits, geometry_gain)[:, :, :, None, None]  # (n, 5, 2, 1, 1)
    grid = _canonical_grid(var, size)
    # background: a colour with a soft vertical falloff
    image = var.background[:, :, None, None] * (1.05 - 0.25 * grid.iy)[:, None].expand(n, 3, size, size)
    image = image.contiguous()
    image = _paint_head(image, grid, p)
    image = _paint_eyes(image, grid, p, lm, var)
    image = _paint_nose(image, grid, p, lm)
    image = _paint_mouth(image, grid, p, lm, var)
    image = _paint_occluders(image, grid, p, lm, var, size)
    # illumination: brightness times a directional gradient over the image
    slope = _col(var.gradient[:, 0]) * (grid.ix - 0.5) + _col(var.gradient[:, 1]) * (grid.iy - 0.5)
    light = _col(var.brightness) * (1 + 2 * slope)
    return image.mul_(light[:, None])


def _paint_head(image: Tensor, grid: _Grid, p: dict[str, Tensor]) -> Tensor:
    """Neck, hair behind the head, face oval (narrowing towards the chin), hair fringe above the hairline."""
    qx, qy, px = grid.qx, grid.qy, grid.px
    cy = FACE_CENTRE[1]
    skin, hair = p["skin"], p["hair"]
    neck = _rect(qx, qy, 0.5, cy + 0.45, 0.55 * p["face_width"], 0.45, px)
    image = _paint(image, neck, skin * 0.8)
    hair_a, hair_b = p["face_width"] * p["hair_volume"] + 0.02, p["face_height"] * p["hair_volume"]
    hair_back = _ellipse(qx, qy, 0.5, cy - 0.04, hair_a, hair_b, px) * _soft(qy - (cy + 0.12), px)
    image = _paint(image, hair_back, hair)
    below = ((qy - cy) / p["face_height"]).clamp_(min=0)
    face_a = p["face_width"] * (1 - p["jaw"] * below * below)
    face = _ellipse(qx, qy, 0.5, cy, face_a, p["face_height"], px)
    image = _paint(image, face, skin)
    hairline = p["hair_extent"] + 0.9 * (qx - 0.5) ** 2
    fringe = _ellipse(qx, qy, 0.5, cy - 0.04, hair_a, hair_b, px) * _soft(qy - hairline, px)
    return _paint(image, fringe, hair)


def _paint_eyes(image: Tensor, grid: _Grid, p: dict[str, Tensor], lm: Tensor, var: Variation) -> Tensor:
    """Brows (arched bands above the eyes), then the eyes (sclera, iris, pupil) on the eye landmarks."""
    qx, qy, px, n = grid.qx, grid.qy, grid.px, len(image)
    for k in (0, 1):
        ex, ey = lm[:, k, 0], lm[:, k, 1]
        half = p["eye_size"] * 1.25
        by = ey - p["brow_height"] - _col(var.brow_raise)
        brow, _ = _arc(qx, qy, ex - half, by + 0.006, ex + half, by + 0.006, -0.012, p["brow_thickness"], 0.0, px)
        image = _paint(image, brow, p["hair"] * 0.7)
    for k in (0, 1):
        ex, ey = lm[:, k, 0], lm[:, k, 1]
        eb = p["eye_size"] * p["eye_aspect"]
        sclera = _ellipse(qx, qy, ex, ey, p["eye_size"], eb, px)
        image = _paint(image, sclera, torch.tensor([0.93, 0.93, 0.90]).expand(n, 3))
        iris_r = eb * 0.95
        iris = _ellipse(qx, qy, ex, ey, iris_r, iris_r, px) * sclera
        image = _paint(image, iris, p["iris"])
        pupil = _ellipse(qx, qy, ex, ey, iris_r * 0.45, iris_r * 0.45, px)
        image = _paint(image, pupil, torch.full((n, 3), 0.03))
    return image


def _paint_nose(image: Tensor, grid: _Grid, p: dict[str, Tensor], lm: Tensor) -> Tensor:
    """A shaded ridge, the tip, two nostrils beside and just above the tip landmark."""
    qx, qy, px, skin = grid.qx, grid.qy, grid.px, p["skin"]
    nx, ny = lm[:, 2, 0], lm[:, 2, 1]
    eyes_y = (lm[:, 0, 1] + lm[:, 1, 1]) / 2
    ridge = _ellipse(qx, qy, nx, (eyes_y + ny) / 2, p["nose_width"] * 0.55, (ny - eyes_y) / 2 + 0.01, px)
    image = _paint(image, ridge, skin * 0.9)
    tip = _ellipse(qx, qy, nx, ny - 0.004, p["nose_width"] * 0.75, p["nose_width"] * 0.55, px)
    image = _paint(image, tip, skin * 0.8)
    for side in (-1.0, 1.0):
        nostril = _ellipse(qx, qy, nx + side * p["nose_width"], ny + 0.004, 0.011, 0.007, px)
        image = _paint(image, nostril, skin * 0.35)
    return image


def _paint_mouth(image: Tensor, grid: _Grid, p: dict[str, Tensor], lm: Tensor, var: Variation) -> Tensor:
    """Lips between the two mouth-corner landmarks, open by ``mouth_open``."""
    lips, hole = _arc(grid.qx, grid.qy, lm[:, 3, 0], lm[:, 3, 1], lm[:, 4, 0], lm[:, 4, 1],
                      p["mouth_curve"] + _col(var.smile), p["lip_thickness"], _col(var.mouth_open), grid.px)
    image = _paint(image, lips, p["skin"] * torch.tensor([0.78, 0.45, 0.45]) + torch.tensor([0.08, 0.0, 0.0]))
    return _paint(image, hole, torch.tensor([0.22, 0.04, 0.05]).expand(len(image), 3))


def _paint_occluders(image: Tensor, grid: _Grid, p: dict[str, Tensor], lm: Tensor, var: Variation,
                     size: int) -> Tensor:
    """Sunglasses follow the face (canonical frame); rectangles sit in the image frame."""
    n = len(image)
    sunglasses = (var.occluder == 1).float()
    if sunglasses.any():
        eyes_y = (lm[:, 0, 1] + lm[:, 1, 1]) / 2
        spread = (lm[:, 1, 0] - lm[:, 0, 0]) / 2 + p["eye_size"] * 1.5
        band = _rect(grid.qx, grid.qy, 0.5, eyes_y, spread, p["eye_size"] * 0.9, grid.px) * _col(sunglasses)
        image = _paint(image, band, torch.tensor([0.05, 0.05, 0.08]).expand(n, 3))
    rectangle = (var.occluder == 2).float()
    if rectangle.any():
        b = var.box
        block = _rect(grid.ix, grid.iy, _col(b[:, 0]), _col(b[:, 1]), _col(b[:, 2]), _col(b[:, 3]),
                      1.0 / size) * _col(rectangle)
        image = _paint(image, block, var.box_colour)
    return image


# --------------------------------------------------------------------------------------------- FaceSet


@dataclass(frozen=True, eq=False, repr=False)
class FaceSet(ImageSet):
    """An :class:`~kdlab.data.tensors.ImageSet` of faces: ``y`` is the identity (``classes[y]`` its name),
    plus landmarks and verification pairs.

    Attributes:
        landmarks: (N, 5, 2) float32 normalised ``(x, y)`` in :data:`LANDMARKS` order, or ``None`` when not
            known (real folders).
        pairs: (P, 2) int64 indices into this set, or ``None``.
        same: (P,) bool, ``True`` where the two images of a pair show the same identity (given with
            ``pairs``, checked against ``y``).

    :meth:`subset` / :meth:`split` keep the landmarks of the picked images but drop the pairs (their
    indices would no longer hold); :meth:`to` moves everything. :meth:`with_pairs` attaches new pairs.
    """

    ROW_FIELDS: ClassVar[tuple[str, ...]] = ("x", "y", "mask", "landmarks")
    INDEX_FIELDS: ClassVar[tuple[str, ...]] = ("pairs", "same")

    landmarks: Tensor | None = None
    pairs: Tensor | None = None
    same: Tensor | None = None

    def __post_init__(self) -> None:
        """Validate the image fields (as ImageSet) and the landmarks and pairs."""
        super().__post_init__()
        if self.landmarks is not None:
            check_rows("landmarks", self.landmarks, self.x, ((len(self.x), 5, 2),), floating=True)
        if (self.pairs is None) != (self.same is None):
            raise ValueError("pairs and same go together: give both or neither")
        if self.pairs is not None:
            self._check_pairs()

    def _check_pairs(self) -> None:
        """``pairs`` (P, 2) int64 indices into the set and ``same`` (P,) bool, agreeing with the labels ``y``."""
        n, pairs, same = len(self.x), self.pairs, self.same
        if not isinstance(pairs, Tensor) or pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype != torch.int64:
            got = f"{tuple(pairs.shape)} {pairs.dtype}" if isinstance(pairs, Tensor) else type(pairs).__name__
            raise ValueError(f"pairs must be an int64 (P, 2) tensor, got {got}")
        if not isinstance(same, Tensor) or same.shape != (len(pairs),) or same.dtype != torch.bool:
            got = f"{tuple(same.shape)} {same.dtype}" if isinstance(same, Tensor) else type(same).__name__
            raise ValueError(f"same must be a bool ({len(pairs)},) tensor, got {got}")
        if pairs.device != self.x.device or same.device != self.x.device:
            raise ValueError(f"pairs and same must be on x's device {self.x.device}, got {pairs.device} "
                             f"and {same.device}")
        if len(pairs):
            lo, hi = int(pairs.min()), int(pairs.max())
            if lo < 0 or hi >= n:
                raise ValueError(f"pair indices must be in [0, {n}), got [{lo}, {hi}]")
            if self.y.ndim == 1 and not torch.equal(self.y[pairs[:, 0]] == self.y[pairs[:, 1]], same):
                raise ValueError("same disagrees with the identity labels y of the paired images")

    def describe_targets(self) -> str:
        """``"identities=K, landmarks=yes|no, pairs=P (S same)|none"``."""
        lm = "yes" if self.landmarks is not None else "no"
        pairs = "none" if self.pairs is None else f"{len(self.pairs)} ({int(self.same.sum())} same)"
        return f"identities={self.num_classes}, landmarks={lm}, pairs={pairs}"

    def with_pairs(self, pairs: Tensor | None, same: Tensor | None) -> "FaceSet":
        """The same set with these verification pairs (e.g. from :func:`make_pairs`; ``None`` drops them)."""
        return replace(self, pairs=pairs, same=same)


# ----------------------------------------------------------------------------------------- generators


def make_faces(identities: Tensor | list[int], *, img_size: int = 64, seed: int = 0,
               identity_seed: int | None = None, style: FaceStyle | None = None, name: str = "faces",
               geometry_only: bool = False, geometry_gain: float = 1.0, **overrides) -> FaceSet:
    """One face image per entry of ``identities`` (global identity ids), as a :class:`FaceSet`.

    Args:
        identities: (N,) non-negative int ids; image ``i`` shows identity ``identities[i]``.
        img_size: side ``S`` in pixels (an int >= 32; 56, 64 and 112 are the usual sizes).
        seed: the per-image variation (pose, expression, light, occluder, noise); the same seed gives
            bitwise the same set.
        identity_seed: which "world" of identities (``None``: ``seed``); identity ``k``'s look depends only
            on ``(identity_seed, k)``.
        style: a :class:`FaceStyle` (``None``: :data:`DEFAULT_STYLE`).
        name: stored as ``FaceSet.name``.
        geometry_only: identities differ only in their :data:`LANDMARK_TRAITS` (every other trait 0.5: one face
            shape, skin, hair and eye colour for all).
        geometry_gain: the landmark traits' moves times this, in ``[0, 3]`` (:func:`canonical_landmarks`; at 1
            the eyes move by at most 1.4 px at 64 px, less than the default pose jitter).
        **overrides: :class:`FaceStyle` fields replacing the style's (``occlusion=0.3``, ``rotation=0``, ...).

    Returns:
        ``x`` (N, 3, S, S) float32 in ``[0, 1]``; ``y`` (N,) int64 with ``classes[y[i]] == f"id{identities[i]:04d}"``
        (classes sorted by id, so ``y`` runs over ``0 .. n_ids - 1``); ``landmarks`` (N, 5, 2); no pairs.
    """
    ids = _check_identities(identities)
    check_int("img_size", img_size, low=MIN_IMG_SIZE)
    check_int("seed", seed, low=0)
    identity_seed = seed if identity_seed is None else identity_seed
    style = (style if style is not None else DEFAULT_STYLE)
    if not isinstance(style, FaceStyle):
        raise ValueError(f"style must be a FaceStyle or None, got {type(style).__name__}")
    style = style.replace(**overrides)
    unique, y = torch.unique(ids, return_inverse=True)
    traits = identity_traits(unique, identity_seed)[y]
    if geometry_only:
        fixed = [j for j, trait in enumerate(TRAITS) if trait not in LANDMARK_TRAITS]
        traits[:, fixed] = 0.5
    g = torch.Generator().manual_seed(seed)
    variation = sample_variation(len(ids), style, g)
    x, landmarks = render_faces(traits, variation, img_size, noise=style.noise, generator=g,
                                geometry_gain=geometry_gain)
    classes = tuple(f"id{k:04d}" for k in unique.tolist())
    return FaceSet(x=x, y=y, classes=classes, name=name, landmarks=landmarks)


def faces_splits(n_train_ids: int = 100, n_test_ids: int = 50, per_id: int = 40, n_pairs: int = 3000, *,
                 test_per_id: int | None = None, img_size: int = 64, seed: int = 0,
                 style: FaceStyle | None = None, geometry_only: bool = False, geometry_gain: float = 1.0,
                 **overrides) -> tuple[FaceSet, FaceSet]:
    """(train, test) face sets with disjoint identities, plus verification pairs on the test set.

    Identities ``0 .. n_train_ids - 1`` form the training set and ``n_train_ids .. n_train_ids + n_test_ids - 1``
    the test set (same identity world ``seed``), so no identity appears in both. Each set holds ``per_id``
    (test: ``test_per_id``, default ``per_id``) images per identity in shuffled order, labels ``y`` in
    ``0 .. n_ids - 1`` within the split. The test set carries ``n_pairs`` pairs from :func:`make_pairs`
    (``n_pairs // 2`` same, the rest different, interleaved). The test images come from the stream
    ``seed + 1_000_003`` and the pairs from ``seed + 2_000_006``; the same arguments give bitwise the same sets.

    Args:
        n_train_ids, n_test_ids: identity counts (>= 1 and >= 2).
        per_id, test_per_id: images per identity (>= 1; the test set needs >= 2 for same pairs).
        n_pairs: verification pairs on the test set (>= 2; 0 for none).
        img_size, seed, style, geometry_only, geometry_gain, **overrides: as in :func:`make_faces` (e.g.
            ``occlusion=0.2``).
    """
    for arg, value, lo in (("n_train_ids", n_train_ids, 1), ("n_test_ids", n_test_ids, 2), ("per_id", per_id, 1),
                           ("n_pairs", n_pairs, 0)):
        check_int(arg, value, low=lo)
    test_per_id = per_id if test_per_id is None else test_per_id
    check_int("test_per_id", test_per_id, low=2 if n_pairs else 1)
    check_int("seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    train_ids = torch.arange(n_train_ids).repeat_interleave(per_id)
    train_ids = train_ids[torch.randperm(len(train_ids), generator=g)]
    test_ids = n_train_ids + torch.arange(n_test_ids).repeat_interleave(test_per_id)
    test_ids = test_ids[torch.randperm(len(test_ids), generator=g)]
    train = make_faces(train_ids, img_size=img_size, seed=seed, identity_seed=seed, style=style,
                       name="faces-train", geometry_only=geometry_only, geometry_gain=geometry_gain, **overrides)
    test = make_faces(test_ids, img_size=img_size, seed=seed + _TEST_SEED_OFFSET, identity_seed=seed, style=style,
                      name="faces-test", geometry_only=geometry_only, geometry_gain=geometry_gain, **overrides)
    if n_pairs:
        pairs, same = make_pairs(test.y, n_pairs, seed=seed + 2 * _TEST_SEED_OFFSET)
        test = test.with_pairs(pairs, same)
    return train, test


def faces_val(n_val_ids: int, *, n_train_ids: int = 100, n_test_ids: int = 50, per_id: int = 40,
              n_pairs: int = 3000, test_per_id: int | None = None, img_size: int = 64, seed: int = 0,
              style: FaceStyle | None = None, geometry_only: bool = False, geometry_gain: float = 1.0,
              **overrides) -> FaceSet:
    """The validation set that goes with ``faces_splits(...)`` of the same arguments: ``n_val_ids`` identities that
    are in neither split (ids after the test identities, same identity world ``seed``), ``test_per_id`` images
    each, rendered from ``seed + 3 * _TEST_SEED_OFFSET``, with ``n_pairs`` verification pairs from
    ``seed + 4 * _TEST_SEED_OFFSET``. Adding it changes neither split."""
    check_int("n_val_ids", n_val_ids, low=2)
    check_int("seed", seed, low=0)
    per_image = per_id if test_per_id is None else test_per_id
    check_int("test_per_id", per_image, low=2 if n_pairs else 1)
    ids = n_train_ids + n_test_ids + torch.arange(n_val_ids).repeat_interleave(per_image)
    ids = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed + 3 * _TEST_SEED_OFFSET))]
    val = make_faces(ids, img_size=img_size, seed=seed + 3 * _TEST_SEED_OFFSET, identity_seed=seed, style=style,
                     name="faces-val", geometry_only=geometry_only, geometry_gain=geometry_gain, **overrides)
    if n_pairs:
        pairs, same = make_pairs(val.y, n_pairs, seed=seed + 4 * _TEST_SEED_OFFSET)
        val = val.with_pairs(pairs, same)
    return val


# --------------------------------------------------------------------------------------------- pairs


def make_pairs(labels: Tensor, n_pairs: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Verification pairs for a labelled set: ``(pairs (P, 2) int64, same (P,) bool)``.

    ``n_pairs // 2`` *same* pairs are drawn uniformly without replacement from all unordered pairs of two
    different images with the same label, and the rest (*different* pairs) uniformly without replacement
    from all unordered pairs of images with different labels. The two kinds are interleaved
    (same, different, same, ...), so every contiguous block of an even number of pairs, e.g. each fold of
    :func:`kdlab.metrics.verification.verification_accuracy`, is balanced. Deterministic from ``seed``.

    Raises:
        ValueError: bad labels or count, or fewer possible pairs of a kind than asked for.
    """
    check_tensor("labels", labels, ndim=1)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    check_int("n_pairs", n_pairs, low=2)
    check_int("seed", seed, low=0)
    labels = labels.cpu().long()
    n = len(labels)
    n_same, n_diff = n_pairs // 2, n_pairs - n_pairs // 2
    order = torch.argsort(labels, stable=True)
    _, counts = torch.unique(labels, return_counts=True)
    per_class = counts * (counts - 1) // 2
    total_same, total_all = int(per_class.sum()), n * (n - 1) // 2
    total_diff = total_all - total_same
    if n_same > total_same:
        raise ValueError(f"asked for {n_same} same-identity pairs but these labels allow only {total_same}")
    if n_diff > total_diff:
        raise ValueError(f"asked for {n_diff} different-identity pairs but these labels allow only {total_diff}")
    g = torch.Generator().manual_seed(seed)

    # same pairs: index k over the concatenated per-class triangles -> (class, a < b) -> image indices
    k = _distinct(total_same, n_same, g)
    offsets = torch.cumsum(per_class, 0) - per_class
    cls = torch.searchsorted(offsets, k, right=True) - 1
    a, b = _triangle(k - offsets[cls])
    starts = torch.cumsum(counts, 0) - counts
    same_pairs = torch.stack([order[starts[cls] + a], order[starts[cls] + b]], dim=1)

    # different pairs: uniform over all image pairs, rejecting same-label ones, until enough distinct
    diff_pairs = _distinct_different(labels, n_diff, total_diff, g)
    same_flags = torch.ones(n_same, dtype=torch.bool)
    diff_flags = torch.zeros(n_diff, dtype=torch.bool)
    m = n_same  # interleave: s0 d0 s1 d1 ... (one extra different pair at the end when n_pairs is odd)
    pairs = torch.stack([same_pairs, diff_pairs[:m]], dim=1).reshape(-1, 2)
    same = torch.stack([same_flags, diff_flags[:m]], dim=1).reshape(-1)
    return torch.cat([pairs, diff_pairs[m:]]), torch.cat([same, diff_flags[m:]])


def _triangle(r: Tensor) -> tuple[Tensor, Tensor]:
    """Decode r = b (b - 1) / 2 + a (0 <= a < b) into (a, b), exactly for int64 r."""
    b = torch.floor((1 + torch.sqrt(1 + 8 * r.double())) / 2).long()
    b = b - (b * (b - 1) // 2 > r).long()
    b = b + ((b + 1) * b // 2 <= r).long()
    return r - b * (b - 1) // 2, b


def _distinct(total: int, n: int, g: torch.Generator) -> Tensor:
    """``n`` distinct ints drawn uniformly from ``[0, total)``, in random order."""
    if n == 0:
        return torch.zeros(0, dtype=torch.int64)
    if total <= max(4 * n, 1 << 20):
        return torch.randperm(total, generator=g)[:n]
    found = torch.zeros(0, dtype=torch.int64)
    while len(found) < n:  # n <= total / 4: each round keeps most draws
        found = torch.unique(torch.cat([found, torch.randint(total, (2 * n,), generator=g)]))
    return found[torch.randperm(len(found), generator=g)[:n]]


def _distinct_different(labels: Tensor, n: int, total_diff: int, g: torch.Generator) -> Tensor:
    """``n`` distinct unordered image pairs with different labels, uniformly, (n, 2)."""
    total_all = len(labels) * (len(labels) - 1) // 2
    if total_all <= max(4 * n, 1 << 20):
        a, b = _triangle(torch.arange(total_all))
        keep = (labels[a] != labels[b]).nonzero().flatten()
        k = keep[torch.randperm(len(keep), generator=g)[:n]]
        return torch.stack([a[k], b[k]], dim=1)
    accept = total_diff / total_all
    found = torch.zeros(0, dtype=torch.int64)
    while True:
        draws = torch.randint(total_all, (int(2 * n / accept) + 16,), generator=g)
        a, b = _triangle(draws)
        found = torch.unique(torch.cat([found, draws[labels[a] != labels[b]]]))
        if len(found) >= n:
            break
    k = found[torch.randperm(len(found), generator=g)[:n]]
    a, b = _triangle(k)
    return torch.stack([a, b], dim=1)


# ------------------------------------------------------------------------------------------ real faces


def load_face_folder(root: str | Path, pairs_file: str | Path | None = None, img_size: int | None = None, *,
                     name: str | None = None) -> FaceSet:
    """Real aligned faces from a folder with one sub-folder per identity, plus optional LFW-style pairs.

    Layout (as LFW's)::

        <root>/Aaron_Eckhart/Aaron_Eckhart_0001.jpg
        <root>/Abel_Pacheco/Abel_Pacheco_0001.png  Abel_Pacheco_0002.png ...

    Sub-folders (hidden ones aside) are the identities, sorted by name (``classes``); their ``.png`` /
    ``.jpg`` / ``.jpeg`` files, sorted by name, are the images (other files are ignored, empty sub-folders
    skipped). Images are read with PIL as RGB. Faces are expected to be aligned already (e.g. to
    :data:`TEMPLATE`); no detector runs, so ``landmarks`` is ``None``.

    ``pairs_file`` (a path; a relative one not found from the working directory is looked up under
    ``root``) uses LFW's ``pairs.txt`` format: an optional header line ``folds n`` (or ``n``, as in
    ``pairsDevTrain.txt``), then one pair per line: ``name idx1 idx2`` (same person) or
    ``name1 idx1 name2 idx2`` (different people), where ``idx`` is the 1-based number in the file name
    ``<name>_<idx:04d>.<ext>``. Blank lines are skipped. With a header the file must hold
    ``2 * folds * n`` pairs.

    Args:
        root: the folder of identity sub-folders.
        pairs_file: optional pairs file (see above).
        img_size: resize every image to ``img_size`` x ``img_size`` (bilinear, antialiased); ``None`` keeps
            the size, which must then be the same for all images.
        name: ``FaceSet.name`` (default: the folder's name).

    Raises:
        FileNotFoundError: ``root`` or ``pairs_file`` missing, or no images under ``root``.
        ValueError: unreadable images, mixed sizes without ``img_size``, malformed pair lines, pairs that
            name unknown people or missing images (the message gives the line number).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"face folder {root} not found (expected one sub-folder of images per identity)")
    if img_size is not None:
        check_int("img_size", img_size, low=8)
    people, files, labels = _identity_files(root)
    x = _read_faces(root, files, img_size)
    y = torch.tensor(labels, dtype=torch.int64)
    face_set = FaceSet(x=x, y=y, classes=tuple(people), name=name if name is not None else root.name)
    if pairs_file is None:
        return face_set
    index = {(people[label], path.stem): i for i, (path, label) in enumerate(zip(files, labels))}
    pairs, same = _read_pairs(_find_pairs_file(root, pairs_file), index, set(people))
    return face_set.with_pairs(pairs, same)


def _identity_files(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """``(people, files, labels)`` of a face folder: the identity sub-folders that hold images (sorted by name,
    hidden ones aside), every image file, and the index into ``people`` of each."""
    people: list[str] = []
    files: list[Path] = []
    labels: list[int] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if images:
            labels += [len(people)] * len(images)
            people.append(folder.name)
            files += images
    if not files:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_EXTENSIONS)} images in sub-folders of {root} (expected "
                                "<root>/<identity>/<image>, one sub-folder per identity)")
    return people, files, labels


def _read_faces(root: Path, files: list[Path], img_size: int | None) -> Tensor:
    """The images as RGB ``(N, 3, S, S)`` float32 in ``[0, 1]``, resized bilinearly to ``img_size`` when given
    (otherwise they must all have one size)."""
    from PIL import Image, UnidentifiedImageError

    arrays = []
    for path in files:
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if img_size is not None and im.size != (img_size, img_size):
                    im = im.resize((img_size, img_size), Image.Resampling.BILINEAR)
                arrays.append(np.asarray(im, dtype=np.uint8))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read image {path}: {err}") from None
    sizes = sorted({a.shape[:2] for a in arrays})
    if len(sizes) > 1:
        raise ValueError(f"images under {root} have different sizes {sizes[:4]}; pass img_size to resize them")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255).contiguous()


def _find_pairs_file(root: Path, pairs_file: str | Path) -> Path:
    path = Path(pairs_file).expanduser()
    if not path.is_file() and not path.is_absolute() and (root / path).is_file():
        path = root / path
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {pairs_file} not found (looked in the working directory and in {root})")
    return path


def _read_pairs(path: Path, index: dict[tuple[str, str], int], people: set[str]) -> tuple[Tensor, Tensor]:
    """Parse an LFW pairs file into (pairs, same), resolving each ``name idx`` to an image index."""
    lines = [(i, line.split()) for i, line in enumerate(path.read_text().splitlines(), start=1) if line.strip()]
    expected = None
    if lines and len(lines[0][1]) in (1, 2) and all(re.fullmatch(r"\d+", f) for f in lines[0][1]):
        header = [int(f) for f in lines[0][1]]
        expected = 2 * header[0] * header[1] if len(header) == 2 else 2 * header[0]
        lines = lines[1:]

    def image(lineno: int, person: str, idx: str) -> int:
        if not re.fullmatch(r"\d+", idx):
            raise ValueError(f"{path}:{lineno}: image number {idx!r} is not a positive integer")
        if person not in people:
            raise ValueError(f"{path}:{lineno}: no identity folder {person!r} (or it has no images)")
        stem = f"{person}_{int(idx):04d}"
        if (person, stem) not in index:
            raise ValueError(f"{path}:{lineno}: image {person}/{stem}.(png|jpg|jpeg) not found")
        return index[(person, stem)]

    pairs, same = [], []
    for lineno, f in lines:
        if len(f) == 3:
            pairs.append((image(lineno, f[0], f[1]), image(lineno, f[0], f[2])))
            same.append(True)
        elif len(f) == 4:
            pairs.append((image(lineno, f[0], f[1]), image(lineno, f[2], f[3])))
            same.append(f[0] == f[2])
        else:
            raise ValueError(f"{path}:{lineno}: expected 'name idx1 idx2' (same) or 'name1 idx1 name2 idx2' "
                             f"(different), got {len(f)} field(s): {' '.join(f)!r}")
    if not pairs:
        raise ValueError(f"{path} holds no pairs")
    if expected is not None and expected != len(pairs):
        raise ValueError(f"{path}: the header promises {expected} pairs but the file holds {len(pairs)}")
    if any(f[0] == f[2] for _, f in lines if len(f) == 4):
        warnings.warn(f"{path}: some 4-field ('different') lines name the same person twice; they are "
                      "scored as same-identity pairs", stacklevel=3)
    return torch.tensor(pairs, dtype=torch.int64), torch.tensor(same, dtype=torch.bool)


# ---------------------------------------------------------------------------------------------- checks


def _check_identities(identities: object) -> Tensor:
    """A 1-D non-empty int64 CPU tensor of non-negative ids."""
    if isinstance(identities, Tensor):
        ids = identities
    else:
        try:
            ids = torch.as_tensor(list(identities))
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"identities must be a 1-D sequence of non-negative ints, got {identities!r}") from None
    if ids.ndim != 1 or len(ids) == 0 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"identities must be a non-empty 1-D int tensor, got {tuple(ids.shape)} {ids.dtype}")
    ids = ids.cpu().long()
    if int(ids.min()) < 0:
        raise ValueError(f"identity ids must be non-negative, got {int(ids.min())}")
    return ids


def _check_traits(traits: object) -> Tensor:
    """(N, len(TRAITS)) identity vectors as float32 on the CPU."""
    check_tensor("traits", traits, ndim=2, floating=True)
    if traits.shape[1] != len(TRAITS):
        raise ValueError(f"traits must have {len(TRAITS)} columns (one per trait), got shape {tuple(traits.shape)}")
    return traits.float().cpu()


__all__ = ["DEFAULT_STYLE", "FACE_CENTRE", "FaceSet", "FaceStyle", "IMAGE_EXTENSIONS", "LANDMARKS", "TEMPLATE",
           "TRAITS", "Variation", "canonical_landmarks", "faces_splits", "identity_traits", "load_face_folder",
           "faces_val", "make_faces", "make_pairs", "render_faces", "sample_variation"]
