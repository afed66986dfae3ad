"""``csv:FILE``: images listed in a labels file, as Keras' ``flow_from_dataframe`` and fastai's
``ImageDataLoaders.from_df`` read them.

A CSV with a header row naming the columns ``path`` and ``label`` (any order, any case; other
columns are ignored) and optionally ``split`` (``train``, ``val`` or ``test``). Paths are
relative to the CSV's folder (absolute ones are taken as they are). The classes are the
distinct labels, sorted (numerically when they are all whole numbers). Without a ``split``
column the rows are split as a folder without ``train/`` and ``test/`` is
(:func:`~convzoo.data.folder.split_of`); ``val`` rows are the validation split, taken
instead of one carved out of the training rows. A row that cannot be used stops the load
with one line naming the file and the line; a missing image file with ``skip_bad_images``
is left out and listed instead.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch

from ..errors import DataError
from .folder import TEST_FRACTION, FolderIndex, make_index, split_of

SPLIT_NAMES = ("train", "val", "test")


def _rows(path: Path) -> tuple[list[tuple[int, str, str, str]], bool]:
    """``(line, path, label, split)`` of every data row, and whether there is a split column."""
    if not path.is_file():
        raise DataError(f"{path}: no such labels file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            if "path" not in header or "label" not in header:
                raise DataError(
                    f"{path}: the first row must name the columns path and label (and "
                    f"optionally split), found {', '.join(header) or 'nothing'}"
                )
            cols = [header.index(c) if c in header else None for c in ("path", "label", "split")]
            rows = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank lines
                if len(row) != len(header):
                    raise DataError(
                        f"{path} line {reader.line_num}: {len(row)} columns where the header "
                        f"has {len(header)} ({', '.join(header)})"
                    )
                file, label, split = (row[c].strip() if c is not None else "" for c in cols)
                rows.append((reader.line_num, file, label, split.lower()))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read the labels file ({e})") from None
    return rows, cols[2] is not None


def _check(path: Path, rows: list[tuple[int, str, str, str]], has_split: bool) -> None:
    seen: dict[str, int] = {}
    for line, file, label, split in rows:
        where = f"{path} line {line}"
        if not file or not label:
            raise DataError(f"{where}: the {'path' if not file else 'label'} is empty")
        if has_split and split not in SPLIT_NAMES:
            raise DataError(f"{where}: split {split!r} is not one of {', '.join(SPLIT_NAMES)}")
        if file in seen:
            raise DataError(f"{where}: {file} is listed twice (first on line {seen[file]})")
        seen[file] = line


def _classes(labels: set[str]) -> list[str]:
    whole = all(label.lstrip("-").isdigit() for label in labels)
    return sorted(labels, key=lambda s: (int(s), s) if whole else (0, s))


def index_csv(
    path: str | os.PathLike,
    split: str = "train",
    *,
    channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    skip_bad_images: bool = False,
) -> FolderIndex:
    """The images of ``split`` listed in the labels file ``path`` (module docstring)."""
    path = Path(path).expanduser().absolute()
    rows, has_split = _rows(path)
    _check(path, rows, has_split)
    classes = _classes({label for _, _, label, _ in rows})
    if len(classes) < 2:
        raise DataError(f"{path}: {len(classes)} distinct label(s); a classifier needs two or more")
    lookup = {c: i for i, c in enumerate(classes)}
    if has_split:
        wanted = ("train", "val") if split == "train" else (split,)
        picked = [r for r in rows if r[3] in wanted]
        if not picked:
            raise DataError(
                f"{path}: no row has split {split!r}; mark some so, or drop the split column "
                f"(then {TEST_FRACTION:.0%} of each class is held out for test)"
            )
    else:
        labels = torch.tensor([lookup[label] for _, _, label, _ in rows])
        picked = [rows[i] for i in split_of(labels, split).tolist()]
    files, bad = [], {}
    for line, file, label, row_split in picked:
        full = str(path.parent / file)
        if not os.path.isfile(full):
            if not skip_bad_images:
                raise DataError(
                    f"{path} line {line}: no such image {full}; fix the row or leave missing "
                    "images out with --skip-bad-images"
                )
            bad[full] = "no such file"
            continue
        files.append((full, lookup[label], row_split == "val"))
    index = make_index(
        [f for f, _, _ in files],
        [label for _, label, _ in files],
        classes,
        name=f"csv:{path}",
        split=split,
        source=str(path),
        channels=channels,
        image_size=image_size,
        skip_bad_images=skip_bad_images,
        val_mask=[v for _, _, v in files] if any(v for _, _, v in files) else None,
    )
    index.bad_images.update(bad)
    return index


def listed_images(path: str | os.PathLike) -> list[str]:
    """Every image file a labels file lists, whatever its split (for ``convzoo predict``)."""
    path = Path(path).expanduser().absolute()
    rows, has_split = _rows(path)
    _check(path, rows, has_split)
    return [str(path.parent / file) for _, file, _, _ in rows]
