"""Registry bundles: a JSON file with entries and their sources, to move them between registries.

Format (``"format": "noisecorr-registry-bundle"``, ``"format_version": 2``)::

    {"format": ..., "format_version": 2, "exported_at": ISO time, "noisecorr": version,
     "sources": {sha256: module source, ...},
     "entries": [{"workspace", "name", "version", "kind", "module", "package", "qualname",
                  "filename", "sha256", "summary", "doc", "ports", "requirements", "uses",
                  "created_at", "tags", "signature", "signer_key", "signer_name"}, ...]}

Version 1 bundles (before signatures) are read too: their entries are unsigned.

Reading checks that every source hashes to its key and that every entry's source is present,
before anything is stored or run; :meth:`~noisecorr.registry.Registry.import_bundle` then
checks each signature against its entry.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import fields
from pathlib import Path

from . import loader
from .errors import IntegrityError, RegistryError
from .names import check_identifier, check_version
from .store import utcnow

FORMAT = "noisecorr-registry-bundle"
FORMAT_VERSION = 2
#: Entry fields that version 1 bundles lack (they were unsigned).
_SIGNATURE_FIELDS = ("signature", "signer_key", "signer_name")


def write_bundle(path, entries, sources):
    """Write ``entries`` (:class:`~noisecorr.registry.core.Entry`) and ``{sha256: source}`` atomically."""
    import noisecorr

    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": utcnow(),
        "noisecorr": noisecorr.__version__,
        "sources": {sha: sources[sha] for sha in sorted(sources)},
        "entries": [e.to_dict() for e in entries],
    }
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_bundle(path):
    """Return ``(entry dicts, {sha256: source})`` after checking format and every hash."""
    from .core import Entry

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"cannot read bundle {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RegistryError(f"{path} is not a noisecorr registry bundle (no \"format\": \"{FORMAT}\")")
    format_version = doc.get("format_version")
    if format_version not in (1, FORMAT_VERSION):
        raise RegistryError(f"bundle {path} has format_version {format_version!r}; this noisecorr "
                            f"reads versions 1 and {FORMAT_VERSION}")
    sources, entries = doc.get("sources"), doc.get("entries")
    if not isinstance(sources, dict) or not isinstance(entries, list):
        raise RegistryError(f"bundle {path}: \"sources\" must be an object and \"entries\" a list")
    users = {}
    for e in entries:
        if isinstance(e, dict):
            users.setdefault(e.get("sha256"), []).append(f"{e.get('workspace')}.{e.get('name')}@{e.get('version')}")
    for sha, source in sources.items():
        if not isinstance(source, str) or loader.sha256_text(source) != sha:
            named = ", ".join(users.get(sha, [])) or "no entry"
            raise IntegrityError(f"bundle {path}: the source recorded with sha256 {sha} (used by {named}) does "
                                 "not match its hash; the bundle was changed after export, nothing imported")
    wanted = {f.name for f in fields(Entry)} - {"id"}
    out = []
    if format_version == 1:
        entries = [{**e, **{f: None for f in _SIGNATURE_FIELDS}} if isinstance(e, dict) else e for e in entries]
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or set(e) != wanted:
            missing = sorted(wanted - set(e)) if isinstance(e, dict) else sorted(wanted)
            extra = sorted(set(e) - wanted) if isinstance(e, dict) else []
            raise RegistryError(f"bundle {path}: entry {i} is malformed (missing {missing}, unknown {extra})")
        ref = f"{e['workspace']}.{e['name']}@{e['version']}"
        check_identifier(e["workspace"], "workspace")
        check_identifier(e["name"], "name")
        check_version(e["version"])
        if e["kind"] not in ("pe", "workflow"):
            raise RegistryError(f"bundle {path}: entry {ref} has kind {e['kind']!r}")
        if e["sha256"] not in sources:
            raise IntegrityError(f"bundle {path}: the source of entry {ref} (sha256 {e['sha256']}) is missing")
        out.append(e)
    return out, sources
