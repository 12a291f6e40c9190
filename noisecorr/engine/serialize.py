"""Serialisation of batches between processes: pickle protocol 5 with out-of-band buffers.

Large contiguous buffers (numpy arrays above ``threshold`` bytes, wherever they sit inside an
item) are not copied into the pickle stream: :func:`dumps` returns them separately so that a
transport can move them as raw memory (a shared-memory file, an MPI buffer message). Items
that the standard pickler refuses (lambdas, classes defined in ``__main__``) are retried
with cloudpickle; an item neither can serialise raises :class:`TransportError` naming it.
"""

from __future__ import annotations

import pickle

import cloudpickle

from .errors import TransportError, short_repr

#: Buffers of at least this many bytes travel out of band.
OUT_OF_BAND_BYTES = 64 * 1024


def dumps(obj, threshold=OUT_OF_BAND_BYTES):
    """Serialise ``obj``; return ``(stream bytes, [memoryview of each out-of-band buffer])``."""
    buffers = []

    def keep(pb):
        raw = pb.raw()
        if raw.nbytes < threshold:
            return True  # small: stays in the stream
        buffers.append(raw)
        return False

    try:
        return pickle.dumps(obj, protocol=5, buffer_callback=keep), buffers
    except Exception:
        buffers.clear()
    try:
        return cloudpickle.dumps(obj, protocol=5, buffer_callback=keep), buffers
    except Exception as exc:
        raise TransportError(f"cannot serialise {short_repr(obj)}: {type(exc).__name__}: {exc}") from exc


def loads(data, buffers=()):
    """Inverse of :func:`dumps`."""
    return pickle.loads(data, buffers=buffers)


def find_unpicklable(items):
    """Return ``(index, item, exception)`` of the first item that cannot be serialised."""
    for i, item in enumerate(items):
        try:
            cloudpickle.dumps(item, protocol=5)
        except Exception as exc:
            return i, item, exc
    return None
