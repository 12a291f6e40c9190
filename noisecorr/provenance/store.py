"""Where provenance lives: SQLite (default) or PostgreSQL (psycopg 3), one schema for both.

Locations
---------
- ``noisecorr run --provenance``: ``<out>/provenance.sqlite`` beside the results;
- ``run(graph, provenance=True)`` and ``noisecorr prov`` without ``--store``:
  ``$NOISECORR_PROVENANCE_STORE`` if set, else ``$XDG_DATA_HOME/noisecorr/provenance.sqlite``
  (``~/.local/share/noisecorr/provenance.sqlite``);
- a URL: a file path, ``sqlite:///absolute/path`` or ``postgresql://user@host:port/db``.

Schema (all ids are hex digests, see :mod:`noisecorr.provenance.ids`)::

    runs(run_id PK, started, finished, status, mapping, processes, user_name, software,
         version, host, config JSON, graph JSON, rules JSON)
    activities(activity_id PK, run_id, pe, kind, instance, worker, started, ended)
    entities(entity_id PK, run_id, pe, port, activity_id, label, meta JSON, summary, stored)
    used(run_id, activity_id, entity_id)          -- prov:used
    derived(run_id, entity_id, source_id)         -- prov:wasDerivedFrom
    meta(run_id, entity_id, key, value)           -- metadata, one row per key, for search
    products(entity_id PK, run_id, format, nbytes, data)  -- items stored in full (npz)

Data products are rows, not files: nothing a client asks for can name a path.
Writers insert with ``ON CONFLICT DO NOTHING`` in one transaction per batch, so a batch
written twice (a retried flush) changes nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

#: Environment variable naming the default provenance store (path or URL).
ENV = "NOISECORR_PROVENANCE_STORE"
#: File name of a run's store beside its results.
FILENAME = "provenance.sqlite"

TABLES = {
    "runs": ("run_id TEXT PRIMARY KEY, started TEXT, finished TEXT, status TEXT, mapping TEXT, "
             "processes INTEGER, user_name TEXT, software TEXT, version TEXT, host TEXT, config TEXT, "
             "graph TEXT, rules TEXT"),
    "activities": ("activity_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, pe TEXT, kind TEXT, instance INTEGER, "
                   "worker INTEGER, started DOUBLE PRECISION, ended DOUBLE PRECISION"),
    "entities": ("entity_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, pe TEXT, port TEXT, activity_id TEXT, "
                 "label TEXT, meta TEXT, summary TEXT, stored INTEGER"),
    "used": "run_id TEXT NOT NULL, activity_id TEXT NOT NULL, entity_id TEXT NOT NULL, PRIMARY KEY (activity_id, entity_id)",
    "derived": "run_id TEXT NOT NULL, entity_id TEXT NOT NULL, source_id TEXT NOT NULL, PRIMARY KEY (entity_id, source_id)",
    "meta": "run_id TEXT NOT NULL, entity_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY (entity_id, key)",
    "products": "entity_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, format TEXT, nbytes INTEGER, data {blob}",
}
INDEXES = (
    "CREATE INDEX IF NOT EXISTS activities_run ON activities (run_id, pe)",
    "CREATE INDEX IF NOT EXISTS entities_run ON entities (run_id, pe, port)",
    "CREATE INDEX IF NOT EXISTS entities_activity ON entities (activity_id)",
    "CREATE INDEX IF NOT EXISTS derived_source ON derived (source_id)",
    "CREATE INDEX IF NOT EXISTS used_entity ON used (entity_id)",
    "CREATE INDEX IF NOT EXISTS meta_search ON meta (run_id, key, value)",
    "CREATE INDEX IF NOT EXISTS meta_key ON meta (key, value)",
)
#: Columns inserted per record kind (the recorder's buffers use the same order).
COLUMNS = {
    "activities": ("activity_id", "run_id", "pe", "kind", "instance", "worker", "started", "ended"),
    "entities": ("entity_id", "run_id", "pe", "port", "activity_id", "label", "meta", "summary", "stored"),
    "used": ("run_id", "activity_id", "entity_id"),
    "derived": ("run_id", "entity_id", "source_id"),
    "meta": ("run_id", "entity_id", "key", "value"),
    "products": ("entity_id", "run_id", "format", "nbytes", "data"),
}


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message names it (password redacted)."""


def default_url() -> str:
    """``$NOISECORR_PROVENANCE_STORE`` or ``$XDG_DATA_HOME/noisecorr/provenance.sqlite``."""
    env = os.environ.get(ENV)
    if env:
        return env
    return user_store()


def user_store(data_home=None) -> str:
    """``<data_home>/noisecorr/provenance.sqlite``; ``data_home`` defaults to ``$XDG_DATA_HOME``,
    else ``~/.local/share``."""
    base = data_home or os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return str(Path(base) / "noisecorr" / FILENAME)


def redact(url) -> str:
    """``url`` with any password replaced by ``***``."""
    text = str(url)
    parts = urlsplit(text)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return text


def is_postgres(url) -> bool:
    return str(url).startswith(("postgresql://", "postgres://"))


def sqlite_path(url) -> Path:
    """The file of a SQLite store URL or path."""
    text = str(url)
    if text.startswith("sqlite://"):
        text = text[len("sqlite://"):]
        if not text.startswith("/"):
            raise StoreError(f"invalid SQLite URL {url!r}: use sqlite:///absolute/path or a plain file path")
    elif "://" in text:
        raise StoreError(f"unsupported provenance store {redact(url)!r}: give a file path, sqlite:///path or postgresql://...")
    return Path(text)


class Store:
    """A connection to a provenance store (thread-safe: one lock around each statement).

    Parameters
    ----------
    url : str
        A file path, ``sqlite:///path`` or a ``postgresql://`` URL.
    create : bool
        Create the schema if missing (writers do; readers of a missing file fail).
    """

    def __init__(self, url, create=True):
        self.url = str(url)
        self.lock = threading.RLock()
        self.postgres = is_postgres(self.url)
        if self.postgres:
            try:
                import psycopg
            except ImportError:
                raise StoreError("a PostgreSQL provenance store needs psycopg: pip install 'noisecorr[registry]'") from None
            try:
                self.conn = psycopg.connect(self.url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(f"cannot connect to {redact(self.url)}: {exc}") from None
            self._blob = "BYTEA"
        else:
            path = sqlite_path(self.url)
            if not create and not path.exists():
                raise StoreError(f"no provenance store at {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit off by hand: transactions are explicit (BEGIN IMMEDIATE for writers)
            self.conn = sqlite3.connect(str(path), timeout=120, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._blob = "BLOB"
        if create:
            self.create_schema()

    # -- plumbing -------------------------------------------------------------------------
    def _sql(self, sql):
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql, params=()):
        with self.lock:
            return self.conn.execute(self._sql(sql), params)

    def all(self, sql, params=()):
        with self.lock:
            return [tuple(r) for r in self.conn.execute(self._sql(sql), params).fetchall()]

    def one(self, sql, params=()):
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def create_schema(self):
        with self.lock:
            if self.postgres:
                with self.conn.transaction():
                    # one creator at a time (several worker processes may open a new database)
                    self.conn.execute("SELECT pg_advisory_xact_lock(7306251)")
                    for name, cols in TABLES.items():
                        self.conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols.format(blob=self._blob)})")
                    for sql in INDEXES:
                        self.conn.execute(sql)
            else:
                self._retry(self._create_sqlite)

    def _create_sqlite(self):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for name, cols in TABLES.items():
                self.conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols.format(blob=self._blob)})")
            for sql in INDEXES:
                self.conn.execute(sql)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _retry(fn, attempts=20):
        for i in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or i == attempts - 1:
                    raise
                time.sleep(0.05 * (i + 1))

    def close(self):
        with self.lock:
            self.conn.close()

    def check_schema(self):
        """Raise :class:`StoreError` naming the store unless it has the provenance tables
        (a reader given another database, e.g. a PE registry, fails here, not mid-query)."""
        if self.postgres:
            found = {r[0] for r in self.all("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = current_schema()")}
        else:
            found = {r[0] for r in self.all("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in TABLES if t not in found]
        if missing:
            raise StoreError(f"{redact(self.url)} is not a provenance store: no table {', '.join(missing)}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing --------------------------------------------------------------------------
    def write(self, batch: dict):
        """Insert ``{table: [row tuples]}`` in one transaction (rows already present are kept)."""
        statements = []
        for table, rows in batch.items():
            if rows:
                cols = COLUMNS[table]
                sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                       "ON CONFLICT DO NOTHING")
                statements.append((self._sql(sql), rows))
        if not statements:
            return
        with self.lock:
            if self.postgres:
                with self.conn.transaction():
                    with self.conn.cursor() as cur:
                        for sql, rows in statements:
                            cur.executemany(sql, rows)
            else:
                def tx():
                    self.conn.execute("BEGIN IMMEDIATE")
                    try:
                        for sql, rows in statements:
                            self.conn.executemany(sql, rows)
                        self.conn.execute("COMMIT")
                    except BaseException:
                        self.conn.execute("ROLLBACK")
                        raise
                self._retry(tx)

    def begin_run(self, run: dict):
        """Record the bundle of a run (``run`` has the ``runs`` columns; JSON fields as objects)."""
        row = dict(run)
        for k in ("config", "graph", "rules"):
            row[k] = json.dumps(row.get(k), sort_keys=True, default=str)
        cols = ("run_id", "started", "finished", "status", "mapping", "processes", "user_name", "software",
                "version", "host", "config", "graph", "rules")
        sql = (f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
               "ON CONFLICT DO NOTHING")
        with self.lock:
            self.conn.execute(self._sql(sql), tuple(row.get(c) for c in cols))

    def end_run(self, run_id, status, finished):
        self.execute("UPDATE runs SET status = ?, finished = ? WHERE run_id = ?", (status, finished, run_id))

    # -- reading --------------------------------------------------------------------------
    RUN_COLS = ("run_id", "started", "finished", "status", "mapping", "processes", "user_name", "software",
                "version", "host", "config", "graph", "rules")

    def runs(self, offset=0, limit=50):
        rows = self.all(f"SELECT {', '.join(self.RUN_COLS[:10])} FROM runs ORDER BY started DESC, run_id "
                        "LIMIT ? OFFSET ?", (limit, offset))
        total = self.one("SELECT COUNT(*) FROM runs")[0]
        return [dict(zip(self.RUN_COLS, r)) for r in rows], total

    def run(self, run_id):
        row = self.one(f"SELECT {', '.join(self.RUN_COLS)} FROM runs WHERE run_id = ?", (run_id,))
        if row is None:
            return None
        out = dict(zip(self.RUN_COLS, row))
        for k in ("config", "graph", "rules"):
            out[k] = json.loads(out[k]) if out[k] else None
        return out

    def run_counts(self, run_id):
        """``{pe: {"activities": n, "entities": {port: n}, "stored": n}}``."""
        counts = {}
        for pe, n in self.all("SELECT pe, COUNT(*) FROM activities WHERE run_id = ? GROUP BY pe", (run_id,)):
            counts.setdefault(pe, {"activities": 0, "entities": {}, "stored": 0})["activities"] = n
        for pe, port, n, s in self.all("SELECT pe, port, COUNT(*), SUM(stored) FROM entities WHERE run_id = ? "
                                       "GROUP BY pe, port", (run_id,)):
            c = counts.setdefault(pe, {"activities": 0, "entities": {}, "stored": 0})
            c["entities"][port] = n
            c["stored"] += int(s or 0)
        return counts

    ENTITY_COLS = ("entity_id", "run_id", "pe", "port", "activity_id", "label", "meta", "summary", "stored")

    def _entities(self, where, params, limit=None, offset=0):
        sql = f"SELECT {', '.join('e.' + c for c in self.ENTITY_COLS)} FROM entities e WHERE {where} ORDER BY e.pe, e.label, e.entity_id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params = tuple(params) + (limit, offset)
        out = []
        for r in self.all(sql, params):
            d = dict(zip(self.ENTITY_COLS, r))
            d["meta"] = json.loads(d["meta"]) if d["meta"] else {}
            d["stored"] = bool(d["stored"])
            out.append(d)
        return out

    def entity(self, entity_id):
        found = self._entities("e.entity_id = ?", (entity_id,))
        if not found:
            return None
        e = found[0]
        e["derived_from"] = [r[0] for r in self.all("SELECT source_id FROM derived WHERE entity_id = ? ORDER BY source_id", (entity_id,))]
        e["used_by"] = [r[0] for r in self.all("SELECT activity_id FROM used WHERE entity_id = ? ORDER BY activity_id", (entity_id,))]
        act = self.one("SELECT activity_id, pe, kind, instance, worker, started, ended FROM activities WHERE activity_id = ?",
                       (e["activity_id"],))
        e["activity"] = dict(zip(("activity_id", "pe", "kind", "instance", "worker", "started", "ended"), act)) if act else None
        return e

    def entities(self, run_id, pe=None, port=None, stored=None, limit=50, offset=0):
        where, params = ["e.run_id = ?"], [run_id]
        if pe is not None:
            where.append("e.pe = ?")
            params.append(pe)
        if port is not None:
            where.append("e.port = ?")
            params.append(port)
        if stored is not None:
            where.append("e.stored = ?")
            params.append(1 if stored else 0)
        w = " AND ".join(where)
        total = self.one(f"SELECT COUNT(*) FROM entities e WHERE {w}", tuple(params))[0]
        return self._entities(w, params, limit, offset), total

    def search(self, run_id=None, conditions=(), pe=None, limit=50, offset=0):
        """Entities whose metadata ``key`` equals ``value`` for every ``(key, value)`` condition."""
        where, params = [], []
        if run_id is not None:
            where.append("e.run_id = ?")
            params.append(run_id)
        if pe is not None:
            where.append("e.pe = ?")
            params.append(pe)
        for key, value in conditions:
            where.append("EXISTS (SELECT 1 FROM meta m WHERE m.entity_id = e.entity_id AND m.key = ? AND m.value = ?)")
            params += [key, value]
        w = " AND ".join(where) or "1 = 1"
        total = self.one(f"SELECT COUNT(*) FROM entities e WHERE {w}", tuple(params))[0]
        return self._entities(w, params, limit, offset), total

    def lineage(self, entity_id, direction="ancestors", depth=3, max_nodes=2000):
        """Entities reachable through derivations, breadth first, up to ``depth`` steps.

        Returns ``(nodes, edges, truncated)``; ``edges`` are ``(entity, derived_from)`` pairs.
        """
        if direction == "ancestors":
            q_col, r_col = "entity_id", "source_id"
        else:
            q_col, r_col = "source_id", "entity_id"
        seen = {entity_id}
        frontier = [entity_id]
        edges = set()
        truncated = False
        for _ in range(depth):
            if not frontier:
                break
            nxt = []
            for i in range(0, len(frontier), 500):
                part = frontier[i:i + 500]
                marks = ", ".join("?" * len(part))
                for a, b in self.all(f"SELECT {q_col}, {r_col} FROM derived WHERE {q_col} IN ({marks})", tuple(part)):
                    edges.add((a, b) if direction == "ancestors" else (b, a))
                    if b not in seen:
                        if len(seen) >= max_nodes:
                            truncated = True
                            continue
                        seen.add(b)
                        nxt.append(b)
            frontier = nxt
        if frontier and depth > 0:
            # are there more steps beyond the depth asked for?
            marks = ", ".join("?" * min(len(frontier), 500))
            more = self.one(f"SELECT COUNT(*) FROM derived WHERE {q_col} IN ({marks})", tuple(frontier[:500]))[0]
            truncated = truncated or bool(more)
        nodes = []
        ids = sorted(seen)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            nodes += self._entities(f"e.entity_id IN ({', '.join('?' * len(part))})", part)
        keep = {n["entity_id"] for n in nodes}
        edges = sorted((a, b) for a, b in edges if a in keep and b in keep)
        return nodes, edges, truncated

    def product(self, entity_id):
        """``(format, bytes)`` of a stored item, or ``None``."""
        row = self.one("SELECT format, data FROM products WHERE entity_id = ?", (entity_id,))
        return None if row is None else (row[0], bytes(row[1]))

    def dump(self, run_id):
        """Every record of a run (for export)."""
        acts = self.all("SELECT activity_id, pe, kind, instance, worker, started, ended FROM activities "
                        "WHERE run_id = ? ORDER BY activity_id", (run_id,))
        ents = self._entities("e.run_id = ?", (run_id,))
        used = self.all("SELECT activity_id, entity_id FROM used WHERE run_id = ? ORDER BY activity_id, entity_id", (run_id,))
        derived = self.all("SELECT entity_id, source_id FROM derived WHERE run_id = ? ORDER BY entity_id, source_id", (run_id,))
        return acts, ents, used, derived
