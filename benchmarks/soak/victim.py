"""``convzoo`` as the console script runs it, with phase marks (``start``, ``step``,
``eval-begin``/``-end``, ``save-begin``/``-end NAME``) appended to ``$SOAK_PHASES``, one
``O_APPEND`` write each (whole even when killed); convzoo itself is unchanged.

``SOAK_STOP_AT="MARK#K"``: SIGSTOP itself at the K-th MARK (only the first process with
``SOAK_STOP_ONCE=FILE``); ``SOAK_KEEP_CHECKPOINTS=DIR``: copy each checkpoint to ``DIR/N.pt``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

_fd = os.open(os.environ["SOAK_PHASES"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


_stop_at, _, _stop_k = os.environ.get("SOAK_STOP_AT", "").partition("#")
_seen = 0


def mark(what: str) -> None:
    global _seen
    os.write(_fd, f"{time.monotonic():.6f} {os.getpid()} {what}\n".encode())
    if what == _stop_at:
        _seen += 1
        once = os.environ.get("SOAK_STOP_ONCE")
        if _seen == int(_stop_k or 1) and not (once and os.path.exists(once)):
            if once:
                Path(once).touch()
            os.kill(os.getpid(), signal.SIGSTOP)


def instrument() -> None:
    import convzoo.io
    from convzoo.train.trainer import Trainer

    real_atomic = convzoo.io.atomic_path

    keep = os.environ.get("SOAK_KEEP_CHECKPOINTS")
    kept = [0]

    @contextlib.contextmanager
    def atomic_path(path):
        name = Path(path).name
        mark(f"save-begin {name}")
        with real_atomic(path) as tmp:
            yield tmp
        mark(f"save-end {name}")
        if keep and name == "checkpoint.pt":
            kept[0] += 1
            shutil.copyfile(path, Path(keep) / f"{kept[0]}.pt")

    convzoo.io.atomic_path = atomic_path  # before viz imports it by name

    real_step, real_eval = Trainer.train_step, Trainer.evaluate

    def train_step(self, batch):
        mark("step")
        return real_step(self, batch)

    def evaluate(self, loader, **kw):
        mark("eval-begin")
        out = real_eval(self, loader, **kw)
        mark("eval-end")
        return out

    Trainer.train_step, Trainer.evaluate = train_step, evaluate


if __name__ == "__main__":
    mark("start")
    instrument()
    from convzoo.cli import main

    code = main(sys.argv[1:])
    mark(f"exit {code}")
    sys.exit(code)
