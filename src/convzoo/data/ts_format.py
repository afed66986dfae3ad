"""Reading the ``.ts`` files of the UCR/UEA time-series classification archives.

The format (sktime's, used by timeseriesclassification.com and shipped inside ``aeon``):
``#`` comment lines, then ``@`` header lines (``@problemName``, ``@univariate``,
``@dimensions``, ``@equalLength``, ``@seriesLength``, ``@missing``, ``@timeStamps``,
``@classLabel true LABEL...``), then ``@data`` and one series per line: its channels separated
by ``:``, values by ``,``, the class label last (``1.0,2.5,?:0.3,0.1,0.2:walking``). ``?`` and
``NaN`` are missing values; series may differ in length.

Why our own ~150 lines rather than ``aeon.datasets.load_from_ts_file``: importing
``aeon.datasets`` takes 1.3-2.0 s on 2 CPU cores (it imports numba, pandas, scipy and
scikit-learn) against 2 ms to read GunPoint's training file (aeon's loader: 2.4 ms; all 18
shipped classification files: 151 ms ours, 171 ms aeon's, best of 5 per file), and the numba
0.63 that aeon 1.6 needs pins numpy below 2.4. We only need ``aeon``'s files: their folder is
found without importing it (:func:`convzoo.data.sequences.shipped_root`). The reader checks each
series (every channel at one length, the same channel count throughout, a declared label, finite
numbers only) and reports each problem as one line naming the file and line. Time-stamped files
(``@timeStamps true``) and regression files (``@targetLabel``) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["TsFile", "read_ts", "read_ts_header"]

_TRUE = {"true": True, "false": False}


@dataclass
class TsFile:
    """A parsed ``.ts`` file: one float64 C x L_i array per series (NaN where missing)."""

    path: Path
    problem: str
    #: the labels the header declares, in the file's order
    class_labels: list[str]
    series: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    #: header facts (lower-case tag -> value), e.g. ``{"univariate": "true"}``
    header: dict[str, str] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return int(self.series[0].shape[0]) if self.series else 0

    @property
    def lengths(self) -> list[int]:
        return [int(s.shape[1]) for s in self.series]


def _fail(path: Path, line: int | None, what: str) -> DataError:
    where = f"{path}:{line}" if line is not None else str(path)
    return DataError(f"{where}: {what}; not a readable .ts classification file")


def _lines(path: Path):
    """``(line number, stripped text)`` of the non-blank, non-comment lines."""
    try:
        with open(path, encoding="utf-8") as f:
            for number, text in enumerate(f, 1):
                text = text.strip()
                if text and not text.startswith("#"):
                    yield number, text
    except UnicodeDecodeError:
        raise _fail(path, None, "not UTF-8 text") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None


def _parse_header(path: Path, lines) -> TsFile:
    """Consume header lines up to ``@data``; the file's metadata, checked."""
    header: dict[str, str] = {}
    labels: list[str] | None = None
    for number, text in lines:
        if not text.startswith("@"):
            raise _fail(path, number, f"data before @data: {text[:40]!r}")
        tag, _, value = text[1:].partition(" ")
        tag, value = tag.lower(), value.strip()
        if tag == "data":
            break
        if tag == "classlabel":
            flag, *labels = value.split()
            if _TRUE.get(flag.lower()) is not True:
                raise _fail(path, number, "@classLabel is not true: the file has no classes")
            if not labels or len(set(labels)) != len(labels):
                raise _fail(path, number, "@classLabel must list each class label once")
        elif tag == "targetlabel" and _TRUE.get(value.split()[0].lower() if value else ""):
            raise _fail(path, number, "a regression file (@targetLabel), not classification")
        header[tag] = value
    else:
        raise _fail(path, None, "no @data line")
    if labels is None:
        raise _fail(path, None, "no @classLabel line")
    if _TRUE.get(header.get("timestamps", "false").lower()):
        raise _fail(path, None, "time-stamped series (@timeStamps true) are not supported")
    return TsFile(path, header.get("problemname", path.stem), labels, header=header)


def read_ts_header(path: str | Path) -> TsFile:
    """The header of a ``.ts`` file (no series): problem name, class labels, facts."""
    path = Path(path)
    lines = _lines(path)
    try:
        return _parse_header(path, lines)
    finally:
        lines.close()  # the file is closed now, not when the generator is collected


def _parse_series(path: Path, number: int, text: str, n_dims: int | None) -> tuple[np.ndarray, str]:
    *dims, label = text.split(":")
    if not dims:
        raise _fail(path, number, "a series needs values and a class label separated by ':'")
    if n_dims is not None and len(dims) != n_dims:
        raise _fail(path, number, f"{len(dims)} channels, expected {n_dims}")
    try:
        channels = [np.array(d.replace("?", "nan").split(","), dtype=np.float64) for d in dims]
    except ValueError as e:
        bad = str(e).rpartition(": ")[2][:40]
        raise _fail(path, number, f"{bad} is not a number") from None
    if any(np.isinf(c).any() for c in channels):
        raise _fail(path, number, "an infinite value")
    lengths = {len(c) for c in channels}
    if len(lengths) != 1:
        raise _fail(path, number, f"channels of different lengths {sorted(lengths)}")
    return np.stack(channels), label.strip()


def read_ts(path: str | Path) -> TsFile:
    """Read a classification ``.ts`` file; :class:`DataError` (one line naming the file and
    line) for anything it cannot hold: a value that is not a number, a label the header does
    not declare, channels of unequal length, a channel count that changes, no series."""
    path = Path(path)
    lines = _lines(path)
    ts = _parse_header(path, lines)
    declared = set(ts.class_labels)
    n_dims = 1 if ts.header.get("univariate", "").lower() == "true" else None
    if "dimensions" in ts.header and ts.header["dimensions"].isdigit():
        n_dims = int(ts.header["dimensions"])
    for number, text in lines:
        values, label = _parse_series(path, number, text, n_dims)
        if label not in declared:
            raise _fail(path, number, f"class label {label!r} is not declared in @classLabel")
        n_dims = values.shape[0]
        ts.series.append(values)
        ts.labels.append(label)
    if not ts.series:
        raise _fail(path, None, "no series after @data")
    _check_length(ts)
    return ts


def _check_length(ts: TsFile) -> None:
    equal = ts.header.get("equallength", "").lower() == "true"
    stated = ts.header.get("serieslength", "")
    lengths = set(ts.lengths)
    if equal and len(lengths) > 1:
        raise _fail(ts.path, None, f"@equalLength true but lengths {min(lengths)}-{max(lengths)}")
    if equal and stated.isdigit() and lengths != {int(stated)}:
        raise _fail(ts.path, None, f"@seriesLength {stated} but series of {max(lengths)} values")
