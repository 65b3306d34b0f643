"""Bundled files (example stacks, data sets, icons), installed or in the source tree.

In a wheel the top-level ``resources/`` folder is the package ``cnnviz.resources``;
run from a source checkout (``PYTHONPATH=.``) it is found beside the package.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def root() -> Path:
    try:
        return Path(str(resources.files("cnnviz.resources")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "resources"


def path(*parts: str) -> Path:
    """A bundled file, e.g. ``path("examples", "lenet5.cnnviz")``."""
    return root().joinpath(*parts)


def examples() -> list[Path]:
    """The example stacks, sorted by file name."""
    return sorted(path("examples").glob("*.cnnviz"))
