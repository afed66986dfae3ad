"""Image folders written by the tests: in memory (load_dataset("folder:...")) and streamed."""

import logging
from pathlib import Path

import pytest
import torch

from convzoo.data import (
    DeviceLoader,
    FolderIndex,
    FolderLoader,
    ImageDataset,
    index_folder,
    load_dataset,
    load_folder,
    parse_augment,
    place,
)
from convzoo.data.folder import read_images
from convzoo.errors import DataError
from data_files import save_image, truncated_jpeg


@pytest.fixture
def folder(tmp_path) -> Path:
    """train/ and test/ with two classes; mostly RGB 8x8, one gray, one RGBA, one 10x12."""
    root = tmp_path / "pets"
    for k in range(3):
        save_image(root / "train" / "cat" / f"c{k}.png")
        save_image(root / "train" / "dog" / f"d{k}.jpg")
    save_image(root / "train" / "cat" / "gray.png", "L")
    save_image(root / "train" / "cat" / "alpha.png", "RGBA")
    save_image(root / "train" / "dog" / "big.jpg", size=(10, 12))
    for k in range(2):
        save_image(root / "test" / "cat" / f"c{k}.png")
        save_image(root / "test" / "dog" / f"d{k}.png")
    return root


def test_folder_loads_into_memory_uniformly(folder):
    ds = load_dataset(f"folder:{folder}")
    assert ds.classes == ["cat", "dog"]
    assert ds.images.shape == (9, 3, 8, 8) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == [0] * 5 + [1] * 4
    gray = ds.images[[p.endswith("gray.png") for p, _ in index_folder(folder).samples]][0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[0], gray[2])  # L -> RGB
    test = load_dataset(f"folder:{folder}", "test")
    assert len(test) == 4 and test.split == "test"


def test_channel_majority_and_override(tmp_path):
    root = tmp_path / "digits"
    for k in range(3):
        save_image(root / "a" / f"{k}.png", "L")
    save_image(root / "b" / "0.png", "RGB")
    save_image(root / "b" / "1.png", "L")
    assert index_folder(root).channels == 1
    assert load_folder(root, channels=3).images.shape[1] == 3
    assert load_folder(root, image_size=5).images.shape[-2:] == (5, 5)


def test_seeded_stratified_split_without_train_test(tmp_path):
    root = tmp_path / "flat"
    for k in range(10):
        save_image(root / "cat" / f"{k}.png")
    for k in range(5):
        save_image(root / "dog" / f"{k}.png")
    train, test = index_folder(root, "train"), index_folder(root, "test")
    assert [label for _, label in test.samples].count(0) == 2  # 20% of 10
    assert [label for _, label in test.samples].count(1) == 1  # 20% of 5
    assert len(train) == 12 and not {p for p, _ in train.samples} & {p for p, _ in test.samples}
    assert index_folder(root, "test").samples == test.samples  # the same every time


def test_empty_folder_and_class_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    save_image(tmp_path / "some" / "cat" / "0.png")
    (tmp_path / "some" / "dog").mkdir()
    (tmp_path / "some" / "dog" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="class folder without images") as e:
        load_dataset(f"folder:{tmp_path / 'some'}")
    assert str(tmp_path / "some" / "dog") in str(e.value)
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}")


def test_corrupt_images_are_named_or_skipped_with_a_list(folder, caplog):
    bad = truncated_jpeg(folder / "train" / "dog" / "broken.jpg")
    junk = folder / "train" / "cat" / "junk.png"
    junk.write_bytes(b"this is not a png")
    with pytest.raises(DataError) as e:
        load_dataset(f"folder:{folder}")
    assert str(junk) in str(e.value) and "\n" not in str(e.value)
    junk.rename(junk.with_suffix(".bak"))
    with pytest.raises(DataError, match="truncated") as e:
        load_folder(folder, channels=3, image_size=8)  # no header scan: found when decoding
    assert str(bad) in str(e.value)
    junk.with_suffix(".bak").rename(junk)
    with caplog.at_level(logging.WARNING, logger="convzoo.data"):
        ds = load_dataset(f"folder:{folder}", skip_bad_images=True)
    assert len(ds) == 9
    text = caplog.text
    assert "skipped 2 unreadable image(s)" in text and str(junk) in text and str(bad) in text


def test_memory_decision_uses_the_training_size_and_the_subset(folder):
    index = index_folder(folder, image_size=100)  # 9 images of 3 x 100 x 100
    assert index.nbytes == 9 * 3 * 100 * 100 and index.size == (100, 100)
    (streamed,), note = place([index], budget=index.nbytes - 1)
    assert streamed is index and note.startswith("streamed from disk") and "budget" in note
    (small,), note = place([index.subset(torch.arange(8))], budget=index.nbytes - 1)
    assert isinstance(small, ImageDataset) and small.images.shape == (8, 3, 100, 100)
    assert note.startswith("in memory") and small.note == note
    assert isinstance(place([index], "yes", budget=0)[0][0], ImageDataset)
    assert place([index], "no")[0][0] is index
    assert isinstance(load_dataset(f"folder:{folder}", in_memory="no"), FolderIndex)


def test_in_memory_and_streamed_hold_the_same_pixels_and_statistics(folder):
    index = index_folder(folder, image_size=(6, 7))
    ds = read_images(index)
    assert torch.equal(index.images[:], ds.images) and torch.equal(index.images[3], ds.images[3])
    assert index.stats() == ds.stats()


# -- streamed ---------------------------------------------------------------------------------
def loader_pair(folder, workers=0, **kw):
    """The same folder in memory (DeviceLoader) and streamed (FolderLoader)."""
    index = index_folder(folder, image_size=12)
    kw = dict(shuffle=True, augment=parse_augment("hflip,crop:2,jitter:0.3"), seed=5, **kw)
    return DeviceLoader(read_images(index), 4, **kw), FolderLoader(
        index, 4, num_workers=workers, **kw
    )


def test_streamed_batches_equal_in_memory_ones_and_resume_bitwise(folder):
    memory, streamed = loader_pair(folder, image_size=16, mean=[0.5] * 3, std=[0.25] * 3)
    assert len(streamed) == len(memory) == 3

    def epoch(loader, start=0, ep=3):
        loader.set_epoch(ep, start_step=start)
        return [(b.x, b.y, b.valid) for b in loader]

    full = epoch(streamed)
    assert [v for _, _, v in full] == [4, 4, 1] and full[0][0].shape == (4, 3, 16, 16)
    for a, b in zip(full, epoch(memory)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for a, b in zip(full[1:], epoch(streamed, start=1)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    streamed.num_workers = 2  # decoded in worker processes: the same batches
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full, epoch(streamed)))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(full, epoch(streamed, ep=4)))


def test_streamed_shards_every_sample_once(folder):
    seen, widths = [], []
    for rank in range(2):
        loader = loader_pair(folder, world_size=2, rank=rank)[1]
        batches = list(loader)
        seen += [y for b in batches for y in b.y[: b.valid].tolist()]
        widths.append([len(b.y) for b in batches])
        assert [b.global_valid for b in batches] == [8, 1]
    assert sorted(seen) == [0] * 5 + [1] * 4  # each sample once over the ranks
    assert widths[0] == widths[1] == [4, 1]  # equal shapes on every rank


def test_streamed_bad_file_errors_or_is_skipped_and_listed(folder, caplog):
    bad = truncated_jpeg(folder / "train" / "dog" / "broken.jpg")  # its header reads
    index = index_folder(folder, image_size=8)
    assert str(bad) in index.paths.tolist()
    with pytest.raises(DataError, match="skip-bad-images") as e:
        list(FolderLoader(index, 4, num_workers=0))
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    index.skip_bad_images = True
    loader = FolderLoader(index, 4, num_workers=0)
    with caplog.at_level(logging.WARNING, logger="convzoo.data"):
        batches = list(loader)
    assert sum(b.valid for b in batches) == 9 and all(len(b.y) == 4 for b in batches[:-1])
    assert list(loader.bad_images) == [str(bad)] and str(bad) in caplog.text
