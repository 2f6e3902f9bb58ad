"""The planted examples in the docstrings of the compute modules of tasks 1-3 and K-means run and hold."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["kmeans", "logreg", "neighbours", "rows", "separability", "surface"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(f"xlingbench.compute.{name}")
    failed, attempted = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failed == 0
