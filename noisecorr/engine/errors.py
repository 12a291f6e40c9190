"""Exceptions raised by the engine and its mappings."""

from __future__ import annotations

import reprlib

_repr = reprlib.Repr()
_repr.maxstring = 120
_repr.maxother = 120
_repr.maxlist = 8
_repr.maxtuple = 8
_repr.maxdict = 8


def short_repr(obj) -> str:
    """A bounded ``repr`` for error messages (items can be megabyte arrays)."""
    try:
        return _repr.repr(obj)
    except Exception as exc:  # a broken __repr__ must not hide the real error
        return f"<unrepresentable {type(obj).__name__}: {exc!r}>"


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class GraphError(EngineError, ValueError):
    """The workflow graph or its inputs are invalid (raised before anything runs)."""


class MappingError(EngineError, ValueError):
    """Unknown mapping name, or a mapping whose optional dependency is missing."""


class TransportError(EngineError):
    """An item could not be moved between instances (e.g. it cannot be pickled)."""


class PEError(EngineError):
    """A Processing Element raised an exception, or the process hosting it died.

    Attributes
    ----------
    pe : str
        Name of the PE.
    instance : int or None
        Index of the PE instance (0-based) that failed, when known.
    item : str or None
        Bounded ``repr`` of the item being processed (``None`` outside ``process``).
    phase : str
        ``"preprocess"``, ``"process"``, ``"postprocess"`` or ``"worker"``.
    remote_traceback : str
        The formatted traceback from where the failure happened (possibly another
        process or MPI rank).
    """

    def __init__(self, pe, instance, item, phase, remote_traceback, where="", reason=""):
        self.pe = pe
        self.instance = instance
        self.item = item
        self.phase = phase
        self.remote_traceback = remote_traceback or ""
        self.where = where
        self.reason = reason
        inst = "" if instance is None else f" instance {instance}"
        loc = f" ({where})" if where else ""
        if phase == "write":
            what = f"writing item {item}"
        elif phase in ("process", "worker"):
            what = f"while processing item {item}" if item is not None else "while idle"
        else:
            what = f"in {phase}()"
        msg = f"PE '{pe}'{inst} failed {what}{loc}"
        if reason:
            msg += f": {reason}"
        if self.remote_traceback:
            msg += "\n\n--- traceback from the failing PE ---\n" + self.remote_traceback.rstrip()
        super().__init__(msg)

    def __reduce__(self):
        return (
            type(self),
            (self.pe, self.instance, self.item, self.phase, self.remote_traceback, self.where, self.reason),
        )
