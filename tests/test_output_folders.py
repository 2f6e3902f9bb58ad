"""Output folders never write through a link and are written by one command at a time (issue 18).

A hostile or merely shared folder: a symlinked ``index.html`` or ``models/`` inside a leaderboard
folder once made a re-render overwrite files outside it, and two renders into one folder at once
silently lost one of them. Each case checks the exit status, the one line, and that the file
outside the folder (or the folder itself) is exactly as it was.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.mlflow_plant import full_results, model_revision, open_sink, plant
from xlingbench.cli.main import app
from xlingbench.core.errors import UserError
from xlingbench.core.outputs import LOCK, MARKER, replace_outputs, written_files

#: holds a folder's lock in another process until its stdin closes (prints "held" once it holds it)
HOLDER = """
import sys
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with one finished model revision (five task runs)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    plant(open_sink(uri), model_revision("xlm-roberta-xl", "a" * 40), full_results(0.9))
    return uri


@pytest.fixture()
def site(store: str, tmp_path: Path) -> Path:
    """A leaderboard folder rendered once from ``store``."""
    assert board(store, tmp_path / "site")[0] == 0
    return tmp_path / "site"


def board(store: str, out: Path) -> tuple[int, str]:
    """``xlingbench leaderboard --out out`` in-process: exit status and output."""
    outcome = CliRunner().invoke(app, ["leaderboard", "--tracking-uri", store, "--out", str(out)], env={"COLUMNS": "200"})
    return outcome.exit_code, outcome.output


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: a file's bytes, a link's target, a folder as ``"dir"``."""
    entries: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        entries[key] = f"-> {os.readlink(path)}" if path.is_symlink() else "dir" if path.is_dir() else path.read_bytes()
    return entries


def test_a_linked_index_page_is_refused_and_the_outside_file_untouched(store: str, site: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.html"
    outside.write_text("the user's own page")
    (site / "index.html").unlink()
    (site / "index.html").symlink_to(outside)
    before = snapshot(site)
    code, output = board(store, site)
    assert code == 2 and "index.html is a symbolic link" in one_line(output)
    assert outside.read_text() == "the user's own page" and snapshot(site) == before


def test_a_linked_models_folder_is_refused_and_receives_no_page(store: str, site: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    for page in (site / "models").iterdir():
        page.unlink()
    (site / "models").rmdir()
    (site / "models").symlink_to(mine, target_is_directory=True)
    before = snapshot(site)
    code, output = board(store, site)
    assert code == 2 and "models is a symbolic link" in one_line(output)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"] and snapshot(site) == before


@pytest.mark.parametrize("name", [MARKER, LOCK])
def test_a_linked_marker_or_lock_is_refused(store: str, site: Path, tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("untouched")
    (site / name).unlink()
    (site / name).symlink_to(outside)
    code, output = board(store, site)
    assert code == 2 and f"{name} is a symbolic link" in one_line(output)
    assert outside.read_text() == "untouched"


def test_a_linked_output_folder_itself_is_followed(store: str, tmp_path: Path) -> None:
    """The folder the user names may be a link (their choice); only links inside it are refused."""
    (tmp_path / "real").mkdir()
    (tmp_path / "named").symlink_to(tmp_path / "real", target_is_directory=True)
    assert board(store, tmp_path / "named")[0] == 0
    assert (tmp_path / "real" / "index.html").is_file()


def test_a_render_into_a_folder_another_process_is_writing_is_refused(store: str, site: Path) -> None:
    before = snapshot(site)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(site / LOCK)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, output = board(store, site)
        assert code == 2 and "another xlingbench command is writing to" in one_line(output)
        assert snapshot(site) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert board(store, site)[0] == 0  # the lock went with its holder


def test_concurrent_writers_never_mix_their_files(tmp_path: Path) -> None:
    """Eight writers at once into one folder, each with its own set of pages: every writer either
    wrote everything or was refused with the one-line error, and the folder holds exactly the
    pages of one writer that succeeded (none of a refused writer's, none mixed)."""
    folder = tmp_path / "site"
    outcomes: dict[int, str] = {}
    start = threading.Barrier(8)

    def write(writer: int) -> None:
        pages = {Path(f"page-{writer}-{i}.html"): f"writer {writer}" for i in range(20)}
        start.wait()
        try:
            replace_outputs(folder, "leaderboard", pages)
            outcomes[writer] = "wrote"
        except UserError as err:
            outcomes[writer] = err.one_line()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wrote = [w for w, outcome in outcomes.items() if outcome == "wrote"]
    assert len(outcomes) == 8 and wrote
    assert all("another xlingbench command is writing to" in outcomes[w] for w in outcomes if w not in wrote)
    pages = {p.name for p in folder.iterdir() if p.name not in (MARKER, LOCK)}
    owners = {(folder / name).read_text() for name in pages}
    assert len(owners) == 1 and len(pages) == 20
    owner = int(owners.pop().split()[1])
    assert owner in wrote and written_files(folder / MARKER) == {"leaderboard": {Path(n) for n in pages}}


def test_pages_are_written_with_the_usual_permissions(tmp_path: Path) -> None:
    """The temporary sibling a page is written through gets 0o666 less the umask, as ``open`` would."""
    old = os.umask(0o022)
    try:
        replace_outputs(tmp_path / "site", "leaderboard", {Path("index.html"): "x"})
    finally:
        os.umask(old)
    assert (tmp_path / "site" / "index.html").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in (tmp_path / "site").iterdir()) == sorted([MARKER, LOCK, "index.html"])
