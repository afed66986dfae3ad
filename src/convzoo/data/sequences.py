"""Time series in memory for the 1-D models: the UCR (univariate) and UEA (multivariate) archives.

``load_dataset("ucr:GunPoint", "train")`` (or ``"uea:BasicMotions"``) returns a
:class:`SequenceDataset`: float32 series N x C x L, int64 labels, class names.

Where the files come from, first hit wins (``.ts`` files, read by :mod:`.ts_format`):

1. ``<data dir>/ucr/NAME/NAME_TRAIN.ts`` and ``NAME_TEST.ts`` (``uea/`` for ``uea:``), the data
   directory being ``$CONVZOO_DATA`` or ``~/.cache/convzoo``: any archive set downloaded
   elsewhere works when put there;
2. the files the ``aeon`` package ships in its wheel (``pip install convzoo[ts]``): UCR's
   ACSF1, ArrowHead, GunPoint, ItalyPowerDemand, OSULeaf, PickupGestureWiimoteZ and UEA's
   BasicMotions, JapaneseVowels. Found without importing aeon (its import takes 1.3-2.0 s).

What loading does to the values, in this order:

- **Classes**: the archive's label strings are the class names, numbered 0..k-1 in sorted
  order: numerically when every label is a number ("1", "2", ..., "10"), else as text. The
  header's ``@classLabel`` list is used (not the labels met), so both splits number alike.
- **Trailing missing values** (``?``/``NaN`` at the end of a series, in every channel) are the
  padding some archive files add to varying-length sets: cut off, so the series keeps its own
  length.
- **z-normalisation**, UCR sets only (:data:`ZNORM`): each series, each channel on its own,
  over its observed values: mean 0, standard deviation 1 with the ``n - 1`` divisor (the
  classic UCR sets are stored that way: re-normalising GunPoint changes nothing). A constant
  channel becomes zeros. The UEA archive stores its sets unnormalised, and they keep their
  values: a series' level and scale per channel is information there (judged by 5-fold
  cross-validation of JapaneseVowels' training split, resnet1d: 0.972 with the stored values
  against 0.817 z-normalised; ``benchmarks/RESULTS.md``). ``normalize=`` overrides the rule.
- **Missing values inside** a series become 0 (the series' mean after z-normalisation).
- **One length L** for the whole set: the longest series of the *train* split (the test
  split's lengths never choose anything), or ``length=`` when given. Shorter series are padded
  at the end with zeros (the mean: no level shift, and what the convolutions' "same" padding
  already sees past the ends); longer ones (test series only, or any with ``length=``) are
  cut at the end. Only the varying-length sets (JapaneseVowels, PickupGestureWiimoteZ) change.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..errors import ConvzooError, DataError, UnknownNameError
from .dataset import LabelledData
from .files import default_root  # the one definition of the data directory
from .ts_format import TsFile, read_ts, read_ts_header

__all__ = [
    "ARCHIVES",
    "ZNORM",
    "SequenceDataset",
    "SequenceSource",
    "is_sequence_name",
    "load_sequences",
    "sequence_length",
    "shipped_root",
    "shipped_sets",
]

#: dataset-name prefix -> what the archive holds (UCR: one channel; UEA: several)
ARCHIVES = {"ucr": "univariate", "uea": "multivariate"}
#: dataset-name prefix -> whether each series is z-normalised when loaded: the archive's own
#: convention (UCR stores its sets z-normalised, UEA does not; see the module docstring)
ZNORM = {"ucr": True, "uea": False}
_SPLIT_FILES = {"train": "TRAIN", "test": "TEST"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
INSTALL_HINT = "`pip install convzoo[ts]` (the aeon package ships the files)"


@dataclass
class SequenceDataset(LabelledData):
    """A labelled set of time series held in memory, the 1-D counterpart of
    :class:`~convzoo.data.ImageDataset`.

    ``series`` is float32 N x C x L (z-normalised per series when ``znorm``, padded to one
    length: see the module docstring), ``labels`` int64 N in ``[0, len(classes))``.
    """

    series: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str = "unnamed"
    split: str = "train"
    #: where the data came from (a path), for messages and run records
    source: str = ""
    #: whether each series was z-normalised per channel (a file to predict on is prepared so)
    znorm: bool = True
    inputs_field: ClassVar[str] = "series"

    def __post_init__(self) -> None:
        if self.series.dtype != torch.float32 or self.series.dim() != 3:
            raise ValueError(
                f"series must be a float32 N x C x L tensor, got {self.series.dtype} "
                f"{tuple(self.series.shape)}"
            )
        self._check_labels()

    @property
    def in_channels(self) -> int:
        return int(self.series.shape[1])

    @property
    def length(self) -> int:
        """Time steps per series (L); ``len()`` is the number of series."""
        return int(self.series.shape[2])

    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std over every value of every series (``--normalize``; after
        per-series z-normalisation they are near 0 and 1, padding pulls the std below)."""
        x = self.series.transpose(0, 1).reshape(self.in_channels, -1).double()
        mean, std = x.mean(1), x.std(1, correction=0).clamp_min(1e-6)
        return tuple(mean.tolist()), tuple(std.tolist())


# -- where the files are ----------------------------------------------------------------------
def shipped_root() -> Path | None:
    """The folder of data sets inside the installed ``aeon`` package, or ``None``.

    ``find_spec`` locates the package without importing it (no numba, pandas, scikit-learn)."""
    try:
        spec = importlib.util.find_spec("aeon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return folder if folder.is_dir() else None


def shipped_sets() -> dict[str, list[str]]:
    """Classification sets the installed ``aeon`` ships, by archive: ``{"ucr": [...], ...}``
    (a folder holding ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` with class labels)."""
    out: dict[str, list[str]] = {a: [] for a in ARCHIVES}
    root = shipped_root()
    for folder in sorted(root.iterdir()) if root else []:
        files = [folder / f"{folder.name}_{s}.ts" for s in _SPLIT_FILES.values()]
        if not all(f.is_file() for f in files):
            continue
        try:
            ts = read_ts_header(files[0])
        except DataError:  # a regression set, time stamps, ...: not ours to offer
            continue
        out[_archive_of(ts)].append(folder.name)
    return out


def _archive_of(ts: TsFile) -> str:
    univariate = ts.header.get("univariate", "true").lower() == "true"
    return "ucr" if univariate and ts.header.get("dimensions", "1") == "1" else "uea"


def is_sequence_name(name: str) -> bool:
    """Whether ``name`` is a time-series data set (``ucr:NAME`` or ``uea:NAME``)."""
    return name.partition(":")[0] in ARCHIVES


def _parse_name(name: str) -> tuple[str, str]:
    archive, _, set_name = name.partition(":")
    if archive not in ARCHIVES or not _NAME.fullmatch(set_name):
        raise UnknownNameError(
            f"bad sequence data set {name!r}; write ucr:NAME (univariate) or uea:NAME "
            "(multivariate), e.g. ucr:GunPoint"
        )
    return archive, set_name


def _data_root(root: str | os.PathLike | None) -> Path:
    return Path(root).expanduser() if root else default_root()


def find_file(name: str, split: str, root: str | os.PathLike | None = None) -> Path:
    """The ``.ts`` file of one split of ``ucr:NAME``/``uea:NAME`` (see the module docstring)."""
    archive, set_name = _parse_name(name)
    fname = f"{set_name}_{_SPLIT_FILES[split]}.ts"
    own = _data_root(root) / archive / set_name
    shipped = shipped_root()
    both = [f"{set_name}_{s}.ts" for s in _SPLIT_FILES.values()]
    for folder in (own, shipped / set_name if shipped else None):
        # both splits from one folder: never a train file of one copy with another's test
        if folder is not None and all((folder / f).is_file() for f in both):
            return folder / fname
    if any((own / f).is_file() for f in both):
        raise DataError(f"{name}: {own} needs both {' and '.join(both)}; add the missing one")
    if shipped is None:
        raise DataError(
            f"{name}: no {fname} in {own} and aeon is not installed; get the archive's "
            f"shipped sets with {INSTALL_HINT}, or put {set_name}_TRAIN.ts and "
            f"{set_name}_TEST.ts in {own}"
        )
    known = ", ".join(f"{archive}:{n}" for n in shipped_sets()[archive]) or "none"
    raise UnknownNameError(
        f"{name}: no {fname} in {own} or in aeon's files ({shipped}); shipped: {known}; "
        f"put {set_name}_TRAIN.ts and {set_name}_TEST.ts in {own} for another set"
    )


# -- values -----------------------------------------------------------------------------------
def _trimmed(ts: TsFile) -> list[np.ndarray]:
    """The series of ``ts`` (C x L) without their trailing steps missing in every channel."""
    return trim_missing_end(ts.series, str(ts.path))


def trim_missing_end(series: list[np.ndarray], source: str) -> list[np.ndarray]:
    """``series`` (each C x L, NaN where missing) without their trailing steps missing in every
    channel; a series with no value at all is a :class:`DataError` naming ``source``."""
    out = []
    for i, x in enumerate(series):
        observed = np.flatnonzero(~np.isnan(x).all(axis=0))
        if not len(observed):
            raise DataError(f"{source}: series {i + 1} has no values, only missing ones")
        out.append(x[:, : int(observed[-1]) + 1])
    return out


def series_tensor(
    trimmed: list[np.ndarray], length: int, *, normalize: bool = True
) -> torch.Tensor:
    """Trimmed series (each C x L_i, NaN where missing) as float32 N x C x ``length``: each
    z-normalised (or missing values set to 0 when not ``normalize``), then padded or cut at the
    end. The steps every series goes through, from an archive file or a file to predict."""
    rows = [
        fit_length(z_normalize(s) if normalize else np.nan_to_num(s, nan=0.0), length)
        for s in trimmed
    ]
    return torch.from_numpy(np.stack(rows).astype(np.float32))


def z_normalize(x: np.ndarray) -> np.ndarray:
    """Each channel of ``x`` (C x L, NaN where missing) to mean 0 and standard deviation 1
    (``n - 1`` divisor) over its observed values; constant channels and missing values -> 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = ~np.isnan(x)
        n = observed.sum(axis=1, keepdims=True)
        mean = np.where(observed, x, 0.0).sum(axis=1, keepdims=True) / np.maximum(n, 1)
        centered = np.where(observed, x - mean, 0.0)
        var = (centered**2).sum(axis=1, keepdims=True) / np.maximum(n - 1, 1)
        std = np.sqrt(var)
        # relative threshold: a channel whose spread is float noise around its level is constant
        flat = std <= 1e-8 * np.maximum(np.abs(mean), 1.0)
        return np.where(flat, 0.0, centered / np.where(flat, 1.0, std))


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` (C x L) padded at the end with zeros, or cut at the end, to ``length`` steps."""
    if x.shape[1] >= length:
        return x[:, :length]
    return np.pad(x, ((0, 0), (0, length - x.shape[1])))


def _class_order(labels: list[str]) -> list[str]:
    try:
        return sorted(labels, key=lambda s: (float(s), s))
    except ValueError:  # not all numbers: text order
        return sorted(labels)


def _read(name: str, split: str, root: str | os.PathLike | None) -> TsFile:
    ts = read_ts(find_file(name, split, root))
    archive, set_name = _parse_name(name)
    if _archive_of(ts) != archive:
        other = next(a for a in ARCHIVES if a != archive)
        raise UnknownNameError(
            f"{name}: {ts.path.name} holds {ARCHIVES[other]} series ({ts.channels} channel(s)); "
            f"load it as {other}:{set_name}"
        )
    return ts


def sequence_length(name: str, root: str | os.PathLike | None = None) -> int:
    """The length every series of ``name`` is padded or cut to: its longest train series."""
    path = find_file(name, "train", root)
    header = read_ts_header(path).header
    stated = header.get("serieslength", "")
    if header.get("equallength", "").lower() == "true" and stated.isdigit():
        return int(stated)  # read_ts checks this claim whenever the train split is loaded
    return max(s.shape[1] for s in _trimmed(read_ts(path)))


def load_sequences(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    length: int | None = None,
    normalize: bool | None = None,
) -> SequenceDataset:
    """One split of ``ucr:NAME`` or ``uea:NAME`` as a :class:`SequenceDataset` (see the module
    docstring for where the files come from and what is done to the values).

    ``length`` fixes the number of steps (default: the longest train series); ``normalize``
    z-normalises each series (``True``) or keeps the stored values (``False``; missing ones
    still become 0); the default is the archive's convention, :data:`ZNORM`."""
    if split not in _SPLIT_FILES:
        raise UnknownNameError(f"unknown split {split!r}; known: {', '.join(_SPLIT_FILES)}")
    if length is not None and length < 1:
        raise ConvzooError(f"length must be >= 1 steps, got {length}")
    ts = _read(name, split, root)
    if normalize is None:
        normalize = ZNORM[_parse_name(name)[0]]
    other = read_ts_header(find_file(name, "test" if split == "train" else "train", root))
    if set(other.class_labels) != set(ts.class_labels):
        raise DataError(
            f"{ts.path} and {other.path} declare different classes "
            f"({' '.join(ts.class_labels)} / {' '.join(other.class_labels)}); fix @classLabel"
        )
    trimmed = _trimmed(ts)
    if length is None:
        length = (
            max(s.shape[1] for s in trimmed) if split == "train" else sequence_length(name, root)
        )
    classes = _class_order(ts.class_labels)
    index = {c: i for i, c in enumerate(classes)}
    series = series_tensor(trimmed, length, normalize=normalize)
    labels = torch.tensor([index[label] for label in ts.labels], dtype=torch.int64)
    return SequenceDataset(
        series, labels, classes, name=name, split=split, source=str(ts.path), znorm=normalize
    )


@dataclass(frozen=True)
class SequenceSource:
    """``ucr:NAME``/``uea:NAME`` as a data source of :mod:`convzoo.data.sources` (what
    ``load_dataset`` and ``fetch_dataset`` call)."""

    name: str

    def fetch(self, root: Path, splits: tuple[str, ...] = ("train", "test"), download=True) -> Path:
        """The folder holding the files (read where they are: nothing is copied)."""
        paths = [find_file(self.name, s, root) for s in splits]  # each split must be there
        return paths[0].parent

    def load(self, root: Path, split: str, download: bool = True) -> SequenceDataset:
        return load_sequences(self.name, split, root)
