"""The run directory: naming it, what it holds once training ends, and resuming from it.

``runs/<time>-<model>/`` (or ``--out DIR``): ``config.json`` (every resolved setting and the
environment), ``checkpoint.pt`` (written by :class:`~convzoo.train.callbacks.Checkpointer`),
``history.csv`` and ``curves.png`` (per epoch), ``best.safetensors`` (the weights of the best
epoch by the monitored validation value, with a validation split), and at the end
``model.safetensors`` (the last epoch's weights), ``metrics.json`` and ``confusion.png``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from ..data.dataset import ImageDataset
from ..errors import CheckpointError, ConvzooError
from ..io import atomic_write_json, load_checkpoint
from .callbacks import Checkpointer
from .config import ConfigError, TrainConfig
from .history import History

#: fields a resumed run may change (they do not alter what is computed)
RESUMABLE_CHANGES = {
    "epochs",
    "device",
    "ckpt_every",
    "tensorboard",
    "patience",
    "out",
    "test_every",
}
#: what a finished run directory holds, as the last line of a run names it
ARTIFACTS = (
    "model.safetensors",
    "best.safetensors",
    "checkpoint.pt",
    "history.csv",
    "curves.png",
    "confusion.png",
    "metrics.json",
)


def make_run_dir(cfg: TrainConfig, *, reuse: bool = False) -> Path:
    """A new run directory. ``reuse``: a convzoo run directory without a checkpoint (an attempt
    that died before its first one, restarted by ``--auto-resume``) is started over."""
    if cfg.out:
        path = Path(cfg.out)
        if path.exists() and any(path.iterdir()):
            if reuse and (path / "config.json").exists():
                pass
            elif (path / Checkpointer.FILENAME).exists():
                raise ConvzooError(
                    f"{path} already holds a run; resume it with --resume {path} "
                    f"or choose another --out"
                )
            raise ConvzooError(f"{path} exists and is not empty; choose another --out")
    else:
        path = default_run_dir(cfg.model)
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_run_dir(name: str) -> Path:
    """``runs/<time>-<name>``, not yet taken (created by :func:`make_run_dir`)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{stamp}-{name}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{stamp}-{name}-{n}"
    return path


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    atomic_write_json(run_dir / "config.json", {**cfg.to_dict(), "environment": environment()})


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "argv": sys.argv,
    }


# -- at the end of a run ------------------------------------------------------------------------
def final_metrics(
    history: History,
    test_eval: dict[str, Any],
    classes: list[str],
    chosen: dict[str, float] | None,
    monitor: str,
) -> dict:
    """metrics.json: the test figures of the weights the model holds, which weights those are
    and how they were chosen, and the last epoch's figures beside them."""
    metrics: dict[str, Any] = {"epochs_done": len(history)}
    if history.records:
        metrics.update({k: history.last[k] for k in ("loss", "train_acc", "elapsed_s")})
    if chosen is not None:
        metrics.update(
            weights="best",
            chosen_by=monitor,
            best_epoch=int(chosen["epoch"]),
            val_acc=chosen["val_acc"],
            val_loss=chosen["val_loss"],
        )
    else:
        metrics.update(weights="last", chosen_by=None)
    if test_eval:
        metrics.update(
            test_acc=test_eval["acc"], test_loss=test_eval["loss"], test_examples=test_eval["count"]
        )
        cm = test_eval.get("confusion")
        if cm is not None:
            per_class = (cm.diag().double() / cm.sum(1).clamp_min(1).double()).tolist()
            metrics["per_class_acc"] = dict(zip(classes, per_class))
            metrics["confusion"] = cm.tolist()
    if history.records:
        last = history.last
        keys = ("val_acc", "val_loss", "test_acc", "test_loss")
        metrics["last"] = {"epoch": int(last["epoch"]), **{k: last[k] for k in keys}}
    return metrics


def result_line(metrics: dict[str, Any]) -> str:
    """The run's last word: the test accuracy, and whose weights it belongs to."""
    if "test_acc" not in metrics:
        return f"trained {metrics['epochs_done']} epochs (no test set)"
    acc = f"test acc {metrics['test_acc']:.4f}"
    if metrics["weights"] == "last":
        return f"{acc} (last epoch's weights; no validation split, nothing chosen)"
    last = metrics["last"]
    monitor = metrics["chosen_by"]
    line = (
        f"{acc} with the weights of epoch {metrics['best_epoch']} of {metrics['epochs_done']}, "
        f"chosen on {monitor} {metrics[monitor]:.4f} (best.safetensors)"
    )
    if metrics["best_epoch"] != last["epoch"] and not math.isnan(last["test_acc"]):
        line += f"; last epoch: test acc {last['test_acc']:.4f}"  # (untested: --test-every)
    return line


def write_artifacts(
    run_dir: Path,
    meta: dict,
    metrics: dict,
    test_eval: dict,
    test_data: ImageDataset | None,
) -> None:
    from ..viz import plot_confusion

    atomic_write_json(run_dir / "metrics.json", metrics)
    if test_eval.get("confusion") is not None and test_data is not None:
        which = "last epoch" if metrics["weights"] == "last" else f"epoch {metrics['best_epoch']}"
        plot_confusion(
            test_eval["confusion"],
            test_data.classes,
            run_dir / "confusion.png",
            title=f"{meta['model']} on {meta['dataset']} test set, {which} "
            f"(accuracy {test_eval['acc']:.4f})",
        )


# -- resuming ---------------------------------------------------------------------------------
def read_resume_state(
    cfg: TrainConfig, resume: str | Path | None, auto_resume: bool
) -> tuple[Path | None, dict | None]:
    """The run directory to resume and its checkpoint, or ``(None, None)`` for a new run.

    ``auto_resume``: resume ``cfg.out`` when it holds a checkpoint (the same command, re-run by
    ``torchrun --max-restarts`` after a failure, continues where the group stopped).
    """
    if resume is None and auto_resume and (Path(cfg.out) / Checkpointer.FILENAME).exists():
        resume = cfg.out
    if resume is None:
        return None, None
    run_dir = Path(resume)
    state = load_checkpoint(run_dir / Checkpointer.FILENAME)
    for stale in run_dir.glob(".*.tmp"):  # a save interrupted by a crash: never complete
        stale.unlink(missing_ok=True)
    if state.get("format") != "convzoo-checkpoint":
        raise CheckpointError(f"{run_dir / Checkpointer.FILENAME} is not a convzoo checkpoint")
    if auto_resume:  # the command may change only what does not alter the computation
        apply_resume_changes(TrainConfig.from_dict(state["config"]), cfg.to_dict(), run_dir)
    return run_dir, state


def load_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConvzooError(f"{run_dir} is not a convzoo run directory (no config.json)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ConvzooError(f"{path} is not valid JSON; the run cannot be resumed") from None
    return TrainConfig.from_dict(raw)


def resume_config(run_dir: str | Path, changes: dict[str, Any]) -> TrainConfig:
    """The saved config of ``run_dir`` with the allowed ``changes``; others are refused."""
    return apply_resume_changes(load_run_config(run_dir), changes, run_dir)


def apply_resume_changes(
    cfg: TrainConfig, changes: dict[str, Any], run_dir: str | Path
) -> TrainConfig:
    saved = cfg.to_dict()
    for key, value in changes.items():
        if key in ("recipe",) and value == saved.get(key):
            continue
        if saved.get(key) != value and key not in RESUMABLE_CHANGES:
            raise ConfigError(
                f"cannot resume {run_dir} with {key}={value!r}: the run was started with "
                f"{key}={saved.get(key)!r}; start a new run instead"
            )
    cfg = dataclasses.replace(cfg, **{k: v for k, v in changes.items() if k in RESUMABLE_CHANGES})
    cfg.validate()
    return cfg


def world_size_note(state: dict | None, world_size: int, batch_size: int) -> str:
    """A resume at an epoch boundary with another world size is allowed (mid-epoch it is
    refused): say that the global batch, hence the steps per epoch, change."""
    saved = int(state["trainer"].get("world_size", 1)) if state is not None else world_size
    if saved == world_size:
        return ""
    return (
        f"\nnote: the checkpoint was written by {saved} process(es), resumed by {world_size}: "
        f"the remaining epochs use a global batch of {batch_size * world_size} "
        f"(was {batch_size * saved}); the lr schedule continues from its step count"
    )
