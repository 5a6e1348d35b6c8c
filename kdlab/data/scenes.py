r"""Procedural RGB-D indoor scenes, ray-cast in torch, and a loader for real RGB + depth PNG folders.

Every scene is a room (a box of random size: floor, four walls, ceiling) holding up to ``max_objects``
boxes (axis-aligned or turned about the vertical), spheres and vertical cylinders standing on the floor,
seen by a pinhole camera somewhere inside the room. One ray per pixel is cast through the pixel centre;
the nearest hit gives the depth, the surface's procedural texture (plain, checker, stripes or value
noise, laid out in metres on the surface, so its image-space scale shrinks with depth) and a Lambertian
shade. All of it is vectorised over rays *and* scenes (a loop runs only over the object slots).

Camera (world frame: ``x`` across the room, ``y`` up, ``z`` along the room; the floor is ``y = 0``).
With yaw :math:`\psi` and pitch :math:`\phi` (positive looks up) the camera's forward, right and up axes
are

.. math::
    f=(\sin\psi\cos\phi,\ \sin\phi,\ \cos\psi\cos\phi),\quad r=(\cos\psi,\ 0,\ -\sin\psi),\quad u=f\times r .

With focal length :math:`f_{px}=\text{focal}\cdot S` pixels and the principal point at the image centre,
pixel (row :math:`i`, column :math:`j`) casts

.. math::
    d_{ij}=f+\frac{j+\tfrac12-\tfrac S2}{f_{px}}\,r-\frac{i+\tfrac12-\tfrac S2}{f_{px}}\,u,
    \qquad p(t)=o+t\,d_{ij}.

Because :math:`d_{ij}\cdot f=1`, the ray parameter of the nearest hit *is* its **z-depth** (the distance
along the optical axis, as NYU-Depth-V2 and KITTI store it), not the ray length
:math:`t\lVert d_{ij}\rVert`. Shading is

.. math::
    \text{rgb}=\text{tint}\odot\text{albedo}(u,v)\,\big(a+(1-a)\max(0,\ n\cdot\ell)\big)+\varepsilon,
    \qquad \varepsilon\sim\mathcal N(0,\sigma^2),

with a directional light :math:`\ell` from above, ambient term :math:`a`, surface normal :math:`n`
(facing the camera), texture coordinates :math:`(u,v)` in metres on the surface; the result is clipped
to ``[0, 1]``. There are no cast shadows.

Depth convention: :class:`DepthSet` holds the depth as its targets ``y``, ``(N, H, W)`` float32 metres (the layout
``kdlab.train.fit`` treats as a per-pixel target, so crop/flip augmentation moves it with the image;
the zero padding of a crop reads as "no depth"). Generated depth is clamped to ``depth_range``
(0.5–10 m, NYU-like) and ``valid`` marks the pixels whose true z-depth lay inside it; with
:func:`kdlab.metrics.depth.depth_metrics` at ``min_depth=0.5, max_depth=10`` (strict bounds) the same
pixels are scored (the clamped ones sit exactly on a bound and drop out).

Speed: 2000 scenes at 64x64 take about 2 s on one CPU thread (0.8 s at 32x32, 4.7 s at 96x96;
``python -m kdlab.data.scenes`` prints a timing). Everything is deterministic from ``seed``::

    train, test = scenes_splits(4000, 500)            # the DisDepth notebook's data (64x64)
    small = make_scenes(128, img_size=32, seed=1)     # smoke size
    nyu = load_depth_folder("~/nyu_small", size=64, crop=(0, 480, 80, 560))   # real RGB-D, if you have it
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_int, check_number, check_pair, check_positive, check_range, is_int
from .tensors import TensorSet, check_images, check_rows

DEPTH_RANGE: tuple[float, float] = (0.5, 10.0)
"""Generated depth is clamped to this range in metres (NYU-Depth-V2-like)."""

ROOM_SURFACES: tuple[str, ...] = ("floor", "ceiling", "wall")
"""Surface ids ``0, 1, 2`` of :class:`SceneRender.surface`; object slot ``k`` is surface ``3 + k``."""

OBJECT_KINDS: tuple[str, ...] = ("box", "sphere", "cylinder")
"""``SceneParams.kind == k`` means ``OBJECT_KINDS[k]``."""

PATTERNS: tuple[str, ...] = ("plain", "checker", "stripes", "noise")
"""``SceneParams.pattern == k`` means ``PATTERNS[k]``."""

MAX_OBJECTS = 12
"""The largest ``max_objects`` accepted."""

MIN_IMG_SIZE = 8
"""The smallest ``img_size`` (pixels) the scenes render at."""

_TEST_SEED_OFFSET = 1_000_003
"""``scenes_splits`` draws the test set from ``seed + _TEST_SEED_OFFSET`` (a disjoint stream)."""

_VAL_SEED_OFFSET = 2_000_029
"""``scenes_val`` draws the validation set from ``seed + _VAL_SEED_OFFSET`` (disjoint from train and test)."""

_CHUNK_RAYS = 1 << 20
"""Scenes are rendered in chunks of about this many rays (pixels) to bound memory."""

_EPS = 1e-4
"""Hits closer than this (metres along the ray) are ignored."""

_CLEARANCE = 0.5
"""Objects whose footprint comes closer than this to the camera (horizontally) are left out."""


# ---------------------------------------------------------------------------------------------------
# the dataset


@dataclass(frozen=True, eq=False, repr=False)
class DepthSet(TensorSet):
    """Images with metric depth maps, as tensors (the :class:`~kdlab.data.tensors.TensorSet` surface, task
    ``"depth"``), so ``kdlab.train.fit`` / ``evaluate`` take a DepthSet as they take an ``ImageSet``.

    Attributes:
        x: images ``(N, 3, H, W)`` floating point (float32) in ``[0, 1]``.
        y: z-depth in metres, ``(N, H, W)`` floating point, finite and ``>= 0``; ``0`` means "no
            measurement" (real sensors; crop padding).
        valid: ``(N, H, W)`` bool, the pixels with trustworthy depth; ``None`` stores ``y > 0``.
        depth_range: the nominal ``(min, max)`` depth in metres (for bin heads and the metrics' clamp).
        name: a short label for ``repr`` and plots.

    Raises:
        ValueError: a shape, dtype, device or value range is off; the message names the field.
    """

    ROW_FIELDS: ClassVar[tuple[str, ...]] = ("x", "y", "valid")

    x: Tensor
    y: Tensor
    valid: Tensor | None = None
    depth_range: tuple[float, float] = DEPTH_RANGE
    name: str = ""

    def __post_init__(self) -> None:
        """Validate every field (and store ``valid`` and ``depth_range`` in their canonical types)."""
        check_images("x", self.x)
        if self.x.shape[1] != 3:
            raise ValueError(f"x must hold RGB images (N, 3, H, W), got {tuple(self.x.shape)}")
        n, _, h, w = self.x.shape
        check_rows("y", self.y, self.x, ((n, h, w),), floating=True)
        if self.y.numel() and not (torch.isfinite(self.y).all() and self.y.min() >= 0):
            raise ValueError("y (depth) must be finite and >= 0 (metres; 0 marks a missing measurement), got "
                             f"values in [{float(self.y.min()):g}, {float(self.y.max()):g}]")
        if self.valid is None:
            object.__setattr__(self, "valid", self.y > 0)
        check_rows("valid", self.valid, self.x, ((n, h, w),), dtype=torch.bool)
        object.__setattr__(self, "depth_range", check_range("depth_range", self.depth_range, low=0.0))

    @property
    def task(self) -> str:
        """``"depth"``."""
        return "depth"

    def describe_targets(self) -> str:
        """``"depth_range=(lo, hi) m"``."""
        lo, hi = self.depth_range
        return f"depth_range=({lo:g}, {hi:g}) m"


# ---------------------------------------------------------------------------------------------------
# scene parameters


@dataclass(frozen=True, eq=False)
class SceneParams:
    """Everything that defines ``n`` scenes with ``K`` object slots (all tensors, first dim ``n``).

    Lengths in metres, angles in radians. Surfaces are indexed ``0`` floor, ``1`` ceiling, ``2`` walls,
    ``3 + k`` object slot ``k`` (``M = 3 + K`` surfaces).

    Attributes:
        room: ``(n, 3)`` room size ``(width x, height y, depth z)``; the room spans ``[0, W] x [0, H] x [0, D]``.
        cam_pos: ``(n, 3)`` camera centre, strictly inside the room.
        yaw: ``(n,)`` heading about the vertical (0 looks along ``+z``, pi/2 along ``+x``).
        pitch: ``(n,)`` elevation of the optical axis (negative looks down).
        focal: ``(n,)`` focal length as a fraction of the image side (``f_px = focal * S``), so a scene
            renders alike at every resolution.
        light: ``(n, 3)`` unit vector towards the (directional) light.
        ambient: ``(n,)`` ambient term ``a`` in ``[0, 1]``.
        tint: ``(n, 3)`` light colour (per-channel gain).
        kind: ``(n, K)`` int64 object kind, an index into :data:`OBJECT_KINDS`.
        active: ``(n, K)`` bool; inactive slots are not drawn.
        centre: ``(n, K, 2)`` object footprint centre ``(x, z)`` on the floor.
        size: ``(n, K, 3)`` ``(half-width x, height, half-depth z)`` in the object's frame; a sphere of
            radius r is ``(r, 2r, r)``, a cylinder ``(r, h, r)``.
        turn: ``(n, K)`` rotation of a box about the vertical (ignored for spheres and cylinders).
        pattern: ``(n, M)`` int64 texture kind per surface, an index into :data:`PATTERNS`.
        colours: ``(n, M, 2, 3)`` the two colours each texture blends, in ``[0, 1]``.
        scale: ``(n, M)`` texture period in metres.
        tex_angle: ``(n, M)`` stripe direction in the surface's (u, v) plane.
        offset: ``(n, M, 2)`` texture phase (in periods); also seeds the noise texture.
    """

    room: Tensor
    cam_pos: Tensor
    yaw: Tensor
    pitch: Tensor
    focal: Tensor
    light: Tensor
    ambient: Tensor
    tint: Tensor
    kind: Tensor
    active: Tensor
    centre: Tensor
    size: Tensor
    turn: Tensor
    pattern: Tensor
    colours: Tensor
    scale: Tensor
    tex_angle: Tensor
    offset: Tensor

    def __post_init__(self) -> None:
        n, k = len(self.room), self.kind.shape[-1] if self.kind.ndim == 2 else -1
        m = 3 + k
        expected = {
            "room": (n, 3), "cam_pos": (n, 3), "yaw": (n,), "pitch": (n,), "focal": (n,), "light": (n, 3),
            "ambient": (n,), "tint": (n, 3), "kind": (n, k), "active": (n, k), "centre": (n, k, 2),
            "size": (n, k, 3), "turn": (n, k), "pattern": (n, m), "colours": (n, m, 2, 3), "scale": (n, m),
            "tex_angle": (n, m), "offset": (n, m, 2),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if not isinstance(value, Tensor) or tuple(value.shape) != shape:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"SceneParams.{name} must have shape {shape} (n={n} scenes, K={k} slots), got {got}")
        if self.kind.dtype != torch.int64 or self.pattern.dtype != torch.int64 or self.active.dtype != torch.bool:
            raise ValueError("SceneParams.kind and .pattern must be int64 and .active bool")
        inside = (self.cam_pos > 0) & (self.cam_pos < self.room)
        if not bool(inside.all()):
            raise ValueError("every camera must lie strictly inside its room (0 < cam_pos < room)")
        if not bool((self.focal > 0).all()):
            raise ValueError("focal must be > 0")

    def __len__(self) -> int:
        return len(self.room)

    @property
    def max_objects(self) -> int:
        """``K``, the number of object slots."""
        return self.kind.shape[1]

    def subset(self, index: slice | Tensor) -> SceneParams:
        """The scenes picked by ``index`` (a slice or an index tensor)."""
        return SceneParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def replace(self, **changes) -> SceneParams:
        """A copy with some fields replaced (checked again)."""
        return replace(self, **changes)


def _uniform(g: torch.Generator, lo: float, hi: float, *shape: int) -> Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=g)


def _free_distance(room_xz: Tensor, cam_xz: Tensor, heading: Tensor) -> Tensor:
    """Horizontal distance from ``cam_xz`` to the room's wall along ``heading`` (yaw), broadcasting."""
    direction = torch.stack([heading.sin(), heading.cos()], dim=-1)
    bound = torch.where(direction > 0, room_xz, torch.zeros(()))
    t = torch.where(direction.abs() > 1e-9, (bound - cam_xz) / direction, torch.tensor(float("inf")))
    return t.min(dim=-1).values


def sample_scenes(n: int, *, seed: int = 0, max_objects: int = 6, min_objects: int = 1) -> SceneParams:
    """Random :class:`SceneParams` for ``n`` scenes, deterministic from ``seed``.

    Room: width 3–7 m, length 3.5–8.5 m, height 2.4–3.2 m. Camera: 0.5 m or more from every wall, 1.0–1.7 m
    high; heading: the first of 8 random ones with at least min(3 m, 80% of the best one's) free floor ahead
    (few views filled by a near wall); pitch -17..+5 deg; horizontal field of view about 53–68 deg (NYU's
    Kinect: 58 deg). Light: from 35–75 deg elevation, ambient 0.3–0.5, tint 0.85–1.1 per channel.
    Objects: ``min_objects..max_objects`` per scene (uniform), each a box (50% aligned with the walls),
    sphere or cylinder with equal chance; 75% are placed in the camera's view (1–6 m away), the rest
    anywhere; all stand fully inside the room (they may overlap each other); a slot whose object would
    stand within 0.5 m of the camera is switched off, so a scene can show fewer objects than drawn.
    Textures: each surface draws one of :data:`PATTERNS` and two colours (room surfaces muted, objects saturated).
    """
    check_int("n", n, low=1)
    check_int("seed", seed, low=0)
    check_int("max_objects", max_objects, low=0, high=MAX_OBJECTS)
    check_int("min_objects", min_objects, low=0, high=max_objects)
    g = torch.Generator().manual_seed(seed)
    room, cam_pos, yaw, pitch, focal = _sample_cameras(g, n)
    light, ambient, tint = _sample_lights(g, n)
    kind, active, centre, size, turn = _sample_objects(g, room, cam_pos, yaw, min_objects, max_objects)
    pattern, colours, scale, tex_angle, offset = _sample_textures(g, n, max_objects)
    return SceneParams(room=room, cam_pos=cam_pos, yaw=yaw, pitch=pitch, focal=focal, light=light,
                       ambient=ambient, tint=tint, kind=kind, active=active, centre=centre, size=size, turn=turn,
                       pattern=pattern, colours=colours, scale=scale, tex_angle=tex_angle, offset=offset)


def _sample_cameras(g: torch.Generator, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Rooms and cameras of :func:`sample_scenes`: ``(room, cam_pos, yaw, pitch, focal)``."""
    room = torch.stack([_uniform(g, 3.0, 7.0, n), _uniform(g, 2.4, 3.2, n), _uniform(g, 3.5, 8.5, n)], dim=1)
    margin = 0.5
    cam_x = margin + (room[:, 0] - 2 * margin) * torch.rand(n, generator=g)
    cam_z = margin + (room[:, 2] - 2 * margin) * torch.rand(n, generator=g)
    cam_y = _uniform(g, 1.0, 1.7, n)
    cam_pos = torch.stack([cam_x, cam_y, cam_z], dim=1)
    # heading: the first of 8 random candidates that sees at least min(3 m, 80% of the best candidate's)
    # free floor ahead, so that few views are filled by one nearby wall
    candidates = _uniform(g, 0.0, 2 * math.pi, n, 8)
    free = _free_distance(room[:, None, [0, 2]], cam_pos[:, None, [0, 2]], candidates)
    enough = free >= torch.minimum(0.8 * free.max(dim=1, keepdim=True).values, torch.full((), 3.0))
    yaw = candidates.gather(1, enough.float().argmax(dim=1, keepdim=True))[:, 0]
    pitch = _uniform(g, math.radians(-17), math.radians(5), n)
    focal = 0.5 / math.tan(math.radians(30)) * _uniform(g, 0.85, 1.15, n)
    return room, cam_pos, yaw, pitch, focal


def _sample_lights(g: torch.Generator, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """Lights of :func:`sample_scenes`: ``(light direction, ambient, tint)``."""
    elevation = _uniform(g, math.radians(35), math.radians(75), n)
    azimuth = _uniform(g, 0.0, 2 * math.pi, n)
    light = torch.stack([elevation.cos() * azimuth.sin(), elevation.sin(), elevation.cos() * azimuth.cos()], 1)
    ambient = _uniform(g, 0.3, 0.5, n)
    tint = _uniform(g, 0.85, 1.1, n, 3)
    return light, ambient, tint


def _sample_objects(g: torch.Generator, room: Tensor, cam_pos: Tensor, yaw: Tensor, min_objects: int,
                    max_objects: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Objects of :func:`sample_scenes` in ``max_objects`` slots: ``(kind, active, centre, size, turn)``."""
    n, k = len(room), max_objects
    count = torch.randint(min_objects, max_objects + 1, (n,), generator=g)
    order = torch.rand(n, k, generator=g).argsort(dim=1)  # which slots are used: a random subset of size count
    active = order < count[:, None]
    kind = torch.randint(0, len(OBJECT_KINDS), (n, k), generator=g)
    half_x, half_z = _uniform(g, 0.15, 0.7, n, k), _uniform(g, 0.15, 0.7, n, k)
    box_h = _uniform(g, 0.3, 1.9, n, k)
    radius_s = _uniform(g, 0.15, 0.55, n, k)
    radius_c, cyl_h = _uniform(g, 0.1, 0.45, n, k), _uniform(g, 0.3, 2.0, n, k)
    is_box, is_sphere = kind == 0, kind == 1
    r = torch.where(is_sphere, radius_s, radius_c)
    size = torch.where(is_box[..., None], torch.stack([half_x, box_h, half_z], -1),
                       torch.stack([r, torch.where(is_sphere, 2 * radius_s, cyl_h), r], -1))
    turn = torch.where(torch.rand(n, k, generator=g) < 0.5, torch.zeros(()), _uniform(g, 0.0, math.pi / 2, n, k))
    turn = torch.where(is_box, turn, torch.zeros(()))
    footprint = torch.where(is_box, torch.hypot(half_x, half_z), r)  # bounding-circle radius on the floor
    # 75% in view (bearing within ~+-34 deg of the heading, 1-6 m away), 25% anywhere in the room
    bearing = yaw[:, None] + _uniform(g, -0.6, 0.6, n, k)
    dist = _uniform(g, 1.0, 6.0, n, k)
    cam_x, cam_z = cam_pos[:, 0], cam_pos[:, 2]
    in_view = torch.stack([cam_x[:, None] + dist * bearing.sin(), cam_z[:, None] + dist * bearing.cos()], -1)
    anywhere = room[:, None, [0, 2]] * torch.rand(n, k, 2, generator=g)
    centre = torch.where((torch.rand(n, k, generator=g) < 0.75)[..., None], in_view, anywhere)
    lo = footprint[..., None].expand(-1, -1, 2)
    centre = torch.minimum(torch.maximum(centre, lo), room[:, None, [0, 2]] - lo)
    gap = torch.linalg.vector_norm(centre - cam_pos[:, None, [0, 2]], dim=-1) - footprint
    active = active & (gap >= _CLEARANCE)
    return kind, active, centre, size, turn


def _sample_textures(g: torch.Generator, n: int, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Textures of the ``3 + k`` surfaces of :func:`sample_scenes` (room surfaces muted, objects saturated):
    ``(pattern, colours, scale, tex_angle, offset)``."""
    m = 3 + k
    pattern = torch.randint(0, len(PATTERNS), (n, m), generator=g)
    grey = _uniform(g, 0.35, 0.9, n, m, 1)
    saturation = torch.cat([torch.full((1, 3, 1), 0.25), torch.full((1, k, 1), 0.8)], dim=1)
    base = (grey + saturation * (torch.rand(n, m, 3, generator=g) - 0.5)).clamp(0.02, 1.0)
    second = base * _uniform(g, 0.35, 0.8, n, m, 1)
    colours = torch.stack([base, second], dim=2)
    scale = torch.cat([_uniform(g, 0.25, 0.9, n, 3), _uniform(g, 0.08, 0.35, n, k)], dim=1)
    tex_angle = _uniform(g, 0.0, math.pi, n, m)
    offset = torch.rand(n, m, 2, generator=g) * 64
    return pattern, colours, scale, tex_angle, offset


# ---------------------------------------------------------------------------------------------------
# ray casting


class SceneRender(NamedTuple):
    """What :func:`render_scenes` returns, for ``n`` scenes at ``S x S``.

    Attributes:
        rgb: ``(n, 3, S, S)`` float32 in ``[0, 1]``, noise-free.
        depth: ``(n, S, S)`` float32 z-depth in metres, **not** clamped.
        surface: ``(n, S, S)`` int64 id of the surface each pixel sees (see :data:`ROOM_SURFACES`).
    """

    rgb: Tensor
    depth: Tensor
    surface: Tensor


class _Hits:
    """The nearest hit so far for a batch of rays (each field (B, P)); updated slot by slot."""

    __slots__ = ("t", "surface", "nx", "ny", "nz", "u", "v")

    def __init__(self, t, surface, nx, ny, nz, u, v):
        self.t, self.surface, self.nx, self.ny, self.nz, self.u, self.v = t, surface, nx, ny, nz, u, v

    def merge(self, rows: Tensor, t, surface: int, nx, ny, nz, u, v) -> None:
        """Keep the new hit (``t`` etc. for scenes ``rows``) where it is nearer."""
        closer = t < self.t[rows]
        for name, new in (("t", t), ("nx", nx), ("ny", ny), ("nz", nz), ("u", u), ("v", v)):
            buf = getattr(self, name)
            buf[rows] = torch.where(closer, new, buf[rows])
        self.surface[rows] = torch.where(closer, surface, self.surface[rows])


def _camera_rays(p: SceneParams, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Ray directions ``dx, dy, dz`` (B, P) with unit forward component, P = size * size, row-major."""
    cy, sy, cp, sp = p.yaw.cos(), p.yaw.sin(), p.pitch.cos(), p.pitch.sin()
    fwd = torch.stack([sy * cp, sp, cy * cp], dim=1)  # (B, 3)
    right = torch.stack([cy, torch.zeros_like(cy), -sy], dim=1)
    up = torch.linalg.cross(fwd, right, dim=1)
    centres = torch.arange(size, dtype=torch.float32) + 0.5 - size / 2
    f_px = p.focal * size
    xn = centres[None, None, :] / f_px[:, None, None]  # (B, 1, S): columns
    yn = centres[None, :, None] / f_px[:, None, None]  # (B, S, 1): rows (down)
    d = (fwd[:, :, None, None] + xn[:, None] * right[:, :, None, None] - yn[:, None] * up[:, :, None, None])
    d = d.flatten(2)  # (B, 3, P)
    return d[:, 0], d[:, 1], d[:, 2]


def _room_hits(p: SceneParams, dx: Tensor, dy: Tensor, dz: Tensor) -> _Hits:
    """The room box from inside: exit distance per axis, nearest wins; surface, inward normal, (u, v)."""
    o = p.cam_pos[:, :, None]  # (B, 3, 1)
    room = p.room[:, :, None]
    inf = torch.tensor(float("inf"))
    ts = []
    for axis, d in enumerate((dx, dy, dz)):
        bound = torch.where(d > 0, room[:, axis], torch.zeros(()))
        ts.append(torch.where(d.abs() > 1e-12, (bound - o[:, axis]) / d, inf))
    t_all = torch.stack(ts)  # (3, B, P)
    t, axis = t_all.min(dim=0)
    px, py, pz = o[:, 0] + t * dx, o[:, 1] + t * dy, o[:, 2] + t * dz
    on_x, on_y, on_z = axis == 0, axis == 1, axis == 2
    surface = torch.where(on_y, torch.where(dy < 0, 0, 1), 2)
    zero = torch.zeros(())
    nx = torch.where(on_x, -torch.sign(dx), zero)
    ny = torch.where(on_y, -torch.sign(dy), zero)
    nz = torch.where(on_z, -torch.sign(dz), zero)
    u = torch.where(on_z, px, torch.where(on_x, pz, px))  # floor/ceiling (x, z); x-walls (z, y); z-walls (x, y)
    v = torch.where(on_y, pz, py)
    return _Hits(t, surface.long(), nx, ny, nz, u, v)


def _sphere(o, d, c, r):
    """Nearest entry of rays ``o + t d`` into spheres ``(c, r)``: t (inf on a miss), normal, (u, v)."""
    ox, oy, oz = (o[i] - c[i] for i in range(3))
    dx, dy, dz = d
    a = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    disc = b * b - a * (ox * ox + oy * oy + oz * oz - r * r)
    t = (-b - disc.clamp(min=0).sqrt()) / a
    t = torch.where((disc >= 0) & (t > _EPS), t, torch.tensor(float("inf")))
    nx, ny, nz = (ox + t * dx) / r, (oy + t * dy) / r, (oz + t * dz) / r
    u = torch.atan2(nz, nx) * r
    v = c[1] + r * ny
    return t, nx, ny, nz, u, v


def _cylinder(o, d, cx, cz, r, h):
    """Vertical cylinders on the floor (centre (cx, cz), radius r, height h): side or top cap."""
    ox, oz = o[0] - cx, o[2] - cz
    oy = o[1]
    dx, dy, dz = d
    a = (dx * dx + dz * dz).clamp(min=1e-12)
    b = ox * dx + oz * dz
    disc = b * b - a * (ox * ox + oz * oz - r * r)
    inf = torch.tensor(float("inf"))
    t_side = (-b - disc.clamp(min=0).sqrt()) / a
    y_side = oy + t_side * dy
    t_side = torch.where((disc >= 0) & (t_side > _EPS) & (y_side >= 0) & (y_side <= h), t_side, inf)
    t_top = (h - oy) / torch.where(dy.abs() > 1e-12, dy, torch.full((), 1e-12))
    tx, tz = ox + t_top * dx, oz + t_top * dz
    t_top = torch.where((t_top > _EPS) & (tx * tx + tz * tz <= r * r) & (oy > h), t_top, inf)
    top = t_top < t_side
    t = torch.minimum(t_side, t_top)
    px, pz = ox + t * dx, oz + t * dz
    zero = torch.zeros(())
    nx = torch.where(top, zero, px / r)
    nz = torch.where(top, zero, pz / r)
    ny = top.to(dx.dtype)
    u = torch.where(top, px, torch.atan2(pz, px) * r)
    v = torch.where(top, pz, oy + t * dy)
    return t, nx, ny, nz, u, v


def _box(o, d, cx, cz, hx, h, hz, turn):
    """Boxes on the floor, turned by ``turn`` about the vertical: slab test in the box frame."""
    c, s = turn.cos(), turn.sin()
    wx, wz = o[0] - cx, o[2] - cz
    lox, loz = c * wx - s * wz, s * wx + c * wz
    ldx, ldz = c * d[0] - s * d[2], s * d[0] + c * d[2]
    loy, ldy = o[1], d[1]
    bounds = ((lox, ldx, -hx, hx), (loy, ldy, torch.zeros_like(h), h), (loz, ldz, -hz, hz))
    near, far = [], []
    for oo, dd, lo, hi in bounds:
        t1, t2 = (lo - oo) / dd, (hi - oo) / dd  # +-inf where dd == 0: the slab then constrains nothing or all
        near.append(torch.minimum(t1, t2))
        far.append(torch.maximum(t1, t2))
    near_t, axis = torch.stack(near).max(dim=0)
    far_t = torch.stack(far).min(dim=0).values
    hit = (near_t <= far_t) & (near_t > _EPS)
    t = torch.where(hit, near_t, torch.tensor(float("inf")))
    t_safe = torch.where(hit, near_t, torch.zeros(()))
    lx, ly, lz = lox + t_safe * ldx, loy + t_safe * ldy, loz + t_safe * ldz
    zero = torch.zeros(())
    lnx = torch.where(axis == 0, -torch.sign(ldx), zero)
    lnz = torch.where(axis == 2, -torch.sign(ldz), zero)
    ny = torch.where(axis == 1, -torch.sign(ldy), zero)
    nx, nz = c * lnx + s * lnz, -s * lnx + c * lnz
    u = torch.where(axis == 0, lz, lx)
    v = torch.where(axis == 1, lz, ly)
    return t, nx, ny, nz, u, v


def _object_hits(hits: _Hits, p: SceneParams, d: tuple[Tensor, Tensor, Tensor]) -> None:
    """Intersect every active object slot; each kind is computed only for the scenes that hold it."""
    for slot in range(p.max_objects):
        for kind in range(len(OBJECT_KINDS)):
            rows = torch.nonzero(p.active[:, slot] & (p.kind[:, slot] == kind)).flatten()
            if len(rows) == 0:
                continue
            o = tuple(p.cam_pos[rows, i, None] for i in range(3))
            dd = tuple(x[rows] for x in d)
            cx, cz = p.centre[rows, slot, 0, None], p.centre[rows, slot, 1, None]
            hx, h, hz = (p.size[rows, slot, i, None] for i in range(3))
            if kind == 0:
                res = _box(o, dd, cx, cz, hx, h, hz, p.turn[rows, slot, None])
            elif kind == 1:
                res = _sphere(o, dd, (cx, hx, cz), hx)
            else:
                res = _cylinder(o, dd, cx, cz, hx, h)
            hits.merge(rows, res[0], 3 + slot, *res[1:])


def _hash01(ix: Tensor, iy: Tensor, seed: Tensor) -> Tensor:
    """A deterministic pseudo-random value in [0, 1) per integer lattice point. Every product stays
    below 2**63 (inputs masked to 16 bits, state to 32 bits), so no int64 overflow is involved."""
    m16, m32 = 0xFFFF, 0xFFFFFFFF
    h = ((ix & m16) * 73856093) ^ ((iy & m16) * 19349663) ^ ((seed & m16) * 83492791)
    h = ((h ^ (h >> 13)) * 1274126177) & m32
    h = h ^ (h >> 16)
    return (h & m16).float() / 65536.0


def _value_noise(su: Tensor, sv: Tensor, seed: Tensor) -> Tensor:
    """Smooth value noise in [0, 1] (bilinear with smoothstep weights between lattice values)."""
    fu, fv = su.floor(), sv.floor()
    wu, wv = su - fu, sv - fv
    wu, wv = wu * wu * (3 - 2 * wu), wv * wv * (3 - 2 * wv)
    iu, iv = fu.long(), fv.long()
    a, b = _hash01(iu, iv, seed), _hash01(iu + 1, iv, seed)
    c, e = _hash01(iu, iv + 1, seed), _hash01(iu + 1, iv + 1, seed)
    return (a + (b - a) * wu) * (1 - wv) + (c + (e - c) * wu) * wv


def _albedo(p: SceneParams, hits: _Hits) -> Tensor:
    """Per-pixel surface colour (B, P, 3) from the surface's pattern at its (u, v)."""
    surf = hits.surface
    take = lambda t: t.gather(1, surf)  # noqa: E731  (B, M) -> (B, P)
    pattern, scale, angle = take(p.pattern), take(p.scale), take(p.tex_angle)
    su = hits.u / scale + take(p.offset[..., 0])
    sv = hits.v / scale + take(p.offset[..., 1])
    mix = torch.zeros_like(su)
    sel = pattern == 1  # checker, with soft edges
    mix[sel] = (0.5 + 2.0 * torch.sin(math.pi * su[sel]) * torch.sin(math.pi * sv[sel])).clamp(0, 1)
    sel = pattern == 2  # stripes
    w = su[sel] * angle[sel].cos() + sv[sel] * angle[sel].sin()
    mix[sel] = (0.5 + 1.5 * torch.sin(2 * math.pi * w)).clamp(0, 1)
    sel = pattern == 3  # two octaves of value noise
    if bool(sel.any()):
        seed = surf[sel]  # surfaces differ by their random offset; the id decorrelates the octaves further
        n1 = _value_noise(2 * su[sel], 2 * sv[sel], seed)
        n2 = _value_noise(5 * su[sel], 5 * sv[sel], seed + 7)
        mix[sel] = ((0.65 * n1 + 0.35 * n2 - 0.5) * 2.2 + 0.5).clamp(0, 1)
    m = p.colours.shape[1]
    cols = p.colours.reshape(len(p), m, 6).gather(1, surf[..., None].expand(-1, -1, 6))
    return cols[..., :3] + (cols[..., 3:] - cols[..., :3]) * mix[..., None]


def _render_chunk(p: SceneParams, size: int) -> SceneRender:
    b = len(p)
    d = _camera_rays(p, size)
    hits = _room_hits(p, *d)
    _object_hits(hits, p, d)
    albedo = _albedo(p, hits)
    lam = (hits.nx * p.light[:, 0, None] + hits.ny * p.light[:, 1, None] + hits.nz * p.light[:, 2, None]).clamp(min=0)
    a = p.ambient[:, None]
    shade = a + (1 - a) * lam
    rgb = (albedo * shade[..., None] * p.tint[:, None, :]).clamp(0, 1)
    rgb = rgb.transpose(1, 2).reshape(b, 3, size, size)
    return SceneRender(rgb.contiguous(), hits.t.reshape(b, size, size), hits.surface.reshape(b, size, size))


@torch.no_grad()
def render_scenes(params: SceneParams, img_size: int = 64) -> SceneRender:
    """Ray-cast ``params`` at ``img_size x img_size``: noise-free RGB, unclamped z-depth and surface ids.

    No randomness; rendered in chunks of about ``2**20`` rays on the CPU. See the module docstring for
    the camera model and shading.
    """
    if not isinstance(params, SceneParams):
        raise ValueError(f"params must be SceneParams (see sample_scenes), got {type(params).__name__}")
    check_int("img_size", img_size, low=MIN_IMG_SIZE)
    chunk = max(1, _CHUNK_RAYS // (img_size * img_size))
    parts = [_render_chunk(params.subset(slice(s, s + chunk)), img_size) for s in range(0, len(params), chunk)]
    return SceneRender(*(torch.cat(t) for t in zip(*parts)))


# ---------------------------------------------------------------------------------------------------
# public generators


def make_scenes(n: int, *, img_size: int = 64, seed: int = 0, max_objects: int = 6, min_objects: int = 1,
                depth_range: tuple[float, float] = DEPTH_RANGE, noise: float = 0.01,
                name: str = "scenes") -> DepthSet:
    """``n`` procedural RGB-D scenes as a :class:`DepthSet`.

    Args:
        n: number of scenes (>= 1).
        img_size: side length ``S`` in pixels (an int >= 8; 32, 48, 64 (default) and 96 are typical). The
            same seed shows the same scenes at every size.
        seed: the same seed gives identical images and depth.
        max_objects, min_objects: each scene draws ``min_objects..max_objects`` objects (see
            :func:`sample_scenes`; ``max_objects=0`` gives empty rooms).
        depth_range: ``(min, max)`` metres; depth is clamped into it and ``valid`` marks the pixels
            whose true z-depth lies inside.
        noise: standard deviation of Gaussian pixel noise added to the RGB (then clipped to ``[0, 1]``),
            in ``[0, 0.5]``.
        name: stored as ``DepthSet.name``.

    Returns:
        ``x`` (n, 3, S, S) float32 in ``[0, 1]``; ``y`` (n, S, S) float32 depth in metres in ``depth_range``;
        ``valid`` (n, S, S) bool.
    """
    check_int("n", n, low=1)
    check_int("img_size", img_size, low=MIN_IMG_SIZE)
    check_int("seed", seed, low=0)
    lo, hi = check_range("depth_range", depth_range, low=0.0)
    check_number("noise", noise, low=0.0, high=0.5)
    params = sample_scenes(n, seed=seed, max_objects=max_objects, min_objects=min_objects)
    out = render_scenes(params, img_size)
    x = out.rgb
    if noise > 0:
        g = torch.Generator().manual_seed(seed + 2**32)  # a stream no scene layout uses
        x = (x + noise * torch.randn(x.shape, generator=g)).clamp_(0, 1)
    valid = (out.depth >= lo) & (out.depth <= hi)
    depth = out.depth.clamp(lo, hi)
    return DepthSet(x=x, y=depth, valid=valid, depth_range=(lo, hi), name=name)


def scenes_splits(n_train: int = 4000, n_test: int = 500, *, img_size: int = 64, seed: int = 0,
                  **kwargs) -> tuple[DepthSet, DepthSet]:
    """(train, test) scene sets with the same settings; the test set comes from a separate seed stream
    (``seed + 1_000_003``), so the two never share scenes. Keyword arguments as in :func:`make_scenes`."""
    check_int("seed", seed, low=0)
    train = make_scenes(n_train, img_size=img_size, seed=seed, name="scenes-train", **kwargs)
    test = make_scenes(n_test, img_size=img_size, seed=seed + _TEST_SEED_OFFSET, name="scenes-test", **kwargs)
    return train, test


def scenes_val(n_val: int, *, img_size: int = 64, seed: int = 0, n_train: int | None = None,
               n_test: int | None = None, **kwargs) -> DepthSet:
    """The validation set that goes with ``scenes_splits(..., seed=seed)``: ``n_val`` scenes from a third stream
    (``seed + _VAL_SEED_OFFSET``), disjoint from both and changing neither; ``n_train`` / ``n_test`` are ignored."""
    check_int("seed", seed, low=0)
    return make_scenes(check_int("n_val", n_val, low=1), img_size=img_size, seed=seed + _VAL_SEED_OFFSET,
                       name="scenes-val", **kwargs)


# ---------------------------------------------------------------------------------------------------
# real RGB-D folders

RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Accepted image file endings in ``rgb/`` (case-insensitive); depth maps are always ``.png``."""

FOLDER_LAYOUT = """\
    <root>/rgb/<name>.png|.jpg    8-bit RGB (grey or RGBA are converted to RGB)
    <root>/depth/<name>.png       16-bit single-channel PNG, depth * depth_scale as integers
                                  (millimetres by default, as NYU-Depth-V2 exports); 0 = no measurement
Pairs are matched by <name>; every image needs its depth map and vice versa."""
"""The folder layout :func:`load_depth_folder` reads."""


def load_depth_folder(root: str | Path, *, size: int | tuple[int, int] | None = None,
                      crop: tuple[int, int, int, int] | None = None, depth_scale: float = 1000.0,
                      depth_range: tuple[float, float] = (1e-3, 10.0), limit: int | None = None,
                      name: str | None = None) -> DepthSet:
    """Real RGB + depth pairs from a folder (NYU-Depth-V2 style), as a :class:`DepthSet`.

    Layout (``FOLDER_LAYOUT``)::

        <root>/rgb/<name>.png|.jpg    8-bit RGB (grey or RGBA are converted to RGB)
        <root>/depth/<name>.png       16-bit single-channel PNG, depth * depth_scale as integers
                                      (millimetres by default); 0 = no measurement

    Args:
        root: the folder holding ``rgb/`` and ``depth/``.
        size: resize to ``size x size`` (an int) or ``(height, width)``: RGB bilinearly (antialiased),
            depth by nearest neighbour (never blending across edges or into missing pixels). ``None``
            keeps the files' size (all pairs must then share one size).
        crop: ``(top, bottom, left, right)`` pixel bounds applied before resizing, e.g. NYU's Eigen crop
            ``(45, 471, 41, 601)`` or a centred square ``(0, 480, 80, 560)`` of a 640x480 frame.
        depth_scale: stored integer per metre (1000: millimetres; KITTI uses 256).
        depth_range: stored as ``DepthSet.depth_range``; ``valid`` is ``y > 0`` whatever the range.
        limit: read only the first ``limit`` pairs (sorted by name).
        name: ``DepthSet.name`` (default: the folder's name).

    Raises:
        FileNotFoundError: ``root``, ``rgb/`` or ``depth/`` is missing, or no pairs were found.
        ValueError: unpaired files, a depth map that is not 16-bit, an RGB and depth map of different
            sizes, pairs of different sizes without ``size``, a crop outside the image, bad arguments.
    """
    root = Path(root).expanduser()
    rgb_dir, depth_dir = _depth_folders(root)
    out_size = None if size is None else check_pair("size", size)
    crop = None if crop is None else _check_crop(crop)
    depth_scale = check_positive("depth_scale", depth_scale)
    lo, hi = check_range("depth_range", depth_range, low=0.0)
    if limit is not None:
        check_int("limit", limit, low=1)
    xs, ds = [], []
    for stem, image_file, depth_file in _depth_pairs(root, rgb_dir, depth_dir)[:limit]:
        x, d = _read_rgbd(stem, image_file, depth_file, depth_scale)
        x, d = _crop_and_resize(stem, x, d, crop, out_size)
        xs.append(x.clamp_(0, 1))
        ds.append(d)
    shapes = sorted({tuple(d.shape) for d in ds})
    if len(shapes) > 1:
        raise ValueError(f"pairs in {root} have different sizes {shapes[:4]}; pass size= to resize them")
    depth = torch.stack(ds)
    return DepthSet(x=torch.stack(xs).contiguous(), y=depth, valid=depth > 0, depth_range=(lo, hi),
                    name=name if name is not None else root.name)


def _depth_folders(root: Path) -> tuple[Path, Path]:
    """``(root/rgb, root/depth)``; ``FileNotFoundError`` (showing :data:`FOLDER_LAYOUT`) when one is missing."""
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {root}; expected the layout\n{FOLDER_LAYOUT}")
    rgb_dir, depth_dir = root / "rgb", root / "depth"
    for folder in (rgb_dir, depth_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{root} has no {folder.name}/ folder; expected the layout\n{FOLDER_LAYOUT}")
    return rgb_dir, depth_dir


def _depth_pairs(root: Path, rgb_dir: Path, depth_dir: Path) -> list[tuple[str, Path, Path]]:
    """``(stem, image file, depth file)`` of every pair, sorted by stem; unpaired files raise ``ValueError``."""
    images = {f.stem: f for f in sorted(rgb_dir.iterdir()) if f.suffix.lower() in RGB_SUFFIXES}
    depths = {f.stem: f for f in sorted(depth_dir.iterdir()) if f.suffix.lower() == ".png"}
    no_depth, no_image = sorted(set(images) - set(depths)), sorted(set(depths) - set(images))
    if no_depth or no_image:
        raise ValueError(f"unpaired files in {root}: images without depth {no_depth[:5]}"
                         f"{' ...' if len(no_depth) > 5 else ''}, depth maps without image {no_image[:5]}"
                         f"{' ...' if len(no_image) > 5 else ''}")
    if not images:
        raise FileNotFoundError(f"no image/depth pairs in {root}; expected the layout\n{FOLDER_LAYOUT}")
    return [(stem, images[stem], depths[stem]) for stem in sorted(images)]


def _read_rgbd(stem: str, image_file: Path, depth_file: Path, depth_scale: float) -> tuple[Tensor, Tensor]:
    """One pair as ``(x (3, H, W) in [0, 1], depth (H, W) in metres)``; the depth map must be a 16-bit PNG of the
    image's size."""
    from PIL import Image

    with Image.open(image_file) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    with Image.open(depth_file) as im:
        if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(f"{depth_file}: depth maps must be 16-bit single-channel PNGs (mode I;16), "
                             f"got mode {im.mode!r}; store depth * {depth_scale:g} as uint16")
        raw = np.asarray(im).astype(np.float32)
    if rgb.shape[:2] != raw.shape:
        raise ValueError(f"{stem}: image is {rgb.shape[1]}x{rgb.shape[0]} but depth map is "
                         f"{raw.shape[1]}x{raw.shape[0]} (width x height); they must match")
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0
    return x, torch.from_numpy(raw) / float(depth_scale)


def _crop_and_resize(stem: str, x: Tensor, d: Tensor, crop: tuple[int, int, int, int] | None,
                     out_size: tuple[int, int] | None) -> tuple[Tensor, Tensor]:
    """Crop (``(top, bottom, left, right)``), then resize: RGB bilinearly (antialiased), depth by nearest
    neighbour."""
    if crop is not None:
        top, bottom, left, right = crop
        if bottom > d.shape[0] or right > d.shape[1]:
            raise ValueError(f"{stem}: crop {crop} reaches outside the {d.shape[1]}x{d.shape[0]} image")
        x, d = x[:, top:bottom, left:right], d[top:bottom, left:right]
    if out_size is not None:
        x = F.interpolate(x[None], size=out_size, mode="bilinear", align_corners=False, antialias=True)[0]
        d = F.interpolate(d[None, None], size=out_size, mode="nearest-exact")[0, 0]
    return x, d


def _check_crop(crop: object) -> tuple[int, int, int, int]:
    """``crop`` as ``(top, bottom, left, right)`` ints with ``0 <= top < bottom`` and ``0 <= left < right``."""
    box = tuple(crop) if isinstance(crop, (tuple, list)) else ()
    if not (len(box) == 4 and all(is_int(c, 0) for c in box) and box[0] < box[1] and box[2] < box[3]):
        raise ValueError("crop must be (top, bottom, left, right) ints >= 0 with top < bottom and left < right, "
                         f"got {crop!r}")
    return int(box[0]), int(box[1]), int(box[2]), int(box[3])


def _benchmark(n: int = 2000, img_size: int = 64) -> float:
    """Seconds to generate ``n`` scenes at ``img_size`` (prints them)."""
    import time

    start = time.perf_counter()
    make_scenes(n, img_size=img_size, seed=0)
    seconds = time.perf_counter() - start
    print(f"make_scenes({n}, img_size={img_size}): {seconds:.2f} s on {torch.get_num_threads()} thread(s)")
    return seconds


if __name__ == "__main__":  # python -m kdlab.data.scenes
    _benchmark()


__all__ = ["DEPTH_RANGE", "FOLDER_LAYOUT", "OBJECT_KINDS", "PATTERNS", "ROOM_SURFACES", "DepthSet", "SceneParams",
           "SceneRender", "load_depth_folder", "make_scenes", "render_scenes", "sample_scenes", "scenes_splits", "scenes_val"]
