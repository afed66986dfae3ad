"""``convzoo explain`` as a user runs it (subprocesses, a toy image folder, a run trained here)."""

import json

import pytest

import convzoo
from helpers import write_image_folder
from test_cli_train import cli


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("toy") / "imgs", n_train=64, n_test=16)


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    """A speednet run on the folder, trained in-process (the CLI's training has its tests)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    convzoo.fit(
        "speednet",
        f"folder:{folder}",
        epochs=1,
        batch_size=16,
        device="cpu",
        out=out,
        verbose=False,
    )
    return out


def test_explain_an_image_file(run, folder):
    image = sorted((folder / "test" / "class2").glob("*.png"))[0]
    r = cli("explain", run, image, "--label", "class2", "--maps", "3")
    assert r.returncode == 0, r.stderr
    out = run / f"explain-{image.stem}"
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{image.name}: predicted class") and "true class2" in lines[0]
    assert "hirescam at b4" in lines[0]
    assert lines[1] == f"wrote {out / 'explain.html'} (and 9 PNGs beside it)"
    text = (out / "explain.html").read_text()
    width = json.loads((run / "config.json").read_text())["model_options"]["width"]
    assert f"the 3 most active of {width} channels" in text and "true class class2" in text


def test_explain_an_image_of_the_data_set(run, tmp_path):
    out = tmp_path / "ex"
    r = cli("explain", run, "--index", "5", "--layer", "b2", "--method", "gradcam", "--out", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("folder:") and "test #5" in r.stdout
    assert "gradcam at b2" in r.stdout
    text = (out / "explain.html").read_text()
    width = json.loads((run / "config.json").read_text())["model_options"]["width"]
    assert "Grad-CAM" in text and f"at b2 ({2 * width} x 7 x 7, upsampled to 28 x 28)" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/no-run", "{image}"], "no-run"),
        (["{run}", "{tmp}/missing.png"], "image {tmp}/missing.png does not exist"),
        (["{run}", "{tmp}/text.png"], "cannot read image {tmp}/text.png"),
        (["{run}", "--index", "999"], "--index 999 is outside 0..15"),
        (["{run}", "--index", "-1"], "--index -1 is outside"),
        (["{run}", "{image}", "--layer", "b9"], "unknown layer 'b9'; stages of speednet: b1, b2"),
        (["{run}", "{image}", "--index", "1"], "give an IMAGE file or --index N"),
        (["{run}"], "give an IMAGE file or --index N"),
        (["{run}", "{image}", "--maps", "0"], "--maps must be >= 1"),
        (["{run}", "{image}", "--label", "cat"], "unknown class 'cat'; classes: class0"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(run, folder, tmp_path, args, message):
    (tmp_path / "text.png").write_text("not a picture")
    image = sorted((folder / "test" / "class0").glob("*.png"))[0]
    fill = {"tmp": tmp_path, "run": run, "image": image}
    out = tmp_path / "out"
    before = sorted(p.name for p in run.iterdir())
    r = cli("explain", *(a.format(**fill) for a in args), "--out", out, cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convzoo: error:"), r.stderr
    assert message.format(**fill) in lines[0]
    assert not out.exists()
    assert sorted(p.name for p in run.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.png"]
