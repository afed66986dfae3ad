"""``convzoo explain``: one HTML page (and its PNGs) showing what a trained network does with
one image."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalog import ATTRIBUTION_METHODS, SPLITS
from ..errors import ConvzooError, UnknownNameError
from ..train.meta import ModelMeta
from ._common import out_dir
from .data import add_data_dir

if TYPE_CHECKING:
    import torch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="see inside a trained network: feature maps, filters, scores, attribution (HTML)",
        description="Explain a trained network's decision on one image: the input as the "
        "network receives it, each stage's output shape and most active feature maps, the "
        "first convolution's filters, the class probabilities, and for the predicted and the "
        "true class an attribution map at a stage and Integrated Gradients on the pixels, on "
        "one self-contained HTML page.",
    )
    p.add_argument("source", metavar="RUN", help="run directory or model.safetensors")
    p.add_argument(
        "image",
        metavar="IMAGE",
        nargs="?",
        default=None,
        help="an image file (any size, any mode); for a time-series run a .csv or .npy file "
        "holding one series",
    )
    p.add_argument(
        "--index",
        type=int,
        default=None,
        metavar="N",
        help="explain image N of the run's data set instead (its label is the true class)",
    )
    p.add_argument("--split", default="test", choices=SPLITS, help="with --index")
    p.add_argument(
        "--label",
        default=None,
        metavar="CLASS",
        help="the true class of IMAGE (name or number), to map it too",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: RUN/explain-<image name> or RUN/explain-<split>-<N>)",
    )
    p.add_argument(
        "--layer",
        default=None,
        metavar="NAME",
        help="stage (b3, layer4) or layer path for the attribution (default: the last "
        "stage with a spatial map)",
    )
    p.add_argument("--maps", type=int, default=8, metavar="K", help="feature maps shown per stage")
    p.add_argument(
        "--method",
        default=ATTRIBUTION_METHODS[0],
        choices=ATTRIBUTION_METHODS,
        help=f"layer attribution (default {ATTRIBUTION_METHODS[0]}; docs/explain.md)",
    )
    add_data_dir(p)
    p.set_defaults(func=cmd_explain)


def _class_index(text: str, classes: list[str]) -> int:
    if text in classes:
        return classes.index(text)
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    raise UnknownNameError(f"unknown class {text!r}; classes: {', '.join(classes)}")


def _image(args: argparse.Namespace, meta: ModelMeta) -> tuple[torch.Tensor, int | None, str, str]:
    """(uint8 image, true class or None, title, default folder name) from a file or the data."""
    from .data import load

    if (args.image is None) == (args.index is None):
        raise ConvzooError(
            "give an IMAGE file or --index N (an image of the run's data set), one of them"
        )
    if args.image is not None:
        image = _read_input(args.image, meta)
        label = None if args.label is None else _class_index(args.label, meta.classes)
        return image, label, Path(args.image).name, f"explain-{Path(args.image).stem}"
    if args.label is not None:
        raise ConvzooError(
            "--label is for an IMAGE file; with --index the data set's label is used"
        )
    # one image is decoded: your own images are indexed, never read whole
    data = load(meta.dataset, args.split, args, subset=meta.subset, meta=meta, in_memory="no")
    if not 0 <= args.index < len(data):
        raise ConvzooError(
            f"--index {args.index} is outside 0..{len(data) - 1} of {meta.dataset} {args.split}"
        )
    title = f"{meta.dataset} {args.split} #{args.index}"
    return (
        (data.images if hasattr(data, "images") else data.series)[args.index],
        int(data.labels[args.index]),
        title,
        f"explain-{args.split}-{args.index}",
    )


def _read_input(path: str, meta: ModelMeta) -> torch.Tensor:
    """An image file, or for a time-series run the one series of a ``.csv``/``.npy`` file."""
    from ..data.images import read_image
    from ..trained import read_series

    if not meta.is_sequence:
        return read_image(path, meta.in_channels)
    named = read_series(path, meta)
    if len(named) != 1:
        raise ConvzooError(
            f"{path} holds {len(named)} series; explain takes one: save it alone, or explain "
            "a series of the run's data set with --index N"
        )
    return named[0][1]


def cmd_explain(args: argparse.Namespace) -> int:
    from ..explain import explain, write_explanation
    from ..trained import load_model, weights_file

    if args.maps < 1:
        raise ConvzooError(f"--maps must be >= 1, got {args.maps}")
    out_dir(args.out)  # a bad --out fails before any reading
    model = load_model(args.source)
    image, label, title, folder = _image(args, model.meta)
    e = explain(
        model, model.meta, image, label=label, layer=args.layer, source=title, method=args.method
    )
    out = out_dir(args.out, weights_file(args.source).parent / folder)
    page = write_explanation(e, out, maps=args.maps)
    verdict = f"predicted {e.classes[e.predicted]} {float(e.probs[e.predicted]):.3f}"
    if label is not None:
        verdict += f", true {e.classes[label]}"
    print(f"{title}: {verdict}; {e.method} at {e.layer}")
    print(f"wrote {page} (and {len(list(page.parent.glob('*.png')))} PNGs beside it)")
    return 0
