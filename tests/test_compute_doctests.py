"""The planted examples in the docstrings of the compute modules of tasks 1-3 and K-means (and task 3's token index) run and hold."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [f"xlingbench.compute.{name}" for name in ("kmeans", "logreg", "neighbours", "rows", "separability", "surface")]
MODULES.append("xlingbench.tasks.translation_in_neighbours")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failed == 0
