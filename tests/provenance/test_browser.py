"""The browser page in headless Chromium (Debian's, driven by Playwright's Python API).

Every test gets a fresh page that records console errors, uncaught exceptions, failed
requests and responses with status >= 400 (``page.problems``); a test fails on any of them
unless it expects and removes it (``expect_problems``). Views are opened by their URLs
(``#/run/<id>``, ``#/entity/<id>``, ``#/lineage/<id>``) as a link or a reload would.
"""

import json
import os
import urllib.request
from pathlib import Path

import pytest


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    external, problems = [], []
    pg.on("request", lambda r: external.append(r.url) if not r.url.startswith("http://127.0.0.1") else None)
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # a reload or navigation cancels the favicon fetch of the page it leaves (net::ERR_ABORTED):
    # that is the browser's doing, not a failed request; every other failure counts
    pg.on("requestfailed", lambda r: None if r.url.endswith("/favicon.svg") and r.failure == "net::ERR_ABORTED"
          else problems.append(f"request failed: {r.url} ({r.failure})"))
    pg.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    pg.external, pg.problems = external, problems
    yield pg
    context.close()
    assert problems == [], "the page logged errors or failed requests"
    assert external == [], "the page fetched from outside the server"


def assert_clean(page):
    """Let pending requests (the favicon, late fetches) finish, then require no problem."""
    page.wait_for_load_state("networkidle")
    assert page.problems == []
    assert page.external == []


def expect_problems(page, *fragments):
    """Each fragment is in some recorded problem; the recorded problems are then cleared."""
    page.wait_for_load_state("networkidle")
    for f in fragments:
        assert any(f in p for p in page.problems), (f, page.problems)
    page.problems.clear()


def api(server, path):
    with urllib.request.urlopen(server + path, timeout=30) as r:
        return r.status, r.headers.get_content_type(), r.read()


@pytest.fixture(scope="module")
def stack(server, sample_run):
    """A stored stack of the sample run (an entity with a plot and a deep lineage)."""
    _, _, body = api(server, f"/api/runs/{sample_run[1]}/entities?pe=Stack&stored=true&page_size=1")
    return json.loads(body)["items"][0]


def wait_entity(page, entity_id, view):
    page.wait_for_selector(f"#entity-panel[data-entity='{entity_id}'][data-view='{view}']:not([hidden])")


def nodes(page, pe):
    return page.locator(f"#graph g.node[data-pe='{pe}']").count()


def hash_of(page):
    return page.evaluate("location.hash")


def test_fixture_catches_errors_and_404s(page, server):
    """The listeners see what they must: a 404, a console error, an uncaught exception."""
    page.goto(server + "/static/no-such-file.js")
    page.goto(server + "/")
    page.wait_for_selector("tr.run-row")
    page.evaluate("console.error('deliberate')")
    page.evaluate("setTimeout(() => { throw new Error('thrown on purpose'); }, 0)")
    expect_problems(page, "HTTP 404: " + server + "/static/no-such-file.js", "deliberate", "thrown on purpose")


def test_page_load_is_clean_and_favicon_served(page, server, sample_run):
    page.goto(server + "/")
    page.wait_for_selector(f"tr.run-row[data-run='{sample_run[1]}']")
    assert page.is_hidden("#run-panel") and page.is_hidden("#entity-panel") and page.is_hidden("#message")
    assert_clean(page)  # before the fix, Chromium's /favicon.ico request answered 404 on every load
    href = page.get_attribute("link[rel='icon']", "href")
    for path in ("/" + href, "/favicon.ico"):
        status, kind, body = api(server, path)
        assert status == 200 and kind == "image/svg+xml" and body.startswith(b"<svg")


def test_run_url_opens_the_run(page, server, sample_run):
    run_id = sample_run[1]
    page.goto(f"{server}/#/run/{run_id}")
    page.wait_for_selector("#products li.product")
    assert page.inner_text("#run-id") == run_id and page.is_hidden("#entity-panel")
    assert page.locator("#products li.product").count() == 15
    assert page.get_attribute("tr.run-row.selected", "data-run") == run_id
    assert run_id in page.title()
    assert_clean(page)


def test_entity_url_opens_the_entity_with_its_parents(page, server, sample_run, stack):
    sid = stack["entity_id"]
    page.goto(f"{server}/#/entity/{sid}")
    wait_entity(page, sid, "entity")
    assert page.inner_text("#entity-label") == f"Stack.output: {stack['label']}"
    assert page.inner_text("#run-id") == sample_run[1]  # and its run beside it
    page.wait_for_selector("#plot polyline")
    assert page.get_attribute("#graph g.node.root", "data-id") == sid
    # depth 1: the stack and the correlations it derives from, nothing further up
    assert nodes(page, "CrossCorrelate") >= 1 and nodes(page, "Whiten") == 0
    assert page.get_attribute("#expand-all", "href") == f"#/lineage/{sid}"
    assert_clean(page)


def test_lineage_url_opens_the_expanded_graph(page, server, stack):
    sid = stack["entity_id"]
    src, rcv = stack["meta"]["source"], stack["meta"]["receiver"]
    page.goto(f"{server}/#/lineage/{sid}")
    wait_entity(page, sid, "lineage")
    seeds = page.eval_on_selector_all("#graph g.node[data-pe='Fetch'][data-port='output']",
                                      "els => els.map(e => e.dataset.seedId)")
    assert seeds and {s.rsplit(".", 1)[0] for s in seeds} == {src, rcv}  # down to the raw records
    page.goto(f"{server}/#/lineage/{sid}?depth=2")
    page.wait_for_load_state("networkidle")  # a reload aborts what is in flight (the favicon)
    page.reload()
    wait_entity(page, sid, "lineage")
    assert nodes(page, "Whiten") >= 1 and nodes(page, "Spectra") == 0
    assert_clean(page)


def test_navigate_back_and_forward(page, server, sample_run, stack, tmp_path_factory):
    run_id, sid = sample_run[1], stack["entity_id"]
    page.goto(server + "/")
    page.click(f"tr.run-row[data-run='{run_id}']")
    page.wait_for_selector("#products li.product")
    assert hash_of(page) == f"#/run/{run_id}"
    page.click(f"#products li.product[data-entity='{sid}'] a.open-entity")
    wait_entity(page, sid, "entity")
    assert hash_of(page) == f"#/entity/{sid}"
    page.click("#expand-all")
    wait_entity(page, sid, "lineage")
    assert hash_of(page) == f"#/lineage/{sid}" and nodes(page, "Fetch") >= 2

    page.go_back()
    wait_entity(page, sid, "entity")
    assert nodes(page, "Whiten") == 0
    page.go_back()
    page.wait_for_selector("#entity-panel", state="hidden")
    assert hash_of(page) == f"#/run/{run_id}" and page.inner_text("#run-id") == run_id
    page.go_back()
    page.wait_for_selector("#run-panel", state="hidden")
    assert hash_of(page) in ("", "#/")
    page.go_forward()
    page.wait_for_selector("#run-panel:not([hidden])")
    page.go_forward()
    wait_entity(page, sid, "entity")

    # clicking a node expands it in place; the URL follows (no new history entry) and reopens it
    cc = page.get_attribute("#graph g.node[data-pe='CrossCorrelate']", "data-id")
    page.click(f"#graph g.node[data-id='{cc}']")
    page.wait_for_selector("#graph g.node[data-pe='Whiten']")
    page.wait_for_function(f"location.hash.includes('expand={cc}')")
    assert hash_of(page) == f"#/lineage/{sid}?depth=1&expand={cc}"
    whitened = nodes(page, "Whiten")
    page.wait_for_load_state("networkidle")
    page.reload()
    wait_entity(page, sid, "lineage")
    assert nodes(page, "Whiten") == whitened and nodes(page, "Spectra") == 0
    page.go_back()  # the node click replaced the entity entry: back is the run
    page.wait_for_selector("#entity-panel", state="hidden")
    assert hash_of(page) == f"#/run/{run_id}"

    # a double-click opens that node as the entity view
    page.go_forward()
    wait_entity(page, sid, "lineage")
    page.dblclick(f"#graph g.node[data-id='{cc}']")
    wait_entity(page, cc, "entity")
    assert hash_of(page) == f"#/entity/{cc}" and nodes(page, "Whiten") >= 1
    shot = Path(os.environ.get("NOISECORR_SCREENSHOT_DIR", tmp_path_factory.mktemp("shots"))) / "provenance_entity.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert_clean(page)


def test_bad_links_say_what_is_wrong(page, server, sample_run):
    page.goto(f"{server}/#/run/0123456789abcdef")
    page.wait_for_selector("#message:not([hidden])")
    assert "run not found" in page.inner_text("#message") and page.is_hidden("#run-panel")
    expect_problems(page, f"HTTP 404: {server}/api/runs/0123456789abcdef")  # the API's answer, expected here
    page.goto(f"{server}/#/entity/NOT-AN-ID")
    page.wait_for_load_state("networkidle")
    page.reload()
    page.wait_for_selector("#message:not([hidden])")
    assert "invalid entity id NOT-AN-ID" in page.inner_text("#message")
    page.goto(f"{server}/#/pairs/0123")
    page.wait_for_selector("#message:not([hidden])")
    assert "no such view" in page.inner_text("#message")
    page.goto(f"{server}/#/run/{sample_run[1]}")  # a good link clears the message
    page.wait_for_selector("#products li.product")
    assert page.is_hidden("#message") and page.inner_text("#run-id") == sample_run[1]
    assert_clean(page)


def test_follow_stack_lineage_to_raw_records(page, server, sample_run, tmp_path_factory):
    run_id = sample_run[1]
    page.goto(server + "/")
    page.click(f"tr.run-row[data-run='{run_id}']")
    page.wait_for_selector("#products li.product")
    products = page.locator("#products li.product")
    assert products.count() == 15
    first = products.first
    label = first.locator("span").inner_text()  # "Stack: NET.A.LOC|NET.B.LOC|ZZ"
    pair = label.split(": ", 1)[1].split("|")
    first.locator("a.open-entity").click()
    # the stack's plot: one polyline with as many points as the stack has lags
    page.wait_for_selector("#plot polyline")
    n = int(page.get_attribute("#plot polyline", "data-n"))
    assert n > 100 and len(page.get_attribute("#plot polyline", "points").split()) == n
    # the graph starts with the stack and its parents; clicking a node expands its ancestors
    page.wait_for_selector("#graph g.node[data-pe='CrossCorrelate']")
    page.click("#graph g.node[data-pe='CrossCorrelate']")
    page.wait_for_selector("#graph g.node[data-pe='Whiten']")
    page.click("#expand-all")
    page.wait_for_selector("#graph g.node[data-pe='Fetch'][data-port='output']")
    seeds = page.eval_on_selector_all("#graph g.node[data-pe='Fetch'][data-port='output']",
                                      "els => els.map(e => e.dataset.seedId)")
    assert seeds and {s.rsplit(".", 1)[0] for s in seeds} == set(pair[:2])
    # what is shown for a raw record: its PE and seed id
    texts = page.eval_on_selector_all("#graph g.node[data-pe='Fetch'][data-port='output'] text",
                                      "els => els.map(e => e.textContent)")
    assert any(s in t for s in seeds for t in texts)
    # the download link serves the stored product
    href = page.get_attribute("#download", "href")
    assert href.endswith("/download")
    shot = Path(os.environ.get("NOISECORR_SCREENSHOT_DIR", tmp_path_factory.mktemp("shots"))) / "provenance_page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert_clean(page)
