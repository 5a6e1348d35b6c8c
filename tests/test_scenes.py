"""Procedural RGB-D scenes and the RGB-D folder loader: shapes, ranges, determinism, camera geometry
(analytic depths of planes, hits on object surfaces), shading, DepthSet, bad inputs."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdlab.data.scenes import (DEPTH_RANGE, OBJECT_KINDS, DepthSet, load_depth_folder, make_scenes, render_scenes,
                               sample_scenes, scenes_splits)


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(48, img_size=32, seed=0)


def _camera(room, cam, yaw=0.0, pitch=0.0, focal=1.0, k=0):
    """One scene with a known room and camera; ``k`` object slots, all switched off."""
    p = sample_scenes(1, seed=0, max_objects=k, min_objects=0)
    return p.replace(room=torch.tensor([room]), cam_pos=torch.tensor([cam]), yaw=torch.tensor([yaw]),
                     pitch=torch.tensor([pitch]), focal=torch.tensor([focal]),
                     active=torch.zeros(1, k, dtype=torch.bool))


def _rays(size, focal, yaw=0.0, pitch=0.0):
    """Ray directions (S, S, 3) with unit forward component, written out independently of the library."""
    f = torch.tensor([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    r = torch.tensor([math.cos(yaw), 0.0, -math.sin(yaw)])
    u = torch.linalg.cross(f, r)
    c = (torch.arange(size, dtype=torch.float64) + 0.5 - size / 2) / (focal * size)
    return (f.double()[None, None] + c[None, :, None] * r.double()[None, None]
            - c[:, None, None] * u.double()[None, None])


def test_dtypes_shapes_and_ranges(scenes):
    assert len(scenes) == 48 and scenes.task == "depth"
    assert scenes.x.shape == (48, 3, 32, 32) and scenes.x.dtype == torch.float32
    assert scenes.y.shape == (48, 32, 32) and scenes.y.dtype == torch.float32
    assert scenes.valid.shape == (48, 32, 32) and scenes.valid.dtype == torch.bool
    assert repr(scenes) == "DepthSet('scenes', n=48, image=3x32x32, task=depth, depth_range=(0.5, 10) m, device=cpu)"
    assert 0.0 <= scenes.x.min() and scenes.x.max() <= 1.0 and torch.isfinite(scenes.x).all()
    lo, hi = DEPTH_RANGE
    assert scenes.depth_range == (lo, hi) == (0.5, 10.0)
    assert lo <= scenes.y.min() and scenes.y.max() <= hi
    # out-of-range pixels are clamped to a bound and flagged; most pixels are in range
    off = scenes.y[~scenes.valid]
    assert ((off == lo) | (off == hi)).all()
    assert scenes.valid.float().mean() > 0.9
    # NYU-like spread: metres of depth inside every image, images differ in brightness and colour
    spread = scenes.y.flatten(1).max(1).values - scenes.y.flatten(1).min(1).values
    assert spread.median() > 2.0
    assert scenes.x.mean(dim=(1, 2, 3)).std() > 0.03 and scenes.x.std(dim=(2, 3)).mean() > 0.05


def test_determinism_and_seeds():
    a, b = make_scenes(8, img_size=24, seed=5), make_scenes(8, img_size=24, seed=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.valid, b.valid)
    c = make_scenes(8, img_size=24, seed=6)
    assert not torch.equal(a.y, c.y) and not torch.equal(a.x, c.x)
    clean = make_scenes(8, img_size=24, seed=5, noise=0.0)
    assert torch.equal(clean.y, a.y) and not torch.equal(clean.x, a.x)
    assert (clean.x - a.x).abs().max() < 0.1


@pytest.mark.parametrize("size", [8, 48, 96])
def test_sizes(size):
    s = make_scenes(2, img_size=size, seed=1)
    assert s.x.shape == (2, 3, size, size) and s.y.shape == (2, size, size)


def test_same_scene_at_every_resolution():
    # the camera is defined in units of the image side: 2x2 blocks at 64 px average to the 32 px depth
    small = make_scenes(6, img_size=32, seed=2, noise=0.0)
    large = make_scenes(6, img_size=64, seed=2, noise=0.0)
    pooled = F.avg_pool2d(large.y[:, None], 2)[:, 0]
    assert (pooled - small.y).abs().median() < 0.02
    other = make_scenes(6, img_size=32, seed=3, noise=0.0)
    assert (pooled - other.y).abs().median() > 0.1


def test_splits_are_disjoint_and_reproducible():
    train, test = scenes_splits(20, 10, img_size=16, seed=0)
    assert len(train) == 20 and len(test) == 10
    assert train.name == "scenes-train" and test.name == "scenes-test"
    assert torch.cdist(test.y.flatten(1), train.y.flatten(1)).min() > 1e-3
    again, _ = scenes_splits(20, 3, img_size=16, seed=0)
    assert torch.equal(again.x, train.x)


def test_empty_room_plane_depths_are_analytic():
    # wide room, camera 5 m from the far wall, looking straight at it: the wall is perpendicular to the
    # optical axis, so its z-depth is 5 everywhere (the ray length would grow towards the corners)
    size, focal, h = 32, 1.0, 1.5
    out = render_scenes(_camera([12.0, 3.0, 6.0], [6.0, h, 1.0], focal=focal), img_size=size)
    depth, surface = out.depth[0], out.surface[0]
    wall = surface == 2
    assert wall.sum() > 100
    assert torch.allclose(depth[wall], torch.full_like(depth[wall], 5.0), atol=1e-4)
    # floor below, ceiling above: z = h / y_n and (H - h) / |y_n| with y_n the row's normalised coordinate
    rows = (torch.arange(size) + 0.5 - size / 2) / (focal * size)
    expect = torch.where(rows > 0, h / rows, (3.0 - h) / -rows)[:, None].expand(size, size)
    floor, ceiling = surface == 0, surface == 1
    assert floor[-1].all() and ceiling[0].all() and not (floor & ceiling).any()
    assert torch.allclose(depth[floor], expect[floor].float(), rtol=1e-5)
    assert torch.allclose(depth[ceiling], expect[ceiling].float(), rtol=1e-5)
    # floor depth grows towards the horizon (upwards in the image), strictly, in every column
    floor_rows = floor.all(dim=1).nonzero().flatten()
    assert len(floor_rows) >= 5
    assert (depth[floor_rows].diff(dim=0) < 0).all()


def test_yaw_and_pitch_convention():
    # yaw pi/2 looks along +x: the wall x = 6 is 5 m ahead of a camera at x = 1
    out = render_scenes(_camera([6.0, 3.0, 12.0], [1.0, 1.5, 6.0], yaw=math.pi / 2), img_size=16)
    wall = out.surface[0] == 2
    assert torch.allclose(out.depth[0][wall], torch.full_like(out.depth[0][wall], 5.0), atol=1e-4)
    # pitched down: the far wall's z-depth is 5 / d_z (not constant), the floor's 1.5 / -d_y
    size, pitch = 24, -0.25
    out = render_scenes(_camera([12.0, 3.0, 6.0], [6.0, 1.5, 1.0], pitch=pitch, focal=0.9), img_size=size)
    d = _rays(size, 0.9, pitch=pitch)
    depth, surface = out.depth[0].double(), out.surface[0]
    wall, floor = surface == 2, surface == 0
    assert wall.any() and floor.any()
    assert torch.allclose(depth[wall], (5.0 / d[..., 2])[wall], rtol=1e-5)
    assert torch.allclose(depth[floor], (1.5 / -d[..., 1])[floor], rtol=1e-5)
    assert floor.float().mean() > 0.4  # looking down shows more floor
    # handedness: at yaw 0 the camera's right is +x, so a camera near the wall x = 0 sees it on the left
    out = render_scenes(_camera([8.0, 3.0, 12.0], [0.6, 1.5, 1.0]), img_size=16)
    mid = out.depth[0, 8]
    assert out.surface[0, 8, 0] == 2 and mid[0] < 1.5 and mid[-1] > 5.0


def _with_objects(kinds, centres, sizes, turns):
    k = len(kinds)
    p = _camera([10.0, 3.0, 10.0], [5.0, 1.5, 1.0], pitch=-0.2, focal=0.8, k=k)
    return p.replace(kind=torch.tensor([kinds]), active=torch.ones(1, k, dtype=torch.bool),
                     centre=torch.tensor([centres]), size=torch.tensor([sizes]), turn=torch.tensor([turns]))


def test_hits_lie_on_the_object_surfaces_occlude_and_are_lit_by_their_normals():
    size = 48
    p = _with_objects([0, 1, 2], [[3.5, 5.0], [5.5, 4.0], [6.9, 4.5]],
                      [[0.5, 1.2, 0.3], [0.6, 1.2, 0.6], [0.4, 0.6, 0.4]], [0.5, 0.0, 0.0])
    light = torch.tensor([0.48, 0.6, -0.64])  # unit, from above, behind and to the right
    colours = torch.rand(1, 6, 1, 3, generator=torch.Generator().manual_seed(0)).expand(1, 6, 2, 3).contiguous()
    p = p.replace(pattern=torch.zeros(1, 6, dtype=torch.int64), colours=colours, light=light[None],
                  ambient=torch.tensor([0.2]), tint=torch.ones(1, 3))
    out = render_scenes(p, img_size=size)
    empty = render_scenes(p.replace(active=torch.zeros(1, 3, dtype=torch.bool)), img_size=size)
    depth, surface = out.depth[0].double(), out.surface[0]
    pts = torch.tensor([5.0, 1.5, 1.0], dtype=torch.float64) + depth[..., None] * _rays(size, 0.8, pitch=-0.2)
    for slot, kind in enumerate(OBJECT_KINDS):
        on = surface == 3 + slot
        assert on.sum() > 20, f"the {kind} is in view"
        q = pts[on]
        if kind == "box":  # rotated by 0.5 rad about the vertical, half sizes (0.5, 0.6, 0.3), centre y 0.6
            c, s = math.cos(0.5), math.sin(0.5)
            wx, wz = q[:, 0] - 3.5, q[:, 2] - 5.0
            local = torch.stack([c * wx - s * wz, q[:, 1] - 0.6, s * wx + c * wz], 1) / torch.tensor([0.5, 0.6, 0.3])
            inside, axis = local.abs().max(1)
            assert torch.allclose(inside, torch.ones_like(inside), atol=1e-4)
            ln = F.one_hot(axis, 3).double() * local.sign()  # outward normal in the box frame
            normal = torch.stack([c * ln[:, 0] + s * ln[:, 2], ln[:, 1], -s * ln[:, 0] + c * ln[:, 2]], 1)
            assert len(axis.unique()) >= 2  # two faces seen
        elif kind == "sphere":
            rel = q - torch.tensor([5.5, 0.6, 4.0], dtype=torch.float64)
            dist = torch.linalg.vector_norm(rel, dim=1)
            assert torch.allclose(dist, torch.full_like(dist, 0.6), atol=1e-4)
            normal = rel / 0.6
        else:  # side (radius 0.4) or top cap (y = 0.6); the camera at 1.5 m sees the top
            radius = torch.hypot(q[:, 0] - 6.9, q[:, 2] - 4.5)
            side, top = (radius - 0.4).abs() < 1e-4, (q[:, 1] - 0.6).abs() < 1e-4
            assert (side | top).all() and top.any() and side.any()
            assert (radius[top] <= 0.4 + 1e-4).all() and ((q[side, 1] >= -1e-4) & (q[side, 1] <= 0.6 + 1e-4)).all()
            normal = torch.stack([(q[:, 0] - 6.9) / 0.4, torch.zeros_like(radius), (q[:, 2] - 4.5) / 0.4], 1)
            normal[top] = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
        shade = 0.2 + 0.8 * (normal @ light.double()).clamp(min=0)
        expect = colours[0, 3 + slot, 0].double()[:, None] * shade[None]
        assert torch.allclose(out.rgb[0][:, on].double(), expect, atol=2e-3), kind
    objects = surface >= 3
    assert (out.depth <= empty.depth + 1e-5).all()
    assert (out.depth[0][objects] < empty.depth[0][objects] - 1e-3).all()
    assert torch.equal(out.depth[0][~objects], empty.depth[0][~objects])


def test_lambertian_shading_on_plain_surfaces():
    p = _camera([12.0, 3.0, 6.0], [6.0, 1.5, 1.0], pitch=-0.1)
    light = torch.tensor([[0.0, 0.8, -0.6]])  # from above and behind the camera: lights the far wall
    colours = torch.tensor([[[[0.8, 0.4, 0.2]] * 2, [[0.5, 0.5, 0.5]] * 2, [[0.2, 0.6, 0.9]] * 2]])
    p = p.replace(pattern=torch.zeros(1, 3, dtype=torch.int64), light=light, ambient=torch.tensor([0.3]),
                  tint=torch.ones(1, 3), colours=colours)
    out = render_scenes(p, img_size=16)
    rgb, surface = out.rgb[0], out.surface[0]
    for sid, normal in ((0, (0.0, 1.0, 0.0)), (1, (0.0, -1.0, 0.0)), (2, (0.0, 0.0, -1.0))):
        lam = max(0.0, sum(n * l for n, l in zip(normal, light[0].tolist())))
        expect = colours[0, sid, 0] * (0.3 + 0.7 * lam)
        got = rgb[:, surface == sid]
        assert got.shape[1] > 0
        assert torch.allclose(got, expect[:, None].expand_as(got), atol=1e-6)
    # a checkered floor with two colours is no longer one colour
    two = colours.clone()
    two[0, 0, 1] = 0.3 * two[0, 0, 0]
    textured = render_scenes(p.replace(pattern=torch.tensor([[1, 0, 0]]), colours=two), img_size=16)
    assert textured.rgb[0][:, surface == 0].std(dim=1).min() > 0.02


def test_empty_rooms_and_object_counts():
    empty = make_scenes(4, img_size=16, seed=0, max_objects=0, min_objects=0)
    assert empty.x.shape == (4, 3, 16, 16)
    p = sample_scenes(400, seed=0, max_objects=6, min_objects=2)
    drawn = p.active.sum(1)
    assert p.active.shape == (400, 6) and drawn.max() <= 6
    assert drawn.float().mean() > 2.5  # most drawn objects survive the camera-clearance rule
    kinds = torch.bincount(p.kind[p.active], minlength=3)
    assert (kinds > 0.2 * kinds.sum()).all()  # boxes, spheres and cylinders all appear
    # objects stand inside the room and their footprint keeps 0.5 m or more from the camera
    foot = torch.where(p.kind == 0, torch.hypot(p.size[..., 0], p.size[..., 2]), p.size[..., 0])
    lo, hi = p.centre - foot[..., None], p.centre + foot[..., None]
    assert (lo >= -1e-6).all() and (hi <= p.room[:, None, [0, 2]] + 1e-6).all()
    gap = torch.linalg.vector_norm(p.centre - p.cam_pos[:, None, [0, 2]], dim=-1) - foot
    assert (gap[p.active] >= 0.5).all() and (gap[~p.active] < 0.5).any()
    assert torch.equal(p.size[..., 1][p.kind == 1], 2 * p.size[..., 0][p.kind == 1])  # spheres rest on the floor
    out = render_scenes(p.subset(slice(0, 50)), img_size=32)
    assert ((out.surface >= 3).flatten(1).any(1)).float().mean() > 0.8  # most scenes show an object


def test_depthset_subset_split_to_and_checks(scenes):
    part = scenes.subset([3, 1])
    assert torch.equal(part.x[0], scenes.x[3]) and torch.equal(part.y[1], scenes.y[1])
    assert torch.equal(part.valid[0], scenes.valid[3]) and part.depth_range == scenes.depth_range
    assert len(scenes.subset(scenes.y.mean(dim=(1, 2)) > 3.0)) == int((scenes.y.mean(dim=(1, 2)) > 3.0).sum())
    first, rest = scenes.split(0.25, seed=1)
    assert len(first) == 12 and len(rest) == 36
    assert torch.equal(scenes.split(0.25, seed=1)[0].y, first.y)
    moved = scenes.to("cpu")
    assert torch.equal(moved.y, scenes.y) and "DepthSet('scenes'" in repr(moved)
    plain = DepthSet(x=scenes.x[:2], y=torch.zeros(2, 32, 32))
    assert not plain.valid.any() and plain.valid.shape == (2, 32, 32), "valid defaults to y > 0"
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"y must be a tensor of dtype floating point and shape \(2, 8, 8\)"):
        DepthSet(x=x, y=torch.ones(2, 1, 8, 8))
    with pytest.raises(ValueError, match="finite and >= 0"):
        DepthSet(x=x, y=-torch.ones(2, 8, 8))
    with pytest.raises(ValueError, match="valid must be a tensor of dtype bool"):
        DepthSet(x=x, y=torch.ones(2, 8, 8), valid=torch.ones(2, 8, 8))
    with pytest.raises(ValueError, match="RGB"):
        DepthSet(x=torch.rand(2, 1, 8, 8), y=torch.ones(2, 8, 8))
    with pytest.raises(ValueError, match="depth_range"):
        DepthSet(x=x, y=torch.ones(2, 8, 8), depth_range=(3.0, 1.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        DepthSet(x=x * 2, y=torch.ones(2, 8, 8))


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be"),
    (dict(n=2, img_size=4), "img_size"),
    (dict(n=2, img_size=32.0), "img_size"),
    (dict(n=2, seed=-1), "seed"),
    (dict(n=2, max_objects=40), "max_objects"),
    (dict(n=2, max_objects=2, min_objects=3), "min_objects"),
    (dict(n=2, noise=1.0), "noise"),
    (dict(n=2, depth_range=(2.0, 1.0)), "depth_range"),
    (dict(n=2, depth_range="far"), "depth_range"),
])
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_scenes(**kwargs)


def test_scene_params_checks():
    p = sample_scenes(2, seed=0, max_objects=2)
    with pytest.raises(ValueError, match="inside its room"):
        p.replace(cam_pos=p.room + 1)
    with pytest.raises(ValueError, match="SceneParams.centre must have shape"):
        p.replace(centre=torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match="SceneParams"):
        render_scenes("scene")


# ---------------------------------------------------------------------------------------------------
# RGB + depth folders


def _write_pair(root, stem, rgb, depth_mm, eight_bit=False):
    from PIL import Image

    (root / "rgb").mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8)).save(root / "rgb" / f"{stem}.png")
    img = Image.fromarray((depth_mm // 256).astype(np.uint8) if eight_bit else depth_mm.astype(np.uint16))
    img.save(root / "depth" / f"{stem}.png")


@pytest.fixture()
def rgbd_folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "nyu_tiny"
    for i in range(3):
        rgb = rng.integers(0, 256, (6, 8, 3))
        depth = rng.integers(500, 9000, (6, 8))
        depth[0, 0] = 0  # a missing measurement
        _write_pair(root, f"{i:04d}", rgb, depth)
    return root


def test_load_depth_folder_values(rgbd_folder):
    from PIL import Image

    with Image.open(rgbd_folder / "depth" / "0001.png") as im:
        assert im.mode.startswith("I")  # the fixture really is 16-bit
        raw = np.asarray(im).astype(np.float64)
    with Image.open(rgbd_folder / "rgb" / "0001.png") as im:
        rgb = np.asarray(im).astype(np.float64)
    ds = load_depth_folder(rgbd_folder)
    assert len(ds) == 3 and ds.name == "nyu_tiny"
    assert ds.x.shape == (3, 3, 6, 8) and ds.y.shape == (3, 6, 8) and ds.valid.dtype == torch.bool
    assert np.allclose(ds.y[1].numpy(), raw / 1000.0, atol=1e-6)
    assert np.allclose(ds.x[1].permute(1, 2, 0).numpy(), rgb / 255.0, atol=1e-6)
    assert not ds.valid[:, 0, 0].any() and ds.valid.sum() == 3 * 48 - 3
    assert ds.depth_range == (1e-3, 10.0)
    assert len(load_depth_folder(rgbd_folder, limit=2)) == 2
    kitti = load_depth_folder(rgbd_folder, depth_scale=256.0)
    assert torch.allclose(kitti.y, ds.y * 1000.0 / 256.0)


def test_load_depth_folder_crop_and_resize(rgbd_folder):
    full = load_depth_folder(rgbd_folder)
    cropped = load_depth_folder(rgbd_folder, crop=(0, 6, 1, 7))
    assert cropped.y.shape == (3, 6, 6)
    assert torch.equal(cropped.y, full.y[:, :, 1:7]) and torch.equal(cropped.x, full.x[:, :, :, 1:7])
    small = load_depth_folder(rgbd_folder, size=3, crop=(0, 6, 1, 7))
    assert small.x.shape == (3, 3, 3, 3) and small.y.shape == (3, 3, 3)
    # nearest neighbour: every resized depth is one of the source values (no blending into missing pixels)
    for i in range(3):
        assert set(small.y[i].flatten().tolist()) <= set(cropped.y[i].flatten().tolist())
    assert torch.equal(small.valid, small.y > 0)
    wide = load_depth_folder(rgbd_folder, size=(4, 5))
    assert wide.y.shape == (3, 4, 5) and 0 <= wide.x.min() and wide.x.max() <= 1


def test_load_depth_folder_errors(tmp_path, rgbd_folder):
    rng = np.random.default_rng(1)
    with pytest.raises(FileNotFoundError, match="rgb/"):
        load_depth_folder(tmp_path / "missing")
    (tmp_path / "half" / "rgb").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no depth/ folder"):
        load_depth_folder(tmp_path / "half")
    (tmp_path / "empty" / "rgb").mkdir(parents=True)
    (tmp_path / "empty" / "depth").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no image/depth pairs"):
        load_depth_folder(tmp_path / "empty")
    (rgbd_folder / "depth" / "0002.png").unlink()
    with pytest.raises(ValueError, match=r"unpaired files.*'0002'"):
        load_depth_folder(rgbd_folder)

    eight = tmp_path / "eight"
    _write_pair(eight, "a", rng.integers(0, 256, (4, 4, 3)), rng.integers(500, 9000, (4, 4)), eight_bit=True)
    with pytest.raises(ValueError, match="16-bit"):
        load_depth_folder(eight)
    mismatch = tmp_path / "mismatch"
    _write_pair(mismatch, "a", rng.integers(0, 256, (4, 5, 3)), rng.integers(500, 9000, (4, 4)))
    with pytest.raises(ValueError, match="must match"):
        load_depth_folder(mismatch)
    mixed = tmp_path / "mixed"
    _write_pair(mixed, "a", rng.integers(0, 256, (4, 4, 3)), rng.integers(500, 9000, (4, 4)))
    _write_pair(mixed, "b", rng.integers(0, 256, (5, 5, 3)), rng.integers(500, 9000, (5, 5)))
    with pytest.raises(ValueError, match="different sizes"):
        load_depth_folder(mixed)
    assert load_depth_folder(mixed, size=4).y.shape == (2, 4, 4)
    with pytest.raises(ValueError, match="outside"):
        load_depth_folder(mixed, crop=(0, 5, 0, 5))
    with pytest.raises(ValueError, match="crop must be"):
        load_depth_folder(mixed, crop=(3, 1, 0, 2))
    with pytest.raises(ValueError, match="size must be"):
        load_depth_folder(mixed, size=0)
    with pytest.raises(ValueError, match="depth_scale"):
        load_depth_folder(mixed, size=4, depth_scale=0)


def test_load_dataset_gives_depth_sets_and_refuses_masks():
    from kdlab.data import DATASETS, load_dataset

    assert "scenes" in DATASETS
    train, test = load_dataset("scenes", n_train=4, n_test=2, img_size=32, seed=3)
    assert train.task == "depth" and train.y.shape == (4, 32, 32) and len(test) == 2
    assert torch.equal(train.y, make_scenes(4, img_size=32, seed=3).y)
    with pytest.raises(ValueError, match="depth maps, not segmentation masks"):
        load_dataset("scenes", n_train=4, n_test=2, target="mask")
