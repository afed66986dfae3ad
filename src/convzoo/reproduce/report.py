"""The report of a table: ``report.md`` and a self-contained ``report.html``.

Both are rendered from one list of blocks (heading, paragraph, table, image, code) by plain
string building: Markdown for reading in a repository, HTML with every image inlined as base64
and its style in the page, so the file can be mailed or opened offline and fetches nothing.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_write_text
from .book import MODERN_MARGIN
from .profiles import get_profile
from .results import CellResult, Row, gather_rows, read_cells
from .runner import STATE, minutes


@dataclass
class Block:
    kind: str  #: "h2", "p", "table", "img", "gallery" (images side by side), "code"
    text: str = ""
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    path: Path | None = None  #: an image's file
    images: tuple[tuple[Path, str], ...] = ()  #: a gallery's files and captions


# -- numbers as words ---------------------------------------------------------------------------
def _acc(row: Row) -> str:
    if not row.accs:
        return "not done"
    n = len(row.accs)
    spread = "" if math.isnan(row.std) else f" ± {row.std:.4f}"
    return f"{row.mean:.4f}{spread} ({n} seed{'s' if n > 1 else ''})"


def _points(value: float) -> str:
    return "" if math.isnan(value) else f"{value:+.1f}"


def _gain(row: Row) -> str:
    if row.recipe == "d2l":
        return ""
    parts = []
    if not math.isnan(row.gain):
        parts.append(f"{_points(row.gain)} vs d2l")
    if not math.isnan(row.gain_over_book):
        parts.append(f"{_points(row.gain_over_book)} vs the book's best")
    goal = {True: "goal met", False: "goal NOT met", None: ""}[row.goal_met]
    return "; ".join(parts) + (f" ({goal})" if goal else "")


def _verdict(row: Row) -> str:
    """Against the book's code's runs where there are some (a two-sample test), else against
    the printed range; the range is always given beside it."""
    if not row.verdict:
        return ""
    text = f"{row.verdict} the printed range ({row.seeds_inside}/{len(row.accs)} seeds inside"
    late = row.late_range
    if late is not None:  # the figure the book prints is a noisy one: say how noisy
        text += f"; last 3 epochs {late[0]:.3f}-{late[1]:.3f}"
    text += ")"
    test = row.against_book_code
    return f"{test.describe()}; {text}" if test is not None else text


def _weights(row: Row) -> str:
    return ", ".join(sorted({c.weights.split(" (")[0] for c in row.cells if c.done}))


def _num(value: float, fmt: str) -> str:
    return "" if math.isnan(value) else format(value, fmt)


# -- sections ---------------------------------------------------------------------------------
def book_table(rows: list[Row]) -> Block:
    headers = (
        "network", "recipe", "test accuracy", "weights", "book: EN / ZH (spread)", "verdict",
        "modern gain (points)", "params", "GFLOPs", "train time", "examples/sec (book, V100)",
    )  # fmt: skip
    body = tuple(
        (
            f"{r.model} @{r.image_size}px",
            r.recipe,
            _acc(r),
            _weights(r),
            f"{r.book.en:.3f} / {r.book.zh:.3f} ({r.book.low:.3f}-{r.book.high:.3f})"
            if r.book
            else "",
            _verdict(r),
            _gain(r),
            f"{r.params:,}",
            _num(r.gflops, ".3f"),
            minutes(r.elapsed_s) if not math.isnan(r.elapsed_s) else "",
            f"{_num(r.examples_per_sec, ',.0f')} ({r.book.examples_per_sec:,.0f})"
            if r.book
            else _num(r.examples_per_sec, ",.0f"),
        )
        for r in rows
    )
    return Block("table", headers=headers, rows=body)


def reduced_table(rows: list[Row]) -> Block:
    headers = (
        "network", "budget", "recipe", "test accuracy", "weights", "modern gain (points)",
        "params", "GFLOPs", "train time", "examples/sec",
    )  # fmt: skip
    body = tuple(
        (
            r.model,
            r.budget.describe(r.model, r.recipe).removeprefix("reduced: "),
            r.recipe,
            _acc(r),
            _weights(r),
            _gain(r),
            f"{r.params:,}",
            _num(r.gflops, ".3f"),
            minutes(r.elapsed_s) if not math.isnan(r.elapsed_s) else "",
            _num(r.examples_per_sec, ",.0f"),
        )
        for r in rows
    )
    return Block("table", headers=headers, rows=body)


def curves(rows: list[Row], out: Path) -> list[Block]:
    """One picture per model, its recipes overlaid (every seed a line)."""
    from ..viz import plot_runs

    blocks = []
    for model in dict.fromkeys(r.model for r in rows):
        runs = [
            (r.recipe, c.history)
            for r in rows
            if r.model == model
            for c in r.cells
            if c.history.get("epoch")
        ]
        if runs:
            path = plot_runs(runs, out / "curves" / f"{model}.png", title=f"{model}: per epoch")
            blocks.append(Block("img", text=f"{model}: loss and accuracy per epoch", path=path))
    return blocks


def confusions(rows: list[Row]) -> Block:
    """The test set's confusion matrix of each row's first seed, side by side."""
    images = []
    for r in rows:
        first = next((c for c in r.cells if c.done), None)
        if first is not None and (first.run_dir / "confusion.png").exists():
            text = f"{r.model}, {r.recipe} recipe, seed {first.seed}"
            images.append((first.run_dir / "confusion.png", text))
    return Block("gallery", images=tuple(images))


def machine(cells: list[CellResult], state: dict) -> Block:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:  # not convzoo.__version__: the package's top level is a layer above this one
        ours = version("convzoo")
    except PackageNotFoundError:
        ours = "not installed"
    env = next((c.config.get("environment") for c in cells if c.config), None) or {}
    cpu = ""
    if Path("/proc/cpuinfo").exists():
        names = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln]
        cpu = names[0].split(":", 1)[1].strip() if names else ""
    loads = [
        f"{i.get('started', '?')}: {i.get('load_start', '?')} -> {i.get('load_end', 'cut')}"
        for i in state.get("invocations", [])
    ]
    rows = (
        ("CPU", f"{cpu} ({os.cpu_count()} cores visible)"),
        ("GPU", str(env.get("cuda") or "none")),
        ("platform", env.get("platform") or platform.platform()),
        ("python / torch / convzoo", f"{env.get('python')} / {env.get('torch')} / {ours}"),
        ("report written with torch", torch.__version__),
        ("load average (1, 5, 15 min) at start -> end of each invocation", "; ".join(loads)),
    )
    return Block("table", headers=("", ""), rows=rows)


def cell_table(cells: list[CellResult]) -> Block:
    body = tuple(
        (
            c.name,
            f"{c.metrics['test_acc']:.4f}" if c.done else c.status,
            minutes(c.record["wall_s"]) if "wall_s" in c.record else "",
            minutes(c.record["cpu_s"]) if "cpu_s" in c.record else "",
            f"{c.record.get('load_start', '')} -> {c.record.get('load_end', '')}",
            c.command,
        )
        for c in cells
    )
    headers = ("cell", "test acc", "wall time", "CPU time", "load at start -> end", "command")
    return Block("table", headers=headers, rows=body)


def verdicts(rows: list[Row]) -> Block:
    """One line per comparison the table makes: the d2l cells against the book, the modern
    recipe against d2l (or the book's best figure), and the best network."""
    lines = []
    for r in rows:
        if r.verdict:
            lines.append(f"{r.model} d2l: {_verdict(r)}")
        if r.goal_met is not None:
            against = "the book's best figure" if r.comparable else "d2l at the same budget"
            points = r.gain_over_book if r.comparable else r.gain
            lines.append(
                f"{r.model} {r.recipe} beats {against} by {MODERN_MARGIN * 100:.0f} points: "
                f"{'yes' if r.goal_met else 'NO'} ({_points(points)})"
            )
    best = max((r for r in rows if r.accs), key=lambda r: r.mean, default=None)
    if best is not None:
        lines.append(f"best network: {best.model} ({best.recipe}) at {best.mean:.4f} test accuracy")
    return Block("code", text="\n".join(lines))


def timing(cells: list[CellResult], state: dict) -> str:
    """The table's wall time (the invocations, start to end), and the CPU time of its cells:
    on shared cores the first says how busy the machine was, the second what the work cost."""
    spans = [
        _dt.datetime.fromisoformat(i["ended"]) - _dt.datetime.fromisoformat(i["started"])
        for i in state.get("invocations", [])
        if i.get("ended") and i.get("started")
    ]
    wall = sum(s.total_seconds() for s in spans)
    cpu = sum(c.record.get("cpu_s", 0.0) for c in cells)
    jobs = sorted({i.get("jobs", 1) for i in state.get("invocations", [])})
    return (
        f"Wall time {minutes(wall)} over {len(spans)} run(s) of convzoo reproduce "
        f"({'/'.join(map(str, jobs))} cell(s) at once); the cells used {minutes(cpu)} of CPU "
        f"time (process start to exit, all threads)."
    )


def blocks_of(out: Path) -> tuple[str, list[Block]]:
    state = json.loads((out / STATE).read_text())
    profile = get_profile(state["profile"])
    cells = read_cells(out)
    rows = gather_rows(cells)
    done = sum(c.done for c in cells)
    title = f"The book's CNN table, reproduced: the {profile.name} profile"
    full = [r for r in rows if not r.budget.reduced]
    reduced = [r for r in rows if r.budget.reduced]
    blocks = [
        Block("p", f"{profile.about[:1].upper()}{profile.about[1:]}. {done} of {len(cells)} "
                   f"cells done. {timing(cells, state)}"),
        Block("p", "Test accuracy is the mean ± standard deviation over seeds, on the whole "
                   "10,000-image test set, of the weights named in the weights column (the "
                   "last epoch's, or where the recipe holds out a validation split the epoch "
                   "chosen on it, never on the test set)."),
    ]  # fmt: skip
    if full:
        blocks += [Block("h2", "At the book's budget"), book_table(full)]
    if reduced:
        blocks += [
            Block("h2", "At a reduced budget (not the book's experiment)"),
            Block("p", "These cells train less than the book did (smaller images, fewer "
                       "epochs, part of the training set), so their accuracies are not the "
                       "book's and are not compared with its figures: the modern recipe is "
                       "compared with the d2l recipe at the same budget instead."),
            reduced_table(reduced),
        ]  # fmt: skip
    blocks += [Block("h2", "In one line each"), verdicts(rows)]
    blocks += [Block("h2", "Curves"), *curves(rows, out)]
    blocks += [Block("h2", "Confusion matrices (test set)"), confusions(rows)]
    blocks += [Block("h2", "Machine and versions"), machine(cells, state)]
    blocks += [
        Block("h2", "Every cell, and the command that redoes it"),
        Block("p", "Each cell is an ordinary run directory under runs/; paths are relative to "
                   "the folder convzoo reproduce was started in. Run again as it stands, a "
                   "command finishes its cell (or re-evaluates a finished one); with another "
                   "--out it trains the cell again from scratch."),
        cell_table(cells),
    ]  # fmt: skip
    return title, blocks


# -- rendering --------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, blocks: list[Block], out: Path) -> str:
    lines = [f"# {title}", ""]
    for b in blocks:
        if b.kind in ("h2", "h3"):
            lines += [f"{'#' * int(b.kind[1])} {b.text}", ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "code":
            lines += ["```", b.text, "```", ""]
        elif b.kind == "img" and b.path is not None:
            lines += [f"![{b.text}]({b.path.relative_to(out).as_posix()})", ""]
        elif b.kind == "gallery":
            lines += [f"![{text}]({path.relative_to(out).as_posix()})" for path, text in b.images]
            lines.append("")
        elif b.kind == "table":
            lines.append("| " + " | ".join(map(_md_cell, b.headers)) + " |")
            lines.append("|" + "---|" * len(b.headers))
            lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in b.rows]
            lines.append("")
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td code { font-size: 0.85em; }
figure { margin: 1em 0; }
img { max-width: 100%; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; }
.gallery figure { width: 380px; margin: 0; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; }
"""


def _inline_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(title: str, blocks: list[Block]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for b in blocks:
        if b.kind in ("h2", "h3"):
            parts.append(f"<{b.kind}>{e(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{e(b.text)}</p>")
        elif b.kind == "code":
            parts.append(f"<pre>{e(b.text)}</pre>")
        elif b.kind == "img" and b.path is not None:
            parts.append(_figure(b.path, b.text))
        elif b.kind == "gallery":
            figures = "".join(_figure(path, text) for path, text in b.images)
            parts.append(f'<div class="gallery">{figures}</div>')
        elif b.kind == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in b.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in r) + "</tr>" for r in b.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _figure(path: Path, caption: str) -> str:
    e = html.escape
    return (
        f'<figure><img src="{_inline_png(path)}" alt="{e(caption)}">'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )


def _html_cell(text: str) -> str:
    if text.startswith("convzoo "):  # commands in monospace
        return f"<code>{html.escape(text)}</code>"
    return html.escape(text)


def write_report(out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (and the curves they show) into ``out``."""
    out = Path(out)
    title, blocks = blocks_of(out)
    md, page = out / "report.md", out / "report.html"
    atomic_write_text(md, to_markdown(title, blocks, out))
    atomic_write_text(page, to_html(title, blocks))
    return md, page
