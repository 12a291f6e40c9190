"""The :class:`Registry`: add, find, load, sign, remove, export and import PEs and workflows."""

from __future__ import annotations

import ast
import importlib
import inspect
import importlib.util
import json
import logging
import os
import pkgutil
from contextlib import contextmanager
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import loader
from .discover import discover, registry_uses
from .errors import ConflictError, NotFoundError, RegistryError, SignatureError, UntrustedError
from .names import DEFAULT_WORKSPACE, Ref, check_identifier, check_version, parse_ref
from .signing import (SigningKey, TrustedKeys, default_signing_key_path, key_id, load_signing_key, signed_payload,
                      verify_signature)
from .store import latest_schema_version, migrate, open_backend, redact, utcnow

log = logging.getLogger("noisecorr.registry")

#: Package whose modules ``add_builtin`` registers, and the workspace they go to.
BUILTIN_PACKAGE = "pes"
BUILTIN_WORKSPACE = "noisecorr"
#: Registered by ``add_builtin`` after the PEs: the ambient-noise workflow itself.
BUILTIN_WORKFLOWS = "noisecorr.registry.builtin_workflows"

_COLUMNS = ("id", "workspace", "name", "version", "kind", "module", "package", "qualname", "filename",
            "sha256", "summary", "doc", "ports", "requirements", "uses", "created_at",
            "signature", "signer_key", "signer_name")
_JSON_COLUMNS = ("ports", "requirements", "uses")


@dataclass(frozen=True)
class Entry:
    """One registered PE class or workflow at one version (metadata; the source is separate).

    ``signature`` is the base64 Ed25519 signature (see :mod:`noisecorr.registry.signing`)
    by the public key ``signer_key`` (base64), whose holder called themself ``signer_name``;
    all three are None for an unsigned entry.
    """

    workspace: str
    name: str
    version: int
    kind: str
    module: str
    package: str | None
    qualname: str
    filename: str | None
    sha256: str
    summary: str
    doc: str
    ports: dict
    requirements: list
    uses: list
    created_at: str
    tags: tuple = ()
    signature: str | None = None
    signer_key: str | None = None
    signer_name: str | None = None
    id: int | None = field(default=None, compare=False, repr=False)

    @property
    def full_name(self):
        return f"{self.workspace}.{self.name}"

    @property
    def ref(self):
        return f"{self.workspace}.{self.name}@{self.version}"

    @property
    def signer_id(self):
        """Key id of the signer (16 hex digits), or None when unsigned."""
        return key_id(self.signer_key) if self.signer_key else None

    def to_dict(self):
        d = asdict(self)
        d.pop("id")
        d["tags"] = list(self.tags)
        return d


@dataclass(frozen=True)
class Added:
    """What :meth:`Registry.add` did for one entry: ``status`` is "added", "unchanged" or
    "signed" (unchanged, but an unsigned entry now carries your signature)."""

    entry: Entry
    status: str


@dataclass(frozen=True)
class Trust:
    """Whether an entry's code may run, and why (from :meth:`Registry.trust_of`).

    ``state`` is one of:

    ``"trusted"``
        signed, the signature matches, and the key is in your trusted keys
        (``trusted_name``: the name you gave that key);
    ``"builtin"``
        its source is byte for byte a module of the installed noisecorr (``pes.*`` or the
        built-in workflows) under its own name in workspace ``noisecorr``: trusted as
        the installed package is;
    ``"unsigned"``
        no signature;
    ``"untrusted"``
        the signature matches, but the key is not in your trusted keys;
    ``"bad"``
        the signature does not match the source and metadata (changed after signing).
    """

    state: str
    entry: Entry
    trusted_name: str | None = None

    @property
    def ok(self):
        """True when loading runs the code without ``allow_unsigned``."""
        return self.state in ("trusted", "builtin")

    def describe(self):
        """One line for people: who signed, and whether you trust them."""
        e = self.entry
        signer = f"{e.signer_name or '(no name)'} (key {e.signer_id})" if e.signature else None
        if self.state == "trusted":
            return f"signed by {signer}, trusted as {self.trusted_name!r}"
        if self.state == "builtin":
            extra = f"; signed by {signer}, not a trusted key" if signer else ""
            return f"built-in: identical to module {e.module} of the installed noisecorr{extra}"
        if self.state == "untrusted":
            return (f"signed by {signer}, NOT a trusted key "
                    "(loading needs `noisecorr registry trust` or --trust-unsigned)")
        if self.state == "bad":
            return f"BAD SIGNATURE: claims {signer}, but source or metadata changed after signing (never loaded)"
        return "unsigned (loading needs `noisecorr registry sign` or --trust-unsigned)"


class Registry:
    """A store of PE classes and workflows with their source, shared through a database.

    Entries are signed with your Ed25519 key when you add them, and only entries signed by
    a key you trust (or identical to the installed noisecorr's own modules) are run when
    loaded; see :mod:`noisecorr.registry.signing`.

    Parameters
    ----------
    url : str or path, optional
        A SQLite file path (or ``sqlite:///absolute/path``) or a PostgreSQL URL
        (``postgresql://user[:password]@host:port/dbname``, needs ``noisecorr[registry]``).
        Default: ``$NOISECORR_REGISTRY``, else ``$XDG_DATA_HOME/noisecorr/registry.sqlite``
        (``~/.local/share/noisecorr/registry.sqlite``).
    trusted_keys : str, path or TrustedKeys, optional
        Your trusted public keys. Default ``$NOISECORR_TRUSTED_KEYS``, else
        ``$XDG_CONFIG_HOME/noisecorr/trusted_keys`` (``~/.config/noisecorr/trusted_keys``).
    signing_key : str, path or SigningKey, optional
        The key that signs what you add. Default ``$NOISECORR_SIGNING_KEY``, else
        ``$XDG_CONFIG_HOME/noisecorr/signing_key``; without a key file, entries are added
        unsigned (with a warning).

    Examples
    --------
    >>> import tempfile, os
    >>> from noisecorr.registry.signing import generate_key
    >>> home = tempfile.mkdtemp()
    >>> key = generate_key(os.path.join(home, "signing_key"), name="Demo Author")
    >>> reg = Registry(os.path.join(home, "registry.sqlite"), signing_key=key,
    ...                trusted_keys=os.path.join(home, "trusted_keys"))
    >>> [a.entry.ref for a in reg.add("noisecorr.engine.examples", workspace="demo")][:2]
    ['demo.NumberSource@1', 'demo.Doubler@1']
    >>> reg.trust_of("demo.Doubler").state          # your own key is not trusted by itself
    'untrusted'
    >>> reg.trusted_keys.add(key.public)
    True
    >>> reg.load_pe("demo.Doubler")().name
    'Doubler'
    """

    def __init__(self, url=None, trusted_keys=None, signing_key=None):
        self.backend = open_backend(url)
        self.url = self.backend.url
        self._migrated = False
        self.trusted_keys = trusted_keys if isinstance(trusted_keys, TrustedKeys) else TrustedKeys(trusted_keys)
        self._signing_key_arg = signing_key
        self._signing_key = signing_key if isinstance(signing_key, SigningKey) else None

    def __repr__(self):
        return f"Registry({redact(self.url)!r})"

    @contextmanager
    def _connect(self):
        conn = self.backend.connect()
        try:
            if not self._migrated:
                migrate(self.backend, conn)
                self._migrated = True
            yield conn
        finally:
            conn.close()

    def signing_key(self, required=False):
        """Your :class:`~noisecorr.registry.signing.SigningKey`, or None when there is none."""
        if self._signing_key is None:
            self._signing_key = load_signing_key(self._signing_key_arg, required=required)
        return self._signing_key

    @contextmanager
    def _writing(self):
        with self._connect() as conn, self.backend.transaction(conn, write=True):
            self.backend.lock_for_write(conn)
            yield conn

    def info(self):
        """Where the registry is, its schema version and how many entries it holds."""
        with self._connect() as conn:
            version = conn.one("SELECT MAX(version) FROM schema_version")[0]
            entries = conn.one("SELECT COUNT(*) FROM entries")[0]
            names = conn.one("SELECT COUNT(*) FROM (SELECT DISTINCT workspace, name FROM entries) AS d")[0]
            workspaces = [r[0] for r in conn.all("SELECT DISTINCT workspace FROM entries ORDER BY workspace")]
        return {"url": redact(self.url), "backend": self.backend.describe(), "schema_version": version,
                "latest_schema_version": latest_schema_version(self.backend.dialect),
                "entries": entries, "names": names, "workspaces": workspaces}

    # -- adding -------------------------------------------------------------------------------
    def add(self, target, workspace=DEFAULT_WORKSPACE, version=None, tags=()):
        """Register the PEs and exported workflows of a module (``FILE.py`` or a module name).

        Every entry stores the whole module source and its sha256. Without ``version`` each
        name gets its next version, unless its latest version has the same source (then it
        is left as it is, new tags added). With ``version``, an existing entry of that
        version must have the same source.

        Returns
        -------
        list of Added
        """
        module, source, meta, temporary = self._import_for_add(target)
        try:
            return self._add_module(module, source, meta, workspace, version, tags)
        finally:
            if temporary:
                loader.forget_module(module.__name__)

    def add_builtin(self, tags=()):
        """Register every module of the ready-made ``pes`` package into workspace ``noisecorr``,
        and the ambient-noise workflow (``noisecorr.ambient_noise``), tagged ``builtin``."""
        try:
            package = importlib.import_module(BUILTIN_PACKAGE)
        except ImportError as exc:
            raise RegistryError(f"cannot import the ready-made PEs ({BUILTIN_PACKAGE}): {exc}") from exc
        added = []
        modules = [f"{BUILTIN_PACKAGE}.{info.name}"
                   for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name)
                   if not info.ispkg and not info.name.startswith("_")]
        for name in modules + [BUILTIN_WORKFLOWS]:
            try:
                added.extend(self.add(name, workspace=BUILTIN_WORKSPACE, tags=("builtin", *tags)))
            except _NothingToRegister:
                log.info("%s defines no PE or exported workflow; skipped", name)
        return added

    def _import_for_add(self, target):
        target = str(target)
        path = Path(target)
        if target.endswith(".py") or os.sep in target or path.is_file():
            if not path.is_file():
                raise RegistryError(f"no such file: {path}")
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise RegistryError(f"cannot read {path}: {exc}") from exc
            stem = path.stem
            name = f"_noisecorr_registry_add__{loader.sha256_text(str(path.resolve()))[:12]}__{stem}"
            loader.forget_module(name)
            module = loader.exec_module(name, source, str(path), registry=self, by_value=False)
            return module, source, {"module": stem, "package": None, "filename": path.name}, True
        token = loader.active_registry.set(self)
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise RegistryError(f"cannot import module {target!r}: {exc}") from exc
        finally:
            loader.active_registry.reset(token)
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError) as exc:
            raise RegistryError(f"cannot read the source of module {target!r}: {exc}") from exc
        filename = os.path.basename(getattr(module, "__file__", "") or "") or None
        return module, source, {"module": module.__name__, "package": module.__package__ or None,
                                "filename": filename}, False

    def _add_module(self, module, source, meta, workspace, version, tags):
        check_identifier(workspace, "workspace")
        if version is not None:
            version = check_version(version)
        tags = _check_tags(tags)
        found = discover(module, source)
        if not found:
            raise _NothingToRegister(
                f"{meta['module']} defines no PE class (a GenericPE subclass defined in it) and no exported "
                "workflow (@export_workflow or __workflows__); nothing to register"
            )
        sha = loader.sha256_text(source)
        uses = registry_uses(ast.parse(source))
        signer = self.signing_key()
        if signer is None:
            log.warning("no signing key (%s): the entries of %s are stored unsigned, and loading them will need "
                        "--trust-unsigned (allow_unsigned=True); make a key with `noisecorr registry keygen`",
                        self._signing_key_arg or default_signing_key_path(),
                        meta["module"])
        results = []
        with self._writing() as conn:
            conn.execute("INSERT INTO sources (sha256, source) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
                         (sha, source))
            for f in found:
                entry = Entry(workspace, f.name, 0, f.kind, meta["module"], meta["package"], f.qualname,
                              meta["filename"], sha, f.summary, f.doc, f.ports, f.requirements, uses, utcnow(),
                              tags)
                results.append(self._insert(conn, entry, version, source, signer))
        for r in results:
            log.debug("registry %s: %s %s (%s)", redact(self.url), r.status, r.entry.ref, r.entry.kind)
        return results

    def _insert(self, conn, entry, version, source, signer=None):
        """Insert ``entry`` at ``version`` (None: next free), inside a write transaction.

        With ``signer``, a new entry without a signature is signed, and so is an existing
        unsigned one that is identical to ``entry`` but for version, time and tags.
        """
        rows = conn.all("SELECT version, sha256, id FROM entries WHERE workspace = ? AND name = ? "
                        "ORDER BY version", (entry.workspace, entry.name))
        existing = None
        if version is not None:
            existing = next((r for r in rows if r[0] == version), None)
            if existing is not None and existing[1] != entry.sha256:
                raise ConflictError(
                    f"{entry.workspace}.{entry.name}@{version} already exists with different source "
                    f"(sha256 {existing[1][:12]}..., new {entry.sha256[:12]}...); versions are immutable: "
                    "omit the version to add the next one, or remove that version first"
                )
        elif rows and rows[-1][1] == entry.sha256:
            existing = rows[-1]
        if existing is not None:
            for tag in entry.tags:
                conn.execute("INSERT INTO tags (entry_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             (existing[2], tag))
            stored = self._entries(conn, "e.id = ?", (existing[2],))[0]
            if signer is not None and stored.signature is None and entry.signature is None \
                    and _same_entry(entry, stored):
                # the same module added again by a key holder: they vouch for exactly this entry
                return Added(self._sign_stored(conn, stored, source, signer), "signed")
            return Added(stored, "unchanged")
        version = version if version is not None else (rows[-1][0] + 1 if rows else 1)
        values = {**entry.to_dict(), "version": version}
        if signer is not None and entry.signature is None:
            values.update(_signature_fields(values, source, signer))
        cols = [c for c in _COLUMNS if c != "id"]
        params = [json.dumps(values[c]) if c in _JSON_COLUMNS else values[c] for c in cols]
        new_id = conn.one(f"INSERT INTO entries ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                          "RETURNING id", params)[0]
        for tag in entry.tags:
            conn.execute("INSERT INTO tags (entry_id, tag) VALUES (?, ?)", (new_id, tag))
        return Added(self._entries(conn, "e.id = ?", (new_id,))[0], "added")

    # -- finding ------------------------------------------------------------------------------
    def _entries(self, conn, where="1 = 1", params=()):
        cols = ", ".join(f"e.{c}" for c in _COLUMNS)
        rows = conn.all(f"SELECT {cols} FROM entries e WHERE {where}", params)
        # sorted here, not by the database, whose collation differs between servers
        rows.sort(key=lambda r: (r[1], r[2], r[3]))
        tags = {}
        if rows:
            ids = [r[0] for r in rows]
            for entry_id, tag in conn.all(f"SELECT entry_id, tag FROM tags WHERE entry_id IN "
                                          f"({', '.join('?' * len(ids))}) ORDER BY tag", ids):
                tags.setdefault(entry_id, []).append(tag)
        out = []
        for row in rows:
            d = dict(zip(_COLUMNS, row))
            for c in _JSON_COLUMNS:
                d[c] = json.loads(d[c])
            out.append(Entry(**d, tags=tuple(tags.get(d["id"], ()))))
        return out

    def _resolve(self, conn, ref, kind=None):
        ref = ref if isinstance(ref, Ref) else parse_ref(ref)
        where, params = "e.workspace = ? AND e.name = ?", [ref.workspace, ref.name]
        entries = self._entries(conn, where, params)
        if kind is not None:
            entries = [e for e in entries if e.kind == kind]
        if ref.version is not None:
            entries = [e for e in entries if e.version == ref.version]
        if not entries:
            raise NotFoundError(self._not_found_message(conn, ref, kind))
        return entries[-1]

    def _not_found_message(self, conn, ref, kind):
        what = {"pe": "PE", "workflow": "workflow"}.get(kind, "entry")
        versions = [r[0] for r in conn.all("SELECT version FROM entries WHERE workspace = ? AND name = ? "
                                           "ORDER BY version", (ref.workspace, ref.name))]
        if versions:
            return f"no {what} {ref} in the registry ({redact(self.url)}); versions of that name: {versions}"
        names = [r[0] for r in conn.all("SELECT DISTINCT name FROM entries WHERE workspace = ? ORDER BY name",
                                        (ref.workspace,))]
        hint = f"workspace {ref.workspace!r} holds: {', '.join(names)}" if names else \
            f"workspace {ref.workspace!r} is empty"
        return f"no {what} {ref.workspace}.{ref.name} in the registry ({redact(self.url)}); {hint}"

    def get(self, ref) -> Entry:
        """The entry ``workspace.Name[@version]`` (latest version when none is given)."""
        with self._connect() as conn:
            return self._resolve(conn, ref)

    def versions(self, ref):
        """All entries of a name, oldest first (the version in ``ref`` is ignored)."""
        ref = parse_ref(ref) if not isinstance(ref, Ref) else ref
        with self._connect() as conn:
            entries = self._entries(conn, "e.workspace = ? AND e.name = ?", (ref.workspace, ref.name))
            if not entries:
                raise NotFoundError(self._not_found_message(conn, ref, None))
        return entries

    def list(self, pattern=None, workspace=None, tag=None, text=None, kind=None, all_versions=False):
        """Entries matching every filter given, sorted by name (latest version of each by default).

        Parameters
        ----------
        pattern : str, optional
            Glob (``*``, ``?``) on ``workspace.Name``; without wildcards a case-insensitive
            substring.
        workspace, tag, kind : str, optional
            Exact workspace, a tag the entry carries, ``"pe"`` or ``"workflow"``.
        text : str, optional
            Words that must all occur (case-insensitive) in the name or documentation.
        all_versions : bool
            Every version, not only the latest matching one of each name.
        """
        where, params = ["1 = 1"], []
        if workspace is not None:
            where.append("e.workspace = ?")
            params.append(check_identifier(workspace, "workspace"))
        if kind is not None:
            if kind not in ("pe", "workflow"):
                raise RegistryError(f"kind must be 'pe' or 'workflow', got {kind!r}")
            where.append("e.kind = ?")
            params.append(kind)
        if tag is not None:
            where.append("EXISTS (SELECT 1 FROM tags t WHERE t.entry_id = e.id AND t.tag = ?)")
            params.append(tag)
        if pattern:
            like = _like(pattern.lower()) if any(c in pattern for c in "*?") else f"%{_escape(pattern.lower())}%"
            where.append("LOWER(e.workspace || '.' || e.name) LIKE ? ESCAPE '\\'")
            params.append(like)
        for word in (text or "").split():
            where.append("LOWER(e.name || ' ' || e.doc) LIKE ? ESCAPE '\\'")
            params.append(f"%{_escape(word.lower())}%")
        with self._connect() as conn:
            entries = self._entries(conn, " AND ".join(where), params)
        if all_versions:
            return entries
        latest = {}
        for e in entries:  # sorted by version within a name
            latest[(e.workspace, e.name)] = e
        return list(latest.values())

    def source(self, ref):
        """The stored module source of an entry, after checking its hash."""
        with self._connect() as conn:
            entry = self._resolve(conn, ref)
            return entry, self._verified_source(conn, entry)

    def _stored_source(self, conn, entry):
        row = conn.one("SELECT source FROM sources WHERE sha256 = ?", (entry.sha256,))
        return row[0] if row else None

    def _verified_source(self, conn, entry):
        source = self._stored_source(conn, entry)
        loader.verify(entry.ref, entry.sha256, source)
        return source

    # -- signatures and trust -----------------------------------------------------------------
    def _trust(self, entry, source):
        if entry.signature is not None:
            if not _signature_matches(entry, source):
                return Trust("bad", entry)
            trusted = self.trusted_keys.find(entry.signer_key)
            if trusted is not None:
                return Trust("trusted", entry, trusted.name)
        if _matches_installed(entry, source):
            return Trust("builtin", entry)
        return Trust("untrusted" if entry.signature is not None else "unsigned", entry)

    def trust_of(self, ref):
        """The :class:`Trust` of entry ``ref`` (a reference or an :class:`Entry`): may its code run?

        Reads the stored source (it is not run) to check the signature.
        """
        with self._connect() as conn:
            entry = ref if isinstance(ref, Entry) else self._resolve(conn, ref)
            return self._trust(entry, self._stored_source(conn, entry))

    def _runnable_source(self, conn, entry, allow_unsigned):
        """The source of ``entry`` once its hash and signature allow running it (else raise)."""
        source = self._verified_source(conn, entry)
        trust = self._trust(entry, source)
        if trust.ok:
            log.debug("registry entry %s: %s", entry.ref, trust.describe())
            return source
        ref, signer = entry.ref, f"key {entry.signer_id} ({entry.signer_name!r})"
        if trust.state == "bad":
            raise SignatureError(
                f"registry entry {ref}: its signature ({signer}) does not match its source and metadata: they "
                "were changed after it was signed, so it is not run. Remove it and add it again from a "
                "trusted copy."
            )
        if allow_unsigned:
            log.warning("registry entry %s is %s; running it anyway because this load allows it "
                        "(--trust-unsigned / allow_unsigned=True)",
                        ref, "unsigned" if trust.state == "unsigned" else f"signed by untrusted {signer}")
            return source
        once = "or load it once anyway with --trust-unsigned (Python: allow_unsigned=True)"
        if trust.state == "untrusted":
            raise UntrustedError(
                f"registry entry {ref} is signed by {signer}, which is not in your trusted keys "
                f"({self.trusted_keys.path}), so it is not run. If you trust that author, get their public key "
                f"file (signing_key.pub) from them over a channel you trust and run `noisecorr registry trust "
                f"FILE`; {once}."
            )
        raise UntrustedError(
            f"registry entry {ref} is not signed (an old entry, or added without a signing key), so it is not "
            f"run: anyone who can write to the registry could have put it there. Check its source "
            f"(`noisecorr registry show {ref} --source`), then sign it with `noisecorr registry sign {ref}` "
            f"(your key: `noisecorr registry keygen`); {once}."
        )

    def _sign_stored(self, conn, entry, source, signer):
        fields = _signature_fields(entry.to_dict(), source, signer)
        conn.execute("UPDATE entries SET signature = ?, signer_key = ?, signer_name = ? WHERE id = ?",
                     (fields["signature"], fields["signer_key"], fields["signer_name"], entry.id))
        return self._entries(conn, "e.id = ?", (entry.id,))[0]

    def sign(self, ref, replace=False):
        """Sign the stored entry ``ref`` with your key (after checking its hash); return :class:`Added`.

        Signing says *you* vouch for the stored source: read it first
        (``noisecorr registry show REF --source``). Status "unchanged" when you had signed it
        already. An entry signed by another key keeps that signature unless ``replace``.
        """
        signer = self.signing_key(required=True)
        with self._writing() as conn:
            entry = self._resolve(conn, ref)
            source = self._verified_source(conn, entry)
            if entry.signature is not None:
                valid = _signature_matches(entry, source)
                if valid and entry.signer_key == signer.public.b64:
                    return Added(entry, "unchanged")
                if not replace:
                    what = "a valid" if valid else "a NON-matching"
                    raise RegistryError(
                        f"registry entry {entry.ref} already has {what} signature by key {entry.signer_id} "
                        f"({entry.signer_name!r}); pass --replace (replace=True) to sign it with your key "
                        f"{signer.public.key_id} instead"
                    )
            signed = self._sign_stored(conn, entry, source, signer)
        log.info("registry %s: signed %s with key %s", redact(self.url), signed.ref, signer.public.key_id)
        return Added(signed, "signed")

    # -- loading ------------------------------------------------------------------------------
    def _load_module(self, entry, source):
        unmet = loader.unmet_requirements(entry.requirements)
        if unmet:
            log.warning("registry entry %s requires %s", entry.ref, "; ".join(unmet))
        name = loader.module_name(entry.workspace, entry.name, entry.version, entry.sha256)
        filename = f"<registry {entry.ref} {entry.filename or entry.module}>"
        return loader.exec_module(name, source, filename, package=entry.package, registry=self)

    def load_pe(self, ref, allow_unsigned=False):
        """The PE class registered as ``workspace.Name[@version]``.

        Before any of its source runs, its hash is checked and it must be signed by a key in
        your trusted keys (or be a built-in module of the installed noisecorr).

        Parameters
        ----------
        ref : str
            ``workspace.Name[@version]`` (latest version when none is given).
        allow_unsigned : bool
            Run it even if it is unsigned or signed by a key you do not trust, for this call
            only (logged as a warning; entries it loads in turn are checked on their own). A
            signature that does not match is never overridden.

        Raises
        ------
        IntegrityError
            The source does not hash to its recorded sha256 (or is missing).
        SignatureError
            The signature does not match the entry (changed after signing).
        UntrustedError
            Unsigned, or signed by an untrusted key, without ``allow_unsigned``.
        """
        with self._connect() as conn:
            entry = self._resolve(conn, ref, kind="pe")
            source = self._runnable_source(conn, entry, allow_unsigned)
        module = self._load_module(entry, source)
        cls = getattr(module, entry.qualname, None)
        if not isinstance(cls, type):
            raise RegistryError(f"registry entry {entry.ref}: its source defines no class {entry.qualname!r}")
        return cls

    def load_workflow(self, ref, allow_unsigned=False, **kwargs):
        """The :class:`~noisecorr.engine.WorkflowGraph` registered as ``workspace.name[@version]``.

        A graph-building function is called with ``kwargs``; a graph object is returned as an
        independent copy. Hash and signature are checked as by :meth:`load_pe`, with the same
        ``allow_unsigned``.
        """
        import cloudpickle

        from noisecorr.engine import WorkflowGraph

        with self._connect() as conn:
            entry = self._resolve(conn, ref, kind="workflow")
            source = self._runnable_source(conn, entry, allow_unsigned)
        module = self._load_module(entry, source)
        obj = getattr(module, entry.qualname, None)
        if isinstance(obj, WorkflowGraph):
            if kwargs:
                raise RegistryError(f"workflow {entry.ref} is a graph, not a function: it takes no arguments")
            return cloudpickle.loads(cloudpickle.dumps(obj))
        if not callable(obj):
            raise RegistryError(f"registry entry {entry.ref}: its source defines no workflow {entry.qualname!r}")
        graph = obj(**kwargs)
        if not isinstance(graph, WorkflowGraph):
            raise RegistryError(f"workflow {entry.ref}: {entry.qualname}() returned {type(graph).__name__}, "
                                "not a WorkflowGraph")
        return graph

    # -- removing -----------------------------------------------------------------------------
    def remove(self, ref):
        """Remove one version (``ws.Name@V``) or every version of a name; return what was removed."""
        ref = parse_ref(ref) if not isinstance(ref, Ref) else ref
        with self._writing() as conn:
            where, params = "e.workspace = ? AND e.name = ?", [ref.workspace, ref.name]
            if ref.version is not None:
                where += " AND e.version = ?"
                params.append(ref.version)
            entries = self._entries(conn, where, params)
            if not entries:
                raise NotFoundError(self._not_found_message(conn, ref, None))
            ids = [e.id for e in entries]
            marks = ", ".join("?" * len(ids))
            conn.execute(f"DELETE FROM tags WHERE entry_id IN ({marks})", ids)
            conn.execute(f"DELETE FROM entries WHERE id IN ({marks})", ids)
            conn.execute("DELETE FROM sources WHERE sha256 NOT IN (SELECT sha256 FROM entries)")
        return entries

    # -- bundles ------------------------------------------------------------------------------
    def export(self, path, refs=None, workspace=None, all_versions=True):
        """Write a bundle (JSON: sources and metadata) of the chosen entries; return them.

        ``refs`` are ``ws.Name[@V]`` references (all versions of a name without ``@V``);
        without refs, every entry (of ``workspace`` when given). Sources are hash-checked
        before they are written.
        """
        from .bundle import write_bundle

        with self._connect() as conn:
            if refs:
                entries = []
                for r in refs:
                    ref = parse_ref(r)
                    if ref.version is None and all_versions:
                        matched = self._entries(conn, "e.workspace = ? AND e.name = ?", (ref.workspace, ref.name))
                        if not matched:
                            raise NotFoundError(self._not_found_message(conn, ref, None))
                    else:
                        matched = [self._resolve(conn, ref)]
                    entries.extend(e for e in matched if e not in entries)
            else:
                entries = self.list(workspace=workspace, all_versions=all_versions)
            if not entries:
                raise NotFoundError(f"nothing to export from the registry ({redact(self.url)})")
            sources = {e.sha256: self._verified_source(conn, e) for e in entries}
        write_bundle(path, entries, sources)
        return entries

    def import_bundle(self, path, workspace=None):
        """Add every entry of a bundle, keeping its version (into ``workspace`` when given).

        Every source is hash-checked before anything is stored; an entry whose name and
        version exist with other source is a :class:`ConflictError` and nothing is imported.
        Signatures travel with their entries and must match them (else :class:`SignatureError`,
        nothing imported); importing never adds your signature. A signature covers the
        workspace, so entries imported into another ``workspace`` arrive unsigned (warned).
        """
        from .bundle import read_bundle

        entries, sources = read_bundle(path)
        if workspace is not None:
            check_identifier(workspace, "workspace")
        results = []
        with self._writing() as conn:
            for sha, source in sources.items():
                conn.execute("INSERT INTO sources (sha256, source) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
                             (sha, source))
            for d in entries:
                entry = Entry(**{**d, "tags": tuple(d["tags"])})
                source = sources[entry.sha256]
                if entry.signature is not None and not _signature_matches(entry, source):
                    raise SignatureError(
                        f"bundle {path}: the signature of entry {entry.ref} (key {entry.signer_id}, "
                        f"{entry.signer_name!r}) does not match it: it was changed after signing; nothing imported"
                    )
                if workspace is not None and workspace != entry.workspace:
                    if entry.signature is not None:
                        log.warning("bundle %s: %s goes to workspace %r, which its signature by key %s does not "
                                    "cover; it is imported unsigned (check it, then `noisecorr registry sign "
                                    "%s.%s@%d`)", path, entry.ref, workspace, entry.signer_id, workspace,
                                    entry.name, entry.version)
                    entry = dataclasses.replace(entry, workspace=workspace, signature=None, signer_key=None,
                                                signer_name=None)
                results.append(self._insert(conn, entry, entry.version, source))
        return results


class _NothingToRegister(RegistryError):
    pass


def _signature_fields(values, source, signer):
    """``signature``, ``signer_key`` and ``signer_name`` of an entry dict signed by ``signer``."""
    fields = {**values, "signer_key": signer.public.b64, "signer_name": signer.public.name}
    return {"signature": signer.sign(signed_payload(fields, source)), "signer_key": signer.public.b64,
            "signer_name": signer.public.name}


def _same_entry(a, b):
    """True when entries ``a`` and ``b`` differ at most in version, creation time and tags."""
    def comparable(e):
        d = e.to_dict()
        for f in ("version", "created_at", "tags"):
            d.pop(f)
        return json.loads(json.dumps(d))  # tuples and lists alike, as stored

    return comparable(a) == comparable(b)


def _signature_matches(entry, source):
    """True when ``entry`` is signed and its signature covers exactly ``entry`` and ``source``."""
    if not entry.signature or not entry.signer_key or source is None:
        return False
    return verify_signature(entry.signer_key, entry.signature, signed_payload(entry.to_dict(), source))


def _matches_installed(entry, source):
    """True when ``entry`` is a module of the installed noisecorr, unchanged, under its own name.

    The module file is found without running it (:func:`importlib.util.find_spec` imports only
    its installed parent package) and compared by hash with the stored source.
    """
    module = entry.module
    if entry.workspace != BUILTIN_WORKSPACE or source is None:
        return False
    if module != BUILTIN_WORKFLOWS and not module.startswith(BUILTIN_PACKAGE + "."):
        return False
    if entry.name != entry.qualname or entry.package != module.rpartition(".")[0]:
        return False
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    try:
        installed = Path(spec.origin).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return loader.sha256_text(installed) == entry.sha256 == loader.sha256_text(source)


def _check_tags(tags):
    tags = tuple(dict.fromkeys(tags or ()))
    for t in tags:
        if not isinstance(t, str) or not t.strip() or t != t.strip():
            raise RegistryError(f"invalid tag {t!r}: tags are non-empty strings without surrounding spaces")
    return tags


def _escape(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(glob):
    return "".join("%" if c == "*" else "_" if c == "?" else _escape(c) for c in glob)


__all__ = ["Added", "BUILTIN_PACKAGE", "BUILTIN_WORKFLOWS", "BUILTIN_WORKSPACE", "Entry", "Registry"]
