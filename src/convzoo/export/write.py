"""Writing an export: load the run's network, trace it, check the file against PyTorch before
it is kept, record it in the run's model card."""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UnknownNameError
from ..io import atomic_path
from ..train.meta import ModelMeta
from ..trained import load_model, normalize, weights_file
from .card import record_export
from .formats import FORMATS, OUTPUT_NAME, ExportError, ExportResult, Format
from .onnx_model import load_onnx
from .preprocess import WithPreprocess, input_spec

#: largest |difference| between the exported graph's logits and PyTorch's (fp32) that an
#: export may have (the fp32 parity asked of every export); measured: at most 4.3e-6 for
#: ONNX, 0 for .pt2 and TorchScript, on logits of about +-10 (docs/export.md)
TOLERANCE = 1e-4
#: batch sizes the check runs: one image, and an odd batch for a --dynamic-batch graph
CHECK_BATCHES = (1, 5)
#: what reading a format back needs, when that is not PyTorch
READ_NEEDS = {"onnx": "onnxruntime"}


def default_path(weights: Path, fmt: Format, preprocess: bool) -> Path:
    """``model.safetensors`` -> ``model.onnx``, ``best.safetensors`` -> ``best-uint8.pt2``."""
    stem = weights.name.removesuffix(".safetensors")
    return weights.parent / f"{stem}{'-uint8' if preprocess else ''}{fmt.suffix}"


def example_batch(meta: ModelMeta, batch: int, preprocess: bool, seed: int = 0) -> torch.Tensor:
    """Random uint8 images (seeded), as the exported graph takes them; for a time-series
    network random z-normalised series."""
    g = torch.Generator().manual_seed(seed)
    if meta.is_sequence:
        return torch.randn(batch, *meta.input_shape, generator=g)
    pixels = torch.randint(0, 256, (batch, *meta.input_shape), generator=g, dtype=torch.uint8)
    return pixels if preprocess else normalize(pixels.float() / 255.0, meta)


def check_export(
    fmt: Format,
    path: Path,
    module: nn.Module,
    meta: ModelMeta,
    batches: tuple[int, ...],
    preprocess: bool,
) -> float:
    """The largest |difference| between the file's logits and ``module``'s, over ``batches``
    of random images (series); an export outside :data:`TOLERANCE` is refused."""
    runner = load_onnx(path).run_raw if fmt.read is None else fmt.read(path)
    worst = 0.0
    for i, n in enumerate(batches):
        x = example_batch(meta, n, preprocess, seed=1 + i)
        with torch.no_grad():
            ref = module(x)
            got = runner(x)
        if tuple(got.shape) != tuple(ref.shape):
            raise ExportError(f"the exported graph gives {tuple(got.shape)} for {n} inputs")
        worst = max(worst, float((got.float() - ref).abs().max()))
    if not worst <= TOLERANCE:
        raise ExportError(
            f"the exported graph's logits differ from PyTorch's by {worst:.2e} (more than "
            f"{TOLERANCE:g}) on random inputs; nothing was written"
        )
    return worst


def target_path(out: str | os.PathLike | None, weights: Path, fmt: Format, pre: bool) -> Path:
    target = default_path(weights, fmt, pre)
    if out is not None:  # a folder holds the file named as it would be beside the weights
        folder = Path(out).is_dir() or not Path(out).suffix
        target = Path(out) / target.name if folder else Path(out)
    ending = fmt.suffix.rsplit(".", 1)[-1]
    if target.suffix != f".{ending}":  # convzoo predict tells formats by their endings
        raise ExportError(f"{target}: a {fmt.name} export is a .{ending} file")
    return target


def export_info(
    fmt: Format, meta: ModelMeta, weights: Path, dynamic: bool, preprocess: bool
) -> dict[str, Any]:
    """How the file was exported: stored in it beside the network's metadata."""
    spec = input_spec(meta, preprocess, dynamic)
    return {
        "format": fmt.name,
        "dynamic_batch": dynamic,
        "preprocess": preprocess,
        "input": spec,
        "output": {"name": OUTPUT_NAME, "shape": [spec["shape"][0], meta.num_classes]},
        "weights": weights.name,
        "torch": torch.__version__,
    }


def _network(
    source: str | os.PathLike, weights: str, model: nn.Module | None, preprocess: bool
) -> tuple[nn.Module, ModelMeta]:
    net = load_model(source, weights, model=model).float()
    meta: ModelMeta = net.meta
    if meta.is_sequence and preprocess:
        raise ExportError(
            f"{source} trained a time-series model: --with-preprocess builds the scaling of "
            "uint8 pixels into the graph, and a series has none; export without it"
        )
    return net, meta


def _check_plan(fmt: Format, dynamic_batch: bool) -> tuple[tuple[int, ...], list[str]]:
    """The batch sizes the written file is checked at against PyTorch (none when the library
    that reads the format is missing), and the notes for the user."""
    notes = [fmt.note] if fmt.note else []
    needs = READ_NEEDS.get(fmt.name)
    if needs is not None and importlib.util.find_spec(needs) is None:
        return (), [*notes, f"not checked against PyTorch: {needs} is not installed"]
    return (CHECK_BATCHES if dynamic_batch else CHECK_BATCHES[:1]), notes


def export_model(
    source: str | os.PathLike,
    format: str = "onnx",
    *,
    out: str | os.PathLike | None = None,
    dynamic_batch: bool = False,
    with_preprocess: bool = False,
    weights: str = "best",
    model: nn.Module | None = None,
    card: bool = True,
) -> ExportResult:
    """Export the network of a run (directory or weights file) to ``format`` (``onnx``,
    ``pt2`` or ``torchscript``), check the file against PyTorch, and (``card``) record it in
    the run's model card ``README.md``.

    ``out``: the file, or a folder for it (a path without a suffix); default: next to the
    weights, ``model.onnx``, ``best-uint8.pt2``, ...
    ``dynamic_batch``: any batch size (else batch 1). ``with_preprocess``: the graph takes
    uint8 pixels at the input size and scales and normalizes them itself. ``weights`` and
    ``model`` as in :func:`convzoo.load_model`.
    """
    fmt = FORMATS.get(format)
    if fmt is None:
        raise UnknownNameError(f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}")
    wfile = weights_file(source, weights)
    net, meta = _network(source, weights, model, with_preprocess)
    target = target_path(out, wfile, fmt, with_preprocess)
    module = (WithPreprocess(net, meta) if with_preprocess else net).eval()
    example = example_batch(meta, 2 if dynamic_batch else 1, with_preprocess)
    with torch.no_grad():
        module(example)  # eager first: input checks and size probes run outside the trace
    info = export_info(fmt, meta, wfile, dynamic_batch, with_preprocess)
    batches, notes = _check_plan(fmt, dynamic_batch)
    with atomic_path(target, suffix=".tmp" + fmt.suffix) as tmp:
        meta_json = {**meta.to_dict(), "export": info}
        description = fmt.write(module, example, tmp, meta_json, dynamic_batch)
        diff = check_export(fmt, tmp, module, meta, batches, with_preprocess) if batches else None
    run_dir = Path(source) if Path(source).is_dir() else wfile.parent
    result = ExportResult(
        target,
        fmt.name,
        description,
        info["input"],
        diff,
        batches,
        run_dir,
        tuple(notes),
        weights=wfile.name + (f" (epoch {meta.epoch})" if meta.epoch is not None else ""),
    )
    if card:
        record_export(result, meta, when=_dt.datetime.now().isoformat(timespec="seconds"))
    return result
