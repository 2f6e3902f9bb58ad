"""Test-session settings: never touch the network, never write outside tmp directories."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Must be set before huggingface_hub / transformers are imported: they read these at import time.
_HUB = Path(tempfile.mkdtemp(prefix="xlingbench-hub-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = str(_HUB)
os.environ["HF_HOME"] = str(_HUB / "home")
os.environ["XLINGBENCH_PROGRESS"] = "0"
# The default cache is the user's ~/.cache/xlingbench: a test that passes no --cache-dir writes here instead.
os.environ["XLINGBENCH_CACHE"] = str(Path(tempfile.mkdtemp(prefix="xlingbench-cache-")))
os.environ.pop("MLFLOW_TRACKING_URI", None)

#: ../shared beside the checkout; XLINGBENCH_SHARED names another place (a git worktree elsewhere)
SHARED = Path(os.environ.get("XLINGBENCH_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")


@pytest.fixture(scope="session")
def hub_cache() -> Path:
    """The offline Hub cache tests publish tiny models into."""
    return _HUB


@pytest.fixture()
def shared_data() -> Path:
    """../shared/data, or skip when it is absent (a user's checkout has no ../shared)."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip("../shared/data is absent")
    return data


@pytest.fixture()
def tracking_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
