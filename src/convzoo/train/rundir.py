"""The run directory: naming it, what it holds once training ends, and resuming from it.

``runs/<time>-<model>/`` (or ``--out DIR``): ``config.json`` (every resolved setting and the
environment), ``checkpoint.pt`` (written by :class:`~convzoo.train.callbacks.Checkpointer`),
``history.csv`` and ``curves.png`` (per epoch), ``best.safetensors`` (the weights of the best
epoch by the monitored validation value, with a validation split), and at the end
``model.safetensors`` (the last epoch's weights), ``metrics.json`` and ``confusion.png``.
"""

from __future__ import annotations

import contextlib
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
from ..data.sources import absolute_name
from ..errors import CheckpointError, ConvzooError
from ..io import atomic_write_json, load_checkpoint
from ..runtime import resolve_device
from .callbacks import Checkpointer
from .config import ConfigError, TrainConfig
from .history import History
from .meta import refuse_python_network
from .runlock import LOCK_NAME, RunLock, check_not_in_use

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


def make_run_dir(
    cfg: TrainConfig, *, reuse: bool = False, locks: contextlib.ExitStack | None = None
) -> Path:
    """A new run directory, locked for this run when ``locks`` is given (it holds the lock
    until closed). ``reuse``: a run directory without a checkpoint (an attempt that died
    before its first one, restarted by ``--auto-resume``) is started over."""
    path = Path(cfg.out) if cfg.out else default_run_dir(cfg.model)
    if path.exists() and not path.is_dir():
        raise ConvzooError(f"--out {path} is a file, not a folder; choose another --out")
    if path.is_dir():  # before creating anything there: it may be someone else's folder
        check_not_in_use(path)
        refuse_taken(path, reuse)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConvzooError(
            f"cannot create the run directory {path} ({e.strerror or e}); choose another --out"
        ) from None
    if locks is not None:
        locks.enter_context(RunLock(path))
        refuse_taken(path, reuse)  # again: another run may have started there meanwhile
        for stale in _config_tmp(path) if reuse else ():
            stale.unlink(missing_ok=True)  # ours: locked, and never complete
    return path


def _config_tmp(path: Path) -> list[Path]:
    """What a start killed while writing its first file, config.json, leaves."""
    return list(path.glob(".config.json.*.tmp"))


def refuse_taken(path: Path, reuse: bool) -> None:
    """Refuse a folder holding a run or other files (a run without a checkpoint may be
    ``reuse``d)."""
    stale = _config_tmp(path) if reuse else []
    entries = [e for e in path.iterdir() if e.name != LOCK_NAME and e not in stale]
    if not entries:
        return
    if (path / Checkpointer.FILENAME).exists():
        raise ConvzooError(
            f"{path} already holds a run; resume it with --resume {path} or choose another --out"
        )
    if (path / "config.json").exists():
        if reuse:
            return
        raise ConvzooError(
            f"{path} holds a run that stopped before its first checkpoint; start it over with "
            f"--resume {path} (or the same command with --auto-resume), or choose another --out"
        )
    raise ConvzooError(f"{path} exists and is not empty; choose another --out")


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
        n = metrics["epochs_done"]
        return f"trained {n} epoch{'s' * (n != 1)} (no test set)"
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

    if test_eval.get("confusion") is not None and test_data is not None:
        which = "last epoch" if metrics["weights"] == "last" else f"epoch {metrics['best_epoch']}"
        plot_confusion(
            test_eval["confusion"],
            test_data.classes,
            run_dir / "confusion.png",
            title=f"{meta['model']} on {meta['dataset']} test set, {which} "
            f"(accuracy {test_eval['acc']:.4f})",
        )
    atomic_write_json(run_dir / "metrics.json", metrics)  # the last file: the run is finished


# -- resuming ---------------------------------------------------------------------------------
class RunFinished(ConvzooError):
    """A resume of a run whose every file is written: nothing is left to do."""


def read_resume_state(
    cfg: TrainConfig,
    resume: str | Path | None,
    auto_resume: bool,
    locks: contextlib.ExitStack | None = None,
    rebuild: bool = True,
) -> tuple[Path | None, dict | None]:
    """The run directory to resume and its checkpoint, ``(run_dir, None)`` for a run that
    stopped before its first checkpoint (started over there), or ``(None, None)`` for a new run.

    ``auto_resume``: resume ``cfg.out`` when it holds a checkpoint (the same command, re-run by
    ``torchrun --max-restarts`` after a failure, continues where the group stopped). The run
    directory is locked (``locks``) before its checkpoint is read. ``rebuild``: the network
    is to be rebuilt by name (no module handed over), which a network defined in Python cannot.
    """
    if resume is None and auto_resume and (Path(cfg.out) / Checkpointer.FILENAME).exists():
        resume = cfg.out
    if resume is None:
        return None, None
    run_dir = Path(resume)
    if locks is not None and run_dir.is_dir():
        locks.enter_context(RunLock(run_dir))
    path = run_dir / Checkpointer.FILENAME
    if not path.exists() and (run_dir / "config.json").is_file():
        return run_dir, None
    state = load_checkpoint(path)
    for stale in run_dir.glob(".*.tmp"):  # a save interrupted by a crash: never complete
        stale.unlink(missing_ok=True)
    if state.get("format") != "convzoo-checkpoint" or not isinstance(state.get("trainer"), dict):
        raise CheckpointError(f"{path} is not a convzoo checkpoint")
    check_same_run(state, cfg, path)
    if rebuild:  # before "finished": resuming such a run never works, whatever --epochs says
        refuse_python_network(state.get("meta") or {}, run_dir)
    if auto_resume:  # the command may change only what does not alter the computation
        changes = with_saved_settings(cfg, state["config"]).to_dict()
        apply_resume_changes(TrainConfig.from_dict(state["config"]), changes, run_dir)
    if is_finished(run_dir, state, cfg):
        raise RunFinished(
            f"{run_dir} is finished (epoch {int(state['trainer']['epoch'])} done, its weights "
            f"and metrics saved); to train it longer, resume it with --epochs N "
            f"(more than {cfg.epochs})"
        )
    return run_dir, state


def with_saved_settings(cfg: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """``cfg`` computing as the saved run did: where it leaves the precision or the memory
    format to be chosen (``auto``), the run's choice, so that it resumes bitwise."""
    values = {}
    if cfg.precision == "auto" and saved.get("precision") not in (None, "auto"):
        values["precision"] = saved["precision"]
    if cfg.channels_last is None and saved.get("channels_last") is not None:
        values["channels_last"] = saved["channels_last"]
    return dataclasses.replace(cfg, **values)


def check_same_run(state: dict, cfg: TrainConfig, path: Path) -> None:
    """Refuse a checkpoint another run wrote (copied over this one's): it would not fit."""
    try:
        saved = TrainConfig.from_dict(state["config"]).to_dict()
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} is not a convzoo checkpoint (no readable config)") from None
    ours = with_saved_settings(cfg, saved).to_dict()
    differ = [k for k in saved if saved[k] != ours[k] and k not in RESUMABLE_CHANGES]
    if differ and not (set(differ) <= {"recipe"}):
        k = differ[0]
        raise CheckpointError(
            f"{path} belongs to another run ({k}={saved[k]!r} there, {ours[k]!r} in this run's "
            f"config.json); put this run's own checkpoint.pt back, or resume the run it came from"
        )


def is_finished(run_dir: Path, state: dict, cfg: TrainConfig) -> bool:
    """Whether ``run_dir``'s last files were written after the checkpoint ``state`` and no
    more epochs are asked for (``metrics.json`` is the last file a run writes)."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        done = int(metrics["epochs_done"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    trainer = state["trainer"]
    asked_more = cfg.epochs > int(state["config"].get("epochs", cfg.epochs))
    return int(trainer["step"]) == 0 and int(trainer["epoch"]) == done and not asked_more


def load_trainer_state(trainer: Any, state: dict, path: Path) -> None:
    """``trainer.load_state_dict`` with a checkpoint that does not fit as one line."""
    try:
        trainer.load_state_dict(state["trainer"])
        steps = len(trainer.train_loader)
        if not (0 <= trainer.step <= steps and trainer.epoch >= 0 and trainer.global_step >= 0):
            raise ValueError(
                f"epoch {trainer.epoch} step {trainer.step} of {steps} steps an epoch, global "
                f"step {trainer.global_step}"
            )
        numbers = (int, float)
        records = trainer.history.records
        if len(records) != trainer.epoch or not all(
            isinstance(v, numbers) for r in records for v in r.values()
        ):
            raise ValueError(f"a history of {len(records)} epochs that are not all numbers")
    except ConvzooError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise CheckpointError(
            f"{path} does not fit this run ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:160]}); it was damaged or written by another run: put "
            f"the run's own checkpoint.pt back, or start a new run"
        ) from None


def resume_command(run_dir: Path) -> str:
    """How to resume ``run_dir``: fine-tuning runs (with ``finetune.json``) have their own."""
    command = "finetune" if (run_dir / "finetune.json").exists() else "train"
    return f"convzoo {command} --resume {run_dir}"


def load_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConvzooError(f"{run_dir} is not a convzoo run directory (no config.json)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ConvzooError(f"{path} is not valid JSON; the run cannot be resumed") from None
    if not isinstance(raw, dict):
        raise ConvzooError(f"{path} is not a convzoo config (no JSON object); it was damaged")
    return TrainConfig.from_dict(raw)


def resume_config(run_dir: str | Path, changes: dict[str, Any]) -> TrainConfig:
    """The saved config of ``run_dir`` with the allowed ``changes``; others are refused."""
    cfg = load_run_config(run_dir)
    try:
        cfg.validate()  # the saved values, before the changes: a damaged file names itself
        if "device" not in changes:  # a device this machine lacks: say where it comes from
            resolve_device(cfg.device)
    except ConvzooError as e:
        raise ConfigError(
            f"{Path(run_dir) / 'config.json'}: {e}; the file was altered or damaged"
        ) from None
    return apply_resume_changes(cfg, changes, run_dir)


def apply_resume_changes(
    cfg: TrainConfig, changes: dict[str, Any], run_dir: str | Path
) -> TrainConfig:
    saved = cfg.to_dict()
    if "dataset" in changes:  # as resolve_config saved it
        changes = {**changes, "dataset": absolute_name(changes["dataset"])}
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
