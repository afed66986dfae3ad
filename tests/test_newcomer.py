"""What a newcomer met on a first try, each as they met it: the command line in-process
(``convzoo.cli.main``), the Python API where the figure lives there."""

import contextlib
import io
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convzoo
from convzoo.cli import main
from convzoo.errors import RunInUseError
from convzoo.train import History
from convzoo.train.run import resolve_config, train
from convzoo.train.runlock import LOCK_NAME, RunLock
from convzoo.viz import plot_curves
from helpers import CrashAt, StepCount, cli, one_line, toy_pair, write_image_folder

TINY = ["-o", "width=8", "--batch-size", "16", "--device", "cpu", "--precision", "fp32"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("toy") / "imgs", n_train=64, n_test=16)


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    """A finished one-epoch run on the image folder, and what it printed."""
    out = tmp_path_factory.mktemp("runs") / "run"
    argv = ["train", "--dataset", f"folder:{folder}", "--epochs", "1", *TINY, "--out", out]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main([str(a) for a in argv]) == 0
    return out, stdout.getvalue()


def test_evaluate_on_a_folder_that_is_no_run_says_so(run, folder, tmp_path, capsys):
    code, _, err = cli(capsys, "evaluate", folder)
    line = one_line(err)
    assert code == 2 and f"{folder} is not a convzoo run directory" in line, line
    assert "resume" not in line and ".safetensors" in line
    started = tmp_path / "started"  # a run with its config but no weights yet: resume it
    started.mkdir()
    (started / "config.json").write_text((run[0] / "config.json").read_text())
    code, _, err = cli(capsys, "evaluate", started)
    assert code == 2 and f"convzoo train --resume {started}" in one_line(err)


@pytest.mark.parametrize("kind", ["folder", "csv"])
def test_a_path_given_as_data_set_suggests_its_prefix(folder, tmp_path, capsys, kind):
    path = folder if kind == "folder" else tmp_path / "labels.csv"
    path.touch()
    code, _, err = cli(capsys, "train", "--dataset", path, "--out", tmp_path / "run")
    assert code == 2 and f"did you mean {kind}:{path}?" in one_line(err), err
    code, _, err = cli(capsys, "train", "--dataset", tmp_path / "nope", "--out", tmp_path / "r")
    assert code == 2 and "did you mean" not in one_line(err)


def test_a_resumed_epoch_reports_the_rate_of_what_it_trained(tmp_path):
    values = dict(model="speednet", model_options={"width": 8}, epochs=1, batch_size=16,
                  device="cpu", precision="fp32", dataset="toy", out=str(tmp_path / "run"),
                  ckpt_every=2)  # fmt: skip
    cfg = resolve_config(values)
    with pytest.raises(RuntimeError, match="injected crash"):
        train(cfg, data=toy_pair(128, 32), callbacks=[CrashAt(4)], stdout=io.StringIO())
    count = StepCount()
    result = train(
        cfg, data=toy_pair(128, 32), resume=cfg.out, callbacks=[count], stdout=io.StringIO()
    )
    record = result.history.last
    assert count.started_after == 4 and count.steps > 0
    # full batches of 16 (drop_last): the examples this process trained over its own time
    trained = record["examples_per_sec"] * record["epoch_time_s"]
    assert trained == pytest.approx(count.steps * 16), (trained, count.steps)


def test_the_header_names_the_strategy_and_one_epoch_is_singular(run):
    _, stdout = run
    assert "strategy single" in stdout.splitlines()[1]
    assert "recipe fast: 1 epoch," in stdout and "1 epochs" not in stdout
    caption = History.from_records([{"epoch": 1.0, "elapsed_s": 1.0}])._caption()
    assert caption.startswith("1 epoch in") and "epochs" not in caption, caption


def test_one_epochs_curves_have_whole_epochs_and_no_label_over_them(run):
    out, _ = run
    records = [{"epoch": 1.0, "loss": 1.2, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.6}]
    history = History.from_records(records)
    fig = plot_curves(history)
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks == [1] and hi - lo >= 1, (ticks, lo, hi)
        assert not ax.texts  # nothing drawn over the curves
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "kept: best val 0.6000" in legend
    assert (out / "curves.png").stat().st_size > 0


def test_a_run_leaves_no_lock_whether_it_ends_well_or_not(run, folder, tmp_path, capsys):
    assert not (run[0] / LOCK_NAME).exists()
    nan = ["--lr", "1e30", "--schedule", "constant", "--out", tmp_path / "nan"]
    code, _, _ = cli(capsys, "train", "--dataset", f"folder:{folder}", *TINY, *nan)
    assert code == 3 and not (tmp_path / "nan" / LOCK_NAME).exists()

    class Stop(convzoo.train.Callback):
        def on_step_end(self, trainer):
            raise KeyboardInterrupt

    cfg = resolve_config(dict(model="speednet", model_options={"width": 8}, epochs=1,
                              batch_size=16, device="cpu", dataset="toy",
                              out=str(tmp_path / "ctrl-c")))  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data=toy_pair(64, 16), callbacks=[Stop()], stdout=io.StringIO())
    assert not (tmp_path / "ctrl-c" / LOCK_NAME).exists()


def test_a_lock_taken_as_its_file_is_removed_is_taken_again(tmp_path, monkeypatch):
    """A run that ends removes its lock file while a second run has it open: the second must
    lock the file now in the folder, or a third would lock that one too."""
    import convzoo.train.runlock as runlock

    first = RunLock(tmp_path).acquire()
    real_try, calls = runlock._try_lock, []

    def try_lock(fd):  # the first run ends between the second's open and its lock
        calls.append(fd)
        if len(calls) == 1:
            first.release()
        return real_try(fd)

    monkeypatch.setattr(runlock, "_try_lock", try_lock)
    second = RunLock(tmp_path).acquire()
    monkeypatch.setattr(runlock, "_try_lock", real_try)
    with pytest.raises(RunInUseError):
        RunLock(tmp_path).acquire()
    second.release()
    assert not (tmp_path / LOCK_NAME).exists()
    RunLock(tmp_path).acquire().release()


def test_predict_warns_of_images_unlike_the_training_data(run, folder, tmp_path, capsys):
    out, _ = run
    plain = sorted((folder / "test" / "class2").glob("*.png"))[0]
    pixels = np.array(Image.open(plain))
    Image.fromarray(255 - pixels).save(tmp_path / "inverted.png")
    Image.fromarray(np.stack([pixels, pixels // 2, pixels // 3], -1)).save(tmp_path / "red.png")
    code, stdout, err = cli(capsys, "predict", out, plain)
    assert code == 0 and err == "", err
    code, stdout, err = cli(capsys, "predict", out, plain, *sorted(tmp_path.glob("*.png")))
    line = one_line(err)
    assert code == 0 and len(stdout.splitlines()) == 3
    assert line.startswith("warning: 2 of 3 images unlike the training data"), line
    assert "inverted.png brighter" in line and "light on dark" in line
    assert "red.png in colour (the training images were gray)" in line
    net = convzoo.load_model(out)
    with pytest.warns(UserWarning, match="image 0 brighter"):
        convzoo.predict(net, 1 - np.asarray(pixels, np.float32)[..., None] / 255)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convzoo.predict(net, str(plain))


def test_the_tours_example_image_ships_with_the_docs():
    image = Path(__file__).parents[1] / "docs" / "boot.png"
    assert image.stat().st_size < 50_000
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "docs/boot.png" in readme
    assert not math.isnan(np.asarray(Image.open(image)).mean())
