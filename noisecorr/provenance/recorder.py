"""Recording lineage inside the run loop.

:func:`noisecorr.engine.run` opens a :class:`Session` (picklable plain data: run id, store
URL, rules) and hands it to the mapping, which hands it to every
:class:`~noisecorr.engine.runtime.Worker`. The worker calls :meth:`Session.attach`, which
wraps, per PE instance, its writers and its ``process``/``postprocess`` callables
(:class:`WorkerRecorder`); the run loop itself is unchanged and pays nothing when
provenance is off.

Lineage rules
-------------
- Every item written travels as a :class:`~noisecorr.provenance.wrapper.Traced` with a
  *token* (its entity id) and the ids of the recorded entities it stands for; the wrapped
  ``process`` unwraps it before the PE sees it and opens the invocation (an activity that
  ``used`` those entities).
- An item written inside ``process`` derives from the item being processed.
- An item written inside ``postprocess`` derives from every item that instance consumed,
  unless the PE declares finer lineage with two hooks::

      def provenance_input_keys(self, port, item):  -> iterable of keys of a consumed item
      def provenance_output_keys(self, port, item): -> iterable of keys of a written item

  and the written item derives from the consumed items that share one of its keys (in
  ``process`` as well, for PEs that emit when a group completes).
- Ids are deterministic (:mod:`noisecorr.provenance.ids`): an entity id hashes the run id,
  PE, port, the tokens of what it derives from and its ordinal among the items written
  from the same sources, so every mapping gives the same ids for the same run id.

Records are buffered per worker and written in one transaction per
:attr:`Session.flush_every` entities, and at the end of the worker's loop.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field

from . import ids as _ids
from .rules import Rules
from .wrapper import Traced


@dataclass
class Session:
    """What every worker needs to record one run (picklable)."""

    run_id: str
    url: str
    rules: Rules = field(default_factory=Rules)
    flush_every: int = 5000

    def attach(self, worker):
        """Instrument the PE instances of ``worker``; returns the recorder (see module doc)."""
        return WorkerRecorder(self, worker)


class _State:
    """Lineage state of one PE instance."""

    __slots__ = ("name", "instance", "recorded", "in_keys", "out_keys", "keep_consumed", "consumed", "keyed",
                 "inputs", "activity", "ordinals", "broadcast", "post_used", "invocations", "phase")

    def __init__(self, name, instance, recorded):
        self.name = name
        self.instance = instance
        self.recorded = recorded
        self.in_keys = self.out_keys = None
        self.keep_consumed = False
        self.consumed = {}      # token -> ids, in arrival order
        self.keyed = {}         # key -> {token: ids}
        self.inputs = ()        # ((token, ids),) of the invocation in progress
        self.activity = None    # [activity id, kind, started] of the invocation in progress
        self.ordinals = {}
        self.broadcast = frozenset()
        self.post_used = None
        self.invocations = 0
        self.phase = "preprocess"


def _has_postprocess(pe):
    from noisecorr.engine.pe import GenericPE

    return type(pe).postprocess is not GenericPE.postprocess or hasattr(pe, "_postprocess")


class WorkerRecorder:
    """Wraps the PE instances of one worker and buffers their records."""

    def __init__(self, session: Session, worker):
        self.session = session
        self.run_id = session.run_id
        self.rules = session.rules
        self.worker_id = worker.worker_id
        self.buf = {"activities": [], "entities": [], "used": [], "derived": [], "meta": [], "products": []}
        self.pending = 0
        self.store = None
        self.meta_keys = tuple(self.rules.metadata)
        self.states = [self._instrument(runner) for runner in worker.runners]

    # -- instrumentation ---------------------------------------------------------------
    def _instrument(self, runner):
        pe = runner.pe
        st = _State(runner.name, runner.index, self.rules.records(runner.name))
        st.in_keys = getattr(pe, "provenance_input_keys", None)
        st.out_keys = getattr(pe, "provenance_output_keys", None)
        st.keep_consumed = _has_postprocess(pe)
        st.broadcast = frozenset(p for p, g in runner.spec.inputs.items() if g[0] == "all")
        st.activity = None
        for port, write in list(pe._writers.items()):
            pe._writers[port] = self._writer(st, port, write)
        if runner.is_source:
            runner.process = self._source_process(runner, st, runner.process)
        else:
            begins = {port: self._begin_fn(st, port) for port in runner.spec.inputs}
            process = runner.process

            def general(inputs, _process=process, _begins=begins):
                ((port, t),) = inputs.items()
                _begins[port](t)
                return _process({port: t.item})

            runner.process = general
            if runner.fast_fn is not None:
                fast, begin = runner.fast_fn, begins[pe.INPUT_NAME]

                def fast_fn(t, _fn=fast, _begin=begin):
                    _begin(t)
                    return _fn(t.item)

                runner.fast_fn = fast_fn
        post = runner.postprocess

        def postprocess(_post=post, _st=st):
            self._open(_st, "postprocess", _ids.activity_id(self.run_id, _st.name, "postprocess", _st.instance), (),
                       lazy=True)
            _st.post_used = set()
            _st.phase = "postprocess"
            _post()
            self._close_activity(_st)

        runner.postprocess = postprocess
        # writes in preprocess (rare) belong to a preprocess activity of the instance
        self._open(st, "preprocess", _ids.activity_id(self.run_id, st.name, "preprocess", st.instance), (),
                   lazy=True)
        return st

    def _begin_fn(self, st, port):
        run_id, name = self.run_id, st.name
        broadcast = port in st.broadcast
        in_keys = st.in_keys
        buf_used = self.buf["used"]

        def begin(t):
            if type(t) is Traced:
                inputs = ((t.token, t.ids),)
            else:  # an item from outside the instrumented graph
                st.invocations += 1
                inputs = ((_ids.digest(run_id, "untraced", name, st.instance, st.invocations), ()),)
            token, ids = inputs[0]
            if st.activity is not None:
                self._close_activity(st)
            st.inputs = inputs
            st.ordinals = {}
            st.phase = "process"
            if st.keep_consumed:
                st.consumed[token] = ids
            if in_keys is not None:
                for k in in_keys(port, t.item if type(t) is Traced else t):
                    st.keyed.setdefault(k, {})[token] = ids
            if st.recorded:
                aid = (_ids.activity_id(run_id, name, "process", port, token, st.instance) if broadcast
                       else _ids.activity_id(run_id, name, "process", port, token))
                st.activity = [aid, "process", time.time()]
                for i in ids:
                    buf_used.append((run_id, aid, i))
        return begin

    def _source_process(self, runner, st, process):
        run_id, name = self.run_id, st.name

        def source(inputs, _process=process):
            position = runner.position - 1  # the loop counts the iteration before calling
            token = _ids.input_entity_id(run_id, name, position)
            ids = ()
            if st.activity is not None:
                self._close_activity(st)
            if st.recorded:
                aid = _ids.activity_id(run_id, name, "iteration", position)
                st.activity = [aid, "iteration", time.time()]
                if inputs:
                    ids = (token,)
                    meta = self._meta(inputs)
                    self._entity(token, name, "<input>", None, inputs, meta, ())
                    self.buf["used"].append((run_id, aid, token))
            st.inputs = ((token, ids),)
            st.ordinals = {}
            st.phase = "process"
            return _process(inputs)
        return source

    def _open(self, st, kind, aid, inputs, lazy=False):
        if st.activity is not None:
            self._close_activity(st)
        st.inputs = inputs
        st.ordinals = {}
        st.activity = [aid, kind, time.time(), lazy] if st.recorded else None

    def _close_activity(self, st):
        act = st.activity
        st.activity = None
        if act is None or (len(act) > 3 and act[3]):  # a lazy activity that wrote nothing
            return
        self.buf["activities"].append((act[0], self.run_id, st.name, act[1], st.instance, self.worker_id,
                                       act[2], time.time()))

    # -- writing -----------------------------------------------------------------------
    def _sources(self, st, port, item):
        """``[(token, ids)]`` the item written now derives from."""
        if st.out_keys is not None:
            found = {}
            for k in st.out_keys(port, item):
                found.update(st.keyed.get(k, ()))
            if found:
                return sorted(found.items())
        if st.phase == "postprocess":
            return sorted(st.consumed.items())
        return st.inputs

    def _writer(self, st, port, write):
        run_id, name = self.run_id, st.name
        stores = self.rules.stores(name, port)

        def traced_write(item):
            sources = self._sources(st, port, item)
            tokens = tuple(s[0] for s in sources)
            sdig = _ids.sources_digest(tokens) if tokens else "-"
            n = st.ordinals.get((port, sdig), 0)
            st.ordinals[(port, sdig)] = n + 1
            token = _ids.entity_id(run_id, name, port, sdig, n)
            if len(sources) == 1:
                upstream = sources[0][1]
            else:
                upstream = tuple(sorted({i for s in sources for i in s[1]}))
            if st.recorded:
                act = st.activity
                if act is not None and len(act) > 3 and act[3]:
                    act[3] = False  # a lazy (preprocess) activity that writes is recorded
                aid = act[0] if act is not None else None
                if act is not None and act[1] == "postprocess":
                    for i in upstream:
                        if i not in st.post_used:
                            st.post_used.add(i)
                            self.buf["used"].append((run_id, aid, i))
                self._entity(token, name, port, aid, item, self._meta(item), upstream, stores)
                write(Traced(item, token, (token,)))
            else:
                write(Traced(item, token, upstream))
        return traced_write

    def _meta(self, item):
        if not isinstance(item, dict):
            return {}
        out = {}
        for k in self.meta_keys:
            if k in item:
                v = _jsonable(item[k])
                if v is not None:
                    out[k] = v
        return out

    def _entity(self, eid, pe, port, aid, item, meta, upstream, store=False):
        run_id = self.run_id
        stored = 0
        if store:
            blob = _product(item)
            if blob is not None and len(blob) <= self.rules.max_product_bytes:
                self.buf["products"].append((eid, run_id, "npz", len(blob), blob))
                stored = 1
        self.buf["entities"].append((eid, run_id, pe, port, aid, _label(item, meta), json.dumps(meta, sort_keys=True),
                                     _summary(item), stored))
        for k, v in meta.items():
            self.buf["meta"].append((run_id, eid, k, v if isinstance(v, str) else json.dumps(v)))
        derived = self.buf["derived"]
        for i in upstream:
            derived.append((run_id, eid, i))
        self.pending += 1
        if self.pending >= self.session.flush_every:
            self.flush()

    # -- store -------------------------------------------------------------------------
    def flush(self):
        """Write the buffered records in one transaction."""
        if not any(self.buf.values()):
            return
        if self.store is None:
            from .store import Store

            self.store = Store(self.session.url)
        self.store.write(self.buf)
        for rows in self.buf.values():
            rows.clear()
        self.pending = 0

    def close(self, worker):
        """End of the worker's loop: close open activities, write everything, unwrap outputs."""
        for st in self.states:
            self._close_activity(st)
        for outputs in worker.outputs.values():
            outputs[:] = [x.item if type(x) is Traced else x for x in outputs]
        self.flush()
        if self.store is not None:
            self.store.close()
            self.store = None


# -- item descriptions ---------------------------------------------------------------------------
def _jsonable(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    mod = type(v).__module__
    if mod == "numpy" and getattr(v, "ndim", 1) == 0 and hasattr(v, "item"):
        return _jsonable(v.item())
    if mod.startswith("obspy") and type(v).__name__ == "UTCDateTime":
        return str(v)
    if isinstance(v, (list, tuple)) and len(v) <= 16:
        out = [_jsonable(x) for x in v]
        return out if all(x is not None or y is None for x, y in zip(out, v)) else None
    return None


def _iso(t):
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(float(t)))
    except (TypeError, ValueError, OverflowError):
        return str(t)


def _label(item, meta):
    base = meta.get("key") or meta.get("seed_id")
    if base is None and "source" in meta and "receiver" in meta:
        base = f"{meta['source']}|{meta['receiver']}"
    when = meta.get("chunk", meta.get("starttime"))
    if base is not None:
        return f"{base} {_iso(when)}" if isinstance(when, (int, float)) and not isinstance(when, bool) and "key" not in meta else str(base)
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(v):
    shape = getattr(v, "shape", None)
    if shape is not None and getattr(v, "dtype", None) is not None:
        return f"{v.dtype}{tuple(shape)}"
    text = repr(v)
    return text if len(text) <= 40 else type(v).__name__


def _summary(item):
    if isinstance(item, dict):
        text = ", ".join(f"{k}: {_describe(v)}" for k, v in item.items())
    else:
        text = _describe(item)
    return text if len(text) <= 400 else text[:397] + "..."


def _product(item):
    """An npz of the item's numeric arrays (plus ``__meta__``: its JSON-able fields), or None."""
    import numpy as np

    arrays, meta = {}, {}
    if isinstance(item, dict):
        for k, v in item.items():
            if isinstance(v, np.ndarray) and v.dtype.kind in "biufc":
                arrays[str(k)] = v
            else:
                j = _jsonable(v)
                if j is not None or v is None:
                    meta[str(k)] = j
    elif isinstance(item, np.ndarray) and item.dtype.kind in "biufc":
        arrays["value"] = item
    else:
        j = _jsonable(item)
        if j is None and item is not None:
            return None
        meta["value"] = j
    out = io.BytesIO()
    np.savez(out, __meta__=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    return out.getvalue()
