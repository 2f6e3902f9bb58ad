"""The SQLite MLflow store: created whole even by two first runs at once; an unfinished one is
one line, exit 2, with its fix (never MLflow's 600-line traceback), including one that MLflow's
own in-place creation left behind when it was killed."""
from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xlingbench.cli.main import app
from xlingbench.sinks.sqlite_store import prepare_store, sqlite_path

REPO = Path(__file__).resolve().parents[1]


def _head() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def _revision(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def _python(code: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One store created by :func:`prepare_store` in a fresh folder (copied by the tests that need one)."""
    db = tmp_path_factory.mktemp("store") / "sub" / "mlflow.db"
    prepare_store(f"sqlite:///{db}")
    return db


def test_a_fresh_store_is_created_whole_and_opens_in_mlflow(finished: Path) -> None:
    import mlflow

    assert _revision(finished) == _head()
    assert sorted(p.name for p in finished.parent.iterdir()) == ["mlflow.db", "mlflow.db.lock"]  # no temporary left
    client = mlflow.MlflowClient(f"sqlite:///{finished}")
    assert [e.name for e in client.search_experiments()] == ["Default"]
    prepare_store(f"sqlite:///{finished}")  # a finished store passes the check unchanged


def test_two_processes_creating_the_store_at_once_both_succeed(tmp_path: Path) -> None:
    code = """
        from xlingbench.sinks.sqlite_store import prepare_store
        prepare_store("sqlite:///mlflow.db")
        import mlflow
        mlflow.MlflowClient("sqlite:///mlflow.db").create_experiment(__import__("os").getpid().__str__())
    """
    both = [_python(code, tmp_path) for _ in range(2)]
    errors = [p.communicate(timeout=300)[1] for p in both]
    assert [p.returncode for p in both] == [0, 0], errors
    assert _revision(tmp_path / "mlflow.db") == _head()
    import mlflow

    names = {e.name for e in mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()}
    assert names == {"Default", *(str(p.pid) for p in both)}


def test_a_first_run_killed_while_creating_the_store_leaves_none_and_the_next_creates_it(tmp_path: Path) -> None:
    kill_mid_creation = """
        import os, signal
        import mlflow.store.db.utils as utils

        def die(engine):  # the initial tables exist, the migrations never run
            os.kill(os.getpid(), signal.SIGKILL)

        utils._upgrade_db = die
        from xlingbench.sinks.sqlite_store import prepare_store
        prepare_store("sqlite:///mlflow.db")
    """
    killed = _python(kill_mid_creation, tmp_path)
    assert killed.wait(timeout=300) == -signal.SIGKILL, killed.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".mlflow.db.{killed.pid}.creating", "mlflow.db.lock"]
    prepare_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert _revision(tmp_path / "mlflow.db") == _head()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "mlflow.db.lock"]


def _tables_only(db: Path, finished: Path) -> None:
    """The first few tables of a store, no schema revision: a kill during MLflow's create_all."""
    with sqlite3.connect(finished) as source, sqlite3.connect(db) as target:
        for (sql,) in source.execute("SELECT sql FROM sqlite_master WHERE type = 'table' ORDER BY rowid LIMIT 4"):
            target.execute(sql)


def _old_revision(db: Path, finished: Path) -> None:
    """A finished store stamped with an older revision: an old MLflow's store with one run in it."""
    shutil.copy(finished, db)
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '451aebb31d03'")
        connection.execute("INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage) VALUES ('r1', 0, 'active')")


@pytest.mark.parametrize("make,problem,fix", [
    (lambda db, _: db.write_bytes(b""), "is empty (0 bytes)", "Delete it"),
    (lambda db, _: db.write_text("not a database\n"), "is not an SQLite database", "Move it away"),
    (_tables_only, "no schema revision and lacks", "delete"),
    (_old_revision, "schema revision 451aebb31d03, not", "mlflow db upgrade sqlite:///"),
])
def test_an_unfinished_or_old_store_is_one_line_exit_2_with_its_fix(make, problem, fix, finished, tmp_path) -> None:
    db = tmp_path / "mlflow.db"
    make(db, finished)
    before = db.read_bytes()
    result = CliRunner().invoke(app, ["run", "-t", "script_separability", "--tracking-uri", f"sqlite:///{db}"])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert f"The MLflow store {db} " in line and problem in line and "Fix:" in line and fix in line
    assert db.read_bytes() == before  # the check never writes


def test_a_store_whose_creation_by_mlflow_was_killed_is_reported_and_the_fix_works(tmp_path: Path) -> None:
    """MLflow's own in-place creation (what xlingbench did before), killed between two migrations."""
    kill_mid_migration = """
        import os, signal
        from alembic import command
        import mlflow.store.db.utils as utils

        def upgrade_then_die(engine):
            config = utils._get_alembic_config(str(engine.url))
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "89d4b8295536")  # an early revision: the next ones never ran
            os.kill(os.getpid(), signal.SIGKILL)

        utils._upgrade_db = upgrade_then_die
        import mlflow
        mlflow.MlflowClient("sqlite:///mlflow.db").search_experiments()
    """
    killed = _python(kill_mid_migration, tmp_path)
    assert killed.wait(timeout=300) == -signal.SIGKILL, killed.stderr.read()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["run", "-t", "script_separability", "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert "schema revision 89d4b8295536" in line and "holds 0 runs" in line and "delete" in line
    (tmp_path / "mlflow.db").unlink()  # the fix
    prepare_store(uri)
    assert _revision(tmp_path / "mlflow.db") == _head()


@pytest.mark.parametrize("uri,path", [
    ("sqlite:///mlflow.db", Path("mlflow.db")), ("sqlite:////abs/m.db", Path("/abs/m.db")),
    ("sqlite:///m.db?timeout=30", Path("m.db")), ("sqlite://", None), ("sqlite:///:memory:", None),
    ("http://127.0.0.1:5000", None), ("postgresql://u@h/db", None),
])
def test_only_sqlite_files_are_prepared(uri: str, path: Path | None) -> None:
    assert sqlite_path(uri) == path


def _schema(db: Path) -> list[tuple[str, str, list[str]]]:
    """Every table, index and trigger with the lines of its SQL, sorted (SQLAlchemy orders some
    constraints by hash, so two builds by MLflow itself differ in line order)."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    connection.close()
    return sorted((kind, name, sorted((sql or "").splitlines())) for kind, name, sql in rows)


def test_the_store_built_without_syncs_is_the_one_mlflow_builds(tmp_path: Path) -> None:
    """The build skips the disk sync of each of its ~300 statements (a private temporary file, synced
    once before it is published): the store has MLflow's own schema, revision and integrity."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    prepare_store(f"sqlite:///{ours}")
    engine = sqlalchemy.create_engine(f"sqlite:///{theirs}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
    assert _schema(ours) == _schema(theirs)
    assert _revision(ours) == _revision(theirs) == _head()
    with sqlite3.connect(ours) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # nothing of the build's settings stays
    connection.close()
