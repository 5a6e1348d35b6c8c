"""kdlab.data.tensors (ImageSet), kdlab.data.digits and kdlab.data.cifar (local folders, safe unpickling)."""
import os
import pickle
from collections import Counter

import numpy as np
import pytest
import torch

from kdlab.data import load_dataset, load_splits
from kdlab.data.cifar import CIFAR10_CLASSES, RestrictedUnpickler, load_cifar, load_pickle, write_cifar_fixture
from kdlab.data.digits import load_digits
from kdlab.data.tensors import ImageSet


def image_set(n=10, k=3, mask=False, name="toy"):
    g = torch.Generator().manual_seed(0)
    return ImageSet(x=torch.rand(n, 3, 4, 5, generator=g), y=torch.arange(n) % k,
                    classes=[f"c{i}" for i in range(k)], name=name,
                    mask=torch.randint(0, k + 1, (n, 4, 5), generator=g) if mask else None)


# ImageSet -----------------------------------------------------------------------------------------

def test_image_set_basics():
    s = image_set(mask=True)
    assert len(s) == 10 and s.num_classes == 3 and s.classes == ("c0", "c1", "c2")
    assert repr(s) == "ImageSet('toy', n=10, image=3x4x5, task=classification, classes=3, mask=yes, device=cpu)"
    with pytest.raises(AttributeError):
        s.name = "other"


@pytest.mark.parametrize("index", [slice(2, 7), torch.tensor([4, 0, 4]), [1, 2], torch.arange(10) % 3 == 0])
def test_subset_picks_the_same_rows_everywhere(index):
    s = image_set(mask=True)
    sub = s.subset(index)
    expected = torch.arange(10)[index if not isinstance(index, list) else torch.tensor(index)]
    assert torch.equal(sub.x, s.x[expected]) and torch.equal(sub.y, s.y[expected])
    assert torch.equal(sub.mask, s.mask[expected]) and sub.classes == s.classes and sub.name == "toy"


def test_split_is_a_deterministic_partition():
    s = image_set(n=20)
    a, b = s.split(0.25, seed=3)
    assert (len(a), len(b)) == (5, 15)
    rows = sorted(map(tuple, torch.cat([a.x, b.x]).flatten(1).tolist()))
    assert rows == sorted(map(tuple, s.x.flatten(1).tolist()))
    again, _ = s.split(5, seed=3)
    other, _ = s.split(5, seed=4)
    assert torch.equal(again.x, a.x) and not torch.equal(other.x, a.x)
    assert len(s.split(0, seed=0)[0]) == 0 and len(s.split(20, seed=0)[1]) == 0


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_to_moves_every_tensor(device):
    s = image_set(mask=True)
    moved = s.to(device)
    assert moved.x.device.type == moved.y.device.type == moved.mask.device.type == device
    assert torch.equal(moved.x.cpu(), s.x) and torch.equal(moved.mask.cpu(), s.mask) and moved.name == s.name
    assert torch.equal(moved.subset(torch.tensor([1, 3])).y.cpu(), s.y[[1, 3]])


@pytest.mark.parametrize("kwargs, match", [
    ({"x": torch.rand(10, 4, 5)}, r"x must have 4 dimensions, got shape \(10, 4, 5\)"),
    ({"x": torch.randint(0, 2, (10, 3, 4, 5))}, "x must be a floating-point tensor, got dtype torch.int64"),
    ({"x": torch.rand(10, 3, 4, 5) * 255}, r"\[0, 1\]"),
    ({"y": torch.arange(9) % 3}, r"y must be a tensor of dtype int64 and shape \(10,\) or \(10, 4, 5\)"),
    ({"y": (torch.arange(10) % 3).int()}, "int64"),
    ({"y": torch.arange(10)}, r"labels must be in \[0, 3\)"),
    ({"y": torch.arange(10) % 3 - 2}, r"labels must be in \[0, 3\)"),  # -1 is UNLABELLED, -2 is wrong
    ({"classes": ()}, "classes"),
    ({"classes": "abc"}, "classes"),
    ({"mask": torch.zeros(10, 5, 4, dtype=torch.long)}, r"mask must be a tensor of dtype int64 and shape \(10, 4, 5\)"),
    ({"mask": torch.zeros(10, 4, 5)}, "mask"),
])
def test_image_set_rejects_bad_fields(kwargs, match):
    fields = {"x": torch.rand(10, 3, 4, 5), "y": torch.arange(10) % 3, "classes": ("a", "b", "c"), **kwargs}
    with pytest.raises(ValueError, match=match):
        ImageSet(**fields)


@pytest.mark.parametrize("call, match", [
    (lambda s: s.subset(torch.tensor([0, 10])), "indices"),
    (lambda s: s.subset(torch.ones(9, dtype=torch.bool)), "length 10"),
    (lambda s: s.subset(torch.tensor([0.5])), "int/bool"),
    (lambda s: s.split(1.5), r"\(0, 1\)"),
    (lambda s: s.split(11), r"\[0, 10\]"),
])
def test_image_set_rejects_bad_indices(call, match):
    with pytest.raises(ValueError, match=match):
        call(image_set())


def test_segmentation_view_uses_the_masks_as_targets():
    s = image_set(mask=True)  # masks in [0, 3]: 0 background, 1 + k for class k
    seg = s.segmentation()
    assert seg.task == "segmentation" and s.task == "classification"
    assert seg.y is s.mask and seg.mask is s.mask and seg.x is s.x, "a view: storage is shared"
    assert seg.classes == ("background", "c0", "c1", "c2") and seg.num_classes == 4 and seg.name == "toy"
    assert seg.segmentation() is seg
    assert s.segmentation(background="bg").classes[0] == "bg"
    assert repr(seg) == "ImageSet('toy', n=10, image=3x4x5, task=segmentation, classes=4 per pixel, mask=yes, device=cpu)"
    sub = seg.subset(torch.tensor([3, 1]))
    assert sub.task == "segmentation" and torch.equal(sub.y, s.mask[[3, 1]])
    a, b = seg.split(0.5, seed=0)
    assert a.y.shape == (5, 4, 5) and b.task == "segmentation"


def test_segmentation_view_needs_masks_in_range():
    with pytest.raises(ValueError, match="no per-pixel masks"):
        image_set().segmentation()
    s = image_set(k=3)
    bad = ImageSet(x=s.x, y=s.y, classes=s.classes, mask=torch.full((10, 4, 5), 4))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        bad.segmentation()
    with pytest.raises(ValueError, match="background"):
        image_set(mask=True).segmentation(background=0)


def test_image_set_accepts_per_pixel_targets_of_the_image_size_only():
    x = torch.rand(2, 3, 4, 5)
    assert ImageSet(x=x, y=torch.zeros(2, 4, 5, dtype=torch.long), classes=("a",)).task == "segmentation"
    with pytest.raises(ValueError, match=r"shape \(2,\) or \(2, 4, 5\) to match x, got \(2, 5, 4\)"):
        ImageSet(x=x, y=torch.zeros(2, 5, 4, dtype=torch.long), classes=("a",))


def test_every_data_set_shares_the_tensor_set_surface():
    from kdlab.data import TASKS, DepthSet, FaceSet, TensorSet
    from kdlab.data.tensors import split_indices

    x = torch.rand(6, 3, 4, 4)
    sets = [ImageSet(x=x, y=torch.arange(6) % 2, classes=("a", "b"), name="s"),
            FaceSet(x=x, y=torch.arange(6) % 3, classes=("p", "q", "r"), name="s"),
            DepthSet(x=x, y=torch.rand(6, 4, 4) + 0.5, name="s")]
    first_rows = split_indices(6, 0.5, seed=4)[0]
    for s in sets:
        assert isinstance(s, TensorSet) and s.task in TASKS and len(s) == 6
        first, rest = s.split(0.5, seed=4)
        assert torch.equal(first.x, x[first_rows]) and torch.equal(first.y, s.y[first_rows]) and len(rest) == 3
        assert type(first) is type(s.subset([0, 2])) is type(s.to("cpu")) is type(s)
        assert repr(s).startswith(f"{type(s).__name__}('s', n=6, image=3x4x4, task={s.task}, ")
        assert repr(s).endswith(", device=cpu)")


# digits -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_digits_shapes_and_values(digits):
    train, test = digits
    assert len(train) + len(test) == 1797 and train.x.shape[1:] == (3, 32, 32) and train.x.dtype == torch.float32
    assert train.classes == tuple("0123456789") and train.name == "digits-train" and test.name == "digits-test"
    assert 0 <= float(train.x.min()) and float(train.x.max()) <= 1 and float(train.x.max()) > 0.9
    assert torch.equal(train.x[:, 0], train.x[:, 2]), "grey replicated to three channels"


def test_digits_split_is_stratified_and_shuffled(digits):
    train, test = digits
    per_class = torch.bincount(torch.cat([train.y, test.y]), minlength=10)
    assert torch.equal(torch.bincount(test.y, minlength=10), torch.round(per_class * 0.25).long())
    assert len(set(test.y[:40].tolist())) >= 8, "the first samples must mix classes (no class-sorted order)"


def test_digits_are_a_partition_of_the_original_images():
    from sklearn.datasets import load_digits as sklearn_digits

    train, test = load_digits(img_size=8, channels=1, test_fraction=0.5, seed=1)
    assert train.x.shape[1:] == (1, 8, 8)
    ours = Counter(map(tuple, (torch.cat([train.x, test.x]) * 16).round().flatten(1).long().tolist()))
    theirs = Counter(map(tuple, sklearn_digits().images.reshape(1797, 64).astype(int).tolist()))
    assert ours == theirs
    labels = Counter(zip(map(tuple, (train.x * 16).round().flatten(1).long().tolist()), train.y.tolist()))
    assert set(labels) <= set(zip(map(tuple, sklearn_digits().images.reshape(1797, 64).astype(int).tolist()),
                                  sklearn_digits().target.tolist()))


def test_digits_upsampling_keeps_the_picture():
    small, _ = load_digits(img_size=8, channels=1, seed=0)
    big, _ = load_digits(img_size=32, channels=1, seed=0)
    assert torch.equal(small.y, big.y)
    pooled = torch.nn.functional.avg_pool2d(big.x, 4)
    assert (pooled - small.x).abs().mean() < 0.1  # bilinear smooths a little ...
    assert (pooled - small.x.roll(1, dims=0)).abs().mean() > 0.2  # ... but the pictures stay in place


def test_digits_seed_determinism(digits):
    again = load_digits()
    other = load_digits(seed=1)
    assert torch.equal(again[0].x, digits[0].x) and torch.equal(again[1].y, digits[1].y)
    assert not torch.equal(other[0].y, digits[0].y)


@pytest.mark.parametrize("kwargs, match", [
    ({"img_size": 7}, "img_size"), ({"img_size": 16.0}, "img_size"), ({"test_fraction": 0.0}, "test_fraction"),
    ({"test_fraction": 1.0}, "test_fraction"), ({"channels": 2}, "channels"), ({"seed": -1}, "seed"),
])
def test_digits_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_digits(**kwargs)


# CIFAR --------------------------------------------------------------------------------------------

def test_cifar10_fixture_round_trip(tmp_path):
    folder = write_cifar_fixture(tmp_path, "cifar10", n_train=23, n_test=7, seed=0)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"])
    train = load_cifar(tmp_path, "cifar10", "train")
    test = load_cifar(folder, "cifar10", split="test")  # root may be the dataset folder itself
    assert train.x.shape == (23, 3, 32, 32) and test.x.shape == (7, 3, 32, 32) and train.x.dtype == torch.float32
    assert train.classes == CIFAR10_CLASSES and train.name == "cifar10-train" and test.name == "cifar10-test"
    assert 0 <= float(train.x.min()) and float(train.x.max()) <= 1

    with open(folder / "data_batch_1", "rb") as f:  # our own fixture, so plain pickle is fine here
        raw = pickle.load(f, encoding="bytes")
    assert isinstance(raw[b"data"], np.ndarray) and raw[b"data"].dtype == np.uint8 and len(raw[b"data"]) == 5
    image = raw[b"data"][0]
    for c, h, w in [(0, 0, 0), (1, 0, 0), (2, 31, 31), (0, 5, 17), (1, 17, 5)]:  # row-major CHW
        assert train.x[0, c, h, w] == torch.tensor(image[c * 1024 + h * 32 + w] / 255.0, dtype=torch.float32)
    assert train.y[:5].tolist() == raw[b"labels"]


@pytest.mark.parametrize("coarse, k", [(False, 100), (True, 20)])
def test_cifar100_fine_and_coarse(tmp_path, coarse, k):
    write_cifar_fixture(tmp_path, "cifar100", n_train=40, n_test=10, seed=1)
    train = load_cifar(tmp_path, "cifar100", "train", coarse=coarse)
    assert train.x.shape == (40, 3, 32, 32) and train.num_classes == k
    assert train.name == ("cifar100-coarse-train" if coarse else "cifar100-train")
    assert train.classes[3] == ("coarse_03" if coarse else "fine_03")
    fine = load_cifar(tmp_path, "cifar100", "train").y
    assert torch.equal(train.y, fine // 5 if coarse else fine)


def test_fixture_is_deterministic(tmp_path):
    a = load_cifar(write_cifar_fixture(tmp_path / "a", n_train=6, n_test=2, seed=3))
    b = load_cifar(write_cifar_fixture(tmp_path / "b", n_train=6, n_test=2, seed=3))
    c = load_cifar(write_cifar_fixture(tmp_path / "c", n_train=6, n_test=2, seed=4))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and not torch.equal(a.x, c.x)


class _Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_malicious_pickle_is_refused(tmp_path):
    folder = write_cifar_fixture(tmp_path, "cifar10", n_train=5, n_test=5)
    marker = tmp_path / "pwned"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": _Exploit(f"touch {marker}"), b"labels": []}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        load_cifar(tmp_path, "cifar10", "test")
    assert not marker.exists()
    with open(folder / "meta2", "wb") as f:
        pickle.dump(eval, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="eval"):
        load_pickle(folder / "meta2")


def test_unpickler_allows_numpy_1_and_2_array_globals(tmp_path):
    path = tmp_path / "array"
    path.write_bytes(pickle.dumps({b"data": np.arange(6, dtype=np.uint8).reshape(2, 3)}, protocol=2))
    assert load_pickle(path)["data"].tolist() == [[0, 1, 2], [3, 4, 5]]
    with open(path, "rb") as f:
        unpickler = RestrictedUnpickler(f)
        assert unpickler.find_class("numpy.core.multiarray", "_reconstruct") is unpickler.find_class(
            "numpy._core.multiarray", "_reconstruct")


def test_missing_folder_explains_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py") as err:
        load_cifar(tmp_path)
    assert "never downloads" in str(err.value) and "data_batch_1" in str(err.value)
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_cifar(tmp_path, "cifar100")
    folder = write_cifar_fixture(tmp_path, n_train=5, n_test=1)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar(tmp_path)


def test_corrupt_batch_is_reported(tmp_path):
    folder = write_cifar_fixture(tmp_path, n_train=5, n_test=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(ValueError, match=r"\(N, 3072\) uint8"):
        load_cifar(tmp_path, split="test")


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "cifar11"}, "name must be one of 'cifar10', 'cifar100', got 'cifar11'"), ({"split": "val"}, "split"), ({"coarse": True}, "cifar100"),
])
def test_cifar_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_cifar(tmp_path, **kwargs)


@pytest.mark.parametrize("name, kwargs", [
    ("shapes", {"n_train": 40, "n_test": 20, "seed": 3}),
    ("scenes", {"n_train": 6, "n_test": 4, "img_size": 16, "seed": 3}),
    ("faces", {"n_train_ids": 4, "per_id": 3, "n_test_ids": 3, "test_per_id": 3, "n_pairs": 6, "img_size": 32,
               "seed": 3}),
])
def test_load_splits_adds_a_disjoint_validation_stream(name, kwargs):
    n_val = 3 if name == "faces" else 10
    train, val, test = load_splits(name, n_val=n_val, **kwargs)
    train0, test0 = load_dataset(name, **kwargs)
    assert torch.equal(train.x, train0.x) and torch.equal(test.x, test0.x), "train and test do not change"
    assert (train.role, val.role, test.role) == ("train", "val", "test")
    flat = lambda s: {tuple(row.tolist()) for row in s.x.flatten(1)[:, ::7]}  # noqa: E731
    assert not flat(val) & flat(train) and not flat(val) & flat(test), "no sample shared"
    if name == "faces":
        assert len(val) == 9 and val.pairs is not None and len(val.pairs) == 6
        assert not set(val.classes) & (set(train.classes) | set(test.classes)), "no identity shared"
    else:
        assert len(val) == n_val
    again = load_splits(name, n_val=n_val, **kwargs).val
    assert torch.equal(again.x, val.x), "deterministic"


def test_load_splits_holds_out_real_digits_and_checks_its_arguments():
    train, val, test = load_splits("digits", n_val=100, img_size=8, seed=0)
    full, test0 = load_dataset("digits", img_size=8, seed=0)
    assert len(train) + len(val) == len(full) and len(val) == 100 and torch.equal(test.x, test0.x)
    assert (train.name, val.name) == ("digits-train", "digits-val")
    with pytest.raises(ValueError, match="n_val must be an int >= 1"):
        load_splits("shapes", n_val=0, n_train=8, n_test=8)
    with pytest.raises(ValueError, match="n_val must leave training images"):
        load_splits("digits", n_val=len(full), img_size=8)
    with pytest.raises(ValueError, match="name must be one of"):
        load_splits("nope", n_val=3)


def test_with_labels_keeps_the_first_n_and_marks_the_rest_unlabelled():
    from kdlab.data import UNLABELLED

    s = image_set()
    part = s.with_labels(4)
    assert torch.equal(part.y[:4], s.y[:4]) and bool((part.y[4:] == UNLABELLED).all())
    assert part.n_labelled == 4 and s.n_labelled == 10 and torch.equal(part.x, s.x)
    assert s.with_labels(10).n_labelled == 10 and s.with_labels(0).n_labelled == 0
    assert "4 labelled" in part.name
    with pytest.raises(ValueError, match="n must be"):
        s.with_labels(11)
    with pytest.raises(ValueError, match="per-pixel"):
        image_set(mask=True).segmentation().with_labels(2)
    with pytest.raises(ValueError, match="labels must be in"):  # UNLABELLED is the only label outside [0, K)
        ImageSet(x=s.x, y=torch.full((10,), -2), classes=s.classes)


def test_with_confused_labels_moves_a_seeded_fraction_to_the_next_class():
    from kdlab.data import UNLABELLED

    s = image_set(n=200)
    noisy = s.with_confused_labels(0.4, seed=3)
    moved = noisy.y != s.y
    assert torch.equal(noisy.y[moved], (s.y[moved] + 1) % s.num_classes) and torch.equal(noisy.x, s.x)
    assert 0.25 < moved.float().mean() < 0.55 and "40% labels confused" in noisy.name
    assert torch.equal(noisy.y, s.with_confused_labels(0.4, seed=3).y), "the same seed moves the same labels"
    assert torch.equal(s.with_confused_labels(0.0, seed=3).y, s.y)
    with pytest.raises(ValueError, match="fraction must be"):
        s.with_confused_labels(1.5, seed=0)
    with pytest.raises(ValueError, match="fully labelled"):
        s.with_labels(5).with_confused_labels(0.1, seed=0)
    assert UNLABELLED not in noisy.y


def test_repeat_to_cycles_the_rows_to_an_exact_size():
    s = image_set(n=4)
    tiled = s.repeat_to(10)
    assert len(tiled) == 10 and torch.equal(tiled.y, s.y[torch.arange(10) % 4]) and torch.equal(tiled.x[4], s.x[0])
    assert torch.equal(s.repeat_to(4).x, s.x)
    with pytest.raises(ValueError, match="size"):
        s.repeat_to(3)
