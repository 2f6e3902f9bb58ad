"""Test-session settings: never touch the network, never write outside tmp directories."""
from __future__ import annotations

import ctypes
import os
import shutil
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
# One BLAS/OpenMP thread per test process unless a test asks for more (torch.set_num_threads):
# on a shared 2-core machine two threads wait at each op's barrier for a descheduled partner
# (a K-means test took 208.6 s on two threads, 29.8 s on one). Set before torch or numpy load
# their thread pools; a value the caller exported wins.
for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

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


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty finished MLflow store, built once per test process: MLflow builds a schema in some
    sixty migrations, each a synced commit, 6-8 s of wall time per new store on a shared disk
    (1-2 s of CPU), and a hundred tests each wanted a fresh one."""
    from xlingbench.sinks.sqlite_store import prepare_store

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    prepare_store(f"sqlite:///{path}")
    return path


@pytest.fixture()
def tracking_uri(tmp_path: Path, store_template: Path) -> str:
    """A fresh SQLite MLflow store for one test: a copy of the template, what a first run would
    have made (creating a store is tested on its own paths, in tests/test_sqlite_store.py)."""
    shutil.copyfile(store_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture()
def unprivileged() -> dict:
    """``subprocess.run`` arguments that make a child honour mode bits even as root (CI runs as root).

    As root the child drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its bounding set before
    exec, so it starts without them: a read-only folder is read-only to it. Still root, it can run
    an interpreter under a private home (another user could not). Not root: nothing to drop.
    """
    if os.geteuid() != 0:
        return {}
    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")

    return {"preexec_fn": drop}


#: The test files that take minutes, heaviest first. xdist hands whole files to its two processes in
#: collection order (``--no-loadscope-reorder`` in pyproject.toml; its default, most tests first, put
#: these few-test files last, where one file of minutes could leave the other process idle). Started
#: first, the longest files go one to each process and the many short files fill in behind them, so
#: both processes end close together (longest first: a simulation of xdist's hand-out on the measured
#: durations gave 3,559 s and 3,559 s against 3,505 s and 3,612 s in the default order).
HEAVY_FIRST = (  # by their share of the last full run's test time (durations, 2 processes)
    "test_ci_recipe.py",
    "test_interruptions.py",
    "test_real_decoders.py",
    "test_integration.py",
    "test_grid.py",
    "test_cli_output.py",
    "test_extending.py",
    "test_training_callback.py",
    "test_separability_integration.py",
    "test_sqlite_store.py",
    "test_browser.py",
    "test_cli.py",
    "test_ray_worker_kill.py",
    "test_store_safety.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files of HEAVY_FIRST first, in that order; the rest keep their order (a stable sort)."""
    rank = {name: position for position, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
