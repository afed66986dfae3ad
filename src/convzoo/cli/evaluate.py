"""``convzoo evaluate`` and ``convzoo predict``: use a trained network."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..catalog import SPLITS, WEIGHTS
from ..errors import ConvzooError
from ._common import add_out_dir, out_dir
from .data import add_files_flags, load

#: image files decoded and predicted at once by convzoo predict
PREDICT_CHUNK = 256


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix")
    p.add_argument("source", help="run directory or model.safetensors")
    p.add_argument("--dataset", default=None, help="data set (default: the one trained on)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--subset", default=None, help="subset spec (default: the one trained on)")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=1024)
    add_files_flags(p)
    p.add_argument(
        "--weights",
        choices=WEIGHTS,
        default=None,
        help="a run's best.safetensors (the epoch chosen on validation data) or "
        "model.safetensors (the last epoch); default: best where the run has it",
    )
    add_out_dir(
        p,
        "the confusion matrix, confusion-<dataset>-<split>.png, and the --top-losses gallery "
        "(default: the run directory)",
    )
    p.add_argument(
        "--most-confused",
        type=int,
        default=0,
        metavar="K",
        help="print the K (true, predicted) class pairs mistaken most often",
    )
    p.add_argument(
        "--top-losses",
        type=int,
        default=0,
        metavar="K",
        help="write a gallery of the K images with the highest loss "
        "(top-losses-<dataset>-<split>.png in --out)",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top-k classes of image files (or series files)")
    p.add_argument("source", help="run directory, model.safetensors or an exported .onnx file")
    p.add_argument(
        "images",
        nargs="+",
        metavar="FILE",
        help="image files (any size and mode), folders of them or csv:FILE (the images a labels "
        "file lists); for a time-series model .csv "
        "or .npy files (one series per row, or a C x L array; docs/sequences.md)",
    )
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--weights",
        choices=WEIGHTS,
        default="best",
        help="of a run directory, as for evaluate (an .onnx file holds the weights it was "
        "exported with)",
    )
    p.set_defaults(func=cmd_predict)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..trained import evaluate, load_model, weights_file
    from ..viz import plot_confusion

    for flag, k in (("--most-confused", args.most_confused), ("--top-losses", args.top_losses)):
        if k < 0:
            raise ConvzooError(f"{flag} must be >= 0, got {k}")
    if args.batch_size < 1:
        raise ConvzooError(f"--batch-size must be >= 1, got {args.batch_size}")
    path = weights_file(args.source, args.weights)
    folder = out_dir(args.out, path.parent)  # a bad --out fails before any reading
    model = load_model(path)
    meta = model.meta
    name = args.dataset or meta.dataset
    if name is None:
        raise ConvzooError(f"{path} names no data set it was trained on; pass --dataset NAME")
    subset = args.subset if args.subset is not None else meta.subset
    try:
        data = load(name, args.split, args, subset=subset, meta=meta)
    except ConvzooError as e:
        if args.dataset is not None and args.subset is not None:
            raise
        raise ConvzooError(  # the data set (or subset) the weights file names
            f"{e} (the data the model in {path} was trained on; evaluate on other data with "
            f"--dataset/--subset)"
        ) from None
    warn_other_classes(data.classes, meta.classes, name)
    result = evaluate(model, data, device=args.device, batch_size=args.batch_size)
    print(
        f"{meta.model} ({path.name}) on {name} {args.split}"
        + (f" ({subset})" if subset else "")
        + f": accuracy {result.acc:.4f}, loss {result.loss:.4f} "
        f"({result.count:,} {'series' if meta.is_sequence else 'images'})"
    )
    width = max(len(c) for c in data.classes)
    for cls, acc in result.per_class_acc.items():
        print(f"  {cls:<{width}}  {acc:.4f}")
    stem = f"{name.replace('/', '_').replace(':', '_')}-{args.split}"
    out = folder / f"confusion-{stem}.png"
    title = f"{meta.model} on {name} {args.split} (accuracy {result.acc:.4f})"
    plot_confusion(result.confusion, data.classes, out, title=title)
    print(f"confusion matrix: {out}")
    if args.most_confused:
        print_most_confused(result.confusion, data.classes, args.most_confused)
    if args.top_losses:
        gallery = folder / f"top-losses-{stem}.png"
        write_top_losses(model, data, args, gallery)
    return 0


def warn_other_classes(classes: list[str], trained: list[str], name: str) -> None:
    """Accuracy compares class numbers: say so when the names behind them differ."""
    if len(classes) == len(trained) and list(classes) != list(trained):
        pairs = [f"{a!r} vs {b!r}" for a, b in zip(classes, trained) if a != b]
        print(
            f"warning: {name}'s classes differ from those the model was trained on "
            f"({len(pairs)} of {len(classes)}: {', '.join(pairs[:3])}"
            f"{', ...' if len(pairs) > 3 else ''}); class k is scored as the model's class k",
            file=sys.stderr,
        )


def print_most_confused(confusion, classes: list[str], k: int) -> None:
    from ..analysis import most_confused

    pairs = most_confused(confusion, classes, k)
    print(f"most confused (true -> predicted, images), {len(pairs)} of {k}:")
    width = max((len(t) for t, _, _ in pairs), default=0)
    for true, pred, count in pairs:
        print(f"  {true:<{width}} -> {pred}  {count:,}")


def write_top_losses(model, data, args: argparse.Namespace, out: Path) -> None:
    from ..analysis import plot_top_losses, top_losses

    top = top_losses(
        model, model.meta, data, args.top_losses, device=args.device, batch_size=args.batch_size
    )
    plot_top_losses(
        top,
        data,
        out,
        title=f"{model.meta.model}: the {len(top.indices)} highest "
        f"losses on {data.name} {args.split} (true / predicted / prob / loss)",
    )
    print(f"top losses: {out}")


def image_paths(items: list[str]) -> list[str]:
    """The files given, with each folder replaced by the image files in it and each
    ``csv:FILE`` by the images it lists."""
    from ..data.folder import image_files
    from ..data.labels_file import listed_images

    paths: list[str] = []
    for item in items:
        if item.startswith("csv:"):
            paths += listed_images(item[len("csv:") :])
        elif Path(item).is_dir():
            found = image_files(item)
            if not found:
                raise ConvzooError(f"{item} is a folder without image files")
            paths += found
        else:
            paths.append(item)
    return paths


def cmd_predict(args: argparse.Namespace) -> int:
    from ..export import load_predictor
    from ..trained import predict, predict_series

    if args.top_k < 1:
        raise ConvzooError(f"--top-k must be >= 1, got {args.top_k}")
    model = load_predictor(args.source, args.weights)
    if model.meta.is_sequence:  # a time-series model: series files
        named = predict_series(model, args.images, top_k=args.top_k, device=args.device)
    else:
        images = image_paths(args.images)  # a folder stands for the images in it
        # a chunk at a time, printed as it comes: any number of files in bounded memory
        chunks = (images[i : i + PREDICT_CHUNK] for i in range(0, len(images), PREDICT_CHUNK))
        named = (
            pair
            for chunk in chunks
            for pair in zip(chunk, predict(model, chunk, device=args.device).top(args.top_k))
        )
    with warnings.catch_warnings():  # predict's word on unusual images: one line
        warnings.showwarning = lambda message, *_: print(f"warning: {message}", file=sys.stderr)
        for name, top in named:
            print(f"{name}: " + ", ".join(f"{c} {p:.3f}" for c, p in top), flush=True)
    return 0
