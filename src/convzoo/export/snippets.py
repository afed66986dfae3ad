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
        if meta.mean is not None:
            shape = f"(1, {c}, 1, 1)"
            lines.append(
                f"x = (x - np.array({meta.mean}, np.float32).reshape{shape}) / "
                f"np.array({meta.std}, np.float32).reshape{shape}"
            )
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
    code = [
        "import numpy as np",
        *loader.imports,
        "from PIL import Image",
        "",
        loader.load.format(file=export["file"]),
        *_prepare(meta, uint8, loader.lib),
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
