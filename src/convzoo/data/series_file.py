"""Time series to predict on, from ``.csv`` and ``.npy`` files: the rule of what is a series.

A trained sequence model takes series of C channels (``in_channels``). A file holds:

- ``.csv``, numbers separated by commas, one line per row, no header:
  one channel (C = 1): **each row is a series**, rows may differ in length;
  C channels: **the file is one series**, its C rows the channels, all of one length.
- ``.npy`` (read without pickle): C = 1: a vector ``L`` (one series) or a matrix ``N x L``
  (a series per row); C channels: a matrix ``C x L`` (one series) or an array ``N x C x L``.

Missing values are empty fields, ``?`` or ``NaN`` (the archive's spellings); infinite values
are refused. The values then go through what loading an archive set does
(:func:`~convzoo.data.sequences.series_tensor`): trailing missing steps cut, each series
z-normalised where the run's data set was (UCR sets), padded or cut at the end to the trained
length. Anything else is a one-line :class:`~convzoo.errors.DataError` naming the file and
what to write instead.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["SUFFIXES", "read_series_file"]

SUFFIXES = (".csv", ".npy")
_MISSING = {"", "?", "nan"}


def read_series_file(path: str | os.PathLike, channels: int) -> list[tuple[str, np.ndarray]]:
    """``(name, C x L float64 with NaN where missing)`` for every series in ``path``; ``name``
    says where it came from (``a.csv row 2``, ``b.npy [3]``, or the file for a lone series)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"series file {p} does not exist")
    if p.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"{p}: a time-series model predicts on .csv or .npy series files "
            f"(docs/sequences.md, 'Predicting'), not {p.suffix or 'a file without a suffix'}"
        )
    arrays = _read_csv(p, channels) if p.suffix.lower() == ".csv" else _read_npy(p, channels)
    for name, x in arrays:
        if np.isinf(x).any():
            raise DataError(f"{name}: infinite values; replace them with numbers or NaN")
    return arrays


def _read_csv(p: Path, channels: int) -> list[tuple[str, np.ndarray]]:
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as e:
        raise DataError(f"cannot read {p} as text: {e}") from None
    rows = [(i + 1, _numbers(p, i + 1, line)) for i, line in enumerate(lines) if line.strip()]
    if not rows:
        raise DataError(f"{p} holds no series")
    if channels == 1:
        named = len(rows) > 1
        return [(f"{p.name} row {n}" if named else p.name, r[None]) for n, r in rows]
    if len(rows) != channels:
        raise DataError(
            f"{p} has {len(rows)} rows but the model takes {channels}-channel series: write one "
            f"series per .csv file, as {channels} rows (one per channel)"
        )
    lengths = {len(r) for _, r in rows}
    if len(lengths) > 1:
        pairs = itertools.pairwise(rows)
        (n1, r1), (n2, r2) = next((a, b) for a, b in pairs if len(a[1]) != len(b[1]))
        raise DataError(
            f"{p}: row {n2} has {len(r2)} values, row {n1} has {len(r1)}: a series' channels "
            "need the same length (mark missing values with NaN)"
        )
    return [(p.name, np.stack([r for _, r in rows]))]


def _numbers(p: Path, line_no: int, line: str) -> np.ndarray:
    fields = [f.strip() for f in line.split(",")]
    values = []
    for f in fields:
        if f.lower() in _MISSING:
            values.append(np.nan)
            continue
        try:
            values.append(float(f))
        except ValueError:
            shown = f if len(f) <= 20 else f[:20] + "..."
            raise DataError(
                f"{p} line {line_no}: {shown!r} is not a number; write one series per row, "
                "values separated by commas, no header"
            ) from None
    return np.asarray(values, dtype=np.float64)


def _read_npy(p: Path, channels: int) -> list[tuple[str, np.ndarray]]:
    try:
        x = np.load(p, allow_pickle=False)  # never unpickle: a .npy of objects is refused
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"cannot read {p} as a .npy array of numbers: {e}") from None
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise DataError(f"{p} holds {x.dtype} values, not real numbers")
    x = x.astype(np.float64)
    shape = "x".join(map(str, x.shape)) or "a scalar"
    if x.ndim == 1 and channels == 1:
        return [(p.name, x[None])]
    if x.ndim == 2 and channels == 1:
        return [(f"{p.name} [{i}]", row[None]) for i, row in enumerate(x)]
    if x.ndim == 2 and x.shape[0] == channels:
        return [(p.name, x)]
    if x.ndim == 3 and x.shape[1] == channels:
        return [(f"{p.name} [{i}]", s) for i, s in enumerate(x)]
    wanted = (
        "a vector L (one series) or N x L (a series per row)"
        if channels == 1
        else f"{channels} x L (one series) or N x {channels} x L"
    )
    raise DataError(
        f"{p} is a {shape} array but the model takes {channels}-channel series: save {wanted}"
    )
