"""Where the command line prints: consoles that fit a terminal and never fold a table in a pipe.

Shared by every command (run, listings, leaderboard, compare, check), so a CI log reads the same
whichever command wrote it.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from xlingbench.core.task import short_revision

if TYPE_CHECKING:
    from xlingbench.core.task import Outcome

#: the width of a console that is not a terminal: wider than any table row, so nothing wraps
PIPE_WIDTH = 100_000


def console(stderr: bool = False) -> Console:
    """A console on stdout or stderr, made at print time so it sees the stream in use then.

    On a terminal it takes the terminal's width; elsewhere it is :data:`PIPE_WIDTH` wide, because a
    table folded to 80 columns cuts ids and revisions in two and ``grep`` no longer finds them.
    """
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)


def done_line(outcome: "Outcome") -> Text:
    """One line per finished task, for watching a run and for grep: model, revision[@step], task,
    headline=value, seconds and where each sink put it (``mlflow=<run id>``)."""
    value = f"{outcome.task.main_score}={outcome.headline:.4f}"
    seconds = f"{outcome.result.timings.get('total', 0):.1f}s"
    where = " ".join(f"{sink}={ref}" for sink, ref in outcome.refs.items())
    fields = [outcome.model.name, revision_text(outcome), outcome.task.name, value, seconds, where]
    return Text.assemble(("done", "green"), " ", " ".join(f for f in fields if f))


def revision_text(outcome: "Outcome") -> str:
    """The revision as :func:`~xlingbench.core.task.short_revision` writes it, with ``@step`` for a
    training checkpoint (the form --revision takes)."""
    step = outcome.model.step
    return short_revision(outcome.model.revision) + ("" if step is None else f"@{step}")
