"""Selective recording: which PEs are recorded, which metadata is kept, what is stored in full.

A rule set is plain data (the ``provenance_rules`` key of a workflow configuration)::

    provenance_rules:
      record: ["*"]                # PE names (fnmatch patterns) whose invocations are recorded
      metadata: [seed_id, chunk, source, receiver, component, distance_km, ...]
      store: [Stack]               # "PE" or "PE.port" patterns whose items are stored in full

A PE left out of ``record`` writes no activity and no entity, but lineage stays connected:
its outputs carry the ids of the entities it consumed, so the next recorded PE's outputs are
derived from the nearest recorded ancestors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase

#: Item keys copied to entity metadata when present (domain metadata of the noise workflow).
DEFAULT_METADATA = (
    "seed_id", "chunk", "starttime", "endtime", "key", "source", "receiver", "source_id",
    "receiver_id", "component", "distance_km", "azimuth", "back_azimuth", "n_windows",
    "stack_method", "sampling_rate", "reason",
)
#: Data products stored in full by default: the stacks of the noise workflow.
DEFAULT_STORE = ("Stack",)
_KEYS = ("record", "metadata", "store")


class RulesError(ValueError):
    """An invalid rule set; the message names the field."""


@dataclass(frozen=True)
class Rules:
    """A validated rule set (see the module docstring)."""

    record: tuple = ("*",)
    metadata: tuple = DEFAULT_METADATA
    store: tuple = DEFAULT_STORE
    #: Largest stored product (bytes, compressed); larger items are recorded but not stored.
    max_product_bytes: int = 64 << 20
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, values, where="provenance_rules") -> "Rules":
        """Validate a mapping (``None`` gives the defaults); unknown keys fail by name."""
        if values is None:
            return cls()
        if isinstance(values, Rules):
            return values
        if not isinstance(values, dict):
            raise RulesError(f"{where}: expected a mapping with keys {list(_KEYS)}, got {type(values).__name__}")
        unknown = set(values) - set(_KEYS) - {"max_product_bytes"}
        if unknown:
            raise RulesError(f"{where}: unknown key(s) {sorted(unknown)}; known: {list(_KEYS) + ['max_product_bytes']}")
        out = {}
        for key in _KEYS:
            if key not in values:
                continue
            v = values[key]
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
                raise RulesError(f"{where}.{key}: expected a list of non-empty strings, got {v!r}")
            out[key] = tuple(v)
        if "max_product_bytes" in values:
            v = values["max_product_bytes"]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise RulesError(f"{where}.max_product_bytes: expected a non-negative integer, got {v!r}")
            out["max_product_bytes"] = v
        return cls(**out)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_cache")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def records(self, pe: str) -> bool:
        """Whether invocations of ``pe`` are recorded."""
        return any(fnmatchcase(pe, p) for p in self.record)

    def stores(self, pe: str, port: str) -> bool:
        """Whether items ``pe`` writes to ``port`` are stored in full."""
        full = f"{pe}.{port}"
        return any(fnmatchcase(pe, p) or fnmatchcase(full, p) for p in self.store)
