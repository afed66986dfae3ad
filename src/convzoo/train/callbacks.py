"""Callbacks: everything the loop does besides training."""

from __future__ import annotations

import functools
import html
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..display import LiveOutput, in_jupyter
from ..io import atomic_write_text, load_weights, save_checkpoint, save_weights
from .trainer import Callback, Trainer


def format_epoch(record: dict[str, float], epochs: int) -> str:
    """One line per epoch in the book's words: loss, train acc, (val acc,) test acc,
    examples/sec."""
    width = len(str(epochs))
    evals = "".join(
        f", {name} acc {record[key]:.3f}"
        for name, key in (("val", "val_acc"), ("test", "test_acc"))
        if not math.isnan(record[key])
    )
    return (
        f"epoch {int(record['epoch']):>{width}}/{epochs}  loss {record['loss']:.3f}, "
        f"train acc {record['train_acc']:.3f}{evals}, "
        f"{record['examples_per_sec']:,.0f} examples/sec  "
        f"({record['epoch_time_s'] + record['eval_time_s']:.1f} s, lr {record['lr']:.3g})"
    )


class ConsoleLogger(Callback):
    """A progress display and the book's line at the end of each epoch: a tqdm bar per epoch on
    a terminal; in Jupyter one output per run, redrawn in place, holding a progress bar and the
    epochs' lines (HTML: no ipywidgets needed, and no stream of lines in the cell); a few plain
    lines otherwise. Only the main rank prints."""

    #: seconds between two redraws of the notebook's bar: each took 2 ms on the 2-core CPU
    NOTEBOOK_EVERY_S = 1.0

    def __init__(self, stream: Any = None, bar: bool | None = None, updates: int = 4) -> None:
        self.stream = stream or sys.stdout
        self.notebook = self.stream is sys.stdout and in_jupyter()
        self.bar = self.stream.isatty() or self.notebook if bar is None else bar
        self.updates = updates  # plain progress lines per epoch when not on a terminal
        self._pbar = None
        self._live: LiveOutput | None = None
        self._lines: list[str] = []  # the epochs' lines, in the notebook's output
        self._done: tuple[int, str] = (0, "")  # the finished epoch's step and position

    def on_epoch_start(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        self._total = len(trainer.train_loader)
        self._t = self._shown = time.perf_counter()
        self._every = max(1, self._total // self.updates)
        if self.bar and self.notebook:
            self._live = self._live or LiveOutput()
            self._show(trainer.step, self._position(trainer))
        elif self.bar:
            from tqdm import tqdm

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
        elif self._live is not None:
            if time.perf_counter() - self._shown >= self.NOTEBOOK_EVERY_S:
                self._show(trainer.step, self._position(trainer))
        elif trainer.step % self._every == 0 and trainer.step < self._total:
            print(f"  {self._position(trainer)}", file=self.stream, flush=True)

    def _position(self, trainer: Trainer) -> str:
        rate = trainer.step / max(time.perf_counter() - self._t, 1e-9)
        return (
            f"epoch {trainer.epoch + 1}/{trainer.epochs}  step {trainer.step}/{self._total}  "
            f"({rate:.1f} batches/s)"
        )

    def _show(self, step: int, position: str) -> None:
        # a drawn bar, not <progress>: that one shows empty where the browser has no theme
        done = 100 * step / max(self._total, 1)
        bar = (
            '<div style="display:inline-block;width:16em;height:0.8em;background:#ddd">'
            f'<div style="width:{done:.0f}%;height:100%;background:#1f77b4"></div></div>'
        )
        lines = html.escape("\n".join(self._lines))
        self._live.show(
            "\n".join([*self._lines, position]),
            html_text=f"<pre>{lines}</pre>{bar} <code>{position}</code>",
        )
        self._shown = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        if trainer.is_main and self._live is not None:
            self._done = (trainer.step, self._position(trainer))  # whatever the throttle skipped
            self._show(*self._done)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        self._close()
        if not trainer.is_main:
            return
        line = format_epoch(record, trainer.epochs)
        if self._live is not None:
            self._lines.append(line)
            self._show(*self._done)
        else:
            print(line, file=self.stream, flush=True)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._close()

    def _close(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None


class LiveCurves(Callback):
    """In a Jupyter kernel: the loss and accuracy curves (:meth:`History.plot`) redrawn in
    place after each epoch, in one output of the cell, as the book's ``Animator`` does.

    A redraw (matplotlib, the PNG and the message) takes 0.1-0.3 s on the 2-core CPU, 1% of an
    image epoch there (15 s or more): those are redrawn every epoch. Shorter epochs (time
    series) are redrawn once the time since the last redraw is ``1 / MAX_SHARE`` times what it
    took, and after the last epoch.
    """

    #: the most of the training time that redrawing may take
    MAX_SHARE = 0.02

    def __init__(self) -> None:
        self.draw_s: list[float] = []  #: seconds each redraw took (what the budget counts)
        self._output: LiveOutput | None = None
        self._drawn_at = -math.inf
        self._drawn = 0  # epochs the figure shows

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        # the first redraw also pays matplotlib's set-up (2 s against 0.3 s)
        cost = self.draw_s[-1] if len(self.draw_s) > 1 else 0.0
        if trainer.is_main and time.perf_counter() - self._drawn_at >= cost / self.MAX_SHARE:
            self._draw(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        if trainer.is_main and self._drawn != len(trainer.history):
            self._draw(trainer)

    def _draw(self, trainer: Trainer) -> None:
        t = time.perf_counter()
        epochs = len(trainer.history)
        fig = trainer.history.plot()
        for ax in fig.axes:  # the whole run's width from the start: the figure only grows
            ax.set_xlim(0.8, max(trainer.epochs, epochs) + 0.2)
        self._output = self._output or LiveOutput()
        text = f"loss and accuracy after epoch {epochs} of {trainer.epochs}"
        self._output.show(text, png=fig._repr_png_(tight=False))
        self._drawn_at = time.perf_counter()
        self._drawn = epochs
        self.draw_s.append(self._drawn_at - t)


def live_curves(live: bool | None, callbacks: Sequence[Callback]) -> list[Callback]:
    """``[LiveCurves()]`` where ``live`` asks for it (``None``: in a Jupyter kernel) and
    ``callbacks`` have none."""
    wanted = in_jupyter() if live is None else live
    present = any(isinstance(cb, LiveCurves) for cb in callbacks)
    return [LiveCurves()] if wanted and not present else []


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
        #: (epoch, step) of the checkpoint on disk, numbered as a resume reports them
        self.saved_at: tuple[int, int] | None = None

    def save(self, trainer: Trainer) -> None:
        state = trainer.state_dict()  # on every rank: it reduces the epoch's sums over ranks
        if trainer.is_main:
            save_checkpoint(
                self.path,
                {"format": "convzoo-checkpoint", "version": 1, **self.extra, "trainer": state},
            )
        self.saved_at = (trainer.epoch + 1, trainer.step)

    def on_step_end(self, trainer: Trainer) -> None:
        due = self.every_steps and trainer.global_step % self.every_steps == 0
        if due and trainer.step < len(trainer.train_loader):  # the epoch's end saves anyway
            self.save(trainer)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        self.save(trainer)


class HistoryWriter(Callback):
    """``history.csv`` rewritten (atomically) after every epoch, ``curves.png`` after the first
    epoch, then at most every ``plot_every_s`` seconds, and when training ends.

    Why not every epoch: matplotlib takes 0.3 s to draw the curves on the 2-core CPU, which
    was 8.9 s of a 16 s, 30-epoch ArrowHead run (epochs of 0.15 s) and 40 s of a 200-epoch one.
    An image epoch on this CPU takes 10 s or more, so it still gets every point drawn.
    """

    #: at most one redraw in this many seconds: 0.3 s in 10 s, 3% of the time at most
    PLOT_EVERY_S = 10.0

    def __init__(
        self, run_dir: str | Path, title: str | None = None, plot_every_s: float = PLOT_EVERY_S
    ) -> None:
        self.run_dir = Path(run_dir)
        self.title = title
        self.plot_every_s = plot_every_s
        self._plotted_at = -math.inf  # time.monotonic() of the last drawing
        self._plotted_epochs = 0  # how many epochs it showed

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        if trainer.is_main:
            atomic_write_text(self.run_dir / "history.csv", trainer.history.to_csv())
            if time.monotonic() - self._plotted_at >= self.plot_every_s:
                self._plot(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        if trainer.is_main and self._plotted_epochs != len(trainer.history.records):
            self._plot(trainer)

    def _plot(self, trainer: Trainer) -> None:
        trainer.history.plot(self.run_dir / "curves.png", title=self.title)
        self._plotted_at = time.monotonic()
        self._plotted_epochs = len(trainer.history.records)


class EarlyStopping(Callback):
    """Stop when the monitored validation value has not improved for ``patience`` epochs."""

    def __init__(self, patience: int, monitor: str = "val_acc") -> None:
        self.patience = patience
        self.monitor = monitor

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        best = trainer.history.best(self.monitor)
        if best is None:
            return
        if int(record["epoch"] - best["epoch"]) >= self.patience:
            trainer.should_stop = True
            if trainer.is_main:
                print(
                    f"early stopping: {self.monitor} has not improved for {self.patience} "
                    f"epoch{'s' * (self.patience != 1)} (best {best[self.monitor]:.4f} at epoch "
                    f"{int(best['epoch'])})",
                    flush=True,
                )


class KeepBest(Callback):
    """Keep the weights of the epoch with the best monitored validation value: written to
    ``best.safetensors`` (with the run's metadata) when it improves, or held in memory
    without a run directory. The best so far is read from the history, so a resumed run
    goes on comparing against the same figure.

    Registered before :class:`Checkpointer`: a crash between the two writes then repeats the
    epoch after resuming and writes the same best weights again, never loses them.
    """

    FILENAME = "best.safetensors"

    def __init__(self, run_dir: str | Path | None, meta: dict[str, Any], monitor: str) -> None:
        # only rank 0 keeps them; the others receive them when the run ends
        self.path = Path(run_dir) / self.FILENAME if run_dir is not None else None
        self.meta = meta
        self.monitor = monitor
        self.state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        best = trainer.history.best(self.monitor)
        if best is None or best["epoch"] != record["epoch"] or not trainer.is_main:
            return
        state = {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}
        if self.path is None:
            self.state = state
        else:
            save_weights(self.path, state, {**self.meta, "epoch": int(record["epoch"])})

    def best_state(self) -> dict[str, torch.Tensor] | None:
        """The kept weights (from memory, or read back from ``best.safetensors``)."""
        if self.path is None:
            return self.state
        return load_weights(self.path)[0] if self.path.exists() else None


class RefreshBatchNorm(Callback):
    """Recompute the batch-norm running statistics over training batches before an epoch is
    evaluated, while the run is young enough for them to lag.

    A running average with momentum 0.1 still holds 0.9^k of its initial value (mean 0, var 1)
    after k steps, and averages statistics of weights that have since changed: trained for 15
    steps per epoch on a small image folder, a batch-norm network evaluated 0.100 (chance) for
    three epochs while its training accuracy reached 0.775. Until ``settle_steps`` steps, the
    statistics are replaced by the exact average over up to ``max_batches`` training batches
    (fixed, unaugmented, in the mode and precision of training), as
    ``torch.optim.swa_utils.update_bn`` does; ours also covers the from-scratch
    ``convzoo.BatchNorm``, which ``update_bn`` skips. Every rank computes the same figures.
    """

    def __init__(self, loader: Any, settle_steps: int = 200, max_batches: int = 50) -> None:
        self.loader = loader
        self.settle_steps = settle_steps
        self.max_batches = max_batches

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        # layers in eval mode (stages frozen by fine-tuning) keep their statistics
        layers = [m for m in batchnorm_layers(trainer.model) if m.training]
        if not layers or trainer.global_step >= self.settle_steps:
            return
        # statistics nothing evaluates are overwritten by the next epoch's steps (0.9^k of
        # them left after k): on ACSF1, 7 steps an epoch and no validation split, the refresh
        # took a fifth of the training time for nothing
        if not trainer.evaluates_now():
            return
        # through the strategy: under model or pipeline parallelism no one device runs it all
        forward = functools.partial(trainer.strategy.predict, trainer.model)
        refresh_batchnorm(
            trainer.model, layers, self.loader, trainer.precision, self.max_batches, forward
        )


def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
    """The layers with running statistics (PyTorch's batch norms and convzoo.BatchNorm)."""
    return [
        m
        for m in model.modules()
        if getattr(m, "running_mean", None) is not None and hasattr(m, "momentum")
    ]


@torch.no_grad()
def refresh_batchnorm(
    model: nn.Module,
    layers: list[nn.Module],
    loader: Any,
    precision: Any,
    max_batches: int,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> None:
    """Set ``layers``' running statistics to the exact average over the first ``max_batches``
    batches of ``loader`` (epoch 0's order), with every module in the mode it is in;
    ``forward`` runs ``model`` on a batch (default: ``model`` itself)."""
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.running_mean.zero_()
        m.running_var.fill_(1)
    loader.set_epoch(0)
    try:
        for k, batch in enumerate(loader):
            if k >= max_batches:
                break
            for m in layers:
                m.momentum = 1.0 / (k + 1)  # the cumulative average of the batch statistics
            with precision.autocast():
                (forward or model)(batch.x)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum


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
