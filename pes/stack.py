"""Stack the per-window correlations of each station pair and component over all chunks.

Thin over :class:`noisecorr.signal.stack.StackState` (mergeable partial stacks) and
:func:`noisecorr.signal.stack.substack_states` (the calendar grid of sub-stacks).

Items
-----
input : dict (grouped by ``"key"``)
    :class:`pes.correlate.CrossCorrelatePE` output.
output : dict
    ``{"key", "source", "receiver", "component", "source_id", "receiver_id", "lags",
    "stack" float32, "n_windows", "stack_method", "substacks", "substack_starts",
    "substack_counts", "substack_len", "substack_origin", "substack_linear",
    "substack_phasor", "distance_km", "azimuth", "back_azimuth", "sampling_rate",
    "params"}``. ``stack`` is always the stack over every window of the pair. The substack
    fields are None unless ``params.substack``: then ``substacks`` ``(n_spans, n_lags)``
    float32 are the stacks of the spans of the grid that hold windows, ``substack_starts``
    their start times (POSIX s, on the grid ``origin + k * substack_len``),
    ``substack_counts`` their window counts, and, for ``pws`` only, ``substack_linear``
    (float32, the linear mean per span) and ``substack_phasor`` (complex64, the mean unit
    phasor per span), from which sub-stacks can be merged exactly later
    (:func:`noisecorr.results.substacks.combine`).

    With ``span_starts`` (``keep: chunks``: the start of every chunk of the run, on the
    sub-stack grid) every one of those spans is output, a span without windows as a gap
    (count 0, NaN rows), and ``selection`` (:class:`noisecorr.results.series.ChunkSelection`)
    says which pair components keep their spans at all (the others: full stack only).
"""

from __future__ import annotations

from functools import reduce

import numpy as np

from noisecorr.engine import GenericPE
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.stack import StackState, check_windows, substack_states_block

__all__ = ["StackPE"]

_META = ("key", "source", "receiver", "component", "source_id", "receiver_id", "lags",
         "sampling_rate", "distance_km", "azimuth", "back_azimuth")


def _own_copy(params: dict) -> dict:
    """A copy of ``CorrelationParams.to_dict()`` output that shares no list with it (each
    output item owns its ``params``)."""
    return {k: list(v) if isinstance(v, list) else v for k, v in params.items()}


class StackPE(GenericPE):
    """Collect per-window correlations per ``key`` and stack them at the end.

    Each pair keeps one :class:`~noisecorr.signal.stack.StackState` per sub-stack span
    (one in all without sub-stacks), merged as chunks arrive, and the full stack is the
    merge of its spans' states. Memory per pair and span: linear ``8 * n_lags`` bytes,
    pws ``24 * n_lags`` (sum and phasor sum), whatever the number of windows; robust keeps
    one robust stack (``8 * n_lags``) per input item and span (one chunk of the pair, or
    its part in a span), see :class:`~noisecorr.signal.stack.StackState` for what that
    means for the result.

    Items are stacked in blocks: up to :attr:`pair_block` items (at most :attr:`block_bytes`
    of correlations) wait, then their states are computed together and merged in the order
    the items came, so the result is the pair-by-pair one to rounding (pws: phasors in
    float32, see :meth:`~noisecorr.signal.stack.StackState.from_window_sets`). A bad item
    (not 2-D, NaN or inf) fails in its own ``process`` call.
    """

    def __init__(self, params: CorrelationParams, name: str | None = None, span_starts=None,
                 selection=None):
        super().__init__()
        if name:
            self.name = name
        self._add_input("input", grouping=["key"])
        self._add_output("output")
        self.params = params
        self.state = {}
        self._pending, self._pending_bytes = [], 0
        self.selection = selection
        self.span_keys = None
        if span_starts is not None:
            if not params.substack:
                raise ValueError("StackPE: span_starts needs params.substack (keep: chunks)")
            k = (np.asarray(span_starts, dtype=np.float64) - params.substack_origin_seconds) / params.substack_len
            if not np.allclose(k, np.round(k), atol=1e-6):
                raise ValueError("StackPE: span_starts are not on the sub-stack grid "
                                 f"(origin {params.substack_origin}, {params.substack_len} s)")
            self.span_keys = sorted({int(round(x)) for x in k})

    #: Input items (one chunk of one pair component each) whose states are computed together
    #: (:func:`~noisecorr.signal.stack.substack_states_block`: one batched Hilbert transform for
    #: pws, one re-weighting vectorised over the pairs for robust), or fewer when they hold
    #: more than :attr:`block_bytes` of correlations.
    pair_block = 16
    block_bytes = 64 << 20

    def process(self, inputs):
        item = inputs["input"]
        p = self.params
        st = self.state.get(item["key"])
        if st is None:
            keep = p.substack and (self.selection is None or self.selection.keeps(
                item["source"], item["receiver"], item["component"], item.get("distance_km")))
            st = self.state[item["key"]] = {"meta": {k: item[k] for k in _META}, "spans": {},
                                            "keep": keep}
        # checked now, so that a bad item fails in its own process call, not in a later flush
        ccfs = check_windows(item["ccfs"])
        t = item.get("starttimes")
        if st["keep"] and np.shape(t) != (ccfs.shape[0],):
            raise ValueError(f"starttimes has shape {np.shape(t)}, expected ({ccfs.shape[0]},)")
        self._pending.append((item["key"], ccfs, t))
        self._pending_bytes += ccfs.nbytes
        if len(self._pending) >= self.pair_block or self._pending_bytes >= self.block_bytes:
            self.flush()

    def flush(self):
        """Merge the items received since the last flush into their pairs' states, in the
        order they arrived (called every :attr:`pair_block` items and before the stacks)."""
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        if not pending:
            return
        p = self.params
        by_lags = {}  # one batch per lag count (the same for every item of a run)
        for n, (key, ccfs, _) in enumerate(pending):
            by_lags.setdefault((ccfs.shape[1], self.state[key]["keep"]), []).append(n)
        new = [None] * len(pending)
        for (_, keep), idx in by_lags.items():
            # a pair left out by keep_chunks holds one state, not one per span
            got = substack_states_block([pending[n][1] for n in idx], [pending[n][2] for n in idx],
                                        p.substack_len if keep else None, p.stack_method,
                                        origin=p.substack_origin_seconds)
            for n, states in zip(idx, got):
                new[n] = states
        for (key, _, _), states in zip(pending, new):
            spans = self.state[key]["spans"]
            for k, state in states.items():
                spans[k] = state if k not in spans else spans[k].merge(state)

    # Provenance: a stack derives from its own pair-component's correlations only.
    def provenance_input_keys(self, port, item):
        return (item["key"],)

    def provenance_output_keys(self, port, item):
        return (item["key"],)

    def postprocess(self):
        self.flush()
        p = self.params
        params = p.to_dict()  # once: a dataclass walk per pair cost ~3 % of a pws stack
        for key in sorted(self.state):
            st = self.state.pop(key)
            out = dict(st["meta"], stack_method=p.stack_method, params=_own_copy(params),
                       substacks=None, substack_starts=None, substack_counts=None,
                       substack_len=None, substack_origin=None, substack_linear=None,
                       substack_phasor=None)
            nlag = len(out["lags"])
            keys = sorted(st["spans"])  # merged in time order: the same sum in every mapping
            states = [st["spans"][k] for k in keys]
            full = reduce(StackState.merge, states, StackState.empty(p.stack_method, nlag))
            stack, n = full.result(p.pws_power)
            out["stack"], out["n_windows"] = stack.astype(np.float32), n
            keep = st["keep"]
            if keep and self.span_keys is not None:
                extra = sorted(set(keys) - set(self.span_keys))
                if extra:  # a window outside the run's chunks: a bug upstream, never dropped
                    raise ValueError(f"{key}: windows in spans {extra} outside the run's chunks")
                have = dict(zip(keys, states))
                keys = self.span_keys
                states = [have.get(k) for k in keys]
            if keep:
                nan = np.zeros(nlag)  # a gap: count 0, stored as zeros, read as NaN
                out.update(
                    substacks=np.array([nan if s is None else s.result(p.pws_power)[0] for s in states],
                                       dtype=np.float32).reshape(len(states), nlag),
                    substack_starts=p.substack_origin_seconds
                    + np.asarray(keys, dtype=np.float64) * p.substack_len,
                    substack_counts=np.array([0 if s is None else s.n for s in states], dtype=np.int64),
                    substack_len=p.substack_len,
                    substack_origin=p.substack_origin or "1970-01-01T00:00:00.000000Z")
                if p.stack_method == "pws":
                    out["substack_linear"] = np.array(
                        [nan if s is None else s.linear_mean() for s in states],
                        dtype=np.float32).reshape(len(states), nlag)
                    out["substack_phasor"] = np.array(
                        [nan if s is None else s.phasor_mean() for s in states],
                        dtype=np.complex64).reshape(len(states), nlag)
            self.write("output", out)
