"""One self-contained HTML page per explained image, plus its PNGs, written all at once.

The page reads like the network, top to bottom: input -> first-layer filters -> each stage's
feature maps -> class scores -> attribution. Images are inlined as base64 PNG data URLs and
the style sheet is in the page: it opens from disk, mailed or offline, and fetches nothing.
Plain ``string.Template`` and ``html.escape``: no template engine for one page.
"""

from __future__ import annotations

import base64
import contextlib
import html
import os
import shutil
import tempfile
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from ..errors import ConvzooError
from ..io import atomic_write
from . import pictures, series_pictures
from .integrated_gradients import STEPS

if TYPE_CHECKING:  # the explanation shows itself through this module
    from .explanation import Explanation

PAGE = "explain.html"

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$title</title>
<style>
body { font-family: sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
section { border-top: 1px solid #ccc; padding-top: 0.4em; margin-top: 1.2em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-bottom: 0.2em; }
h3 { font-size: 1em; margin-bottom: 0.1em; font-family: monospace; }
p { margin: 0.2em 0 0.5em; }
img { max-width: 100%; display: block; margin: 0.3em auto; }
.arrow { color: #888; text-align: center; font-size: 1.4em; margin: 0.2em; }
.note { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>$title</h1>
$body
</body>
</html>
""")


def _img(pngs: dict[str, bytes], name: str, alt: str) -> str:
    data = base64.b64encode(pngs[name]).decode("ascii")
    source = f"data:image/png;base64,{data}"
    return f'<img id="img-{Path(name).stem}" alt="{html.escape(alt)}" src="{source}">'


def _section(ident: str, heading: str, *body: str) -> str:
    inner = "\n".join(body)
    return f'<section id="{ident}">\n<h2>{html.escape(heading)}</h2>\n{inner}\n</section>'


def _p(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def _shape(shape) -> str:
    return " x ".join(map(str, shape))


def _numbers(values) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def render_pngs(e: Explanation, maps: int) -> dict[str, bytes]:
    """File name -> PNG bytes, in the page's order."""
    draw = series_pictures if e.is_series else pictures
    pngs = {"input.png": draw.input_png(e), "filters.png": draw.filters_png(e)}
    for stage in e.stages:
        pngs[f"stage-{stage.name}.png"] = draw.stage_png(stage, maps)
    pngs["scores.png"] = pictures.scores_png(e)
    pngs["attribution.png"] = draw.maps_png(e, e.maps, f"{e.method} at {e.layer}")
    pngs["pixels.png"] = draw.maps_png(e, e.pixel_maps, "integrated gradients")
    return pngs


def _input_section(e: Explanation, pngs: dict[str, bytes]) -> str:
    lo, hi = float(e.image.min()), float(e.image.max())
    if e.is_series:
        how = (
            f", minus the training set's channel means ({_numbers(e.mean)}), divided by their "
            f"std ({_numbers(e.std)}); shown before that"
            if e.mean is not None
            else ""
        )
        text = (
            f"The network receives {_shape(e.image.shape)} values from {lo:.2f} to {hi:.2f}: "
            f"the series as its data set prepares it (each channel z-normalised for a UCR set, "
            f"the stored values for a UEA one; padded or cut to the training length), "
            f"{e.image.shape[-1]} steps{how}."
        )
        return _section("input", "Input", _p(text), _img(pngs, "input.png", "the input series"))
    if e.mean is not None:
        how = (
            f"pixels scaled to [0, 1], minus the training set's mean ({_numbers(e.mean)}), "
            f"divided by its std ({_numbers(e.std)})"
        )
    else:
        how = "pixels scaled to [0, 1], not normalized"
    return _section(
        "input",
        "Input",
        _p(
            f"The network receives {_shape(e.image.shape)} values from {lo:.2f} to {hi:.2f}: "
            f"the image resized to {e.image.shape[-1]} px, {how}. Shown as pixels."
        ),
        _img(pngs, "input.png", "the input image"),
    )


def _filters_section(e: Explanation, pngs: dict[str, bytes]) -> str:
    out, inp, *taps = e.filters.shape
    shown = f"the first {pictures.MAX_FILTERS} of " if out > pictures.MAX_FILTERS else ""
    mean = "" if inp == 1 else "mean over the input channels; "
    if e.is_series:
        size, how = f"{inp} x {taps[0]} taps", f"one column each, {mean}blue negative, red positive"
    else:
        size = f"{inp} x {taps[0]} x {taps[1]}"
        how = (
            "each filter stretched to [0, 1] as colours"
            if inp == 3
            else f"{mean}blue negative, red positive"
        )
    return _section(
        "filters",
        "First convolution's filters",
        _p(f"{e.filters_layer}: {shown}{out} filters of {size} ({how})."),
        _img(pngs, "filters.png", "filters of the first convolution"),
    )


def _stages_section(e: Explanation, pngs: dict[str, bytes], maps: int) -> str:
    parts = []
    for stage in e.stages:
        c = stage.shape[0]
        parts.append(
            f'<article id="stage-{html.escape(stage.name)}">\n'
            f'<div class="arrow">&darr;</div>\n'
            f"<h3>{html.escape(stage.name)} &rarr; {_shape(stage.shape)}</h3>\n"
            + _p(
                f"the {min(maps, c)} most active of {c} channels (largest mean activation "
                f"first), one colour scale",
                "note",
            )
            + "\n"
            + _img(pngs, f"stage-{stage.name}.png", f"feature maps of {stage.name}")
            + "\n</article>"
        )
    return _section("stages", "Stages", *parts)


def _scores_section(e: Explanation, pngs: dict[str, bytes]) -> str:
    k = len(pictures.shown_classes(e))
    which = "" if k == len(e.classes) else f" (the {k} most probable of {len(e.classes)})"
    return _section(
        "scores",
        "Class scores",
        _p(
            f"Probabilities{which}; the prediction in blue, the true class in bold."
            if e.label is not None
            else f"Probabilities{which}; the prediction in blue."
        ),
        _img(pngs, "scores.png", "class probabilities"),
    )


_METHOD_TEXT = {
    "hirescam": "HiResCAM (the layer's output times the class score's gradient, position by "
    "position, summed over channels, negatives set to 0)",
    "gradcam": "Grad-CAM (the layer's channels weighted by the class score's mean gradient, "
    "summed, negatives set to 0)",
}


def _zero_notes(e: Explanation, maps: dict, where: str) -> list[str]:
    return [
        _p(f"The map for {e.classes[c]} is zero everywhere: no {where} raises its score.", "note")
        for c, m in maps.items()
        if float(m.max()) == 0.0
    ]


def _attribution_section(e: Explanation, pngs: dict[str, bytes]) -> str:
    size = _shape(e.image.shape[1:]) + (" steps" if e.is_series else "")
    start, unit = ("a zero series", "time step") if e.is_series else ("a black image", "pixel")
    return _section(
        "attribution",
        "Attribution",
        _p(
            f"{_METHOD_TEXT[e.method]} at {e.layer} ({_shape(e.layer_shape)}, upsampled to "
            f"{size}): where that layer's features raise the class's score."
        ),
        *_zero_notes(e, e.maps, f"position of {e.layer}"),
        _img(pngs, "attribution.png", f"{e.method} maps over the input"),
        _p(
            f"Integrated Gradients ({STEPS} steps from {start}): which {unit}s raise the "
            f"class's score (the positive part; with the negative one, the {unit}s' values add "
            f"up to the score's change from {start})."
        ),
        *_zero_notes(e, e.pixel_maps, unit),
        _img(pngs, "pixels.png", "integrated gradients over the input"),
        _p(
            "Each figure has one colour scale for its maps (up to the 99th percentile of their "
            "values), so a weaker map looks weaker.",
            "note",
        ),
    )


def render_body(e: Explanation, pngs: dict[str, bytes], maps: int) -> str:
    """The page's content below its title: the verdict and the sections."""
    p = float(e.probs[e.predicted])
    verdict = f"Predicted {e.classes[e.predicted]} (p {p:.3f})"
    if e.label is not None:
        verdict += f"; true class {e.classes[e.label]}: " + (
            "right." if e.label == e.predicted else "wrong."
        )
    sections = [
        _input_section(e, pngs),
        _filters_section(e, pngs),
        _stages_section(e, pngs, maps),
        _scores_section(e, pngs),
        _attribution_section(e, pngs),
    ]
    return "\n".join([_p(verdict), *sections])


def title(e: Explanation) -> str:
    return f"{e.model_name} on {e.source}" if e.source else e.model_name


def render_page(e: Explanation, pngs: dict[str, bytes], maps: int) -> str:
    return _PAGE.substitute(title=html.escape(title(e)), body=render_body(e, pngs, maps))


def notebook_html(e: Explanation, maps: int = 8) -> str:
    """The page's pictures and text for a notebook cell: no style sheet (it would restyle the
    notebook), the title as a heading."""
    return f"<h3>{html.escape(title(e))}</h3>\n{render_body(e, render_pngs(e, maps), maps)}"


def write_explanation(e: Explanation, out: str | os.PathLike, *, maps: int = 8) -> Path:
    """Write the page and its PNGs to the folder ``out`` and return the page's path.

    Everything is written to a temporary folder beside ``out`` first and moved into place at
    the end, so a failure leaves ``out`` as it was. An existing ``out`` is replaced only if it
    is empty or an earlier explanation (it holds ``explain.html``).
    """
    out = Path(out)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / PAGE).exists())):
        raise ConvzooError(f"{out} exists and is not an explanation folder; choose another --out")
    pngs = render_pngs(e, maps)
    files = {**pngs, PAGE: render_page(e, pngs, maps).encode()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, data in files.items():
            atomic_write(tmp / name, lambda f, data=data: f.write(data))
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return out / PAGE
