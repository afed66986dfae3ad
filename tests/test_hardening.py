"""Regression tests for the defects issue 18 found by trying convzoo as a new user would, each
through the command line (in-process: ``convzoo.cli.main``, the same code as the console
script) or the Python API. The soak suite that found them at scale is ``make soak``."""

import io
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import convzoo
from convzoo.cli import main
from convzoo.errors import CheckpointError, ConvzooError, DataError, RunInUseError, StorageError
from convzoo.io import load_checkpoint, load_weights, save_weights
from convzoo.train import Callback
from convzoo.train.config import ConfigError
from convzoo.train.run import resolve_config, train
from convzoo.train.runlock import LOCK_NAME, RunLock
from helpers import StepCount, assert_resumed, cli, one_line, toy_pair, write_image_folder

TINY = ["-o", "width=8", "--batch-size", "16", "--device", "cpu", "--precision", "fp32"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("toy") / "imgs", n_train=64, n_test=16)


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    """A finished one-epoch run on the image folder, trained through the CLI."""
    out = tmp_path_factory.mktemp("runs") / "run"
    argv = ["train", "--dataset", f"folder:{folder}", "--epochs", "1", *TINY, "--out", out]
    assert main([str(a) for a in argv]) == 0
    return out


def train_args(folder, out, *extra):
    return ["train", "--dataset", f"folder:{folder}", "--epochs", "2", *TINY, "--out", out, *extra]


# -- --skip-bad-images and hidden files ---------------------------------------------------------
def test_skip_bad_images_is_taken_where_the_error_sends_users(folder, run, tmp_path, capsys):
    bad = tmp_path / "imgs"
    write_image_folder(bad, n_train=32, n_test=16)
    junk = bad / "train" / "class1" / "junk.png"
    junk.write_bytes(b"not a png")
    code, _, err = cli(capsys, *train_args(bad, tmp_path / "a"))
    assert code == 2 and str(junk) in one_line(err) and "--skip-bad-images" in err
    code, out, err = cli(capsys, *train_args(bad, tmp_path / "b", "--skip-bad-images"))
    assert code == 0, err
    assert json.loads((tmp_path / "b" / "config.json").read_text())["skip_bad_images"] is True
    code, out, err = cli(
        capsys, "evaluate", tmp_path / "b", "--split", "train", "--skip-bad-images"
    )
    assert code == 0 and "accuracy" in out, err
    code, out, err = cli(
        capsys, "finetune", run, "--dataset", f"folder:{bad}", "--epochs", "1",
        "--batch-size", "16", "--device", "cpu", "--out", tmp_path / "c", "--skip-bad-images",
    )  # fmt: skip
    assert code == 0, err


def test_hidden_files_are_not_images(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train=16, n_test=8)
    cls = root / "train" / "class0"
    before = len(convzoo.load_dataset(f"folder:{root}"))
    image = next(cls.glob("*.png")).read_bytes()
    (cls / ".x.png").write_bytes(image)
    (cls / "._x.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (cls / ".thumbs").mkdir()
    (cls / ".thumbs" / "t.png").write_bytes(image)
    assert len(convzoo.load_dataset(f"folder:{root}")) == before


# -- folders: links, one image per class, one class, relative paths ------------------------------
def test_symlink_loops_are_entered_once(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train=16, n_test=8)
    n = len(convzoo.load_dataset(f"folder:{root}"))
    (root / "train" / "class0" / "loop").symlink_to(root / "train" / "class0")
    (root / "train" / "class1" / "up").symlink_to(root)
    (root / "train" / "class2" / "other").symlink_to(root / "train" / "class3")
    outside = write_image_folder(tmp_path / "elsewhere", n_train=8, n_test=4)
    (root / "train" / "class3" / "more").symlink_to(outside / "train" / "class3")
    extra = len(list((outside / "train" / "class3").glob("*.png")))
    assert len(convzoo.load_dataset(f"folder:{root}")) == n + extra  # links out are followed


def test_too_few_images_and_a_single_class_are_one_clear_line(tmp_path):
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp_path / "one" / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "one" / name / "0.png")
    with pytest.raises(DataError, match="each class needs 3 images or more"):
        convzoo.load_dataset(f"folder:{tmp_path / 'one'}", "test")
    (tmp_path / "single" / "cat").mkdir(parents=True)
    for i in range(5):
        Image.new("L", (8, 8)).save(tmp_path / "single" / "cat" / f"{i}.png")
    with pytest.raises(DataError, match="only one class folder"):
        convzoo.load_dataset(f"folder:{tmp_path / 'single'}")


def test_a_relative_folder_is_saved_absolute(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(folder.parent)
    cfg = resolve_config({"dataset": f"folder:{folder.name}"})
    assert cfg.dataset == f"folder:{folder}"
    code, _, err = cli(capsys, *train_args(folder.name, tmp_path / "rel", "--epochs", "1"))
    assert code == 0, err
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "evaluate", tmp_path / "rel")
    assert code == 0 and "accuracy" in out, err


def test_predict_takes_a_folder_and_evaluate_warns_of_other_class_names(
    run, folder, tmp_path, capsys
):
    code, out, err = cli(capsys, "predict", run, folder / "test" / "class2")
    assert code == 0, err
    assert len(out.splitlines()) == len(list((folder / "test" / "class2").glob("*.png")))
    renamed = tmp_path / "renamed"
    write_image_folder(renamed, n_train=16, n_test=8)
    (renamed / "train" / "class0").rename(renamed / "train" / "zebra")
    (renamed / "test" / "class0").rename(renamed / "test" / "zebra")
    code, out, err = cli(capsys, "evaluate", run, "--dataset", f"folder:{renamed}")
    assert code == 0 and "accuracy" in out
    assert "warning:" in err and "'class1' vs 'class0'" in err


# -- one line instead of a traceback -------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "relu"], "model option 'relu' is not KEY=VALUE"),
        (["--lr", "inf"], "learning rate must be > 0 and finite"),
        (["--eval-batch-size", "0"], "eval batch size must be >= 1"),
    ],
)
def test_bad_train_flags_are_one_line(folder, tmp_path, capsys, args, message):
    code, _, err = cli(capsys, *train_args(folder, tmp_path / "run", *args))
    assert code == 2 and message in one_line(err)
    assert not (tmp_path / "run").exists()


def test_out_naming_a_file_or_an_impossible_place(folder, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = cli(capsys, *train_args(folder, tmp_path / "file"))
    assert code == 2 and "is a file, not a folder" in one_line(err)
    code, _, err = cli(capsys, *train_args(folder, tmp_path / "file" / "run"))
    assert code == 2 and "cannot create the run directory" in one_line(err)
    assert (tmp_path / "file").read_text() == "x"


def test_evaluate_and_predict_flags_are_checked(run, folder, capsys):
    image = next((folder / "test" / "class0").glob("*.png"))
    for args, message in [
        (["predict", run, image, "--top-k", "-1"], "--top-k must be >= 1"),
        (["evaluate", run, "--batch-size", "0"], "--batch-size must be >= 1"),
    ]:
        code, _, err = cli(capsys, *args)
        assert code == 2 and message in one_line(err)


def test_a_decompression_bomb_is_refused_in_one_line(run, tmp_path, capsys):
    from PIL import Image

    bomb = tmp_path / "bomb.png"
    side = math.isqrt(Image.MAX_IMAGE_PIXELS) + 1  # just over PIL's limit: PIL only warns
    Image.new("1", (side, side)).save(bomb)
    assert bomb.stat().st_size < 2_000_000
    code, _, err = cli(capsys, "predict", run, bomb)
    assert code == 2 and "decompression-bomb limit" in one_line(err) and str(bomb) in err


def test_nan_weights_are_refused(run, folder, tmp_path, capsys):
    tensors, meta = load_weights(run / "model.safetensors")
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_weights(tmp_path / "model.safetensors", tensors, meta)
    image = next((folder / "test" / "class0").glob("*.png"))
    code, out, err = cli(capsys, "predict", tmp_path / "model.safetensors", image)
    assert code == 2 and f"{name} holds NaN" in one_line(err) and out == ""


def test_a_first_nan_loss_in_finetuning_names_the_source_weights(run, folder, tmp_path, capsys):
    # huge but finite weights (a damaged file; the soak's fuzz flipped exponent bits) pass the
    # NaN check and make the very first loss NaN: the line must point at the file
    tensors, meta = load_weights(run / "model.safetensors")
    head = [k for k, v in tensors.items() if v.is_floating_point() and v.dim() == 2][-1]
    tensors[head] = torch.full_like(tensors[head], 3e38)
    save_weights(tmp_path / "model.safetensors", tensors, meta)
    argv = ["finetune", tmp_path / "model.safetensors", "--dataset", f"folder:{folder}"]
    code, _, err = cli(capsys, *argv, "--epochs", "1", *TINY[2:], "--out", tmp_path / "ft")
    line = one_line(err)
    assert code == 3 and "loss became nan at epoch 1, step 1" in line
    assert f"the weights of {tmp_path / 'model.safetensors'} may be damaged" in line


# -- the Python API: unknown keywords, subset=, skip_bad_images= ---------------------------------
def test_fit_refuses_unknown_keywords_and_honours_subset(tmp_path):
    data = toy_pair(64, 32)
    with pytest.raises(ConfigError, match="unknown keyword epoch=; did you mean epochs="):
        convzoo.fit("speednet", data, epoch=1, verbose=False)
    with pytest.raises(ConfigError, match="skip_bad_images= applies to folder: data sets"):
        convzoo.fit("speednet", data, epochs=1, skip_bad_images=True, verbose=False)
    history = convzoo.fit(
        "speednet", data, epochs=1, batch_size=16, device="cpu", subset="classes=0-1",
        model_options={"width": 8}, out=tmp_path / "run", verbose=False,
    )  # fmt: skip
    meta = convzoo.load_model(history.run_dir).meta
    assert meta.classes == ["class0", "class1"] and meta.subset == "classes=0-1"
    from convzoo.finetuning import finetune

    with pytest.raises(ConfigError, match="unknown keyword epoch="):
        finetune(history.run_dir, data, epoch=1, verbose=False)


# -- runs: resume, interrupts, full disk, two writers --------------------------------------------
def small(tmp_path, **kw):
    values = dict(
        model="speednet", model_options={"width": 8}, epochs=2, batch_size=16, device="cpu",
        precision="fp32", dataset="toy", out=str(tmp_path / "run"), ckpt_every=2,
    )  # fmt: skip
    values.update(kw)
    return resolve_config(values)


def weights_of(run_dir):
    return load_weights(Path(run_dir) / "model.safetensors")[0]


def same_weights(a, b):
    wa, wb = weights_of(a), weights_of(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run the resumed ones must equal bitwise, and its step count."""
    cfg, count = small(tmp_path_factory.mktemp("ref")), StepCount()
    result = train(cfg, data=toy_pair(128, 32), callbacks=[count], stdout=io.StringIO())
    result.steps = count.steps
    return result


def resume_and_check(cfg, reference, saved_step: int) -> None:
    """Resume ``cfg.out``: a resume from ``saved_step`` (not a restart), bitwise the same run."""
    count, log = StepCount(), io.StringIO()
    train(cfg, data=toy_pair(128, 32), resume=cfg.out, callbacks=[count], stdout=log)
    assert_resumed(cfg.out, log.getvalue(), saved_step, count, reference.steps)
    assert same_weights(reference.run_dir, cfg.out)


class SignalAt(Callback):
    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_step_end(self, trainer) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.fixture
def default_sigint():
    """SIGINT at Python's default for the test. A suite started in the background by a shell
    (`make test &`) inherits SIGINT ignored, and convzoo rightly leaves an ignored signal
    alone (as nohup expects); these tests are about the default."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_keeps_a_checkpoint_says_where_and_resumes_exactly(
    tmp_path, reference, signum, code, default_sigint
):
    from convzoo.errors import Interrupted

    cfg = small(tmp_path)
    with pytest.raises(Interrupted) as e:
        train(cfg, data=toy_pair(128, 32), callbacks=[SignalAt(5, signum)], stdout=io.StringIO())
    assert e.value.exit_code == code
    assert str(e.value) == (
        f"interrupted: checkpoint at epoch 1 step 5 kept in {cfg.out}; resume with "
        f"convzoo train --resume {cfg.out}"
    )
    assert load_checkpoint(Path(cfg.out) / "checkpoint.pt")["trainer"]["global_step"] == 5
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are given back
    resume_and_check(cfg, reference, 5)


def test_an_ignored_sigint_stays_ignored_while_training(tmp_path):
    """A run started under nohup or in the background keeps ignoring Ctrl-C, as asked."""

    class Look(Callback):
        def on_step_end(self, trainer) -> None:
            seen.append(signal.getsignal(signal.SIGINT))

    seen: list = []
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cfg = small(tmp_path, epochs=1)
        train(cfg, data=toy_pair(32, 16), callbacks=[Look()], stdout=io.StringIO())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen and all(h is signal.SIG_IGN for h in seen)


def test_a_run_that_died_before_its_first_checkpoint_can_go_on(folder, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".convzoo.lock").write_text("pid 1 (dead)\n")
    code, _, err = cli(capsys, *train_args(folder, out, "--epochs", "1"))
    assert code == 0, err  # a lock file alone: nothing there yet
    (out / "checkpoint.pt").unlink()
    for name in ("model.safetensors", "best.safetensors", "metrics.json"):
        (out / name).unlink(missing_ok=True)
    code, _, err = cli(capsys, *train_args(folder, out, "--epochs", "1"))
    assert code == 2 and f"start it over with --resume {out}" in one_line(err)
    code, stdout, err = cli(capsys, *train_args(folder, out, "--epochs", "1", "--auto-resume"))
    assert code == 0 and (out / "model.safetensors").exists(), err
    (out / "checkpoint.pt").unlink()
    code, stdout, err = cli(capsys, "train", "--resume", out)
    assert code == 0 and "starting over" in stdout, err


def test_a_start_killed_while_writing_its_config_goes_on_with_auto_resume(folder, tmp_path, capsys):
    """SIGKILLed in its first write, a run leaves only config.json's temporary file (the kill
    soak met it): the same command with --auto-resume starts over there and removes it."""
    out = tmp_path / "run"
    out.mkdir()
    (out / ".config.json.k1ll3d.tmp").write_text('{"model": ')
    code, _, err = cli(capsys, *train_args(folder, out, "--epochs", "1"))
    assert code == 2 and "exists and is not empty" in one_line(err)  # without: not ours to take
    code, _, err = cli(capsys, *train_args(folder, out, "--epochs", "1", "--auto-resume"))
    assert code == 0 and (out / "model.safetensors").exists(), err
    assert not list(out.glob(".*.tmp"))


def files(run_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.name != LOCK_NAME}


def test_resuming_a_finished_run_says_so_and_writes_nothing(run, capsys):
    before = files(run)
    code, _, err = cli(capsys, "train", "--resume", run)
    assert code == 2 and "is finished" in one_line(err) and "--epochs N" in err
    config = json.loads((run / "config.json").read_text())
    argv = ["train", "--dataset", config["dataset"], "--epochs", "1", *TINY, "--out", run]
    code, out, err = cli(capsys, *argv, "--auto-resume")
    assert code == 0 and "is finished" in out, err  # the same command again: nothing to do
    assert before == files(run)


def test_another_runs_checkpoint_is_refused(run, folder, tmp_path, capsys):
    other = tmp_path / "other"
    assert main([str(a) for a in train_args(folder, other, "--epochs", "1", "--lr", "0.1")]) == 0
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in run.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "metrics.json").unlink()
    (copy / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    code, _, err = cli(capsys, "train", "--resume", copy)
    assert code == 2 and "belongs to another run (lr=0.1 there" in one_line(err)


def test_a_full_disk_keeps_the_last_checkpoint_and_resumes(tmp_path, reference, monkeypatch):
    import errno

    import convzoo.io

    cfg = small(tmp_path)
    real_fsync, saves = os.fsync, []

    def fsync(fd):  # the third checkpoint finds the disk full
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(".checkpoint.pt."):
            saves.append(fd)
            if len(saves) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(convzoo.io.os, "fsync", fsync)
    with pytest.raises(StorageError) as e:
        train(cfg, data=toy_pair(128, 32), stdout=io.StringIO())
    message = str(e.value)
    assert "No space left on device" in message and "previous checkpoint.pt is intact" in message
    assert f"resume with convzoo train --resume {cfg.out}" in message and "\n" not in message
    assert e.value.exit_code == 74
    assert load_checkpoint(Path(cfg.out) / "checkpoint.pt")["trainer"]["global_step"] == 4
    assert not list(Path(cfg.out).glob(".*.tmp"))
    monkeypatch.setattr(convzoo.io.os, "fsync", real_fsync)
    resume_and_check(cfg, reference, 4)


def test_two_writers_are_refused_and_a_dead_ones_lock_does_not_count(tmp_path, folder, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):  # a live run holds it
        with pytest.raises(RunInUseError, match=f"{out} is in use by another convzoo process"):
            train(small(tmp_path), data=toy_pair(64, 16), stdout=io.StringIO())
        code, _, err = cli(capsys, *train_args(folder, out, "--auto-resume"))
        assert code == 2 and "is in use" in one_line(err) and f"pid {os.getpid()}" in err
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from convzoo.train.runlock import RunLock;"
         f"RunLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunInUseError):
        RunLock(out).acquire()
    holder.kill()
    holder.wait()
    RunLock(out).acquire().release()  # the kernel dropped the dead process's lock


def test_the_malicious_pickle_refusal_says_what_and_why(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "convzoo-checkpoint", "trainer": {"x": Evil()}}, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert "more than tensors and plain values" in message and "posix.system" in message
    assert "weights_only=True" in message and "will likely succeed" not in message


def test_storage_errors_and_locks_are_convzoo_errors():
    assert issubclass(StorageError, ConvzooError) and issubclass(RunInUseError, ConvzooError)
