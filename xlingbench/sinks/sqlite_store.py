"""The local SQLite MLflow store: created atomically, and refused with its fix when unfinished.

Why: MLflow builds its schema in place on the first open of an empty file, in some sixty
migrations that SQLite cannot wrap in one transaction. A run killed in those first seconds, or
two first runs at once, left ``mlflow.db`` half-migrated, and every later run died in a
600-line SQLAlchemy traceback. Here the schema is built in a temporary file beside the store,
under a file lock (``<store>.lock``), and moved into place with one ``os.replace``: the store
is complete or absent, and a process that waited on the lock finds it ready. A store that
exists is checked with a few read-only queries (its header, its schema revision, its tables),
never migrated, so a start stays fast; an unfinished or outdated one is a :class:`UserError`
that names the file and what to do. Other URIs (a server, PostgreSQL) are left to MLflow.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from filelock import FileLock

from xlingbench.core.errors import UserError

SQLITE_HEADER = b"SQLite format 3\x00"
#: how long a read waits for another run's write to the store (MLflow's own sessions wait 20 s)
BUSY_TIMEOUT_S = 20.0
_CREATING = ".creating"


def prepare_store(uri: str) -> None:
    """Make sure the SQLite store of ``uri`` is a finished MLflow store: create it when absent.

    Raises :class:`UserError` for a file that is not one (half-created, another program's, an
    older schema). Does nothing for a URI that is not an SQLite file.
    """
    path = sqlite_path(uri)
    if path is None:
        return
    if not path.exists():
        _create(path)
    _refuse(path, _problem(path))


def remove_if_unused(path: Path) -> bool:
    """Remove a store this run created and logged nothing to (every model failed): a run that
    logged nothing leaves nothing behind, not an empty ``mlflow.db``. True when it was removed."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S) as db:
            runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return False
    if runs:
        return False
    with FileLock(f"{path}.lock"):
        path.unlink(missing_ok=True)
    Path(f"{path}.lock").unlink(missing_ok=True)
    return True


def sqlite_path(uri: str) -> Path | None:
    """The database file of an ``sqlite:///PATH`` URI, as SQLAlchemy (hence MLflow) reads it; else None."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return None if database in (None, "", ":memory:") else Path(database)


def _create(path: Path) -> None:
    """Build the schema in a temporary sibling and publish it with one ``os.replace``, under the lock.

    The lock is an OS lock, dropped when its holder dies (even by SIGKILL); the next holder
    removes the dead one's temporary files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        if path.exists():  # another process created it while this one waited
            return
        for orphan in path.parent.glob(f".{path.name}.*{_CREATING}*"):  # the database and its journal
            orphan.unlink(missing_ok=True)
        building = path.with_name(f".{path.name}.{os.getpid()}{_CREATING}")  # unique: the lock is held
        try:
            _build_schema(building)
            os.replace(building, path)
        finally:
            building.unlink(missing_ok=True)


def _build_schema(path: Path) -> None:
    """MLflow's own initialisation of an empty database (what its store runs on first open), without
    a disk sync per statement (:func:`_unsynced`), then the file synced once, before it is published."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    sqlalchemy.event.listen(engine, "connect", _unsynced)
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
    with path.open("rb+") as built:
        os.fsync(built.fileno())


def _unsynced(connection: sqlite3.Connection, record: object) -> None:
    """A building connection that neither syncs nor keeps a rollback journal on disk.

    Why: the sixty migrations are some 300 DDL transactions, each synced to disk twice (journal and
    database): 11 s of a first run's start on a busy disk for 2.6 s of CPU. The file is a private
    temporary one; a build that dies leaves a file the next creator removes, never the store.
    """
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("PRAGMA journal_mode = MEMORY")


def _problem(path: Path) -> tuple[str, str] | None:
    """What makes ``path`` not a finished store of the installed MLflow, and the fix that fits it."""
    elsewhere = "or pass another --tracking-uri."
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if not header:
        return "is empty (0 bytes)", f"Delete it (a first run was interrupted while creating it), then rerun; {elsewhere}"
    if header != SQLITE_HEADER:
        return "is not an SQLite database", f"Move it away, {elsewhere}"
    try:
        tables, revision, runs = _read_schema(path)
    except sqlite3.DatabaseError as err:
        return f"cannot be read as an SQLite database ({err})", f"Move it away, {elsewhere}"
    head, known = _revisions()
    missing = sorted(_expected_tables() - tables)
    if revision == head and not missing:
        return None
    if revision is not None and revision not in known:
        return (f"has schema revision {revision}, unknown to the installed MLflow",
                f"Upgrade mlflow (a newer one wrote this store), {elsewhere}")
    state = "no schema revision" if revision is None else f"schema revision {revision}, not {head}"
    lacking = f" and lacks {len(missing)} of its tables ({', '.join(missing[:3])}...)" if missing else ""
    what = f"is not a finished MLflow store ({state}{lacking}; it holds {runs} runs)"
    if runs:
        return what, f"Back it up, then run `mlflow db upgrade sqlite:///{path.resolve()}`; {elsewhere}"
    return what, f"It holds no runs (a first run was interrupted while creating it): delete it, then rerun; {elsewhere}"


def _read_schema(path: Path) -> tuple[set[str], str | None, int]:
    """The table names, the alembic revision and the number of runs, read without writing anything."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = None
        if "alembic_version" in tables:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
        runs = connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
    finally:
        connection.close()
    return tables, revision, runs


def _revisions() -> tuple[str, set[str]]:
    """The installed MLflow's head schema revision (what its store insists on) and every revision it knows."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision

    scripts = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
    return _get_latest_schema_revision(), {script.revision for script in scripts.walk_revisions()}


def _expected_tables() -> set[str]:
    """The tables MLflow's models define (importing its db utilities registers them all)."""
    import mlflow.store.db.utils  # noqa: F401
    from mlflow.store.db.base_sql_model import Base

    return set(Base.metadata.tables)


def _refuse(path: Path, problem: tuple[str, str] | None) -> None:
    """Raise the one-line error for an unfinished, foreign or outdated store."""
    if problem is not None:
        what, fix = problem
        raise UserError(f"The MLflow store {path} {what}.", fix)
