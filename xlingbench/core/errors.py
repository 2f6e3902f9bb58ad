"""The one exception type a user should ever see from xlingbench.

Every problem the user can fix (a misspelt model, a bad dictionary file, a missing extra)
is raised as a :class:`UserError` carrying *what* went wrong and *how to fix it*. The CLI
prints it as one line and exits non-zero; it never shows a traceback for these.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, with the fix spelled out."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} {fix}".strip())

    def one_line(self) -> str:
        """The message as the CLI prints it."""
        return f"error: {self.problem}" + (f" Fix: {self.fix}" if self.fix else "")
