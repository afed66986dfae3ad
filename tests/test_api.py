"""The public Python API: load_model / predict / evaluate, fit on any nn.Module, notebooks."""

import io
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import convzoo
from convzoo.cli import main as cli_main
from convzoo.errors import CheckpointError, ConvzooError, FinetuneError, InputSizeError
from convzoo.finetuning.freeze import frozen_stages, param_groups
from convzoo.io import load_weights, save_weights
from convzoo.train.callbacks import ConsoleLogger, LiveCurves, live_curves
from convzoo.train.meta import ModelMeta
from convzoo.train.recipes import recipe_defaults
from helpers import toy_pair

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
FIT = dict(epochs=3, batch_size=32, augment="", verbose=False, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory):
    """A small trained zoo run (normalized inputs, so predict's normalization matters)."""
    data = toy_pair(n_train=256, n_test=64)
    out = tmp_path_factory.mktemp("api") / "run"
    net = convzoo.create_model("speednet", num_classes=4, width=8)
    history = convzoo.fit(net, data, out=out, normalize=True, image_size=16, **FIT)
    return history.run_dir, data


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )


@pytest.fixture(scope="module")
def python_run(tmp_path_factory):
    """A plain nn.Sequential trained by fit, saved, with the module it was trained in."""
    data = toy_pair(n_train=256, n_test=64)
    net = small_net()
    out = tmp_path_factory.mktemp("api") / "seq"
    history = convzoo.fit(net, data, out=out, lr=0.05, **FIT)
    return history, net, data


# -- load_model ------------------------------------------------------------------------------
def test_load_model_gives_the_network_with_typed_metadata(zoo_run):
    run, (_, test) = zoo_run
    net = convzoo.load_model(run)
    assert isinstance(net, nn.Module) and not net.training
    meta = net.meta
    assert isinstance(meta, ModelMeta) and meta.is_zoo
    assert meta.model == "speednet" and meta.model_options == {"width": 8}
    assert meta.classes == test.classes and meta.num_classes == 4
    assert meta.input_shape == (1, 16, 16) and meta.mean is not None and len(meta.std) == 1
    # the fast recipe's validation split chose an epoch: its weights are the default
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["weights"] == "best" and meta.epoch == metrics["best_epoch"]
    # the saved metadata round-trips through the typed form unchanged
    assert meta.to_dict() == load_weights(run / "best.safetensors")[1]
    last = convzoo.load_model(run, weights="last").meta
    assert last.epoch is None and last.to_dict() == load_weights(run / "model.safetensors")[1]


def test_weights_best_is_the_validation_choice_and_last_the_last_epoch(zoo_run, tmp_path):
    import shutil

    run = zoo_run[0]
    best_tensors = load_weights(run / "best.safetensors")[0]
    last_tensors, meta = load_weights(run / "model.safetensors")
    # make the two files differ for certain (a 3-epoch run may choose its last epoch)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    changed = {k: v.clone() for k, v in best_tensors.items()}
    changed["head.fc.bias"] += 5.0
    save_weights(copy / "best.safetensors", changed, {**meta, "epoch": 1})
    best = convzoo.load_model(copy)  # default: best
    last = convzoo.load_model(copy, weights="last")
    assert torch.equal(best.state_dict()["head.fc.bias"], changed["head.fc.bias"])
    assert torch.equal(last.state_dict()["head.fc.bias"], last_tensors["head.fc.bias"])
    assert (best.meta.epoch, last.meta.epoch) == (1, None)
    # a run trained without a validation split has only model.safetensors: "best" is that
    (copy / "best.safetensors").unlink()
    only = convzoo.load_model(copy)
    assert torch.equal(only.state_dict()["head.fc.bias"], last_tensors["head.fc.bias"])
    with pytest.raises(ConvzooError, match="unknown weights 'first'"):
        convzoo.load_model(run, weights="first")


def test_load_model_on_a_missing_or_foreign_file_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        convzoo.load_model(tmp_path / "nothing.safetensors")
    save_weights(tmp_path / "foreign.safetensors", {"w": torch.zeros(2)}, {})
    with pytest.raises(CheckpointError, match="no convzoo metadata"):
        convzoo.load_model(tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="no convzoo metadata"):
        convzoo.load_model(tmp_path / "foreign.safetensors", model=small_net())


# -- predict ---------------------------------------------------------------------------------
def test_predict_takes_paths_pil_arrays_and_tensors_alike(zoo_run, tmp_path):
    run, (_, test) = zoo_run
    net = convzoo.load_model(run)
    images = test.images[:6]  # uint8 6 x 1 x 16 x 16
    path = tmp_path / "a.png"
    Image.fromarray(images[0, 0].numpy()).save(path)
    ref = convzoo.predict(net, images)
    assert len(ref) == 6 and ref.probs.shape == (6, 4)
    assert torch.allclose(ref.probs.sum(1), torch.ones(6), atol=1e-5)
    one = ref.probs[0]
    forms = [
        str(path),
        path,
        Image.open(path),
        images[0, 0].numpy(),  # H x W array
        images[0].permute(1, 2, 0).numpy(),  # H x W x C array
        images[0],  # C x H x W tensor
        images[0].float() / 255,  # float in [0, 1]
        images[0, 0],  # H x W tensor
    ]
    for form in forms:
        got = convzoo.predict(net, form)
        assert len(got) == 1 and torch.allclose(got.probs[0], one, atol=1e-6), type(form)
    batch = convzoo.predict(net, images.permute(0, 2, 3, 1).numpy())  # N x H x W x C array
    assert torch.allclose(batch.probs, ref.probs, atol=1e-6)
    mixed = convzoo.predict(net, [str(path), images[1], images[2, 0].numpy()])
    assert torch.allclose(mixed.probs, ref.probs[:3], atol=1e-6)
    labels = [test.classes[int(i)] for i in test.labels[:6]]
    assert sum(a == b for a, b in zip(ref.labels, labels)) >= 5  # trained: mostly right
    top = ref.top(2)
    assert [t[0][0] for t in top] == ref.labels and all(t[0][1] >= t[1][1] for t in top)
    assert ref.scores == pytest.approx([t[0][1] for t in top])


def test_predict_converts_colour_and_size_like_pil(zoo_run, tmp_path):
    run = zoo_run[0]
    net = convzoo.load_model(run)
    rgb = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    from_file = convzoo.predict(net, tmp_path / "rgb.png").probs  # PIL converts to gray
    from_array = convzoo.predict(net, rgb).probs  # our luma weights, unrounded
    assert torch.allclose(from_file, from_array, atol=2e-3)
    rgba = np.concatenate([rgb, np.full((40, 30, 1), 255, np.uint8)], axis=2)
    assert torch.allclose(convzoo.predict(net, rgba).probs, from_array, atol=1e-6)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((5, 16, 16), np.uint8), "channels-last"),
        (torch.full((1, 16, 16), 2.0), r"in \[0, 1\]"),
        (torch.zeros(1, 16, 16, dtype=torch.int32), "dtype torch.int32"),
        (torch.zeros(2, 2, 1, 16, 16), "no image"),
        (torch.zeros(2, 16, 16), "cannot be given to a 1-channel"),
        ({"image": 1}, "cannot read dict"),
        ([], "no images"),
        ("missing.png", "does not exist"),
    ],
)
def test_predict_refuses_what_is_no_image_in_one_line(zoo_run, images, message):
    net = convzoo.load_model(zoo_run[0])
    with pytest.raises(ConvzooError, match=message) as e:
        convzoo.predict(net, images)
    assert "\n" not in str(e.value)


def test_predict_needs_metadata(zoo_run):
    with pytest.raises(ConvzooError, match=r"has no \.meta"):
        convzoo.predict(small_net(), torch.zeros(1, 16, 16))
    net = convzoo.load_model(zoo_run[0])
    plain = small_net()
    assert convzoo.predict(plain, torch.zeros(1, 16, 16), meta=net.meta).probs.shape == (1, 4)


def test_predict_restores_training_mode(python_run):
    _, net, (_, test) = python_run
    net.train()
    convzoo.predict(net, test.images[:2])
    assert net.training
    net.eval()


# -- evaluate --------------------------------------------------------------------------------
def test_evaluate_gives_the_figures_convzoo_evaluate_prints(zoo_run, capsys):
    run, (_, test) = zoo_run
    net = convzoo.load_model(run)
    result = convzoo.evaluate(net, test, device="cpu")
    metrics = json.loads((run / "metrics.json").read_text())
    assert result.acc == pytest.approx(metrics["test_acc"])
    assert result.loss == pytest.approx(metrics["test_loss"], rel=1e-5)
    assert result.count == len(test) and int(result.confusion.sum()) == len(test)
    assert result.per_class_acc == pytest.approx(metrics["per_class_acc"])


# -- fit on any nn.Module --------------------------------------------------------------------
def test_fit_trains_a_plain_sequential_saves_and_reloads(python_run):
    history, net, (_, test) = python_run
    metrics = json.loads((history.run_dir / "metrics.json").read_text())
    assert metrics["test_acc"] > 0.6  # 4 classes: chance is 0.25
    meta = net.meta  # fit gives the module its metadata
    assert meta.model == "Sequential" and not meta.is_zoo
    assert meta.module_class == "torch.nn.modules.container.Sequential"
    assert meta.image_size == 16 and meta.classes == test.classes
    config = json.loads((history.run_dir / "config.json").read_text())
    assert config["optimizer"] == "nesterov"  # the fast recipe for a network with batch norm
    # the module holds the weights chosen on validation data, as best.safetensors does ...
    assert config["val_split"] > 0 and meta.epoch == history.chosen_epoch
    again = convzoo.load_model(history.run_dir, model=small_net(seed=1))
    assert again.meta == meta
    for k, v in net.state_dict().items():
        assert torch.equal(again.state_dict()[k], v.cpu()), k
    # ... and the history the last epoch's, as model.safetensors does (where they differ)
    last = convzoo.load_model(history.run_dir, "last", model=small_net(seed=1)).state_dict()
    kept = history.last_state or net.state_dict()
    assert (history.last_state is None) == (history.chosen_epoch == len(history))
    for k, v in kept.items():
        assert torch.equal(last[k], v.cpu()), k
    got, want = convzoo.predict(again, test.images), convzoo.predict(net, test.images)
    assert torch.allclose(got.probs, want.probs, atol=1e-6)
    ev = convzoo.evaluate(again, test, device="cpu")
    assert ev.acc == pytest.approx(metrics["test_acc"], abs=1e-6)


def test_a_python_network_run_says_how_to_reload_it(python_run, capsys):
    run = python_run[0].run_dir
    with pytest.raises(CheckpointError, match=r"defined in Python .*model=\.\.\.") as e:
        convzoo.load_model(run)
    assert "\n" not in str(e.value)
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(256, 4))
    with pytest.raises(CheckpointError, match="does not fit the Sequential given"):
        convzoo.load_model(run, model=wrong)
    for argv in (["evaluate", str(run)], ["train", "--resume", str(run)], ["export", str(run)]):
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "defined in Python" in err and len(err.splitlines()) == 1, err
    with pytest.raises(FinetuneError, match="needs a zoo model"):
        convzoo.finetune(run, toy_pair(64, 32), epochs=1, verbose=False)


def test_a_python_network_exports_with_its_module(python_run):
    from convzoo.export import export_model

    history, net, (_, test) = python_run
    result = export_model(history.run_dir, "pt2", dynamic_batch=True, model=small_net(seed=2))
    exported = torch.export.load(str(result.path)).module()
    x = test.images[:4].float() / 255  # not normalized: a network with batch norm
    assert torch.allclose(exported(x), net.cpu().eval()(x), atol=1e-5)
    card = (history.run_dir / "README.md").read_text()
    assert "`torch.nn.modules.container.Sequential`" in card


def test_fit_checks_that_the_module_maps_images_to_logits():
    data = toy_pair(64, 32)
    with pytest.raises(InputSizeError, match=r"maps a 2x1x16x16 batch of toy images to 2x3"):
        convzoo.fit(nn.Sequential(nn.Flatten(), nn.Linear(256, 3)), data, epochs=1, verbose=False)
    with pytest.raises(InputSizeError, match=r"fails on a 2x1x16x16 batch .*mat1 and mat2"):
        convzoo.fit(nn.Sequential(nn.Flatten(), nn.Linear(100, 4)), data, epochs=1, verbose=False)
    net = convzoo.create_model("speednet", num_classes=10)  # built for another class count
    with pytest.raises(InputSizeError, match="fit needs N x 4 logits"):
        convzoo.fit(net, data, epochs=1, verbose=False)


def test_recipes_read_a_python_network_itself():
    plain = nn.Sequential(nn.Flatten(), nn.Linear(256, 4))
    fast = recipe_defaults("fast", "Sequential", net=plain)
    assert fast["optimizer"] == "adamw" and fast["normalize"] and fast["image_size"] is None
    assert recipe_defaults("fast", "Sequential", net=small_net()) == {
        "image_size": None,
        "test_every": 0,
    }
    assert recipe_defaults("d2l", "Sequential", net=plain)["lr"] == 0.1  # no book row


def test_zoo_only_operations_say_so_for_a_python_network():
    net = small_net()
    assert frozen_stages(net, 0) == []  # nothing to freeze: nothing needed
    with pytest.raises(FinetuneError, match="freezing stages needs a zoo model"):
        frozen_stages(net, 1)
    with pytest.raises(FinetuneError, match="classifier needs a zoo model"):
        param_groups(net, 0.1, 10.0)


# -- notebooks -------------------------------------------------------------------------------
def test_history_plot_returns_a_figure_and_saves_when_asked(python_run, tmp_path):
    history = python_run[0]
    fig = history.plot()
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"  # what Jupyter shows
    assert not list(tmp_path.iterdir())
    fig = history.plot(tmp_path / "c.png", title="t")
    assert isinstance(fig, Figure) and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def fake_kernel(monkeypatch, config) -> None:
    """IPython as a Jupyter kernel (``config`` holds IPKernelApp) or a terminal shows it."""
    shell = types.SimpleNamespace(config=config)
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", fake)


def test_progress_and_live_curves_in_jupyter(monkeypatch):
    assert ConsoleLogger(io.StringIO()).bar is False  # a file: plain lines
    assert live_curves(None, []) == []  # no kernel: no figure
    fake_kernel(monkeypatch, {"IPKernelApp": {}})
    stdout = io.StringIO()  # a kernel's stdout is no terminal
    monkeypatch.setattr(sys, "stdout", stdout)
    assert ConsoleLogger().bar is True and ConsoleLogger().notebook is True
    assert ConsoleLogger(io.StringIO()).bar is False  # not the notebook's output
    assert [type(cb) for cb in live_curves(None, [])] == [LiveCurves]
    assert live_curves(False, []) == [] and live_curves(None, [LiveCurves()]) == []
    fake_kernel(monkeypatch, {})  # IPython in a terminal: the terminal decides
    assert ConsoleLogger().bar is False and live_curves(None, []) == []


def test_fit_outside_a_kernel_never_imports_ipython(tmp_path):
    code = (
        "import sys, convzoo\n"
        "from helpers import toy_pair\n"
        "convzoo.fit('speednet', toy_pair(64, 32), epochs=1, model_options={'width': 8})\n"
        "assert 'IPython' not in sys.modules, 'IPython imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_history_shows_a_table_and_its_curves_in_a_notebook(python_run):
    history = python_run[0]
    page = history._repr_html_()
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert len(rows) == 1 + len(history)
    head = re.findall(r"<th[^>]*>(.*?)</th>", rows[0])
    assert head[:3] == ["epoch", "loss", "train_acc"] and "val_acc" in head
    assert "test_acc" not in head  # tested once, at the end: no column of blanks
    last = re.findall(r"<td[^>]*>(.*?)</td>", rows[-1])
    assert last[0] == str(len(history)) and float(last[head.index("val_acc")]) == pytest.approx(
        history.last["val_acc"], abs=1e-4
    )
    assert f"{len(history)} epochs" in page and page.count("data:image/png;base64,") == 1
    assert "no epoch finished" in convzoo.History()._repr_html_()


def test_prediction_shows_its_images_with_their_top_classes(zoo_run):
    from PIL import Image

    net = convzoo.load_model(zoo_run[0])
    images = zoo_run[1][1].images
    pred = convzoo.predict(net, images[:20])
    assert pred.images.shape == (20, 1, 16, 16)  # as the network receives them, not normalized
    torch.testing.assert_close(pred.images, images[:20].float() / 255)
    png = Image.open(io.BytesIO(pred._repr_png_()))
    assert png.width > 7 * 100 and png.height > 100  # 16 shown: two rows of 8
    assert convzoo.Prediction(pred.classes, pred.probs)._repr_png_() is None  # no images


def test_model_meta_refuses_what_is_not_its_metadata():
    with pytest.raises(CheckpointError, match="not convzoo metadata"):
        ModelMeta.from_dict({"model": "x"})
    good = {"model": "x", "num_classes": 2, "in_channels": 1, "classes": ["a"], "image_size": 8}
    with pytest.raises(CheckpointError, match="inconsistent"):
        ModelMeta.from_dict(good)
    meta = ModelMeta.from_dict({**good, "classes": ["a", "b"], "weights": "best"})
    assert meta.extra == {"weights": "best"} and meta.to_dict()["weights"] == "best"


# -- time-series runs ------------------------------------------------------------------------
def test_a_time_series_run_loads_and_says_what_it_takes(tmp_path, capsys):
    from convzoo.export import ExportError, export_model
    from helpers import toy_series_pair

    train, test = toy_series_pair(48, 24)
    options = {"width": 4, "kernel_sizes": [5, 3]}
    history = convzoo.fit(
        "resnet1d", (train, test), out=tmp_path / "run", model_options=options, **FIT
    )
    net = convzoo.load_model(history.run_dir)
    assert net.meta.is_sequence and net.meta.input_shape == (1, 32)
    assert net(test.series[:2]).shape == (2, 3)  # input_shape is what the network takes
    with pytest.raises(ConvzooError, match="takes time series, not images") as e:
        convzoo.predict(net, test.series[0])
    assert "\n" not in str(e.value)
    result = export_model(history.run_dir, "pt2", card=False)  # checked against PyTorch
    assert result.input["shape"] == [1, 1, 32] and result.max_abs_diff <= 1e-4
    with pytest.raises(ExportError, match="time-series model"):
        export_model(history.run_dir, "pt2", card=False, with_preprocess=True)
    f = tmp_path / "series.npy"
    np.save(f, test.series[:5, 0].numpy())
    assert cli_main(["predict", str(history.run_dir), str(f), "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    from convzoo.trained import predict_series

    want = predict_series(convzoo.load_model(history.run_dir), [str(f)], top_k=1, device="cpu")
    assert lines == [f"{n}: {top[0][0]} {top[0][1]:.3f}" for n, top in want]


def test_plot_runs_overlays_histories_as_a_figure(python_run, tmp_path):
    from convzoo.viz import plot_runs

    history = python_run[0]
    fig = plot_runs([("a", history), ("b", {"epoch": [1, 2], "loss": [2.0, 1.0]})])
    loss = fig.axes[0]
    assert [line.get_label() for line in loss.lines] == ["a train loss", "b train loss"]
    assert list(loss.lines[0].get_ydata()) == history.column("loss")
    assert fig._repr_png_()[:4] == b"\x89PNG" and not list(tmp_path.iterdir())
