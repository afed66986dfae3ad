"""Export a trained network to run without convzoo: ONNX, torch.export (``.pt2``), TorchScript.

:func:`export_model` (``convzoo export``) writes the file, checks its outputs against PyTorch
before keeping it, and records it in the run's model card (``README.md``); :func:`load_onnx`
runs an exported ONNX file with onnxruntime, wherever convzoo predicts (``convzoo predict
model.onnx``). See docs/export.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .formats import FORMATS, ONNX_INSTALL, ExportError, ExportResult
from .onnx_model import OnnxModel, load_onnx
from .write import TOLERANCE, export_model

__all__ = [
    "FORMATS",
    "ONNX_INSTALL",
    "TOLERANCE",
    "ExportError",
    "ExportResult",
    "OnnxModel",
    "export_model",
    "load_onnx",
    "load_predictor",
]

#: exported files that only Python code of the user's choice should load (see formats.py)
PYTHON_ONLY = (".pt2", ".pt", ".ts")


def load_predictor(source: str | os.PathLike, weights: str = "best") -> Any:
    """What ``convzoo predict`` runs: an exported ``.onnx`` file (through onnxruntime), or
    the network of a run directory / ``.safetensors`` file (``weights`` as in
    :func:`convzoo.load_model`)."""
    from ..trained import load_model

    path = Path(source)
    if path.suffix == ".onnx":
        return load_onnx(path)
    if path.suffix in PYTHON_ONLY:
        raise ExportError(
            f"convzoo predict reads run directories, .safetensors and .onnx files; load {path} "
            f"in Python (docs/export.md), or predict from its run directory"
        )
    return load_model(path, weights)
