"""Groupings: which instance of a PE receives an item.

Every mapping routes with the functions in this module, so an item takes the same route in
the sequential run, in every worker process and on every MPI rank.

Group-by keys are hashed with CRC-32 of a canonical, type-tagged byte encoding
(:func:`canonical_bytes`), never with Python's builtin ``hash()``, which is salted per process
for strings (``PYTHONHASHSEED``) and would send the same station to different consumers in
different processes. Values that compare equal in Python (``1 == 1.0 == True``,
``np.int64(3) == 3``) encode to the same bytes, so they reach the same instance, just as they
would meet in one ``dict`` in a single process.
"""

from __future__ import annotations

import math
import struct
import zlib

from .errors import GraphError

SHUFFLE = ("shuffle",)
LOCAL = ("local",)
ALL = ("all",)
GLOBAL = ("global",)


def normalize_grouping(grouping, where=""):
    """Return the plain-data form of a grouping declaration.

    ``None`` / ``"shuffle"`` -> ``("shuffle",)``; ``"all"`` / ``"one-to-all"`` -> ``("all",)``;
    ``"global"`` -> ``("global",)``; ``"local"`` -> ``("local",)`` (local-or-shuffle: any
    instance, preferring those in the sender's own process, like Storm's LOCAL_OR_SHUFFLE);
    a list of indices or keys -> ``("group", (k, ...))``.
    """
    if grouping is None:
        return SHUFFLE
    if isinstance(grouping, str):
        name = grouping.lower().replace("_", "-")
        if name == "shuffle":
            return SHUFFLE
        if name in ("all", "one-to-all"):
            return ALL
        if name == "global":
            return GLOBAL
        if name in ("local", "local-or-shuffle"):
            return LOCAL
        raise GraphError(
            f"{where}unknown grouping {grouping!r}; use None (shuffle), a list of item "
            f"indices (group-by), 'all', 'global' or 'local'"
        )
    if isinstance(grouping, tuple) and grouping and grouping[0] in ("shuffle", "local", "all", "global", "group"):
        if grouping[0] == "group":
            return ("group", tuple(grouping[1]))
        return (grouping[0],)
    if isinstance(grouping, (list, tuple)):
        keys = tuple(grouping)
        if not keys:
            raise GraphError(f"{where}group-by needs at least one item index or key")
        for k in keys:
            if isinstance(k, bool) or not isinstance(k, (int, str)):
                raise GraphError(f"{where}group-by keys must be ints or strings, got {k!r}")
        return ("group", keys)
    raise GraphError(f"{where}invalid grouping {grouping!r}")


def _encode(value, out: bytearray):
    # Type tags keep "1" (str) and 1 (int) apart while 1, 1.0 and True coincide.
    if value is None:
        out += b"N"
    elif isinstance(value, str):
        b = value.encode("utf-8", "surrogatepass")
        out += b"S" + struct.pack("<I", len(b)) + b
    elif isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        out += b"B" + struct.pack("<I", len(b)) + b
    elif isinstance(value, (tuple, list)):
        out += b"T" + struct.pack("<I", len(value))
        for v in value:
            _encode(v, out)
    elif isinstance(value, int):  # bool included: True == 1
        out += b"I" + str(int(value)).encode()
    elif isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            out += b"I" + str(int(value)).encode()
        elif math.isnan(value):
            out += b"Fnan"
        else:
            out += b"F" + struct.pack("<d", value)
    elif isinstance(value, frozenset):
        parts = sorted(canonical_bytes(v) for v in value)
        out += b"Z" + struct.pack("<I", len(parts)) + b"".join(parts)
    else:
        kind = type(value).__module__
        if kind == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            _encode(value.item(), out)  # numpy scalar -> the equal Python scalar
        elif kind.startswith("obspy") and type(value).__name__ == "UTCDateTime":
            out += b"U" + str(value.ns).encode()
        else:
            raise TypeError(
                f"group-by key of type {type(value).__name__} has no stable encoding; "
                "use str, int, float, bytes, None or tuples of them"
            )


def canonical_bytes(value) -> bytes:
    """Deterministic byte encoding of a group-by key (identical in every process)."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def stable_hash(value) -> int:
    """CRC-32 of :func:`canonical_bytes` (an int in ``[0, 2**32)``)."""
    return zlib.crc32(canonical_bytes(value))


def group_key(item, keys):
    """Extract the group-by key of ``item`` for the declared ``keys`` (indices or names)."""
    if len(keys) == 1:
        return item[keys[0]]
    return tuple(item[k] for k in keys)


def target_instance(item, keys, n):
    """Index of the instance (out of ``n``) that receives ``item`` under group-by ``keys``."""
    return stable_hash(group_key(item, keys)) % n


def make_router(grouping, targets, start=0):
    """Build ``route(item)`` that hands ``item`` to the right element of ``targets``.

    Parameters
    ----------
    grouping : tuple
        A normalised grouping (see :func:`normalize_grouping`).
    targets : list of callables
        One ``append(item)`` per destination instance, in instance order.
    start : int
        First instance used by shuffle; senders start at different instances so that
        several producers spread their first items.
    """
    n = len(targets)
    kind = grouping[0]
    if n == 1 or kind == "global":
        return targets[0]
    if kind == "all":
        def route_all(item, _targets=tuple(targets)):
            for t in _targets:
                t(item)
        return route_all
    if kind == "group":
        keys = grouping[1]
        cache = {}

        def route_group(item, _targets=targets, _keys=keys, _n=n, _cache=cache):
            key = group_key(item, _keys)
            try:
                idx = _cache[key]
            except (KeyError, TypeError):  # TypeError: unhashable key, encode every time
                idx = stable_hash(key) % _n
                try:
                    if len(_cache) > 65536:
                        _cache.clear()
                    _cache[key] = idx
                except TypeError:
                    pass
            _targets[idx](item)
        return route_group
    # shuffle: balanced round robin
    state = [start % n]

    def route_shuffle(item, _targets=targets, _n=n, _state=state):
        i = _state[0]
        _targets[i](item)
        _state[0] = i + 1 if i + 1 < _n else 0
    return route_shuffle
