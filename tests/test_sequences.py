"""Time series: the .ts reader, ucr:/uea: names, normalisation and padding, subsets."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import convzoo
from convzoo.data import SequenceDataset, apply_subset, fetch_dataset, load_dataset
from convzoo.data import sequences as seq
from convzoo.data.ts_format import read_ts
from convzoo.errors import DataError, UnknownNameError

HAS_AEON = importlib.util.find_spec("aeon") is not None
needs_aeon = pytest.mark.skipif(not HAS_AEON, reason="aeon (pip install convzoo[ts]) is absent")


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def series_line(channels, label):
    return ":".join(",".join(str(v) for v in c) for c in channels) + f":{label}"


def write_ts(folder: Path, name, split, rows, labels, *, header=None, comment=True):
    """A .ts file of ``rows`` (each a list of channels, each a list of values)."""
    folder.mkdir(parents=True, exist_ok=True)
    dims = len(rows[0][0]) if rows else 1
    lines = ["# written by the test"] if comment else []
    lines += header or [
        f"@problemName {name}",
        "@timeStamps false",
        f"@univariate {'true' if dims == 1 else 'false'}",
        *([f"@dimensions {dims}"] if dims > 1 else []),
        f"@classLabel true {' '.join(labels)}",
        "@data",
    ]
    lines += [series_line(r, lab) for r, lab in rows]
    path = folder / f"{name}_{split.upper()}.ts"
    path.write_text("\n".join(lines) + "\n")
    return path


def ucr(data_dir, name="Toy"):
    return data_dir / "ucr" / name


def test_univariate_file_reads_with_sorted_numeric_classes(data_dir):
    rows = [([[1, 2, 3, 4]], "10"), ([[0, 0, 1, 1]], "2"), ([[4, 3, 2, 1]], "1")]
    write_ts(ucr(data_dir), "Toy", "train", rows, ["1", "2", "10"])
    write_ts(ucr(data_dir), "Toy", "test", rows[:1], ["10", "2", "1"])
    ds = load_dataset("ucr:Toy", "train")
    assert isinstance(ds, SequenceDataset) and ds.name == "ucr:Toy" and ds.split == "train"
    assert ds.znorm  # the UCR archive's convention
    assert ds.series.shape == (3, 1, 4) and ds.series.dtype == torch.float32
    assert (ds.in_channels, ds.length, ds.num_classes, len(ds)) == (1, 4, 3, 3)
    # the archive's labels are the class names, in numeric (not text) order
    assert ds.classes == ["1", "2", "10"] and ds.labels.tolist() == [2, 1, 0]
    assert ds.class_counts() == [1, 1, 1]
    # z-normalised per series with the n - 1 divisor
    x = np.array([1, 2, 3, 4.0])
    expected = (x - x.mean()) / x.std(ddof=1)
    torch.testing.assert_close(ds.series[0, 0], torch.tensor(expected, dtype=torch.float32))
    assert load_dataset("ucr:Toy", "test").labels.tolist() == [2]  # same numbering
    assert ds.source.endswith("Toy_TRAIN.ts")


def test_text_labels_sort_as_text(data_dir):
    rows = [([[1, 2, 3]], "walk"), ([[3, 2, 1]], "Run"), ([[1, 1, 2]], "jump")]
    for split in ("train", "test"):
        write_ts(ucr(data_dir), "Toy", split, rows, ["walk", "Run", "jump"])
    ds = load_dataset("ucr:Toy")
    assert ds.classes == ["Run", "jump", "walk"] and ds.labels.tolist() == [2, 0, 1]


def test_multivariate_varying_lengths_pad_and_crop(data_dir):
    folder = data_dir / "uea" / "Toy"
    train = [
        ([[1, 2, 3], [10, 20, 40]], "a"),
        ([[5, 1, 5, 1, 5], [0, 1, 0, 1, 1]], "b"),  # the longest train series: 5 steps
    ]
    test = [([[1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1]], "b"), ([[2, 2], [1, 3]], "a")]
    write_ts(folder, "Toy", "train", train, ["a", "b"])
    write_ts(folder, "Toy", "test", test, ["a", "b"])
    stored = load_dataset("uea:Toy", "train")
    assert stored.series.shape == (2, 2, 5) and stored.length == 5 and not stored.znorm
    # a UEA set keeps its stored values (the archive's convention), padded with zeros
    assert stored.series[0].tolist() == [[1, 2, 3, 0, 0], [10, 20, 40, 0, 0]]
    tr = seq.load_sequences("uea:Toy", "train", normalize=True)
    assert tr.series.shape == (2, 2, 5) and tr.znorm
    # each channel normalised on its own over the series' real steps, then zeros appended
    ch1 = np.array([10, 20, 40.0])
    torch.testing.assert_close(
        tr.series[0, 1], torch.tensor([*((ch1 - ch1.mean()) / ch1.std(ddof=1)), 0, 0]).float()
    )
    for c in range(2):
        real = tr.series[0, c, :3]
        assert abs(real.mean()) < 1e-6 and abs(real.std() - 1) < 1e-6
    te = seq.load_sequences("uea:Toy", "test", normalize=True)
    assert te.series.shape == (2, 2, 5)  # the train length: test lengths choose nothing
    full = np.arange(1, 8.0)
    cut = (full - full.mean()) / full.std(ddof=1)  # normalised over all 7, then cut at the end
    torch.testing.assert_close(te.series[0, 0], torch.tensor(cut[:5]).float())
    assert te.series[1, :, 2:].abs().max() == 0  # a short test series is padded with zeros
    assert seq.load_sequences("uea:Toy", "test", length=3).series.shape == (2, 2, 3)


def test_missing_values_and_trailing_padding(data_dir):
    rows = [
        ([[1, "?", 3, 5]], "1"),  # a missing value inside
        ([[2, 4, 6, "NaN", "NaN"]], "2"),  # trailing NaN: the archive's padding of a short one
        ([[7, 7, 7, 7, 7]], "1"),  # constant: zeros
    ]
    for split in ("train", "test"):
        write_ts(ucr(data_dir), "Toy", split, rows, ["1", "2"])
    ds = load_dataset("ucr:Toy")
    assert torch.isfinite(ds.series).all() and ds.length == 5
    x = np.array([1, 3, 5.0])  # statistics over the observed values only
    z = (x - x.mean()) / x.std(ddof=1)
    torch.testing.assert_close(ds.series[0, 0], torch.tensor([z[0], 0, z[1], z[2], 0]).float())
    x = np.array([2, 4, 6.0])
    z = (x - x.mean()) / x.std(ddof=1)
    torch.testing.assert_close(ds.series[1, 0], torch.tensor([*z, 0, 0]).float())
    assert ds.series[2].abs().max() == 0
    raw = seq.load_sequences("ucr:Toy", normalize=False)
    assert raw.series[0, 0].tolist() == [1, 0, 3, 5, 0] and raw.series[2, 0, 0] == 7
    assert not raw.znorm and not raw.subset(torch.tensor([0])).znorm  # subsets keep the rule


def test_renormalising_a_normalised_series_changes_nothing(data_dir):
    x = np.random.default_rng(0).normal(size=50)
    x = (x - x.mean()) / x.std(ddof=1)  # the classic UCR sets are stored like this
    for split in ("train", "test"):
        write_ts(ucr(data_dir), "Toy", split, [([x.tolist()], "1")], ["1"])
    ds = load_dataset("ucr:Toy")
    torch.testing.assert_close(ds.series[0, 0], torch.tensor(x, dtype=torch.float32))


BAD_FILES = {
    "not a number": (["@classLabel true 1", "@data", "1,2,x:1"], ":3: 'x' is not a number"),
    "empty value": (["@classLabel true 1", "@data", "1,,2:1"], ":3: '' is not a number"),
    "undeclared label": (["@classLabel true 1 2", "@data", "1,2:3"], "label '3' is not declared"),
    "channels change": (
        ["@classLabel true 1", "@data", "1,2:3,4:1", "1,2:1"],
        ":4: 1 channels, expected 2",
    ),
    "unequal channels": (["@classLabel true 1", "@data", "1,2:3:1"], "different lengths [1, 2]"),
    "no data line": (["@classLabel true 1"], "no @data line"),
    "no labels": (["@problemName X", "@data", "1,2:1"], "no @classLabel line"),
    "labels false": (["@classLabel false", "@data", "1,2"], "has no classes"),
    "regression": (["@targetLabel true", "@data", "1,2:0.5"], "regression file"),
    "time stamps": (["@timeStamps true", "@classLabel true 1", "@data", "(0,1):1"], "time-stamp"),
    "no series": (["@classLabel true 1", "@data"], "no series after @data"),
    "data first": (["1,2,3:1"], ":1: data before @data"),
    "length claim": (
        ["@equalLength true", "@seriesLength 3", "@classLabel true 1", "@data", "1,2:1"],
        "@seriesLength 3 but series of 2 values",
    ),
    "no values": (["@classLabel true 1", "@data", "?,?:1"], "series 1 has no values"),
    "infinite": (["@classLabel true 1", "@data", "1,inf:1"], ":3: an infinite value"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_files_are_one_line_data_errors(data_dir, case):
    header, expected = BAD_FILES[case]
    path = write_ts(ucr(data_dir), "Toy", "train", [], [], header=header, comment=False)
    write_ts(ucr(data_dir), "Toy", "test", [([[1, 2]], "1")], ["1"])
    with pytest.raises(DataError) as e:
        load_dataset("ucr:Toy")
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and expected in msg, msg


def test_binary_file_is_a_data_error(data_dir):
    folder = ucr(data_dir)
    folder.mkdir(parents=True)
    (folder / "Toy_TRAIN.ts").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" * 10)
    write_ts(folder, "Toy", "test", [([[1, 2]], "1")], ["1"])
    with pytest.raises(DataError, match=r"Toy_TRAIN.ts: not UTF-8 text"):
        load_dataset("ucr:Toy")


def test_splits_declaring_different_classes(data_dir):
    write_ts(ucr(data_dir), "Toy", "train", [([[1, 2]], "1")], ["1", "2"])
    write_ts(ucr(data_dir), "Toy", "test", [([[1, 2]], "1")], ["1", "3"])
    with pytest.raises(DataError, match="declare different classes"):
        load_dataset("ucr:Toy", "test")


def test_archive_must_match_the_channels(data_dir):
    write_ts(data_dir / "uea" / "Toy", "Toy", "train", [([[1, 2]], "1")], ["1"])
    write_ts(data_dir / "uea" / "Toy", "Toy", "test", [([[1, 2]], "1")], ["1"])
    with pytest.raises(UnknownNameError, match=r"univariate series .* load it as ucr:Toy"):
        load_dataset("uea:Toy")


@pytest.mark.parametrize("name", ["ucr:", "ucr:../etc", "ucr:a/b", "ucx:GunPoint", "ucr:.x"])
def test_bad_names(name):
    with pytest.raises(UnknownNameError, match="ucr:NAME"):
        load_dataset(name)


def test_missing_aeon_says_how_to_get_it(data_dir, monkeypatch):
    monkeypatch.setattr(seq, "shipped_root", lambda: None)
    with pytest.raises(DataError) as e:
        load_dataset("ucr:GunPoint")
    msg = str(e.value)
    assert "\n" not in msg and "pip install convzoo[ts]" in msg
    assert str(data_dir / "ucr" / "GunPoint") in msg


@needs_aeon
def test_unknown_set_lists_the_shipped_ones():
    with pytest.raises(UnknownNameError) as e:
        load_dataset("ucr:NoSuchSet")
    assert "ucr:GunPoint" in str(e.value) and "\n" not in str(e.value)


def test_fetch_and_names(data_dir):
    write_ts(ucr(data_dir), "Toy", "train", [([[1, 2]], "1")], ["1"])
    with pytest.raises(DataError, match=r"needs both Toy_TRAIN\.ts and Toy_TEST\.ts"):
        fetch_dataset("ucr:Toy")
    write_ts(ucr(data_dir), "Toy", "test", [([[1, 2]], "1")], ["1"])
    assert fetch_dataset("ucr:Toy") == ucr(data_dir)
    assert {"ucr:NAME", "uea:NAME"} <= set(convzoo.data.dataset_names())
    with pytest.raises(convzoo.ConvzooError, match="only apply to folder"):
        load_dataset("ucr:Toy", image_size=28)


def test_subsets_of_series(data_dir):
    rng = np.random.default_rng(0)
    rows = [([rng.normal(size=8).tolist()], str(i % 3)) for i in range(30)]
    for split in ("train", "test"):
        write_ts(ucr(data_dir), "Toy", split, rows, ["0", "1", "2"])
    train = load_dataset("ucr:Toy")
    sub = apply_subset(train, "classes=0+2,shots=4,seed=1")
    assert isinstance(sub, SequenceDataset) and sub.classes == ["0", "2"]
    assert sub.class_counts() == [4, 4] and sub.series.shape == (8, 1, 8)
    picked = [i for i in range(30) if any(torch.equal(train.series[i], s) for s in sub.series)]
    assert sorted(train.labels[picked].tolist()) == [0] * 4 + [2] * 4
    test = apply_subset(load_dataset("ucr:Toy", "test"), "classes=1,shots=2")
    assert test.class_counts() == [10]  # shots never cut the test split


def test_channel_statistics_of_a_sequence_set():
    x = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[5.0, 7.0], [2.0, 2.0]]])
    ds = SequenceDataset(x, torch.tensor([0, 1]), ["a", "b"], name="ucr:X")
    assert not hasattr(ds, "images")  # the loaders take series as they are (SequenceLoader)
    mean, std = ds.stats()  # per channel over every value (what --normalize uses)
    assert mean == pytest.approx((4.0, 1.0)) and std == pytest.approx((5**0.5, 1.0))


def test_dataset_checks_its_tensors():
    with pytest.raises(ValueError, match="float32 N x C x L"):
        SequenceDataset(torch.zeros(2, 5), torch.zeros(2), ["a"])
    with pytest.raises(ValueError, match="labels"):
        SequenceDataset(torch.zeros(2, 1, 5), torch.zeros(3), ["a"])
    ds = SequenceDataset(torch.zeros(2, 1, 5), torch.tensor([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="outside"):
        ds.subset(torch.tensor([1]), classes=["a"])


# -- the files aeon ships ---------------------------------------------------------------------
@needs_aeon
def test_gunpoint_as_the_archive_describes_it():
    train, test = load_dataset("ucr:GunPoint", "train"), load_dataset("ucr:GunPoint", "test")
    assert (len(train), len(test)) == (50, 150)
    assert train.series.shape[1:] == test.series.shape[1:] == (1, 150)
    assert train.classes == test.classes == ["1", "2"]
    assert train.class_counts() == [24, 26] and test.class_counts() == [76, 74]
    assert torch.isfinite(train.series).all()


@needs_aeon
def test_shipped_multivariate_and_varying_length_sets():
    bm = load_dataset("uea:BasicMotions")
    assert bm.series.shape == (40, 6, 100) and bm.num_classes == 4
    assert bm.classes == sorted(["Standing", "Running", "Walking", "Badminton"])
    jv_train, jv_test = (
        load_dataset("uea:JapaneseVowels"),
        load_dataset("uea:JapaneseVowels", "test"),
    )
    assert jv_train.series.shape == (270, 12, 26)  # 7-26 steps in train: padded to 26
    assert jv_test.series.shape == (370, 12, 26)  # up to 29 in test: cut to the train length
    assert set(seq.shipped_sets()["ucr"]) >= {
        "GunPoint",
        "ArrowHead",
        "OSULeaf",
        "ItalyPowerDemand",
        "ACSF1",
        "PickupGestureWiimoteZ",
    }


@needs_aeon
def test_loading_never_imports_aeon():
    code = (
        "import sys, convzoo; convzoo.load_dataset('ucr:GunPoint', 'test'); "
        "print(sorted(m for m in ('aeon', 'numba', 'pandas', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@needs_aeon
def test_reader_agrees_with_aeons_loader():
    """Our reader gives aeon's values and labels for every shipped classification file."""
    from aeon.datasets import load_from_ts_file

    root = seq.shipped_root()
    sets = seq.shipped_sets()
    for name in sets["ucr"] + sets["uea"]:
        for split in ("TRAIN", "TEST"):
            path = root / name / f"{name}_{split}.ts"
            ours = read_ts(path)
            x, y = load_from_ts_file(str(path))
            # aeon lower-cases text labels (BasicMotions' "Standing"); we keep the archive's
            assert list(y) == [label.lower() for label in ours.labels], path
            theirs = list(x)  # N x C x L array, or a list of C x L_i arrays
            assert len(theirs) == len(ours.series)
            for a, b in zip(ours.series, theirs):
                np.testing.assert_array_equal(a, np.asarray(b, dtype=np.float64))


@pytest.mark.slow
def test_cli_info_and_augment_draw_series(data_dir, tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        ([rng.normal(size=30).tolist(), rng.normal(size=30).tolist()], "ab"[i % 2])
        for i in range(6)
    ]
    for split in ("train", "test"):
        write_ts(data_dir / "uea" / "Toy", "Toy", split, rows, ["a", "b"])

    def run(*args):
        cmd = [sys.executable, "-m", "convzoo", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)

    r = run("data", "info", "uea:Toy", "--out", "info")
    assert r.returncode == 0, r.stderr
    assert "series:  2 x 30 float32" in r.stdout and "splits:  train 6, test 6" in r.stdout
    assert (tmp_path / "info" / "data-uea_Toy.png").read_bytes()[:4] == b"\x89PNG"
    r = run("augment", "uea:Toy", "--augment", "shift:3,jitter:0.1", "--out", "aug")
    assert r.returncode == 0, r.stderr
    assert "(original 2 x 30, 7 versions)" in r.stdout
    assert (tmp_path / "aug" / "augment.png").read_bytes()[:4] == b"\x89PNG"
    r = run("augment", "uea:Toy", "--augment", "hflip")
    assert r.returncode == 2 and "known: shift:MAX" in r.stderr and "Traceback" not in r.stderr
