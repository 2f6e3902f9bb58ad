"""What every xlingbench command does with a problem: the app-wide error policy.

Every user-fixable problem arrives as a :class:`xlingbench.core.errors.UserError` and leaves as one
line on stderr with exit status 2, never a traceback; a crash is one line, a log file with its
traceback, and exit 3; Ctrl-C or SIGTERM says what was logged and how to resume (exit 130);
results a store did not take end the command with one line saying where they wait (exit 4).
Why apart from the commands: each command (``cli/main.py``, ``cli/board.py``) only parses, calls
and prints; this policy is the same for all of them.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import NoReturn

import typer
from typer.core import TyperGroup

try:  # typer 0.2x vendors click: its exceptions are not the click package's
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # an older typer uses click itself
    from click.exceptions import ClickException, UsageError

from xlingbench.cli.output import console
from xlingbench.core.errors import UserError
from xlingbench.sinks.outbox import pending

#: exit statuses (README): 0 ok, 1 regression found (compare/check), 2 user error, 3 internal error,
#: 4 results kept in the outbox because the tracking store stopped taking them, 130 interrupted
EXIT_USER_ERROR, EXIT_INTERNAL_ERROR, EXIT_RESULTS_KEPT, EXIT_INTERRUPTED = 2, 3, 4, 130
#: the running command's --cache-dir, so that its crash log goes where its other logs go
CRASH_CACHE: dict[str, Path] = {}


class AppGroup(TyperGroup):
    """Turns a UserError into one line and exit 2, and a crash into one line, a log file with its
    traceback, and exit 3, so a CI job can tell a broken tool from a worse model (exit 1).

    Lose nothing, and say so: Ctrl-C or SIGTERM ends with one line saying what was logged and how
    to resume (exit 130); results the tracking store did not take end the command with one line
    saying where they wait (exit 4)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        """The group's own options (``xlingbench --verison``): one line too; no arguments still shows the help."""
        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise
            _usage_error(exc)

    def invoke(self, ctx: typer.Context) -> object:
        from xlingbench.sinks.delivery import DELIVERY

        DELIVERY.reset()
        CRASH_CACHE.clear()
        previous = _interrupt_on_sigterm()
        try:
            result = super().invoke(ctx)
        except UserError as exc:
            _user_error(exc)
        except UsageError as exc:  # a command's unknown option, a value of the wrong type, an unknown command
            _usage_error(exc)
        except KeyboardInterrupt:
            say(f"interrupted: {DELIVERY.logged} results were logged; rerun the same command to resume from the cache"
                 + _kept_text())
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence: keep the traceback, say where
            if _refused_by_mlflow(exc):
                _user_error(UserError(f"MLflow refused a value given on the command line: {str(exc).rstrip('.')}.",
                                      "Check --experiment (not empty) and the other names given to MLflow."))
            log = crash_log()
            say(f"internal error: {type(exc).__name__}: {exc}. The traceback is in {log}; please report it with that file.")
            raise typer.Exit(EXIT_INTERNAL_ERROR) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if DELIVERY.kept:
            say(f"error: the tracking store stopped taking results{_kept_text()}")
            raise typer.Exit(EXIT_RESULTS_KEPT)
        return result


def say(line: str) -> None:
    """One line on stderr, printed as it is (no markup, no wrapping)."""
    console(stderr=True).print(line, markup=False, highlight=False, soft_wrap=True)


def _kept_text() -> str:
    """``; N results are kept in FOLDER ...`` for the outboxes this command left results in, else nothing."""
    from xlingbench.sinks.delivery import DELIVERY

    parts = [f"; {len(pending(folder))} results are kept in {folder} and the next run to {uri} sends them (the store "
             f"answered: {error})" for folder, (uri, error) in DELIVERY.kept.items()]
    return "".join(parts)


def _interrupt_on_sigterm() -> object:
    """Make SIGTERM (a CI job cancelled, ``kill``) end a command as Ctrl-C does; returns the handler it
    replaced, or None where signals cannot be handled (not the main thread)."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, interrupt)


def _user_error(exc: UserError) -> NoReturn:
    """Print ``exc`` as its one line on stderr and exit 2."""
    say(exc.one_line())
    raise typer.Exit(EXIT_USER_ERROR) from None


def _usage_error(exc: UsageError) -> NoReturn:
    """Click's usage error (typer would draw it in a box under the usage) as one line and exit 2."""
    command = exc.ctx.command_path if exc.ctx else "xlingbench"
    _user_error(UserError(exc.format_message(), f"See `{command} --help`."))


def _refused_by_mlflow(exc: Exception) -> bool:
    """Whether MLflow refused a value before logging anything (error code INVALID_PARAMETER_VALUE,
    e.g. an empty experiment name): the user's input, not a crash. mlflow is not imported here."""
    return type(exc).__name__ == "MlflowException" and getattr(exc, "error_code", "") == "INVALID_PARAMETER_VALUE"


def crash_log(text: str = "") -> Path:
    """Write ``text`` (default: the current exception's traceback) to a new file under the cache's logs/ (else the temp dir)."""
    import tempfile
    import time
    import traceback

    from xlingbench.inputs.cache import default_cache_dir

    text = text or traceback.format_exc()
    for folder in ((CRASH_CACHE.get("dir") or default_cache_dir()) / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("(not written)")
