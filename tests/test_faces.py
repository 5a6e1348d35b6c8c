"""Procedural faces (kdlab.data.faces): shapes, determinism, identities, landmarks, pairs, FaceSet, folder loader."""
import math

import numpy as np
import pytest
import torch

from kdlab.data.faces import (DEFAULT_STYLE, FACE_CENTRE, LANDMARKS, TEMPLATE, TRAITS, FaceSet, FaceStyle,
                              Variation, canonical_landmarks, faces_splits, identity_traits, load_face_folder,
                              make_faces, make_pairs, render_faces, sample_variation)
from kdlab.data.tensors import ImageSet

STILL = dict(rotation=0, scale=0, shift=0, expression=0, brightness=0, gradient=0, noise=0)
"""Style overrides that switch every per-image variation off (only the background colour still varies)."""


def luminance(x):
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


@pytest.fixture(scope="module")
def splits():
    return faces_splits(n_train_ids=6, n_test_ids=5, per_id=4, n_pairs=20, seed=0)


# template, traits -----------------------------------------------------------------------------------

def test_template_is_the_arcface_template_scaled():
    assert TEMPLATE.shape == (5, 2) and TEMPLATE.dtype == torch.float32 and len(LANDMARKS) == 5
    # CAFD spec section 7.11: at 64 px the nose sits at (32.01, 40.99) px and the inter-ocular distance is 20.14 px
    nose = TEMPLATE[2] * 64
    assert nose.tolist() == pytest.approx([32.01, 40.99], abs=0.01)
    assert (TEMPLATE[1] - TEMPLATE[0]).norm().item() * 64 == pytest.approx(20.14, abs=0.01)
    assert TEMPLATE[0, 0] < TEMPLATE[1, 0] and TEMPLATE[3, 0] < TEMPLATE[4, 0], "left before right (x right)"
    assert TEMPLATE[0, 1] < TEMPLATE[2, 1] < TEMPLATE[3, 1], "eyes above nose above mouth (y down)"


def test_identity_traits_depend_only_on_seed_and_id():
    t = identity_traits(torch.tensor([3, 0, 3, 7]), identity_seed=5)
    assert t.shape == (4, len(TRAITS)) and t.dtype == torch.float32
    assert 0 <= t.min() and t.max() < 1
    assert torch.equal(t[0], t[2]), "the same id gives the same vector"
    assert torch.equal(identity_traits([7], identity_seed=5)[0], t[3]), "independent of the other ids"
    assert not torch.equal(identity_traits([7], identity_seed=6)[0], t[3]), "another world, another face"
    assert (t[0] - t[1]).abs().max() > 0.05
    # spread: 200 identities cover each trait's range
    many = identity_traits(torch.arange(200))
    assert (many.min(0).values < 0.05).all() and (many.max(0).values > 0.95).all()


def test_canonical_landmarks_stay_near_the_template():
    lm = canonical_landmarks(identity_traits(torch.arange(100)))
    assert lm.shape == (100, 5, 2)
    offset = (lm - TEMPLATE).abs()
    assert offset.max() <= 0.031 and offset.max() > 0.01, "identity geometry moves landmarks by a few percent"
    # geometry is symmetric about the face's midline: both eyes at one height, corners offset alike
    assert torch.allclose(lm[:, 0, 1] - TEMPLATE[0, 1], lm[:, 1, 1] - TEMPLATE[1, 1], atol=1e-6)
    assert torch.allclose(TEMPLATE[0, 0] - lm[:, 0, 0], lm[:, 1, 0] - TEMPLATE[1, 0], atol=1e-6)


# images ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [56, 64, 112])
def test_shapes_dtypes_ranges(size):
    faces = make_faces(torch.tensor([4, 2, 4, 9, 2]), img_size=size, seed=1, occlusion=0.5)
    assert isinstance(faces, FaceSet) and isinstance(faces, ImageSet)
    assert faces.x.shape == (5, 3, size, size) and faces.x.dtype == torch.float32
    assert 0.0 <= faces.x.min() and faces.x.max() <= 1.0 and torch.isfinite(faces.x).all()
    assert faces.y.dtype == torch.int64 and faces.y.tolist() == [1, 0, 1, 2, 0]
    assert faces.classes == ("id0002", "id0004", "id0009")
    assert faces.landmarks.shape == (5, 5, 2) and faces.landmarks.dtype == torch.float32
    assert 0.0 < faces.landmarks.min() and faces.landmarks.max() < 1.0
    assert faces.pairs is None and faces.same is None
    assert faces.x.std() > 0.1, "not a blank image"


def test_determinism_and_seeds():
    ids = torch.arange(6).repeat(2)
    a, b = make_faces(ids, seed=3), make_faces(ids, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.landmarks, b.landmarks) and torch.equal(a.y, b.y)
    c = make_faces(ids, seed=4)
    assert not torch.equal(a.x, c.x) and not torch.equal(a.landmarks, c.landmarks)
    # identity_seed picks the identities, seed the per-image variation
    s1, s2 = make_faces(ids, seed=3, **STILL), make_faces(ids, seed=9, identity_seed=3, **STILL)
    assert torch.equal(s1.landmarks, s2.landmarks)
    assert torch.equal(s1.x[:, :, 18:50, 20:44], s2.x[:, :, 18:50, 20:44]), "same faces, other backgrounds"
    assert not torch.equal(s1.x, s2.x)
    s3 = make_faces(ids, seed=3, identity_seed=4, **STILL)
    assert not torch.equal(s3.landmarks, s1.landmarks)


def test_same_identity_same_face_when_nothing_varies():
    faces = make_faces(torch.tensor([3, 3, 8, 3]), seed=0, **STILL)
    centre = faces.x[:, :, 18:50, 20:44]  # inside the face oval: no background
    assert torch.equal(centre[0], centre[1]) and torch.equal(centre[0], centre[3])
    assert (centre[0] - centre[2]).abs().max() > 0.1
    assert torch.equal(faces.landmarks[0], faces.landmarks[1])
    # the same identity id looks the same in another batch too
    other = make_faces(torch.tensor([0, 1, 3]), seed=5, identity_seed=0, **STILL)
    assert torch.allclose(other.x[2, :, 18:50, 20:44], centre[0], atol=1e-6)


def test_images_of_one_identity_vary_but_stay_recognisable():
    faces = make_faces(torch.arange(20).repeat(6), seed=1)
    assert faces.x.flatten(1).std(0).mean() > 0.05
    crop = torch.nn.functional.avg_pool2d(faces.x[:, :, 16:56, 12:52], 4).flatten(1)
    dist = torch.cdist(crop, crop).fill_diagonal_(float("inf"))
    nn_acc = (faces.y[dist.argmin(1)] == faces.y).float().mean().item()
    assert nn_acc > 0.15, f"1-NN on raw face pixels {nn_acc:.2f}, chance 0.05"
    same_a = make_faces(torch.tensor([1, 1]), seed=2)
    assert (same_a.x[0] - same_a.x[1]).abs().mean() > 0.01, "two images of one identity differ"


def test_style_levers_and_occlusion():
    ids = torch.arange(8)
    plain = make_faces(ids, seed=2)
    assert torch.equal(plain.x, make_faces(ids, seed=2, occlusion=0.0).x), "occlusion=0 is the default"
    occluded = make_faces(ids, seed=2, occlusion=1.0)
    assert torch.equal(occluded.landmarks, plain.landmarks), "occluders do not move the face"
    changed = ((occluded.x - plain.x).abs().amax(1) > 1e-6).float().mean(dim=(1, 2))
    assert (changed > 0.01).all() and (changed < 0.5).all(), changed
    still = make_faces(ids, seed=2, **STILL)
    assert torch.allclose(still.landmarks, canonical_landmarks(identity_traits(ids, identity_seed=2)), atol=1e-6)
    assert (plain.landmarks - still.landmarks).abs().max() > 0.005
    assert DEFAULT_STYLE == FaceStyle() and DEFAULT_STYLE.occlusion == 0.0
    assert FaceStyle().replace(noise=0.1).noise == 0.1


# landmarks ------------------------------------------------------------------------------------------

def _dark_centroid(lum, x, y, half, level=None):
    """Darkness-weighted centroid (pixel coordinates) of a (2 half + 1)^2 window around pixel (x, y), weighting
    each pixel by how far it lies below ``level`` (default: the window's minimum + 0.15)."""
    r, c = int(round(y)), int(round(x))
    win = lum[r - half:r + half + 1, c - half:c + half + 1]
    w = ((win.min() + 0.15 if level is None else level) - win).clamp(min=0)
    rows = torch.arange(r - half, r + half + 1, dtype=torch.float32)[:, None]
    cols = torch.arange(c - half, c + half + 1, dtype=torch.float32)[None, :]
    return (w * cols).sum() / w.sum(), (w * rows).sum() / w.sum()


@pytest.mark.parametrize("size, tol", [(64, 0.75), (112, 0.5)])
def test_eye_landmarks_sit_on_the_pupils(size, tol):
    faces = make_faces(torch.arange(30).repeat(2), img_size=size, seed=0, noise=0.0, rotation=15)
    lum = luminance(faces.x)
    for i in range(len(faces)):
        for k in (0, 1):
            x, y = (faces.landmarks[i, k] * size - 0.5).tolist()  # pixel-centre coordinates
            r, c = int(round(y)), int(round(x))
            if size >= 112:  # the pupil is about one pixel wide at 64 px, so only the centroid is checked there
                assert lum[i, r - 1:r + 2, c - 1:c + 2].min() < 0.15, "the pupil is dark"
            cx, cy = _dark_centroid(lum[i], x, y, 2)
            assert math.hypot(cx - x, cy - y) < tol, (i, k, cx, cy, x, y)


def test_nose_and_mouth_landmarks_match_the_drawing():
    size = 112
    faces = make_faces(torch.arange(30), img_size=size, seed=0, **STILL)
    lum = luminance(faces.x)
    for i in range(len(faces)):
        nx, ny = (faces.landmarks[i, 2] * size - 0.5).tolist()
        skin = lum[i, int(ny) - 12, int(nx) + 8]  # cheek, between eye and nose
        cx, cy = _dark_centroid(lum[i], nx, ny, 6, 0.6 * skin)  # only the nostrils are that dark
        assert abs(cx - nx) < 0.75 and -0.5 < cy - ny < 1.5, "nostrils flank the nose tip, just below it"
        (lx, ly), (rx, ry) = (faces.landmarks[i, 3:] * size).tolist()
        rows = slice(int(min(ly, ry)) - 3, int(max(ly, ry)) + 5)  # the lip line sags at most 2.3 px + 1.7 px lip
        c0 = int(lx) - 3
        cheek = faces.x[i, :, int(ly), int(lx) - 6]  # skin beside the left mouth corner
        lip = (faces.x[i, :, rows, c0:int(rx) + 4] - cheek[:, None, None]).abs().sum(0) > 0.1
        cols = c0 + lip.any(0).nonzero().flatten()
        # the lips taper to nothing at the corners, so their visible ends may stop a little short of them
        assert -1.0 <= cols.min().item() - lx <= 2.5, "the lips start at the left corner"
        assert -2.5 <= cols.max().item() + 1 - rx <= 1.0, "and end at the right corner"


def test_landmarks_move_with_the_pose():
    size = 64
    traits = identity_traits(torch.tensor([1, 2, 3]))
    base = sample_variation(3, FaceStyle(**STILL), torch.Generator().manual_seed(0))
    x0, lm0 = render_faces(traits, base, size)
    # a whole-pixel shift moves the image content and the landmarks by exactly that much
    shift = torch.tensor([[3.0, 2.0]]).expand(3, 2) / size
    x1, lm1 = render_faces(traits, base._replace(shift=shift), size)
    assert torch.allclose(lm1 - lm0, shift.unsqueeze(1).expand(3, 5, 2), atol=1e-6)
    assert (x1[:, :, 22:50, 23:47] - x0[:, :, 20:48, 20:44]).abs().max() < 1e-4
    assert (x1 - x0).abs().max() > 0.1
    # rotation and scale act about the face centre: distances scale, angles turn
    angle, scale = torch.full((3,), 0.3), torch.full((3,), 1.2)
    x2, lm2 = render_faces(traits, base._replace(angle=angle, scale=scale), size)
    iod0, iod2 = (lm0[:, 1] - lm0[:, 0]).norm(dim=1), (lm2[:, 1] - lm2[:, 0]).norm(dim=1)
    assert torch.allclose(iod2, 1.2 * iod0, atol=1e-6)
    before, after = lm0[:, 1] - lm0[:, 0], lm2[:, 1] - lm2[:, 0]
    turned = torch.atan2(after[:, 1], after[:, 0]) - torch.atan2(before[:, 1], before[:, 0])
    assert torch.allclose(turned, angle, atol=1e-5)
    centre = torch.tensor(FACE_CENTRE)
    expected = centre + 1.2 * (lm0 - centre) @ torch.tensor([[math.cos(0.3), math.sin(0.3)],
                                                              [-math.sin(0.3), math.cos(0.3)]])
    assert torch.allclose(lm2, expected, atol=1e-5)
    assert not torch.allclose(x2, x0)


def test_render_faces_rejects_bad_input():
    traits = identity_traits([0, 1])
    var = sample_variation(2)
    with pytest.raises(ValueError, match="traits"):
        render_faces(traits[:, :5], var)
    with pytest.raises(ValueError, match="variation"):
        render_faces(traits, sample_variation(3))
    with pytest.raises(ValueError, match="img_size"):
        render_faces(traits, var, 16)
    assert isinstance(var, Variation) and var.shift.shape == (2, 2)


# splits and pairs -----------------------------------------------------------------------------------

def test_splits_have_disjoint_identities_and_balanced_pairs(splits):
    train, test = splits
    assert len(train) == 24 and len(test) == 20 and train.name == "faces-train" and test.name == "faces-test"
    assert set(train.classes).isdisjoint(test.classes)
    assert train.classes == tuple(f"id{k:04d}" for k in range(6))
    assert test.classes == tuple(f"id{k:04d}" for k in range(6, 11))
    assert torch.bincount(train.y).tolist() == [4] * 6 and torch.bincount(test.y).tolist() == [4] * 5
    assert train.y.tolist() != sorted(train.y.tolist()), "shuffled"
    # no test image is a copy of a training image
    assert torch.cdist(test.x.flatten(1), train.x.flatten(1)).min() > 1.0
    assert train.pairs is None
    pairs, same = test.pairs, test.same
    assert pairs.shape == (20, 2) and pairs.dtype == torch.int64 and same.dtype == torch.bool
    assert same.sum() == 10 and same[0::2].all() and not same[1::2].any(), "interleaved same / different"
    assert torch.equal(test.y[pairs[:, 0]] == test.y[pairs[:, 1]], same)
    assert (pairs[:, 0] != pairs[:, 1]).all()


def test_splits_are_deterministic(splits):
    train, test = splits
    train2, test2 = faces_splits(n_train_ids=6, n_test_ids=5, per_id=4, n_pairs=20, seed=0)
    for a, b in ((train, train2), (test, test2)):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.landmarks, b.landmarks)
    assert torch.equal(test.pairs, test2.pairs) and torch.equal(test.same, test2.same)
    other, _ = faces_splits(n_train_ids=6, n_test_ids=5, per_id=4, n_pairs=20, seed=1)
    assert not torch.equal(other.x, train.x)
    _, occluded = faces_splits(n_train_ids=6, n_test_ids=5, per_id=4, n_pairs=20, seed=0, occlusion=1.0)
    assert torch.equal(occluded.landmarks, test.landmarks) and not torch.equal(occluded.x, test.x)
    _, bigger = faces_splits(n_train_ids=6, n_test_ids=5, per_id=4, n_pairs=0, test_per_id=6, img_size=56)
    assert len(bigger) == 30 and bigger.pairs is None and bigger.x.shape[-1] == 56


@pytest.mark.parametrize("labels, n_pairs", [
    (torch.arange(6).repeat_interleave(5), 31),        # small: enumerated
    (torch.arange(3).repeat_interleave(700), 400),     # large: rejection sampling for both kinds
    (torch.tensor([0, 0, 0, 1, 2, 2, 3]), 8),          # uneven classes, one singleton
])
def test_make_pairs(labels, n_pairs):
    pairs, same = make_pairs(labels, n_pairs, seed=0)
    assert pairs.shape == (n_pairs, 2) and same.shape == (n_pairs,)
    assert int(same.sum()) == n_pairs // 2
    assert torch.equal(labels[pairs[:, 0]] == labels[pairs[:, 1]], same)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    unordered = torch.sort(pairs, dim=1).values
    assert len(torch.unique(unordered, dim=0)) == n_pairs, "no pair twice"
    again, _ = make_pairs(labels, n_pairs, seed=0)
    assert torch.equal(pairs, again)
    assert not torch.equal(pairs, make_pairs(labels, n_pairs, seed=1)[0])


def test_make_pairs_uses_every_same_pair_when_asked():
    labels = torch.tensor([0, 0, 0, 1, 1])  # same pairs possible: 3 + 1 = 4; different: 6
    pairs, same = make_pairs(labels, 8)
    got = {tuple(sorted(p)) for p in pairs[same].tolist()}
    assert got == {(0, 1), (0, 2), (1, 2), (3, 4)}
    with pytest.raises(ValueError, match="allow only 4"):
        make_pairs(labels, 10)
    with pytest.raises(ValueError, match="different-identity"):
        make_pairs(torch.tensor([0, 0, 0, 0, 1]), 10)
    with pytest.raises(ValueError, match="labels"):
        make_pairs(torch.rand(5), 4)
    with pytest.raises(ValueError, match="n_pairs"):
        make_pairs(labels, 1)


# FaceSet --------------------------------------------------------------------------------------------

def test_faceset_subset_split_to_and_pairs(splits):
    _, test = splits
    assert repr(test) == ("FaceSet('faces-test', n=20, image=3x64x64, task=classification, identities=5, landmarks=yes, "
                          "pairs=20 (10 same), device=cpu)")
    sub = test.subset(torch.tensor([3, 1, 3]))
    assert isinstance(sub, FaceSet) and torch.equal(sub.landmarks, test.landmarks[[3, 1, 3]])
    assert torch.equal(sub.x, test.x[[3, 1, 3]]) and sub.pairs is None, "indices would be stale: pairs dropped"
    first, rest = test.split(0.25, seed=1)
    assert isinstance(first, FaceSet) and len(first) == 5 and first.landmarks.shape == (5, 5, 2)
    moved = test.to("cpu")
    assert torch.equal(moved.pairs, test.pairs) and torch.equal(moved.landmarks, test.landmarks)
    bare = test.with_pairs(None, None)
    assert bare.pairs is None and torch.equal(bare.x, test.x)
    with pytest.raises(AttributeError):
        test.pairs = None


def test_faceset_validation(splits):
    _, test = splits
    pairs, same = test.pairs, test.same
    with pytest.raises(ValueError, match="same disagrees"):
        test.with_pairs(pairs, ~same)
    with pytest.raises(ValueError, match="pair indices"):
        test.with_pairs(pairs + 100, same)
    with pytest.raises(ValueError, match="give both or neither"):
        test.with_pairs(pairs, None)
    with pytest.raises(ValueError, match="int64"):
        test.with_pairs(pairs.int(), same)
    with pytest.raises(ValueError, match="bool"):
        test.with_pairs(pairs, same.long())
    with pytest.raises(ValueError, match="landmarks"):
        FaceSet(x=test.x, y=test.y, classes=test.classes, landmarks=test.landmarks[:, :4])
    with pytest.raises(ValueError, match="x must"):
        FaceSet(x=test.x * 2, y=test.y, classes=test.classes)


@pytest.mark.parametrize("kwargs, match", [
    (dict(identities=[]), "identities"),
    (dict(identities=[1, -2]), "non-negative"),
    (dict(identities=torch.tensor([0.5, 1.0])), "identities"),
    (dict(identities=torch.zeros(2, 2, dtype=torch.long)), "identities"),
    (dict(identities=[0], img_size=16), "img_size"),
    (dict(identities=[0], img_size=64.0), "img_size"),
    (dict(identities=[0], seed=-1), "seed"),
    (dict(identities=[0], identity_seed=-1), "identity_seed"),
    (dict(identities=[0], rotation=90), "rotation"),
    (dict(identities=[0], occlusion=1.5), "occlusion"),
    (dict(identities=[0], noise=True), "noise"),
    (dict(identities=[0], colour="red"), "FaceStyle has the fields .*unknown field"),
    (dict(identities=[0], style="hard"), "style"),
])
def test_make_faces_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_faces(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_train_ids=0), "n_train_ids"),
    (dict(n_test_ids=1), "n_test_ids"),
    (dict(per_id=0), "per_id"),
    (dict(per_id=1, n_pairs=4), "test_per_id"),
    (dict(n_pairs=-1), "n_pairs"),
    (dict(n_train_ids=2, n_test_ids=2, per_id=2, n_pairs=10), "allow only 2"),
    (dict(seed=1.5), "seed"),
])
def test_faces_splits_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        faces_splits(**kwargs)


# real folders ---------------------------------------------------------------------------------------

def _write_lfw(root, size=16):
    """Three people as in LFW: Alice (3 png), Bob (2 png), Carol (1 jpg); plus noise the loader must ignore."""
    from PIL import Image
    rng = np.random.default_rng(0)
    arrays = {}
    for person, count, ext in (("Alice", 3, "png"), ("Bob", 2, "png"), ("Carol", 1, "jpg")):
        (root / person).mkdir(parents=True)
        for k in range(1, count + 1):
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / person / f"{person}_{k:04d}.{ext}")
            arrays[(person, k)] = arr
    (root / "Alice" / "notes.txt").write_text("not an image")
    (root / ".ipynb_checkpoints").mkdir()
    (root / "Empty").mkdir()
    return arrays


PAIRS = "1\t2\nAlice\t1\t3\nBob\t1\t2\nAlice\t2\tCarol\t1\nBob\t2\tAlice\t3\n"
"""LFW format: header 'folds n' = 1 fold of 2 same + 2 different pairs."""


def test_load_face_folder(tmp_path):
    arrays = _write_lfw(tmp_path / "lfw")
    (tmp_path / "lfw" / "pairs.txt").write_text(PAIRS)
    faces = load_face_folder(tmp_path / "lfw", "pairs.txt")
    assert isinstance(faces, FaceSet) and faces.name == "lfw" and faces.landmarks is None
    assert faces.classes == ("Alice", "Bob", "Carol") and faces.y.tolist() == [0, 0, 0, 1, 1, 2]
    assert faces.x.shape == (6, 3, 16, 16) and faces.x.dtype == torch.float32
    expected = torch.from_numpy(arrays[("Bob", 2)]).permute(2, 0, 1).float() / 255
    assert torch.equal(faces.x[4], expected), "png pixels are read exactly, in file-name order"
    assert faces.pairs.tolist() == [[0, 2], [3, 4], [1, 5], [4, 2]]
    assert faces.same.tolist() == [True, True, False, False]
    plain = load_face_folder(tmp_path / "lfw", img_size=32, name="mine")
    assert plain.x.shape == (6, 3, 32, 32) and plain.pairs is None and plain.name == "mine"
    assert 0 <= plain.x.min() and plain.x.max() <= 1
    # pairs file by absolute path, header with one number (pairsDevTrain.txt style), no header
    (tmp_path / "dev.txt").write_text("2\nAlice 1 2\nBob 1 2\nAlice 1 Bob 1\nCarol 1 Bob 2\n")
    assert load_face_folder(tmp_path / "lfw", tmp_path / "dev.txt").same.tolist() == [True, True, False, False]
    (tmp_path / "bare.txt").write_text("\nAlice 3 Bob 1\n\n")
    assert load_face_folder(tmp_path / "lfw", tmp_path / "bare.txt").pairs.tolist() == [[2, 3]]


@pytest.mark.parametrize("text, match", [
    ("Alice 1\n", "expected 'name idx1 idx2'"),
    ("Alice 1 2 3 4 5\n", "6 field"),
    ("Alice 1 x\n", "not a positive integer"),
    ("Dave 1 2\n", "no identity folder 'Dave'"),
    ("Alice 1 7\n", "Alice_0007"),
    ("1 3\nAlice 1 2\n", "header promises 6 pairs"),
    ("\n\n", "no pairs"),
])
def test_load_face_folder_bad_pairs(tmp_path, text, match):
    _write_lfw(tmp_path / "lfw")
    (tmp_path / "p.txt").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_face_folder(tmp_path / "lfw", tmp_path / "p.txt")


def test_load_face_folder_errors(tmp_path):
    from PIL import Image
    with pytest.raises(FileNotFoundError, match="not found"):
        load_face_folder(tmp_path / "missing")
    (tmp_path / "empty" / "Nobody").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no .png"):
        load_face_folder(tmp_path / "empty")
    _write_lfw(tmp_path / "lfw")
    with pytest.raises(FileNotFoundError, match="pairs file"):
        load_face_folder(tmp_path / "lfw", "nope.txt")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "lfw" / "Bob" / "Bob_0003.png")
    with pytest.raises(ValueError, match="different sizes"):
        load_face_folder(tmp_path / "lfw")
    assert load_face_folder(tmp_path / "lfw", img_size=16).x.shape == (7, 3, 16, 16)
    (tmp_path / "lfw" / "Bob" / "Bob_0004.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        load_face_folder(tmp_path / "lfw", img_size=16)
    with pytest.raises(ValueError, match="img_size"):
        load_face_folder(tmp_path / "lfw", img_size=0)


def test_load_dataset_knows_the_faces():
    from kdlab.data import DATASETS, FACE_DATASETS, load_dataset

    assert "faces" in DATASETS and FACE_DATASETS == ("faces",)
    train, test = load_dataset("faces", n_train_ids=3, n_test_ids=3, per_id=2, n_pairs=6, img_size=32, seed=4)
    direct = faces_splits(3, 3, per_id=2, n_pairs=6, img_size=32, seed=4)
    assert isinstance(train, FaceSet) and torch.equal(train.x, direct[0].x) and torch.equal(test.pairs, direct[1].pairs)
    assert train.task == "classification" and test.same.sum() == 3
    with pytest.raises(ValueError, match="mask"):
        load_dataset("faces", n_train_ids=2, n_test_ids=2, per_id=2, n_pairs=2, target="mask")


def test_geometry_only_identities_differ_in_their_landmarks_alone():
    from kdlab.data.faces import LANDMARK_TRAITS
    ids = torch.arange(6)
    plain = make_faces(ids, seed=3, rotation=0, scale=0, shift=0, expression=0, brightness=0, gradient=0, noise=0)
    geo = make_faces(ids, seed=3, geometry_only=True, rotation=0, scale=0, shift=0, expression=0, brightness=0,
                     gradient=0, noise=0)
    assert torch.allclose(geo.landmarks, plain.landmarks), "the landmark traits are kept"
    traits = identity_traits(ids, 3)
    fixed = [j for j, t in enumerate(TRAITS) if t not in LANDMARK_TRAITS]
    traits[:, fixed] = 0.5
    assert torch.allclose(geo.landmarks, canonical_landmarks(traits))
    # one skin and hair for all: the far corner (hair / background) and the cheek look alike across identities
    cheek = geo.x[:, :, 40, 20]
    assert (cheek - cheek[0]).abs().max() < 0.05 < (plain.x[:, :, 40, 20] - plain.x[0, :, 40, 20]).abs().max()
    train, test = faces_splits(4, 3, per_id=2, n_pairs=4, geometry_only=True)
    assert train.x.shape == (8, 3, 64, 64) and test.pairs.shape == (4, 2)


def test_geometry_gain_scales_the_landmark_moves_and_nothing_else():
    from kdlab.data.faces import TEMPLATE
    traits = identity_traits(torch.arange(5), 2)
    moves = canonical_landmarks(traits) - TEMPLATE
    assert torch.allclose(canonical_landmarks(traits, 3.0) - TEMPLATE, 3.0 * moves, atol=1e-6)
    assert torch.allclose(canonical_landmarks(traits, 0.0), TEMPLATE.expand(5, 5, 2))
    still = dict(rotation=0, scale=0, shift=0, expression=0, brightness=0, gradient=0, noise=0)
    big = make_faces(torch.arange(5), seed=1, geometry_only=True, geometry_gain=3.0, **still)
    small = make_faces(torch.arange(5), seed=1, geometry_only=True, **still)
    assert torch.allclose(big.landmarks - TEMPLATE, 3.0 * (small.landmarks - TEMPLATE), atol=1e-5)
    assert not torch.equal(big.x, small.x), "the painted eyes, nose and mouth follow the landmarks"
    same_look = make_faces(torch.arange(5), seed=1, geometry_gain=1.0)
    assert torch.equal(same_look.x, make_faces(torch.arange(5), seed=1).x), "gain 1 is the generator as it was"
    with pytest.raises(ValueError, match="geometry_gain"):
        canonical_landmarks(traits, 4.0)
    with pytest.raises(ValueError, match="geometry_gain"):
        make_faces(torch.arange(2), geometry_gain=-1.0)
