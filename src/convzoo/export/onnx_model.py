"""An exported ONNX network run by onnxruntime, usable wherever convzoo takes a network to
predict with (``convzoo predict FILE.onnx``, :func:`convzoo.predict`).

The file is checked before it is used: it must carry convzoo's metadata (written by
``convzoo export``), and its graph must take and give what the metadata says (channels,
input size, dtype, number of classes). Anything else is one clear error, not a runtime crash
on the first batch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..train.meta import ModelMeta
from .formats import META_KEY, ONNX_INSTALL, ExportError
from .preprocess import to_pixels


class OnnxModel:
    """An ONNX file in an onnxruntime session, with its :class:`ModelMeta` as ``meta``.

    Called like the network it was exported from: a float batch, normalized as in training
    (N x C x H x W) -> logits (N x num_classes). A ``--with-preprocess`` graph is given the
    batch's uint8 pixels; a graph with a fixed batch size is run in chunks of that size.
    """

    def __init__(self, path: Path, session: Any, meta: ModelMeta, export: dict[str, Any]):
        self.path = path
        self.session = session
        self.meta = meta
        self.export = export
        self.input_name = session.get_inputs()[0].name
        self.takes_pixels = bool(export.get("preprocess"))
        batch = session.get_inputs()[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_raw(to_pixels(x, self.meta) if self.takes_pixels else x)

    def run_raw(self, x: torch.Tensor) -> torch.Tensor:
        """The graph on its own input (uint8 pixels for a ``--with-preprocess`` graph)."""
        chunk = self.fixed_batch or len(x)
        outs = []
        for part in x.split(chunk):
            n = len(part)
            if n < chunk:  # a fixed-size graph: pad the last chunk, drop the padding's outputs
                part = torch.cat([part, part[:1].expand(chunk - n, *part.shape[1:])])
            feed = {self.input_name: np.ascontiguousarray(part.cpu().numpy())}
            outs.append(torch.from_numpy(self.session.run(None, feed)[0][:n]))
        return torch.cat(outs)


def _session(path: Path) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError(f"running {path} needs onnxruntime: {ONNX_INSTALL}") from None
    if not path.is_file():
        raise ExportError(f"ONNX file {path} does not exist")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are not the user's business
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own (pybind) exception types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ExportError(
            f"cannot read ONNX file {path}: it is truncated or not an ONNX model ({first}); "
            f"export it again with convzoo export"
        ) from None


def _metadata(path: Path, session: Any) -> tuple[ModelMeta, dict[str, Any]]:
    raw = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if raw is None:
        raise ExportError(
            f"{path} has no convzoo metadata (classes, input size): it was not written by "
            f"convzoo export; export the run with convzoo export RUN --format onnx"
        )
    try:
        data = json.loads(raw)
        export = data.pop("export")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ExportError(f"{path} has damaged convzoo metadata; export it again") from None
    try:
        meta = ModelMeta.from_dict(data, source=f"the metadata of {path}")
    except CheckpointError as e:
        raise ExportError(str(e)) from None
    return meta, export


def check_graph(path: Path, session: Any, meta: ModelMeta, export: dict[str, Any]) -> None:
    """The graph must take and give what its metadata says."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    dtype = "tensor(uint8)" if export.get("preprocess") else "tensor(float)"
    expected = f"{dtype} N x " + " x ".join(map(str, meta.input_shape))
    problems = []
    if len(inputs) != 1 or len(outputs) != 1:
        problems.append(f"{len(inputs)} inputs and {len(outputs)} outputs, not 1 and 1")
    else:
        shape, out = inputs[0].shape, outputs[0].shape
        want = list(meta.input_shape)  # C x H x W, or C x L for a series
        if inputs[0].type != dtype or len(shape) != 1 + len(want) or list(shape[1:]) != want:
            problems.append(f"input {inputs[0].type} {shape}, not {expected}")
        if not out or out[-1] != meta.num_classes:
            problems.append(f"output {out}, not N x {meta.num_classes} logits")
    if problems:
        raise ExportError(
            f"{path} does not match its convzoo metadata ({'; '.join(problems)}): the file was "
            f"altered or assembled from two exports; export the run again"
        )


def load_onnx(path: str | os.PathLike) -> OnnxModel:
    """An ONNX file written by ``convzoo export``, checked, ready to predict with."""
    path = Path(path)
    session = _session(path)
    meta, export = _metadata(path, session)
    check_graph(path, session, meta, export)
    return OnnxModel(path, session, meta, export)
