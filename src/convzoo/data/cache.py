"""``--cache DIR``: your own images decoded and resized once into a memory-mapped uint8 file, so
later epochs and runs read pixels instead of decoding JPEGs (FFCV's and DALI's idea, without
their formats).

One file per set, named by a digest of what it holds: every file's path, size and modification
time, its label, and the channels and size it is decoded to. A folder that changed (a file
added, replaced or touched) has another digest, so its old cache is never read for it; it is
written anew. A file is written under a temporary name and renamed when complete, so a run
killed while writing leaves no cache that looks whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import ImageDataset
from .folder import FolderIndex, log_skipped


def digest(index: FolderIndex) -> str:
    h = hashlib.sha256(f"{index.channels} {index.size}".encode())
    for path, label in zip(index.paths.tolist(), index.labels.tolist()):
        try:
            st = os.stat(path)
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\n".encode())
        except OSError:
            h.update(f"{path}\0missing\n".encode())
    return h.hexdigest()[:20]


def cached(index: FolderIndex, folder: str | os.PathLike) -> tuple[ImageDataset, str]:
    """``index``'s images from its cache in ``folder`` (written first if there is none for the
    files as they are now), memory-mapped; and a line saying which."""
    folder = Path(folder).expanduser()
    stem = folder / f"{index.split}-{digest(index)}"
    data_path, meta_path = stem.with_suffix(".u8"), stem.with_suffix(".json")
    shape = (index.channels, *index.size)
    wrote = not meta_path.exists()
    if wrote:
        _write(index, data_path, meta_path, shape)
    keep = torch.tensor(json.loads(meta_path.read_text())["keep"], dtype=torch.long)
    images = np.memmap(data_path, np.uint8, mode="c", shape=(len(keep), *shape))
    data = index.decoded(torch.from_numpy(images), keep)
    size = f"{data.images.numel() / 2**30:.2f} GiB"
    data.note = f"memory-mapped from {data_path} ({size}, {'written now' if wrote else 'cached'})"
    return data, data.note


def _write(index: FolderIndex, data_path: Path, meta_path: Path, shape: tuple) -> None:
    from .folder_loader import FolderLoader

    try:
        data_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = data_path.with_suffix(f".tmp{os.getpid()}")
        out = np.memmap(tmp, np.uint8, mode="w+", shape=(len(index), *shape))
        n = 0
        for _, x, _, valid, _ in FolderLoader(index, 256).uint8_batches():
            out[n : n + valid] = x[:valid].numpy()
            n += valid
        bad = set(index.bad_images)
        keep = [i for i, p in enumerate(index.paths.tolist()) if p not in bad]
        out.flush()
        del out
        os.truncate(tmp, n * int(np.prod(shape)))
        os.replace(tmp, data_path)
        meta_path.write_text(json.dumps({"source": index.source, "keep": keep}))
    except OSError as e:
        raise DataError(f"{data_path.parent}: cannot write the image cache ({e})") from None
    log_skipped(index.bad_images, index.source)
