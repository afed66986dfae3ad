"""The book's training path (benchmarks/reference_d2l.py) on a tiny synthetic Fashion-MNIST."""

import gzip
import importlib.util
import io
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import toy_pair

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_d2l.py"
_spec = importlib.util.spec_from_file_location("reference_d2l", _PATH)
ref = importlib.util.module_from_spec(_spec)
sys.modules["reference_d2l"] = ref
_spec.loader.exec_module(ref)
sys.path.insert(0, str(_PATH.parent))
import book_nets as ref_nets  # noqa: E402

N_TRAIN, N_TEST = 512, 256
REAL = Path("/usr/share/datasets/fashion-mnist")


def _write_idx(path: Path, array: torch.Tensor) -> None:
    """An IDX file (big-endian header, uint8 payload), gzipped like the Debian package's."""
    header = bytes([0, 0, 0x08, array.dim()])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.to(torch.uint8).numpy().tobytes())


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory) -> Path:
    """512 training and 256 test images of 28x28 in the Debian package's layout."""
    d = tmp_path_factory.mktemp("fashion-mnist")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        labels = torch.randint(0, 10, (n,), generator=g)
        # a learnable signal: the label sets the brightness of the image
        images = labels.view(n, 1, 1) * 25 + torch.randint(0, 20, (n, 28, 28), generator=g)
        _write_idx(d / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(d / f"{split}-labels-idx1-ubyte.gz", labels)
    return d


def _check_figures(fig: dict, batches: int, batch_size: int) -> None:
    for key in (
        "examples_per_sec_wall",
        "examples_per_sec_book",
        "loss",
        "seconds",
        "book_seconds",
        "peak_rss_mb",
        "peak_main_rss_mb",
    ):
        assert math.isfinite(fig[key]) and fig[key] > 0, (key, fig[key])
    assert 0 <= fig["train_acc"] <= 1
    assert fig["batches"] == batches
    assert fig["examples"] == batches * batch_size
    # the timed batch bodies are a subset of the wall-clock interval
    assert fig["examples_per_sec_book"] >= fig["examples_per_sec_wall"]
    assert fig["book_seconds"] <= fig["seconds"]
    if fig["peak_pss_mb"] is not None:
        assert 0 < fig["peak_pss_mb"] <= fig["peak_rss_mb"] * 1.01


def test_prepare_writes_torchvision_layout_atomically(source_dir, tmp_path):
    root = ref.prepare_fashion_mnist(tmp_path / "cache", source_dir)
    raw = root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(ref.IDX_FILES)  # no temp files left
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 16 + N_TRAIN * 28 * 28
    mtime = (raw / "t10k-labels-idx1-ubyte").stat().st_mtime_ns
    ref.prepare_fashion_mnist(root, tmp_path / "nowhere")  # complete files: source not needed
    assert (raw / "t10k-labels-idx1-ubyte").stat().st_mtime_ns == mtime


def test_prepare_names_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        ref.prepare_fashion_mnist(tmp_path / "cache", tmp_path / "nowhere")


def test_book_loaders(source_dir, tmp_path):
    train_iter, test_iter = ref.load_data_fashion_mnist(
        64, resize=32, root=tmp_path, num_workers=0, source_dir=source_dir
    )
    X, y = next(iter(train_iter))
    assert X.shape == (64, 1, 32, 32) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert X.min() >= 0.0 and X.max() <= 1.0  # ToTensor only, no normalization
    assert len(train_iter) == N_TRAIN // 64 and len(test_iter) == N_TEST // 64
    assert not train_iter.pin_memory and not train_iter.drop_last


def test_xavier_init_is_the_books(source_dir, tmp_path):
    """lr=0 leaves the weights as train_ch6 initialised them: Xavier-uniform, biases default."""
    net = ref_nets.build("lenet")
    biases = {n: p.clone() for n, p in net.named_parameters() if n.endswith("bias")}
    ref.run_reference(
        net, batch_size=64, lr=0.0, max_batches=1, warmup=0, num_workers=0,
        data_dir=tmp_path, source_dir=source_dir, verbose=False,
    )  # fmt: skip
    layers = [m for m in net.modules() if type(m) in (nn.Conv2d, nn.Linear)]
    assert len(layers) == 5
    for m in layers:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = m.weight.detach()
        assert w.abs().max() <= bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.2)
    # fc1 (400 -> 120): Xavier's bound 0.107 is twice PyTorch's default 1/sqrt(400) = 0.05
    assert net[7].weight.abs().max() > 1 / math.sqrt(400)
    for n, p in net.named_parameters():
        if n.endswith("bias"):
            assert torch.equal(p, biases[n]), n


def test_smoke_limited_run(source_dir, tmp_path):
    fig = ref.run_reference(
        "lenet", batch_size=64, max_batches=3, warmup=1, num_workers=0,
        data_dir=tmp_path, source_dir=source_dir, verbose=False, seed=0,
    )  # fmt: skip
    _check_figures(fig, batches=3, batch_size=64)
    assert fig["test_acc"] is None  # limited epochs are not evaluated by default
    assert fig["warmup_batches"] == 1
    assert fig["config"]["lr"] == 0.9 and fig["config"]["resize"] is None  # the book's LeNet


def test_smoke_full_epochs_with_workers(source_dir, tmp_path, capsys):
    """Two whole epochs with two worker processes, evaluated, printed the book's way."""
    fig = ref.run_reference(
        "lenet_bn", batch_size=64, epochs=2, warmup=2, num_workers=2,
        data_dir=tmp_path, source_dir=source_dir,
    )  # fmt: skip
    # epoch 1: 8 batches, the first 2 untimed; epoch 2: all 8 timed
    _check_figures(fig, batches=6 + 8, batch_size=64)
    assert 0 <= fig["test_acc"] <= 1
    out = capsys.readouterr().out
    assert "loss " in out and ", train acc " in out and ", test acc " in out
    assert "examples/sec on cpu" in out and "wall clock" in out


def test_memory_falls_back_to_getrusage(monkeypatch):
    monkeypatch.setattr(ref, "psutil", None)
    with ref.PeakMemory(workers=4) as memory:
        torch.ones(1000)
    result = memory.result()
    assert result["peak_rss_mb"] >= result["peak_main_rss_mb"] > 0
    assert result["peak_pss_mb"] is None and "getrusage" in result["memory_method"]


def test_cli_writes_json(source_dir, tmp_path):
    out = tmp_path / "ref.json"
    fig = ref.main(
        ["--model", "lenet", "--batch-size", "32", "--max-batches", "2", "--warmup", "0",
         "--num-workers", "0", "--data-dir", str(tmp_path), "--source-dir", str(source_dir),
         "--json", str(out)]
    )  # fmt: skip
    assert json.loads(out.read_text())["batches"] == fig["batches"] == 2


@pytest.mark.integration
@pytest.mark.skipif(not REAL.is_dir(), reason="needs the Debian package dataset-fashion-mnist")
def test_real_fashion_mnist_few_batches(tmp_path):
    fig = ref.run_reference(
        "lenet", max_batches=3, warmup=1, num_workers=2, data_dir=tmp_path, verbose=False
    )
    _check_figures(fig, batches=3, batch_size=256)


def _same_steps(model: str, seed: int, epochs: int, data) -> dict:
    """convzoo's ``train`` and the book's ``train_ch6`` on the batches convzoo's loader made,
    both seeded as convzoo's run seeds: per weight tensor the largest difference, whether it
    moved, the batch sizes trained and each run's test accuracy, evaluated the book's way."""
    from convzoo.train import train
    from convzoo.train.run import open_strategy, resolve_config
    from convzoo.train.setup import build_setup

    cfg = resolve_config(
        dict(model=model, seed=seed, epochs=epochs, device="cpu", test_every=0), "d2l"
    )
    ours = train(cfg, data=data, save=False, stdout=io.StringIO()).model
    with open_strategy(cfg) as strategy:  # the same loader again, and the initial weights
        setup = build_setup(cfg, strategy, None, data, None)
    batches = []
    for epoch in range(cfg.epochs):
        setup.train_loader.set_epoch(epoch)
        batches += [(b.x, b.y) for b in setup.train_loader]
    torch.manual_seed(cfg.seed)  # train_ch6 draws the Xavier weights after this seed
    book = ref_nets.build(model, cfg.image_size)
    ref.train_ch6(book, batches, None, 1, cfg.lr, "cpu", evaluate=False, verbose=False)
    # the same parameters in the same order (the book's batch norm keeps no buffers)
    theirs = {n: p.detach() for (n, _), p in zip(ours.named_parameters(), book.parameters())}
    test = [(b.x, b.y) for b in setup.test_loader]
    return {
        "max_abs_diff": {
            k: (ours.state_dict()[k] - v).abs().max().item() for k, v in theirs.items()
        },
        "moved": {k: not torch.equal(v, setup.model.state_dict()[k]) for k, v in theirs.items()},
        "batch_sizes": [len(y) for _, y in batches],
        "test_acc": {
            n: ref.evaluate_accuracy_gpu(m, test) for n, m in (("convzoo", ours), ("book", book))
        },
    }


def test_convzoo_d2l_run_is_the_books_train_ch6_step_for_step():
    """convzoo's ``--recipe d2l`` LeNet and the book's ``train_ch6`` (this file's copy), fed
    the same batches in the same order from the same seed, end with bitwise-equal weights:
    the same Xavier draws, the same SGD steps (the last, partial batch of each epoch too).
    What is left to differ between the two on real data is which permutation and which
    initial weights a seed draws, both from the same distributions (docs/reproduce.md)."""
    data = toy_pair(300, 64, size=28, num_classes=10)
    out = _same_steps("lenet", seed=3, epochs=2, data=data)
    assert out["batch_sizes"] == [256, 44, 256, 44]  # two epochs, each with a partial batch
    assert all(out["moved"].values())  # it trained
    assert out["max_abs_diff"] == {k: 0.0 for k in out["max_abs_diff"]}, out["max_abs_diff"]
    assert out["test_acc"]["convzoo"] == out["test_acc"]["book"]
