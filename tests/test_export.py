"""convzoo export: parity with PyTorch for every zoo family and format, the model card,
convzoo predict on an exported ONNX file, and one clear error for a broken or mismatched one."""

import importlib.util
import json
import re
import runpy
import shutil

import pytest
import torch
from PIL import Image
from torch.nn.modules.batchnorm import _BatchNorm

import convzoo
from convzoo.cli import main as cli_main
from convzoo.data import load_dataset
from convzoo.errors import DataError
from convzoo.export import FORMATS as WRITERS
from convzoo.export import ExportError, export_model, load_onnx
from convzoo.io import save_weights
from convzoo.models import BatchNorm, get_model_entry
from convzoo.trained import normalize
from helpers import toy_dataset

HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None
HAVE_ONNX_EXPORT = HAVE_ORT and importlib.util.find_spec("onnxscript") is not None
needs_ort = pytest.mark.skipif(
    not HAVE_ONNX_EXPORT,
    reason="needs onnxscript and onnxruntime (pip install 'convzoo[onnx]'; CI has them via dev)",
)
#: every family at a small width and input size (its smallest size, at least 28 px)
FAMILIES = {
    "lenet": {},
    "lenet_bn": {},
    "alexnet": {},
    "vgg11": {"width_ratio": 16, "hidden": 64},
    "nin": {},
    "googlenet": {},
    "resnet18": {"width": 8},
    "densenet": {"growth_rate": 8, "num_convs_in_dense_blocks": [2, 2, 2, 2]},
    "speednet": {"width": 8},
    "tv_resnet18": {},  # the torchvision family (torchvision's own modules, our stem and head)
}
#: the 1-D members (N x C x L sequences), at their default sizes
SEQUENCE_MODELS = [n for n in convzoo.list_models() if get_model_entry(n).spatial_dims == 1]
FMNIST_MEAN, FMNIST_STD = [0.2860], [0.3530]
CLASSES = [f"c{i}" for i in range(10)]


def realistic(net: torch.nn.Module, x: torch.Tensor) -> None:
    """Untrained weights give logits near 0, where any export matches: give the batch norms
    random statistics and scale the classifier's last layer (what follows it, ReLU and
    pooling, is positively homogeneous) so that the largest logit is 10, a trained network's
    range: then a 1e-4 agreement is a real test."""
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, (_BatchNorm, BatchNorm)):
            for name, buf in m.named_buffers():
                if name.endswith("running_mean") or name.endswith("moving_mean"):
                    buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
                elif name.endswith("running_var") or name.endswith("moving_var"):
                    buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
    net.eval()
    last = [m for m in net.get_classifier().modules() if hasattr(m, "weight")][-1]
    with torch.no_grad():
        largest = float(net(x).abs().max())
        for p in last.parameters():
            p.mul_(10.0 / max(largest, 1e-6))


def make_run(root, name: str, options: dict, normalized: bool = True):
    """A run directory holding ``name``'s weights and metadata (made, not trained)."""
    torch.manual_seed(0)
    net = convzoo.create_model(name, **options)
    size = max(net.min_input_size, 28)
    meta = {
        "model": name,
        "model_options": options,
        "num_classes": 10,
        "in_channels": 1,
        "classes": CLASSES,
        "image_size": size,
        "mean": FMNIST_MEAN if normalized else None,
        "std": FMNIST_STD if normalized else None,
        "dataset": "fashion-mnist",
        "subset": None,
        "precision": "fp32",
        "tta": False,
    }
    probe = normalize(torch.rand(16, 1, size, size), convzoo.ModelMeta.from_dict(meta))
    realistic(net, probe)
    run = root / name
    run.mkdir()
    save_weights(run / "model.safetensors", net.state_dict(), meta)
    return run


def sample_images(n: int = 64) -> torch.Tensor:
    """uint8 n x 1 x 28 x 28: Fashion-MNIST's first test images when the data set is here
    (real pictures, as deployment sees), else toy ones."""
    try:
        return load_dataset("fashion-mnist", "test", download=False).images[:n]
    except DataError:
        return toy_dataset(n, size=28, num_classes=10).images


def model_input(pixels: torch.Tensor, meta, preprocess: bool) -> torch.Tensor:
    size = meta.image_size
    x = pixels.float() / 255
    if size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear")
    if preprocess:
        return (x * 255).round().to(torch.uint8)
    return normalize(x, meta)


def run_file(fmt: str, path, x: torch.Tensor) -> torch.Tensor:
    """The exported file run by its own runtime, not by convzoo's helpers."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    if fmt == "pt2":
        return torch.export.load(str(path)).module()(x)
    return torch.jit.load(str(path))(x)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(family, format, preprocess) -> (run, exported file), exported on first use."""
    root = tmp_path_factory.mktemp("export")
    cache = {}

    def get(name: str, fmt: str, preprocess: bool = False):
        key = (name, fmt, preprocess)
        if key not in cache:
            run = root / name
            if not run.exists():
                make_run(root, name, FAMILIES[name])
            result = export_model(
                run, fmt, dynamic_batch=True, with_preprocess=preprocess, card=False
            )
            cache[key] = (run, result.path)
        return cache[key]

    return get


FORMATS = [pytest.param("onnx", marks=needs_ort), "pt2", "torchscript"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_exported_logits_match_pytorch(exported, family, fmt):
    run, path = exported(family, fmt)
    net = convzoo.load_model(run)
    pixels = sample_images()
    x = model_input(pixels, net.meta, preprocess=False)
    with torch.no_grad():
        ref = net(x)
        assert ref.abs().max() > 2  # logits of a trained network's range: a real check
        for batch in (x[:1], x):  # batch 1 and 64 through the one --dynamic-batch graph
            got = run_file(fmt, path, batch)
            assert got.shape == (len(batch), 10)
            diff = float((got - ref[: len(batch)]).abs().max())
            assert diff <= 1e-4, f"{family} {fmt} batch {len(batch)}: {diff:.2e}"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("family", ["lenet", "resnet18"])
def test_with_preprocess_takes_uint8_pixels(exported, family, fmt):
    run, path = exported(family, fmt, preprocess=True)
    net = convzoo.load_model(run)
    pixels = model_input(sample_images(), net.meta, preprocess=True)  # uint8 at its size
    with torch.no_grad():
        ref = net(normalize(pixels.float() / 255, net.meta))
        got = run_file(fmt, path, pixels)
    assert float((got - ref).abs().max()) <= 1e-4


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_the_1d_models_export_exactly(name, fmt, tmp_path):
    """The exporters take the 1-D networks too (their runs get `convzoo export` when training
    on sequences lands; ModelMeta describes images): the same writer, batch 1 and 64."""
    torch.manual_seed(0)
    net = convzoo.create_model(name, num_classes=5)
    x = torch.randn(64, *get_model_entry(name).default_input_size())  # z-normalized series
    realistic(net, x)
    path = tmp_path / f"{name}{WRITERS[fmt].suffix}"
    WRITERS[fmt].write(net, x[:2], path, {"model": name}, True)
    with torch.no_grad():
        ref = net(x)
        assert ref.abs().max() > 2
        for batch in (x[:1], x):
            diff = float((run_file(fmt, path, batch) - ref[: len(batch)]).abs().max())
            assert diff <= 1e-4, f"{name} {fmt} batch {len(batch)}: {diff:.2e}"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A trained speednet, and 16 of its test images as PNG files of another size and mode:
    on part of the real Fashion-MNIST when it is here, else on toy data."""
    root = tmp_path_factory.mktemp("trained")
    try:
        train = load_dataset("fashion-mnist", "train", download=False)
        test = load_dataset("fashion-mnist", "test", download=False)
        train, test = train.subset(torch.arange(2048)), test.subset(torch.arange(512))
    except DataError:
        train, test = toy_dataset(512, size=28, num_classes=10), toy_dataset(64, size=28, seed=3)
    history = convzoo.fit(
        convzoo.create_model("speednet", width=8),
        (train, test),
        epochs=2,
        augment="",
        normalize=True,
        device="cpu",
        out=root / "run",
        verbose=False,
    )
    paths = []
    for i in range(16):  # other sizes and modes than the training data
        img = Image.fromarray(test.images[i, 0].numpy()).convert("RGB").resize((40, 40))
        paths.append(root / f"img{i}.png")
        img.save(paths[-1])
    return history.run_dir, [str(p) for p in paths]


def predictions(capsys, argv):
    assert cli_main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    return [line.split(": ", 1)[1] for line in out]


@needs_ort
@pytest.mark.slow
def test_convzoo_predict_on_an_exported_onnx_file_agrees_with_the_run(trained_run, capsys):
    run, images = trained_run
    for flags in ([], ["--dynamic-batch"], ["--with-preprocess", "--out", str(run / "u8")]):
        assert cli_main(["export", str(run), *flags]) == 0
        out = capsys.readouterr().out
        assert "max |difference| of the logits" in out and "model card" in out
        # the weights the run chose on validation data, as convzoo predict on the run uses
        onnx = run / ("u8/best-uint8.onnx" if "--out" in flags else "best.onnx")
        want = predictions(capsys, ["predict", str(run), *images])
        got = predictions(capsys, ["predict", str(onnx), *images])
        labels = lambda lines: [line.split(" 0.")[0] for line in lines]  # noqa: E731
        assert labels(got) == labels(want), flags
        if "--with-preprocess" not in flags:  # float input: the same numbers
            assert got == want
    assert len(set(labels(want))) > 1  # a trained network: not one label for everything
    exports = json.loads((run / "exports.json").read_text())
    epoch = json.loads((run / "metrics.json").read_text())["best_epoch"]
    chosen = {e["weights"] for e in exports if e["format"] == "onnx"}
    assert chosen == {f"best.safetensors (epoch {epoch})"}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_the_model_card_describes_the_run_and_its_code_runs(trained_run, capsys, monkeypatch):
    run, images = trained_run
    fmts = ["pt2", "torchscript"] + (["onnx"] if HAVE_ONNX_EXPORT else [])
    for fmt in fmts:
        assert cli_main(["export", str(run), "--format", fmt, "--dynamic-batch"]) == 0
    capsys.readouterr()
    card = (run / "README.md").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"| test_acc | {metrics['test_acc']:.4f} |" in card
    first_class = next(iter(metrics["per_class_acc"]))
    assert "# speednet on " in card and f"Classes in output order: 0 {first_class}," in card
    exports = json.loads((run / "exports.json").read_text())
    assert {e["format"] for e in exports} >= set(fmts)
    assert all(e["max_abs_diff"] <= 1e-4 for e in exports)
    # the card's code blocks, run in the run directory on one of the images
    shutil.copy(images[0], run / "image.png")
    monkeypatch.chdir(run)
    want = predictions(capsys, ["predict", str(run), images[0]])[0].split(" 0.")[0]
    blocks = re.findall(r"```python\n(.*?)```", card, re.S)
    assert len(blocks) == len(fmts) + 1
    for code in blocks:
        (run / "snippet.py").write_text(code)
        runpy.run_path(str(run / "snippet.py"), run_name="__main__")
        printed = capsys.readouterr().out.strip().splitlines()[-1]
        assert want in printed, code


def test_a_readme_that_is_not_a_card_is_kept(tmp_path, capsys):
    run = make_run(tmp_path, "speednet", FAMILIES["speednet"])
    (run / "README.md").write_text("my notes\n")
    assert cli_main(["export", str(run), "--format", "pt2"]) == 0
    assert (run / "README.md").read_text() == "my notes\n"
    assert "model card: " + str(run / "MODEL_CARD.md") in capsys.readouterr().out
    assert (run / "MODEL_CARD.md").read_text().startswith("<!-- convzoo model card")


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    if not HAVE_ONNX_EXPORT:
        pytest.skip("needs onnxscript and onnxruntime (pip install 'convzoo[onnx]')")
    run = make_run(tmp_path_factory.mktemp("onnx"), "lenet", {})
    return export_model(run, "onnx", card=False).path


def _cli_error(capsys, argv) -> str:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("convzoo: error: "), err
    return err


@needs_ort
def test_broken_or_mismatched_onnx_files_are_one_clear_error(onnx_file, tmp_path, capsys):
    import onnx

    img = tmp_path / "x.png"
    Image.new("L", (28, 28)).save(img)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(onnx_file.read_bytes()[:5000])
    assert "truncated or not an ONNX model" in _cli_error(
        capsys, ["predict", str(truncated), str(img)]
    )
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    assert "cannot read ONNX file" in _cli_error(capsys, ["predict", str(garbage), str(img)])
    proto = onnx.load(str(onnx_file))
    meta = next(p for p in proto.metadata_props if p.key == "convzoo")
    data = json.loads(meta.value)
    for change, message in [
        ({"num_classes": 5, "classes": CLASSES[:5]}, "not N x 5 logits"),
        ({"image_size": 32}, "not tensor(float) N x 1 x 32 x 32"),
        ({"export": {**data["export"], "preprocess": True}}, "not tensor(uint8)"),
    ]:
        meta.value = json.dumps({**data, **change})
        altered = tmp_path / "altered.onnx"
        onnx.save(proto, str(altered))
        err = _cli_error(capsys, ["predict", str(altered), str(img)])
        assert "does not match its convzoo metadata" in err and message in err, err
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "foreign.onnx"))
    err = _cli_error(capsys, ["predict", str(tmp_path / "foreign.onnx"), str(img)])
    assert "no convzoo metadata" in err


@needs_ort
def test_a_fixed_batch_onnx_graph_runs_any_number_of_images(onnx_file):
    model = load_onnx(onnx_file)
    assert model.fixed_batch == 1
    x = torch.rand(7, 1, 28, 28)
    assert model(x).shape == (7, 10)


def test_export_refuses_bad_requests_in_one_line(tmp_path, capsys, monkeypatch):
    run = make_run(tmp_path, "lenet", {})
    assert "--out is the folder to write in" in _cli_error(
        capsys, ["export", str(run), "--format", "pt2", "--out", str(tmp_path / "m.onnx")]
    )
    assert "does not exist" in _cli_error(capsys, ["export", str(tmp_path / "nowhere")])
    (tmp_path / "m.pt2").write_bytes(b"x")
    err = _cli_error(capsys, ["predict", str(tmp_path / "m.pt2"), "x.png"])
    assert "reads run directories, .safetensors and .onnx files" in err
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # not installed
    with pytest.raises(ExportError, match=r"needs onnxruntime: pip install 'convzoo\[onnx\]'"):
        load_onnx(tmp_path / "m.onnx")
    assert not list(run.glob(".*tmp*"))  # nothing half-written


def parity_table() -> str:
    """The figures docs/export.md shows: `python tests/test_export.py` (about 2 minutes)."""
    import tempfile
    import warnings
    from pathlib import Path

    warnings.simplefilter("ignore")
    root = Path(tempfile.mkdtemp())
    pixels = sample_images()
    lines = [
        "| family | input | largest logit | ONNX batch 1 | ONNX batch 64 | pt2 batch 64 "
        "| TorchScript batch 64 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, options in FAMILIES.items():
        net = convzoo.load_model(make_run(root, name, options))
        x = model_input(pixels, net.meta, preprocess=False)
        cells = []
        with torch.no_grad():
            ref = net(x)
            for fmt in ("onnx", "pt2", "torchscript"):
                path = export_model(root / name, fmt, dynamic_batch=True, card=False).path
                for n in (1, 64) if fmt == "onnx" else (64,):
                    diff = float((run_file(fmt, path, x[:n]) - ref[:n]).abs().max())
                    cells.append(f"{diff:.1e}")
        size = net.meta.image_size
        lines.append(f"| {name} | {size} px | {float(ref.abs().max()):.1f} | " + " | ".join(cells))
    return "\n".join(line if line.endswith("|") else line + " |" for line in lines)


if __name__ == "__main__":
    print(parity_table())
