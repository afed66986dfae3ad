"""``convzoo.explain``: stage views, the page and its PNGs, every model family, a real browser."""

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import convzoo
from convzoo.errors import ConvzooError
from convzoo.explain import explain, network_input, write_explanation
from convzoo.explain import page as page_module
from convzoo.models import get_model_entry
from convzoo.train.meta import ModelMeta
from convzoo.trained import load_model
from helpers import toy_pair

#: per model: (image size, options) small enough for a test; gray for the zoo, RGB for tv_*
SMALL = {
    "alexnet": (65, {}),
    "densenet": (32, {"growth_rate": 8}),
    "googlenet": (32, {}),
    "lenet": (28, {}),
    "lenet_bn": (28, {}),
    "nin": (67, {}),
    "resnet18": (32, {"width": 8}),
    "resnet34": (32, {"width": 8}),
    "speednet": (28, {"width": 8}),
    "tv_alexnet": (63, {}),
    "tv_mobilenet_v3_small": (32, {}),
    "tv_resnet18": (32, {}),
    "vgg11": (32, {"width_ratio": 8, "hidden": 64}),
}
#: over 40 M parameters: slow to build, and their runs write hundreds of MB
BIG = {"alexnet", "tv_alexnet"}
#: the model trained and explained for each family of the registry (every model is explained
#: untrained by test_explanation_of_every_model)
FAMILY_CASE = {
    "alexnet": "alexnet",
    "densenet": "densenet",
    "googlenet": "googlenet",
    "lenet": "lenet_bn",
    "nin": "nin",
    "resnet": "resnet18",
    "speednet": "speednet",
    "torchvision": "tv_resnet18",
    "vgg": "vgg11",
}
SECTIONS = ["input", "filters", "stages", "scores", "attribution"]


def _image_models():
    """The zoo's 2-D networks: the 1-D ones (lenet1d, ...) take series, not images."""
    return [m for m in convzoo.list_models() if get_model_entry(m).spatial_dims == 2]


def test_every_model_has_a_small_configuration_and_every_family_a_case():
    assert sorted(SMALL) == _image_models()
    families = {get_model_entry(name).family for name in SMALL}
    assert sorted(FAMILY_CASE) == sorted(families)
    assert all(get_model_entry(m).family == f for f, m in FAMILY_CASE.items())


def _meta(name, channels, size, classes=4):
    return ModelMeta(
        model=name,
        num_classes=classes,
        in_channels=channels,
        classes=[f"class{i}" for i in range(classes)],
        image_size=size,
        mean=[0.5] * channels,
        std=[0.25] * channels,
    )


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in BIG else []) for n in sorted(SMALL)]
)
def test_explanation_of_every_model(name):
    size, options = SMALL[name]
    channels = 3 if name.startswith("tv_") else 1
    model = convzoo.create_model(name, num_classes=4, in_channels=channels, **options).eval()
    image = torch.randint(0, 256, (channels, 40, 50), dtype=torch.uint8)
    e = explain(model, _meta(name, channels, size), image, label=1)
    x = e.image[None]
    assert x.shape == (1, channels, size, size)
    # each stage's view is the stage's output: channel count and spatial size
    h = x
    for stage_name, stage in model.stages:
        h = stage(h)
        view = next(v for v in e.stages if v.name == stage_name)
        assert view.shape == tuple(h.shape[1:])
        torch.testing.assert_close(view.activation, h[0])
        ranking = view.ranking()
        assert sorted(ranking) == list(range(h.shape[1]))
        means = h[0].flatten(1).mean(1)[ranking]
        assert (means[:-1] >= means[1:]).all()
        top, maps = view.top_maps(5)
        assert maps.shape == (min(5, h.shape[1]), *h.shape[2:])
        assert top == ranking[:5]
    assert len(e.stages) == len(model.stages)
    torch.testing.assert_close(e.probs, model(x)[0].softmax(0))
    assert e.layer == next(v.name for v in reversed(e.stages) if v.shape[1] * v.shape[2] > 1)
    assert set(e.maps) == set(e.pixel_maps) == {e.predicted, 1}
    for m in [*e.maps.values(), *e.pixel_maps.values()]:
        assert m.shape == (size, size) and (m >= 0).all()
    assert e.filters.shape[1] == channels and e.filters.dim() == 4


def test_network_input_is_the_training_loaders_input():
    from convzoo.data import ImageDataset
    from convzoo.data.loader import DeviceLoader

    images = torch.randint(0, 256, (1, 3, 20, 30), dtype=torch.uint8)
    meta = _meta("x", 3, 28)
    data = ImageDataset(images, torch.zeros(1, dtype=torch.int64), meta.classes)
    loader = DeviceLoader(data, 1, image_size=28, mean=meta.mean, std=meta.std)
    torch.testing.assert_close(network_input(images[0], meta), next(iter(loader)).x)
    with pytest.raises(ConvzooError, match="3-channel"):
        network_input(images[0, :1], meta)


def test_explain_refuses_a_label_outside_the_classes():
    model = convzoo.create_model("lenet", num_classes=4).eval()
    with pytest.raises(ConvzooError, match="label 7"):
        explain(model, _meta("lenet", 1, 28), torch.zeros(1, 28, 28, dtype=torch.uint8), label=7)


def _trained_run(root: Path, name: str) -> Path:
    size, options = SMALL[name]
    channels = 3 if name.startswith("tv_") else 1
    train, test = toy_pair(32, 16, size=size, channels=channels)
    out = root / name
    convzoo.fit(
        name,
        (train, test),
        epochs=1,
        batch_size=16,
        image_size=size,
        model_options=options,
        device="cpu",
        out=out,
        verbose=False,
    )
    return out


def _explain_run(run: Path, out: Path, maps: int = 3) -> Path:
    model = load_model(run)
    meta = model.meta
    test = toy_pair(8, 8, size=meta.image_size, channels=meta.in_channels)[1]
    e = explain(model, meta, test.images[0], label=int(test.labels[0]), source="toy #0")
    return write_explanation(e, out, maps=maps)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.slow] if n != "speednet" else [])
        for n in sorted(FAMILY_CASE.values())
    ],
)
def test_explain_a_trained_run_of_every_family(name, tmp_path):
    run = _trained_run(tmp_path, name)
    page = _explain_run(run, tmp_path / "explained")
    model = load_model(run)
    files = sorted(p.name for p in page.parent.iterdir())
    stages = [f"stage-{s}.png" for s, _ in model.stages]
    assert files == sorted(
        [
            "explain.html",
            "input.png",
            "filters.png",
            "scores.png",
            "attribution.png",
            "pixels.png",
            *stages,
        ]
    )
    text = page.read_text()
    for png in (f for f in files if f.endswith(".png")):
        data = (page.parent / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert base64.b64encode(data).decode() in text  # the same picture, inlined
    if name in BIG:
        shutil.rmtree(run)  # hundreds of MB


@pytest.fixture(scope="module")
def speednet_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    return _explain_run(_trained_run(root, "speednet"), root / "page", maps=4)


def test_page_reads_like_the_network_and_fetches_nothing(speednet_page):
    text = speednet_page.read_text()
    positions = [text.index(f'<section id="{s}">') for s in SECTIONS]
    assert positions == sorted(positions)
    stages = re.findall(r'<article id="stage-(\w+)">', text)
    assert stages == ["b1", "b2", "b3", "b4"]
    assert "b2 &rarr; 16 x 7 x 7" in text
    assert "the 4 most active of 16 channels" in text
    # every source is inline: no URL, no other file
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) == 5 + len(stages)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http" not in text and "<link" not in text and "<script" not in text


def test_rewriting_replaces_an_explanation_but_never_other_folders(speednet_page, tmp_path):
    out = tmp_path / "again"
    first = _explain_run(speednet_page.parent.parent / "speednet", out)
    (out / "stale.png").write_bytes(b"old")
    second = _explain_run(speednet_page.parent.parent / "speednet", out)
    assert first == second and not (out / "stale.png").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ConvzooError, match="not an explanation folder"):
        _explain_run(speednet_page.parent.parent / "speednet", other)
    assert (other / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "mine"]  # no temp folders


def test_a_failure_while_writing_leaves_nothing(speednet_page, tmp_path, monkeypatch):
    def broken(*_args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(page_module.pictures, "scores_png", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        _explain_run(speednet_page.parent.parent / "speednet", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args, profile):
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not on PATH (apt-get install chromium)")
def test_page_in_a_real_browser(speednet_page, tmp_path):
    """Chromium opens the page: every section and picture is in its DOM, every picture decodes
    (a copy of the page counts the decoded images), and the screenshot is not blank."""
    probe = tmp_path / "probe.html"
    probe.write_text(
        speednet_page.read_text().replace(
            "</body>",
            "<script>window.addEventListener('load', () => { document.body.dataset.decoded = "
            "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length; });"
            "</script></body>",
        )
    )
    dom = _chromium(
        "--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), profile=tmp_path / "p1"
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom.stdout
    images = re.findall(r'<img id="img-([\w-]+)"', dom.stdout)
    assert images == [
        "input",
        "filters",
        *(f"stage-b{i}" for i in range(1, 5)),
        "scores",
        "attribution",
        "pixels",
    ]
    assert 'data-decoded="9"' in dom.stdout

    shot = Path(os.environ.get("CONVZOO_EXPLAIN_SCREENSHOT", tmp_path / "explain.png"))
    r = _chromium(
        f"--screenshot={shot}",
        "--window-size=1200,3000",
        "--hide-scrollbars",
        speednet_page.as_uri(),
        profile=tmp_path / "p2",
    )
    assert r.returncode == 0 and shot.stat().st_size > 20_000, r.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is None or len(colors) > 1000  # pictures, not a blank page


def test_a_notebook_shows_the_page_inline():
    model = convzoo.create_model("speednet", num_classes=4, width=8).eval()
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    e = explain(model, _meta("speednet", 1, 28), image, label=1, source="test #3")
    inline = e._repr_html_()
    pngs = page_module.render_pngs(e, 8)
    page = page_module.render_page(e, pngs, 8)
    body = page[page.index("<h1>") :]
    # the page's sections and pictures, without its document and style sheet
    assert re.findall(r'<section id="(\w+)">', inline) == list(SECTIONS)
    assert re.findall(r'<img id="([\w-]+)"', inline) == re.findall(r'<img id="([\w-]+)"', body)
    assert "<style" not in inline and "<html" not in inline and "<body" not in inline
    assert inline.startswith("<h3>speednet on test #3</h3>")
    assert re.fullmatch(
        r"Explanation\(speednet on test #3: predicted class\d [\d.]+, true class1\)", repr(e)
    )
