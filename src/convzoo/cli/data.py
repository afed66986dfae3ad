"""``convzoo data fetch`` and ``convzoo data info``."""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import TYPE_CHECKING

from ..catalog import DATASETS, DEFAULT_DATASET, FILES_PREFIXES, SPLITS
from ..train.config import TrainConfig
from ..train.meta import ModelMeta
from ._common import add_out_dir, field_help, out_dir

if TYPE_CHECKING:
    import torch

    from ..data.dataset import LabelledData
    from ..data.sequences import SequenceDataset


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="data directory (default: $CONVZOO_DATA or ~/.cache/convzoo)",
    )


def add_files_flags(p: argparse.ArgumentParser, in_memory: bool = True) -> None:
    """The flags of your own images (folder:, csv:), as convzoo train has them."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    p.add_argument(
        "--skip-bad-images", action="store_true", help=field_help(fields["skip_bad_images"])
    )
    if in_memory:
        f = fields["in_memory"]
        p.add_argument(
            "--in-memory", default=f.default, choices=f.metadata["choices"], help=field_help(f)
        )


def load(
    name: str,
    split: str,
    args: argparse.Namespace,
    *,
    subset: str | None = None,
    meta: ModelMeta | None = None,
    in_memory: str | None = None,
) -> LabelledData:
    """``split`` of ``name`` restricted to ``subset``, with the common flags. Your own images
    are prepared as the network in ``meta`` takes them (its channels and input size), held
    in memory or streamed as ``--in-memory`` (or ``in_memory``) says; the choice is printed."""
    from ..data.folder import place
    from ..data.sources import index_files, load_dataset
    from ..data.subsets import apply_subset

    if not name.startswith(FILES_PREFIXES):
        return apply_subset(load_dataset(name, split, root=args.data_dir), subset)
    shape = {"channels": meta.in_channels, "image_size": meta.image_size} if meta else {}
    skip = getattr(args, "skip_bad_images", False)
    index = apply_subset(index_files(name, split, skip_bad_images=skip, **shape), subset)
    (data,), note = place([index], in_memory or getattr(args, "in_memory", "auto"))
    if in_memory is None:
        print(f"{name} {split}: {len(data):,} images {note}")  # as train's header says it
    return data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch data sets and describe them")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    known = ", ".join(DATASETS)

    f = dsub.add_parser(
        "fetch",
        help="make sure a data set's files are in the data directory (set-up's data step)",
        description="Get a data set the cheapest way that works: the data directory, a packaged "
        "copy (/usr/share/datasets) or a download; else it names the command to run. Prints "
        "what it did in one line.",
    )
    f.add_argument("name", nargs="?", default=DEFAULT_DATASET, help=f"one of {known}")
    add_data_dir(f)
    f.set_defaults(func=cmd_fetch)

    i = dsub.add_parser(
        "info", help="split sizes, classes, image size, pixel statistics, a grid of samples"
    )
    i.add_argument("name", nargs="?", default=DEFAULT_DATASET, help=f"one of {known}")
    add_data_dir(i)
    add_out_dir(i, "the sample grid, data-NAME.png (default: the current folder)")
    i.add_argument("--rows", type=int, default=2)
    i.add_argument("--cols", type=int, default=5)
    add_files_flags(i)
    i.set_defaults(func=cmd_info)


def cmd_fetch(args: argparse.Namespace) -> int:
    from ..data.ensure import ensure_dataset

    print(ensure_dataset(args.name, root=args.data_dir).line)
    return 0


def _default_png(name: str) -> str:
    if name.startswith(FILES_PREFIXES):
        name = name.partition(":")[2].rstrip("/").rsplit("/", 1)[-1]
    return f"data-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name) or 'folder'}.png"


def sample_indices(labels: torch.Tensor, count: int, seed: int = 0) -> list[int]:
    """``count`` indices going round the classes (one random image of each class in turn), so
    a grid shows every class before it shows one twice."""
    import torch

    g = torch.Generator().manual_seed(seed)
    per_class = [
        (labels == c).nonzero().squeeze(1)[torch.randperm(int((labels == c).sum()), generator=g)]
        for c in range(int(labels.max()) + 1)
    ]
    out, k = [], 0
    while len(out) < count and any(k < len(p) for p in per_class):
        out += [int(p[k]) for p in per_class if k < len(p)][: count - len(out)]
        k += 1
    return out


def _describe_series(train: SequenceDataset) -> None:
    print(f"series:  {train.in_channels} x {train.length} float32 (channels x steps)")
    values = "each series z-normalised per channel" if train.znorm else "the stored values"
    print(f"values:  {values}, padded or cut to the longest train one")


def cmd_info(args: argparse.Namespace) -> int:
    from ..data.sequences import SequenceDataset
    from ..viz import image_grid, series_grid

    png = out_dir(args.out) / _default_png(args.name)  # a bad --out fails before any reading
    splits = {s: load(args.name, s, args) for s in SPLITS}
    train = splits["train"]
    print(f"{args.name}  ({train.source})")
    if isinstance(train, SequenceDataset):
        _describe_series(train)
    else:
        c, h, w = train.in_channels, *train.image_size
        print(f"images:  {c} x {h} x {w} uint8 ({'gray' if c == 1 else 'RGB'})")
    print("splits:  " + ", ".join(f"{s} {len(d):,}" for s, d in splits.items()))
    if not isinstance(train, SequenceDataset):
        mean, std = train.stats()
        print(
            "pixels:  mean "
            + ", ".join(f"{m:.4f}" for m in mean)
            + "  std "
            + ", ".join(f"{s:.4f}" for s in std)
            + "  (train, in [0, 1])"
        )
    counts = {s: d.class_counts() for s, d in splits.items()}
    width = max(len("class"), *(len(n) for n in train.classes))
    print(f"\n{'#':>3}  {'class':<{width}}" + "".join(f"  {s:>8}" for s in splits))
    for k, name in enumerate(train.classes):
        print(f"{k:>3}  {name:<{width}}" + "".join(f"  {counts[s][k]:>8,}" for s in splits))
    idx = sample_indices(train.labels, args.rows * args.cols)
    draw = series_grid if isinstance(train, SequenceDataset) else image_grid
    out = draw(
        getattr(train, train.inputs_field)[idx],
        [train.classes[int(train.labels[i])] for i in idx],
        rows=args.rows,
        cols=args.cols,
        path=png,
        title=f"{args.name} (train)",
    )
    print(f"\nwrote {out}")
    return 0
