"""The run loop, written once and shared by every mapping.

A :class:`Worker` hosts some PE instances (all of them in the sequential mapping, a share of
them in a worker process or on an MPI rank). It reads items, calls the PEs, routes what they
write and tells downstream instances when an instance has finished. A mapping only supplies
a *transport* that moves batches between workers (see :class:`Transport`). Under Storm a
worker hosts one PE instance in one multilang component and its transport routes by stream
(Storm's groupings choose the receiving task), so the same loop runs there as well.

Items for an instance on the same worker are appended to that instance's input buffer and
processed in batches, in topological order, so an item written by a PE is processed by the
next PE in the same pass. Items for an instance on another worker are appended to an
outgoing batch that the transport sends when it is large enough or when the pass ends.

A PE whose ``process()`` or ``postprocess()`` is a generator function is resumed once per
pass at each ``yield``, so the PEs after it (in the same worker) run between its steps: a
long computation that writes many large items (a tile of 60,000 correlations) then holds
one step's items at a time, not all of them. A yielded dict is written like a returned
one; other yielded values are ignored. Its next input waits until the generator is done,
unless the PE sets ``concurrent_inputs = True``: then its inputs keep being processed
between the steps (a tile worker stores arriving spectra while it computes a tile), and
it must run at most one generator at a time (return None from ``process()`` while its
generator runs, and let that generator pick up the new work).
With provenance recording on, generators run to completion inside the call (lineage is
per invocation).

End of stream: every instance counts the end-of-stream markers it receives (one per upstream
instance and stream); when all have arrived and its buffers are empty it runs
``postprocess()`` and sends its own markers downstream. Sources finish after their last
iteration. Nothing waits for a timeout.

Back-pressure: a worker runs its sources only while fewer than ``window`` of the batches it
sent are unacknowledged, and while the items already waiting in its own input buffers
amount to less than :data:`SOURCE_AHEAD_SECONDS` of work (each PE's measured seconds per
item times its waiting items): a source that is cheaper than the PEs after it (fetching a
day of waveforms takes 10 ms, preprocessing it 300 ms) would otherwise fill memory with
items the worker cannot process yet. For the same reason a PE waits its turn while the PEs
after it have that much work queued. A worker acknowledges the batches it received only
while its backlog is below the same bound, so a busy worker (a long tile) holds back the
sources of the workers that feed it instead of queueing everything they send. Other
instances never block on sending, which rules out deadlocks between workers that feed each
other; waiting items are always processed (the last PE never waits), so a paused PE or
source always resumes.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
import types

from .errors import PEError, TransportError, short_repr
from .pe import fast_item_function, write_returned
from .routing import make_router

log = logging.getLogger("noisecorr.engine")

#: Source iterations run per pass (bounded also by the items they write).
SOURCE_CHUNK = 1024
#: Seconds of work a PE instance does per pass before the PEs after it get their turn.
BATCH_SECONDS = 0.05
#: Seconds of local work waiting in a worker's buffers above which its sources pause.
SOURCE_AHEAD_SECONDS = 0.5
#: Per-item cost assumed for a PE not yet measured (its first item sizes its batches).
UNMEASURED_COST = BATCH_SECONDS
#: Seconds between returns of freed heap memory to the operating system (glibc only).
TRIM_SECONDS = 2.0


def _malloc_trim():
    """``malloc_trim(0)`` where the C library has it (glibc), else a no-op.

    Arrays of 0.1-32 MB (a station-day, its spectra, one batch of correlations) come from
    glibc's heap once its dynamic mmap threshold has grown, and freed heap pages in the
    middle of the heap stay resident: a long run's workers grew by gigabytes of memory
    they no longer used. ``malloc_trim`` hands those pages back (``MADV_DONTNEED``)."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None
_DEBUG_QUEUES = bool(os.environ.get("NOISECORR_DEBUG_QUEUES"))

#: Items in the first outgoing batch to a worker; transports grow it towards a byte target.
DEFAULT_BATCH = 32
#: Bytes per outgoing batch that transports aim for, and the most items in one batch.
TARGET_BATCH_BYTES = 1 << 20
MAX_BATCH = 65536


class Transport:
    """How batches move between workers; the sequential mapping has no remote workers.

    A transport implements ``send(worker, data, eos)``, where ``data`` is a list of
    ``((pe, instance, port), items)`` and ``eos`` a list of ``(pe, instance)`` markers that
    follow the data, ``recv(block)`` returning a list of events, and ``may_produce()``.
    Events are ``("batch", sender, data, eos)``, ``("ack", sender, count)`` and
    ``("stop",)`` (the coordinator says every worker has finished).

    A transport whose system routes items itself (Storm: a component emits on a stream and
    Storm's groupings choose the receiving task) sets :attr:`routes_streams`: the worker
    then hands every item written to a connected output port to :meth:`stream_writer`'s
    callable and announces a finished instance with :meth:`end_of_stream`, instead of
    choosing destination instances and sending per-instance end-of-stream markers. Such a
    transport decides when sources run through :meth:`may_iterate` (a Storm spout runs one
    chunk per ``next`` command).
    """

    remote = False
    #: Items per outgoing batch, per destination worker (read on every remote append).
    limits: dict = {}
    #: True when the transport routes written items itself (see the class docstring).
    routes_streams = False
    #: How error messages name the worker ("Storm task 3 of component 'Square'"); None:
    #: "worker N" for a remote transport, nothing for the sequential one.
    where = None

    def __init__(self):
        #: ``position[0]`` is set to the index of the item being processed in its batch.
        self.position = [0]

    def send(self, worker, data, eos):  # pragma: no cover - no remote worker
        raise RuntimeError("the sequential transport has no remote workers")

    def ack(self, worker, count):  # pragma: no cover
        pass

    def recv(self, block):
        return []

    def pack_batch(self, obj, data, where):
        """``self.pack(obj)``; if an item cannot be pickled, name it and its destination.

        ``data`` is the batch's ``[((pe, instance, port), items), ...]``; ``where`` says
        where the items were going ("another process", "MPI rank 3").
        """
        from . import serialize

        try:
            return self.pack(obj)
        except TransportError:
            for dest, items in data:
                bad = serialize.find_unpicklable(items)
                if bad is not None:
                    err = TransportError(
                        f"item {short_repr(bad[1])} for PE '{dest[0]}' input '{dest[2]}' cannot be "
                        f"pickled to reach {where}: {type(bad[2]).__name__}: {bad[2]}"
                    )
                    err.destination, err.item = dest, short_repr(bad[1])
                    raise err from None
            raise

    def adapt_limit(self, worker, n_items, nbytes):
        """Grow or shrink the batch size for ``worker`` towards :data:`TARGET_BATCH_BYTES`."""
        if n_items:
            by_bytes = int(TARGET_BATCH_BYTES / max(nbytes / n_items, 1.0))
            self.limits[worker] = max(1, min(MAX_BATCH, by_bytes, 8 * self.limits[worker]))

    def note_item(self, runner, batch):
        """Record the batch being processed (used to name the item if the process dies)."""

    def note_idle(self):
        """Record that no item is being processed."""

    def may_iterate(self):
        """Whether local sources may run one chunk of iterations now (called once per pass
        and source, only when the worker's own back-pressure allows it)."""
        return True

    def stream_writer(self, runner, port):  # pragma: no cover - only with routes_streams
        """A callable taking one item written by ``runner`` to ``port`` (``routes_streams``)."""
        raise NotImplementedError("a transport with routes_streams = True must implement stream_writer")

    def end_of_stream(self, runner):  # pragma: no cover - only with routes_streams
        """Announce that ``runner`` has finished (``routes_streams``)."""
        raise NotImplementedError("a transport with routes_streams = True must implement end_of_stream")


class Runner:
    """One PE instance and its input buffers, counters and end-of-stream state."""

    def __init__(self, pe_spec, index, pe, expected_eos, iterations):
        self.spec = pe_spec
        self.name = pe_spec.name
        self.index = index
        self.pe = pe
        self.buffers = {port: [] for port in pe_spec.inputs}
        self.buffer_items = list(self.buffers.items())
        self.expected_eos = expected_eos
        self.eos = 0
        self.done = False
        self.is_source = pe_spec.is_source
        self.iterations = iterations  # int or list of dicts (sources only)
        self.position = 0
        self.counts_in = {port: 0 for port in pe_spec.inputs}
        self.out_cells = {port: [0] for port in pe_spec.outputs}
        self.seconds = 0.0
        self.cost = None  # running estimate of seconds per item (sizes the batches)
        self.fast_kind, self.fast_fn = fast_item_function(pe)
        # what the loop calls; a provenance recorder may wrap them (see Worker(provenance=))
        self.process = pe.process
        self.postprocess = pe.postprocess
        #: a suspended generator ``process()``/``postprocess()``: (generator, item, phase)
        self.suspended = None
        self.step_seconds = 0.0  # seconds of the suspended generator's later steps
        self.concurrent = bool(getattr(pe, "concurrent_inputs", False))

    @property
    def key(self):
        return (self.name, self.index)

    def remaining(self):
        total = self.iterations if isinstance(self.iterations, int) else len(self.iterations)
        return total - self.position

    def written(self):
        return sum(c[0] for c in self.out_cells.values())

    def stats(self):
        return {
            "in": dict(self.counts_in),
            "out": {p: c[0] for p, c in self.out_cells.items()},
            "seconds": self.seconds,
        }


class Worker:
    """Hosts the PE instances that ``plan`` places on worker ``worker_id`` and runs them.

    Parameters
    ----------
    spec : GraphSpec
    plan : Plan
    worker_id : int
    transport : Transport
    window : int
        Unacknowledged outgoing batches above which local sources pause.
    provenance : noisecorr.provenance.Session, optional
        Record lineage: the session wraps each instance's writers and ``process``/
        ``postprocess`` once, here, so the loop below is the same with provenance off.
    source_chunk : int
        Most iterations, and most items written, per source chunk (one pass).
    """

    def __init__(self, spec, plan, worker_id=0, transport=None, window=16, progress=None,
                 progress_interval=0.5, provenance=None, source_chunk=SOURCE_CHUNK):
        self.spec = spec
        self.source_chunk = int(source_chunk)
        self.progress = progress
        self.progress_interval = progress_interval
        self._last_progress = time.monotonic()
        self.plan = plan
        self.worker_id = worker_id
        self.transport = transport or Transport()
        self.window = window
        self.unacked = 0
        self.acks_owed = {}
        self.outputs = {key: [] for key in spec.unconnected_outputs()}
        self.outboxes = {}  # worker -> {"lists": {(pe, i, port): list}, "eos": []}
        self.runners = []
        self.local = {}
        hosted = set(plan.hosted_by(worker_id))
        for pe_spec in spec.pes:
            expected = sum(plan.instances[e.source] for e in spec.edges_to(pe_spec.name))
            for i in range(plan.instances[pe_spec.name]):
                if (pe_spec.name, i) not in hosted:
                    continue
                pe = pe_spec.instantiate()
                pe.instance = i
                pe.rank = worker_id
                runner = Runner(pe_spec, i, pe, expected, spec.iterations.get(pe_spec.name, 0))
                self.runners.append(runner)
                self.local[runner.key] = runner
        for runner in self.runners:
            runner.pe._writers = {port: self._make_writer(runner, port) for port in runner.spec.outputs}
        self.recorder = provenance.attach(self) if provenance is not None else None
        #: When this worker was ready (``time.time()``, comparable between the processes of a
        #: machine: after its PE instances were unpickled, which imports their modules), when
        #: its loop finished, and the seconds it waited blocked on its transport, by reason
        #: (:meth:`_wait_reason`). Reported in :meth:`summary`.
        self.timing = {"started": time.time(), "finished": None, "waits": {}}

    # -- wiring ------------------------------------------------------------------------
    def _target(self, dest, index, port):
        runner = self.local.get((dest, index))
        if runner is not None:
            return runner.buffers[port].append
        worker = self.plan.placement[(dest, index)]
        box = self.outboxes.setdefault(worker, {"lists": {}, "eos": []})
        buf = box["lists"].setdefault((dest, index, port), [])
        flush = self._flush_worker

        def remote_append(item, _append=buf.append, _buf=buf, _w=worker, _limits=self.transport.limits):
            _append(item)
            if len(_buf) >= _limits[_w]:
                flush(_w)
        return remote_append

    def _make_writer(self, runner, port):
        routes = []
        edges = self.spec.edges_from(runner.name, port)
        if edges and self.transport.routes_streams:
            routes.append(self.transport.stream_writer(runner, port))
            edges = ()
        for edge in edges:
            n = self.plan.instances[edge.dest]
            grouping, indices = edge.grouping, range(n)
            if grouping[0] == "local":  # any instance will do: prefer those in this process
                indices = [j for j in range(n) if (edge.dest, j) in self.local] or range(n)
                grouping = ("shuffle",)
            targets = [self._target(edge.dest, j, edge.dest_port) for j in indices]
            routes.append(make_router(grouping, targets, start=runner.index))
        if not routes:
            routes.append(self.outputs[(runner.name, port)].append)
        cell = runner.out_cells[port]
        if len(routes) == 1:
            def write(item, _route=routes[0], _cell=cell):
                _cell[0] += 1
                _route(item)
        else:
            def write(item, _routes=tuple(routes), _cell=cell):
                _cell[0] += 1
                for r in _routes:
                    r(item)
        return write

    # -- the loop ----------------------------------------------------------------------
    def run(self):
        """Run every hosted instance to completion; raise :class:`PEError` on failure."""
        for runner in self.runners:
            self._call(runner, "preprocess", runner.pe.preprocess)
        last_trim = time.monotonic()
        while True:
            progressed = self._pass()
            self._flush_all()
            if time.monotonic() - last_trim >= TRIM_SECONDS:
                _malloc_trim()
                last_trim = time.monotonic()
                if _DEBUG_QUEUES:
                    waiting = {f"{r.name}[{r.index}]": sum(len(b) for _, b in r.buffer_items)
                               for r in self.runners if not r.done}
                    out = {w: sum(len(i) for i in box["lists"].values()) for w, box in self.outboxes.items()}
                    log.warning("worker %s: waiting %s outboxes %s unacked %d owed %s suspended %s",
                                self.worker_id, {k: v for k, v in waiting.items() if v}, out,
                                self.unacked, self.acks_owed,
                                [r.name for r in self.runners if r.suspended is not None])
            if self.progress is not None and time.monotonic() - self._last_progress >= self.progress_interval:
                self._last_progress = time.monotonic()
                self.progress(self.snapshot())
            if all(r.done for r in self.runners):
                if self.progress is not None:
                    self.progress(self.snapshot())
                if self.recorder is not None:
                    self.recorder.close(self)
                self.timing["finished"] = time.time()
                return self.summary()
            blocked = not progressed
            if not blocked or not self.transport.remote:
                events = self.transport.recv(block=False)
            else:
                reason, t_wait = self._wait_reason(), time.perf_counter()
                events = self.transport.recv(block=True)
                waits = self.timing["waits"]
                waits[reason] = waits.get(reason, 0.0) + (time.perf_counter() - t_wait)
            if events:
                self._handle(events)
            elif blocked and not self.transport.remote:
                raise RuntimeError(self._stall_report())

    def _pass(self):
        progressed = False
        # seconds of work waiting in the runners after each one (topological order): a PE
        # whose successors already have SOURCE_AHEAD_SECONDS of work waits its turn, so a
        # cheap PE (fetching a station-day) does not flood an expensive one (preprocessing)
        ahead, total = [], 0.0
        for r in reversed(self.runners):
            ahead.append(total)
            total += self._waiting_seconds(r)
        ahead.reverse()
        for k, runner in enumerate(self.runners):
            if runner.done:
                continue
            if runner.suspended is not None:
                self._resume(runner)
                progressed = True
                if runner.done or (runner.suspended is not None and not runner.concurrent):
                    continue
                # (a concurrent_inputs PE takes its inputs while its generator is suspended)
            if runner.is_source:
                if (runner.remaining() > 0 and self.unacked < self.window
                        and self._backlog_seconds() < SOURCE_AHEAD_SECONDS and self.transport.may_iterate()):
                    self._iterate(runner)
                    progressed = True
                if runner.remaining() <= 0:
                    self._finish(runner)
                    progressed = True
                continue
            pending = False
            if ahead[k] >= SOURCE_AHEAD_SECONDS and any(buf for _, buf in runner.buffer_items):
                continue  # its successors catch up first (they always can: nothing waits on it)
            for port, buf in runner.buffer_items:
                if buf:
                    self._process_batch(runner, port, buf)
                    progressed = True
                    pending = pending or bool(buf)
                    if runner.suspended is not None and not runner.concurrent:
                        break
            if not pending and runner.suspended is None and runner.eos >= runner.expected_eos:
                self._finish(runner)
                progressed = True
        return progressed

    def _wait_reason(self) -> str:
        """Why this worker, with nothing to do, waits on its transport: ``"downstream"`` when
        a local source has iterations left but ``window`` of its batches are unacknowledged
        (the workers that receive them are slower), else ``"input:PE"`` for the first
        unfinished local instance in topological order (it waits for items or end-of-stream
        markers of the PEs upstream of ``PE``, on other workers), else ``"other"``."""
        for r in self.runners:
            if r.is_source and not r.done and r.remaining() > 0 and self.unacked >= self.window:
                return "downstream"
        for r in self.runners:
            if not r.done and not r.is_source:
                return "input:" + r.name
        return "other"

    @staticmethod
    def _waiting_seconds(r):
        if r.is_source or r.done:
            return 0.0
        waiting = sum(len(buf) for _, buf in r.buffer_items)
        return waiting * (UNMEASURED_COST if r.cost is None else r.cost) if waiting else 0.0

    def _backlog_seconds(self):
        """Estimated seconds of work waiting in this worker's input buffers."""
        return sum(self._waiting_seconds(r) for r in self.runners)

    def _iterate(self, runner):
        process = runner.process
        data = runner.iterations
        listed = not isinstance(data, int)
        start_written = runner.written()
        t0 = checked = time.perf_counter()
        chunk = self.source_chunk
        n = min(chunk, runner.remaining())
        try:
            for _ in range(n):
                inputs = data[runner.position] if listed else {}
                runner.position += 1
                result = process(inputs)
                if result is not None:
                    write_returned(runner.pe, result)
                now = time.perf_counter()
                if (runner.written() - start_written >= chunk or self.unacked >= self.window
                        or now - t0 > BATCH_SECONDS):
                    break
                if now - checked > 0.002:  # the backlog, every 2 ms (cheap sources run on)
                    checked = now
                    if self._backlog_seconds() >= SOURCE_AHEAD_SECONDS:
                        break
        except Exception:
            what = f"input {short_repr(inputs)}" if listed else f"iteration {runner.position}"
            raise self._error(runner, "process", what) from None
        finally:
            runner.seconds += time.perf_counter() - t0

    def _process_batch(self, runner, port, buf):
        """Process the items waiting in ``buf``, or as many as fit in :data:`BATCH_SECONDS`.

        Cheap items are processed a whole buffer at a time; expensive ones (a day of
        waveforms each) a few per pass, so the PEs downstream run before more pile up and
        memory holds a few large items per stage, not the whole input.
        """
        if runner.cost is None:
            k = 1  # measure the first item before committing to a batch
        elif runner.cost * len(buf) <= BATCH_SECONDS:
            k = len(buf)
        else:
            k = max(1, int(BATCH_SECONDS / runner.cost))
        if k < len(buf):
            batch = buf[:k]
            del buf[:k]
        else:
            batch = buf
        runner.counts_in[port] += len(batch)
        self.transport.note_item(runner, batch)
        pos = self.transport.position  # pos[0] = index of the item being processed
        t0 = time.perf_counter()
        item = None
        suspended_here = False
        try:
            fn = runner.fast_fn
            if runner.fast_kind == "iterative":
                write = runner.pe._writers[runner.pe.OUTPUT_NAME]
                for pos[0], item in enumerate(batch):
                    result = fn(item)
                    if result is not None:
                        write(result)
            elif runner.fast_kind == "consumer":
                for pos[0], item in enumerate(batch):
                    fn(item)
            else:
                process = runner.process
                for pos[0], item in enumerate(batch):
                    result = process({port: item})
                    if result is None:
                        continue
                    if type(result) is types.GeneratorType:
                        if self._start(runner, result, short_repr(item), "process"):
                            suspended_here = True
                            # suspended: the rest of the batch waits, in order
                            processed, rest = batch[:pos[0] + 1], batch[pos[0] + 1:]
                            runner.counts_in[port] -= len(rest)
                            if batch is buf:
                                del buf[:len(processed)]
                            else:
                                buf[:0] = rest
                            batch = processed
                            break
                    else:
                        write_returned(runner.pe, result)
        except Exception:
            raise self._error(runner, "process", short_repr(item)) from None
        finally:
            elapsed = time.perf_counter() - t0
            runner.seconds += elapsed
        if not suspended_here:  # (a suspended item's cost counts when it completes)
            per_item = elapsed / len(batch)
            runner.cost = per_item if runner.cost is None else 0.5 * (runner.cost + per_item)
        else:
            runner.step_seconds = elapsed
        self.transport.note_idle()
        if batch is buf:
            buf.clear()

    def _start(self, runner, gen, item, phase):
        """Run a new generator to its first ``yield``; True if it is now suspended."""
        if self.recorder is not None:  # lineage is per invocation: run it to the end here
            write_returned(runner.pe, gen)
            return False
        if runner.suspended is not None:  # (concurrent_inputs: one generator at a time)
            try:
                next(gen)
            except StopIteration:
                return False
            raise RuntimeError(
                f"process() of PE '{runner.name}' yielded while an earlier generator of the same "
                "instance was suspended; a PE with concurrent_inputs = True must drive its long "
                "work from one generator at a time (return None while it runs)")
        runner.suspended = (gen, item, phase)
        return self._step(runner)

    def _step(self, runner):
        gen = runner.suspended[0]
        try:
            out = next(gen)
        except StopIteration:
            runner.suspended = None
            return False
        if isinstance(out, dict):
            write_returned(runner.pe, out)
        return True

    def _resume(self, runner):
        """One step of a suspended generator; completes the PE's end if it was postprocess."""
        _, item, phase = runner.suspended
        self.transport.note_item(runner, [item])
        self.transport.position[0] = 0
        t0 = time.perf_counter()
        try:
            more = self._step(runner)
        except Exception:
            runner.suspended = None
            raise self._error(runner, phase, item if phase == "process" else None) from None
        finally:
            elapsed = time.perf_counter() - t0
            runner.seconds += elapsed
            runner.step_seconds += elapsed
            self.transport.note_idle()
        if not more and phase == "process":
            # the item's cost is all its steps (it sizes batches and the backlog)
            runner.cost = 0.5 * ((runner.cost or 0.0) + runner.step_seconds)
        if not more and phase == "postprocess":
            self._ended(runner)

    def _finish(self, runner):
        t0 = time.perf_counter()
        try:
            result = runner.postprocess()
            suspended = type(result) is types.GeneratorType and self._start(runner, result, None, "postprocess")
        except Exception:
            runner.suspended = None
            raise self._error(runner, "postprocess", None) from None
        finally:
            runner.seconds += time.perf_counter() - t0
        if not suspended:
            self._ended(runner)

    def _ended(self, runner):
        runner.done = True
        if self.transport.routes_streams:
            self.transport.end_of_stream(runner)
            return
        for edge in self.spec.edges_from(runner.name):
            for j in range(self.plan.instances[edge.dest]):
                target = self.local.get((edge.dest, j))
                if target is not None:
                    target.eos += 1
                else:
                    worker = self.plan.placement[(edge.dest, j)]
                    self.outboxes.setdefault(worker, {"lists": {}, "eos": []})["eos"].append((edge.dest, j))

    def _call(self, runner, phase, fn):
        t0 = time.perf_counter()
        try:
            fn()
        except Exception:
            raise self._error(runner, phase, None) from None
        finally:
            runner.seconds += time.perf_counter() - t0

    def _error(self, runner, phase, item):
        exc = sys.exc_info()[1]
        return PEError(
            runner.name,
            runner.index,
            item,
            phase,
            traceback.format_exc(),
            where=self._where(),
            reason=str(exc) if isinstance(exc, TransportError) else "",
        )

    # -- transport side ----------------------------------------------------------------
    def _flush_worker(self, worker):
        box = self.outboxes[worker]
        data = [(key, list(items)) for key, items in box["lists"].items() if items]
        eos = box["eos"]
        if not data and not eos:
            return
        for items in box["lists"].values():
            items.clear()
        box["eos"] = []
        self.transport.send(worker, data, eos)
        self.unacked += 1

    def _flush_all(self):
        for worker in list(self.outboxes):
            try:
                self._flush_worker(worker)
            except TransportError as exc:
                raise self._write_error(worker, exc) from None
        if self.acks_owed and self._backlog_seconds() < SOURCE_AHEAD_SECONDS:
            for sender, count in self.acks_owed.items():
                if count:
                    self.transport.ack(sender, count)
            self.acks_owed.clear()

    def _write_error(self, worker, exc):
        """Name the local PE(s) that wrote an item that cannot be sent to ``worker``."""
        dest = getattr(exc, "destination", None)
        writers = sorted(
            {(e.source, r.index) for e in self.spec.edges if dest and (e.dest, e.dest_port) == dest[::2]
             for r in self.runners if r.name == e.source}
        )
        pe = ", ".join(sorted({name for name, _ in writers})) or "?"
        instance = writers[0][1] if len(writers) == 1 else None
        return PEError(pe, instance, getattr(exc, "item", None), "write", "",
                       where=self._where(), reason=str(exc))

    def _where(self):
        if self.transport.where:
            return self.transport.where
        return f"worker {self.worker_id}" if self.transport.remote else ""

    def _handle(self, events):
        for event in events:
            kind = event[0]
            if kind == "batch":
                _, sender, data, eos = event
                for (pe, index, port), items in data:
                    self.local[(pe, index)].buffers[port].extend(items)
                for key in eos:
                    self.local[key].eos += 1
                self.acks_owed[sender] = self.acks_owed.get(sender, 0) + 1
            elif kind == "ack":
                self.unacked -= event[2]
            else:
                raise RuntimeError(f"worker {self.worker_id}: unexpected event {kind!r} before finishing")

    def _stall_report(self):
        waiting = [
            f"{r.name}[{r.index}] ({r.eos}/{r.expected_eos} upstream finished)"
            for r in self.runners
            if not r.done
        ]
        return "the run loop stalled with unfinished instances: " + ", ".join(waiting)

    def snapshot(self):
        """``{(pe, instance): (items in, items out)}`` so far (for progress reports)."""
        return {r.key: (sum(r.counts_in.values()), r.written()) for r in self.runners}

    def summary(self):
        """Outputs and per-instance counters of this worker (picklable)."""
        return {
            "worker": self.worker_id,
            "outputs": self.outputs,
            "stats": {r.key: r.stats() for r in self.runners},
            "timing": dict(self.timing, waits=dict(self.timing["waits"])),
        }


def unpicklable_output_error(summary, where, receiver):
    """A :class:`PEError` naming the first output item of ``summary`` that cannot be pickled.

    Used when a worker's summary cannot be sent to ``receiver`` (the driver, MPI rank 0);
    returns None when every item pickles (the failure lies elsewhere).
    """
    from . import serialize

    for (pe, port), items in summary["outputs"].items():
        bad = serialize.find_unpicklable(items)
        if bad is not None:
            return PEError(pe, None, short_repr(bad[1]), "write", "", where=where,
                           reason=f"an item of output '{port}' cannot be pickled to return it to {receiver}: {bad[2]}")
    return None
