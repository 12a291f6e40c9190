"""Fixtures of the provenance tests: one recorded run of the sample workflow, a live server.

The sample run (``noisecorr run --provenance`` on the bundled stations) is made once per
session; the server is the real Flask app on a loopback port chosen at run time, in a thread.
"""

import threading
from pathlib import Path

import pytest

from noisecorr.cli import main


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory):
    """``(store path, run id)`` of a recorded sequential run of the sample workflow."""
    out = tmp_path_factory.mktemp("sample") / "out"
    assert main(["-q", "run", "--out", str(out), "--provenance"]) == 0
    store = out / "provenance.sqlite"
    from noisecorr.provenance.store import Store

    with Store(store, create=False) as s:
        runs, _ = s.runs()
    assert len(runs) == 1
    return Path(store), runs[0]["run_id"]


@pytest.fixture(scope="session")
def server(sample_run):
    """Base URL of the provenance server over the sample run."""
    from noisecorr.provenance.server import serve

    srv = serve(str(sample_run[0]), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()
