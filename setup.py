"""Package discovery, so that a new package under cnnviz/ cannot be left out of the wheel.

Everything else is declared in pyproject.toml. The resources live in the
top-level ``resources/`` folder and are mapped in as ``cnnviz.resources``
(``[tool.setuptools.package-dir]``), which discovery under ``cnnviz/`` cannot
find by itself.
"""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["cnnviz", "cnnviz.*"]) + ["cnnviz.resources"])
