"""One reading of an MLflow tracking URI, for the sink that writes and every command that reads.

Why a module of its own: ``run`` accepted ``sqlite:///m.db?timeout=20`` while ``leaderboard``,
``compare`` and ``check`` refused it (one stripped the prefix by hand). Every command now resolves
a URI here (:func:`resolve_tracking_uri`), reads an SQLite file's path as SQLAlchemy does
(:func:`xlingbench.sinks.sqlite_store.sqlite_path`), checks a server here (:func:`check_server`)
and prints a URI without its password (:func:`public_uri`).
"""
from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from xlingbench.core.errors import UserError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
HEALTH_TIMEOUT_S = 5.0
#: the URI schemes MLflow has a tracking store for (``postgresql+psycopg2`` counts as ``postgresql``)
SCHEMES = ("", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")

def resolve_tracking_uri(uri: str | None) -> str:
    """The explicit URI, else MLFLOW_TRACKING_URI, else the SQLite store in the working directory;
    a URI MLflow has no store for, or an in-memory SQLite store (lost at exit), is a UserError."""
    resolved = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    parts = urllib.parse.urlsplit(resolved)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme not in SCHEMES and len(scheme) > 1:  # one letter: a Windows drive, a path
        raise UserError(f"the tracking URI {public_uri(resolved)} has a scheme MLflow has no store for ({parts.scheme}:).",
                        "Use sqlite:///PATH.db, http(s)://HOST:PORT of a server, or a database URI (postgresql://, mysql://).")
    if scheme == "sqlite" and parts.path in ("", "/", "/:memory:"):
        raise UserError(f"the tracking URI {resolved} is an in-memory SQLite store: every result would be lost at exit.",
                        "Use a file, e.g. sqlite:///mlflow.db (the default).")
    return resolved


def check_writable(uri: str) -> None:
    """A local SQLite store must be writable, and so must its folder (SQLite writes a journal beside
    it): found here at once, in one line, rather than by MLflow after minutes of retries."""
    from xlingbench.sinks.sqlite_store import sqlite_path

    path = sqlite_path(uri)  # the file as SQLAlchemy reads the URI (query parameters and all)
    if path is None:
        return
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
        if path.exists():
            with open(path, "ab"):
                pass
    except OSError as err:
        raise UserError(f"cannot write the MLflow store {path} ({err.strerror}: {err.filename or path.parent}).",
                        "Pass --tracking-uri sqlite:///PATH in a folder you can write to.") from err


def public_uri(tracking_uri: str) -> str:
    """The URI without any ``user:password@`` part, fit to print or publish."""
    parts = urllib.parse.urlsplit(tracking_uri)
    if not parts.password and not parts.username:
        return tracking_uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_server(uri: str) -> None:
    """Fail with one clear line when a tracking server does not answer its /health endpoint.

    MLflow itself retries an unreachable server for minutes before it gives up.
    """
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S) as reply:
            status, body = reply.status, reply.read(64)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise UserError(f"the MLflow tracking server at {public_uri(uri)} did not answer ({err}).",
                        "Start it (README: 'A shared tracking server'), pass the right --tracking-uri, "
                        "or drop --tracking-uri to use the local SQLite store.") from err
    if status == 200 and body.strip() == b"OK":  # what every MLflow server's /health answers
        return
    if status == 200:  # a web page, a proxy's login: something answers, but not MLflow
        raise UserError(f"{public_uri(uri)} answers, but not as an MLflow tracking server (its /health said "
                        f"{body[:40]!r}, not 'OK').", "Pass the address of the MLflow server itself as --tracking-uri.")
    raise UserError(f"the MLflow tracking server at {public_uri(uri)} is not healthy.", "Check the server's log.")
