"""``convzoo augment``: the chapter's ``apply`` picture — an image and augmented versions."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..data.augment import apply, parse_augment
from ..data.folder import GRAY_MODES, decode, probe
from ..data.sources import FOLDER_PREFIX, SOURCES, dataset_names
from ..errors import ConvzooError, UnknownNameError
from .data import add_data_dir, add_skip_bad_images, load


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("augment", help="show an image and augmented versions of it in a grid (PNG)")
    p.add_argument("source", metavar="IMAGE|DATASET", help="an image file, or a data set name")
    p.add_argument(
        "--ops",
        required=True,
        metavar="SPEC",
        help="augmentation spec, e.g. 'hflip,crop:4' or 'rrc:200:0.1-1:0.5-2,jitter:0.5'",
    )
    p.add_argument("--rows", type=int, default=2)
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--out", default="augment.png", help="PNG to write (default: augment.png)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random parameters")
    p.add_argument("--index", type=int, default=0, help="which image of a data set")
    p.add_argument("--split", default="train", choices=("train", "test"))
    add_data_dir(p)
    add_skip_bad_images(p)
    p.set_defaults(func=cmd_augment)


def _image(args: argparse.Namespace) -> tuple[torch.Tensor, str]:
    """uint8 C x H x W and its label, from a file or a data set."""
    src = args.source
    if Path(src).is_file():
        mode, _ = probe(src)
        return decode(src, 1 if mode in GRAY_MODES else 3), "original"
    if src not in SOURCES and not src.startswith(FOLDER_PREFIX):
        raise UnknownNameError(
            f"{src!r} is neither an image file nor a data set; data sets: "
            + ", ".join(dataset_names())
        )
    data = load(src, args.split, args)
    if not 0 <= args.index < len(data):
        raise ConvzooError(f"--index {args.index} is outside 0..{len(data) - 1} of {src}")
    label = data.classes[int(data.labels[args.index])]
    return data.images[args.index], f"original ({label})"


def cmd_augment(args: argparse.Namespace) -> int:
    aug = parse_augment(args.ops)  # a bad spec fails before any data is read
    if args.rows * args.cols < 2:
        raise ConvzooError("--rows x --cols must leave room for the original and one version")
    image, label = _image(args)
    name = Path(args.source).name if Path(args.source).is_file() else args.source
    versions = apply(
        image,
        aug,
        rows=args.rows,
        cols=args.cols,
        seed=args.seed,
        path=args.out,
        label=label,
        title=f"{name}: {args.ops}",
    )
    h, w = versions.shape[-2:]
    print(
        f"wrote {args.out} (original {tuple(image.shape[-2:])}, {len(versions)} versions {h}x{w})"
    )
    return 0
