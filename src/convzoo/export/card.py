"""The model card: ``README.md`` in the run directory, rewritten by every export.

It says what the network is (model, data, recipe), how good it is (metrics.json: validation
figures first, then test), what it takes and gives (input spec, class order) and how to run
each exported file (onnxruntime, torch.export, TorchScript, convzoo). The exports of a run are
listed in ``exports.json`` beside it, so the card lists every one still present.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io import atomic_write_json, atomic_write_text
from ..train.meta import ModelMeta
from .formats import ExportResult

#: the card's first line: a README.md without it is the user's and is never overwritten
MARKER = "<!-- convzoo model card: written by `convzoo export`, rewritten by every export -->"
EXPORTS = "exports.json"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def card_path(run_dir: Path) -> Path:
    """``README.md``, unless a README.md that is not a card is there: then ``MODEL_CARD.md``."""
    readme = run_dir / "README.md"
    if readme.exists() and not readme.read_text(errors="replace").startswith(MARKER):
        return run_dir / "MODEL_CARD.md"
    return readme


def _relative(path: Path, run_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path.resolve())


def record_export(result: ExportResult, meta: ModelMeta, *, when: str) -> Path:
    """Add ``result`` to the run's ``exports.json`` (an entry per file; files since deleted
    are dropped) and rewrite the model card; returns the card's path."""
    run_dir = result.run_dir
    entry = {
        "file": _relative(result.path, run_dir),
        "format": result.format,
        "weights": result.weights,
        "description": result.description,
        "input": result.input,
        "max_abs_diff": result.max_abs_diff,
        "checked_batches": list(result.checked_batches),
        "bytes": result.path.stat().st_size,
        "exported": when,
    }
    old = _read_json(run_dir / EXPORTS)
    entries = [e for e in old if isinstance(e, dict)] if isinstance(old, list) else []
    entries = [e for e in entries if e.get("file") != entry["file"]] + [entry]
    entries = [e for e in entries if (run_dir / str(e.get("file"))).is_file()]
    atomic_write_json(run_dir / EXPORTS, entries)
    path = card_path(run_dir)
    atomic_write_text(path, model_card(meta, run_dir, entries))
    return path


def model_card(meta: ModelMeta, run_dir: Path, exports: list[dict[str, Any]]) -> str:
    config = _read_json(run_dir / "config.json") or {}
    metrics = _read_json(run_dir / "metrics.json") or {}
    parts = [
        MARKER,
        f"# {meta.model} on {meta.dataset or 'its data'}",
        _identity(meta, config),
        _metrics(metrics),
        _input(meta),
        _exports(exports),
        _loading(meta, exports),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _identity(meta: ModelMeta, config: dict[str, Any]) -> str:
    options = ", ".join(f"{k}={v}" for k, v in meta.model_options.items()) or "none"
    kind = f"zoo model, options: {options}" if meta.is_zoo else f"`{meta.module_class}`"
    data = f"{meta.dataset}" + (f" (subset {meta.subset})" if meta.subset else "")
    rows = [
        ("model", f"`{meta.model}` ({kind})"),
        ("data", f"{data}: {meta.num_classes} classes"),
    ]
    if config:
        rows.append(
            (
                "recipe",
                f"{config.get('recipe')}: {config.get('epochs')} "
                f"epoch{'s' * (config.get('epochs') != 1)}, batch "
                f"{config.get('batch_size')}, lr {config.get('lr')}, {config.get('optimizer')}, "
                f"{config.get('schedule')} schedule, augment '{config.get('augment') or 'none'}', "
                f"seed {config.get('seed')} (all settings: `config.json`)",
            )
        )
        env = config.get("environment") or {}
        rows.append(("trained", f"torch {env.get('torch')}, started {env.get('started')}"))
    rows.append(("tested at", f"{meta.precision}" + (", with flip TTA" if meta.tta else "")))
    return _table(("about", ""), rows)


def _metrics(metrics: dict[str, Any]) -> str:
    """Every figure of metrics.json: validation first (what chose the weights), then test."""
    if not metrics:
        return "## Metrics\n\nNo `metrics.json` in the run directory: the run did not finish."
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
    order = sorted(scalars, key=lambda k: (not k.startswith("val"), not k.startswith("test"), k))
    rows = [
        (k, f"{v:.4f}" if isinstance(v, float) else str(v))
        for k, v in [(k, scalars[k]) for k in order]
    ]
    text = "## Metrics (`metrics.json`)\n\n" + _table(("metric", "value"), rows)
    per_class = metrics.get("per_class_acc")
    if isinstance(per_class, dict) and per_class:
        rows = [(c, f"{a:.4f}") for c, a in per_class.items()]
        text += "\n\nPer-class test accuracy:\n\n" + _table(("class", "accuracy"), rows)
    return text


def _input(meta: ModelMeta) -> str:
    if meta.is_sequence:
        return _series_input(meta)
    c, h, w = meta.input_shape
    return (
        "## Input and output\n\n"
        f"- Input `images`: {meta.describe_input()}; images of other sizes are resized to "
        f"{h} x {w} first (bilinear, antialiased when shrinking), colour converted to "
        f"{'gray (ITU-R 601 luma)' if c == 1 else 'RGB'}.\n"
        f"- A `--with-preprocess` export takes uint8 N x {c} x {h} x {w} pixels (0-255) "
        f"instead and scales and normalizes them in the graph; resizing stays the caller's.\n"
        + _output(meta)
    )


def _series_input(meta: ModelMeta) -> str:
    return (
        "## Input and output\n\n"
        f"- Input `images` (the name every convzoo export gives its input): "
        f"{meta.describe_input()}. Padding is with zeros at the end.\n" + _output(meta)
    )


def _output(meta: ModelMeta) -> str:
    classes = ", ".join(f"{i} {name}" for i, name in enumerate(meta.classes))
    return (
        f"- Output `logits`: float32 N x {meta.num_classes}; softmax gives the class "
        f"probabilities. Classes in output order: {classes}."
    )


def _exports(exports: list[dict[str, Any]]) -> str:
    rows = []
    for e in exports:
        spec = e.get("input") or {}
        shape = " x ".join(str(s) for s in spec.get("shape", []))
        diff = e.get("max_abs_diff")
        checked = (
            f"{diff:.1e} (batch {', '.join(map(str, e.get('checked_batches', [])))})"
            if diff is not None
            else "not checked"
        )
        size = f"{e.get('bytes', 0) / 1e6:.1f} MB"
        rows.append(
            (
                f"`{e['file']}`",
                e.get("description", ""),
                e.get("weights", ""),
                f"{spec.get('dtype')} {shape}",
                size,
                checked,
                e.get("exported", ""),
            )
        )
    header = ("file", "format", "weights", "input", "size", "max abs diff to PyTorch", "exported")
    return "## Exported files (`exports.json`)\n\n" + _table(header, rows)


def _loading(meta: ModelMeta, exports: list[dict[str, Any]]) -> str:
    from .snippets import loading_snippets

    return "## How to load it\n\n" + loading_snippets(meta, exports)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)
