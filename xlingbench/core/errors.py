"""The one exception type a user should ever see from xlingbench.

Every problem the user can fix (a misspelt model, a bad dictionary file, a missing extra)
is raised as a :class:`UserError` carrying *what* went wrong and *how to fix it*. The CLI
prints it as one line and exits non-zero; it never shows a traceback for these.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A problem with the user's input or environment, with the fix spelled out."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} {fix}".strip())

    def one_line(self) -> str:
        """The message as the CLI prints it."""
        problem = self.problem if self.problem.endswith((".", "?", "!", ")")) or not self.fix else f"{self.problem}."
        return f"error: {problem}" + (f" Fix: {self.fix}" if self.fix else "")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing: a typo names its fix."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""
