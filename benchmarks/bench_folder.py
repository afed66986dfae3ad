"""Your own images at scale: a Fashion-MNIST-derived folder of 224 px JPEGs of any count, read
and trained on by convzoo and by torchvision's ``ImageFolder`` + ``DataLoader`` in one run.

    convzoo bench --folder [--counts 10000,30000,60000] [--root DIR] [--workers 2] \
        [--train-count 60000] [--json out.json]

Per count: one epoch of loading each way (same workers, batch, resize), time per image and
peak PSS (process and workers). ``--train-count N``: one training epoch each way, ours through
``convzoo train --dataset folder:PATH``, torchvision's in a plain loop, in fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_d2l import PeakMemory  # the book's side measures memory alike

SIZE = 224
TEST_IMAGES = 1000


# -- the folder ---------------------------------------------------------------------------------
def _write(job: tuple[str, int, int, bytes]) -> None:
    import numpy as np
    from PIL import Image

    path, h, w, pixels = job
    img = Image.fromarray(np.frombuffer(pixels, np.uint8).reshape(h, w)).convert("RGB")
    img.resize((SIZE, SIZE), Image.BICUBIC).save(path, quality=90)


def make_folder(root: Path, count: int, workers: int, largest: int = 0) -> Path:
    """``root/fm224-COUNT`` (written once; a ``.done`` marker says it is complete): hard links
    to the first COUNT files of ``root/fm224-LARGEST`` when that is larger."""
    from convzoo.data import load_dataset

    folder = root / f"fm224-{count}"
    if (folder / ".done").exists():
        return folder
    if largest > count:
        return _link(make_folder(root, largest, workers), folder, count)
    jobs = []
    for split, n in (("train", count), ("test", TEST_IMAGES)):
        data = load_dataset("fashion-mnist", split)
        for c in data.classes:
            (folder / split / c.replace("/", "-")).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            k = i % len(data)
            cls = data.classes[int(data.labels[k])].replace("/", "-")
            img = data.images[k, 0]
            jobs.append((str(folder / split / cls / f"{i}.jpg"), *img.shape, img.numpy().tobytes()))
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write, jobs, chunksize=256))
    (folder / ".done").touch()
    return folder


def _link(src: Path, folder: Path, count: int) -> Path:
    for split in ("train", "test"):
        for cls in (src / split).iterdir():
            (folder / split / cls.name).mkdir(parents=True, exist_ok=True)
            for f in cls.iterdir():
                if split == "test" or int(f.stem) < count:
                    os.link(f, folder / split / cls.name / f.name)
    (folder / ".done").touch()
    return folder


# -- measuring ------------------------------------------------------------------------------------
def timed(fn: Callable[..., int], *args) -> dict:
    with PeakMemory(pss_interval_s=0.2) as mem:
        t = time.perf_counter()
        n = fn(*args)
        s = time.perf_counter() - t
    return {"images": n, "s": s, "images_per_s": n / s, "us_per_image": 1e6 * s / n,
            "peak_pss_gb": mem.peak_pss / 1e9}  # fmt: skip


def ours_epoch(folder: Path, batch: int, workers: int) -> int:
    from convzoo.data import FolderLoader, index_folder

    index = index_folder(folder, "train", image_size=SIZE)
    loader = FolderLoader(index, batch, shuffle=True, num_workers=workers)
    return sum(len(b.x) for b in loader)


def tv_loader(folder: Path, batch: int, workers: int, flip: bool = False, size: int = SIZE):
    from torchvision import datasets
    from torchvision import transforms as T

    ops = [T.Resize(size), *([T.RandomHorizontalFlip()] if flip else []), T.ToTensor()]
    data = datasets.ImageFolder(str(folder / "train"), transform=T.Compose(ops))
    return torch.utils.data.DataLoader(
        data, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True
    )


def tv_epoch(folder: Path, batch: int, workers: int) -> int:
    return sum(len(x) for x, _ in tv_loader(folder, batch, workers))


# -- training ------------------------------------------------------------------------------------
class StepClock:
    """Each optimizer step's end time; stops the run after ``seconds`` (0: never). The rate is
    measured from the end of the first step to the end of the last, on both sides, so start-up
    (indexing, workers, the first batch) is left out of both."""

    def __init__(self, seconds: float, batch: int) -> None:
        self.seconds, self.batch, self.times = seconds, batch, []

    def tick(self) -> bool:
        self.times.append(time.perf_counter())
        return bool(self.seconds) and self.times[-1] - self.times[0] > self.seconds

    def report(self) -> dict:
        steps = len(self.times) - 1
        s = self.times[-1] - self.times[0]
        return {
            "steps": steps,
            "images": steps * self.batch,
            "images_per_s": steps * self.batch / s,
        }


def train_args(args: argparse.Namespace, size: int, model: str) -> list[str]:
    # evaluation batches of 256: at 224 px the default 1,024 takes 2.5 GB of activations; no
    # input normalization (the plain LeNet's recipe would first read every file for its mean)
    return ["--model", model, "--image-size", str(size), "--batch-size", str(args.batch_size),
            "--no-normalize",
            "--epochs", "1", "--augment", "hflip", "--device", "cpu",
            "--eval-batch-size", "256"]  # fmt: skip


def run_child(cmd: list[str], env: dict) -> tuple[str, float]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    with PeakMemory(pid=proc.pid, pss_interval_s=0.2) as mem:
        out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{out[-2000:]}")
    return out, mem.peak_pss / 1e9


def train_both(
    folder: Path, args: argparse.Namespace, size: int, seconds: float, model: str
) -> dict:
    """``convzoo train --dataset folder:PATH`` (streamed) and the same training over torchvision's
    loader, each in a fresh process, for one epoch or ``seconds``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    common = [*train_args(args, size, model), "--seconds", str(seconds)]
    with tempfile.TemporaryDirectory() as tmp:
        ours_cmd = [sys.executable, __file__, "--ours", f"folder:{folder}", *common,
                    "--out", f"{tmp}/run", "--in-memory", "no"]  # fmt: skip
        out, peak = run_child(ours_cmd, env)
    lines = out.strip().splitlines()
    ours = {**json.loads(lines[-1]), "peak_pss_gb": peak, "header": lines[:2]}
    tv_cmd = [sys.executable, __file__, "--baseline", str(folder), *common,
              "--workers", str(args.workers)]  # fmt: skip
    out, peak = run_child(tv_cmd, env)
    tv = {**json.loads(out.strip().splitlines()[-1]), "peak_pss_gb": peak}
    return {"size": size, "seconds": seconds, "model": model, "ours": ours, "torchvision": tv,
            "ratio": ours["images_per_s"] / tv["images_per_s"]}  # fmt: skip


def _child_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=0)
    p.add_argument("--batch-size", type=int)
    return p.parse_known_args(argv)


def ours(argv: list[str]) -> None:
    """convzoo's side: ``convzoo train`` itself, its steps clocked (and cut after --seconds)."""
    from convzoo.cli import main as cli
    from convzoo.train import Callback, trainer

    a, rest = _child_args(argv[2:])
    clock = StepClock(a.seconds, a.batch_size)

    class Clock(Callback):
        def on_step_end(self, t) -> None:
            t.should_stop = clock.tick() or t.should_stop

    fit = trainer.Trainer.fit

    def clocked(self, epochs):
        self.callbacks.append(Clock())
        return fit(self, epochs)

    trainer.Trainer.fit = clocked
    cli(["train", "--dataset", argv[1], "--batch-size", str(a.batch_size), *rest])
    print(json.dumps(clock.report()))


def baseline(argv: list[str]) -> None:
    """torchvision's side: ImageFolder + DataLoader, the network, batch, optimizer, precision
    and memory format convzoo's fast recipe gives it, in a plain loop."""
    from convzoo.models import create_model
    from convzoo.runtime import resolve_precision
    from convzoo.train.optim import build_optimizer
    from convzoo.train.run import resolve_config

    a, rest = _child_args(argv[2:])
    p = argparse.ArgumentParser()
    for flag in ("--model", "--image-size", "--epochs", "--augment", "--device", "--workers"):
        p.add_argument(flag)
    p.add_argument("--no-normalize", action="store_true")
    o = p.parse_known_args(rest)[0]
    cfg = resolve_config({"model": o.model, "dataset": f"folder:{argv[1]}", "device": "cpu"})
    precision = resolve_precision(cfg.precision, torch.device("cpu"))
    torch.manual_seed(0)
    net = create_model(o.model, num_classes=10, in_channels=3, **cfg.model_options)
    last = precision.dtype is not None  # channels_last with bf16, as convzoo's default
    net = net.to(memory_format=torch.channels_last) if last else net
    opt = build_optimizer(net, cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)  # fmt: skip
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    size = int(o.image_size)
    loader = tv_loader(Path(argv[1]), a.batch_size, int(o.workers), flip=True, size=size)
    clock = StepClock(a.seconds, a.batch_size)
    for x, y in loader:
        x = x.contiguous(memory_format=torch.channels_last) if last else x
        with precision.autocast():
            loss = loss_fn(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if clock.tick():
            break
    print(json.dumps(clock.report()))


def load_line() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--baseline"], ["--ours"]):
        (baseline if argv[0] == "--baseline" else ours)(argv)
        return []
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--counts", default="10000,30000,60000", help="folder sizes to read")
    p.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "convzoo-bench"))
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers, both sides")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-count", type=int, default=0, help="train on this folder")
    p.add_argument(
        "--train",
        default="28:0:speednet,224:240:lenet",
        help="training runs SIZE:SECONDS:MODEL (SECONDS 0: one whole epoch)",
    )
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = []
    counts = [int(c) for c in args.counts.split(",") if c]
    largest = max([*counts, args.train_count])
    for count in counts:
        folder = make_folder(Path(args.root), count, args.workers, largest)
        row = {"count": count, "load_before": load_line()}
        row["ours"] = timed(ours_epoch, folder, args.batch_size, args.workers)
        row["torchvision"] = timed(tv_epoch, folder, args.batch_size, args.workers)
        row["ratio"] = row["ours"]["images_per_s"] / row["torchvision"]["images_per_s"]
        rows.append(row)
        o, t = row["ours"], row["torchvision"]
        print(f"{count:>6} images, one loading epoch: ours {o['images_per_s']:,.0f}/s "
              f"({o['us_per_image']:.0f} us/image, peak {o['peak_pss_gb']:.2f} GB), torchvision "
              f"{t['images_per_s']:,.0f}/s ({t['us_per_image']:.0f} us/image, peak "
              f"{t['peak_pss_gb']:.2f} GB): {row['ratio']:.2f}x", flush=True)  # fmt: skip
    if args.train_count:
        folder = make_folder(Path(args.root), args.train_count, args.workers, largest)
        for run in args.train.split(","):
            size, seconds, model = run.split(":")
            row = {"train_count": args.train_count, "load_before": load_line()}
            row.update(train_both(folder, args, int(size), float(seconds), model))
            rows.append(row)
            o, t = row["ours"], row["torchvision"]
            what = f"{seconds} s" if float(seconds) else "one epoch"
            print(f"training ({what}), {model} at {size} px on {args.train_count} "
                  f"images: convzoo train {o['images_per_s']:,.1f}/s (peak "
                  f"{o['peak_pss_gb']:.2f} GB), torchvision {t['images_per_s']:,.1f}/s (peak "
                  f"{t['peak_pss_gb']:.2f} GB): {row['ratio']:.2f}x", flush=True)  # fmt: skip
            print("\n".join(o["header"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
