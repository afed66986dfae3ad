"""``convzoo data`` and ``convzoo augment``, run in-process (and once as a real process), on
files the tests write; the grid PNGs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import convzoo
from convzoo.cli import main
from convzoo.viz import image_grid
from data_files import save_image, truncated_jpeg, write_idx


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("CONVZOO_SYSTEM_DATA", str(tmp_path / "system"))
    monkeypatch.setenv("CONVZOO_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fashion(tmp_path) -> Path:
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    write_idx(raw, "train", 40)
    write_idx(raw, "test", 10)
    return tmp_path / "data"


def run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def test_image_grid_png_has_the_expected_size(tmp_path):
    path = image_grid(torch.rand(5, 3, 10, 12), list("abcde"), rows=2, cols=3, path="g/x.png")
    assert path == Path("g/x.png") and png_size(path) == (3 * 150, 2 * 150)
    gray = image_grid([torch.zeros(1, 8, 8, dtype=torch.uint8)] * 3, path="g/y.png", title="t")
    assert png_size(gray) == (3 * 150, 150 + 40)


def test_data_info_prints_the_set_and_writes_a_grid(capsys, fashion, tmp_path):
    rc, out, err = run(capsys, "data", "info", "fashion-mnist", "--data-dir", str(fashion))
    assert rc == 0, err
    assert "1 x 28 x 28" in out and "train 40, test 10" in out
    assert "T-shirt/top" in out and "Ankle boot" in out and "mean 0.4" in out
    assert "wrote data-fashion-mnist.png" in out
    assert png_size(tmp_path / "data-fashion-mnist.png") == (5 * 150, 2 * 150 + 40)


def test_data_fetch_reports_where(capsys, fashion):
    rc, out, _ = run(capsys, "data", "fetch", "--data-dir", str(fashion))
    assert rc == 0 and str(fashion / "FashionMNIST" / "raw") in out


def test_data_info_on_a_folder_skipping_bad_images(capsys, tmp_path):
    for split in ("train", "test"):
        for k in range(3):
            save_image(tmp_path / "imgs" / split / "a" / f"{k}.png")
            save_image(tmp_path / "imgs" / split / "b" / f"{k}.jpg")
    bad = truncated_jpeg(tmp_path / "imgs" / "train" / "b" / "bad.jpg")
    rc, _, err = run(capsys, "data", "info", f"folder:{tmp_path / 'imgs'}")
    assert rc == 2 and str(bad) in err and "--skip-bad-images" in err
    rc, out, err = run(
        capsys, "data", "info", f"folder:{tmp_path / 'imgs'}", "--skip-bad-images", "--out", "f"
    )
    assert rc == 0 and "train 6, test 6" in out and "3 x 8 x 8" in out
    assert (tmp_path / "f" / "data-imgs.png").exists()


def test_augment_an_image_file(capsys, tmp_path):
    img = save_image(tmp_path / "photo.png", "RGBA", size=(30, 40))
    rc, out, err = run(capsys, "augment", str(img), "--augment", "hflip,rrc:20:0.3-1", "--out", "a")
    assert rc == 0, err
    assert "7 versions 20x20" in out and png_size(tmp_path / "a" / "augment.png") == (
        4 * 150,
        2 * 150 + 40,
    )


def test_augment_a_data_set_image(capsys, fashion, tmp_path):
    rc, _, err = run(
        capsys,
        "augment",
        "fashion-mnist",
        "--data-dir",
        str(fashion),
        "--augment",
        "crop:4",
        "--index",
        "3",
        "--rows",
        "1",
        "--cols",
        "3",
        "--seed",
        "7",
    )
    assert rc == 0, err
    assert png_size(tmp_path / "augment.png") == (3 * 150, 150 + 40)


@pytest.mark.parametrize(
    "args, words",
    [
        (["data", "info", "fashion_mnist"], "unknown data set 'fashion_mnist'"),
        (["data", "info", "--data-dir", "{tmp}/void"], "apt-get install dataset-fashion-mnist"),
        (["data", "info", "folder:{tmp}/nothing"], "no such folder"),
        (["data", "info", "folder:{tmp}/empty"], "no class folders"),
        (["data", "info", "folder:{tmp}/noimg"], "class folder without images"),
        (["data", "info", "fashion-mnist", "--data-dir", "{tmp}/trunc"], "truncated"),
        (["data", "info", "fashion-mnist", "--data-dir", "{tmp}/mismatch"], "but"),
        (["augment", "fashion-mnist", "--augment", "hflip,spin"], "unknown augmentation 'spin'"),
        (["augment", "{tmp}/pic.png", "--augment", "crop:x"], "bad augmentation 'crop:x'"),
        (["augment", "nope.png", "--augment", "hflip"], "neither an image file nor a data set"),
        (["augment", "{tmp}/broken.png", "--augment", "hflip"], "broken.png"),
        (
            [
                "augment",
                "fashion-mnist",
                "--augment",
                "hflip",
                "--data-dir",
                "{tmp}/ok",
                "--index",
                "99",
            ],
            "--index 99",
        ),
    ],
)
def test_bad_input_is_one_line_and_non_zero(capsys, tmp_path, args, words):
    (tmp_path / "empty").mkdir()
    save_image(tmp_path / "noimg" / "a" / "0.png")
    (tmp_path / "noimg" / "b").mkdir()
    save_image(tmp_path / "pic.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    write_idx(tmp_path / "ok" / "FashionMNIST" / "raw", "train", 5)
    trunc = tmp_path / "trunc" / "FashionMNIST" / "raw"
    write_idx(trunc, "train", 5)
    (trunc / "train-images-idx3-ubyte").write_bytes(
        (trunc / "train-images-idx3-ubyte").read_bytes()[:99]
    )
    mismatch = tmp_path / "mismatch" / "FashionMNIST" / "raw"
    write_idx(mismatch, "train", 5)
    write_idx(tmp_path / "other", "train", 6)
    (tmp_path / "other" / "train-labels-idx1-ubyte").replace(mismatch / "train-labels-idx1-ubyte")
    rc, _, err = run(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("convzoo: error: "), err
    assert words in err


def test_a_real_process_prints_one_line_without_traceback(tmp_path):
    src = Path(convzoo.__file__).parents[1]  # this checkout, whatever the cwd
    r = subprocess.run(
        [sys.executable, "-m", "convzoo", "data", "info", "cifar-100"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "convzoo: error: unknown data set 'cifar-100'; known: fashion-mnist, mnist, cifar10, "
        "folder:PATH, csv:FILE, ucr:NAME, uea:NAME"
    ]
