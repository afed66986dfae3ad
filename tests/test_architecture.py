"""The package's layers (docs/architecture.md): no module imports from a layer above its own,
and models and data know nothing of each other. Lazy imports inside functions count too."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "convzoo"

#: lowest first; a module may import from its own layer or below
LAYERS = [
    {"errors", "io", "runtime", "viz", "display"},
    {"models", "data", "summary"},
    {"parallel"},
    {"train"},
    {"inference", "trained"},
    {"finetuning", "explain", "export", "reproduce", "analysis"},
    {"cli", "__init__", "__main__"},
]
#: pairs of same-layer packages that must not import each other
APART = {("models", "data"), ("data", "models")}


def unit(module: str) -> str:
    """``convzoo.train.run`` -> ``train``; ``convzoo`` (or a name it defines) -> ``__init__``."""
    parts = module.split(".")
    if len(parts) > 1 and ((SRC / parts[1]).is_dir() or (SRC / f"{parts[1]}.py").is_file()):
        return parts[1]
    return "__init__"


def layer(name: str) -> int:
    for i, names in enumerate(LAYERS):
        if name in names:
            return i
    raise AssertionError(f"convzoo.{name} is in no layer: add it to LAYERS and the docs")


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, int]]:
    """Every convzoo module ``path`` imports (at any depth of the file), with its line."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            found += [(n, node.lineno) for n in names if n.startswith("convzoo")]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("convzoo")]
    return found


FILES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_reaches_up_a_layer(path):
    me = unit(module_name(path))
    for target, line in imports(path):
        other = unit(target)
        if other == me:
            continue
        where = f"{path.relative_to(SRC)}:{line} imports {target}"
        assert layer(other) <= layer(me), f"{where}: {other} is above {me}"
        assert (me, other) not in APART, f"{where}: {me} must know nothing of {other}"


def test_every_package_is_placed():
    for path in FILES:
        layer(unit(module_name(path)))
