"""A finished ``convzoo reproduce`` folder written without training: run directories with the
files a run leaves, and ``reproduce.json``, for the report and results tests."""

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from convzoo.io import atomic_write_json
from convzoo.reproduce import Budget, Cell, get_profile
from convzoo.reproduce.runner import STATE, cell_command
from convzoo.train.rundir import ARTIFACTS
from convzoo.viz import plot_confusion

CLASSES = [f"class {i}" for i in range(10)]


def write_run(
    run_dir: Path, cell: Cell, acc: float, confusion: Path, extra: dict | None = None
) -> None:
    run_dir.mkdir(parents=True)
    config = {**cell.overrides(), "image_size": cell.budget.image_size or 28}
    config["environment"] = {"python": "3.11", "torch": "2.x", "platform": "test", "cuda": None}
    atomic_write_json(run_dir / "config.json", config)
    epochs = cell.budget.epochs or 10
    lines = ["epoch,loss,train_acc,test_loss,test_acc,lr,examples_per_sec"]
    for e in range(1, epochs + 1):
        a = acc * e / epochs
        lines.append(f"{e},{2.3 / e:.4f},{a:.4f},{2.3 / e:.4f},{a:.4f},0.1,{1000 * e}")
    (run_dir / "history.csv").write_text("\n".join(lines) + "\n")
    metrics = {"test_acc": acc, "elapsed_s": 12.5, "epochs_done": epochs, **(extra or {})}
    atomic_write_json(run_dir / "metrics.json", metrics)
    shutil.copy(confusion, run_dir / "confusion.png")
    for name in ARTIFACTS:  # the weights and checkpoint only need to exist here
        if not (run_dir / name).exists():
            (run_dir / name).write_bytes(b"x")


def write_table(out: Path, accs: dict[str, list[float]], profile: str = "cpu") -> Path:
    """``accs``: cell prefix (``lenet-d2l``) -> test accuracy per seed. Budgets are the
    profile's; a ``-best`` in the name marks a run whose weights were chosen on validation."""
    prof = get_profile(profile)
    confusion = out / "confusion-example.png"  # drawn once: matplotlib is slow on busy cores
    out.mkdir(parents=True)
    plot_confusion(torch.eye(10, dtype=torch.long) * 90 + 1, CLASSES, confusion)
    state = {"profile": profile, "cells": {}, "invocations": [
        {"argv": ["convzoo"], "started": "now", "load_start": "1.0 1.0 1.0", "load_end": "1.1"}
    ]}  # fmt: skip
    for prefix, values in accs.items():
        model, recipe = prefix.split("-")
        for seed, acc in enumerate(values):
            cell = Cell(model, recipe, seed, prof.budgets.get(model, Budget()))
            run_dir = out / "runs" / cell.name
            extra = {"weights": "best", "chosen_by": "val_acc", "best_epoch": 2}
            write_run(run_dir, cell, acc, confusion, extra if recipe == "fast" else None)
            state["cells"][cell.name] = {
                "model": model,
                "recipe": recipe,
                "seed": seed,
                "budget": asdict(cell.budget),
                "run_dir": f"runs/{cell.name}",
                "command": "convzoo " + " ".join(cell_command(cell, run_dir, "cpu", None)),
                "wall_s": 20.0,
                "load_start": "1.0 1.0 1.0",
                "load_end": "1.2 1.0 1.0",
                "status": "done",
            }
    (out / STATE).write_text(json.dumps(state))
    return out
