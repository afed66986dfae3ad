"""``convzoo reproduce``: the chapter's results table, reproduced and then beaten.

- :mod:`.book`: what the book printed (its figures and their spread over builds);
- :mod:`.profiles`: the cells (model x recipe x seed) and their budgets, per profile, as data;
- :mod:`.runner`: runs the cells as ordinary training runs, skipping the finished ones and
  resuming the cut ones, with a progress line and the time left;
- :mod:`.results`: what the run directories measured, per model and recipe, judged against the
  book; :mod:`.report`: ``report.md`` and a self-contained ``report.html``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from .book import BOOK_RESULTS, MODERN_MARGIN, BookResult
from .profiles import PROFILES, Budget, Cell, Profile, get_profile
from .report import write_report
from .runner import run_cells

__all__ = [
    "BOOK_RESULTS",
    "MODERN_MARGIN",
    "PROFILES",
    "BookResult",
    "Budget",
    "Cell",
    "Profile",
    "default_out",
    "get_profile",
    "reproduce",
    "run_cells",
    "write_report",
]


def default_out(profile: str) -> Path:
    """``runs/reproduce-<profile>``: a fixed place, so the same command started again after an
    interruption continues the same table."""
    return Path("runs") / f"reproduce-{profile}"


def reproduce(
    profile: str = "cpu",
    *,
    models: list[str] | None = None,
    recipes: list[str] | None = None,
    seeds: int | None = None,
    device: str = "auto",
    out: str | os.PathLike | None = None,
    data_dir: str | None = None,
    in_process: bool = False,
    jobs: int | None = None,
    console: TextIO | None = None,
) -> tuple[list[str], Path, Path]:
    """Run the table's cells not yet done and write its report.

    Returns the names of the cells that failed and the paths of ``report.md`` and
    ``report.html``.
    """
    chosen = get_profile(profile)
    cells = chosen.cells(models, recipes, seeds)
    out = Path(out) if out is not None else default_out(chosen.name)
    failed = run_cells(
        chosen, cells, out, device=device, data_dir=data_dir, in_process=in_process,
        jobs=jobs, console=console,
    )  # fmt: skip
    md, page = write_report(out)
    return failed, md, page
