"""The documentation site builds with warnings as errors, and opens in Chromium.

The build is the one CI runs (``sphinx -W -b html docs``), into a temporary folder; the
gallery examples run during it. The browser tests serve the built html with
``http.server`` on 127.0.0.1 and require that the index, tutorials, gallery pages and
explanations load with every image (``naturalWidth > 0``: figures, and the equations drawn
as SVG), with no console error, failed request or fetch from outside the server (the checks
of ``tests/provenance/test_browser.py``). The build test requires a page for every tutorial,
explanation and gallery example, each example's own figure and each page's equation images.
"""

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """Folder of the built html (the build's doctrees and generated pages stay in tmp)."""
    out = tmp_path_factory.mktemp("site")
    html = out / "html"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(out / "doctrees"), str(ROOT / "docs"), str(html)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=out)
    assert proc.returncode == 0, f"sphinx -W failed:\n{proc.stdout}\n{proc.stderr}"
    return html


#: Gallery examples whose pages (with their figures) the site must have; every example in
#: docs/examples is checked as well, this list says which may not silently disappear.
GALLERY = ("plot_record_section", "plot_dvv", "plot_availability", "plot_tile_plan", "plot_dispersion")


def _sources(folder, pattern):
    return sorted(p.stem for p in (ROOT / "docs" / folder).glob(pattern))


@pytest.mark.slow
def test_build_has_every_part(site):
    pages = ["index.html", "cli.html", "configuration.html", "api/index.html", "gallery/index.html",
             "explanations/index.html", "tutorials/index.html"]
    pages += [f"tutorials/{name}.html" for name in _sources("tutorials", "*.md")]
    pages += [f"explanations/{name}.html" for name in _sources("explanations", "*.md")]
    pages += [f"gallery/{name}.html" for name in sorted(set(GALLERY) | set(_sources("examples", "plot_*.py")))]
    assert {"first-run", "sds-stationxml"} <= set(_sources("tutorials", "*.md"))
    assert {"engine", "signal", "results", "scale"} <= set(_sources("explanations", "*.md"))
    for page in pages:
        assert (site / page).is_file(), page
    cli = (site / "cli.html").read_text()
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    from noisecorr_docs import cli as group

    from noisecorr.cli import LAZY_COMMANDS

    names = group.list_commands(None)                    # the lazily mounted ones included
    assert set(LAZY_COMMANDS) <= set(names) and {"run", "dispersion", "dvv"} <= set(names)
    for name in names:                                   # every command has its section
        assert f'id="noisecorr-{name}"' in cli, name
    config = (site / "configuration.html").read_text()
    for key in ("cc_len", "provenance_rules.store", "joint_normalisation", "synthetic_seed"):
        assert f"<code class=\"docutils literal notranslate\"><span class=\"pre\">{key}</span></code>" in config \
            or key in config, key
    assert list((site / "_images").glob("sphx_glr_plot_*.png")), "the gallery made no figure"
    for name in sorted(set(GALLERY) | set(_sources("examples", "plot_*.py"))):
        # the example ran at build time: its page shows its own first figure, which exists
        html = (site / "gallery" / f"{name}.html").read_text()
        assert f"../_images/sphx_glr_{name}_001.png" in html, name
        assert (site / "_images" / f"sphx_glr_{name}_001.png").stat().st_size > 0, name
    # API references in the tutorials and explanations are links into the API pages (the
    # API pages index their objects), not bare code
    for page, target in (("tutorials/cluster.html", "noisecorr.tiles.plan.html#noisecorr.tiles.plan.plan_tiles"),
                         ("tutorials/monitoring.html", "#noisecorr.monitoring.measure"),
                         ("explanations/engine.html", "#noisecorr.engine.ProducerPE")):
        html = (site / page).read_text()
        assert f'href="../api/generated/{target}' in html or (target.startswith("#") and target in html), page
    for name in _sources("explanations", "*.md"):
        # equations are drawn as SVG files (html_math_renderer "mathtext"), each one on disk
        html = (site / "explanations" / f"{name}.html").read_text()
        formulas = re.findall(r'<img class="math" src="\.\./(_images/math/[0-9a-f]+\.svg)"', html)
        assert len(formulas) >= (10 if name in ("signal", "scale", "results") else 0), name
        assert all((site / f).stat().st_size > 0 for f in formulas), name


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def open_page(browser, url):
    """Load ``url``; return ``(page, problems, external requests, images)``."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    problems, external = [], []
    page.on("request", lambda r: None if r.url.startswith("http://127.0.0.1") else external.append(r.url))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])")
    title = page.title()
    context.close()
    return title, problems, external, images


@pytest.mark.slow
@pytest.mark.parametrize("path, min_images", [("index.html", 0), ("tutorials/first-run.html", 0),
                                              ("tutorials/sds-stationxml.html", 0),
                                              ("gallery/plot_record_section.html", 2),
                                              ("gallery/plot_dvv.html", 1),
                                              ("gallery/plot_availability.html", 1),
                                              ("gallery/plot_tile_plan.html", 2),
                                              ("gallery/plot_dispersion.html", 1),
                                              ("explanations/signal.html", 20),    # its equations
                                              ("explanations/scale.html", 20)])
def test_page_opens_in_chromium(browser, server, path, min_images):
    title, problems, external, images = open_page(browser, f"{server}/{path}")
    assert "noisecorr" in title
    assert problems == [] and external == [], (problems, external)
    assert len(images) >= min_images, images
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert broken == [], f"images that did not load: {broken}"
