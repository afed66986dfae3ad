"""The package's layers (docs/architecture.md): no module imports from a layer above its own,
and models and data know nothing of each other. Lazy imports inside functions count too."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "convzoo"

#: lowest first; a module may import from its own layer or below
LAYERS = [
    {"errors", "io", "runtime", "viz", "display", "catalog", "lazy"},
    {"models", "data", "summary"},
    {"parallel"},
    {"train"},
    {"trained"},
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


def _nodes(tree: ast.AST, typing: bool) -> list[ast.AST]:
    """Every node of ``tree``; without ``typing``, none under ``if TYPE_CHECKING:`` (never run)."""
    skip = set()
    if not typing:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                skip |= {id(n) for child in node.body for n in ast.walk(child)}
    return [n for n in ast.walk(tree) if id(n) not in skip]


def imports(path: Path, typing: bool = True) -> list[tuple[str, int]]:
    """Every convzoo module ``path`` imports (at any depth of the file), with its line;
    ``typing=False``: only those that run."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in _nodes(ast.parse(path.read_text()), typing):
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


def module_of(name: str) -> str:
    """The module an imported name lives in: ``convzoo.data.loader.make_loader`` ->
    ``convzoo.data.loader``; a package is its ``__init__``."""
    parts = name.split(".")
    while len(parts) > 1:
        rel = SRC.joinpath(*parts[1:])
        if rel.with_suffix(".py").is_file() or (rel / "__init__.py").is_file():
            break
        parts.pop()
    return ".".join(parts)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph`` (module -> modules it imports): each strongly connected
    group of two or more modules, found by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles():
    # lazy imports inside functions count: they only hide a circle until the function runs
    graph = {
        module_name(p): {module_of(t) for t, _ in imports(p, typing=False)} - {module_name(p)}
        for p in FILES
    }
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
