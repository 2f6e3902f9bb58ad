"""The built site, and the MLflow UI over a store xlingbench wrote, in a real headless browser
(Debian's chromium driven by Playwright).

Skips cleanly when /usr/bin/chromium or the playwright package is absent. The browser is
launched from the system binary: never ``playwright install`` (no downloads in CI).
"""
from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from xlingbench.leaderboard.collect import collect
from xlingbench.leaderboard.render import slug, write_site
from xlingbench.sinks.mlflow_sink import MODEL_TRAINING_VIEW
from tests.mlflow_plant import full_results, model_revision, open_sink, plant, plugin_result
from tests.test_tracking_server import free_port, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EVIL = "<script>alert(1)</script>"
WARNING = "fewer pairs than asked <b>"
TIMEOUT_MS = 15_000

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site of three models whose headlines sort differently per column, one with a hostile name;
    beta's plugin-task run logged a warning."""
    root = tmp_path_factory.mktemp("browser")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = open_sink(uri)
    for name, score in (("beta", 0.8), ("alpha", 0.6), (EVIL, 0.7)):
        extra = [plugin_result(score, [WARNING])] if name == "beta" else []
        plant(tracker, model_revision(name, name.encode().hex()[:40].ljust(40, "0")), full_results(score) + extra)
    write_site(collect(uri), root / "site")
    return root / "site"


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """The site served over HTTP on 127.0.0.1 (a free port), stopped after the module."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A static file handler that does not log every request to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet."""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless chromium for the module."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True, timeout=TIMEOUT_MS)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser) -> Iterator[object]:
    """A fresh page that records console errors, page errors and dialogs."""
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.problems = []  # type: ignore[attr-defined]
    tab.on("console", lambda msg: msg.type == "error" and tab.problems.append(f"console: {msg.text}"))
    tab.on("pageerror", lambda err: tab.problems.append(f"pageerror: {err}"))
    tab.on("dialog", lambda dialog: (tab.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    yield tab
    context.close()


def model_order(page) -> list[str]:
    """The model names of the table's rows, top to bottom, as the browser shows them."""
    return page.locator("#board tbody tr td:first-child").all_inner_texts()


def test_header_click_sorts_the_table(page, base_url: str) -> None:
    page.goto(f"{base_url}/index.html")
    assert model_order(page) == [EVIL, "alpha", "beta"]  # as rendered: by model name
    header = page.locator("#board thead th", has_text="script_separability")
    header.click()
    assert model_order(page) == ["alpha", EVIL, "beta"]  # 0.6, 0.7, 0.8 ascending
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert model_order(page) == ["beta", EVIL, "alpha"]
    model_header = page.locator("#board thead th", has_text="Model")
    model_header.click()
    by_name = model_order(page)
    model_header.click()
    assert model_order(page) == by_name[::-1] and by_name[1:] == ["alpha", "beta"]
    assert page.problems == []


def test_hostile_model_name_is_text_and_fires_nothing(page, base_url: str) -> None:
    page.goto(f"{base_url}/index.html")
    assert page.get_by_text(EVIL, exact=True).count() >= 1
    page.goto(f"{base_url}/models/{slug(EVIL)}.html")
    assert page.locator("h1").inner_text() == EVIL
    assert page.problems == []


def test_warning_text_is_on_hover(page, base_url: str) -> None:
    page.goto(f"{base_url}/index.html")
    mark = page.locator("#board .warn")
    assert mark.count() == 1 and mark.get_attribute("title") == WARNING  # the browser unescaped it: text, not markup
    assert page.locator("#board b").count() == 0
    assert page.problems == []


def test_detail_page_charts_render(page, base_url: str) -> None:
    page.goto(f"{base_url}/index.html")
    page.get_by_role("link", name="beta", exact=True).click()
    page.wait_for_url(f"**/models/{slug('beta')}.html")
    charts = page.locator("figure svg")
    assert charts.count() == 5  # the declared charts with data: four bar charts (no hit_at_50 logged), one line chart
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100
    assert page.locator("figure svg rect").count() > 0 and page.locator("figure svg polyline").count() == 1
    assert page.problems == []


# --------------------------------------------------------------------------- the MLflow UI (issue 18)

#: what only MLflow 3's GenAI view shows: its overview and evaluation pages
GENAI_ONLY = ("Evaluation runs", "Observability")
#: the MLflow UI is a large single-page app: its first load on a busy machine takes long
UI_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def mlflow_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str, dict[str, float]]]:
    """``mlflow server`` on 127.0.0.1 over a store written by xlingbench's sink (one model revision,
    four task runs); yields its URL, the experiment id, the model run id and its headline metrics."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow-ui")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    results = full_results(0.9)
    parent, _ = plant(open_sink(uri), model_revision("xlm-roberta-xl", "a" * 40), results)
    experiment = MlflowClient(uri).get_experiment_by_name("xlingbench").experiment_id
    headlines = {f"{meta.name}/{meta.main_score}": result.metrics[meta.main_score] for result, meta in results}
    port = free_port()
    server = start_server(root, port)
    try:
        yield f"http://127.0.0.1:{port}", experiment, parent, headlines
    finally:
        stop_server(server)


def test_the_mlflow_ui_opens_the_runs_table_with_the_headline_metrics(page, mlflow_ui) -> None:
    """MLflow 3.17 picks its view from the link's ``workflowType`` (not the experiment's
    ``mlflow.experimentKind`` tag): a link with :data:`MODEL_TRAINING_VIEW` opens the runs table
    (none of the GenAI pages), whose column chooser offers every task's headline metric, and the
    model run's page lists them with their values."""
    base, experiment, parent, headlines = mlflow_ui
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{base}/#/experiments/{experiment}{MODEL_TRAINING_VIEW}")
    page.get_by_role("grid").get_by_text(f"xlm-roberta-xl@{'a' * 40}", exact=True).wait_for()
    assert "/runs?" in page.url and "workflowType=machine_learning" in page.url
    assert [name for name in GENAI_ONLY if page.get_by_text(name, exact=True).count()] == []
    page.get_by_role("button", name="Columns").click()
    page.get_by_text("script_separability/accuracy", exact=True).first.wait_for()
    assert all(page.get_by_text(name, exact=True).count() for name in headlines)
    page.keyboard.press("Escape")
    page.goto(f"{base}/#/experiments/{experiment}/runs/{parent}{MODEL_TRAINING_VIEW}")
    page.get_by_text("Metrics (4)", exact=True).wait_for()
    shown = page.inner_text("body")
    assert all(f"{name}\n{value:g}" in shown or f"{name}\t{value:g}" in shown for name, value in headlines.items()), shown
