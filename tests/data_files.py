"""Synthetic data files for the data tests: IDX sets and small images."""

import gzip
import io
import os
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def isolate_data(tmp_path: Path, monkeypatch) -> None:
    """A data directory and a system folder of the test's own; downloads go nowhere fast."""
    from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("CONVZOO_SYSTEM_DATA", str(tmp_path / "system"))
    monkeypatch.delenv("CONVZOO_OFFLINE", raising=False)
    for cls in (MNIST, FashionMNIST):  # port 9 (discard) on localhost: refused at once
        monkeypatch.setattr(cls, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 | array.ndim  # unsigned bytes, rank
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(folder: Path, split: str, n: int = 20, labels=None, gz=False, size=28) -> None:
    """An MNIST-format split of ``n`` random images, labels ``i % 10`` unless given."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    labels = np.arange(n) % 10 if labels is None else np.asarray(labels)
    for name, arr in (
        (f"{prefix}-images-idx3-ubyte", images),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        data = idx_bytes(arr)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def fake_fashion_env(data: Path) -> dict:
    """The environment of a ``convzoo`` subprocess that finds 3,000 training and 100 test
    random images as its Fashion-MNIST under ``data``, offline, and this test's modules."""
    raw = data / "FashionMNIST" / "raw"
    write_idx(raw, "train", 3000)
    write_idx(raw, "test", 100)
    return {
        **os.environ,
        "CONVZOO_DATA": str(data),
        "CONVZOO_SYSTEM_DATA": "",
        "CONVZOO_OFFLINE": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }


def save_image(path: Path, mode: str = "RGB", size=(8, 8), fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = RNG.integers(0, 256, (size[0], size[1], channels), dtype=np.uint8)
    Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode).save(path, fmt)
    return path


def truncated_jpeg(path: Path) -> Path:
    """A JPEG whose header reads but whose data stops short (found only when decoded)."""
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 6 // 10])
    return path
