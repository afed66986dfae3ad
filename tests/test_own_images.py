"""Your own images through the command line: folders streamed or in memory, CSV labels files,
a run killed mid-epoch, an unreadable file met while streaming, DDP over a streamed folder."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from convzoo.io import load_weights
from data_files import save_image, truncated_jpeg
from helpers import TESTS, cli, one_line, run_torchrun, write_image_folder

TINY = ["--model", "speednet", "-o", "width=8", "--batch-size", "16", "--device", "cpu",
        "--precision", "fp32", "--image-size", "16"]  # fmt: skip


def weights(run) -> dict:
    return load_weights(run / "model.safetensors")[0]


def same_weights(a, b) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("own") / "imgs", n_train=64, n_test=16)


def train(capsys, folder, out, *extra, name=None):
    argv = ["train", "--dataset", name or f"folder:{folder}", "--epochs", "2", *TINY]
    return cli(capsys, *argv, "--out", out, *extra)


# -- in memory or streamed ----------------------------------------------------------------------
def test_streamed_and_in_memory_runs_are_the_same_and_say_which(folder, tmp_path, capsys):
    code, out, err = train(capsys, folder, tmp_path / "mem", "--in-memory", "yes")
    assert code == 0 and "in memory (" in out.splitlines()[0], err
    code, out, err = train(capsys, folder, tmp_path / "stream", "--in-memory", "no")
    assert code == 0 and "streamed from disk (" in out.splitlines()[0], err
    assert "warning: 6 validation images are too few to choose an epoch on" in out
    assert not (tmp_path / "stream" / "best.safetensors").exists()  # the last epoch is kept
    assert same_weights(tmp_path / "mem", tmp_path / "stream")
    code, out, err = cli(capsys, "evaluate", tmp_path / "stream", "--in-memory", "no")
    assert code == 0 and "accuracy" in out and "streamed from disk" in out, err
    metrics = json.loads((tmp_path / "stream" / "metrics.json").read_text())
    assert f"accuracy {metrics['test_acc']:.4f}" in out
    code, out, err = cli(capsys, "explain", tmp_path / "stream", "--index", "3")
    assert code == 0 and "test #3" in out, err
    code, out, err = cli(capsys, "export", tmp_path / "stream", "--with-preprocess")
    assert code == 0 and "uint8" in out, err
    code, out, err = cli(
        capsys, "lr-find", "--dataset", f"folder:{folder}", *TINY, "--in-memory", "no",
        "--steps", "6", "--out", tmp_path / "lr",
    )  # fmt: skip
    assert code == 0 and "suggested lr" in out, err
    code, out, err = cli(
        capsys, "finetune", tmp_path / "stream", "--dataset", f"folder:{folder}",
        "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--in-memory", "no",
        "--out", tmp_path / "ft",
    )  # fmt: skip
    assert code == 0 and "streamed from disk" in out, err


def test_the_cache_is_written_once_read_after_and_rewritten_when_the_folder_changes(
    tmp_path, capsys
):
    root = write_image_folder(tmp_path / "imgs", n_train=64, n_test=16)
    cache = ["--cache", tmp_path / "cache"]
    code, out, err = train(capsys, root, tmp_path / "a", *cache)
    assert code == 0 and "memory-mapped from" in out and "written now" in out, err
    code, out, err = train(capsys, root, tmp_path / "b", *cache)
    assert code == 0 and ", cached)" in out.splitlines()[0], err
    assert train(capsys, root, tmp_path / "c", "--in-memory", "yes")[0] == 0
    assert same_weights(tmp_path / "a", tmp_path / "b") and same_weights(
        tmp_path / "a", tmp_path / "c"
    )
    os.utime(next((root / "train" / "class1").iterdir()), (1, 1))  # a file touched
    code, out, err = train(capsys, root, tmp_path / "d", *cache)
    assert code == 0 and "written now" in out, err


def test_own_images_get_no_mirror_flips_unless_asked_and_the_header_says_so(folder, tmp_path):
    from convzoo.train.run import resolve_config

    cfg = resolve_config({"dataset": f"folder:{folder}", "recipe": "best"})
    assert "flip" not in cfg.augment and not cfg.tta
    assert resolve_config({"dataset": "fashion-mnist"}).augment == "hflip"
    asked = resolve_config({"dataset": f"folder:{folder}", "augment": "hflip", "tta": True})
    assert asked.augment == "hflip" and asked.tta


def test_a_streamed_run_killed_mid_epoch_resumes_bitwise(folder, tmp_path, capsys):
    args = ["--in-memory", "no", "--ckpt-every", "2", "--augment", "hflip,crop:2"]
    assert train(capsys, folder, tmp_path / "whole", *args)[0] == 0
    script = textwrap.dedent("""
        import os, signal, sys
        from convzoo.cli import main
        from convzoo.train import Callback, trainer
        class Kill(Callback):
            def on_step_end(self, t):
                if t.global_step == 5:  # epoch 2, step 2 of 3: after its checkpoint
                    os.kill(os.getpid(), signal.SIGKILL)
        fit = trainer.Trainer.fit
        def fit_and_die(self, epochs):
            self.callbacks.append(Kill())
            return fit(self, epochs)
        trainer.Trainer.fit = fit_and_die
        sys.exit(main(sys.argv[1:]))
    """)
    argv = ["train", "--dataset", f"folder:{folder}", "--epochs", "2", *TINY, *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_WAIT_POLICY": "PASSIVE"}
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())  # as the uninterrupted run's
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv, "--out", str(tmp_path / "cut")],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    code, out, err = cli(capsys, "train", "--resume", tmp_path / "cut")
    assert code == 0 and "at epoch 2, step 1" in out, err  # mid-epoch
    assert same_weights(tmp_path / "whole", tmp_path / "cut")


def test_a_corrupt_jpeg_met_while_streaming_is_one_line_or_skipped_and_listed(
    tmp_path, capsys, caplog
):
    root = write_image_folder(tmp_path / "imgs", n_train=64, n_test=16)
    bad = truncated_jpeg(root / "train" / "class2" / "0999.jpg")  # its header reads: found
    code, out, err = train(capsys, root, tmp_path / "a", "--in-memory", "no")  # mid-epoch
    assert code == 2 and str(bad) in one_line(err) and "--skip-bad-images" in err
    assert out.startswith("model speednet")  # met after the run started, when decoded
    code, out, err = train(capsys, root, tmp_path / "b", "--in-memory", "no", "--skip-bad-images")
    assert code == 0 and "test acc" in out, err
    listed = [r.message for r in caplog.records if "skipped 1 unreadable image(s)" in r.message]
    assert len(listed) == 1 and str(bad) in listed[0]  # once, though met in both epochs
    assert len((tmp_path / "b" / "history.csv").read_text().splitlines()) == 3  # 2 epochs


# -- csv: labels files -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A flat folder of images and a CSV naming their labels and splits (val rows too)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("csv")
    (root / "pics").mkdir()
    rows = ["path,label,split"]
    for i in range(60):
        label = ["cat", "dog", "owl"][i % 3]
        img = torch.randint(0, 40, (16, 16, 3), dtype=torch.uint8)
        img[(i % 3) * 5 : (i % 3) * 5 + 5] += 180  # each class its own band
        Image.fromarray(img.numpy()).save(root / "pics" / f"{i}.png")
        split = "test" if i % 5 == 0 else "val" if i % 5 == 1 else "train"
        rows.append(f"pics/{i}.png,{label},{split}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def test_a_csv_labelled_folder_trains_evaluates_and_predicts(labelled, tmp_path, capsys):
    name = f"csv:{labelled}"
    code, out, err = train(capsys, None, tmp_path / "run", name=name)
    assert code == 0, err
    assert "(36 train / 12 val / 12 test, 16x16)" in out  # the val rows are the validation split
    code, out, err = cli(capsys, "evaluate", tmp_path / "run")
    assert code == 0 and "(12 images)" in out and "owl" in out, err
    code, out, err = cli(capsys, "predict", tmp_path / "run", name, "--top-k", "1")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 60 and lines[0].startswith(str(labelled.parent / "pics"))


@pytest.mark.parametrize(
    "text, says",
    [
        ("file,class\na.png,cat\n", "must name the columns path and label"),
        ("path,label\na.png,cat,extra\n", "line 2: 3 columns where the header has 2"),
        ("path,label\na.png,\n", "line 2: the label is empty"),
        ("path,label,split\na.png,cat,dev\n", "line 2: split 'dev' is not one of train"),
        ("path,label\na.png,cat\nb.png,dog\na.png,dog\n", "line 4: a.png is listed twice"),
        ("path,label\na.png,cat\nnope.png,dog\n", "line 3: no such image"),
        ("path,label\na.png,cat\nb.png,cat\n", "1 distinct label(s)"),
    ],
)
def test_a_malformed_csv_is_one_line_naming_the_row(tmp_path, capsys, text, says):
    for name in ("a.png", "b.png"):
        save_image(tmp_path / name)
    (tmp_path / "l.csv").write_text(text)
    code, _, err = train(capsys, None, tmp_path / "run", name=f"csv:{tmp_path / 'l.csv'}")
    assert code == 2 and says in one_line(err) and str(tmp_path / "l.csv") in err
    assert not (tmp_path / "run").exists()


# -- memory: one copy -----------------------------------------------------------------------------
def test_an_in_memory_folder_is_one_copy_of_its_pixels(tmp_path):
    root = tmp_path / "imgs"
    for i in range(400):  # small files, decoded at 160 px: 400 x 3 x 160 x 160 = 30.7 MB
        save_image(root / f"c{i % 2}" / f"{i}.png", size=(20, 20))
    script = textwrap.dedent(f"""
        import resource, sys
        from convzoo.data.split import split_validation
        from convzoo.train.run import resolve_config
        from convzoo.train.setup import load_data
        import torchvision.transforms.v2.functional, torchvision.io  # imported before measuring
        cfg = resolve_config(dict(dataset="folder:{root}", image_size=160, in_memory="yes"))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        train, test = load_data(cfg)  # as a run loads it, with its validation split
        train, val = split_validation(train, cfg.val_split, seed=cfg.seed)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(sum(d.images.numel() for d in (train, val, test)), (peak - before) * 1024)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    pixels, grown = map(int, out.stdout.split())
    assert pixels == 400 * 3 * 160 * 160  # train (80%, 10% of it val) and test
    assert grown <= 1.3 * pixels, (grown / pixels, out.stderr)


# -- DDP ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ddp_over_a_streamed_folder_equals_in_memory_ddp_each_rank_decoding_its_share(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train=96, n_test=32)
    for mode in ("yes", "no"):
        report = tmp_path / mode
        report.mkdir()
        run_torchrun(
            TESTS / "ddp_job.py", str(report), "--folder", str(root), "--in-memory", mode,
            "--out", str(tmp_path / f"run-{mode}"), cwd=tmp_path,
        )  # fmt: skip
    assert same_weights(tmp_path / "run-yes", tmp_path / "run-no")
    decoded = [(tmp_path / "no" / f"decoded{r}.txt").read_text().split() for r in (0, 1)]
    files = 96 + 32
    for rank_files in decoded:  # the statistics, 2 epochs of train + test, the final test:
        assert len(rank_files) <= (96 + 2 * files + 32) // 2 + 8  # half each (padding aside)
    assert len(decoded[0]) + len(decoded[1]) >= 96 + 2 * files + 32
