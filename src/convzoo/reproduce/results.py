"""What the cells of a table measured, gathered per model and recipe, and judged.

Read from the run directories alone (``config.json``, ``metrics.json``, ``history.csv``) and
from ``reproduce.json``: a report can be written again at any time, of a table half done too.
The accuracy of a cell is its ``metrics.json`` ``test_acc``: the test accuracy of the weights
that run kept, the last epoch's or, where the recipe holds out a validation split, the epoch
chosen on it (``"weights": "best"``); the report says which.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .book import BOOK_CODE_RUNS, BOOK_RESULTS, MODERN_MARGIN, BookResult, Comparison, compare_runs
from .profiles import Budget
from .runner import STATE, is_done


@dataclass
class CellResult:
    """One finished (or failed) training run."""

    name: str
    model: str
    recipe: str
    seed: int
    budget: Budget
    run_dir: Path
    command: str
    status: str
    record: dict[str, Any] = field(default_factory=dict)  #: its entry in reproduce.json
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return "test_acc" in self.metrics

    @property
    def weights(self) -> str:
        """Which weights ``test_acc`` belongs to, in words."""
        if self.metrics.get("weights") == "best":
            by = self.metrics.get("chosen_by", "validation")
            return f"best on {by} (epoch {self.metrics.get('best_epoch', '?')})"
        return "last epoch"

    @property
    def examples_per_sec(self) -> float:
        """Training examples per second, averaged over epochs (evaluation excluded)."""
        values = [v for v in self.history.get("examples_per_sec", []) if not math.isnan(v)]
        return statistics.fmean(values) if values else math.nan


@dataclass
class Row:
    """One model with one recipe: its cells (seeds) and how they compare."""

    model: str
    recipe: str
    budget: Budget
    cells: list[CellResult]
    book: BookResult | None
    params: int = 0
    gflops: float = math.nan  #: forward GFLOPs per image at the cell's input size
    baseline: Row | None = None  #: the d2l row at the same budget (for a modern row)

    @property
    def accs(self) -> list[float]:
        return [c.metrics["test_acc"] for c in self.cells if c.done]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accs) if self.accs else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (NaN for one seed)."""
        return statistics.stdev(self.accs) if len(self.accs) > 1 else math.nan

    @property
    def image_size(self) -> int:
        for c in self.cells:
            if c.config.get("image_size"):
                return int(c.config["image_size"])
        return self.budget.image_size or 0

    @property
    def comparable(self) -> bool:
        """The book's experiment (not reduced): its figure may be compared with ours."""
        return self.book is not None and not self.budget.reduced

    @property
    def verdict(self) -> str:
        """For a d2l row at the book's budget: inside / below / above the book's spread."""
        if self.recipe != "d2l" or not self.comparable or not self.accs:
            return ""
        return self.book.verdict(self.mean)  # type: ignore[union-attr]

    @property
    def against_book_code(self) -> Comparison | None:
        """For a d2l row at the book's budget with runs of the book's code to compare with
        (:data:`~convzoo.reproduce.book.BOOK_CODE_RUNS`): the two-sample verdict."""
        if self.recipe != "d2l" or not self.comparable:
            return None
        return compare_runs(self.accs, BOOK_CODE_RUNS.get(self.model, ()))

    @property
    def seeds_inside(self) -> int:
        if self.book is None:
            return 0
        return sum(self.book.verdict(a) == "inside" for a in self.accs)

    @property
    def late_range(self) -> tuple[float, float] | None:
        """The lowest and highest test accuracy of the last 3 epochs over all seeds: how much
        the last epoch's figure, the one the book prints, moves from epoch to epoch."""
        values = [v for c in self.cells if c.done for v in c.history.get("test_acc", [])[-3:]]
        values = [v for v in values if not math.isnan(v)]
        return (min(values), max(values)) if values else None

    @property
    def gain(self) -> float:
        """Points (x 100) over the d2l row at the same budget."""
        if self.baseline is None or not self.accs or not self.baseline.accs:
            return math.nan
        return 100 * (self.mean - self.baseline.mean)

    @property
    def gain_over_book(self) -> float:
        """Points (x 100) over the top of the book's spread, at the book's budget only."""
        if self.recipe == "d2l" or not self.comparable or not self.accs:
            return math.nan
        return 100 * (self.mean - self.book.high)  # type: ignore[union-attr]

    @property
    def goal_met(self) -> bool | None:
        """A modern row's goal: beat the book's best figure by 2 points at the book's budget,
        else the d2l cell by 2 points at the same budget. ``None`` for d2l rows."""
        if self.recipe == "d2l":
            return None
        points = self.gain_over_book if self.comparable else self.gain
        return None if math.isnan(points) else points >= 100 * MODERN_MARGIN

    @property
    def elapsed_s(self) -> float:
        values = [c.metrics.get("elapsed_s", math.nan) for c in self.cells if c.done]
        return statistics.fmean(values) if values else math.nan

    @property
    def examples_per_sec(self) -> float:
        values = [c.examples_per_sec for c in self.cells if c.done]
        return statistics.fmean(values) if values else math.nan


def read_history(path: Path) -> dict[str, list[float]]:
    """``history.csv`` as columns of floats (empty cells as NaN)."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    names = rows[0].keys() if rows else []
    return {k: [float(r[k]) if r[k] not in ("", None) else math.nan for r in rows] for k in names}


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_cells(out: Path) -> list[CellResult]:
    """Every cell ``reproduce.json`` has planned, with what its run directory holds."""
    state = _json(out / STATE)
    cells = []
    for name, rec in state.get("cells", {}).items():
        run_dir = out / rec.get("run_dir", f"runs/{name}")
        finished = is_done(run_dir)
        cells.append(
            CellResult(
                name=name,
                model=rec["model"],
                recipe=rec["recipe"],
                seed=int(rec["seed"]),
                budget=Budget(**rec.get("budget", {})),
                run_dir=run_dir,
                command=rec.get("command", ""),
                status="done" if finished else rec.get("status", "not run yet"),
                record=rec,
                metrics=_json(run_dir / "metrics.json") if finished else {},
                config=_json(run_dir / "config.json"),
                history=read_history(run_dir / "history.csv"),
            )
        )
    return cells


@cache
def size_of(model: str, options: str, image_size: int) -> tuple[int, float]:
    """Parameters and forward GFLOPs per 1-channel image of ``image_size`` pixels."""
    from ..models import create_model
    from ..summary import summary

    net = create_model(model, **json.loads(options))
    s = summary(net, (1, image_size, image_size))
    return s.total_params, s.flops / 1e9


def gather_rows(cells: list[CellResult]) -> list[Row]:
    """One row per (model, recipe), in the order the cells were planned; modern rows get the
    d2l row of their model as the baseline (same budget: the profile gives a model one)."""
    rows: dict[tuple[str, str], Row] = {}
    for c in cells:
        key = (c.model, c.recipe)
        if key not in rows:
            rows[key] = Row(c.model, c.recipe, c.budget, [], BOOK_RESULTS.get(c.model))
        rows[key].cells.append(c)
    for row in rows.values():
        baseline = rows.get((row.model, "d2l"))
        if row.recipe != "d2l" and baseline is not None and baseline.budget == row.budget:
            row.baseline = baseline
        options = next((c.config.get("model_options") for c in row.cells if c.config), {})
        if row.image_size:
            row.params, row.gflops = size_of(row.model, json.dumps(options or {}), row.image_size)
    return list(rows.values())
