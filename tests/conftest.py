"""Fixtures shared by every test folder."""

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright's Python API (never ``playwright
    install``: it downloads), one per test module."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/services/chromium.sh (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def cluster():
    """A real ``distributed.LocalCluster`` of 2 worker processes (TCP on 127.0.0.1), shared by
    the tests of one module (a cluster start costs seconds) and closed after them."""
    from noisecorr.mappings.dask import local_cluster

    c = local_cluster(2, dashboard=False)
    yield c
    c.close()
