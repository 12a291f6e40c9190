"""Deterministic identifiers of runs, activities and entities.

Every id is a SHA-1 of a canonical text built from graph names, the run id and the ids of
the inputs (never a uuid, a counter shared between processes or Python's salted ``hash()``),
so the same workflow enacted with the same run id gives the same ids under every mapping,
in every process and on every MPI rank.
"""

from __future__ import annotations

import hashlib
import re

#: Hex digits kept from the SHA-1 (128 bits: collisions are not a practical concern).
ID_HEX = 32
#: What an entity, activity or run id looks like (validated by the web API).
ID_PATTERN = re.compile(r"^[0-9a-f]{8,40}$")
_SEP = "\x1f"


def digest(*parts) -> str:
    """SHA-1 (hex, :data:`ID_HEX` digits) of the parts joined by a unit separator."""
    text = _SEP.join(str(p) for p in parts)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:ID_HEX]


def activity_id(run_id, pe, kind, *inputs) -> str:
    """Id of one PE invocation: ``kind`` is ``process``, ``iteration``, ``postprocess`` or
    ``preprocess``; ``inputs`` are the ids of the consumed entities (or an iteration index)."""
    return digest(run_id, "activity", pe, kind, *inputs)


def entity_id(run_id, pe, port, sources_digest, ordinal) -> str:
    """Id of an item written by ``pe`` to ``port``.

    ``sources_digest`` identifies what the item was derived from (see :func:`sources_digest`)
    and ``ordinal`` counts the items written to ``port`` from the same sources.
    """
    return digest(run_id, "entity", pe, port, sources_digest, ordinal)


def input_entity_id(run_id, pe, position) -> str:
    """Id of the ``position``-th input dict given to source ``pe`` by the run."""
    return digest(run_id, "input", pe, position)


def sources_digest(ids) -> str:
    """A short digest of a sorted tuple of entity ids (the derivation set)."""
    return digest(*ids) if len(ids) != 1 else ids[0]
