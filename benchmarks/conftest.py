"""Benchmarks run offline like the tests: reuse the tests' session settings and fixtures."""
from tests.conftest import *  # noqa: F401,F403
