"""README.md and docs/*.md stay product documentation whose links, commands and examples work.

- No dates, machine loads or issue numbers in README.md, docs/*.md or src/ (those belong in
  benchmarks/RESULTS.md and CHANGELOG.md).
- Every relative link and image points at a file that exists.
- Every ``convzoo ...`` command line of a bash/console block parses with the CLI's own parser.
- The ```python blocks of one page run in order in one namespace (a page reads like a notebook),
  in a temporary directory. Only their cost is cut: every data set they load is cut to its first
  images (``SMALL``), so an example that trains for minutes on the whole set trains for seconds
  here, through the same code. A page that needs a data set which is not on this machine is
  skipped, as are the ONNX examples where onnxruntime is not installed. A block right under
  ``<!-- no-run: reason -->`` is not run.
"""

import re
import shlex
from pathlib import Path

import pytest
import torch

import convzoo
import convzoo.data
import convzoo.data.sources
from convzoo.cli import build_parser
from convzoo.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: images kept of each split a doc example loads
SMALL = {"train": 256, "test": 128}
#: modules an example may need that convzoo only has as optional extras
OPTIONAL = {"onnxruntime", "onnxscript", "onnx"}


#: what only dated records may say: an issue number, a date, a clock zone, a machine's load
FORBIDDEN = re.compile(
    r"issue #?[0-9]|20[0-9]{2}-[0-9]{2}-[0-9]{2}|\bUTC\b|\bload (average )?[0-9]"
    r"|we measured on|on the project's machine|GPU[- ]minutes",
    re.I,
)


def python_blocks(page: Path) -> list[str]:
    text = page.read_text()
    return [
        m.group(2)
        for m in re.finditer(r"^(<!-- no-run:.*?-->\n)?```python\n(.*?)^```", text, re.S | re.M)
        if not m.group(1)
    ]


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def test_no_dates_loads_or_issue_numbers():
    files = [*PAGES, *sorted((ROOT / "src").rglob("*.py"))]
    hits = [
        f"{page_id(f)}:{n}: {line.strip()}"
        for f in files
        for n, line in enumerate(f.read_text().splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert not hits, "keep these in benchmarks/RESULTS.md or CHANGELOG.md:\n" + "\n".join(hits)


def links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    found = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'(?:href|src)="([^"]+)"', text)
    return [u.split("#")[0] for u in found if not re.match(r"[a-z]+:|#", u)]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_exist(page):
    missing = [u for u in links(page) if not (page.parent / u).exists()]
    assert not missing, f"{page_id(page)} links to files that do not exist: {missing}"


def command_lines(page: Path) -> list[str]:
    """The ``convzoo`` command lines of a page's bash/console blocks, continuations joined."""
    lines = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", page.read_text(), re.S | re.M):
        if lang not in {"bash", "console", "sh", "shell"}:
            continue
        body = body.replace("\\\n", " ")
        for line in body.splitlines():
            if lang == "console" and not line.startswith("$ "):
                continue  # output, not a command
            m = re.search(r"(?:^|\$ |-m |bin/)convzoo\b(.*)", line)
            if m:
                lines.append(m.group(1))
    return lines


COMMANDS = [(p, c) for p in PAGES for c in command_lines(p)]


def test_docs_show_commands():
    # the extraction itself could silently find nothing
    assert len(COMMANDS) > 30


@pytest.mark.parametrize(
    "page,line", COMMANDS, ids=[f"{page_id(p)}:{c.strip()[:40]}" for p, c in COMMANDS]
)
def test_command_lines_parse(page, line):
    argv = shlex.split(line, comments=True)
    argv = argv[: next((i for i, a in enumerate(argv) if a in {"|", ";", "&&"}), None)]
    argv = [a for a in argv if a != "..."]  # "..." elides flags shown elsewhere
    if argv[:1] == ["bench"]:  # bench hands its arguments to the benchmark script
        argv = argv[:1]
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"{page_id(page)}: `convzoo {line.strip()}` does not parse (exit {e.code})")


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
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=page_id)
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
