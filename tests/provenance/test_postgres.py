"""The PostgreSQL store: record a run into a fresh database, read it back, export it.

Uses the server of ``scripts/services/postgres.sh`` (``NOISECORR_TEST_POSTGRES_URL``); each test
gets its own database. Without that variable the test fails, saying how to run it.
"""

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import pytest
from prov.model import ProvDocument

from noisecorr.testing import lineage_graphs as graphs
from noisecorr.engine import run
from noisecorr.provenance.export import document, export
from noisecorr.provenance.store import Store

PG_ENV = "NOISECORR_TEST_POSTGRES_URL"


@pytest.fixture
def pg_url():
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.fail(f"{PG_ENV} is not set: run the tests with `bash scripts/test.sh`, which starts PostgreSQL")
    import psycopg

    name = "prov_" + secrets.token_hex(6)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(base)
    yield urlunsplit(parts._replace(path="/" + name))
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_record_and_read_back_on_postgres(pg_url):
    g, inputs = graphs.graph()
    result = run(g, inputs=inputs, mapping="multiprocess", processes=3,
                 provenance={"store": pg_url, "run_id": "0123456789abcdef", "flush_every": 2})
    with Store(pg_url, create=False) as s:
        assert s.run(result.provenance_run_id)["status"] == "completed"
        (stack,), _ = s.entities("0123456789abcdef", pe="Stack")
        nodes, edges, truncated = s.lineage(stack["entity_id"], depth=10)
        raw = sorted(n["meta"]["seed_id"] for n in nodes if (n["pe"], n["port"]) == ("Fetch", "output"))
        assert raw == ["XX.A..Z"] * 3 + ["XX.B..Z"] * 3
        assert s.product(stack["entity_id"])[0] == "npz"
        doc = ProvDocument.deserialize(content=export(s, "0123456789abcdef", "json"), format="json")
        assert doc == document(s, "0123456789abcdef")
