"""Procedural shape scenes: shapes, dtypes, ranges, determinism, masks, difficulty, bad inputs."""
import pytest
import torch

from kdlab.data import TARGETS, load_dataset
from kdlab.data.shapes import (CLASSES, DEFAULT_DIFFICULTY, EASY, HARD, MOSAIC_SIZE, ShapeStyle, make_shapes,
                               mosaic_cell_classes, resolve_style, shapes_splits)


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(600, seed=0)


def test_shapes_dtypes_and_ranges(shapes):
    assert shapes.x.shape == (600, 3, 32, 32) and shapes.x.dtype == torch.float32
    assert shapes.y.shape == (600,) and shapes.y.dtype == torch.int64
    assert shapes.mask.shape == (600, 32, 32) and shapes.mask.dtype == torch.int64
    assert 0.0 <= shapes.x.min() and shapes.x.max() <= 1.0
    assert torch.isfinite(shapes.x).all()
    assert tuple(shapes.classes) == CLASSES and len(CLASSES) == 10
    assert int(shapes.y.min()) >= 0 and int(shapes.y.max()) < 10
    assert int(shapes.mask.min()) >= 0 and int(shapes.mask.max()) <= 10


def test_classes_balanced(shapes):
    counts = torch.bincount(shapes.y, minlength=10)
    assert counts.min() >= 55 and counts.max() <= 65  # 600 / 10, as balanced as the count allows


def test_mask_matches_label(shapes):
    fg = shapes.mask > 0
    # every object pixel carries 1 + the image's label, and no other class appears
    assert torch.equal(shapes.mask[fg], (shapes.y[:, None, None] + 1).expand_as(shapes.mask)[fg])
    area = fg.float().mean(dim=(1, 2))
    assert area.min() > 0.02, "every image shows its object"
    assert 0.08 < area.mean() < 0.45
    # object pixels are painted with a single colour (noise aside), unlike the textured background
    clean = make_shapes(50, seed=1, noise=0.0)
    for i in range(5):
        obj = clean.x[i][:, clean.mask[i] > 0]
        assert obj.std(dim=1).max() < 1e-5


def test_determinism():
    a, b = make_shapes(64, seed=3), make_shapes(64, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.mask, b.mask)
    c = make_shapes(64, seed=4)
    assert not torch.equal(a.x, c.x)


def test_splits_do_not_share_samples():
    train, test = shapes_splits(100, 50, seed=0)
    assert len(train.x) == 100 and len(test.x) == 50
    flat_train = train.x.flatten(1)
    dist = torch.cdist(test.x.flatten(1), flat_train)
    assert dist.min() > 1e-3
    again, _ = shapes_splits(100, 10, seed=0)
    assert torch.equal(train.x, again.x)


def test_other_sizes():
    big = make_shapes(20, img_size=64, seed=0)
    assert big.x.shape == (20, 3, 64, 64) and big.mask.shape == (20, 64, 64)
    small = make_shapes(3, img_size=16, seed=0)
    assert small.x.shape == (3, 3, 16, 16)
    assert (make_shapes(1, seed=0).mask > 0).any()


def test_segmentation_sets_at_64px_through_load_dataset():
    train, test = load_dataset("shapes", n_train=12, n_test=6, img_size=64, seed=2, target="mask")
    labelled, _ = load_dataset("shapes", n_train=12, n_test=6, img_size=64, seed=2)
    assert TARGETS == ("label", "mask")
    assert train.x.shape == (12, 3, 64, 64) and train.y.shape == (12, 64, 64) and test.y.shape == (6, 64, 64)
    assert train.task == test.task == "segmentation" and train.num_classes == 11
    assert train.classes == ("background", *CLASSES)
    assert torch.equal(train.x, labelled.x) and torch.equal(train.y, labelled.mask), "same scenes, masks as targets"
    # every image has background and exactly one object class, named by classes[y]
    for i in range(len(train)):
        assert set(train.y[i].unique().tolist()) == {0, int(labelled.y[i]) + 1}
    assert train.classes[int(train.y[0].max())] == CLASSES[int(labelled.y[0])]
    with pytest.raises(ValueError, match="target must be one of 'label', 'mask', got"):
        load_dataset("shapes", n_train=2, n_test=2, target="depth")
    with pytest.raises(ValueError, match="no per-pixel masks"):
        load_dataset("digits", target="mask")


def test_difficulty_changes_images():
    easy = make_shapes(200, difficulty=0.0, seed=0)
    hard = make_shapes(200, difficulty=1.0, seed=0)
    assert not torch.equal(easy.x, hard.x)
    bg_easy = easy.x.permute(1, 0, 2, 3)[:, easy.mask == 0]
    bg_hard = hard.x.permute(1, 0, 2, 3)[:, hard.mask == 0]
    # easy: a plain background darker than the object; hard: a busier, full-range background
    per_image_std = lambda s: torch.stack([s.x[i][:, s.mask[i] == 0].std(dim=1).mean() for i in range(50)])  # noqa: E731
    assert per_image_std(hard).mean() > per_image_std(easy).mean() + 0.05
    assert bg_easy.max() <= 0.5 + 1e-6 and bg_hard.max() > 0.9
    assert easy.x[:, :, :, :][easy.mask[:, None].expand_as(easy.x) > 0].min() >= 0.5 - 1e-6


def test_style_presets_and_overrides():
    assert resolve_style(0.0) == EASY and resolve_style(1.0) == HARD
    assert resolve_style(None) == ShapeStyle.from_difficulty(DEFAULT_DIFFICULTY)
    style = ShapeStyle.from_difficulty(0.5, distractors=0, rotation=10.0)
    assert style.distractors == 0 and style.rotation == 10.0
    assert resolve_style(style, noise=0.0).noise == 0.0
    a = make_shapes(32, seed=0, difficulty=style)
    b = make_shapes(32, seed=0, difficulty=0.5, distractors=0, rotation=10.0)
    assert torch.equal(a.x, b.x)
    no_rotation = make_shapes(40, seed=0, difficulty=0.0)  # upright squares fill their bounding box
    squares = no_rotation.mask == 2
    for i in torch.nonzero(no_rotation.y == 1).flatten()[:3]:
        rows, cols = torch.nonzero(squares[i], as_tuple=True)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert squares[i].sum() == box


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be"),
    (dict(n=2.5), "n must be"),
    (dict(n=4, img_size=8), "img_size"),
    (dict(n=4, seed=-1), "seed"),
    (dict(n=4, difficulty=1.5), "difficulty"),
    (dict(n=4, difficulty="hard"), "difficulty"),
    (dict(n=4, clutter=2.0), "clutter"),
    (dict(n=4, distractors=-1), "distractors"),
    (dict(n=4, rotation=400), "rotation"),
    (dict(n=4, size=(0.8, 0.2)), "size"),
    (dict(n=4, contrast=-0.1), "contrast"),
    (dict(n=4, noise=1.0), "noise"),
    (dict(n=4, colour="red"), "ShapeStyle has the fields .*unknown field"),
])
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_shapes(**kwargs)


def test_splits_bad_inputs():
    with pytest.raises(ValueError, match="n must be"):
        shapes_splits(0, 10)
    with pytest.raises(ValueError, match="seed"):
        shapes_splits(10, 10, seed=-3)


# ------------------------------------------------------------------------------------------- mosaics


def test_mosaic_tiles_show_the_class_twice_and_two_other_classes():
    data = make_shapes(200, layout="mosaic", seed=4)
    assert data.x.shape == (200, 3, 32, 32) and data.mask.shape == (200, 32, 32)
    tiles = mosaic_cell_classes(data.mask, 2).reshape(200, 4)  # one cell per tile
    assert (tiles >= 0).all(), "every tile shows an object"
    for label, row in zip(data.y.tolist(), tiles.tolist()):
        others = [c for c in row if c != label]
        assert row.count(label) == 2 and len(set(others)) == 2, (label, row)
    assert (mosaic_cell_classes(data.mask, 4) != data.y[:, None, None]).float().mean() == 0.5
    positions = torch.stack([(tiles == data.y[:, None])[:, i] for i in range(4)], 1).float().mean(0)
    assert (positions > 0.35).all() and (positions < 0.65).all(), f"the class tiles sit anywhere: {positions}"


def test_mosaic_tiles_are_scenes_of_half_the_size_with_the_mosaic_object_size():
    data = make_shapes(6, layout="mosaic", seed=2)
    assert torch.equal(data.x, make_shapes(6, layout="mosaic", seed=2).x), "deterministic from the seed"
    assert not torch.equal(data.x, make_shapes(6, layout="mosaic", seed=3).x)
    covered = (data.mask > 0).float().mean()
    bigger = (make_shapes(6, layout="mosaic", seed=2, size=(0.2, 0.3)).mask > 0).float().mean()
    assert covered > 2 * bigger, "the default tile objects are larger than a small explicit size"
    assert MOSAIC_SIZE == (0.6, 0.9)
    single = make_shapes(6, seed=2)
    assert torch.equal(single.x, make_shapes(6, seed=2, layout="single").x), "the default layout is unchanged"


def test_mosaic_splits_through_load_splits_keep_the_layout():
    from kdlab.data import load_splits
    splits = load_splits("shapes", n_train=20, n_test=10, n_val=10, layout="mosaic", seed=0)
    assert [part.name for part in splits] == ["mosaics-train", "mosaics-val", "mosaics-test"]
    for part in splits:
        tiles = mosaic_cell_classes(part.mask, 2).reshape(len(part), 4)
        assert ((tiles == part.y[:, None]).sum(1) == 2).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"layout": "grid"}, "layout must be one of"),
    ({"layout": "mosaic", "img_size": 30}, "even img_size >= 32"),
    ({"layout": "mosaic", "img_size": 16}, "even img_size >= 32"),
])
def test_mosaic_bad_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_shapes(4, **kwargs)


def test_mosaic_cell_classes_rejects_bad_input():
    mask = make_shapes(2, layout="mosaic").mask
    with pytest.raises(ValueError, match="grid must be even and divide"):
        mosaic_cell_classes(mask, 3)
    with pytest.raises(ValueError, match="integer mosaic masks"):
        mosaic_cell_classes(mask.float(), 4)
    with pytest.raises(ValueError, match="integer mosaic masks"):
        mosaic_cell_classes(mask[0], 4)
