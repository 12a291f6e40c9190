"""Which provenance store a ``noisecorr prov`` command opens, and why.

``noisecorr run --provenance`` records into ``OUT/provenance.sqlite`` beside the results, so
the readers accept an output folder as well as a store, and look for the default output
folder when given nothing. In order:

1. the store the user names (the ``STORE`` argument or ``--store``): a
   ``postgresql://`` URL, ``sqlite:///absolute/path``, a SQLite file, or an output folder of
   ``noisecorr run`` (its ``provenance.sqlite``; else the store its ``summary.json`` says the
   run recorded to, e.g. one given with ``--provenance-store``);
2. ``$NOISECORR_PROVENANCE_STORE`` (the same forms);
3. the default output folder of ``noisecorr run``: ``$NOISECORR_OUT``, else
   ``./noisecorr_output`` (:data:`noisecorr.workflow.config.DEFAULT_OUT`);
4. ``$XDG_DATA_HOME/noisecorr/provenance.sqlite``, where ``run(graph, provenance=True)``
   records when it is given no store.

A store that is named (1 or 2) must exist: a wrong name is an error, never a silent fall
through to another store. Only the defaults (3, 4) are searched, and when neither exists
:class:`StoreNotFound` lists every place looked at and how to point at a store.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as out:
...     _ = Store(Path(out) / FILENAME).close()
...     found = locate(out)
...     found.url == str((Path(out) / FILENAME).resolve()), found.origin.startswith("output folder")
(True, True)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .store import ENV, FILENAME, Store, StoreError, is_postgres, redact, sqlite_path, user_store

#: The first bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
#: The run report that ``noisecorr run`` writes in its output folder (names the store).
SUMMARY = "summary.json"


class StoreNotFound(StoreError):
    """No provenance store where one was named or looked for; the message says where and what to do."""


@dataclass(frozen=True)
class Located:
    """A store found by :func:`locate`.

    Attributes
    ----------
    url : str
        What :class:`~noisecorr.provenance.store.Store` opens: an absolute file path or a
        ``postgresql://`` URL.
    origin : str
        How it was found, for people (``"output folder noisecorr_output"``,
        ``"$NOISECORR_PROVENANCE_STORE"``, ...).
    """

    url: str
    origin: str

    def describe(self) -> str:
        """``"<store> (<origin>)"``, any password redacted."""
        return f"{redact(self.url)} ({self.origin})"


def locate(named=None, environ=None) -> Located:
    """The store to read: ``named`` if given, else the first default that exists (see the module).

    Parameters
    ----------
    named : str or os.PathLike or None
        A store URL, a SQLite file or an output folder of ``noisecorr run``.
    environ : mapping, optional
        Environment to read (default ``os.environ``).

    Returns
    -------
    Located

    Raises
    ------
    StoreNotFound
        ``named`` (or ``$NOISECORR_PROVENANCE_STORE``) names nothing usable, or no default
        store exists; the message lists where it looked.
    """
    environ = os.environ if environ is None else environ
    if named is not None and str(named).strip():
        return resolve(str(named), "given")
    if environ.get(ENV):
        return resolve(environ[ENV], f"${ENV}")
    from noisecorr.workflow.config import DEFAULT_OUT

    looked = []
    out = environ.get("NOISECORR_OUT") or DEFAULT_OUT
    found, why = _in_folder(Path(out), f"the default output folder of `noisecorr run`, {out}")
    if found is not None:
        return found
    looked.append(f"{Path(out).absolute() / FILENAME} (the default output folder of `noisecorr run`, {out}; "
                  f"$NOISECORR_OUT changes it): {why}")
    base = environ.get("XDG_DATA_HOME")
    user = Path(user_store(base))
    if user.is_file():
        return resolve(str(user), "the user store, $XDG_DATA_HOME/noisecorr")
    looked.append(f"{user} (the user store, $XDG_DATA_HOME/noisecorr, where run(graph, provenance=True) "
                  f"records): no such file")
    raise StoreNotFound(
        "no provenance store found; looked at:\n" + "".join(f"  - {p}\n" for p in looked)
        + "Record one with `noisecorr run --provenance`, or point at one: the output folder of that run "
          "(`noisecorr prov runs OUT`), --store PATH|sqlite:///PATH|postgresql://..., "
          f"or ${ENV}.")


def resolve(text, origin) -> Located:
    """The store that ``text`` names (a URL, a SQLite file or an output folder); it must exist.

    Raises
    ------
    StoreNotFound
        Nothing usable is there; the message names ``text`` and says what was expected.
    """
    if is_postgres(text):
        return Located(text, origin)
    path = sqlite_path(text).expanduser()  # StoreError for an unsupported scheme
    if path.is_dir():
        found, why = _in_folder(path, f"output folder {text}" + ("" if origin == "given" else f", from {origin}"))
        if found is None:
            raise StoreNotFound(f"{_where(path, origin)} is a folder without a provenance store: {why}. "
                                f"Give the --out folder of `noisecorr run --provenance`, or the store itself.")
        return found
    if not path.exists():
        raise StoreNotFound(f"no provenance store at {_where(path, origin)}: no such file or folder")
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise StoreNotFound(f"{_where(path, origin)} is not a provenance store: not a SQLite database "
                            f"(give the store, {FILENAME}, or the output folder that holds it)")
    return Located(str(path.resolve()), origin)


def _where(path, origin):
    return str(path) if origin == "given" else f"{path} ({origin})"


def _in_folder(folder: Path, origin):
    """``(Located, None)`` for the store of output folder ``folder``, else ``(None, why not)``."""
    store = folder / FILENAME
    if store.is_file():
        return resolve(str(store), origin), None
    if not folder.is_dir():
        return None, "no such folder"
    summary = folder / SUMMARY
    if not summary.is_file():
        return None, f"no {FILENAME} and no {SUMMARY} of a run"
    try:
        recorded = json.loads(summary.read_text(encoding="utf-8")).get("provenance")
    except (OSError, ValueError, AttributeError) as exc:
        raise StoreNotFound(f"{summary}: cannot read the run's report ({exc})") from None
    if not recorded:
        return None, f"no {FILENAME}, and its {SUMMARY} says the run did not record provenance (rerun with --provenance)"
    if not isinstance(recorded, dict) or not isinstance(recorded.get("store"), str):
        raise StoreNotFound(f"{summary}: field provenance.store is missing or not a string")
    named = recorded["store"]
    try:
        return resolve(named, f"recorded in {summary}"), None
    except StoreNotFound as exc:
        raise StoreNotFound(f"{summary} says the run recorded provenance to {redact(named)}, but: {exc}") from None


def open_located(found: Located) -> Store:
    """Open ``found`` without creating anything in it, and check that it has the provenance tables.

    Raises
    ------
    StoreError
        It cannot be opened, or it is a database without the provenance tables.
    """
    store = Store(found.url, create=False)
    try:
        store.check_schema()
    except StoreError:
        store.close()
        raise
    return store
