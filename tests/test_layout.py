"""The layout the code is kept in: the facade's modules import each other in one
direction only, and no source file grows past what a reader takes in at once."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "winbits"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_nodes(node: ast.AST) -> list[ast.ImportFrom]:
    """Every `from … import` in node, at module level or deferred into a function, but
    not those under `if TYPE_CHECKING:` (types only: never run)."""
    if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
        return [n for child in node.orelse for n in _import_nodes(child)]
    found = [node] if isinstance(node, ast.ImportFrom) else []
    return found + [n for child in ast.iter_child_nodes(node) for n in _import_nodes(child)]


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports when it runs."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        base = package
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        source = f"{base}.{node.module}" if node.module else base
        if node.level == 0:
            source = node.module or ""
        for alias in node.names:
            target = f"{source}.{alias.name}"
            found.add(target if target in modules else source)
    return {m for m in found if m in modules and m != name}


def test_the_facade_has_no_import_cycle():
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _runtime_imports(path, set(files)) for name, path in files.items()}
    assert graph["winbits._job"] >= {"winbits._wait", "winbits._aio"}  # the walk sees imports
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import cycle: " + " -> ".join((*path, name))
        if name in done:
            return
        for imported in sorted(graph[name]):
            # a submodule importing its own package's __init__ is Python's order, not a cycle
            if not name.startswith(imported + "."):
                visit(imported, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_no_source_file_is_longer_than_a_reader_takes_in():
    sizes = {
        p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for pattern in ("csrc/*.cpp", "csrc/*.h", "src/winbits/**/*.py")
        for p in ROOT.glob(pattern)
    }
    assert sizes["csrc/module.cpp"] <= 400
    assert {f: n for f, n in sizes.items() if n > 700} == {}
