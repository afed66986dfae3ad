"""The book's training path, re-implemented: the reference convzoo's speed is measured against.

``d2l.torch``'s ``load_data_fashion_mnist`` and ``train_ch6`` on ``book_nets.py``'s networks,
plus two benchmark limits (``max_batches`` per epoch, ``warmup`` untimed batches); it reports the
book's rate (batch bodies only), the wall-clock rate, loss, accuracies and peak memory.

    PYTHONPATH=src python benchmarks/reference_d2l.py --model lenet --max-batches 100
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import platform
import shutil
import struct
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torch.utils import data
from torchvision import transforms

try:  # optional: without it, peak memory falls back to resource.getrusage
    import psutil
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    psutil = None

# ---- the book's settings (REFERENCE.md; Fashion-MNIST, one V100) ----------------------------
#: d2l.get_dataloader_workers(): worker processes per DataLoader
NUM_WORKERS = 4
#: per model: SGD learning rate, examples per batch, input side in pixels (None: native 28 px),
#: the book's epoch count (the networks: ``book_nets.BOOK_NETS``; VGG-11 a quarter as wide)
BOOK_SETTINGS: dict[str, dict[str, Any]] = {
    "lenet": dict(lr=0.9, batch_size=256, resize=None, epochs=10),
    "lenet_bn": dict(lr=1.0, batch_size=256, resize=None, epochs=10),
    "alexnet": dict(lr=0.01, batch_size=128, resize=224, epochs=10),
    "vgg11": dict(lr=0.05, batch_size=128, resize=224, epochs=10),
    "nin": dict(lr=0.1, batch_size=128, resize=224, epochs=10),
    "googlenet": dict(lr=0.1, batch_size=128, resize=96, epochs=10),
    "resnet18": dict(lr=0.05, batch_size=256, resize=96, epochs=10),
    "densenet": dict(lr=0.1, batch_size=256, resize=96, epochs=10),
}
#: benchmark defaults (not the book's): timed batches skipped at the start of a run
WARMUP_BATCHES = 2
#: seconds between two samples of the process tree's RSS (about 1 ms of one core each)
RSS_SAMPLE_INTERVAL_S = 0.05
#: seconds between two samples of its PSS (reading smaps_rollup costs ~8 ms per process here)
PSS_SAMPLE_INTERVAL_S = 1.0


def _default_source_dir() -> Path:
    """The packaged IDX files: the first folder of ``$CONVZOO_SYSTEM_DATA`` (as convzoo reads it)
    that holds ``fashion-mnist/``, else the Debian package's."""
    for root in os.environ.get("CONVZOO_SYSTEM_DATA", "").split(os.pathsep):
        if root and (Path(root) / "fashion-mnist").is_dir():
            return Path(root) / "fashion-mnist"
    return Path("/usr/share/datasets/fashion-mnist")


DEFAULT_SOURCE_DIR = _default_source_dir()
DEFAULT_DATA_DIR = Path("~/.cache/convzoo-reference")
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
#: marks "use the book's value" where None already means something (resize=None: no resize)
BOOK = "book"
MB = 2**20


# ---- data: load_data_fashion_mnist ----------------------------------------------------------
def _idx_complete(path: Path) -> bool:
    """Whether an IDX file holds as many bytes as its header declares."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            ndim = head[3] if len(head) == 4 and head[:3] == b"\x00\x00\x08" else 0
            dims = f.read(4 * ndim)
    except OSError:
        return False
    if not ndim or len(dims) != 4 * ndim:
        return False
    n = 1
    for d in struct.unpack(f">{ndim}I", dims):
        n *= d
    return path.stat().st_size == 4 + 4 * ndim + n


def prepare_fashion_mnist(
    data_dir: str | os.PathLike | None = None,
    source_dir: str | os.PathLike = DEFAULT_SOURCE_DIR,
) -> Path:
    """The four IDX files of ``source_dir`` (``.gz`` or not) decompressed into torchvision's
    layout under ``data_dir`` (returned); each is checked and renamed into place, so concurrent
    or interrupted runs never leave a truncated file."""
    root = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser()
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    source = Path(source_dir).expanduser()
    for name in IDX_FILES:
        dst = raw / name
        if _idx_complete(dst):
            continue
        src = next((p for p in (source / f"{name}.gz", source / name) if p.is_file()), None)
        if src is None:
            raise FileNotFoundError(
                f"Fashion-MNIST file {name}(.gz) not found in {source} (install the Debian "
                f"package dataset-fashion-mnist or pass --source-dir), and {dst} is not there"
            )
        tmp = raw / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            opener = gzip.open if src.suffix == ".gz" else open
            with opener(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, length=MB)
            if not _idx_complete(tmp):
                raise ValueError(f"{src} is not a complete IDX file")
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
    return root


def load_data_fashion_mnist(
    batch_size: int,
    resize: int | None = None,
    root: str | os.PathLike | None = None,
    *,
    num_workers: int = NUM_WORKERS,
    source_dir: str | os.PathLike = DEFAULT_SOURCE_DIR,
) -> tuple[data.DataLoader, data.DataLoader]:
    """The book's loaders: PIL images, ``[Resize] + ToTensor``, ``num_workers`` processes."""
    root = prepare_fashion_mnist(root, source_dir)
    trans: list[Any] = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    trans = transforms.Compose(trans)
    mnist_train = torchvision.datasets.FashionMNIST(root=root, train=True, transform=trans)
    mnist_test = torchvision.datasets.FashionMNIST(root=root, train=False, transform=trans)
    return (
        data.DataLoader(mnist_train, batch_size, shuffle=True, num_workers=num_workers),
        data.DataLoader(mnist_test, batch_size, shuffle=False, num_workers=num_workers),
    )


# ---- the book's bookkeeping -----------------------------------------------------------------
class Accumulator:
    """Sums over ``n`` variables; ``float()`` of a tensor waits for the device, as in the book."""

    def __init__(self, n: int) -> None:
        self.data = [0.0] * n

    def add(self, *args: Any) -> None:
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def __getitem__(self, idx: int) -> float:
        return self.data[idx]


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Number of correct predictions."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def evaluate_accuracy_gpu(
    net: nn.Module, data_iter: Iterable, device: torch.device | str | None = None
) -> float:
    """The book's test accuracy: eval mode, without autograd (which the book's scratch batch
    norm reads as "use the moving statistics")."""
    net.eval()
    if not device:
        device = next(iter(net.parameters())).device
    metric = Accumulator(2)  # correct predictions, predictions
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            metric.add(accuracy(net(X), y), y.numel())
    return metric[0] / metric[1]


def init_weights(m: nn.Module) -> None:
    """The book's initialisation: Xavier-uniform weights of exactly ``Linear`` and ``Conv2d``."""
    if type(m) is nn.Linear or type(m) is nn.Conv2d:
        nn.init.xavier_uniform_(m.weight)


# ---- peak memory of the process tree --------------------------------------------------------
class PeakMemory:
    """Peak memory of a process tree (this one, or ``pid``'s) while active, sampled by a thread.

    Forked workers share pages that RSS counts once per process: ``peak_rss_mb`` is that upper
    bound, ``peak_pss_mb`` the real footprint. Without psutil: getrusage, own + ``workers`` x the
    largest child's."""

    def __init__(
        self,
        workers: int = 0,
        interval_s: float = RSS_SAMPLE_INTERVAL_S,
        pss_interval_s: float = PSS_SAMPLE_INTERVAL_S,
        pid: int | None = None,
    ) -> None:
        self.workers = workers
        self.interval_s = interval_s
        self.pss_interval_s = pss_interval_s
        self.peak_rss = 0
        self.peak_pss: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = psutil.Process(pid) if psutil is not None else None
        self._has_pss = False
        if self._proc is not None:
            with contextlib.suppress(psutil.Error):
                self._has_pss = hasattr(self._proc.memory_full_info(), "pss")

    def _sample(self, with_pss: bool) -> None:
        assert self._proc is not None
        rss = pss = 0
        try:
            procs = [self._proc, *self._proc.children(recursive=True)]
        except psutil.Error:
            return
        for p in procs:
            try:
                if with_pss:
                    full = p.memory_full_info()
                    rss, pss = rss + full.rss, pss + full.pss
                else:
                    rss += p.memory_info().rss
            except psutil.Error:  # a worker exiting between listing and reading
                continue
        self.peak_rss = max(self.peak_rss, rss)
        if with_pss:
            self.peak_pss = max(self.peak_pss or 0, pss)

    def _loop(self) -> None:
        next_pss = time.monotonic() + self.pss_interval_s
        while not self._stop.wait(self.interval_s):
            with_pss = self._has_pss and time.monotonic() >= next_pss
            self._sample(with_pss)
            if with_pss:
                next_pss = time.monotonic() + self.pss_interval_s

    def __enter__(self) -> PeakMemory:
        if self._proc is not None:
            self._sample(self._has_pss)
            self._thread = threading.Thread(target=self._loop, name="PeakMemory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample(self._has_pss)

    def result(self) -> dict[str, Any]:
        main = _maxrss_bytes("self") / MB
        if self._proc is None:
            rss, pss = main + self.workers * _maxrss_bytes("children") / MB, None
            method = "getrusage: own ru_maxrss + workers x largest child's ru_maxrss"
        else:
            rss, pss = self.peak_rss / MB, None if self.peak_pss is None else self.peak_pss / MB
            method = f"psutil, process tree: RSS every {self.interval_s:g} s, "
            method += f"PSS every {self.pss_interval_s:g} s"
        return dict(peak_rss_mb=rss, peak_pss_mb=pss, peak_main_rss_mb=main, memory_method=method)


def _maxrss_bytes(who: str) -> int:
    import resource  # Unix only; imported here so that the module loads everywhere

    flag = resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN
    kb_or_bytes = resource.getrusage(flag).ru_maxrss
    return kb_or_bytes if sys.platform == "darwin" else kb_or_bytes * 1024


# ---- training: train_ch6 --------------------------------------------------------------------
def train_ch6(
    net: nn.Module,
    train_iter: data.DataLoader,
    test_iter: data.DataLoader | None,
    num_epochs: int,
    lr: float,
    device: torch.device | str,
    max_batches: int | None = None,
    *,
    warmup: int = 0,
    evaluate: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """The book's ``train_ch6``; at most ``max_batches`` timed batches an epoch, after
    ``warmup`` untimed ones; returns the figures it prints."""
    device = torch.device(device)
    net.apply(init_weights)
    if verbose:
        print("training on", device)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    book_seconds = 0.0  # the book's Timer: batch bodies only
    warmup_left = warmup
    timed_examples = timed_batches = 0
    wall = 0.0
    train_l = train_acc = float("nan")
    test_acc: float | None = None
    for _ in range(num_epochs):
        metric = Accumulator(3)  # sum of training loss, sum of correct predictions, examples
        net.train()
        epoch_timed = 0
        wall_start = time.perf_counter() if warmup_left == 0 else None
        wall_end = wall_start
        for X, y in train_iter:
            timed = warmup_left == 0
            tik = time.perf_counter()
            # -- the book's batch body --
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)
            l.backward()
            optimizer.step()
            with torch.no_grad():
                metric.add(l * X.shape[0], accuracy(y_hat, y), X.shape[0])
            # -- end of the batch body --
            if timed:
                wall_end = time.perf_counter()
                book_seconds += wall_end - tik
                timed_examples += X.shape[0]
                epoch_timed += 1
            else:
                warmup_left -= 1
                if warmup_left == 0:
                    wall_start = time.perf_counter()  # the next batch request is timed
            train_l = metric[0] / metric[2]
            train_acc = metric[1] / metric[2]
            if max_batches is not None and epoch_timed >= max_batches:
                break
        if wall_start is not None and wall_end is not None and epoch_timed:
            wall += wall_end - wall_start
        timed_batches += epoch_timed
        if evaluate and test_iter is not None:
            test_acc = evaluate_accuracy_gpu(net, test_iter)
    rate_book = timed_examples / book_seconds if book_seconds > 0 else float("nan")
    rate_wall = timed_examples / wall if wall > 0 else float("nan")
    if verbose:
        test = f"{test_acc:.3f}" if test_acc is not None else "n/a (not evaluated)"
        print(f"loss {train_l:.3f}, train acc {train_acc:.3f}, test acc {test}")
        print(f"{rate_book:.1f} examples/sec on {device}")
        print(
            f"{rate_wall:.1f} examples/sec on {device}, wall clock with data loading "
            f"({timed_batches} batches, {timed_examples} examples in {wall:.2f} s; "
            f"{warmup - warmup_left} warm-up batches before them not timed)"
        )
    return dict(
        examples_per_sec_wall=rate_wall,
        examples_per_sec_book=rate_book,
        loss=train_l,
        train_acc=train_acc,
        test_acc=test_acc,
        batches=timed_batches,
        examples=timed_examples,
        warmup_batches=warmup - warmup_left,
        seconds=wall,
        book_seconds=book_seconds,
    )


# ---- the API: one call per measurement ------------------------------------------------------
def run_reference(
    model: str | nn.Module,
    *,
    batch_size: int | None = None,
    lr: float | None = None,
    resize: int | str | None = BOOK,
    epochs: int = 1,
    max_batches: int | None = None,
    warmup: int = WARMUP_BATCHES,
    device: str | torch.device = "cpu",
    num_workers: int = NUM_WORKERS,
    data_dir: str | os.PathLike | None = None,
    source_dir: str | os.PathLike = DEFAULT_SOURCE_DIR,
    evaluate: bool | None = None,
    seed: int | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train ``model`` (a ``book_nets`` name or a module) the book's way; ``batch_size``, ``lr``
    and ``resize`` default to the book's for its name. ``evaluate``: only whole epochs, unless set.
    """
    if seed is not None:
        torch.manual_seed(seed)  # Xavier init and shuffling
    name = model if isinstance(model, str) else getattr(model, "model_name", None)
    book = BOOK_SETTINGS.get(name or "", {})
    batch_size = batch_size if batch_size is not None else book.get("batch_size")
    lr = lr if lr is not None else book.get("lr")
    resize = book.get("resize") if resize == BOOK else resize
    if isinstance(model, str):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from book_nets import build

        net = build(model, resize or 28)
    else:
        net = model
    if batch_size is None or lr is None:
        raise ValueError(f"no book settings for {name!r}: pass batch_size and lr")
    if evaluate is None:
        evaluate = max_batches is None

    train_iter, test_iter = load_data_fashion_mnist(
        batch_size, resize, data_dir, num_workers=num_workers, source_dir=source_dir
    )
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with PeakMemory(workers=num_workers) as memory:
        figures = train_ch6(
            net, train_iter, test_iter, epochs, lr, device, max_batches,
            warmup=warmup, evaluate=evaluate, verbose=verbose,
        )  # fmt: skip
    figures.update(memory.result())
    if device.type == "cuda":
        figures["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / MB
    config = dict(model=name or type(net).__name__, batch_size=batch_size, lr=lr, resize=resize)
    config |= dict(epochs=epochs, max_batches=max_batches, warmup=warmup, device=str(device))
    config |= dict(num_workers=num_workers, evaluate=evaluate, seed=seed)
    config |= dict(torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count())
    config |= dict(torch=torch.__version__, torchvision=torchvision.__version__)
    figures["config"] = config | dict(python=platform.python_version())
    return figures


# ---- CLI ------------------------------------------------------------------------------------
def _resize_arg(text: str) -> int | str | None:
    if text == BOOK:
        return BOOK
    if text.lower() in ("none", "0"):
        return None
    return int(text)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lenet", help=f"one of {', '.join(BOOK_SETTINGS)}")
    p.add_argument("--epochs", type=int, default=1, help="the book trains 10")
    p.add_argument("--max-batches", type=int, default=None, help="timed batches per epoch")
    p.add_argument("--warmup", type=int, default=WARMUP_BATCHES, help="untimed first batches")
    p.add_argument("--batch-size", type=int, default=None, help="default: the book's")
    p.add_argument("--lr", type=float, default=None, help="default: the book's")
    p.add_argument("--resize", type=_resize_arg, default=BOOK, help="pixels, none, or book")
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-workers", type=int, default=NUM_WORKERS)
    p.add_argument("--data-dir", default=None, help=f"default {DEFAULT_DATA_DIR}")
    p.add_argument("--source-dir", default=str(DEFAULT_SOURCE_DIR))
    p.add_argument(
        "--eval",
        dest="evaluate",
        action=argparse.BooleanOptionalAction,
        help="test accuracy after each epoch (default: only without --max-batches)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", default=None, help="write the figures and config here")
    kwargs = vars(p.parse_args(argv))
    model, json_path = kwargs.pop("model"), kwargs.pop("json")
    figures = run_reference(model, **kwargs)
    pss = figures["peak_pss_mb"]
    print(
        f"peak memory: {figures['peak_rss_mb']:.0f} MB RSS summed over the process and its "
        f"{kwargs['num_workers']} workers"
        + (f", {pss:.0f} MB PSS" if pss is not None else "")
        + f"; main process {figures['peak_main_rss_mb']:.0f} MB ({figures['memory_method']})"
    )
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
