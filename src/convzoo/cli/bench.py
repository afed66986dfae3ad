"""``convzoo bench``: the side-by-side speed table of ``benchmarks/bench_train.py``.

The benchmarks compare against the book's own code (``benchmarks/reference_d2l.py``), which
is not part of the package: this command runs from a source checkout and says so elsewhere.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from ..errors import ConvzooError


def benchmarks_dir() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "benchmarks" / "bench_train.py"
        if candidate.is_file():
            return candidate.parent
    raise ConvzooError(
        "convzoo bench needs benchmarks/ of a source checkout (it times the book's own code "
        "beside ours): clone the repository, `pip install -e .` there and run it again"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="training speed against the book's code, side by side (from a source checkout)",
        description="Train the same network with the book's code and with convzoo, each in a "
        "fresh process, and print examples/s side by side (docs/benchmarks.md).",
    )
    p.add_argument("--models", default=None, help="cases, e.g. lenet,resnet18 (default: all)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--smoke", action="store_true", help="2 timed batches per side (CI)")
    p.add_argument("--batches", type=int, default=None, help="timed batches (default per case)")
    p.add_argument("--json", default=None, metavar="FILE", help="write all figures here")
    p.add_argument(
        "--whole",
        action="store_true",
        help="also whole processes: --recipe d2l against the d2l package (LeNet, LeNet-BN)",
    )
    p.add_argument(
        "--compile", default="", metavar="MODELS", help="also time these under torch.compile"
    )
    p.add_argument(
        "--folder",
        nargs=argparse.REMAINDER,
        default=None,
        metavar="ARGS",
        help="instead: your own images against torchvision's ImageFolder; the rest of the "
        "line goes to benchmarks/bench_folder.py (--counts, --workers, ...)",
    )
    p.set_defaults(func=cmd_bench)


def _train_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--device", args.device, "--compile", args.compile]
    argv += ["--models", args.models] if args.models else []
    argv += ["--batches", str(args.batches)] if args.batches is not None else []
    argv += ["--json", args.json] if args.json else []
    return argv + ["--smoke"] * args.smoke + ["--whole"] * args.whole


def cmd_bench(args: argparse.Namespace) -> int:
    folder = args.folder is not None
    path = benchmarks_dir() / ("bench_folder.py" if folder else "bench_train.py")
    spec = importlib.util.spec_from_file_location("convzoo_bench_train", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    assert spec.loader is not None
    spec.loader.exec_module(module)
    module.main(args.folder if folder else _train_argv(args))
    return 0
