"""Fixtures of the registry tests: a fresh registry per test on SQLite and on PostgreSQL.

PostgreSQL tests use the server that ``scripts/services/postgres.sh`` starts (through
``bash scripts/test.sh``), reached through ``NOISECORR_TEST_POSTGRES_URL``; each test gets its
own database on it. Without that variable they fail, saying how to run them; they never skip.
"""

import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_ENV = "NOISECORR_TEST_POSTGRES_URL"

#: A module with three PEs (one needing constructor arguments), an imported PE that is not
#: its own, and two exported workflows (a decorated builder and a listed graph).
WORKFLOW_SOURCE = textwrap.dedent('''
    """Numbers squared and summed: a small workflow for the registry tests."""
    from noisecorr.engine import GenericPE, IterativePE, ProducerPE, WorkflowGraph
    from noisecorr.engine.examples import Doubler  # imported, so not registered from here
    from noisecorr.registry import export_workflow

    __requires__ = ["numpy>=1.0"]

    OFFSET = 0


    class Numbers(ProducerPE):
        """Writes 0 .. n-1 (plus OFFSET).

        A module global is used, so it must travel with the class to worker processes.
        """

        def __init__(self, n=10):
            super().__init__()
            self.n = n

        def _process(self, inputs):
            for i in range(self.n):
                self.write("output", i + OFFSET)


    class Square(IterativePE):
        """Squares each number."""

        requirements = ["cloudpickle>=2"]

        def _process(self, x):
            return x * x


    class Total(GenericPE):
        """Sums everything it receives in one global instance."""

        def __init__(self, label):
            super().__init__()
            self._add_input("input", grouping="global")
            self._add_output("total")
            self.label = label
            self.sum = 0

        def process(self, inputs):
            self.sum += inputs["input"]

        def postprocess(self):
            self.write("total", (self.label, self.sum))


    @export_workflow
    def squares(n=10):
        """Square 0 .. n-1 and sum them."""
        graph = WorkflowGraph()
        src, sq, tot = Numbers(n), Square(), Total("sum")
        graph.connect(src, "output", sq, "input")
        graph.connect(sq, "output", tot, "input")
        return graph


    small = squares(4)
    __workflows__ = ["small"]
''')


@pytest.fixture
def workflow_file(tmp_path):
    path = tmp_path / "squares_wf.py"
    path.write_text(WORKFLOW_SOURCE)
    return path


@pytest.fixture(autouse=True)
def keys(tmp_path_factory, monkeypatch):
    """Each test signs with a fresh key that it trusts, in files outside ``~/.config``.

    Set through the environment, so ``noisecorr`` subprocesses use the same files.
    """
    from noisecorr.registry.signing import SIGNING_KEY_ENV, TRUSTED_KEYS_ENV, TrustedKeys, generate_key

    folder = tmp_path_factory.mktemp("keys")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder / "config"))  # never the real one
    key = generate_key(folder / "signing_key", name="Test Author")
    trusted = TrustedKeys(folder / "trusted_keys")
    trusted.add(key.public)
    monkeypatch.setenv(SIGNING_KEY_ENV, str(key.path))
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(trusted.path))
    return SimpleNamespace(key=key, trusted=trusted, folder=folder)


def pg_admin_url():
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.fail(f"{PG_ENV} is not set: the PostgreSQL registry tests need the server that "
                    "scripts/services/postgres.sh starts; run them through `bash scripts/test.sh` "
                    "(e.g. `bash scripts/test.sh tests/registry`)")
    return url


def with_database(url, name):
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture
def pg_database():
    """A fresh PostgreSQL database (URL), dropped after the test."""
    import psycopg

    admin = pg_admin_url()
    name = "noisecorr_reg_" + secrets.token_hex(6)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request, tmp_path):
    """A URL of an empty registry, on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "registry" / "registry.sqlite")
    return request.getfixturevalue("pg_database")


@pytest.fixture
def registry(registry_url):
    from noisecorr.registry import Registry

    return Registry(registry_url)


def raw_execute(url, sql, params=()):
    """Run SQL on the registry database directly, around the package: rows, or the row count."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else cur.rowcount
    import sqlite3

    conn = sqlite3.connect(url, isolation_level=None)
    try:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else cur.rowcount
    finally:
        conn.close()


def downgrade_to_unsigned_schema(url):
    """Make a registry look as one from before signatures (schema 2): drop their columns."""
    for column in ("signature", "signer_key", "signer_name"):
        raw_execute(url, f"ALTER TABLE entries DROP COLUMN {column}")
    raw_execute(url, "DELETE FROM schema_version WHERE version > 2")


def run_cli(*args, env=None, timeout=120):
    """``python -m noisecorr ARGS`` in a fresh process; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "noisecorr", *map(str, args)], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
