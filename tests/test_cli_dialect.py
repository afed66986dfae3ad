"""One dialect across commands: a flag name means one thing, the run is positional, --out is
a folder, choices are checked, old spellings warn in one line for a release."""

import pytest
from PIL import Image

from convzoo.cli import build_parser, main
from data_files import save_image


def run(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_old_spellings_warn_in_one_line_and_mean_the_new_flag(capsys):
    rc, new_out, err = run(capsys, "summary", "lenet", "--parts", "2")
    assert rc == 0 and err == ""
    rc, old_out, err = run(capsys, "summary", "lenet", "--split", "2")
    assert rc == 0 and old_out == new_out
    assert err == (
        "convzoo: warning: --split is now --parts (the old spelling goes in the next release; "
        "CHANGELOG.md)\n"
    )
    parse = build_parser().parse_args
    for argv in (["finetune", "runs/a"], ["finetune", "--from", "runs/a"]):
        assert parse(argv).source == "runs/a"
    assert parse(["finetune", "torchvision:alexnet", "--weights", "w.pth"]).weights == "w.pth"
    assert parse(["augment", "x.png", "--ops", "hflip"]).augment == "hflip"
    assert parse(["lr-find", "--plot", "p.png"]).plot == "p.png"
    capsys.readouterr()


def test_augment_writes_into_the_out_folder(capsys, tmp_path):
    img = save_image(tmp_path / "photo.png", size=(20, 20))
    rc, _, err = run(capsys, "augment", img, "--augment", "hflip", "--out", tmp_path / "pics")
    assert rc == 0, err
    with Image.open(tmp_path / "pics" / "augment.png") as png:
        assert png.size[0] > 0
    rc, _, err = run(capsys, "augment", img, "--out", tmp_path / "x")
    assert rc == 2 and "give --augment SPEC" in err and not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "info", "mnist", "--out", "{tmp}/grid.png"],
        ["augment", "{tmp}/photo.png", "--augment", "hflip", "--out", "{tmp}/a.png"],
        ["export", "{tmp}/run", "--out", "{tmp}/m.onnx"],
    ],
)
def test_an_out_that_names_a_file_is_refused_in_one_line(argv, capsys, tmp_path):
    save_image(tmp_path / "photo.png", size=(20, 20))
    rc, _, err = run(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert rc == 2 and err.count("\n") == 1 and "--out is the folder to write in" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["reproduce", "--profile", "gpu"], "invalid choice: 'gpu'"),
        (["explain", "run", "x.png", "--method", "lime"], "invalid choice: 'lime'"),
        (["evaluate", "run", "--weights", "w.pth"], "invalid choice: 'w.pth'"),
        (["bench", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_choices_and_flags_are_checked(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_help_shows_sections_and_only_the_flags_a_command_reads(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    sections = ["model:", "data:", "recipe and optimisation:", "data pipeline:", "execution:"]
    sections += ["evaluation (validation data chooses; the test set only reports):", "run:"]
    positions = [text.find(f"\n{s}\n") for s in sections]
    assert -1 not in positions and positions == sorted(positions)
    assert text.find("\n  --resume RUN_DIR") > positions[-1]
    with pytest.raises(SystemExit):
        main(["lr-find", "--help"])
    text = capsys.readouterr().out
    unused_flags = ("--tta", "--monitor", "--test-every", "--epochs", "--strategy", "--plot")
    for unused in (*unused_flags, "--tensorboard", "--eval-batch-size", "--ckpt-every"):
        assert f"{unused} " not in text, unused
    assert "--out DIR" in text and "--val-split" in text and "--optimizer" in text


def test_bench_outside_a_checkout_says_what_it_needs_in_one_line(capsys, monkeypatch, tmp_path):
    import convzoo.cli.bench as bench

    monkeypatch.setattr(bench, "__file__", str(tmp_path / "site-packages/convzoo/cli/bench.py"))
    rc, _, err = run(capsys, "bench", "--smoke")
    assert rc == 2 and err.count("\n") == 1 and "needs benchmarks/ of a source checkout" in err
