"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (``kill``, a scheduler's stop).

A signal that lands in the middle of an optimizer step must not be acted on there: the
weights may be half updated. So while the loop runs, the first signal is only noted; at the
end of the step in progress (or of the epoch's evaluation) a checkpoint of that exact point is
written and :class:`~convzoo.errors.Interrupted` says where it is and how to resume, one line,
exit status 128 + the signal's number (130 for SIGINT, 143 for SIGTERM). A resume from it
ends bitwise equal to an uninterrupted run, as after any checkpoint. A second signal stops at
once, keeping the last checkpoint written. Outside the loop (start-up, the final files) there
is nothing half done to protect and the first signal stops at once.

Only a single process (not a torchrun group, whose agent owns its workers' signals) running in
the main thread, and only where nobody else installed a handler, takes these signals.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from ..errors import Interrupted
from .callbacks import Checkpointer
from .rundir import resume_command
from .trainer import Callback, Trainer

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal(Callback):
    """Registered last: writes a checkpoint where the loop stands and raises
    :class:`Interrupted` once a signal was noted."""

    def __init__(
        self, checkpointer: Checkpointer | None, run_dir: str | Path | None = None
    ) -> None:
        self.checkpointer = checkpointer
        self.run_dir = Path(run_dir) if run_dir is not None else None  #: once known
        self.pending: int | None = None  #: the signal noted, not yet acted on
        self.armed = False  #: inside the loop, where a signal waits for the step's end
        self.trainer: Trainer | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.armed = True

    def on_step_end(self, trainer: Trainer) -> None:
        if self.pending is not None:
            self.stop(trainer, save=True)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        if self.pending is not None:  # the Checkpointer (registered before) has saved
            self.stop(trainer, save=False)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.armed = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.armed and self.pending is None:
            self.pending = signum
            return
        self.armed = False
        raise Interrupted(self.message(), signum)

    def stop(self, trainer: Trainer, *, save: bool) -> None:
        signum, self.pending, self.armed = self.pending, None, False
        if save and self.checkpointer is not None:
            self.checkpointer.save(trainer)
        raise Interrupted(self.message(), signum or signal.SIGINT)

    def message(self) -> str:
        cp, run_dir = self.checkpointer, self.run_dir
        if cp is not None and cp.saved_at is not None:
            epoch, step = cp.saved_at
            return (
                f"interrupted: checkpoint at epoch {epoch} step {step} kept in "
                f"{cp.path.parent}; resume with {resume_command(cp.path.parent)}"
            )
        if run_dir is None:
            return "interrupted (no run directory: nothing is saved)"
        if (run_dir / Checkpointer.FILENAME).exists():
            return (
                f"interrupted while starting: the checkpoint in {run_dir} is unchanged; resume "
                f"with {resume_command(run_dir)}"
            )
        if (run_dir / "config.json").exists():
            return (
                f"interrupted before the first checkpoint; start the run over with "
                f"{resume_command(run_dir)}"
            )
        return "interrupted before the run started: nothing was written"


@contextlib.contextmanager
def stop_on_signals(stopper: StopOnSignal, enabled: bool = True) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``stopper`` while the block runs (where allowed, see the
    module docstring); the previous handlers come back afterwards."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    saved = {s: signal.getsignal(s) for s in SIGNALS}
    taken = [s for s in SIGNALS if saved[s] is defaults[s]]
    for s in taken:
        signal.signal(s, stopper.handle)
    try:
        yield
    finally:
        for s in taken:
            signal.signal(s, saved[s])
