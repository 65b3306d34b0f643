"""The layering contracts: the core knows nothing of Qt; shapes and summary need no torch."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    pytest.importorskip("importlinter")
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                             "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


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


def test_engine_modules_import_without_qt():
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import cnnviz.core
        for info in pkgutil.iter_modules(cnnviz.core.__path__):
            importlib.import_module("cnnviz.core." + info.name)
        import cnnviz.cli
        qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6", "superqt"))
        print(qt)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
