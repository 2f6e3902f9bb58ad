"""Off a terminal a long phase says it is alive: a plain line at least every interval (issue 18).

A run under CI or ``nohup`` once printed nothing for 55 minutes while CALIGN and COLAP worked.
These tests run a long phase in a child process whose stderr is a file (not a terminal), with
the interval shortened through ``XLINGBENCH_PROGRESS_INTERVAL``, and read the lines back.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xlingbench.core import progress as progress_module

#: a task scope around a phase of three items of STEP seconds each (each item longer than the interval)
PHASE = """
import sys, time
from xlingbench.core.progress import progress, scope
step = float(sys.argv[1])
with scope("tiny-model calign"):
    for _ in progress(range(3), desc="word vectors de", total=3, unit="batch"):
        time.sleep(step)
print("done", flush=True)
"""
LINE = re.compile(r"^progress tiny-model calign: word vectors de (\d)/3 batch, (\d+)s elapsed( \(task \d+s\))?$")
ROOT = Path(__file__).resolve().parents[1]


def run_phase(tmp_path: Path, step: float, **env: str) -> tuple[list[str], str]:
    """Run PHASE with stdout and stderr redirected to files; returns (stderr lines, stdout)."""
    err, out = tmp_path / "stderr.log", tmp_path / "stdout.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("XLINGBENCH_PROGRESS")}
    with err.open("w") as err_file, out.open("w") as out_file:
        subprocess.run([sys.executable, "-c", PHASE, str(step)], stdout=out_file, stderr=err_file, check=True,
                       cwd=ROOT, env={**environ, **env}, timeout=120)
    return [line for line in err.read_text().splitlines() if line.strip()], out.read_text()


def test_a_long_phase_prints_a_line_every_interval_to_a_file(tmp_path: Path) -> None:
    lines, stdout = run_phase(tmp_path, 1.6, XLINGBENCH_PROGRESS_INTERVAL="1")  # 4.8 s of work, a line each second
    assert stdout == "done\n"  # progress never goes to stdout
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed) and 3 <= len(parsed) <= 5, lines
    done = [int(m[1]) for m in parsed]
    elapsed = [int(m[2]) for m in parsed]
    assert done == sorted(done) and done[-1] >= 2  # it moves, and a line comes even within one long item
    assert elapsed == sorted(set(elapsed)) and elapsed[0] <= 2
    assert all(later - earlier <= 2 for earlier, later in zip(elapsed, elapsed[1:]))  # the interval, give or take a loaded machine


def test_a_phase_shorter_than_the_interval_prints_nothing(tmp_path: Path) -> None:
    lines, stdout = run_phase(tmp_path, 0.05, XLINGBENCH_PROGRESS_INTERVAL="30")
    assert lines == [] and stdout == "done\n"


def test_progress_off_prints_nothing(tmp_path: Path) -> None:
    lines, _ = run_phase(tmp_path, 0.5, XLINGBENCH_PROGRESS="0", XLINGBENCH_PROGRESS_INTERVAL="0.1")
    assert lines == []


@pytest.mark.parametrize(("setting", "tty", "expected"), [
    (None, True, "bars"), (None, False, "lines"), ("0", True, "off"), ("1", False, "bars"), ("lines", True, "lines"),
])
def test_bars_on_a_terminal_lines_elsewhere(monkeypatch: pytest.MonkeyPatch, setting: str | None, tty: bool, expected: str) -> None:
    if setting is None:
        monkeypatch.delenv("XLINGBENCH_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("XLINGBENCH_PROGRESS", setting)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    assert progress_module.mode() == expected
    assert progress_module.enabled() is (expected == "bars")


@pytest.mark.parametrize(("value", "seconds"), [(None, 30.0), ("2.5", 2.5), ("0", 30.0), ("-1", 30.0), ("soon", 30.0)])
def test_the_interval_is_thirty_seconds_unless_set(monkeypatch: pytest.MonkeyPatch, value: str | None, seconds: float) -> None:
    if value is None:
        monkeypatch.delenv("XLINGBENCH_PROGRESS_INTERVAL", raising=False)
    else:
        monkeypatch.setenv("XLINGBENCH_PROGRESS_INTERVAL", value)
    assert progress_module.interval() == seconds
