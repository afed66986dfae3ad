"""load_dataset on synthetic IDX and CIFAR files written by the tests (no network, no system
copies: CONVZOO_SYSTEM_DATA points at a folder of the test's own)."""

import gzip
import hashlib
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

import convzoo
from convzoo.data import fetch_dataset, load_dataset
from convzoo.errors import ConvzooError, DataError, UnknownNameError
from data_files import idx_bytes, isolate_data, write_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    isolate_data(tmp_path, monkeypatch)


def raw(tmp_path, cls="FashionMNIST") -> Path:
    return tmp_path / "cache" / cls / "raw"


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


# -- IDX --------------------------------------------------------------------------------------
def test_loads_valid_files_from_the_data_directory(tmp_path):
    write_idx(raw(tmp_path), "train", 30)
    ds = load_dataset("fashion-mnist")
    assert ds.images.shape == (30, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [i % 10 for i in range(30)]
    assert ds.classes[:2] == ["T-shirt/top", "Trouser"] and ds.classes[-1] == "Ankle boot"
    assert ds.name == "fashion-mnist" and ds.split == "train"
    assert convzoo.load_dataset is load_dataset


def test_idx_reader_and_class_names_match_torchvision(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    from convzoo.data.idx import FASHION_MNIST_CLASSES, MNIST_CLASSES, read_idx

    write_idx(raw(tmp_path), "test", 23)
    images, labels = (
        raw(tmp_path) / f"t10k-{k}-idx{n}-ubyte" for k, n in (("images", 3), ("labels", 1))
    )
    assert torch.equal(read_idx(images, 3), read_image_file(str(images)))
    assert torch.equal(read_idx(labels, 1).long(), read_label_file(str(labels)))
    assert tuple(FashionMNIST.classes) == FASHION_MNIST_CLASSES
    assert tuple(MNIST.classes) == MNIST_CLASSES


def test_importing_convzoo_leaves_torchvision_alone():
    # torchvision's import costs 1 s here and more on the GPU machine: only downloads, CIFAR-10,
    # image folders and torchvision's models may import it
    code = (
        "import sys, convzoo, convzoo.cli, convzoo.train.run; "
        "convzoo.create_model('speednet').min_input_size; "
        "heavy = ('torchvision', 'torch._dynamo', 'matplotlib'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_root_argument_wins_over_the_environment(tmp_path):
    write_idx(tmp_path / "elsewhere" / "FashionMNIST" / "raw", "test", 7)
    assert len(load_dataset("fashion-mnist", "test", root=tmp_path / "elsewhere")) == 7
    with pytest.raises(DataError):
        load_dataset("fashion-mnist", "test", download=False)


def test_system_copy_is_decompressed_into_the_data_directory(tmp_path):
    write_idx(tmp_path / "system" / "fashion-mnist", "test", 12, gz=True)
    ds = load_dataset("fashion-mnist", "test")
    assert len(ds) == 12
    files = sorted(p.name for p in raw(tmp_path).iterdir())
    assert files == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]  # no temp files


def test_mnist_system_copy_too(tmp_path):
    write_idx(tmp_path / "system" / "mnist", "train", 10, gz=True)
    ds = load_dataset("mnist")
    assert len(ds) == 10 and ds.classes[0] == "0 - zero"
    assert (raw(tmp_path, "MNIST") / "train-images-idx3-ubyte").exists()


def test_truncated_image_file_is_named(tmp_path):
    write_idx(raw(tmp_path), "train", 20)
    f = raw(tmp_path) / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DataError) as e:
        load_dataset()
    msg = one_line(e)
    assert str(f) in msg and "truncated" in msg and "convzoo data fetch fashion-mnist" in msg


def test_wrong_magic_is_named(tmp_path):
    write_idx(raw(tmp_path), "train", 20)
    f = raw(tmp_path) / "train-labels-idx1-ubyte"
    f.write_bytes(b"\x00\x00\x08\x03" + f.read_bytes()[4:])  # an image magic on a label file
    with pytest.raises(DataError, match="not an IDX label file") as e:
        load_dataset()
    assert str(f) in one_line(e)


def test_garbage_file_is_named(tmp_path):
    write_idx(raw(tmp_path), "train", 20)
    f = raw(tmp_path) / "train-images-idx3-ubyte"
    f.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="not an IDX image file") as e:
        load_dataset()
    assert str(f) in one_line(e)


def test_image_and_label_counts_must_match(tmp_path):
    write_idx(raw(tmp_path), "train", 20)
    labels = raw(tmp_path) / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.arange(19) % 10))
    with pytest.raises(DataError, match=r"20 images but .* 19 labels") as e:
        load_dataset()
    one_line(e)


def test_labels_out_of_range(tmp_path):
    write_idx(raw(tmp_path), "train", 5, labels=[0, 1, 2, 10, 3])
    with pytest.raises(DataError, match=r"label 10 is outside 0\.\.9"):
        load_dataset()


def test_damaged_system_copy_is_named_and_nothing_kept(tmp_path):
    sysdir = tmp_path / "system" / "fashion-mnist"
    write_idx(sysdir, "train", 20, gz=True)
    gz = sysdir / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-30])  # cut short: the gzip stream ends early
    with pytest.raises(DataError) as e:
        load_dataset()
    assert str(gz) in one_line(e)
    assert not any(raw(tmp_path).glob("train-images*"))


def test_system_copy_with_bad_content_is_named(tmp_path):
    sysdir = tmp_path / "system" / "fashion-mnist"
    write_idx(sysdir, "train", 20, gz=True)
    gz = sysdir / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(gzip.decompress(gz.read_bytes())[:500]))
    with pytest.raises(DataError, match="apt-get install --reinstall dataset-fashion-mnist") as e:
        load_dataset()
    assert str(gz) in one_line(e) and "truncated" in str(e.value)
    assert not any(raw(tmp_path).glob("train-images*"))


def test_missing_without_download_lists_places_and_ways(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(download=False)
    msg = one_line(e)
    assert str(raw(tmp_path)) in msg and str(tmp_path / "system" / "fashion-mnist") in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "convzoo data fetch fashion-mnist" in msg and "download disabled" in msg


def test_failed_download_is_fast_clean_and_one_line(tmp_path):
    t = time.perf_counter()
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", "test")
    assert time.perf_counter() - t < 10
    msg = one_line(e)
    assert "not downloaded" in msg and "apt-get install dataset-fashion-mnist" in msg
    left = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert left == [] and not list((tmp_path / "cache").glob(".fetch-*"))


def test_offline_environment_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_OFFLINE", "1")
    with pytest.raises(DataError, match="CONVZOO_OFFLINE is set"):
        fetch_dataset("mnist")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownNameError, match="fashion-mnist, mnist, cifar10, folder:PATH"):
        load_dataset("fashion_mnist")
    with pytest.raises(UnknownNameError, match="train, test"):
        load_dataset("fashion-mnist", "val")


def test_folder_options_are_refused_for_named_sets():
    with pytest.raises(ConvzooError, match="image_size only apply to folder"):
        load_dataset("mnist", image_size=32)


def test_fetch_puts_both_splits_in_place(tmp_path):
    for split in ("train", "test"):
        write_idx(tmp_path / "system" / "fashion-mnist", split, 10, gz=True)
    assert fetch_dataset() == raw(tmp_path)
    assert len(list(raw(tmp_path).iterdir())) == 4


# -- CIFAR-10 ---------------------------------------------------------------------------------
def write_cifar(folder: Path, monkeypatch, n: int = 6) -> None:
    """Six tiny batches and the meta file; torchvision's checksums patched to theirs."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5 = {}
    for k, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        entry = {
            "data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
            "labels": [(k + i) % 10 for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(entry))
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    meta = {"label_names": ["airplane", "automobile", *(f"c{i}" for i in range(2, 10))]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    monkeypatch.setattr(
        CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(
        CIFAR10,
        "meta",
        {
            "filename": "batches.meta",
            "key": "label_names",
            "md5": hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest(),
        },
    )


def test_cifar10_loads_through_torchvision(tmp_path, monkeypatch):
    write_cifar(tmp_path / "cache" / "cifar-10-batches-py", monkeypatch)
    train, test = load_dataset("cifar10"), load_dataset("cifar10", "test")
    assert train.images.shape == (30, 3, 32, 32) and len(test) == 6
    assert train.classes[:2] == ["airplane", "automobile"] and train.labels.dtype == torch.int64


def test_cifar10_corrupt_batch_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "cache" / "cifar-10-batches-py"
    write_cifar(folder, monkeypatch)
    bad = folder / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DataError, match="checksum mismatch") as e:
        load_dataset("cifar10")
    assert str(bad) in one_line(e)


def test_cifar10_missing_offline(tmp_path):
    with pytest.raises(DataError, match="cifar10 not found") as e:
        load_dataset("cifar10", download=False)
    one_line(e)


# -- the real thing ---------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.skipif(not FASHION.is_dir(), reason="needs the dataset-fashion-mnist package")
def test_real_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVZOO_SYSTEM_DATA")
    t = time.perf_counter()
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    first = time.perf_counter() - t
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.class_counts() == [6_000] * 10 and test.class_counts() == [1_000] * 10
    assert train.images.shape[1:] == (1, 28, 28)
    t = time.perf_counter()
    load_dataset("fashion-mnist", "train")
    assert time.perf_counter() - t < 3 and first < 10  # decompressed once, then read
    mean, std = train.stats()
    assert abs(mean[0] - 0.2860) < 1e-3 and abs(std[0] - 0.3530) < 1e-3
