"""Training jobs for the pipeline tests, started by torchrun (gloo on the CPU):

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/pipeline_job.py \\
        REPORT_DIR SCENARIO [SCENARIO ...]

The job joins the process group itself, so that several trainings share one launch (a launch
costs 10-20 s on the shared 2-core machine); ``--strategy pipeline`` uses a group it finds
and leaves it open. Each scenario trains with ``--strategy pipeline`` (run directories under
REPORT_DIR/SCENARIO, written by rank 0) and each rank writes REPORT_DIR/SCENARIO-rank<R>.json:
its history, metrics, run directory and every file write it attempted outside the report.

Scenarios: ``plain`` (the DDP tests' batch-norm-free VGG, 4 micro-batches, GPipe), ``bn`` and
``bn1f1b`` (speednet with batch norm, GPipe and 1F1B), ``resume`` (a run stopped by an
exception mid-epoch and resumed, beside the same run uninterrupted), ``families`` (one small
network of every zoo family), ``badsplit`` (the CLI with ``--split-at`` naming no stage:
FOLDER is an image-folder data set to read).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))

from convzoo.io import load_checkpoint
from convzoo.train.run import train
from convzoo.train.rundir import resume_config
from ddp_job import SMALL_VGG, WriteSpy, job_config
from helpers import CrashAt, toy_pair
from zoo_families import FAMILIES

#: speednet with batch norm, small: 4 micro-batches of 8 per batch of 32
BN_NET = {"model": "speednet", "model_options": {"width": 8}}


def pipeline_config(**kw):
    values = dict(strategy="pipeline", epochs=1, batch_size=32, eval_batch_size=32, ckpt_every=None)
    values.update(kw)
    return job_config(**values)


def report(result) -> dict:
    return {
        "run_dir": str(result.run_dir.resolve()) if result.run_dir else None,
        "metrics": {k: result.metrics[k] for k in ("test_acc", "test_examples")},
        "history": result.history.records,
    }


def run_scenario(name: str, out: Path, folder: str | None) -> dict:
    data = toy_pair(200, 40)
    if name == "plain":
        cfg = pipeline_config(microbatches=4, out=str(out / "run"), model_options=SMALL_VGG)
        return report(train(cfg, data=data))
    if name in ("bn", "bn1f1b"):
        schedule = "1f1b" if name == "bn1f1b" else "gpipe"
        cfg = pipeline_config(
            microbatches=4, pipeline_schedule=schedule, out=str(out / "run"), **BN_NET
        )
        return report(train(cfg, data=data))
    if name == "resume":
        kw = dict(microbatches=2, epochs=2, ckpt_every=3)
        full = train(pipeline_config(out=str(out / "full"), **kw), data=data)
        crashed = pipeline_config(out=str(out / "crashed"), **kw)
        with contextlib.suppress(RuntimeError):
            train(crashed, data=data, callbacks=[CrashAt(11)])
        state = load_checkpoint(out / "crashed" / "checkpoint.pt")["trainer"]
        resumed = train(resume_config(crashed.out, {}), data=data, resume=crashed.out)
        return {
            "full": report(full),
            "resumed": report(resumed),
            "resumed_at": [state["epoch"], state["step"]],
        }
    if name == "families":
        runs = {}
        for family, (model, options, size) in FAMILIES.items():
            cfg = pipeline_config(
                model=model, model_options=options, image_size=size, batch_size=8,
                microbatches=2, eval_batch_size=8, out=str(out / family),
            )  # fmt: skip
            runs[family] = report(train(cfg, data=toy_pair(16, 8)))
        return runs
    if name == "badsplit":
        from convzoo.cli import main as cli_main

        err = io.StringIO()
        argv = ["train", "--strategy", "pipeline", "--dataset", f"folder:{folder}",
                "--split-at", "b9", "--epochs", "1", "--out", str(out / "run")]  # fmt: skip
        with contextlib.redirect_stderr(err):
            rc = cli_main(argv)
        return {"rc": rc, "stderr": err.getvalue()}
    raise SystemExit(f"unknown scenario {name}")


def main() -> None:
    report_dir = Path(sys.argv[1])
    folder = os.environ.get("PIPELINE_JOB_FOLDER")
    # torch.optim imports torch._dynamo on first use, which makes its cache folder: done here
    import torch._dynamo  # noqa: F401

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    try:
        for name in sys.argv[2:]:
            spy = WriteSpy()
            if rank != 0:
                spy.__enter__()
            try:
                result = run_scenario(name, report_dir / name, folder)
            finally:
                spy.__exit__()
            result["writes"] = spy.writes
            (report_dir / f"{name}-rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
