"""The export formats: how each writes a network with its metadata, and reads it back.

All three trace the network through ``torch.export`` or ``torch.jit`` on an example batch;
a zoo network's forward has no data-dependent branches, so the graph is exact. Measured here
(torch 2.14.1 CPU; ``python tests/test_export.py``): every zoo family at a small width and
input size, logits of about +-10, real Fashion-MNIST images: the ONNX graphs (onnxruntime
1.32) differ from PyTorch by at most 4.3e-6 at batch 1 and 64, ``.pt2`` and TorchScript by 0.

- **ONNX**: ``torch.onnx.export(..., dynamo=True)``, the ``torch.export``-based exporter (it
  needs ``onnxscript``). The older TorchScript-based exporter (``dynamo=False``) warns in
  torch 2.14 that it "will be removed"; the new one is the default since torch 2.9 and
  exports every family: 3-20 s per family on the 2 shared cores here.
- **pt2**: ``torch.export.export`` + ``torch.export.save`` (the ExportedProgram format that
  PyTorch's own deployment paths, AOTInductor and ExecuTorch, start from).
- **TorchScript**: ``torch.jit.trace`` + ``torch.jit.save``, for runtimes that still need it
  (LibTorch in C++). Deprecated in torch 2.14: ``torch.jit.trace``/``save``/``load`` emit a
  FutureWarning ("Please switch to torch.compile or torch.export"); it still works, and we
  silence the warning here and say so once in the command's output.

Loading a ``.pt2`` or TorchScript file runs PyTorch's own unpickler (``torch.export.load``
falls back to ``weights_only=False``) or TorchScript code: only load such files you trust.
Our check reads back only the file it has just written. ONNX files are plain protobuf data.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConvzooError

#: how to get the ONNX tools when they are missing
ONNX_INSTALL = "pip install 'convzoo[onnx]' (onnx, onnxscript and onnxruntime)"
#: the name of the metadata entry in every exported file
META_KEY = "convzoo"
INPUT_NAME, OUTPUT_NAME = "images", "logits"

#: runs an exported file on a batch (the same input the exported module takes)
Runner = Callable[[torch.Tensor], torch.Tensor]


class ExportError(ConvzooError):
    """An export that cannot be made, or an exported file that is missing, broken or does not
    match its metadata."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    description: str  #: e.g. "ONNX opset 18"
    input: dict[str, Any]  #: name, dtype, shape (see :func:`~.preprocess.input_spec`)
    max_abs_diff: float | None  #: against PyTorch on random images; None: not checked
    checked_batches: tuple[int, ...]
    run_dir: Path
    notes: tuple[str, ...] = ()
    #: the weights file exported (``best.safetensors``: the epoch chosen on validation data)
    weights: str = ""


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  #: default file name ending
    #: (module, example batch, path, metadata, dynamic batch) -> a short description
    write: Callable[[nn.Module, torch.Tensor, Path, dict[str, Any], bool], str]
    #: the written file as a callable (for the check); None: onnxruntime's, with the checks of
    #: :func:`~convzoo.export.load_onnx`
    read: Callable[[Path], Runner] | None
    note: str = ""  #: printed after exporting


def batch_dim() -> Any:
    """The symbolic batch size of a ``--dynamic-batch`` export (examples are traced at batch
    2: torch.export specializes a dimension traced at size 1 to the constant 1)."""
    return torch.export.Dim("batch", min=1)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines() or [type(e).__name__])[0][:240]


# -- ONNX ---------------------------------------------------------------------------------
def write_onnx(
    net: nn.Module, example: torch.Tensor, path: Path, meta: dict[str, Any], dynamic: bool
) -> str:
    try:
        import onnxscript  # noqa: F401  (the exporter's dependency; fail here in one line)
    except ImportError:
        raise ExportError(f"ONNX export needs onnxscript: {ONNX_INSTALL}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                (example,),
                dynamo=True,
                dynamic_shapes=({0: batch_dim()},) if dynamic else None,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                verbose=False,
            )
    except torch.onnx.errors.OnnxExporterError as e:
        raise ExportError(f"ONNX export failed: {_first_line(e)}; try --format pt2") from None
    program.model.metadata_props[META_KEY] = json.dumps(meta)
    program.model.doc_string = f"{meta['model']} exported by convzoo"
    program.save(str(path), external_data=False)  # one self-contained file
    return f"ONNX opset {program.model.opset_imports.get('', '?')}"


# -- torch.export ------------------------------------------------------------------------
def write_pt2(
    net: nn.Module, example: torch.Tensor, path: Path, meta: dict[str, Any], dynamic: bool
) -> str:
    try:
        program = torch.export.export(
            net, (example,), dynamic_shapes=({0: batch_dim()},) if dynamic else None
        )
    except Exception as e:  # torch.export raises many kinds; the user's network decides
        raise ExportError(f"torch.export failed: {_first_line(e)}") from None
    torch.export.save(program, str(path), extra_files={f"{META_KEY}.json": json.dumps(meta)})
    return "torch.export ExportedProgram"


def read_pt2(path: Path) -> Runner:
    return torch.export.load(str(path)).module()


# -- TorchScript -------------------------------------------------------------------------
def write_torchscript(
    net: nn.Module, example: torch.Tensor, path: Path, meta: dict[str, Any], dynamic: bool
) -> str:
    # tracing records the batch dimension symbolically (sizes read in forward are traced), so
    # one trace serves every batch size; the check runs the sizes the export promises
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation, and tracer notes on our input checks
        try:
            traced = torch.jit.trace(net, example)
        except Exception as e:
            raise ExportError(f"torch.jit.trace failed: {_first_line(e)}") from None
        torch.jit.save(traced, str(path), _extra_files={f"{META_KEY}.json": json.dumps(meta)})
    return "TorchScript (traced)"


def read_torchscript(path: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


FORMATS: dict[str, Format] = {
    "onnx": Format("onnx", ".onnx", write_onnx, None),
    "pt2": Format("pt2", ".pt2", write_pt2, read_pt2),
    "torchscript": Format(
        "torchscript",
        ".torchscript.pt",
        write_torchscript,
        read_torchscript,
        note="note: TorchScript is deprecated in PyTorch 2.14 (torch.jit.trace/save/load warn); "
        "prefer --format pt2 or onnx",
    ),
}
