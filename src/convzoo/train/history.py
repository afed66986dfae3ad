"""Per-epoch training history: what ``fit`` returns, ``history.csv`` and ``curves.png``."""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog import MONITORS  # ``--monitor``: the validation figures, which way is better

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: columns of history.csv, in order (units in the names where they have one)
COLUMNS = (
    "epoch",
    "loss",
    "train_acc",
    "val_loss",
    "val_acc",
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
    #: the epoch (1-based) whose weights the model holds after training: the best by the
    #: monitored validation value, or the last epoch without a validation split
    chosen_epoch: int | None = None
    #: the last epoch's weights (CPU) when the model was given another epoch's
    last_state: dict[str, Any] | None = field(default=None, repr=False)

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

    def best(self, monitor: str = "val_acc") -> dict[str, float] | None:
        """The first epoch with the best ``monitor`` value (a validation figure, never a test
        one: choosing on the test set would make its figure optimistic); ``None`` without one."""
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, got {monitor!r}")
        valid = [r for r in self.records if not math.isnan(r[monitor])]
        if not valid:
            return None
        sign = 1.0 if MONITORS[monitor] == "max" else -1.0
        return max(valid, key=lambda r: sign * r[monitor])  # max keeps the first of ties

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

    def _repr_html_(self) -> str:
        """Jupyter's view: one row per epoch (the columns it measured) and the curves."""
        from ..display import html_table, png_img

        keys = [k for k in COLUMNS[:9] if any(not math.isnan(r[k]) for r in self.records)]
        rows = [[_cell(k, r[k]) for k in keys] for r in self.records]
        table = html_table(keys, rows, align="r" * len(keys), caption=self._caption())
        figure = png_img(self.plot()._repr_png_(), "loss and accuracy per epoch") if self else ""
        return table + figure

    def _caption(self) -> str:
        if not self.records:
            return "no epoch finished"
        elapsed = self.last["elapsed_s"]
        took = f" in {elapsed:.1f} s" if not math.isnan(elapsed) else ""
        chosen = f"; the model holds epoch {self.chosen_epoch}'s weights" * bool(self.chosen_epoch)
        return f"{len(self)} epoch{'s' * (len(self) != 1)}{took}{chosen}"

    def plot(self, path: str | os.PathLike | None = None, title: str | None = None) -> Figure:
        """Loss and accuracies per epoch, like the book's animator: a matplotlib Figure (a
        notebook shows it), also saved as a PNG at ``path`` when given."""
        from ..viz import plot_curves

        return plot_curves(self, path, title=title)


def _cell(key: str, v: float) -> str:
    if math.isnan(v):
        return ""
    if key == "epoch":
        return str(int(v))
    return f"{v:,.0f}" if key == "examples_per_sec" else f"{v:.4g}"


def _fmt(v: float) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}" if isinstance(v, float) else str(v)
