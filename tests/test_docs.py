"""The Python examples of README.md and docs/*.md run, as a reader would run them.

The ```python blocks of one page run in order in one namespace (a page reads like a notebook),
in a temporary directory. Only their cost is cut: every data set they load is cut to its first
images (``SMALL``), so an example that trains for minutes on the whole set trains for seconds
here, through the same code. A page that needs a data set which is not on this machine is
skipped, as are the ONNX examples where onnxruntime is not installed.
"""

import re
from pathlib import Path

import pytest
import torch

import convzoo
import convzoo.data
import convzoo.data.sources
from convzoo.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: images kept of each split a doc example loads
SMALL = {"train": 256, "test": 128}
#: modules an example may need that convzoo only has as optional extras
OPTIONAL = {"onnxruntime", "onnxscript", "onnx"}


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)


def small_loader(load):
    """``load_dataset`` cut to the first images of each split, never downloading."""

    def load_small(name="fashion-mnist", split="train", root=None, download=True, **kw):
        try:
            data = load(name, split, root, False, **kw)
        except DataError as e:
            pytest.skip(f"the example needs {name}, which is not here: {e}")
        return data.subset(torch.arange(min(len(data), SMALL[split])))

    return load_small


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_python_examples_run(page, tmp_path, monkeypatch):
    small = small_loader(convzoo.data.sources.load_dataset)
    for module in (convzoo, convzoo.data, convzoo.data.sources):
        monkeypatch.setattr(module, "load_dataset", small)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    for i, code in enumerate(python_blocks(page)):
        try:
            exec(compile(code, f"{page.name} block {i + 1}", "exec"), namespace)
        except ModuleNotFoundError as e:
            if e.name not in OPTIONAL:
                raise
            pytest.skip(f"{page.name} block {i + 1} needs {e.name} (pip install 'convzoo[onnx]')")
