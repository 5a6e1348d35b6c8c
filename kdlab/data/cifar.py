"""CIFAR-10/100 from a local folder in the standard "python version" format (kdlab never downloads it).

Expected layout (the archives from https://www.cs.toronto.edu/~kriz/cifar.html, extracted)::

    <root>/cifar-10-batches-py/   data_batch_1 .. data_batch_5, test_batch, batches.meta
    <root>/cifar-100-python/      train, test, meta

``root`` may also be the dataset folder itself. The files are pickles of dicts with bytes keys:
``b"data"`` is an ``(N, 3072)`` uint8 array (row-major CHW: 1024 red, 1024 green, 1024 blue values),
labels are ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` / ``b"coarse_labels"`` (CIFAR-100), and the
meta file holds the class names. Pickle can run arbitrary code, so the files are read with
:class:`RestrictedUnpickler`, which rebuilds numpy arrays and nothing else.

:func:`write_cifar_fixture` writes a tiny random dataset in exactly this format (for tests and demos).
"""
from __future__ import annotations

import _codecs
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checks import check_choice, check_int
from .tensors import ImageSet

try:  # numpy >= 2 (numpy 1.x pickles name numpy.core, numpy 2 pickles name numpy._core)
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

IMAGE_SHAPE = (3, 32, 32)
"""Every CIFAR image is 3 x 32 x 32; a row of ``b"data"`` holds its 3072 bytes in this (C, H, W) order."""

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
"""CIFAR-10's class names (as in ``batches.meta``); :func:`write_cifar_fixture` writes them too."""


@dataclass(frozen=True)
class _Layout:
    """Where one CIFAR variant keeps its files and which keys hold labels and class names."""

    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    labels: str
    names: str
    coarse_labels: str | None = None
    coarse_names: str | None = None


LAYOUTS: dict[str, _Layout] = {
    "cifar10": _Layout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                       "batches.meta", "labels", "label_names"),
    "cifar100": _Layout("cifar-100-python", ("train",), ("test",), "meta", "fine_labels", "fine_label_names",
                        "coarse_labels", "coarse_label_names"),
}
"""The on-disk layout of each supported dataset name."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays, dicts, lists, numbers and strings, and refuses every other
    global (``os.system``, ``builtins.eval``, ...) with :class:`pickle.UnpicklingError`."""

    ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,
    }
    """The only globals a CIFAR file needs: numpy's array reconstruction and protocol 2's bytes encoding."""

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global; raise :class:`pickle.UnpicklingError` for anything else."""
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR file only holds numpy arrays, lists and "
                "strings, so this pickle is corrupt or malicious") from None


def load_pickle(path: str | Path) -> dict[str, Any]:
    """Read one CIFAR pickle safely; returns its dict with keys decoded to ``str`` (values as stored,
    Python 2 strings as ``bytes``)."""
    with open(path, "rb") as f:
        obj = RestrictedUnpickler(f, encoding="bytes").load()
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict as in the CIFAR format, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def load_cifar(root: str | Path, name: str = "cifar10", split: str = "train", coarse: bool = False) -> ImageSet:
    """One split of CIFAR-10 or CIFAR-100 from a local folder, as an :class:`~kdlab.data.tensors.ImageSet`.

    Args:
        root: the folder that contains ``cifar-10-batches-py`` / ``cifar-100-python``, or that folder itself.
        name: ``"cifar10"`` or ``"cifar100"``.
        split: ``"train"`` (50000 images in the full dataset) or ``"test"`` (10000).
        coarse: CIFAR-100 only: use the 20 superclasses instead of the 100 fine classes.

    Returns:
        ``x`` (N, 3, 32, 32) float32 in ``[0, 1]``, ``y`` (N,) int64, the class names from the meta file,
        named like ``"cifar10-train"`` or ``"cifar100-coarse-test"``.

    Raises:
        FileNotFoundError: the folder or one of its files is missing (the message shows the layout).
        pickle.UnpicklingError: a file tries to load anything but numpy arrays.
        ValueError: bad arguments or a file that does not hold what the format says.
    """
    check_choice("name", name, tuple(LAYOUTS))
    check_choice("split", split, ("train", "test"))
    layout = LAYOUTS[name]
    if coarse and layout.coarse_labels is None:
        raise ValueError(f"coarse=True needs cifar100; {name} has no superclasses")
    folder = find_folder(root, name)
    label_key, names_key = (layout.coarse_labels, layout.coarse_names) if coarse else (layout.labels, layout.names)
    classes = tuple(_text(n) for n in _read(folder, layout.meta)[names_key])
    batches = [_read(folder, file) for file in getattr(layout, split)]
    data = np.concatenate([_batch_data(b, folder / f) for b, f in zip(batches, getattr(layout, split))])
    labels = [label for b in batches for label in b[label_key]]
    if len(labels) != len(data):
        raise ValueError(f"{folder}: {len(data)} images but {len(labels)} {label_key}")
    x = torch.from_numpy(data).reshape(-1, *IMAGE_SHAPE).float().div_(255)
    y = torch.as_tensor(labels, dtype=torch.int64)
    label = f"{name}-coarse-{split}" if coarse else f"{name}-{split}"
    return ImageSet(x=x, y=y, classes=classes, name=label)


def find_folder(root: str | Path, name: str = "cifar10") -> Path:
    """The dataset folder for ``name`` under ``root`` (or ``root`` itself when it is that folder)."""
    layout = LAYOUTS[name]
    root = Path(root).expanduser()
    for folder in (root / layout.folder, root):
        if (folder / layout.meta).is_file():
            return folder
    files = ", ".join(layout.train + layout.test + (layout.meta,))
    raise FileNotFoundError(
        f"{name} not found under {root}: expected the folder {root / layout.folder} (or root pointing at it) "
        f"holding {files} - the extracted 'python version' archive from "
        "https://www.cs.toronto.edu/~kriz/cifar.html. kdlab never downloads data; fetch and extract it yourself.")


def _read(folder: Path, file: str) -> dict[str, Any]:
    """``load_pickle(folder / file)`` with a FileNotFoundError that names the missing file."""
    path = folder / file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the CIFAR folder {folder} is incomplete")
    return load_pickle(path)


def _batch_data(batch: dict[str, Any], path: Path) -> np.ndarray:
    """The batch's ``data`` array, checked to be (N, 3072) uint8."""
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.shape} {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be an (N, 3072) uint8 array, got {got}")
    return data


def _text(value: bytes | str) -> str:
    """A class name as ``str`` (CIFAR stores Python 2 strings, read back as bytes)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def write_cifar_fixture(root: str | Path, name: str = "cifar10", n_train: int = 50, n_test: int = 20,
                        seed: int = 0) -> Path:
    """Write a tiny random CIFAR-10/100 in the standard on-disk format under ``root``; returns its folder.

    Files are ``pickle.dump(..., protocol=2)`` dicts with bytes keys, as in the real archives: random
    uint8 images, uniform random labels (CIFAR-10 train spread over the five ``data_batch_*`` files).
    CIFAR-10 gets the real class names; CIFAR-100 gets ``fine_00`` .. ``fine_99`` and ``coarse_00`` ..
    ``coarse_19`` with superclass ``fine // 5``. The same ``seed`` writes the same files.
    """
    check_choice("name", name, tuple(LAYOUTS))
    check_int("n_train", n_train, low=0)
    check_int("n_test", n_test, low=0)
    layout = LAYOUTS[name]
    folder = Path(root).expanduser() / layout.folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        files = getattr(layout, split)
        for i, (file, count) in enumerate(zip(files, _spread(n, len(files))), start=1):
            batch_label = f"{split}ing batch {i} of {len(files)}" if name == "cifar10" else f"{split}ing"
            _dump(folder / file, _fixture_batch(rng, count, name, batch_label))
    _dump(folder / layout.meta, _fixture_meta(name, n_train))
    return folder


def _spread(n: int, parts: int) -> list[int]:
    """``n`` items spread over ``parts`` as evenly as possible (the first parts get the remainder)."""
    return [n // parts + (i < n % parts) for i in range(parts)]


def _fixture_batch(rng: np.random.Generator, n: int, name: str, batch_label: str) -> dict[bytes, Any]:
    """One random batch dict with CIFAR's keys."""
    batch = {
        b"batch_label": batch_label.encode(),
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"fixture_{j:05d}.png".encode() for j in range(n)],
    }
    if name == "cifar10":
        batch[b"labels"] = rng.integers(0, 10, size=n).tolist()
    else:
        fine = rng.integers(0, 100, size=n)
        batch[b"fine_labels"] = fine.tolist()
        batch[b"coarse_labels"] = (fine // 5).tolist()
    return batch


def _fixture_meta(name: str, n_train: int) -> dict[bytes, Any]:
    """The meta dict: class names (and, for CIFAR-10, the batch bookkeeping keys)."""
    if name == "cifar10":
        return {b"num_cases_per_batch": -(-n_train // 5), b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                b"num_vis": 3072}
    return {b"fine_label_names": [f"fine_{k:02d}".encode() for k in range(100)],
            b"coarse_label_names": [f"coarse_{k:02d}".encode() for k in range(20)]}


def _dump(path: Path, obj: dict[bytes, Any]) -> None:
    """``pickle.dump`` with protocol 2, as the original archives."""
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


__all__ = ["CIFAR10_CLASSES", "IMAGE_SHAPE", "LAYOUTS", "RestrictedUnpickler", "find_folder", "load_cifar",
           "load_pickle", "write_cifar_fixture"]
