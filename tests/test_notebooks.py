"""Notebooks run in a real Jupyter kernel (nbclient + ipykernel): the tutorial,
docs/tutorial.ipynb, from top to bottom; and the live curves of ``fit``, asserted on the display
messages the kernel sends.

``python tests/test_notebooks.py`` executes the tutorial and stores its outputs in
docs/tutorial.ipynb, which is what a code host shows without running it.
"""

import json
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest
import torch

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.ipynb"
FASHION = Path.home() / ".cache" / "convzoo" / "FashionMNIST"
KERNEL = "convzoo-test"


class RecordingClient(nbclient.NotebookClient):
    """Keeps every message the kernel publishes, with the index of its cell."""

    def __init__(self, nb, **kw):
        super().__init__(nb, **kw)
        self.messages: list[tuple[int, str, dict]] = []

    def process_message(self, msg, cell, cell_index):
        self.messages.append((cell_index, msg["msg_type"], msg["content"]))
        return super().process_message(msg, cell, cell_index)


def use_kernel(folder: Path, env: dict) -> None:
    """A kernel spec in ``folder`` that runs this Python on this checkout's ``src``, with the
    test's thread budget, and Jupyter's files kept out of HOME."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    paths = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    kernel_env = {"PYTHONPATH": paths, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec_json = {"argv": argv, "display_name": KERNEL, "language": "python", "env": kernel_env}
    (spec / "kernel.json").write_text(json.dumps(spec_json))
    env.update(
        JUPYTER_PATH=str(folder),
        JUPYTER_RUNTIME_DIR=str(folder / "runtime"),
        IPYTHONDIR=str(folder / "ipython"),
    )


def execute(nb, cwd: Path, timeout: int = 600) -> RecordingClient:
    client = RecordingClient(
        nb, kernel_name=KERNEL, timeout=timeout, resources={"metadata": {"path": str(cwd)}}
    )
    client.record_timing = False
    client.execute()
    return client


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    env: dict = {}
    use_kernel(tmp_path / "jupyter", env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return tmp_path


def outputs(cell, kind: str) -> list:
    return [o for o in cell.outputs if o.output_type == kind]


def mimetypes(cell) -> set[str]:
    return {m for o in cell.outputs for m in o.get("data", {})}


def stream_text(cell, name: str = "stdout") -> str:
    return "".join(o.text for o in outputs(cell, "stream") if o.name == name)


def epoch_lines(text: str) -> list[str]:
    """Per-epoch or per-step lines: what the notebook's progress display holds instead."""
    return [line for line in text.splitlines() if line.lstrip().startswith("epoch ")]


def cell_with(nb, text: str):
    return next(c for c in nb.cells if c.cell_type == "code" and text in c.source)


# -- live curves ------------------------------------------------------------------------------
LIVE = [
    """import convzoo
from convzoo.train.callbacks import LiveCurves
from helpers import toy_pair

data = toy_pair(512, 128)
LiveCurves.MAX_SHARE = float("inf")  # redraw after every epoch, however short
history = convzoo.fit("speednet", data, epochs=3)""",
    """LiveCurves.MAX_SHARE = 0.02  # the default: epochs of 0.1 s are not worth a redraw each
convzoo.fit("speednet", data, epochs=4)""",
    """convzoo.fit("speednet", data, epochs=2, live=False)""",
]


def displays(messages, cell: int, mime: str) -> list[tuple[str, str, dict]]:
    """(message type, display_id, data) of the display messages of ``cell`` carrying ``mime``."""
    return [
        (kind, c.get("transient", {}).get("display_id"), c["data"])
        for i, kind, c in messages
        if i == cell and kind in ("display_data", "update_display_data") and mime in c["data"]
    ]


@pytest.mark.notebook
@pytest.mark.slow
def test_fit_redraws_its_curves_in_place_after_each_epoch_in_a_kernel(kernel):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in LIVE])
    client = execute(nb, kernel, timeout=300)
    figures = displays(client.messages, 0, "image/png")
    # one output shown, then replaced in place once per further epoch
    assert [kind for kind, _, _ in figures] == ["display_data"] + ["update_display_data"] * 2
    assert len({display_id for _, display_id, _ in figures}) == 1 and figures[0][1]
    texts = [data["text/plain"] for _, _, data in figures]
    assert texts == [f"loss and accuracy after epoch {k} of 3" for k in (1, 2, 3)]
    assert all(data["image/png"].startswith("iVBORw0KGgo") for _, _, data in figures)  # PNG
    # the stored notebook keeps one figure: the last
    cell = nb.cells[0]
    shown = [o for o in outputs(cell, "display_data") if "image/png" in o.data]
    assert len(shown) == 1 and shown[0].data["text/plain"].endswith("epoch 3 of 3")
    # one progress display, redrawn in place, holding the epochs' lines; a few stream lines
    bars = displays(client.messages, 0, "text/html")
    assert len({display_id for _, display_id, _ in bars}) == 1
    assert [kind for kind, _, _ in bars].count("display_data") == 1
    last = bars[-1][2]
    assert "width:100%" in last["text/html"] and "epoch 3/3" in last["text/plain"]
    assert [line[:10] for line in last["text/plain"].splitlines()[:3]] == [
        f"epoch {k}/3 " for k in (1, 2, 3)
    ]  # the epochs' lines, in the display rather than the cell's stream
    assert not epoch_lines(stream_text(cell)) and not stream_text(cell, "stderr")
    assert len(stream_text(cell).splitlines()) <= 6  # the run's header and its result
    assert len(cell.outputs) == 4  # header, progress, figure, result
    # short epochs: the first epoch and the last are drawn, not every one
    texts = [data["text/plain"] for _, _, data in displays(client.messages, 1, "image/png")]
    assert texts[0].endswith("epoch 1 of 4") and texts[-1].endswith("epoch 4 of 4")
    assert len(texts) < 4
    assert not displays(client.messages, 2, "image/png")  # live=False
    assert not any(outputs(c, "error") for c in nb.cells)


# -- the tutorial -----------------------------------------------------------------------------
def accuracies(text: str) -> list[float]:
    return [float(a) for a in re.findall(r"^test acc (\d\.\d+)", text, re.M)]


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Fashion-MNIST (convzoo data fetch)")
def test_the_tutorial_runs_in_a_kernel_and_shows_its_pictures(kernel):
    nb = nbformat.read(TUTORIAL, as_version=4)
    execute(nb, kernel)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in outputs(c, "error")]
    assert not [c.source for c in code if stream_text(c, "stderr")]  # no warnings in a cell
    assert not [c.source for c in code if epoch_lines(stream_text(c))]  # in the progress display
    assert all(len(stream_text(c).splitlines()) <= 8 for c in code)  # a few lines at most
    book, modern = (stream_text(cell_with(nb, f"{n} = convzoo.fit")) for n in ("book", "modern"))
    assert len(accuracies(book)) == 1 and 0 <= accuracies(book)[0] <= 1
    assert len(accuracies(modern)) == 1 and 0.5 < accuracies(modern)[0] <= 1
    for source in ("book = convzoo.fit", "modern = convzoo.fit"):  # the live curves and bar
        assert {"image/png", "text/html"} <= mimetypes(cell_with(nb, source))
    for source in ("convzoo.summary(", "\nmodern", "explain(lenet"):  # tables, the explain page
        assert "text/html" in mimetypes(cell_with(nb, source)), source
    for source in ("plot_runs(", "augment_grid(", "convzoo.predict(lenet", "load_onnx("):
        assert "image/png" in mimetypes(cell_with(nb, source)), source
    assert "of 500 right" in stream_text(cell_with(nb, "convzoo.predict(lenet"))
    assert "test accuracy on the 3,000" in stream_text(cell_with(nb, "convzoo.finetune("))
    assert (kernel / "runs" / "lenet-modern" / "best.onnx").is_file()
    from nbconvert import HTMLExporter

    page, _ = HTMLExporter().from_notebook_node(nb)
    assert page.count("data:image/png;base64") >= 10 and "<table" in page


def store_tutorial() -> None:
    """Execute the tutorial in a temporary folder and store its outputs in the repository."""
    nb = nbformat.read(TUTORIAL, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        use_kernel(Path(tmp) / "jupyter", os.environ)
        execute(nb, Path(tmp))
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, TUTORIAL)
    print(f"wrote {TUTORIAL} ({TUTORIAL.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    store_tutorial()
