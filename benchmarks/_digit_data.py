"""Handwritten-digit data for the training-equivalence experiment, without any download.

Two sources, both returned as a :class:`DigitData` of flattened 784-pixel images, so the
seed's 784-512-256-128-64-10 network is used unchanged on either:

- :func:`load_sklearn_digits` — the 1797 real handwritten 8×8 digits that scikit-learn ships
  (UCI "Optical Recognition of Handwritten Digits", values 0..16), scaled to [0, 1] and
  upsampled to 28×28 with bilinear interpolation, split into a fixed, seeded train/test set.
- :func:`load_mnist_dir` — the real MNIST IDX files (``train-images-idx3-ubyte[.gz]`` and the
  three others) from a directory the user points at, read by :func:`read_idx`, this module's
  own parser of the IDX format.

Both are normalised the way the seed's ``transforms.Normalize((0.1307,), (0.3081,))`` does:
``x ← (x − μ) / σ`` with the scalar pixel mean μ and standard deviation σ of the *training*
images (for MNIST these are 0.1307 and 0.3081; they are recomputed here, not copied).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SIDE = 28
"""The seed's image side: its first layer takes 28·28 = 784 inputs."""

DIGITS_TEST_FRACTION = 0.2
"""Share of the 1797 scikit-learn digits held out for testing (round(359.4) = 359 images)."""

# IDX type byte -> big-endian NumPy dtype (the format's specification, LeCun et al. 1998).
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8",
}

_MNIST_STEMS = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


@dataclass
class DigitData:
    """Flattened, normalised images and their labels.

    ``x_train``: ``(N_train, 784)`` float32; ``y_train``: ``(N_train,)`` int64 in 0..9;
    likewise ``x_test``/``y_test``. ``source`` describes where the data came from and how it
    was prepared (it goes into the written results).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> DigitData:
        """The same data on ``device`` (the whole set lives there: no per-batch copies)."""
        return DigitData(self.name, self.x_train.to(device), self.y_train.to(device),
                         self.x_test.to(device), self.y_test.to(device), dict(self.source))


# ---------------------------------------------------------------------------------------------
# IDX files


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into an array of its declared shape.

    Layout: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), a rank byte ``k``, then ``k`` big-endian uint32 dimensions
    and the data in C order, big-endian. Gzip is detected from its magic bytes ``1f 8b``, not
    from the file name. Raises ``ValueError`` naming the file on a bad header or a size that
    does not match the header.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{str(path)!r} is not an IDX file: it must start with two zero bytes, "
                         f"got {raw[:4].hex() or 'an empty file'}")
    type_code, rank = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{str(path)!r}: unknown IDX type byte 0x{type_code:02x}; expected one "
                         f"of {', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}")
    header_end = 4 + 4 * rank
    if len(raw) < header_end:
        raise ValueError(f"{str(path)!r}: truncated header ({len(raw)} bytes for rank {rank})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=rank, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_end != expected:
        raise ValueError(f"{str(path)!r}: header declares shape {shape} of {dtype.name} "
                         f"({expected} data bytes) but the file holds {len(raw) - header_end}")
    data = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def _find_mnist_file(directory: Path, key: str) -> Path:
    """The file for ``key`` in ``directory`` (or its ``raw``/``MNIST/raw`` subfolders)."""
    for folder in (directory, directory / "raw", directory / "MNIST" / "raw"):
        for stem in _MNIST_STEMS[key]:
            for suffix in ("", ".gz"):
                candidate = folder / (stem + suffix)
                if candidate.is_file():
                    return candidate
    names = " or ".join(f"{s}[.gz]" for s in _MNIST_STEMS[key])
    raise FileNotFoundError(f"--mnist {str(directory)!r}: no {names} there (nor in raw/ or "
                            "MNIST/raw/)")


def load_mnist_dir(directory: str | Path) -> DigitData:
    """MNIST from the four IDX files in ``directory``, scaled to [0, 1] and normalised.

    Images ``(N, 28, 28)`` uint8 become ``(N, 784)`` float32 ``(x/255 − μ)/σ`` with μ, σ the
    training-set pixel mean and standard deviation. Raises ``FileNotFoundError`` naming the
    directory and the missing file, ``ValueError`` on inconsistent files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"--mnist {str(directory)!r} is not a directory")
    paths = {key: _find_mnist_file(directory, key) for key in _MNIST_STEMS}
    arrays = {key: read_idx(p) for key, p in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            raise ValueError(f"{str(paths[f'{split}_images'])!r}: expected images of shape "
                             f"(N, 28, 28), got {images.shape}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"{str(paths[f'{split}_labels'])!r}: {labels.shape[0]} labels for "
                             f"{images.shape[0]} images")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{str(paths[f'{split}_labels'])!r}: labels must lie in 0..9")

    def pixels(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)

    x_train, x_test = pixels(arrays["train_images"]), pixels(arrays["test_images"])
    mean, std = _pixel_stats(x_train)
    return DigitData(
        name="mnist",
        x_train=(x_train - mean) / std, y_train=_labels(arrays["train_labels"]),
        x_test=(x_test - mean) / std, y_test=_labels(arrays["test_labels"]),
        source={"dataset": "MNIST (IDX files)", "files": {k: str(p) for k, p in paths.items()},
                "n_train": len(x_train), "n_test": len(x_test), "input": "28x28 as stored",
                "normalisation": _normalisation_note(mean, std)},
    )


# ---------------------------------------------------------------------------------------------
# scikit-learn's bundled digits


SKLEARN_MISSING = ("scikit-learn is not installed, and the default data (its bundled digits) "
                   "needs it: pip install 'lossproofs[bench]', or give --mnist DIR with the "
                   "MNIST IDX files")


def sklearn_missing() -> str | None:
    """:data:`SKLEARN_MISSING` when scikit-learn's datasets cannot be imported, else None."""
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        return SKLEARN_MISSING
    return None


def load_sklearn_digits(split_seed: int = 0) -> DigitData:
    """scikit-learn's 1797 handwritten 8×8 digits, upsampled to 28×28 and normalised.

    Values 0..16 are divided by 16, each ``(1, 8, 8)`` image is resized to ``(1, 28, 28)`` by
    bilinear interpolation (``align_corners=False``), flattened to 784 and normalised with the
    training split's pixel mean and std. The test split is a fixed permutation drawn from a
    ``torch.Generator`` seeded with ``split_seed``: 20% (359 images) for test, 1438 for
    training (23 steps of 64 per epoch). Raises ``ImportError`` with an install hint if
    scikit-learn is missing.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is in the bench extra
        raise ImportError(SKLEARN_MISSING) from exc
    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    upsampled = F.interpolate(images, size=(IMAGE_SIDE, IMAGE_SIDE), mode="bilinear",
                              align_corners=False).flatten(1)
    labels = _labels(bunch.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(split_seed))
    n_test = round(DIGITS_TEST_FRACTION * len(labels))
    test_idx, train_idx = order[:n_test], order[n_test:]
    x_train, x_test = upsampled[train_idx], upsampled[test_idx]
    mean, std = _pixel_stats(x_train)
    return DigitData(
        name="sklearn-digits",
        x_train=(x_train - mean) / std, y_train=labels[train_idx],
        x_test=(x_test - mean) / std, y_test=labels[test_idx],
        source={"dataset": "scikit-learn load_digits (UCI optical handwritten digits, 8x8)",
                "n_train": len(train_idx), "n_test": len(test_idx), "split_seed": split_seed,
                "input": "8x8 values/16, bilinear upsample to 28x28 (align_corners=False)",
                "normalisation": _normalisation_note(mean, std)},
    )


# ---------------------------------------------------------------------------------------------
# helpers


def _labels(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(values, dtype=np.int64))


def _pixel_stats(x_train: torch.Tensor) -> tuple[float, float]:
    """Scalar mean and (population) std of all training pixels, accumulated in float64."""
    x64 = x_train.double()
    return float(x64.mean()), float(x64.std(unbiased=False))


def _normalisation_note(mean: float, std: float) -> dict[str, Any]:
    return {"formula": "(x - mean) / std, scalar over all training pixels",
            "mean": mean, "std": std}
