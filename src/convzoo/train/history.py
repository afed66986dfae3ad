"""Per-epoch training history: what ``fit`` returns, ``history.csv`` and ``curves.png``."""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: columns of history.csv, in order (units in the names where they have one)
COLUMNS = (
    "epoch",
    "loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "lr",
    "examples_per_sec",
    "epoch_time_s",
    "eval_time_s",
    "elapsed_s",
)


@dataclass
class History:
    """One record per finished epoch (a dict with :data:`COLUMNS` as keys)."""

    records: list[dict[str, float]] = field(default_factory=list)
    #: the run directory it was saved in, if any
    run_dir: Path | None = None

    def append(self, record: dict[str, Any]) -> None:
        self.records.append({k: record.get(k, math.nan) for k in COLUMNS})

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, float]:
        return self.records[i]

    def column(self, name: str) -> list[float]:
        return [r[name] for r in self.records]

    @property
    def last(self) -> dict[str, float]:
        return self.records[-1]

    def best(self, key: str = "test_acc") -> dict[str, float] | None:
        valid = [r for r in self.records if not math.isnan(r[key])]
        return max(valid, key=lambda r: r[key]) if valid else None

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in self.records:
            w.writerow({k: _fmt(r[k]) for k in COLUMNS})
        return buf.getvalue()

    def state_dict(self) -> list[dict[str, float]]:
        return [dict(r) for r in self.records]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> History:
        h = cls()
        for r in records:
            h.append(r)
        return h

    def plot(self, path: str | os.PathLike | None = None, title: str | None = None) -> Figure:
        """Loss and accuracies per epoch, like the book's animator: a matplotlib Figure (a
        notebook shows it), also saved as a PNG at ``path`` when given."""
        from ..viz import plot_curves

        return plot_curves(self, path, title=title)


def _fmt(v: float) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}" if isinstance(v, float) else str(v)
