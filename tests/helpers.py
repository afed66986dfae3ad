"""Small synthetic data for fast tests (no files, no network), and shared test machinery."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from convzoo.data import ImageDataset
from convzoo.train import Callback

TESTS = Path(__file__).parent


def toy_dataset(
    n: int,
    *,
    size: int = 16,
    num_classes: int = 4,
    channels: int = 1,
    seed: int = 0,
    split: str = "train",
    name: str = "toy",
) -> ImageDataset:
    """Each class lights up its own horizontal band of the image, plus noise: learnable in a
    few steps, and unchanged by horizontal flips (the fast recipe's augmentation)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    x = torch.randint(0, 60, (n, channels, size, size), generator=g)
    band = max(1, size // num_classes)
    for c in range(num_classes):
        x[y == c, :, c * band : (c + 1) * band, :] += 150
    return ImageDataset(
        x.clamp(0, 255).to(torch.uint8),
        y,
        [f"class{c}" for c in range(num_classes)],
        name=name,
        split=split,
    )


def toy_pair(n_train: int = 256, n_test: int = 64, **kw):
    return (toy_dataset(n_train, seed=1, **kw), toy_dataset(n_test, seed=2, split="test", **kw))


def write_image_folder(root, n_train: int = 96, n_test: int = 32, **kw):
    """``toy_pair`` as PNG files in ``root/train/<class>/`` and ``root/test/<class>/``."""
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    for data in toy_pair(n_train, n_test, **kw):
        for i, (img, label) in enumerate(zip(data.images, data.labels)):
            folder = root / data.split / data.classes[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[0].numpy()).save(folder / f"{i:04d}.png")
    return root


def toy_series(
    n: int,
    *,
    length: int = 32,
    num_classes: int = 3,
    channels: int = 1,
    seed: int = 0,
    split: str = "train",
    name: str = "toy-series",
):
    """Time series (N x C x L) where each class has a bump at its own time, plus noise:
    learnable in a few steps by the 1-D models."""
    from convzoo.data import SequenceDataset

    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    x = 0.3 * torch.randn(n, channels, length, generator=g)
    width = max(1, length // num_classes)
    for c in range(num_classes):
        x[y == c, :, c * width : (c + 1) * width] += 2.0
    return SequenceDataset(x, y, [f"class{c}" for c in range(num_classes)], name=name, split=split)


def toy_series_pair(n_train: int = 96, n_test: int = 48, **kw):
    return (
        toy_series(n_train, seed=1, **kw),
        toy_series(n_test, seed=2, split="test", **kw),
    )


class CrashAt(Callback):
    """An exception after global step ``step`` (on every rank: they stop together)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("injected crash")


class StepCount(Callback):
    """The optimizer steps this process trained, and the global step it started after."""

    def __init__(self) -> None:
        self.steps, self.started_after = 0, None

    def on_step_end(self, trainer) -> None:
        if self.started_after is None:
            self.started_after = trainer.global_step - 1
        self.steps += 1


def assert_resumed(out, stdout: str, saved_step: int, count: StepCount, total: int) -> None:
    """A resume, not a restart: the process named the checkpoint it read (its first lines) and
    trained only the ``total - saved_step`` steps the checkpoint of ``saved_step`` had left.
    (On a CPU a restart from scratch ends with the same weights: they cannot tell.)"""
    assert f"resuming {Path(out) / 'checkpoint.pt'} at epoch" in stdout, stdout
    assert (count.started_after, count.steps) == (saved_step, total - saved_step), (
        f"trained {count.steps} steps after global step {count.started_after}; expected "
        f"{total - saved_step} after {saved_step}"
    )


def run_torchrun(
    script: Path, *args: str, cwd: Path, restarts: int = 0, env: dict | None = None,
    timeout: float = 240,
) -> str:  # fmt: skip
    """``script`` in 2 processes under ``python -m torch.distributed.run --standalone`` (gloo on
    the CPU, one thread each, src and tests importable); its output. A non-zero exit or a run
    past ``timeout`` seconds fails the test (torchrun stops its workers on SIGTERM)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "--max-restarts", str(restarts), str(script), *args]  # fmt: skip
    path = os.pathsep.join(
        [str(TESTS.parent / "src"), str(TESTS), os.environ.get("PYTHONPATH", "")]
    )
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **(env or {})}
    env.pop("RANK", None)
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f"torchrun timed out:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    return out


def cli(capsys, *args) -> tuple[int, str, str]:
    from convzoo.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
