"""``convzoo bench``: the side-by-side speed table of ``benchmarks/bench_train.py``.

The benchmarks live in the source checkout (they need the book's reference path, which is not
part of the package), so this command runs from a clone; installed elsewhere it says so.
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
        "convzoo bench runs from a source checkout (it needs benchmarks/bench_train.py); "
        "clone the repository and run `make bench`"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        add_help=False,
        help="training speed against the book's code, side by side (from a checkout); "
        "takes the arguments of benchmarks/bench_train.py (--models, --smoke, --json, ...); "
        "--folder ARGS: your own images against torchvision's ImageFolder "
        "(benchmarks/bench_folder.py)",
    )
    p.add_argument(
        "bench_args",
        nargs=argparse.REMAINDER,
        help="arguments of benchmarks/bench_train.py (--models, --smoke, --json, ...)",
    )
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    # `convzoo bench --folder ARGS`: benchmarks/bench_folder.py (your own images at scale)
    folder = args.extra[:1] == ["--folder"]
    path = benchmarks_dir() / ("bench_folder.py" if folder else "bench_train.py")
    spec = importlib.util.spec_from_file_location("convzoo_bench_train", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    assert spec.loader is not None
    spec.loader.exec_module(module)
    module.main(args.extra[1:] if folder else args.extra)
    return 0
