"""The run command's allocator policy: a freed large block leaves the process's resident memory."""
from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from xlingbench.cli import allocator
from xlingbench.cli.main import app

# Each round allocates, fills and frees a 24 MiB and an 8 MiB block. glibc's own policy maps the
# first 24 MiB block, raises its threshold when it is freed, and from then on serves both from a
# heap that keeps them resident (32 MiB over three rounds on glibc 2.36); with the policy, nothing stays.
SCRIPT = """
import sys, numpy as np
from xlingbench.cli.allocator import return_large_blocks
def rss():
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * 4096 >> 20
if sys.argv[1] == 'policy' and not return_large_blocks():
    print('unsupported'); sys.exit()
before = rss()
for _ in range(3):
    a = np.ones(3 << 20); b = np.ones(1 << 20)
    del a, b
print(rss() - before)
"""


def _resident_after_frees(policy: str) -> str:
    return subprocess.run([sys.executable, "-c", SCRIPT, policy], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the policy is glibc's")
def test_freed_large_blocks_leave_resident_memory_under_the_policy() -> None:
    kept = _resident_after_frees("policy")
    if kept == "unsupported":
        pytest.skip("this C library has no mallopt")
    assert int(kept) <= 1
    assert int(_resident_after_frees("none")) >= 8  # the control: glibc's own policy keeps them


def test_the_run_command_sets_the_policy(monkeypatch, tracking_uri) -> None:
    calls = []
    monkeypatch.setattr(allocator, "return_large_blocks", lambda: calls.append(1) or True)
    result = CliRunner().invoke(app, ["run", "-r", "main", "--tracking-uri", tracking_uri])  # refused after the policy is set
    assert result.exit_code == 2 and calls == [1]
