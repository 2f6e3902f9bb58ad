"""compare / check exit codes on planted regressions, noise, improvements and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xlingbench.cli.main import app
from xlingbench.core.errors import UserError
from xlingbench.leaderboard.gating import Expectation, default_tolerance, judge, parse_tolerances, tolerance_for
from xlingbench.leaderboard.mlflow_store import find_run
from tests.mlflow_plant import metadata, model_revision, open_sink, plant, result


def results(accuracy: float, mean_count: float, latin: float = 0.9, calign: float = 60.0) -> list:
    """Three tasks: accuracy (higher is better, no interval), mean_count (lower is better, interval
    1.5-1.7 around 1.6) and calign_max (a percentage, higher is better, no interval)."""
    return [
        (result("script_separability", {"accuracy": accuracy, "accuracy/LATIN": latin}), metadata("script_separability")),
        (result("neighbour_script_count", {"mean_count": mean_count},
                intervals={"mean_count": (mean_count - 0.1, mean_count + 0.1)}),
         metadata("neighbour_script_count", higher_is_better=False)),
        (result("calign", {"calign_max": calign}), metadata("calign")),
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Planted parent runs: a baseline and candidates that differ from it in one way each."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('gate') / 'mlflow.db'}"
    tracker = open_sink(uri)
    planted = {
        "baseline": results(0.900, 1.60),
        "same": results(0.900, 1.60),
        "drop": results(0.880, 1.60),            # accuracy falls 0.02 > 0.01
        "noise": results(0.895, 1.68),           # within tolerance; mean_count inside [1.5, 1.7]
        "better": results(0.950, 1.20),          # both improve
        "count_up": results(0.900, 1.75),        # lower-is-better metric rises out of its interval
        "latin_drop": results(0.900, 1.60, latin=0.85),  # a non-headline metric falls
        "calign_noise": results(0.900, 1.60, calign=59.2),  # a percentage falls 0.8 point: within 1 point
        "calign_drop": results(0.900, 1.60, calign=58.5),   # ... 1.5 points: a regression
    }
    ids: dict[str, str] = {}
    for name, res in planted.items():
        ids[name], children = plant(tracker, model_revision("m", f"{name:0<40}"), res)
        ids.update({f"{name}/{task}": run_id for task, run_id in children.items()})
    ids["uri"] = uri
    ids["task_run"] = plant(tracker, model_revision("solo", "f" * 40), results(0.9, 1.6)[:1])[1]["script_separability"]
    return ids


def invoke(*args: str) -> tuple[int, str]:
    """Run the commands through the xlingbench CLI."""
    outcome = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return outcome.exit_code, outcome.output


def compare(runs: dict[str, str], candidate: str, *extra: str) -> tuple[int, str]:
    """``compare BASELINE CANDIDATE`` on the planted store."""
    return invoke("compare", runs["baseline"], runs[candidate], "--tracking-uri", runs["uri"], *extra)


@pytest.mark.parametrize(("candidate", "code"), [("same", 0), ("noise", 0), ("better", 0), ("drop", 1), ("count_up", 1), ("latin_drop", 0),
                                                 ("calign_noise", 0), ("calign_drop", 1)])
def test_compare_exit_codes(runs: dict[str, str], candidate: str, code: int) -> None:
    exit_code, output = compare(runs, candidate)
    assert exit_code == code, output
    assert ("REGRESSION" in output) == (code == 1)


def test_compare_prints_every_metric(runs: dict[str, str]) -> None:
    _, output = compare(runs, "drop")
    for metric in ("accuracy/LATIN", "mean_count_ci_low", "mean_count_ci_high"):
        assert metric in output
    assert "-0.02" in output and "script_separability/accuracy" in output


def test_per_metric_tolerance(runs: dict[str, str]) -> None:
    assert compare(runs, "drop", "--tolerance", "accuracy=0.05")[0] == 0
    assert compare(runs, "drop", "--tolerance", "neighbour_script_count:mean_count=0.05")[0] == 1  # other task's
    assert compare(runs, "latin_drop", "--tolerance", "accuracy/*=0.01")[0] == 1  # gates a non-headline metric
    assert compare(runs, "noise", "--tolerance", "mean_count=0.05")[0] == 1  # explicit tolerance beats interval


def test_selectors_and_task_runs(runs: dict[str, str]) -> None:
    assert invoke("compare", "xlingbench:model=m,revision=" + f"{'drop':0<40}", runs["baseline"], "--tracking-uri", runs["uri"])[0] == 0
    assert invoke("compare", runs["baseline"], "xlingbench:model=m,revision=" + f"{'drop':0<40}", "--tracking-uri", runs["uri"])[0] == 1
    code, output = invoke("compare", runs["task_run"], runs["drop"], "--tracking-uri", runs["uri"])
    assert code == 1 and "neighbour_script_count" not in output  # only the task run's task


@pytest.mark.parametrize("ref", ["0123456789abcdef0123456789abcdef", "xlingbench:model=nobody", "nope:model=m", ":model=m"])
def test_bad_references_are_user_errors(runs: dict[str, str], ref: str) -> None:
    code, output = invoke("compare", ref, runs["baseline"], "--tracking-uri", runs["uri"])
    assert code == 2 and output.startswith("error: "), output
    assert len(output.strip().splitlines()) == 1


def test_unreachable_server_and_bad_tolerance(runs: dict[str, str]) -> None:
    assert invoke("compare", "a", "b", "--tracking-uri", "http://127.0.0.1:9")[0] == 2
    assert invoke("compare", runs["baseline"], runs["same"], "--tracking-uri", runs["uri"], "--tolerance", "accuracy")[0] == 2


def test_check_against_expect_file(tmp_path: Path, runs: dict[str, str]) -> None:
    expect = tmp_path / "expected.json"
    assert invoke("check", "--expect", str(expect), "--run", runs["baseline"], "--tracking-uri", runs["uri"], "--write-expect")[0] == 0
    written = json.loads(expect.read_text())
    assert written["neighbour_script_count"]["mean_count"] == pytest.approx(
        {"value": 1.6, "low": 1.5, "high": 1.7, "higher_is_better": False})
    assert written["script_separability"]["accuracy"]["tolerance"] == 0.01
    assert written["calign"]["calign_max"]["tolerance"] == 1.0  # a percentage: one point, not 0.01
    for candidate, code in (("same", 0), ("noise", 0), ("better", 0), ("drop", 1), ("count_up", 1), ("calign_noise", 0), ("calign_drop", 1)):
        assert invoke("check", "--expect", str(expect), "--run", runs[candidate], "--tracking-uri", runs["uri"])[0] == code, candidate


def test_check_toml_round_trip_and_simple_form(tmp_path: Path, runs: dict[str, str]) -> None:
    toml = tmp_path / "expected.toml"
    assert invoke("check", "--expect", str(toml), "--run", runs["baseline"], "--tracking-uri", runs["uri"], "--write-expect")[0] == 0
    assert invoke("check", "--expect", str(toml), "--run", runs["drop"], "--tracking-uri", runs["uri"])[0] == 1
    simple = tmp_path / "simple.json"
    simple.write_text(json.dumps({"script_separability": {"accuracy": 0.95, "accuracy/LATIN": {"value": 0.9, "tolerance": 0.1}}}))
    code, output = invoke("check", "--expect", str(simple), "--run", runs["better"], "--tracking-uri", runs["uri"])
    assert code == 0, output
    assert invoke("check", "--expect", str(simple), "--run", runs["noise"], "--tracking-uri", runs["uri"])[0] == 1  # 0.895 < 0.95-0.01


@pytest.mark.parametrize("content", [
    "{not json", "[]", '{"script_separability": 3}', '{"script_separability": {"accuracy": "0.9"}}',
    '{"script_separability": {"accuracy": {"value": 0.9, "tolerence": 0.1}}}',
    '{"script_separability": {"accuracy": {"value": 0.9, "low": 0.8}}}',
    '{"script_separability": {"accuracy": {"value": true}}}',
])
def test_malformed_expect_file_exits_2(tmp_path: Path, runs: dict[str, str], content: str) -> None:
    expect = tmp_path / "bad.json"
    expect.write_text(content)
    code, output = invoke("check", "--expect", str(expect), "--run", runs["baseline"], "--tracking-uri", runs["uri"])
    assert code == 2 and output.startswith("error: expect file"), output


def test_missing_task_in_candidate_regresses(tmp_path: Path, runs: dict[str, str]) -> None:
    expect = tmp_path / "e.json"
    expect.write_text(json.dumps({"colap": {"colap_max": 50}}))
    code, output = invoke("check", "--expect", str(expect), "--run", runs["baseline"], "--tracking-uri", runs["uri"])
    assert code == 1 and "missing" in output


def test_rule_edges() -> None:
    assert judge(Expectation(0.9), 0.89, True)[1] == "ok"  # a drop of exactly the tolerance passes
    assert judge(Expectation(0.9), 0.8899, True)[1] == "REGRESSION"
    assert judge(Expectation(1.6, low=1.5, high=1.7), 1.49, True)[1] == "REGRESSION"
    assert judge(Expectation(1.6, low=1.5, high=1.7), 1.69, False)[1] == "ok"
    assert judge(Expectation(1.6), None, True)[1] == "missing"
    patterns = parse_tolerances(["accuracy/*=0.02", "script_separability:accuracy/LATIN=0.5"])
    assert tolerance_for("script_separability", "accuracy/LATIN", patterns) == 0.5
    assert tolerance_for("other", "accuracy/LATIN", patterns) == 0.02
    assert tolerance_for("other", "accuracy", patterns) is None


def test_default_tolerance_follows_the_declared_unit() -> None:
    assert default_tolerance("calign", "calign_max") == default_tolerance("colap", "colap_mean") == 1.0
    assert default_tolerance("calign", "calign_max_layer") == 0.01  # a layer index is not a percentage
    assert default_tolerance("translation_in_neighbours", "hit_at_10") == default_tolerance("no_such_task", "x") == 0.01


def test_run_id_prefixes(runs: dict[str, str]) -> None:
    assert invoke("compare", runs["baseline"][:8], runs["drop"][:8], "--tracking-uri", runs["uri"])[0] == 1
    assert invoke("compare", runs["baseline"][:8], runs["same/calign"][:10], "--tracking-uri", runs["uri"])[0] == 1  # only calign: the rest is missing
    taken = {runs[k][:8] for k in runs if k != "uri"}
    unknown = next(p for p in ("deadbeef", "cafebabe", "0badf00d") if p not in taken)
    code, output = invoke("compare", unknown, runs["baseline"], "--tracking-uri", runs["uri"])
    assert code == 2 and f"run-id prefix '{unknown}' matches no run" in output, output
    assert len(output.strip().splitlines()) == 1


def test_an_ambiguous_prefix_is_a_user_error() -> None:
    """Two stored ids sharing 8 characters cannot be planted on purpose (MLflow draws them), so a stub store answers."""
    class Store:
        def search_experiments(self) -> list:
            return [type("Experiment", (), {"experiment_id": "0"})()]

        def search_runs(self, ids: list[str], filter_string: str, max_results: int) -> list:
            assert filter_string == "attributes.run_id LIKE 'abcdef01%'" and max_results == 2
            return ["run one", "run two"]

    with pytest.raises(UserError, match="matches several runs"):
        find_run(Store(), "ABCDEF01")


def run_json(path: Path, run_ids: list[str | None]) -> str:
    """A ``xlingbench run --json`` document naming these run ids; returns the ``@FILE`` reference."""
    path.write_text(json.dumps({"outcomes": [{"task": "t", "run_id": run_id} for run_id in run_ids]}))
    return f"@{path}"


def test_runs_from_a_run_json_document(tmp_path: Path, runs: dict[str, str]) -> None:
    tasks = ("script_separability", "neighbour_script_count", "calign")
    base = run_json(tmp_path / "base.json", [runs[f"baseline/{t}"] for t in tasks])
    assert invoke("compare", base, run_json(tmp_path / "same.json", [runs[f"same/{t}"] for t in tasks]), "--tracking-uri", runs["uri"])[0] == 0
    assert invoke("compare", base, run_json(tmp_path / "drop.json", [runs[f"drop/{t}"] for t in tasks]), "--tracking-uri", runs["uri"])[0] == 1
    expect = tmp_path / "expected.json"
    assert invoke("check", "--expect", str(expect), "--run", base, "--tracking-uri", runs["uri"], "--write-expect")[0] == 0
    assert invoke("check", "--expect", str(expect), "--run", f"@{tmp_path / 'drop.json'}", "--tracking-uri", runs["uri"])[0] == 1
    assert invoke("check", "--expect", str(expect), "--run", f"@{tmp_path / 'same.json'}", "--tracking-uri", runs["uri"])[0] == 0


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"), ("{not json", "is not JSON"), ('{"runs": []}', "is not a `xlingbench run --json` document"),
    ('{"outcomes": []}', "names no MLflow run for any outcome"), ('{"outcomes": [{"run_id": null}]}', "for some outcome"),
    ("MIXED", "holds runs of 2 model revisions"),
])
def test_bad_run_json_is_one_line_and_exit_2(tmp_path: Path, runs: dict[str, str], content: str | None, message: str) -> None:
    path = tmp_path / "run.json"
    if content == "MIXED":
        run_json(path, [runs["baseline/calign"], runs["drop/calign"]])
    elif content is not None:
        path.write_text(content)
    code, output = invoke("check", "--expect", str(tmp_path / "e.json"), "--run", f"@{path}", "--tracking-uri", runs["uri"], "--write-expect")
    assert code == 2 and message in output and len(output.strip().splitlines()) == 1, output


def test_compare_puts_the_regression_first_hides_timings_and_ends_with_a_verdict(runs: dict[str, str]) -> None:
    exit_code, output = compare(runs, "drop")
    rows = [line for line in output.splitlines() if "│" in line and "task" not in line]
    assert exit_code == 1 and "REGRESSION" in rows[0] and "accuracy" in rows[0]
    assert "time_" not in output
    assert output.strip().splitlines()[-1].startswith("REGRESSION in script_separability/accuracy")


def test_compare_and_check_json_parse_and_say_what_regressed(runs: dict[str, str], tmp_path: Path) -> None:
    exit_code, output = compare(runs, "drop", "--json")
    document = json.loads(output)
    assert exit_code == 1 and document["regressed"] is True
    assert document["lines"][0]["status"] == "REGRESSION" and document["lines"][0]["metric"] == "accuracy"
    expect = tmp_path / "expect.json"
    assert invoke("check", "--expect", str(expect), "--run", runs["baseline"], "--tracking-uri", runs["uri"], "--write-expect")[0] == 0
    exit_code, output = invoke("check", "--expect", str(expect), "--run", runs["baseline"], "--tracking-uri", runs["uri"], "--json")
    assert exit_code == 0 and json.loads(output)["regressed"] is False


def test_leaderboard_json_lists_every_task_run(runs: dict[str, str]) -> None:
    exit_code, output = invoke("leaderboard", "--tracking-uri", runs["uri"], "--format", "json")
    rows = json.loads(output)["rows"]
    assert exit_code == 0 and {row["task"] for row in rows} == {"script_separability", "neighbour_script_count", "calign"}
    assert all(row["run_id"] and row["config"] for row in rows)
