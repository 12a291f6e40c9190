"""Storm's multilang wire format, shared by the components and the test harness.

Framing (Storm multilang protocol, both directions): each message is one JSON object (or,
from Storm to a component, a JSON list of task ids) on its own line, followed by a line
holding only ``end``. Messages are written as UTF-8 bytes and flushed at once.

Item encoding: a PE item travels in the ``payload`` field of a tuple as an ASCII string,
the base64 (RFC 4648, standard alphabet, with padding) of the item pickled with pickle
protocol 5, every buffer in band (numpy arrays included), retried with cloudpickle for items
the standard pickler refuses (lambdas, classes defined in ``__main__``); see
:func:`encode_item`. Any picklable item travels; JSON is only the envelope.
"""

from __future__ import annotations

import base64
import json
import pickle

#: The line that ends every message.
END = b"end\n"


def frame(msg) -> bytes:
    """Bytes of one message: compact JSON, newline, ``end``, newline."""
    return json.dumps(msg, separators=(",", ":")).encode("utf-8") + b"\nend\n"


def read_message(stream):
    """Read one message from a binary stream; return the decoded JSON or ``None`` at EOF.

    Raises ``ValueError`` on a truncated message (EOF before ``end``).
    """
    lines = []
    while True:
        line = stream.readline()
        if not line:
            if lines:
                raise ValueError("end of input inside a multilang message (no 'end' line)")
            return None
        if line == END or line.rstrip(b"\r\n") == b"end":
            break
        lines.append(line)
    if not lines:
        raise ValueError("empty multilang message")
    return json.loads(b"".join(lines))


def encode_item(item) -> str:
    """The tuple-field encoding of ``item``: base64 of its protocol-5 pickle (see module doc)."""
    try:
        data = pickle.dumps(item, protocol=5)
    except Exception:
        from noisecorr.engine.serialize import dumps

        data, _ = dumps(item, threshold=float("inf"))  # cloudpickle fallback, TransportError naming the item
    return base64.b64encode(data).decode("ascii")


def decode_item(text: str):
    """Inverse of :func:`encode_item`."""
    return pickle.loads(base64.b64decode(text))


def java_list_hash(values) -> int:
    """``java.util.List.hashCode()`` of a list of JSON integers (read by Storm as ``Long``).

    Storm's FIELDS grouping picks task ``floorMod(hash, n)`` of the selected field values;
    the harness uses this to route exactly as Storm 2.x does for our integer key fields.
    """
    h = 1
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"key fields must be integers, got {v!r}")
        v &= 0xFFFFFFFFFFFFFFFF
        lh = (v ^ (v >> 32)) & 0xFFFFFFFF  # Long.hashCode
        h = (31 * h + lh) & 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h
