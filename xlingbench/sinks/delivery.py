"""What the sinks of this process delivered, for the command line's last line.

Why apart from any one sink: a run interrupted with Ctrl-C says how many results were logged,
and a run whose store stopped taking results ends with exit 4 naming where they wait; both must
hold whichever sinks ran (a JSON-only run logs too). The grid's writer counts each outcome a
sink took (:data:`DELIVERY`), and a sink that keeps results it could not send (an outbox)
records where.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Delivery:
    """How many results reached a sink, and which folders keep results a store did not take (and why)."""

    logged: int = 0
    #: folder -> (the store's printable name, the error that made the sink stop sending)
    kept: dict[Path, tuple[str, str]] = field(default_factory=dict)

    def reset(self) -> None:
        """Start a new command's tally."""
        self.logged, self.kept = 0, {}


#: this process's tally (the CLI resets it per command)
DELIVERY = Delivery()
