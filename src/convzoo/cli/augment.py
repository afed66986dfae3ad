"""``convzoo augment``: the chapter's ``apply`` picture — an image (or a time series of a
``ucr:``/``uea:`` set) and augmented versions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalog import DATASETS, FILES_PREFIXES, SERIES_ARCHIVES, SPLITS
from ..errors import ConvzooError, UnknownNameError
from ._common import add_out_dir, deprecated_alias, out_dir
from .data import add_data_dir, add_files_flags, load

if TYPE_CHECKING:
    import torch

#: the name of the picture in --out
PNG = "augment.png"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("augment", help="show an image and augmented versions of it in a grid (PNG)")
    p.add_argument("source", metavar="IMAGE|DATASET", help="an image file, or a data set name")
    p.add_argument(
        "--augment",
        default=None,
        metavar="SPEC",
        help="augmentation spec as train --augment (required), e.g. 'hflip,crop:4' or "
        "'rrc:200:0.1-1:0.5-2,jitter:0.5'; for ucr:/uea: time series e.g. "
        "'shift:10,scale:0.8-1.2,jitter:0.05'",
    )
    deprecated_alias(p, "--ops", "--augment", metavar="SPEC")
    p.add_argument("--rows", type=int, default=2)
    p.add_argument("--cols", type=int, default=4)
    add_out_dir(p, f"the picture, {PNG} (default: the current folder)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random parameters")
    p.add_argument("--index", type=int, default=0, help="which image of a data set")
    p.add_argument("--split", default="train", choices=SPLITS)
    add_data_dir(p)
    add_files_flags(p, in_memory=False)
    p.set_defaults(func=cmd_augment)


def _image(args: argparse.Namespace) -> tuple[torch.Tensor, str]:
    """uint8 C x H x W and its label, from a file or a data set."""
    from ..data.image_file import GRAY_MODES, decode, probe
    from ..data.sources import SOURCES

    src = args.source
    if Path(src).is_file():
        mode, _ = probe(src)
        return decode(src, 1 if mode in GRAY_MODES else 3), "original"
    if src not in SOURCES and not src.startswith(FILES_PREFIXES):
        raise UnknownNameError(
            f"{src!r} is neither an image file nor a data set; data sets: " + ", ".join(DATASETS)
        )
    return _pick(args)


def _pick(args: argparse.Namespace) -> tuple[torch.Tensor, str]:
    """Item ``--index`` of the data set named by ``args.source`` and its label."""
    data = load(args.source, args.split, args, in_memory="no")  # one image is decoded
    if not 0 <= args.index < len(data):
        raise ConvzooError(f"--index {args.index} is outside 0..{len(data) - 1} of {args.source}")
    label = data.classes[int(data.labels[args.index])]
    inputs = data.images if hasattr(data, "images") else data.series  # files decode on demand
    return inputs[args.index], f"original ({label})"


def _cells(args: argparse.Namespace) -> int:
    cells = args.rows * args.cols
    if cells < 2:
        raise ConvzooError("--rows x --cols must leave room for the original and one version")
    return cells


def _augment_series(args: argparse.Namespace) -> int:
    import torch

    from ..data.augment1d import parse_augment1d
    from ..viz import series_grid

    aug = parse_augment1d(args.augment)
    cells = _cells(args)
    series, label = _pick(args)
    x = series.unsqueeze(0).expand(cells - 1, -1, -1).contiguous()
    if aug is not None:
        x = aug(x, torch.Generator().manual_seed(args.seed))
    out = series_grid(
        torch.cat([series[None], x]),
        [label, *(f"#{k}" for k in range(1, cells))],
        rows=args.rows,
        cols=args.cols,
        path=out_dir(args.out) / PNG,
        title=f"{args.source}: {args.augment}",
    )
    print(f"wrote {out} (original {' x '.join(map(str, series.shape))}, {cells - 1} versions)")
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    if args.augment is None:
        raise ConvzooError("give --augment SPEC, e.g. --augment hflip,crop:4 (docs/data.md)")
    out_dir(args.out)  # a bad --out fails before any reading
    if args.source.partition(":")[0] in SERIES_ARCHIVES and not Path(args.source).is_file():
        return _augment_series(args)
    from ..data.augment import apply, parse_augment

    aug = parse_augment(args.augment)  # a bad spec fails before any data is read
    _cells(args)
    image, label = _image(args)
    name = Path(args.source).name if Path(args.source).is_file() else args.source
    versions = apply(
        image,
        aug,
        rows=args.rows,
        cols=args.cols,
        seed=args.seed,
        path=(png := out_dir(args.out) / PNG),
        label=label,
        title=f"{name}: {args.augment}",
    )
    h, w = versions.shape[-2:]
    print(f"wrote {png} (original {tuple(image.shape[-2:])}, {len(versions)} versions {h}x{w})")
    return 0
