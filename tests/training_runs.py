"""Tiny models trained with transformers' Trainer on real parallel text, for the training tests.

The training code is the example's (``examples/train_and_watch.py``), loaded by path, so the
tests also exercise what the README tells users to run.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import SHARED  # the session's conftest module (pytest imports it as conftest)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_and_watch.py"
#: three scripts (Latin, Cyrillic, Arabic): task 1 has categories to probe
LANGUAGES = ("en", "ru", "ar")
#: task 1 on a vocabulary of a few hundred words (categories of 50 tokens are scored)
TASK1 = ["-t", "script_separability", "--set", "script_separability.min_tokens=50"]


@lru_cache(maxsize=1)
def example() -> ModuleType:
    """``examples/train_and_watch.py`` as a module."""
    spec = importlib.util.spec_from_file_location("train_and_watch", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trained_run(folder: Path, steps: int, save_steps: int) -> Path:
    """``folder`` holding a tiny model trained on PUD (:func:`train_tiny`); the test skips when PUD is absent."""
    pud = SHARED / "data" / "pud"
    if not pud.is_dir():
        pytest.skip("../shared/data/pud is absent")
    train_tiny(folder, pud, steps=steps, save_steps=save_steps)
    return folder


def train_tiny(out: Path, pud: Path, steps: int, save_steps: int, **kwargs: Any) -> Any:
    """A width-16 model of 150 words a language, trained ``steps`` steps, a checkpoint every ``save_steps``."""
    return example().train(out, pud, steps=steps, save_steps=save_steps, width=16, per_language=150,
                           languages=LANGUAGES, **kwargs)
