"""One short training run of a multi-device strategy on synthetic images; prints one line.

    python benchmarks/parallel_check.py --strategy scratch --devices cuda:0,cuda:0 --out DIR
    torchrun --standalone --nproc-per-node 1 benchmarks/parallel_check.py --strategy ddp --out DIR
    python benchmarks/parallel_check.py --strategy model --devices cuda:0,cuda:1 --out DIR
    torchrun --standalone --nproc-per-node 2 benchmarks/parallel_check.py --strategy pipeline \
        --microbatches 4 --out DIR

Used by ``benchmarks/gpu_parallel.sh`` to check the GPU paths (dp, ddp with NCCL, scratch,
model and pipeline on CUDA) and by ``benchmarks/model_parallel.py``, where no data set is
installed: the images are generated (each class lights its own 7x7 block of a 28 px image,
plus noise), so the accuracy must reach ~1.0 within the run.
``--kill-at STEP`` SIGKILLs the last rank once at that global step (a marker file next to
``--out`` remembers), to check that ``torchrun --max-restarts`` with ``--auto-resume`` completes.

Printed: the strategy, world size and device; ``examples/sec`` of the last epoch (training
only, all ranks together; the first epoch pays for cuDNN autotuning and is not reported), the
final test accuracy, the wall time of the whole run and the torchrun restart count; and every
process's peak memory (``MEMORY rank=R host peak ... MiB, cuda:N peak ... MiB``).
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import signal
import sys
import time
from pathlib import Path

import torch

from convzoo.data import ImageDataset
from convzoo.train import Callback
from convzoo.train.run import resolve_config, train

NUM_CLASSES = 10  # classes of the synthetic set
IMAGE_SIZE = 28  # pixels, as Fashion-MNIST


def synthetic(n: int, seed: int, split: str) -> ImageDataset:
    """Learnable images without files: class c brightens block c of a 4 x 4 grid of 7x7 blocks."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    x = torch.randint(0, 80, (n, 1, IMAGE_SIZE, IMAGE_SIZE), generator=g)
    for c in range(NUM_CLASSES):
        r, col = divmod(c, 4)
        x[y == c, :, r * 7 : (r + 1) * 7, col * 7 : (col + 1) * 7] += 150
    classes = [f"class{c}" for c in range(NUM_CLASSES)]
    return ImageDataset(x.clamp(0, 255).to(torch.uint8), y, classes, name="synthetic", split=split)


class KillOnce(Callback):
    """The last rank SIGKILLs itself at ``step``, the first time only."""

    def __init__(self, step: int, marker: Path) -> None:
        self.step, self.marker = step, marker

    def on_step_end(self, trainer) -> None:
        last = trainer.strategy.rank == trainer.strategy.world_size - 1
        if last and trainer.global_step == self.step and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)


def gpus_used(devices: str | None) -> list[int]:
    """The GPUs this process computed on: those --devices names, else the current one (asking
    about others would open a CUDA context on each)."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return []
    named = [torch.device(d.strip()) for d in (devices or "").split(",") if d.strip()]
    ids = {d.index or 0 for d in named if d.type == "cuda"}
    return sorted(ids or {torch.cuda.current_device()})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategy", default="single")
    p.add_argument("--devices", default=None)
    p.add_argument("--sync-bn", action="store_true")
    p.add_argument("--split-at", default=None, help="model, pipeline: where to cut")
    p.add_argument("--microbatches", type=int, default=None, help="model, pipeline")
    p.add_argument("--pipeline-schedule", default="gpipe", help="pipeline: gpipe or 1f1b")
    p.add_argument("--device", default="auto", help="e.g. cpu for a gloo pipeline")
    p.add_argument("--model", default="speednet")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256, help="per process")
    p.add_argument("--train-size", type=int, default=25_600, help="100 steps an epoch at 256")
    p.add_argument("--out", required=True)
    p.add_argument("--auto-resume", action="store_true")
    p.add_argument("--kill-at", type=int, default=None)
    args = p.parse_args()

    cfg = resolve_config(
        dict(
            model=args.model,
            dataset="synthetic",
            strategy=args.strategy,
            devices=args.devices,
            sync_bn=args.sync_bn,
            split_at=args.split_at,
            microbatches=args.microbatches,
            pipeline_schedule=args.pipeline_schedule,
            device=args.device,
            epochs=args.epochs,
            batch_size=args.batch_size,
            image_size=IMAGE_SIZE,
            augment="",
            out=args.out,
            ckpt_every=50,
        )
    )
    data = (synthetic(args.train_size, 1, "train"), synthetic(5_000, 2, "test"))
    marker = Path(args.out).parent / (Path(args.out).name + ".killed")
    callbacks = [KillOnce(args.kill_at, marker)] if args.kill_at else []
    t = time.perf_counter()
    quiet = io.StringIO()  # the per-epoch lines are in the run directory's history.csv
    result = train(cfg, data=data, auto_resume=args.auto_resume, callbacks=callbacks, stdout=quiet)
    wall = time.perf_counter() - t
    # every process's peak memory: host (resident, KiB on Linux) and each GPU it used: what
    # one device's share of the network costs under --strategy model or pipeline
    host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    used = "".join(
        f", cuda:{i} peak {torch.cuda.max_memory_allocated(i) / 2**20:.0f} MiB"
        for i in gpus_used(args.devices)
    )
    print(f"MEMORY rank={os.environ.get('RANK', 0)} host peak {host:.0f} MiB{used}", flush=True)
    if int(os.environ.get("RANK", 0)) == 0:
        last = result.history.last
        world = int(os.environ.get("WORLD_SIZE", 1))
        where = args.devices or ("cuda" if torch.cuda.is_available() else "cpu")
        extra = f" microbatches={args.microbatches}" if args.microbatches else ""
        if args.strategy == "pipeline":
            extra += f" schedule={args.pipeline_schedule}"
        print(
            f"RESULT strategy={args.strategy}{' sync-bn' if args.sync_bn else ''}{extra} "
            f"world={world} devices={where} model={args.model}: "
            f"{last['examples_per_sec']:,.0f} examples/sec (epoch {int(last['epoch'])}), "
            f"test acc {result.metrics['test_acc']:.4f}, wall {wall:.1f} s, "
            f"restarts {os.environ.get('TORCHELASTIC_RESTART_COUNT', '-')}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
