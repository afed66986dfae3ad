"""Image folders written by the tests: in memory (load_dataset("folder:...")) and streamed."""

import logging
from pathlib import Path

import pytest
import torch

from convzoo.data import FolderLoader, index_folder, load_dataset, load_folder
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


def test_too_big_for_memory_points_to_the_streaming_loader(folder):
    with pytest.raises(DataError, match="FolderLoader"):
        load_folder(folder, max_bytes=1000)


# -- streamed ---------------------------------------------------------------------------------
def test_folder_loader_batches_like_device_loader(folder):
    loader = FolderLoader(folder, 4, num_workers=0, image_size=16, mean=[0.5] * 3, std=[0.25] * 3)
    assert len(loader) == 3 and loader.samples_per_epoch == 9 and loader.batch_size == 4
    batches = list(loader)
    assert [b.valid for b in batches] == [4, 4, 1]
    assert batches[0].x.shape == (4, 3, 16, 16) and batches[0].x.dtype == torch.float32
    assert torch.cat([b.y for b in batches]).tolist() == [0] * 5 + [1] * 4
    ref = load_folder(folder)
    x = ref.images[:4].float().div(255)
    x = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(batches[0].x, (x - 0.5) / 0.25)
    assert loader.data.num_classes == 2 and loader.data.in_channels == 3


def test_folder_loader_is_deterministic_resumable_and_worker_independent(folder):
    def epoch(workers, start=0, ep=3):
        loader = FolderLoader(
            folder, 2, shuffle=True, augment="hflip,crop:2,jitter:0.3", seed=5, num_workers=workers
        )
        loader.set_epoch(ep, start_step=start)
        return [(b.x, b.y) for b in loader]

    full = epoch(0)
    resumed = epoch(0, start=2)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[2:], resumed)
    )
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full, epoch(2)))  # workers change nothing
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(full, epoch(0, ep=4)))


def test_folder_loader_shards_every_sample_once(folder):
    seen, widths = [], []
    for rank in range(2):
        loader = FolderLoader(folder, 2, shuffle=True, world_size=2, rank=rank, num_workers=0)
        batches = list(loader)
        seen += [y for b in batches for y in b.y[: b.valid].tolist()]
        widths.append([len(b.y) for b in batches])
        assert [b.global_valid for b in batches] == [4, 4, 1]
    assert sorted(seen) == [0] * 5 + [1] * 4  # each sample once over the ranks
    assert widths[0] == widths[1] == [2, 2, 1]  # equal shapes on every rank


def test_folder_loader_bad_file_errors_or_is_skipped(folder, caplog):
    bad = truncated_jpeg(folder / "train" / "dog" / "broken.jpg")
    kw = dict(channels=3, load_size=8, num_workers=0)  # no header scan
    with pytest.raises(DataError, match="skip_bad_images=True") as e:
        list(FolderLoader(folder, 4, **kw))
    assert str(bad) in str(e.value)
    loader = FolderLoader(folder, 4, skip_bad_images=True, **kw)
    with caplog.at_level(logging.WARNING, logger="convzoo.data"):
        batches = list(loader)
    assert sum(b.valid for b in batches) == 9 and all(len(b.y) == 4 for b in batches[:-1])
    assert list(loader.bad_images) == [str(bad)] and str(bad) in caplog.text
