"""Preprocess one channel and chunk (thin over :func:`noisecorr.signal.preprocess.preprocess_chunk`).

Items
-----
input : dict
    A :class:`pes.fetch.FetchPE` output (``seed_id``, ``starttime``, ``endtime``,
    ``stream``, ``inventory``).
output : dict
    ``{"seed_id", "chunk": float start, "trace": ProcessedTrace}``.
rejected : dict
    ``{"seed_id", "chunk", "reason"}`` for data that cannot be processed (no data,
    NaN, missing response, ...): written, logged, never silently dropped.
"""

from __future__ import annotations

import logging

from noisecorr.engine import GenericPE
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.preprocess import PreprocessError, preprocess_chunk

__all__ = ["PreprocessPE"]


class PreprocessPE(GenericPE):
    """Merge, detrend, taper, resample, remove response, bandpass, trim (Bensen et al. 2007).

    Parameters
    ----------
    params : CorrelationParams
    inventory : obspy.Inventory, optional
        Used when the item carries none.
    """

    def __init__(self, params: CorrelationParams, inventory=None, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self._add_input("input")
        self._add_output("output")
        self._add_output("rejected")
        self.params = params
        self.inventory = inventory

    def process(self, inputs):
        item = inputs["input"]
        inventory = item.get("inventory") or self.inventory
        try:
            trace = preprocess_chunk(item["stream"], item["starttime"], item["endtime"], self.params,
                                     inventory=inventory, seed_id=item["seed_id"])
        except PreprocessError as err:
            self.log("rejected %s: %s", item["seed_id"], err.reason, level=logging.WARNING)
            self.write("rejected", {"seed_id": item["seed_id"], "chunk": item["starttime"],
                                    "reason": err.reason})
            return None
        self.write("output", {"seed_id": item["seed_id"], "chunk": item["starttime"], "trace": trace})
        return None
