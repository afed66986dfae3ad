"""A training job for the DDP tests, started by torchrun (the real data sets are not needed):

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_job.py REPORT_DIR \
        [--out DIR --auto-resume] [--kill-at STEP] [--spy] [--series]

It trains a small batch-norm-free VGG on toy data with ``--strategy ddp`` (gloo on the CPU) and
writes ``REPORT_DIR/rank<R>.json``: the run directory the rank used, the restart count and, with
``--spy``, every file write a rank other than 0 attempted (there should be none).
``--kill-at STEP``: rank 1 SIGKILLs itself after that global step, once (a marker file in
REPORT_DIR remembers), so that ``torchrun --max-restarts`` restarts the group.
``--series``: ``lenet1d`` on toy time series instead (:func:`series_config`).
``--folder PATH --in-memory yes|no``: the image folder PATH instead of toy tensors, and every
file a rank decodes appended to REPORT_DIR/decoded<R>.txt.
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from convzoo.train import Callback
from convzoo.train.run import resolve_config, train
from helpers import toy_pair, toy_series_pair

#: no dropout (its draws differ with the batch split) and no batch norm (its statistics do)
SMALL_VGG = {"conv_arch": [[1, 8], [1, 16]], "hidden": 32, "dropout": 0.0}


def job_config(**kw):
    """The job's config; ``batch_size`` is per process (16 x 2 ranks = 32 a step)."""
    values = dict(
        model="vgg11",
        model_options=SMALL_VGG,
        epochs=2,
        batch_size=16,
        lr=0.05,
        optimizer="nesterov",  # the fast recipe gives BN-free nets AdamW; compare plain steps
        precision="fp32",
        image_size=16,
        augment="",
        dataset="toy",
        device="cpu",
        drop_last=False,  # 203 samples: the last step has 11, so rank 1 gets one padding sample
        val_split=0.0,  # all 203 train (the validation loader shards and reduces as the test's)
        eval_batch_size=16,  # 61 test samples: padded evaluation batches too
        test_every=1,  # every epoch's test figures compared between the ranks
        ckpt_every=3,
    )
    values.update(kw)
    return resolve_config(values)


def job_data():
    return toy_pair(203, 61)


def series_config(**kw):
    """The 1-D job: lenet1d (no batch norm, no dropout) on toy series, 16 a step per process."""
    values = dict(
        model="lenet1d",
        dataset="toy-series",
        epochs=2,
        batch_size=16,
        lr=0.05,
        optimizer="nesterov",
        precision="fp32",
        augment="",
        device="cpu",
        val_split=0.0,
        eval_batch_size=16,
    )
    values.update(kw)
    return resolve_config(values)


def series_data():
    return toy_series_pair(101, 37)  # uneven: padded shards in training and evaluation


class KillOnce(Callback):
    def __init__(self, step: int, marker: Path) -> None:
        self.step, self.marker = step, marker

    def on_step_end(self, trainer) -> None:
        due = trainer.strategy.rank == 1 and trainer.global_step == self.step
        if due and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)


class WriteSpy:
    """Records (does not block) file creation, writes, renames and removals."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.saved: dict = {}

    def _wrap(self, owner, name, is_write=lambda *a, **k: True):
        original = getattr(owner, name)
        self.saved[(owner, name)] = original

        def spy(*args, **kwargs):
            if args and is_write(*args, **kwargs):
                self.writes.append(f"{name} {args[0]}")
            return original(*args, **kwargs)

        setattr(owner, name, spy)

    def __enter__(self) -> WriteSpy:
        def writing(file, mode="r", *a, **k):
            return isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+")

        self._wrap(builtins, "open", writing)
        for name in ("replace", "rename", "mkdir", "makedirs", "unlink", "remove"):
            self._wrap(os, name)
        self._wrap(tempfile, "mkstemp", lambda *a, **k: True)
        return self

    def __exit__(self, *exc) -> None:
        for (owner, name), original in self.saved.items():
            setattr(owner, name, original)


def log_decodes(path: Path) -> None:
    """Every file decoded in this process or its DataLoader workers, one line each."""
    from convzoo.data import folder, folder_loader

    original = folder.load_image

    def logged(file, *args):
        with open(path, "a") as f:
            f.write(file + "\n")
        return original(file, *args)

    folder.load_image = folder_loader.load_image = logged


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("report_dir")
    p.add_argument("--out")
    p.add_argument("--auto-resume", action="store_true")
    p.add_argument("--kill-at", type=int)
    p.add_argument("--spy", action="store_true")
    p.add_argument("--series", action="store_true")
    p.add_argument("--folder")
    p.add_argument("--in-memory", default="auto")
    args = p.parse_args()
    report = Path(args.report_dir)
    rank = int(os.environ["RANK"])
    config, data = (series_config, series_data) if args.series else (job_config, job_data)
    cfg = config(strategy="ddp", out=args.out)
    if args.folder:
        cfg = job_config(
            strategy="ddp", out=args.out, dataset=f"folder:{args.folder}", in_memory=args.in_memory
        )
        data = lambda: None  # noqa: E731  (loaded by name, as convzoo train does)
        log_decodes(report / f"decoded{rank}.txt")
    callbacks = [KillOnce(args.kill_at, report / "killed")] if args.kill_at else []
    # torch.optim imports torch._dynamo on first use, and that import makes its cache folder
    # (/tmp/torchinductor_USER): PyTorch's own side effect, not a write of ours; done up front
    import torch._dynamo  # noqa: F401

    spy = WriteSpy()
    if args.spy and rank != 0:
        spy.__enter__()
    try:
        result = train(cfg, data=data(), auto_resume=args.auto_resume, callbacks=callbacks)
    finally:
        spy.__exit__()
    (report / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "run_dir": str(result.run_dir.resolve()),
                "restart": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", -1)),
                "writes": spy.writes,
                "metrics": {k: result.metrics[k] for k in ("test_acc", "test_examples")},
                "history": result.history.records,
            }
        )
    )


if __name__ == "__main__":
    main()
