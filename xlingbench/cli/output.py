"""Where the command line prints: consoles that fit a terminal and never fold a table in a pipe.

Shared by every command (run, listings, leaderboard, compare, check), so a CI log reads the same
whichever command wrote it.
"""
from __future__ import annotations

import sys

from rich.console import Console

#: the width of a console that is not a terminal: wider than any table row, so nothing wraps
PIPE_WIDTH = 100_000


def console(stderr: bool = False) -> Console:
    """A console on stdout or stderr, made at print time so it sees the stream in use then.

    On a terminal it takes the terminal's width; elsewhere it is :data:`PIPE_WIDTH` wide, because a
    table folded to 80 columns cuts ids and revisions in two and ``grep`` no longer finds them.
    """
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)
