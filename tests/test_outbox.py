"""Issue 23: the outbox wraps every sink, so a plugin sink also keeps what its server refused,
and the delivery tally counts what any sink took."""
from __future__ import annotations

from pathlib import Path

from xlingbench.core.task import ModelRevision, Outcome, TaskMetadata, TaskResult
from xlingbench.sinks import SinkSettings, with_outbox
from xlingbench.sinks.delivery import DELIVERY
from xlingbench.sinks.json_sink import JsonSink
from xlingbench.sinks.outbox import Outbox, pending

META = TaskMetadata(name="plugin_task", description="", reference="", main_score="score", version="1")


class Flaky:
    """A plugin sink whose server is down (``down``) or up; it records what it took."""

    where = "flaky://server"

    def __init__(self, down: bool) -> None:
        self.down, self.took, self.ended = down, [], []

    def write(self, outcome: Outcome) -> None:  # a sink may return no reference for what it took
        if self.down:
            raise ConnectionError("connection refused\nat line 2")
        self.took.append(outcome.task_key)

    def finish_model(self, model: ModelRevision, outcomes: list[Outcome]) -> None:
        self.ended.append((model.name, len(outcomes)))


def outcome(key: str) -> Outcome:
    return Outcome(ModelRevision("m", "org/m", "a" * 40), META, TaskResult("plugin_task", {}, {"score": 0.5}), 1.0, 2.0,
                   "fp", task_key=key)


def test_a_plugin_sink_keeps_what_its_server_refused_and_the_next_run_sends_it(tmp_path: Path) -> None:
    settings = SinkSettings(cache_dir=tmp_path)
    DELIVERY.reset()
    down = with_outbox("flaky", Flaky(down=True), settings)
    assert isinstance(down, Outbox) and down.write(outcome("k1")) is None and down.write(outcome("k2")) is None
    down.finish_model(outcome("k1").model, [outcome("k1")])  # not tried again once the server failed
    assert down.sink.ended == [] and len(pending(down.folder)) == 2
    assert DELIVERY.kept == {down.folder: ("flaky://server", "connection refused")}
    up = with_outbox("flaky", Flaky(down=False), settings)  # the next run on that server sends them first
    assert up.sink.took == ["k1", "k2"] and up.sink.ended == [("m", 2)] and pending(up.folder) == []
    assert up.write(outcome("k3")) is None and up.sink.took[-1] == "k3" and pending(up.folder) == []


def test_a_result_the_store_took_before_its_run_died_is_not_sent_twice(tmp_path: Path) -> None:
    """Killed between the store taking a result and the outbox dropping it: the next run finds the
    document, asks the store, and drops it unsent (else the store would hold the task run twice);
    what the store does not hold is sent, and each model revision still ends with both."""

    class Holding(Flaky):
        def finished(self, keys: set[str]) -> dict[str, str]:
            return {key: f"run-{key}" for key in keys if key in self.took}

    settings = SinkSettings(cache_dir=tmp_path)
    died = with_outbox("flaky", Holding(down=False), settings)
    for key in ("k1", "k2"):
        died._keep(outcome(key))  # kept; for k1 the store took it too, then the process died
    died.sink.took.append("k1")
    DELIVERY.reset()
    store = Holding(down=False)
    store.took.append("k1")
    again = with_outbox("flaky", store, settings)
    assert store.took == ["k1", "k2"] and DELIVERY.logged == 1 and pending(again.folder) == []
    assert store.ended == [("m", 2)]


def test_the_json_sink_keeps_no_outbox(tmp_path: Path) -> None:
    sink = with_outbox("json", JsonSink(SinkSettings(results_dir=tmp_path / "r", cache_dir=tmp_path)), SinkSettings(cache_dir=tmp_path))
    assert isinstance(sink, JsonSink) and not (tmp_path / "outbox").exists()


def test_a_store_that_fails_when_asked_what_it_holds_holds_nothing_and_keeps_the_result(tmp_path: Path) -> None:
    class Asked(Flaky):
        def finished(self, keys: set[str]) -> dict[str, str]:
            raise ConnectionError("server gone")

    sink = with_outbox("flaky", Asked(down=False), SinkSettings(cache_dir=tmp_path))
    assert sink.finished({"k1"}) == {} and sink.offline == "server gone"
    assert sink.write(outcome("k1")) is None and len(pending(sink.folder)) == 1 and sink.sink.took == []


def test_a_full_disk_is_named_whatever_wraps_it() -> None:
    """SQLAlchemy reports SQLite's full disk as an autoflush error; the outbox line names the disk."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from xlingbench.sinks.outbox import failure_text

    wrapped = OperationalError("INSERT INTO metrics ...", {}, sqlite3.OperationalError("database or disk is full"))
    try:
        try:
            raise wrapped
        except OperationalError as inner:
            raise RuntimeError("(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush block)") from inner
    except RuntimeError as err:
        assert failure_text(err) == "the disk is full (database or disk is full)"
    assert failure_text(ConnectionError("connection refused\nretries exhausted")) == "connection refused"
    assert failure_text(OSError(28, "No space left on device")).startswith("the disk is full (")
