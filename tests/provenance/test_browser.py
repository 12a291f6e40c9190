"""The browser page in headless Chromium (Debian's, driven by Playwright's Python API)."""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/services/chromium.sh (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 1000})
        external = []
        pg.on("request", lambda r: external.append(r.url) if not r.url.startswith("http://127.0.0.1") else None)
        pg.external = external
        yield pg
        browser.close()


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
    first.locator("button.open-entity").click()
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
    assert page.external == []  # nothing fetched from outside the server
