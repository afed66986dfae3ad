"""Callbacks: everything the loop does besides training."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from ..io import atomic_write_text, save_checkpoint
from .trainer import Callback, Trainer


def format_epoch(record: dict[str, float], epochs: int) -> str:
    """One line per epoch in the book's words: loss, train acc, test acc, examples/sec."""
    width = len(str(epochs))
    test = "" if math.isnan(record["test_acc"]) else f", test acc {record['test_acc']:.3f}"
    return (
        f"epoch {int(record['epoch']):>{width}}/{epochs}  loss {record['loss']:.3f}, "
        f"train acc {record['train_acc']:.3f}{test}, "
        f"{record['examples_per_sec']:,.0f} examples/sec  "
        f"({record['epoch_time_s'] + record['eval_time_s']:.1f} s, lr {record['lr']:.3g})"
    )


def in_jupyter() -> bool:
    """Whether this process is a Jupyter kernel (tqdm.autonotebook's test: IPython's shell
    is configured by an IPKernelApp), where stdout is no terminal but shows progress bars."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class ConsoleLogger(Callback):
    """A progress bar per epoch (tqdm on a terminal, tqdm's notebook widget in Jupyter, a few
    plain lines otherwise) and the book's line at the end of each epoch. Only the main rank
    prints."""

    def __init__(self, stream: Any = None, bar: bool | None = None, updates: int = 4) -> None:
        self.stream = stream or sys.stdout
        if bar is None:
            bar = self.stream.isatty() or (self.stream is sys.stdout and in_jupyter())
        self.bar = bar
        self.updates = updates  # plain progress lines per epoch when not on a terminal
        self._pbar = None

    def on_epoch_start(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        self._total = len(trainer.train_loader)
        self._t = time.perf_counter()
        self._every = max(1, self._total // self.updates)
        if self.bar:
            from tqdm.auto import tqdm

            self._pbar = tqdm(
                total=self._total,
                initial=trainer.step,
                file=self.stream,
                leave=False,
                desc=f"epoch {trainer.epoch + 1}/{trainer.epochs}",
                unit="batch",
                dynamic_ncols=True,
            )

    def on_step_end(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        if self._pbar is not None:
            self._pbar.update(1)
        elif trainer.step % self._every == 0 and trainer.step < self._total:
            rate = trainer.step / max(time.perf_counter() - self._t, 1e-9)
            print(
                f"  epoch {trainer.epoch + 1}/{trainer.epochs}  step {trainer.step}/"
                f"{self._total}  ({rate:.1f} batches/s)",
                file=self.stream,
                flush=True,
            )

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        self._close()
        if trainer.is_main:
            print(format_epoch(record, trainer.epochs), file=self.stream, flush=True)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._close()

    def _close(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None


class Checkpointer(Callback):
    """A full training checkpoint after every epoch and every ``every_steps`` steps, written
    atomically, so that a crash at any moment leaves a complete latest checkpoint.

    ``extra`` (config, model identity, data normalization) is stored beside the trainer state.
    """

    FILENAME = "checkpoint.pt"

    def __init__(self, run_dir: str | Path, extra: dict[str, Any], every_steps: int | None = None):
        self.path = Path(run_dir) / self.FILENAME
        self.extra = extra
        self.every_steps = every_steps

    def save(self, trainer: Trainer) -> None:
        state = trainer.state_dict()  # on every rank: it reduces the epoch's sums over ranks
        if trainer.is_main:
            save_checkpoint(
                self.path,
                {"format": "convzoo-checkpoint", "version": 1, **self.extra, "trainer": state},
            )

    def on_step_end(self, trainer: Trainer) -> None:
        due = self.every_steps and trainer.global_step % self.every_steps == 0
        if due and trainer.step < len(trainer.train_loader):  # the epoch's end saves anyway
            self.save(trainer)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        self.save(trainer)


class HistoryWriter(Callback):
    """``history.csv`` and ``curves.png`` rewritten (atomically) after every epoch."""

    def __init__(self, run_dir: str | Path, title: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.title = title

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        if trainer.is_main:
            atomic_write_text(self.run_dir / "history.csv", trainer.history.to_csv())
            trainer.history.plot(self.run_dir / "curves.png", title=self.title)


class EarlyStopping(Callback):
    """Stop when the test accuracy has not improved for ``patience`` epochs."""

    def __init__(self, patience: int, key: str = "test_acc") -> None:
        self.patience = patience
        self.key = key

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        values = trainer.history.column(self.key)
        best_at = max(range(len(values)), key=lambda i: values[i])
        if len(values) - 1 - best_at >= self.patience:
            trainer.should_stop = True
            if trainer.is_main:
                print(
                    f"early stopping: {self.key} has not improved for {self.patience} epochs "
                    f"(best {values[best_at]:.4f} at epoch {best_at + 1})",
                    flush=True,
                )


class TensorBoardLogger(Callback):
    """Every number of the epoch's record (losses, accuracies, lr, speed) once per epoch, for
    TensorBoard."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if key != "epoch" and not math.isnan(value):
                self.writer.add_scalar(key, value, int(record["epoch"]))
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
