"""CIFAR-10, CIFAR-100 and SVHN from their published files under ``data.root`` (no download).

- cifar10: ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (python pickles) or
  ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` (1 label byte + 3072 pixel bytes);
- cifar100: ``cifar-100-python/{train,test}`` or ``cifar-100-binary/{train,test}.bin``
  (coarse and fine label bytes + 3072; the fine label is used);
- svhn: ``train_32x32.mat`` and ``test_32x32.mat`` (cropped digits, label 10 means 0).
``data.root`` may be the folder holding these or (CIFAR) the batches folder itself. The test
split is the evaluation split. Pickles are read with an unpickler that only builds numpy
arrays and plain containers.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from cwn_bench.data.sources import ArraySource
from cwn_bench.errors import UserError, one_line

NAMES = ("cifar10", "cifar100", "svhn")
_CIFAR = {  # name: (python folder, train files, test file, label key, binary folder, label bytes)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels",
                "cifar-10-batches-bin", 1),
    "cifar100": ("cifar-100-python", ["train"], "test", b"fine_labels", "cifar-100-binary", 2),
}
_SAFE = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
         ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
         ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in _SAFE:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _missing(path: Path, expected: str) -> UserError:
    return UserError(f"{path}: not found; expected {expected} (download it yourself: nothing is fetched at run time)")


def _cifar_pickle(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(f, encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[label_key], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError) as err:
        raise UserError(f"{path}: not a CIFAR python batch ({one_line(err, 200)})") from None
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _cifar_binary(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + 3072
    if raw.size == 0 or raw.size % record:
        raise UserError(f"{path}: {raw.size} bytes, not a multiple of the {record}-byte CIFAR record")
    raw = raw.reshape(-1, record)
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), raw[:, label_bytes - 1].astype(np.int64)


def _cifar(name: str, root: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    py_dir, train_files, test_file, label_key, bin_dir, label_bytes = _CIFAR[name]
    for folder, read, suffix, extra in ((py_dir, _cifar_pickle, "", label_key), (bin_dir, _cifar_binary, ".bin", label_bytes)):
        base = root if root.name == folder else root / folder
        if base.is_dir():
            for f in [*train_files, test_file]:
                if not (base / f"{f}{suffix}").is_file():
                    raise _missing(base / f"{f}{suffix}", f"{base}/{{{','.join(train_files)},{test_file}}}{suffix}")
            parts = [read(base / f"{f}{suffix}", extra) for f in train_files]
            train = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            return train, read(base / f"{test_file}{suffix}", extra)
    raise _missing(root / py_dir, f"{root}/{py_dir}/ (python version) or {root}/{bin_dir}/ (binary version)")


def _svhn_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    if not path.is_file():
        raise _missing(path, f"{path.parent}/{{train,test}}_32x32.mat (SVHN format 2)")
    try:
        mat = loadmat(path)
        images, labels = mat["X"], mat["y"].reshape(-1).astype(np.int64)
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: not an SVHN .mat file with X [32, 32, 3, N] and y [N, 1] "
                        f"({one_line(err, 200)})") from None
    return np.ascontiguousarray(images.transpose(3, 0, 1, 2)), labels % 10  # label 10 is the digit 0


def load(name: str, root: str | Path, grayscale: bool) -> tuple[ArraySource, ArraySource, list[str]]:
    """Train and test sources of dataset ``name`` and its class names."""
    root = Path(root)
    if not root.is_dir():
        raise _missing(root, f"a folder holding the {name} files")
    if name == "svhn":
        train, test = _svhn_split(root / "train_32x32.mat"), _svhn_split(root / "test_32x32.mat")
    else:
        train, test = _cifar(name, root)
    classes = [str(c) for c in range(int(max(train[1].max(), test[1].max())) + 1)]
    return ArraySource(*train, grayscale), ArraySource(*test, grayscale), classes
