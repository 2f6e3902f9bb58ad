"""Benchmarks run offline like the tests: reuse the tests' session settings and fixtures."""
import pytest

from tests.conftest import *  # noqa: F401,F403


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """A timed benchmark run (``--benchmark-enable``) runs in this one process, not in the test
    processes the project's ``-n 2`` asks for: pytest-benchmark switches itself off under xdist,
    and a second process on the other core would disturb the timings."""
    if config.getoption("benchmark_enable", False) and config.pluginmanager.hasplugin("xdist"):
        config.option.numprocesses, config.option.dist, config.option.tx = 0, "no", []
