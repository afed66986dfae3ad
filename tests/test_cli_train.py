"""``convzoo train / evaluate / predict`` as a user runs them (subprocesses, toy image folder)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import write_image_folder

MARKER = "/tmp/convzoo-cli-pwned"


def cli(*args, cwd=None):
    env = {**os.environ, "CONVZOO_SYSTEM_DATA": "", "CONVZOO_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "convzoo", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("toy") / "imgs")


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    r = cli(
        "train",
        "--dataset",
        f"folder:{folder}",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--out",
        out,
        "--ckpt-every",
        "5",
    )
    assert r.returncode == 0, r.stderr
    return out, r


def test_train_prints_header_epoch_lines_and_where_it_saved(run):
    out, r = run
    lines = r.stdout.splitlines()
    assert lines[0].startswith("model speednet (") and "parameters" in lines[0]
    assert "recipe fast" in lines[1] and "device cpu" in lines[1]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 3
    # validated every epoch; the test set is scored once, for the kept weights
    assert "loss" in epochs[0] and "train acc" in epochs[0] and "val acc" in epochs[0]
    assert "test acc" not in epochs[0] and any(x.startswith("test acc") for x in lines[-3:])
    assert "examples/sec" in epochs[0]
    assert lines[-1].startswith(f"saved run to {out}")
    for name in (
        "config.json",
        "history.csv",
        "curves.png",
        "confusion.png",
        "metrics.json",
        "model.safetensors",
        "checkpoint.pt",
    ):
        assert (out / name).stat().st_size > 0


def test_resume_extends_a_finished_run(run, tmp_path):
    out, _ = run
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in out.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    r = cli("train", "--resume", copy, "--epochs", "4")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout and "epoch 4/4" in r.stdout
    assert len((copy / "history.csv").read_text().splitlines()) == 5


def test_evaluate_and_predict(run, folder):
    out, _ = run
    r = cli("evaluate", out, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stdout and "class0" in r.stdout
    # the weights metrics.json scored (the kept ones) on the same test images: the same figures
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"accuracy {metrics['test_acc']:.4f}, loss {metrics['test_loss']:.4f} (32 images)" in (
        r.stdout
    )
    for cls, acc in metrics["per_class_acc"].items():
        assert f"  {cls}  {acc:.4f}\n" in r.stdout, cls
    assert list(out.glob("confusion-*.png"))
    images = sorted((folder / "test" / "class2").glob("*.png"))[:2]
    r = cli("predict", out, *images, "--top-k", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    assert all(line.split(": ")[1].startswith("class2 ") for line in lines), r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet19"], "unknown model 'resnet19'"),
        (["--recipe", "slow"], "unknown recipe 'slow'"),
        (["--lr", "0"], "learning rate must be > 0"),
        (["--lr", "-0.1"], "learning rate must be > 0"),
        (["--model", "alexnet", "--image-size", "32"], "at least 65x65"),
        (["--dataset", "imagenet"], "imagenet"),
        (["--device", "cuda:3"], "cuda"),
        (["--subset", "classes=7-9"], "outside"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(folder, tmp_path, args, message):
    out = tmp_path / "run"
    r = cli("train", "--dataset", f"folder:{folder}", "--epochs", "1", "--out", out, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    assert not out.exists()


def test_resume_with_another_model_keeps_the_run(run):
    out, _ = run
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    r = cli("train", "--resume", out, "--model", "lenet")
    assert r.returncode == 2 and "cannot resume" in r.stderr and "Traceback" not in r.stderr
    assert before == {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def test_malicious_checkpoint_is_refused_and_runs_nothing(run, tmp_path):
    out, _ = run
    bad = tmp_path / "evil"
    bad.mkdir()
    (bad / "config.json").write_text((out / "config.json").read_text())
    torch.save({"format": "convzoo-checkpoint", "trainer": Evil()}, bad / "checkpoint.pt")
    if os.path.exists(MARKER):
        os.remove(MARKER)
    r = cli("train", "--resume", bad)
    assert r.returncode == 2 and "refused" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(MARKER)


def test_truncated_weights_and_missing_run(run, tmp_path):
    out, _ = run
    broken = tmp_path / "model.safetensors"
    broken.write_bytes((out / "model.safetensors").read_bytes()[:1000])
    for args in (
        ["evaluate", broken],
        ["evaluate", tmp_path / "nope"],
        ["predict", broken, "x.png"],
    ):
        r = cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_nan_guard_exits_nonzero_naming_epoch_and_step(folder, tmp_path):
    out = tmp_path / "run"
    r = cli(
        "train",
        "--dataset",
        f"folder:{folder}",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--lr",
        "1e30",
        "--schedule",
        "constant",
        "--out",
        out,
        "--ckpt-every",
        "1",
    )
    assert r.returncode == 3, r.stdout + r.stderr
    assert "the loss became" in r.stderr and "epoch 1, step" in r.stderr
    assert "Traceback" not in r.stderr
    assert (out / "checkpoint.pt").exists() and not (out / "model.safetensors").exists()
    assert Path(out / "config.json").exists()
