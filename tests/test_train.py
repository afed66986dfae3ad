import io
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import convzoo
from convzoo.errors import CheckpointError, ConvzooError, InputSizeError
from convzoo.io import load_checkpoint, load_weights
from convzoo.train import Callback, NonFiniteLossError, TrainConfig, train
from convzoo.train.config import ConfigError
from convzoo.train.recipes import BOOK_SETTINGS
from convzoo.train.run import resolve_config
from convzoo.train.rundir import resume_config
from convzoo.trained import evaluate, load_model
from helpers import CrashAt, StepCount, assert_resumed, toy_pair

# A VGG with dropout (its randomness must be restored exactly on resume), small enough for tests
SMALL_VGG = {"conv_arch": [[1, 8], [1, 16]], "hidden": 32}


def small_cfg(tmp_path: Path, **kw) -> TrainConfig:
    values = dict(
        model="vgg11",
        model_options=SMALL_VGG,
        epochs=3,
        batch_size=32,
        lr=0.05,
        optimizer="nesterov",
        precision="fp32",
        image_size=16,
        augment="",
        out=str(tmp_path / "run"),
        dataset="toy",
        device="cpu",
    )
    values.update(kw)
    return resolve_config(values)


def test_fit_end_to_end_writes_a_complete_run(tmp_path):
    data = toy_pair()
    history = convzoo.fit(
        "speednet",
        data,
        epochs=3,
        batch_size=32,
        augment="",
        out=tmp_path / "run",
        verbose=False,
        device="cpu",
        test_every=1,  # the fast recipe tests once, at the end
    )
    assert len(history) == 3
    for key in ("loss", "train_acc", "test_acc", "lr", "examples_per_sec", "epoch_time_s"):
        assert all(math.isfinite(r[key]) for r in history.records), key
    assert history.last["test_acc"] > 0.9  # the toy classes are easy
    run = history.run_dir
    for name in (
        "config.json",
        "history.csv",
        "curves.png",
        "confusion.png",
        "metrics.json",
        "model.safetensors",
        "checkpoint.pt",
    ):
        assert (run / name).stat().st_size > 0, name
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (run / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,loss,train_acc") and len(lines) == 4
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["per_class_acc"]) == {"class0", "class1", "class2", "class3"}
    # metrics.json scores the kept weights: those of the epoch chosen on validation accuracy
    kept = history.records[metrics["best_epoch"] - 1]
    assert metrics["val_acc"] == max(history.column("val_acc")) == kept["val_acc"]
    assert metrics["test_acc"] == kept["test_acc"]
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "speednet" and config["epochs"] == 3 and config["recipe"] == "fast"
    assert not list(run.glob(".*.tmp"))


def test_saved_weights_rebuild_the_model_for_evaluate_and_predict(tmp_path):
    train_data, test_data = toy_pair()
    result = train(small_cfg(tmp_path), data=(train_data, test_data), stdout=io.StringIO())
    model = load_model(result.run_dir)
    assert model.meta.model == "vgg11" and model.meta.classes == test_data.classes
    out = evaluate(model, test_data, device="cpu")
    assert out.acc == pytest.approx(result.metrics["test_acc"])
    assert out.confusion.sum() == len(test_data)
    # predict on image files of another size and mode than the training data
    from PIL import Image

    paths = []
    for i in range(8):
        img = test_data.images[i, 0].numpy()
        p = tmp_path / f"img{i}.png"
        Image.fromarray(img).convert("RGB").resize((40, 40)).save(p)
        paths.append(str(p))
    top = convzoo.predict(model, paths, device="cpu").top(2)
    assert all(len(t) == 2 and 0 <= t[0][1] <= 1 and t[0][1] >= t[1][1] for t in top)
    hits = sum(t[0][0] == test_data.classes[int(test_data.labels[i])] for i, t in enumerate(top))
    assert hits >= 6


def _weights(run_dir):
    return load_weights(Path(run_dir) / "model.safetensors")[0]


def test_resume_after_an_exception_is_bitwise_identical(tmp_path):
    data = toy_pair()
    quiet = io.StringIO()
    steps = StepCount()
    full = train(
        small_cfg(tmp_path / "a", ckpt_every=3), data=data, callbacks=[steps], stdout=quiet
    )
    crashed_cfg = small_cfg(tmp_path / "b", ckpt_every=3)
    with pytest.raises(RuntimeError, match="injected"):
        train(crashed_cfg, data=data, callbacks=[CrashAt(13)], stdout=quiet)
    state = load_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")
    assert state["trainer"]["global_step"] == 12  # the last checkpoint before the crash
    count, log = StepCount(), io.StringIO()
    resumed = train(
        resume_config(crashed_cfg.out, {}),
        data=data,
        resume=crashed_cfg.out,
        callbacks=[count],
        stdout=log,
    )
    assert_resumed(crashed_cfg.out, log.getvalue(), 12, count, total=steps.steps)
    a, b = _weights(full.run_dir), _weights(resumed.run_dir)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in full.history.records] == [r["loss"] for r in resumed.history.records]


KILL_SCRIPT = r"""
import sys, os
sys.path.insert(0, {tests!r})
from helpers import StepCount, toy_pair
from convzoo.train.run import resolve_config, train
from convzoo.train.rundir import resume_config
out = sys.argv[1]
data = toy_pair(512, 64)
count = StepCount()
if len(sys.argv) > 2:
    train(resume_config(out, {{}}), data=data, resume=out, callbacks=[count])
else:
    cfg = resolve_config(dict(model="vgg11", model_options={{"conv_arch": [[1, 8], [1, 16]],
        "hidden": 32}}, epochs=3, batch_size=16, lr=0.05, optimizer="nesterov",
        precision="fp32", image_size=16, augment="", out=out, dataset="toy", device="cpu",
        ckpt_every=1))
    train(cfg, data=data, callbacks=[count])
print("STEPS", count.started_after, count.steps)
"""


def _step_count(stdout: str) -> StepCount:
    count = StepCount()
    _, after, steps = stdout.strip().splitlines()[-1].split()
    count.started_after, count.steps = int(after), int(steps)
    return count


@pytest.mark.slow
def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    import random
    import time

    script = tmp_path / "job.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = [sys.executable, str(script)]
    full = subprocess.run([*run, str(tmp_path / "full")], check=True, env=env, capture_output=True)
    total = _step_count(full.stdout.decode()).steps
    # Kill somewhere after the first checkpoint, maybe mid-save. On a fast machine the whole
    # job takes about a second, so a kill that comes too late is retried sooner.
    for delay in (random.uniform(0.0, 0.4), 0.05, 0.0):
        victim = tmp_path / f"killed-{delay:.3f}"
        proc = subprocess.Popen(
            [*run, str(victim)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        ckpt = victim / "checkpoint.pt"
        deadline = time.time() + 120
        while not ckpt.exists() and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        if not (victim / "model.safetensors").exists():
            break
    assert not (victim / "model.safetensors").exists(), "every run finished before its kill"
    # the latest checkpoint is complete despite the kill
    saved = load_checkpoint(ckpt)["trainer"]["global_step"]
    resumed = subprocess.run(
        [*run, str(victim), "resume"], check=True, env=env, capture_output=True
    ).stdout.decode()
    assert_resumed(victim, resumed, saved, _step_count(resumed), total)
    a, b = _weights(tmp_path / "full"), _weights(victim)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(victim.glob(".*.tmp"))


class PoisonAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))


def test_nan_guard_stops_within_one_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = small_cfg(tmp_path, ckpt_every=1)
    with pytest.raises(NonFiniteLossError) as e:
        train(cfg, data=toy_pair(), callbacks=[PoisonAt(3)], stdout=io.StringIO())
    assert "epoch 1, step 4" in str(e.value) and "last good checkpoint" in str(e.value)
    state = load_checkpoint(Path(cfg.out) / "checkpoint.pt")
    assert state["trainer"]["global_step"] == 3
    assert all(
        torch.isfinite(t).all() for t in state["trainer"]["model"].values() if t.is_floating_point()
    )
    assert not (Path(cfg.out) / "model.safetensors").exists()


@pytest.mark.parametrize("model", sorted(BOOK_SETTINGS))
def test_d2l_recipe_is_the_books_train_ch6(model):
    cfg = resolve_config({"model": model}, "d2l")
    book = BOOK_SETTINGS[model]
    assert (cfg.lr, cfg.batch_size, cfg.image_size, cfg.epochs) == (
        book["lr"],
        book["batch_size"],
        book["image_size"],
        10,
    )
    assert cfg.optimizer == "sgd" and cfg.momentum == 0 and cfg.weight_decay == 0
    assert cfg.schedule == "constant" and cfg.label_smoothing == 0 and cfg.init == "xavier"
    assert cfg.augment == "" and not cfg.normalize and cfg.precision == "fp32"
    assert not cfg.drop_last


def test_book_table_values():
    # REFERENCE.md: the book's lr / batch / resize per model
    assert BOOK_SETTINGS["alexnet"] == dict(lr=0.01, batch_size=128, image_size=224)
    assert BOOK_SETTINGS["vgg11"]["model_options"] == {"width_ratio": 4}
    assert (BOOK_SETTINGS["resnet18"]["lr"], BOOK_SETTINGS["resnet18"]["image_size"]) == (0.05, 96)


def test_xavier_init_is_applied_by_the_d2l_recipe():
    from convzoo.train.setup import build_model

    cfg = resolve_config({"model": "lenet"}, "d2l")
    model = build_model(cfg, toy_pair()[0])
    w = model.head.fc1.weight  # Linear(400 -> 120): Xavier bound sqrt(6 / (400 + 120))
    bound = math.sqrt(6 / (w.shape[0] + w.shape[1]))
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound


def test_user_values_override_the_recipe():
    cfg = resolve_config({"model": "lenet", "lr": 0.3, "epochs": 2}, "d2l")
    assert cfg.lr == 0.3 and cfg.epochs == 2 and cfg.init == "xavier"


def test_fast_recipe_trains_resnet18_at_its_own_measured_lr():
    # lr 0.2 measured 5.8 points worse on validation than 0.05 for ResNet-18 (recipes.py)
    assert resolve_config({"model": "resnet18"}, "fast").lr == 0.05
    assert resolve_config({"model": "resnet18"}, "best").lr == 0.05
    assert resolve_config({"model": "speednet"}, "fast").lr == 0.2
    assert resolve_config({"model": "resnet18", "lr": 0.3}, "fast").lr == 0.3  # the user's


def test_the_main_job_and_the_speedrun_train_the_narrow_speednet_chosen_on_validation():
    main, speedrun = (resolve_config({}, r) for r in ("fast", "speedrun"))
    assert (main.model, main.model_options, main.epochs, main.tta) == (
        "speednet",
        {"width": 24},
        7,
        True,
    )
    assert main.val_split > 0 and main.test_every == 0  # chosen on validation, tested at the end
    assert (speedrun.model_options, speedrun.epochs, speedrun.tta) == ({"width": 24}, 5, True)
    assert speedrun.val_split == 0 and speedrun.test_every == 1  # nothing chosen: all train
    wide = resolve_config({"model_options": {"width": 32}}, "speedrun")
    assert wide.model_options == {"width": 32}  # the user's options win
    assert resolve_config({"model": "resnet18"}, "speedrun").model_options == {}


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"lr": 0}, "learning rate must be > 0"),
        ({"lr": -1.0}, "learning rate must be > 0"),
        ({"model": "resnet19"}, "unknown model 'resnet19'"),
        ({"optimizer": "adagrad"}, "unknown optimizer"),
        ({"epochs": 0}, "epochs must be >= 1"),
    ],
)
def test_bad_config_is_one_clear_error(bad, match):
    with pytest.raises(ConvzooError, match=match):
        resolve_config(bad)


def test_unknown_recipe():
    with pytest.raises(ConvzooError, match=r"unknown recipe 'slow'.*d2l"):
        resolve_config({}, "slow")


def test_too_small_input_fails_before_anything_is_written(tmp_path):
    cfg = small_cfg(tmp_path, model="alexnet", model_options={}, image_size=32)
    with pytest.raises(InputSizeError, match="alexnet needs inputs of at least 65x65"):
        train(cfg, data=toy_pair(), stdout=io.StringIO())
    assert not Path(cfg.out).exists()


def test_resuming_with_another_model_is_refused_and_the_run_is_kept(tmp_path):
    cfg = small_cfg(tmp_path, epochs=1)
    train(cfg, data=toy_pair(), stdout=io.StringIO())
    before = {p.name: p.read_bytes() for p in Path(cfg.out).iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match="model='lenet'"):
        resume_config(cfg.out, {"model": "lenet"})
    extended = resume_config(cfg.out, {"epochs": 2})
    assert extended.epochs == 2
    after = {p.name: p.read_bytes() for p in Path(cfg.out).iterdir() if p.is_file()}
    assert before == after


def test_out_dir_holding_a_run_is_not_overwritten(tmp_path):
    cfg = small_cfg(tmp_path, epochs=1)
    train(cfg, data=toy_pair(), stdout=io.StringIO())
    with pytest.raises(ConvzooError, match="already holds a run"):
        train(cfg, data=toy_pair(), stdout=io.StringIO())


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = "/tmp/convzoo-test-pwned"


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "convzoo-checkpoint", "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not os.path.exists(MARKER)


def test_truncated_and_missing_checkpoints(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"a": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(CheckpointError):
        load_weights(bad)


@pytest.mark.parametrize(
    "change, match",
    [
        (
            {"model_options": {"width": 48}},
            r"features\.b1\.0\.weight: file 8x1x3x3, model 48x1x3x3",
        ),
        ({"model_options": {"depth": 3}}, "takes no option 'depth'"),
        ({"model_options": {"width": "wide"}}, "model 'speednet'"),
        ({"model": "nonet"}, "unknown model"),
        # hand-edited metadata that builds the network but cannot use it (issue 18)
        ({"classes": ["a", "b"]}, "lists 2 class names for 10 classes"),
        ({"image_size": 0}, "image_size 0, not a side in 1..4096"),
        ({"image_size": 100000}, "image_size 100000, not a side in 1..4096"),
        ({"mean": [0.5, 0.5], "std": [0.2, 0.2]}, r"mean of \[0.5, 0.5\], not 1 finite"),
        ({"model_options": {"width": 10**9}}, "beyond any zoo model's"),
        ({"num_classes": "10"}, "num_classes '10', not a whole number"),
        ({"dataset": 7}, "has dataset 7, not a name"),  # was an AttributeError (the soak's fuzz)
        ({"model": ["speednet"]}, r"has model \['speednet'\], not a name"),
    ],
)
def test_weights_whose_metadata_was_altered_are_one_clear_error(tmp_path, change, match):
    from safetensors.torch import save_file

    model = convzoo.create_model("speednet", width=8)
    meta = {"model": "speednet", "model_options": {"width": 8}, "num_classes": 10}
    meta.update(in_channels=1, classes=[str(i) for i in range(10)], image_size=28)
    meta.update(change)
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), path, metadata={"convzoo": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=match) as e:
        load_model(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_early_stopping(tmp_path):
    cfg = small_cfg(tmp_path, epochs=8, patience=1, lr=1e-6, schedule="constant")
    result = train(cfg, data=toy_pair(), stdout=io.StringIO())
    history = result.history
    best = int(history.best("val_acc")["epoch"])
    # stopped at the end of the epoch that used up the patience: one after the best, no later
    assert len(history) == best + 1 < 8, history.column("val_acc")
    assert max(history.column("val_acc")[best:]) <= history.column("val_acc")[best - 1]


def test_curves_are_redrawn_at_most_every_few_seconds_and_at_the_end(tmp_path, monkeypatch):
    from convzoo.data import DeviceLoader
    from convzoo.train import HistoryWriter, Trainer
    from convzoo.train.history import History

    drawn = []  # the epochs each drawing of curves.png showed
    monkeypatch.setattr(History, "plot", lambda self, path, title=None: drawn.append(len(self)))
    torch.manual_seed(0)
    model = convzoo.create_model("lenet_bn", num_classes=4)
    loader = DeviceLoader(toy_pair(64, 8)[0], 32, shuffle=True, seed=0, image_size=28)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    slow = HistoryWriter(tmp_path, plot_every_s=3600)
    Trainer(model, loader, optimizer=opt, callbacks=[slow]).fit(4)
    assert drawn == [1, 4]  # the first epoch at once, then only the end
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 5  # every epoch
    drawn.clear()
    every = HistoryWriter(tmp_path, plot_every_s=0)
    Trainer(model, loader, optimizer=opt, callbacks=[every]).fit(2)
    assert drawn == [1, 2]  # no limit: every epoch, and nothing twice at the end


def test_deterministic_turns_on_deterministic_kernels(tmp_path):
    """--deterministic: torch's deterministic kernels, cuDNN's deterministic algorithms and a
    fixed cuBLAS workspace (what makes a GPU run repeat bitwise); on the CPU, whose kernels are
    deterministic already, the same weights as without it."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    data, quiet = toy_pair(64, 32), io.StringIO()
    try:
        on = train(small_cfg(tmp_path / "a", epochs=1, deterministic=True), data=data, stdout=quiet)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic = saved[1]
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        if saved[2] is not None:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[2]
    assert json.loads((on.run_dir / "config.json").read_text())["deterministic"] is True
    off = train(small_cfg(tmp_path / "b", epochs=1), data=data, stdout=quiet)
    a, b = _weights(on.run_dir), _weights(off.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
