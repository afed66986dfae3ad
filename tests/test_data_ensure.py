"""``convzoo data fetch``'s chain (data directory, packaged copy, download, one line saying what
to run), on files the tests write: downloads go to a closed local port or a silent one, and the
library runs no program (set-up's apt step is the Makefile's)."""

import socket
import subprocess
import time
from pathlib import Path

import pytest
from torchvision.datasets import FashionMNIST

from convzoo.cli import main
from convzoo.data import files
from convzoo.data.ensure import ensure_dataset
from convzoo.errors import DataError, DataNotFoundError
from data_files import isolate_data, write_idx

PACKAGE = "dataset-fashion-mnist"


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    isolate_data(tmp_path, monkeypatch)

    def refuse(*args, **kwargs):
        raise AssertionError(f"the library ran a program: {args}")

    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)


def raw(tmp_path) -> Path:
    return tmp_path / "cache" / "FashionMNIST" / "raw"


def test_data_already_there_installs_nothing_and_says_so(tmp_path):
    for split in ("train", "test"):
        write_idx(raw(tmp_path), split, 10)
    got = ensure_dataset()
    assert got.folder == raw(tmp_path)
    assert got.line == f"fashion-mnist: already in {raw(tmp_path)}; nothing downloaded or installed"


def test_packaged_copy_is_used_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://never.invalid/"])  # would be noticed
    for split in ("train", "test"):
        write_idx(tmp_path / "system" / "fashion-mnist", split, 10, gz=True)
    got = ensure_dataset()
    assert "copied from the packaged copy" in got.line and str(tmp_path / "system") in got.line
    assert sorted(p.name for p in raw(tmp_path).iterdir()) == [
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    ]


def test_missing_data_names_the_package_and_installs_nothing(tmp_path, capsys):
    t = time.perf_counter()
    assert main(["data", "fetch"]) == 2
    assert time.perf_counter() - t < 10
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"apt-get install {PACKAGE}" in err and "fashion-mnist not found" in err
    assert str(raw(tmp_path)) in err and "127.0.0.1:9" in err  # where it looked, why no download
    assert not raw(tmp_path).exists() or not any(raw(tmp_path).iterdir())


@pytest.mark.parametrize("offline", [True, False])
def test_offline_or_no_download_names_the_package(monkeypatch, offline):
    if offline:
        monkeypatch.setenv("CONVZOO_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match=f"apt-get install {PACKAGE}"):
        ensure_dataset(download=offline)


def test_data_set_without_a_package_names_none(tmp_path):
    with pytest.raises(DataNotFoundError, match="mnist not found") as e:
        ensure_dataset("mnist")
    assert "apt-get" not in str(e.value)


def test_silent_mirror_fails_within_the_download_timeout(tmp_path, monkeypatch):
    # a server that accepts the connection and never answers: without a socket timeout,
    # torchvision's urlopen waits forever and set-up hangs
    assert files.DOWNLOAD_TIMEOUT_S <= 10  # the real limit is a few seconds per mirror
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
        monkeypatch.setattr(files, "DOWNLOAD_TIMEOUT_S", 0.5)
        t = time.perf_counter()
        with pytest.raises(DataError, match="timed out"):
            ensure_dataset()
        assert time.perf_counter() - t < 5
