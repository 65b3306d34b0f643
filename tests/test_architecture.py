"""The shape of the code: the layers contracts, no import cycle, no private name across packages.

These are the only tests of how modules import each other (``pyproject.toml``'s
import-linter contracts say which package may import which); the behaviour that
depends on it (``cnnviz summary`` answering without torch, the window starting
without torch) is tested where it happens.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnnviz"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """(imported module, imported names, line) for every import of a cnnviz module in ``name``, at any depth
    (inside functions too), except those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("cnnviz"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    yield sub, (), node.lineno
                elif target in modules:
                    yield target, (alias.name,), node.lineno


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _, _ in _imports(name, path, modules):
            if target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), ignoring a package's imports of its
    own submodules (an ``__init__`` naming its API is not a cycle)."""
    def edges(m):
        return {t for t in graph[m] if not t.startswith(m + ".") and not m.startswith(t + ".")}

    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_import_linter_contracts_hold():
    pytest.importorskip("importlinter")
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                             "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"p": {"p.x"}, "p.x": {"p"}}) == []


def test_no_private_name_is_imported_across_packages():
    modules = _modules()
    crossings = []
    for name, path in modules.items():
        home = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for target, names, line in _imports(name, path, modules):
            there = target if modules[target].name == "__init__.py" else target.rpartition(".")[0]
            for imported in names:
                if imported.startswith("_") and not imported.startswith("__") and there != home:
                    crossings.append(f"{name}:{line} imports {target}.{imported}")
    assert crossings == []


def test_summary_command_imports_neither_torch_nor_qt():
    code = textwrap.dedent("""
        import io, sys
        from cnnviz import cli
        rc = cli.main(["summary", "resources/examples/lenet5.cnnviz", "--json"], out=io.StringIO())
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "PySide6", "pyqtgraph", "numpy"))
        print(rc, heavy)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0 []"


def test_every_core_and_cli_module_imports_without_qt():
    """The engine runs on a GPU machine with torch and no Qt: every module of the core and the command line
    imports there (the contracts say no import names Qt; this imports them all for real)."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import cnnviz.core, cnnviz.cli
        for package in (cnnviz.core, cnnviz.cli):
            for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
                importlib.import_module(info.name)
        qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6", "superqt"))
        print(qt)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
