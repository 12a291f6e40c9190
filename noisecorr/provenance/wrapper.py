"""The item wrapper that carries entity ids between PEs while provenance is recorded."""

from __future__ import annotations


class Traced:
    """An item together with the ids of the entities it stands for.

    The transports move it like any other item (it pickles to its two fields; numpy arrays
    inside ``item`` still travel out of band). ``traced[k]`` reads ``item[k]``, so group-by
    routing (:func:`noisecorr.engine.routing.group_key`) routes a wrapped item exactly as it
    routes the item itself. ``repr`` is the item's, so error messages name the item.

    ``token`` is the item's own id (its entity id when its PE is recorded). ``ids`` is a tuple: one id for an item written by a recorded PE, the ids of its nearest
    recorded ancestors for an item written by a PE the rules leave out, empty for an item
    whose lineage is not recorded at all.
    """

    __slots__ = ("item", "token", "ids")

    def __init__(self, item, token, ids):
        self.item = item
        self.token = token
        self.ids = ids

    def __getitem__(self, key):
        return self.item[key]

    def __reduce__(self):
        return (Traced, (self.item, self.token, self.ids))

    def __repr__(self):
        return repr(self.item)


def unwrap(value):
    """The item inside a :class:`Traced` (anything else unchanged)."""
    return value.item if type(value) is Traced else value
