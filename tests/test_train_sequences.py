"""Training the 1-D models like image runs: run directory, validation split, resume, evaluate,
predict on series files, recipes, strategies."""

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import convzoo
from convzoo.cli import main
from convzoo.data import SequenceDataset, make_loader
from convzoo.data.loader import SequenceLoader
from convzoo.data.series_file import read_series_file
from convzoo.errors import ConvzooError, DataError, InputSizeError
from convzoo.io import load_checkpoint, load_weights
from convzoo.train import train
from convzoo.train.config import ConfigError
from convzoo.train.recipes import FAST_SEQUENCES, recipe_defaults
from convzoo.train.run import resolve_config
from convzoo.train.rundir import resume_config
from convzoo.train.setup import model_options
from convzoo.trained import ModelMeta, evaluate, load_model, predict_series
from ddp_job import series_config, series_data
from helpers import CrashAt, toy_pair, toy_series, toy_series_pair

HAS_AEON = importlib.util.find_spec("aeon") is not None
needs_aeon = pytest.mark.skipif(not HAS_AEON, reason="aeon (pip install convzoo[ts]) is absent")
needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime (convzoo[onnx]) is absent"
)
#: small enough for tests, with batch norm (its running statistics are resumed too)
SMALL_RESNET = {"width": 4, "kernel_sizes": [5, 3]}


def seq_cfg(tmp_path: Path | None, **kw):
    values = dict(
        model="resnet1d",
        model_options=SMALL_RESNET,
        dataset="toy-series",
        val_split=0.2,  # the image runs' path: the kept weights chosen on validation
        epochs=3,
        batch_size=16,
        lr=0.02,
        device="cpu",
        out=str(tmp_path / "run") if tmp_path is not None else None,
    )
    values.update(kw)
    return resolve_config(values)


# -- recipes ----------------------------------------------------------------------------------
def test_fast_recipe_for_sequence_models_trains_at_the_data_length():
    for model in ("lenet1d", "fcn1d", "resnet1d"):
        values = recipe_defaults("fast", model)
        assert values["image_size"] is None  # not the registry's 150 steps: the data's length
        assert values["optimizer"] == FAST_SEQUENCES["optimizer"]
        assert values["precision"] == "auto"  # bf16 where native: 1.8-2.2x (RESULTS.md)
        assert values["val_split"] == 0  # the whole split trains; the last epoch is kept
        # scaling only (cross-validated, RESULTS.md: jitter lost OSULeaf), surely no image's flip
        assert values["augment"] == "scale:0.8-1.2"
    assert recipe_defaults("fast", "speednet")["image_size"] == 28  # images unchanged


def test_d2l_recipe_for_sequence_models_is_still_the_books_plain_sgd():
    values = recipe_defaults("d2l", "resnet1d")
    assert (values["optimizer"], values["momentum"], values["weight_decay"]) == ("sgd", 0.0, 0.0)
    assert values["image_size"] is None and values["init"] == "xavier"
    assert recipe_defaults("speedrun", "fcn1d")["tta"] is False  # no mirror image in time
    # the best recipe: the fast one five times longer, still no flip test-time augmentation;
    # resnet1d at half the width, folding series of over 400 steps (ACSF1: 1,460 as 365 x 4)
    fast = recipe_defaults("fast", "fcn1d")
    assert recipe_defaults("best", "fcn1d") == {**fast, "epochs": 200, "test_every": 10}
    best = resolve_config({"dataset": "ucr:ACSF1", "recipe": "best"})
    assert (best.model, best.epochs, best.model_options) == ("resnet1d", 200, {"width": 32})
    assert model_options(best, 1460)["fold"] == 4 and "fold" not in model_options(best, 400)
    assert not best.tta
    wide = {"dataset": "ucr:ACSF1", "recipe": "best", "model_options": {"width": 64}}
    assert resolve_config(wide).model_options == {"width": 64}  # the user's options win


def test_xavier_init_reaches_the_1d_convolutions():
    from convzoo.models import create_model
    from convzoo.train.optim import xavier_init

    model = create_model("resnet1d", num_classes=3)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv1d) and m.in_channels > 1)
    before = conv.weight.detach().clone()
    xavier_init(model)
    out_c, in_c, k = conv.weight.shape  # Glorot: sqrt(6 / (fan_in + fan_out)), fans times k
    bound = (6 / (in_c * k + out_c * k)) ** 0.5
    assert not torch.equal(before, conv.weight)
    assert bound * 0.9 < conv.weight.abs().max() <= bound


def test_default_model_follows_the_data_kind():
    assert resolve_config({"dataset": "ucr:GunPoint"}).model == "resnet1d"
    assert resolve_config({"dataset": "uea:BasicMotions", "recipe": "d2l"}).model == "lenet1d"
    assert resolve_config({}).model == "speednet"


def fit_toy(data, out: Path, **kw):
    """``convzoo.fit`` of the small resnet1d on toy series, on the CPU, quietly."""
    kw = dict(lr=0.02, verbose=False, device="cpu", model_options=SMALL_RESNET, **kw)
    return convzoo.fit("resnet1d", data, out=out, **kw)


# -- a run, in process ------------------------------------------------------------------------
def test_fit_trains_a_sequence_model_and_writes_a_complete_run(tmp_path):
    train_data, test_data = toy_series_pair()
    history = fit_toy(
        (train_data, test_data),
        tmp_path / "run",
        epochs=4,
        augment="shift:3,scale:0.9-1.1,jitter:0.05",
        test_every=1,
        val_split=0.2,
    )
    run = history.run_dir
    for name in ("model.safetensors", "best.safetensors", "curves.png", "confusion.png"):
        assert (run / name).is_file(), name
    assert history.last["test_acc"] > 0.6  # three classes: chance is 0.33
    assert not np.isnan(history.last["val_acc"])
    model = load_model(run)  # best.safetensors
    meta = model.meta
    assert (meta.extra["length"], meta.image_size, meta.in_channels) == (32, 32, 1)
    assert model.spatial_dims == 1
    metrics = json.loads((run / "metrics.json").read_text())
    result = evaluate(model, test_data, device="cpu")
    assert result.acc == pytest.approx(metrics["test_acc"])
    assert result.count == 48


def test_the_fast_recipe_trains_on_the_whole_split_and_keeps_the_last_epoch(tmp_path):
    train_data, test_data = toy_series_pair()
    history = fit_toy((train_data, test_data), tmp_path / "run", epochs=2)
    run = history.run_dir
    assert (run / "model.safetensors").is_file() and not (run / "best.safetensors").exists()
    assert history.chosen_epoch == 2 and np.isnan(history.last["val_acc"])
    config = json.loads((run / "config.json").read_text())
    assert config["val_split"] == 0 and config["recipe"] == "fast"
    model = load_model(run)  # the last epoch's weights
    metrics = json.loads((run / "metrics.json").read_text())
    assert evaluate(model, test_data, device="cpu").acc == pytest.approx(metrics["test_acc"])


def test_test_every_tests_only_when_due_and_the_end_still_reports():
    data = toy_series_pair()
    result = train(seq_cfg(None, test_every=2), data=data, save=False, stdout=io.StringIO())
    tested = [not np.isnan(r["test_acc"]) for r in result.history.records]
    assert tested == [False, True, False]
    assert "test_acc" in result.metrics  # the final test, with the chosen weights
    quiet = train(seq_cfg(None, test_every=0), data=data, save=False, stdout=io.StringIO())
    assert all(np.isnan(r["test_acc"]) for r in quiet.history.records)
    # testing is only reported: the training is the same either way
    assert quiet.history.column("loss") == result.history.column("loss")


def test_resume_is_bitwise_identical_with_sequence_augmentation(tmp_path):
    data = toy_series_pair()
    quiet = io.StringIO()
    aug = dict(augment="shift:4,crop:0.8,scale:0.8-1.2,jitter:0.1", ckpt_every=4)
    full = train(seq_cfg(tmp_path / "a", **aug), data=data, stdout=quiet)
    crashed = seq_cfg(tmp_path / "b", **aug)
    with pytest.raises(RuntimeError, match="injected"):
        train(crashed, data=data, callbacks=[CrashAt(10)], stdout=quiet)
    assert load_checkpoint(Path(crashed.out) / "checkpoint.pt")["trainer"]["global_step"] == 8
    resumed = train(resume_config(crashed.out, {}), data=data, resume=crashed.out, stdout=quiet)
    for name in ("model.safetensors", "best.safetensors"):
        a = load_weights(Path(full.run_dir) / name)[0]
        b = load_weights(Path(resumed.run_dir) / name)[0]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert full.history.column("loss") == resumed.history.column("loss")


def test_models_and_data_of_different_kinds_are_one_line(tmp_path):
    with pytest.raises(InputSizeError, match="holds time series but speednet takes images"):
        train(seq_cfg(None, model="speednet", model_options={}), data=toy_series_pair())
    with pytest.raises(InputSizeError, match="resnet1d takes time series but toy holds images"):
        train(seq_cfg(None, dataset="toy"), data=toy_pair(64, 16))
    with pytest.raises(ConfigError, match="no mirror image"):
        train(seq_cfg(None, tta=True), data=toy_series_pair())
    short = toy_series_pair(length=8)
    with pytest.raises(InputSizeError, match="lenet1d needs sequences of at least 12 steps; 8"):
        train(seq_cfg(None, model="lenet1d", model_options={}), data=short)
    assert not (tmp_path / "run").exists()


# -- the loader -------------------------------------------------------------------------------
def test_sequence_loader_resamples_normalizes_and_refuses_channels_last():
    data = toy_series(10, length=40, channels=2)
    plain = next(iter(make_loader(data, 10)))
    assert isinstance(make_loader(data, 4), SequenceLoader)
    assert torch.equal(plain.x, data.series)  # float series pass unchanged: no / 255
    short = next(iter(SequenceLoader(data, 10, image_size=20))).x
    torch.testing.assert_close(short, data.series.view(10, 2, 20, 2).mean(-1))  # area: means
    assert next(iter(SequenceLoader(data, 10, image_size=80))).x.shape == (10, 2, 80)
    normed = next(iter(SequenceLoader(data, 10, mean=[1.0, 2.0], std=[2.0, 4.0]))).x
    torch.testing.assert_close(normed[:, 1], (data.series[:, 1] - 2) / 4)
    with pytest.raises(ValueError, match="channels_last"):
        SequenceLoader(data, 4, channels_last=True)
    mean, std = data.stats()
    assert len(mean) == len(std) == 2


# -- series files -----------------------------------------------------------------------------
def test_csv_rows_are_univariate_series_and_the_file_a_multivariate_one(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("1,2,3,4\n\n5,6,?,8,nan,\n")
    rows = read_series_file(f, channels=1)
    assert [n for n, _ in rows] == ["a.csv row 1", "a.csv row 3"]
    assert rows[1][1].shape == (1, 6) and np.isnan(rows[1][1][0, [2, 4, 5]]).all()
    f.write_text("1,2,3\n4,5,6\n")
    ((name, x),) = read_series_file(f, channels=2)
    assert name == "a.csv" and x.shape == (2, 3)
    f.write_text("1,2,3\n")
    assert read_series_file(f, channels=1)[0][0] == "a.csv"  # a lone series: the file's name


def test_npy_arrays_by_shape(tmp_path):
    f = tmp_path / "s.npy"
    np.save(f, np.arange(10.0))
    assert read_series_file(f, 1)[0][1].shape == (1, 10)
    np.save(f, np.zeros((3, 10), dtype=np.float32))
    assert [n for n, _ in read_series_file(f, 1)] == ["s.npy [0]", "s.npy [1]", "s.npy [2]"]
    assert [x.shape for _, x in read_series_file(f, 3)] == [(3, 10)]
    np.save(f, np.zeros((4, 3, 10)))
    assert len(read_series_file(f, 3)) == 4


BAD_FILES = {
    "rows": ("m.csv", "1,2\n3,4\n", 3, r"has 2 rows but the model takes 3-channel series"),
    "ragged": ("m.csv", "1,2,3\n4,5\n", 2, r"row 2 has 2 values, row 1 has 3"),
    "header": ("h.csv", "time,value\n1,2\n", 1, r"line 1: 'time' is not a number"),
    "empty": ("e.csv", "\n\n", 1, r"holds no series"),
    "inf": ("i.csv", "1,inf,2\n", 1, r"infinite values"),
    "suffix": ("s.txt", "1,2\n", 1, r"predicts on .csv or .npy series files"),
    "all missing": ("n.csv", "?,?\n", 1, r"series 1 has no values"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_series_files_are_one_line_data_errors(tmp_path, case):
    name, text, channels, match = BAD_FILES[case]
    f = tmp_path / name
    f.write_text(text)
    meta = ModelMeta("x", 1, channels, ["a"], image_size=4, extra={"length": 4})
    with pytest.raises(DataError, match=match) as err:
        from convzoo.trained import read_series

        read_series(f, meta)
    assert "\n" not in str(err.value) and str(f.name) in str(err.value)


@pytest.mark.parametrize(
    "array,channels,match",
    [
        (np.zeros((2, 3, 4, 5)), 1, r"2x3x4x5 array .* save a vector L .* or N x L"),
        (np.zeros((5, 10)), 6, r"5x10 array .* save 6 x L \(one series\) or N x 6 x L"),
        (np.zeros(10), 2, r"is a 10 array"),
        (np.array(["a", "b"]), 1, r"<U1 values, not real numbers"),
        (np.array([1 + 2j]), 1, r"not real numbers"),
    ],
)
def test_npy_of_the_wrong_shape_or_kind_is_one_line(tmp_path, array, channels, match):
    f = tmp_path / "x.npy"
    np.save(f, array)
    with pytest.raises(DataError, match=match):
        read_series_file(f, channels)


def test_npy_holding_objects_is_refused_without_unpickling(tmp_path):
    f = tmp_path / "evil.npy"
    np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"cannot read .*evil\.npy"):
        read_series_file(f, 1)


def test_predict_series_prepares_files_as_the_data_set_and_agrees_with_evaluate(tmp_path):
    train_data, test_data = toy_series_pair()
    result = train(seq_cfg(tmp_path, epochs=4), data=(train_data, test_data), stdout=io.StringIO())
    model = load_model(result.run_dir)
    x = test_data.series
    x = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)  # as the archive stores them
    f = tmp_path / "test.npy"
    np.save(f, x[:, 0].numpy())  # z-normalised already: reading it changes nothing
    named = predict_series(model, [str(f)], top_k=2, device="cpu")
    assert len(named) == 48 and all(len(top) == 2 for _, top in named)
    with torch.no_grad():
        expected = model(x).argmax(1)
    assert [top[0][0] for _, top in named] == [model.meta.classes[i] for i in expected]
    g = tmp_path / "odd.csv"
    g.write_text(",".join(["1", "2"] * 10) + "\n" + ",".join(["3", "1"] * 20) + "\n")
    names = [n for n, _ in predict_series(model, [str(g)], device="cpu")]
    assert names == [
        "odd.csv row 1 (20 steps, padded to 32)",
        "odd.csv row 2 (40 steps, cut to 32)",
    ]


def stored_values(data: SequenceDataset) -> SequenceDataset:
    """``data`` as a UEA set holds it: stored values with a level and scale, not z-normalised."""
    from dataclasses import replace

    return replace(data, series=data.series * 3 + 5, znorm=False)


def test_a_set_kept_unnormalised_is_predicted_on_unnormalised(tmp_path):
    """A run on stored values (a UEA set) records it, and a file's series reach the network as
    they are: z-normalising them would hand it inputs it never trained on."""
    train_data, test_data = (stored_values(d) for d in toy_series_pair())
    result = train(seq_cfg(tmp_path, epochs=2), data=(train_data, test_data), stdout=io.StringIO())
    model = load_model(result.run_dir)
    meta = model.meta
    assert meta.extra["znorm"] is False and "the stored values" in meta.describe_input()
    f = tmp_path / "raw.npy"
    np.save(f, test_data.series[:, 0].numpy())
    named = predict_series(model, [str(f)], top_k=1, device="cpu")
    with torch.no_grad():
        expected = model(test_data.series).argmax(1)
    assert [top[0][0] for _, top in named] == [meta.classes[i] for i in expected]
    # a run from before the key: z-normalised
    old = replace(meta, extra={k: v for k, v in meta.extra.items() if k != "znorm"})
    z = [t[0][0] for _, t in predict_series(model, [str(f)], meta=old, top_k=1, device="cpu")]
    with torch.no_grad():
        x = test_data.series
        zx = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)
        assert z == [meta.classes[i] for i in model(zx).argmax(1)]


# -- the command line -------------------------------------------------------------------------
def write_ts(folder: Path, name: str, split: str, data: SequenceDataset) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"@problemName {name}",
        "@timeStamps false",
        "@univariate true",
        f"@classLabel true {' '.join(data.classes)}",
        "@data",
    ]
    for x, y in zip(data.series[:, 0].tolist(), data.labels.tolist()):
        lines.append(",".join(f"{v:.5f}" for v in x) + f":{data.classes[y]}")
    (folder / f"{name}_{split.upper()}.ts").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_cli_trains_resumes_evaluates_and_predicts_on_series(tmp_path, capsys):
    data_dir = tmp_path / "data"
    train_data, test_data = toy_series_pair(60, 30)
    write_ts(data_dir / "ucr" / "Toy", "Toy", "train", train_data)
    write_ts(data_dir / "ucr" / "Toy", "Toy", "test", test_data)
    env = {**os.environ, "CONVZOO_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}

    def run(*args, ok=True):
        proc = subprocess.run(
            [sys.executable, "-m", "convzoo", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
        return proc

    out = tmp_path / "run"
    opts = ["-o", "width=4", "-o", "kernel_sizes=[5,3]", "--batch-size", "8", "--out", str(out)]
    opts += ["--val-split", "0.2"]  # best.safetensors: the epoch chosen on validation
    first = run("train", "--dataset", "ucr:Toy", "--epochs", "2", *opts).stdout
    assert "model resnet1d" in first and "32 steps" in first
    run("train", "--resume", str(out), "--epochs", "3")
    for name in ("best.safetensors", "model.safetensors", "confusion.png", "curves.png"):
        assert (out / name).is_file(), name
    ev = run("evaluate", str(out), "--top-losses", "3").stdout
    assert "on ucr:Toy test: accuracy" in ev and "(30 series)" in ev
    assert (out / "top-losses-ucr_Toy-test.png").is_file()
    np.save(tmp_path / "s.npy", test_data.series[:2, 0].numpy())
    (tmp_path / "s.csv").write_text(",".join(map(str, test_data.series[0, 0].tolist())) + "\n")
    lines = run("predict", str(out), "s.npy", "s.csv", "--top-k", "2").stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["s.npy [0]", "s.npy [1]", "s.csv"]
    run("explain", str(out), "--index", "0", "--out", str(tmp_path / "why"))
    assert (tmp_path / "why" / "explain.html").is_file()
    # refusals in this process (two interpreter starts fewer): one line, exit code 2
    (tmp_path / "bad.csv").write_text("a,b\n")
    capsys.readouterr()
    assert main(["predict", str(out), str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and len(err.strip().splitlines()) == 1
    assert main(["explain", str(out), str(tmp_path / "s.npy")]) == 2  # two series in one file
    assert "holds 2 series" in capsys.readouterr().err


# -- strategies -------------------------------------------------------------------------------
def test_scratch_strategy_on_two_cpu_replicas_matches_one_device():
    data = series_data()
    one = train(series_config(), data=data, save=False, stdout=io.StringIO())
    two = train(
        series_config(strategy="scratch", devices="cpu,cpu"),
        data=data,
        save=False,
        stdout=io.StringIO(),
    )
    for name, value in one.model.state_dict().items():
        torch.testing.assert_close(two.model.state_dict()[name], value, rtol=1e-4, atol=1e-6)
    batch_norm = train(
        seq_cfg(None, strategy="scratch", devices="cpu,cpu"),
        data=toy_series_pair(),
        save=False,
        stdout=io.StringIO(),
    )
    assert batch_norm.history.last["train_acc"] > 0.5


def test_model_strategy_splits_a_sequence_model_over_two_cpu_devices():
    data = series_data()
    one = train(series_config(), data=data, save=False, stdout=io.StringIO())
    cfg = series_config(strategy="model", devices="cpu,cpu")  # its parts cut by (C, L) costs
    two = train(cfg, data=data, save=False, stdout=io.StringIO())
    for name, value in one.model.state_dict().items():
        torch.testing.assert_close(two.model.state_dict()[name], value, rtol=1e-4, atol=1e-6)
    assert two.metrics["test_acc"] == pytest.approx(one.metrics["test_acc"])


@pytest.mark.slow
def test_ddp_trains_a_sequence_model_like_one_process(tmp_path):
    from test_parallel import torchrun

    # the same global batch in one process: 2 x 16
    one = train(
        series_config(batch_size=32, eval_batch_size=32),
        data=series_data(),
        save=False,
        stdout=io.StringIO(),
    )
    out = tmp_path / "run"
    torchrun(tmp_path / "report", "--series", "--out", str(out), cwd=tmp_path)
    weights, meta = load_weights(out / "model.safetensors")
    assert meta["length"] == 32 and meta["model"] == "lenet1d"
    for name, value in one.model.state_dict().items():
        torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=1e-6, msg=name)
    reported = json.loads((tmp_path / "report" / "rank1.json").read_text())
    assert reported["metrics"]["test_examples"] == 37  # every test series once, padding ignored
    assert reported["metrics"]["test_acc"] == pytest.approx(one.metrics["test_acc"])


# -- the archive's own files ------------------------------------------------------------------
@needs_aeon
@pytest.mark.slow
def test_gunpoint_trains_and_predicts_from_the_shipped_files(tmp_path):
    result = train(
        resolve_config(
            dict(
                dataset="ucr:GunPoint", model="resnet1d", epochs=8, device="cpu", out=str(tmp_path)
            )
        ),
        stdout=io.StringIO(),
    )
    # 150 test series, two classes; measured 0.98 (seed 0, 15 s at load 6)
    assert result.metrics["test_acc"] > 0.9
    model = load_model(tmp_path)
    assert model.meta.extra["length"] == 150 and model.meta.dataset == "ucr:GunPoint"
    test = convzoo.load_dataset("ucr:GunPoint", "test")
    np.save(tmp_path / "gp.npy", test.series[:5, 0].numpy())
    top = predict_series(model, [str(tmp_path / "gp.npy")], device="cpu")
    assert [t[0][0] for _, t in top] == [
        test.classes[i] for i in model(test.series[:5]).argmax(1).tolist()
    ]


def test_explain_a_sequence_run_over_time(tmp_path):
    from convzoo.explain import explain, write_explanation

    train_data, test_data = toy_series_pair()
    fit_toy((train_data, test_data), tmp_path / "run", epochs=2)
    model = load_model(tmp_path / "run")
    series, label = test_data.series[0], int(test_data.labels[0])
    e = explain(model, model.meta, series, label=label, source="toy #0")
    torch.testing.assert_close(e.image, series)  # no resize, no normalization in this run
    h = e.image[None]
    for (name, stage), view in zip(model.stages, e.stages):
        h = stage(h)
        assert view.name == name and view.shape == tuple(h.shape[1:])  # C x L, over time
    assert e.is_series and e.layer == e.stages[-1].name  # its output is still 32 steps
    assert set(e.maps) == set(e.pixel_maps) == {e.predicted, label}
    for m in [*e.maps.values(), *e.pixel_maps.values()]:
        assert m.shape == (32,) and (m >= 0).all()
    assert e.filters.shape == (4, 1, 5)  # width 4, kernel 5: the first Conv1d
    page = write_explanation(e, tmp_path / "why", maps=3)
    names = {p.name for p in page.parent.iterdir()}
    assert {"input.png", "attribution.png", "pixels.png", "filters.png"} <= names
    assert {f"stage-{v.name}.png" for v in e.stages} <= names
    assert "32 steps" in page.read_text()
    with pytest.raises(ConvzooError, match="2-channel"):
        explain(model, replace(model.meta, in_channels=2), series)
    with pytest.raises(DataError, match="float C x L"):
        explain(model, model.meta, series.to(torch.uint8)[0])


def test_max_length_folds_long_series_and_the_run_rebuilds_folded(tmp_path):
    """``--max-length L``: resnet1d folds runs of ceil(length / L) steps into channels; the
    run's metadata keeps the fold, so evaluate, explain and export rebuild the same network."""
    from convzoo.explain import explain
    from convzoo.export import export_model

    train_data, test_data = toy_series_pair()  # 32 steps
    out = io.StringIO()
    result = train(seq_cfg(tmp_path, max_length=10), data=(train_data, test_data), stdout=out)
    assert "32 steps, computed as 8 runs of 4 folded" in out.getvalue()
    model = load_model(result.run_dir)
    assert model.meta.model_options == {**SMALL_RESNET, "fold": 4} and model.features.b1.fold == 4
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    acc = evaluate(model, test_data, device="cpu").acc
    assert acc == pytest.approx(metrics["test_acc"])
    # the first filters drawn over the steps they see: width 4, 5 taps of 4 folded steps
    assert explain(model, model.meta, test_data.series[0]).filters.shape == (4, 1, 20)
    assert export_model(result.run_dir, "pt2").max_abs_diff <= 1e-4
    quiet = dict(data=(train_data, test_data), save=False, stdout=io.StringIO())
    unfolded = train(seq_cfg(None, epochs=1, max_length=32), **quiet)
    assert "fold" not in unfolded.meta["model_options"]  # 32 steps are within 32
    given = seq_cfg(None, epochs=1, max_length=10, model_options={**SMALL_RESNET, "fold": 2})
    assert train(given, **quiet).meta["model_options"]["fold"] == 2  # -o fold=F wins
    with pytest.raises(ConfigError, match="fcn1d cannot fold them: drop --max-length"):
        train(seq_cfg(None, model="fcn1d", model_options={}, max_length=10), **quiet)
    with pytest.raises(ConfigError, match="an image has none: drop --max-length"):
        images = resolve_config(dict(dataset="toy", epochs=1, device="cpu", max_length=10))
        train(images, data=toy_pair(64, 16), save=False, stdout=io.StringIO())


# -- benchmarks/sequences.py and sequence_recipe.py: what they report ---------------------------
def test_sequence_benchmark_table_and_writes_only_its_section(tmp_path):
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "sequences.py"
    spec = importlib.util.spec_from_file_location("bench_sequences", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def run(model, seed, test_acc, wall=10.0, ds="ucr:GunPoint"):
        times = dict(wall_s=wall, cpu_s=wall, load_before=1.0, load_after=2.0)
        return dict(dataset=ds, model=model, seed=seed, test_acc=test_acc, **times)

    runs = [run("resnet1d", 0, 0.5), run("fcn1d", 0, 0.99), run("lenet1d", 0, 0.9)]
    runs += [run("resnet1d", 1, 0.7, wall=200.0), run("fcn1d", 1, 0.8)]
    runs.append(run("lenet1d", 1, 0.6))
    runs.append(run("resnet1d", 0, 0.8, wall=300.0, ds="ucr:ArrowHead"))  # one network only
    summary = bench.summarize(runs, ["ucr:GunPoint", "ucr:ArrowHead"])
    assert summary["ucr:GunPoint"]["acc"]["fcn1d"] == [0.99, 0.8]
    assert summary["ucr:GunPoint"]["all_wall"] == [30.0, 220.0]  # both seeds ran all three
    text = bench.table(summary)
    assert "| 105 (52) | yes |" in text  # GunPoint resnet1d's mean wall time, CPU / 2, < 2 min
    assert "| 300 (150) | no |" in text
    # a network's mean only over every set (fcn1d missed ArrowHead); published 0.9933, 0.8629
    assert "sets: resnet1d 0.7000; published ResNet 0.9281" in text
    assert "-22.8 points (first iteration)" in text
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# R\n\n## Before\n\nkeep\n\n{bench.SECTION}\n\nold\n\n## After\n\nkeep\n")
    bench.write_section(f"{bench.SECTION}\n\nnew\n", results)
    assert results.read_text() == (
        f"# R\n\n## Before\n\nkeep\n\n{bench.SECTION}\n\nnew\n\n## After\n\nkeep\n"
    )


def test_sequence_benchmark_epochs_reads_only_its_own_schedules_runs(tmp_path, capsys):
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "sequences.py"
    spec = importlib.util.spec_from_file_location("bench_sequences", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    times = dict(wall_s=10.0, cpu_s=10.0, load_before=1.0, load_after=1.0)
    runs = [
        dict(dataset="ucr:GunPoint", model="resnet1d", seed=0, epochs=e, test_acc=a, **times)
        for e, a in ((40, 0.5), (200, 0.75))
    ]
    best = dict(runs[1], recipe="best", test_acc=0.9)  # 200 epochs too: told apart by recipe
    jsonl = tmp_path / "runs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in [*runs, best]))
    common = ["--sets", "ucr:GunPoint", "--jsonl", str(jsonl), "--table-only"]
    bench.main([*common, "--epochs", "200"])
    assert "sets: resnet1d 0.7500;" in capsys.readouterr().out
    bench.main(common)  # no --epochs: every run of the fast recipe in the file, as before
    assert "sets: resnet1d 0.6250;" in capsys.readouterr().out
    bench.main([*common, "--recipe", "best"])
    assert "sets: resnet1d 0.9000;" in capsys.readouterr().out


def test_recipe_sweep_folds_hold_out_every_series_once_in_every_class_share():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "sequence_recipe.py"
    spec = importlib.util.spec_from_file_location("bench_sequence_recipe", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    labels = torch.tensor([0] * 12 + [1] * 7 + [2] * 3 + [1] * 4)
    parts = bench.folds(labels, 5, seed=0)
    assert sorted(torch.cat(parts).tolist()) == list(range(len(labels)))  # disjoint, complete
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    for c, n in enumerate(labels.bincount().tolist()):
        shares = [int((labels[p] == c).sum()) for p in parts]
        assert max(shares) - min(shares) <= 1 and sum(shares) == n
    assert [p.tolist() for p in bench.folds(labels, 5, seed=0)] == [p.tolist() for p in parts]
    assert [p.tolist() for p in bench.folds(labels, 5, seed=1)] != [p.tolist() for p in parts]


# -- export -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["pt2", pytest.param("onnx", marks=needs_onnx)])
def test_a_series_run_exports_and_its_card_code_predicts_like_convzoo(tmp_path, fmt):
    """`convzoo export` takes a time-series run: the file matches PyTorch (checked as it is
    written), and the model card's own loading code, run on a .npy series of raw values, gives
    the class `convzoo predict` gives."""
    from convzoo.export import export_model

    train_data, test_data = toy_series_pair()
    run = fit_toy((train_data, test_data), tmp_path / "run", epochs=2).run_dir
    result = export_model(run, fmt, dynamic_batch=True)
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    assert result.input["shape"] == ["batch", 1, 32]
    card = (run / "README.md").read_text()
    assert "z-normalised per channel" in card and "series.npy" in card
    series = test_data.series[3, 0].numpy() * 5 + 2  # raw values: the code normalises them
    title = {"pt2": "PyTorch (torch.export)", "onnx": "onnxruntime"}[fmt]
    assert run_card_code(card_code(card, title), result.path, series, tmp_path) == predicted(
        run, tmp_path
    )


def card_code(card: str, title: str) -> str:
    """The model card's Python code under ``### title``."""
    return card.split(f"### {title}\n\n```python\n", 1)[1].split("```", 1)[0]


def run_card_code(code: str, exported: Path, series: np.ndarray, tmp_path: Path) -> str:
    """What the card's ``code`` prints for ``series`` saved as series.npy in ``tmp_path``."""
    np.save(tmp_path / "series.npy", series)
    code = code.replace(f'"{exported.name}"', f'"{exported}"')
    code = code.replace('"series.npy"', f'"{tmp_path / "series.npy"}"')
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "card", "exec"), {})
    return printed.getvalue().strip()


def predicted(run: Path, tmp_path: Path) -> str:
    """The class `convzoo predict RUN series.npy` says for tmp_path's series.npy."""
    [(_, top)] = predict_series(load_model(run), [str(tmp_path / "series.npy")], top_k=1)
    return top[0][0]


def test_the_card_of_a_run_on_stored_values_does_not_z_normalise(tmp_path):
    from convzoo.export import export_model

    train_data, test_data = (stored_values(d) for d in toy_series_pair())
    run = fit_toy((train_data, test_data), tmp_path / "run", epochs=1).run_dir
    result = export_model(run, "pt2", dynamic_batch=True)
    card = (run / "README.md").read_text()
    code = card_code(card, "PyTorch (torch.export)")
    assert "the stored values" in card and "z-normalise" not in code
    series = test_data.series[3, 0].numpy()
    assert run_card_code(code, result.path, series, tmp_path) == predicted(run, tmp_path)


def test_with_preprocess_is_refused_for_a_series_run_in_one_line(tmp_path, capsys):
    run = fit_toy(toy_series_pair(), tmp_path / "run", epochs=1).run_dir
    assert main(["export", str(run), "--format", "pt2", "--with-preprocess"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "time-series model" in err[0] and "Traceback" not in err[0]
    assert not list(run.glob("*.pt2"))
