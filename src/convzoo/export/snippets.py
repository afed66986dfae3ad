"""The model card's "how to load it": code for each exported file, with this network's input
size, channels, normalization and class names filled in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..train.meta import ModelMeta

FENCE = "```"


def _prepare(meta: ModelMeta, uint8: bool, lib: str) -> list[str]:
    """Lines that turn ``image.png`` into the export's input ``x`` (numpy or torch)."""
    c, size = meta.in_channels, meta.image_size
    mode = "L" if c == 1 else "RGB"
    lines = [
        f'image = Image.open("image.png").convert("{mode}").resize(({size}, {size}), '
        f"Image.BILINEAR)",
    ]
    layout = "[None, None]" if c == 1 else ".transpose(2, 0, 1)[None]"
    if uint8:
        lines.append(f"x = np.asarray(image, dtype=np.uint8){layout}  # N x C x H x W, 0-255")
    else:
        lines.append(f"x = np.asarray(image, dtype=np.float32){layout} / 255.0  # N x C x H x W")
        lines += _normalize(meta, f"(1, {c}, 1, 1)")
    if lib == "torch":
        lines.append("x = torch.from_numpy(x)")
    return lines


def _normalize(meta: ModelMeta, shape: str) -> list[str]:
    """The training loader's per-channel normalization of ``x``, if the run had one."""
    if meta.mean is None:
        return []
    return [
        f"x = (x - np.array({meta.mean}, np.float32).reshape{shape}) / "
        f"np.array({meta.std}, np.float32).reshape{shape}"
    ]


def _prepare_series(meta: ModelMeta, lib: str) -> list[str]:
    """Lines that turn ``series.npy`` (one series, C x steps) into the export's input ``x``,
    as convzoo's reader and loader prepare it (``convzoo.data.sequences``, ``loader.resample``)."""
    c, n = meta.input_shape
    length = meta.extra["length"]
    lines = [f'x = np.load("series.npy").astype(np.float32).reshape(1, {c}, -1)  # 1 x C x steps']
    if meta.extra.get("znorm", True):  # a UEA set keeps its stored values
        lines.append(
            "x = (x - x.mean(2, keepdims=True)) / x.std(2, ddof=1, keepdims=True)  # z-normalise"
        )
    lines.append(
        f"x = np.pad(x, ((0, 0), (0, 0), (0, max(0, {length} - x.shape[2]))))[:, :, :{length}]"
    )
    if n != length:  # the loader's resampling: window means when shrinking, else linear
        mode = '"area"' if n < length else '"linear", align_corners=False'
        lines.append(
            f"x = torch.nn.functional.interpolate(torch.from_numpy(x), size={n}, "
            f"mode={mode}).numpy()"
        )
    lines += _normalize(meta, f"(1, {c}, 1)")
    if lib == "torch":
        lines.append("x = torch.from_numpy(x)")
    return lines


@dataclass(frozen=True)
class Loader:
    title: str
    lib: str  #: what the input is: "numpy" or "torch"
    imports: tuple[str, ...]
    load: str  #: the line that loads ``{file}``
    run: str  #: the line that computes ``logits`` from ``x``


LOADERS = {
    "onnx": Loader(
        "onnxruntime",
        "numpy",
        ("import onnxruntime as ort  # pip install onnxruntime",),
        'session = ort.InferenceSession("{file}")',
        'logits = session.run(None, {{"images": x}})[0]',
    ),
    "pt2": Loader(
        "PyTorch (torch.export)",
        "torch",
        ("import torch",),
        'net = torch.export.load("{file}").module()  # only load files you trust',
        "logits = net(x)",
    ),
    "torchscript": Loader(
        "TorchScript",
        "torch",
        ("import torch",),
        'net = torch.jit.load("{file}")  # TorchScript: deprecated in torch 2.14',
        "logits = net(x)",
    ),
}


def _snippet(meta: ModelMeta, loader: Loader, export: dict[str, Any]) -> str:
    uint8 = (export.get("input") or {}).get("dtype") == "uint8"
    if meta.is_sequence:
        prepare = _prepare_series(meta, loader.lib)
        needs_torch = "torch." in "".join(prepare) and "import torch" not in loader.imports
        imports = [*loader.imports, *(["import torch"] if needs_torch else [])]
    else:
        prepare = _prepare(meta, uint8, loader.lib)
        imports = [*loader.imports, "from PIL import Image"]
    code = [
        "import numpy as np",
        *imports,
        "",
        loader.load.format(file=export["file"]),
        *prepare,
        loader.run.format(),
        f"CLASSES = {list(meta.classes)!r}",
        "print(CLASSES[int(logits.argmax(1)[0])])",
    ]
    return f"### {loader.title}\n\n{FENCE}python\n" + "\n".join(code) + f"\n{FENCE}"


def loading_snippets(meta: ModelMeta, exports: list[dict[str, Any]]) -> str:
    """One block per format exported (its latest file), then convzoo's own ways."""
    latest = {e.get("format"): e for e in exports}
    blocks = [_snippet(meta, LOADERS[f], latest[f]) for f in LOADERS if f in latest]
    onnx_file = latest.get("onnx", {}).get("file")
    if meta.is_sequence:  # series files (.npy/.csv) are read by the command line only
        cli = f"{FENCE}console\n$ convzoo predict . series.npy   # or series.csv\n{FENCE}"
        blocks.append(f"### convzoo\n\n{cli}")
        return "\n\n".join(blocks)
    convzoo_lines = [
        "import convzoo",
        "",
        'net = convzoo.load_model(".")  # this directory; model=... for a network of your own',
        'print(convzoo.predict(net, "image.png").top(3))',
    ]
    cli = f"{FENCE}console\n$ convzoo predict . image.png\n"
    if onnx_file:
        cli += f"$ convzoo predict {onnx_file} image.png   # through onnxruntime\n"
    blocks.append(
        f"### convzoo\n\n{FENCE}python\n" + "\n".join(convzoo_lines) + f"\n{FENCE}\n\n{cli}{FENCE}"
    )
    return "\n\n".join(blocks)
