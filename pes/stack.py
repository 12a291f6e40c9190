"""Stack the per-window correlations of each station pair and component over all chunks.

Thin over :func:`noisecorr.signal.stack.stack` and :func:`~noisecorr.signal.stack.substack`.

Items
-----
input : dict (grouped by ``"key"``)
    :class:`pes.correlate.CrossCorrelatePE` output.
output : dict
    ``{"key", "source", "receiver", "component", "source_id", "receiver_id", "lags",
    "stack" float32, "n_windows", "stack_method", "substacks", "substack_starts",
    "substack_counts", "distance_km", "azimuth", "back_azimuth", "sampling_rate",
    "params"}``; the substack fields are None unless ``params.substack``.
"""

from __future__ import annotations

import numpy as np

from noisecorr.engine import GenericPE
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.stack import stack, substack

__all__ = ["StackPE"]

_META = ("key", "source", "receiver", "component", "source_id", "receiver_id", "lags",
         "sampling_rate", "distance_km", "azimuth", "back_azimuth")


class StackPE(GenericPE):
    """Collect per-window correlations per ``key`` and stack them at the end.

    A linear stack without sub-stacks keeps only a running sum (constant memory);
    phase-weighted and robust stacks and sub-stacks keep every window.
    """

    def __init__(self, params: CorrelationParams, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self._add_input("input", grouping=["key"])
        self._add_output("output")
        self.params = params
        self.state = {}

    @property
    def _running_sum(self) -> bool:
        return self.params.stack_method == "linear" and not self.params.substack

    def process(self, inputs):
        item = inputs["input"]
        st = self.state.get(item["key"])
        if st is None:
            st = self.state[item["key"]] = {"meta": {k: item[k] for k in _META}, "sum": None,
                                            "n": 0, "ccfs": [], "starttimes": []}
        ccfs = np.asarray(item["ccfs"])
        if self._running_sum:
            total = ccfs.sum(axis=0, dtype=np.float64)
            st["sum"] = total if st["sum"] is None else st["sum"] + total
            st["n"] += ccfs.shape[0]
        else:
            st["ccfs"].append(ccfs)
            st["starttimes"].append(np.asarray(item["starttimes"]))

    # Provenance: a stack derives from its own pair-component's correlations only.
    def provenance_input_keys(self, port, item):
        return (item["key"],)

    def provenance_output_keys(self, port, item):
        return (item["key"],)

    def postprocess(self):
        p = self.params
        for key in sorted(self.state):
            st = self.state.pop(key)
            out = dict(st["meta"], stack_method=p.stack_method, params=p.to_dict(),
                       substacks=None, substack_starts=None, substack_counts=None)
            nlag = len(out["lags"])
            if self._running_sum:
                n = st["n"]
                out["stack"] = (st["sum"] / n if n else np.zeros(nlag)).astype(np.float32)
                out["n_windows"] = n
            else:
                ccfs = np.concatenate(st["ccfs"]) if st["ccfs"] else np.zeros((0, nlag), np.float32)
                t = np.concatenate(st["starttimes"]) if st["starttimes"] else np.zeros(0)
                order = np.argsort(t, kind="stable")
                ccfs, t = ccfs[order], t[order]
                out["stack"], out["n_windows"] = stack(ccfs, p.stack_method, pws_power=p.pws_power)
                if p.substack:
                    subs, starts, counts = substack(ccfs, t, p.substack_len, p.stack_method,
                                                    pws_power=p.pws_power)
                    out.update(substacks=subs, substack_starts=starts, substack_counts=counts)
            self.write("output", out)
