"""The multiprocess mapping: PE instances spread over worker processes on one machine.

Each worker process runs the shared loop (:class:`~noisecorr.engine.runtime.Worker`) over the
instances the plan places on it; instances of different PEs share a process when there are
more instances than processes. Workers exchange *batches* of items through one inbound
``multiprocessing.Queue`` per worker, so the cost of a message is shared by many items (the
batch size adapts to about 1 MB per message). numpy arrays of 64 KiB or more, anywhere inside
an item, do not go through the pickle stream: the sender writes each into its own file in
``/dev/shm`` (one copy) and the receiver maps it read-only and unlinks it, so a PE never sees
memory that another PE may still change.

Start method: ``spawn``, deliberately. ``fork`` would copy the driver's threads and locks
(OpenBLAS pools, queue feeder threads, an MPI library) in whatever state they happen to be,
which deadlocks at random; ``spawn`` starts clean interpreters and behaves the same on Linux,
macOS and Windows. PEs therefore travel pickled (cloudpickle), never inherited.

Faults: a PE exception is reported by its worker with the traceback; a worker that dies
(a signal, the out-of-memory killer) is noticed by the driver through its exit code, and the
PE instance and item it was processing are read from a small shared slot that the worker
updates for every batch. Either way every process is stopped and :class:`PEError` is raised.
"""

from __future__ import annotations

import glob
import itertools
import logging
import mmap
import multiprocessing as mp
import os
import pickle
import queue
import signal
import time
import traceback

from noisecorr.engine import serialize
from noisecorr.engine.errors import EngineError, PEError, TransportError, short_repr
from noisecorr.engine.plan import make_plan
from noisecorr.engine.result import ProgressAggregator, merge_summaries
from noisecorr.engine.runtime import DEFAULT_BATCH, Transport, Worker, unpicklable_output_error

log = logging.getLogger("noisecorr.engine.multiprocess")

NAME = "multiprocess"
SHM_DIR = "/dev/shm"
SLOT_BYTES = 16384
RECORDED_ITEMS = 64
_SEP = "\x1f"
_runs = itertools.count()


def _shm_available():
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


class QueueTransport(Transport):
    """Batches over ``multiprocessing`` queues, large buffers through ``/dev/shm`` files."""

    remote = True

    def __init__(self, worker_id, queues, slot, position, prefix):
        self.worker_id = worker_id
        self.position = position
        self.queues = queues
        self.inbox = queues[worker_id]
        self.slot = slot
        self.prefix = prefix
        self.limits = [DEFAULT_BATCH] * len(queues)
        self.threshold = serialize.OUT_OF_BAND_BYTES if _shm_available() else float("inf")
        self.counter = itertools.count()
        self.parent = os.getppid()

    # -- encoding ----------------------------------------------------------------------
    def pack(self, obj):
        header, buffers = serialize.dumps(obj, self.threshold)
        return header, [self._to_shm(raw) for raw in buffers]

    def _to_shm(self, raw):
        path = f"{SHM_DIR}/{self.prefix}-{self.worker_id}-{next(self.counter)}"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            view = raw.cast("B")
            done = 0
            while done < view.nbytes:
                done += os.write(fd, view[done:])
        finally:
            os.close(fd)
        return path, raw.nbytes

    @staticmethod
    def unpack(header, names):
        buffers = []
        for path, nbytes in names:
            fd = os.open(path, os.O_RDONLY)
            try:
                mm = mmap.mmap(fd, nbytes, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            os.unlink(path)  # the mapping stays valid; memory is freed with the last array
            buffers.append(memoryview(mm))
        return serialize.loads(header, buffers)

    # -- Transport API -----------------------------------------------------------------
    def send(self, worker, data, eos):
        header, names = self.pack_batch((self.worker_id, data, eos), data, "another process")
        self.queues[worker].put(("batch", header, names))
        self.adapt_limit(worker, sum(len(items) for _, items in data), len(header) + sum(n for _, n in names))

    def ack(self, worker, count):
        self.queues[worker].put(("ack", self.worker_id, count))

    def _decode(self, msg):
        if msg[0] == "batch":
            sender, data, eos = self.unpack(msg[1], msg[2])
            return ("batch", sender, data, eos)
        return msg

    def recv(self, block):
        try:
            if block:
                while True:
                    try:
                        msg = self.inbox.get(timeout=1.0)
                        break
                    except queue.Empty:
                        if os.getppid() != self.parent:  # the driver is gone: nobody will stop us
                            os._exit(3)
            else:
                msg = self.inbox.get_nowait()
        except queue.Empty:
            return []
        events = [self._decode(msg)]
        for _ in range(256):
            try:
                events.append(self._decode(self.inbox.get_nowait()))
            except queue.Empty:
                break
        return events

    def note_item(self, runner, batch):
        # Small batches (large items) record every item; large batches of small items
        # record the first one, and ``position`` says which item of the batch was running.
        shown = batch if len(batch) <= RECORDED_ITEMS else batch[:1]
        text = _SEP.join([runner.name, str(runner.index), str(len(batch))] + [short_repr(x) for x in shown])
        self.slot.value = text.encode("utf-8", "replace")[: SLOT_BYTES - 1]

    def note_idle(self):
        self.slot.value = b""


def _worker_main(spec, plan, worker_id, queues, control, slot, position, prefix, window, progress,
                 provenance=None):
    # The driver handles Ctrl-C and stops the workers; a worker must not die on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    transport = QueueTransport(worker_id, queues, slot, position, prefix)
    try:
        hook = (lambda snap: control.put(("progress", worker_id, snap))) if progress else None
        worker = Worker(spec, plan, worker_id, transport, window=window, progress=hook, provenance=provenance)
        summary = worker.run()
        try:
            header, names = transport.pack(summary)
        except TransportError:
            err = unpicklable_output_error(summary, f"worker {worker_id}", "the driver")
            if err is None:
                raise
            raise err from None
        control.put(("done", worker_id, header, names))
    except PEError as err:
        control.put(("error", worker_id, pickle.dumps(err)))
        return
    except Exception:
        control.put(("crash", worker_id, traceback.format_exc()))
        return
    # Finished: keep reading (late acknowledgements) until the driver says everyone is done.
    while True:
        if any(ev[0] == "stop" for ev in transport.recv(block=True)):
            for q in queues:
                q.cancel_join_thread()
            return


def _death_error(worker_id, proc, slot, position, plan):
    code = proc.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        reason = f"worker process {worker_id} (pid {proc.pid}) was killed by {name}"
        if -code == signal.SIGKILL:
            reason += " (sent by someone, or by the out-of-memory killer)"
    else:
        reason = f"worker process {worker_id} (pid {proc.pid}) exited unexpectedly with status {code}"
    text = bytes(slot.value).decode("utf-8", "replace")
    if text:
        pe, index, size, *shown = text.split(_SEP)
        at = position[0]
        if at < len(shown):
            item = shown[at]
        else:
            item = f"number {at} of a batch of {size} starting with {shown[0]}"
        return PEError(pe, int(index), item, "worker", "", where=f"worker {worker_id}", reason=reason)
    hosted = ", ".join(f"{pe}[{i}]" for pe, i in plan.hosted_by(worker_id))
    return PEError(hosted, None, None, "worker", "", where=f"worker {worker_id}", reason=reason)


def enact(spec, processes=None, mapping_name=NAME, window=16, start_method="spawn", progress=None,
          provenance=None, **options):
    """Run ``spec`` on ``processes`` worker processes (default: the number of CPUs).

    Parameters
    ----------
    window : int
        Unacknowledged batches per worker above which its sources pause (back-pressure).
    start_method : str
        ``"spawn"`` (default, see the module docstring) or ``"forkserver"``.
    progress : callable, optional
        Called in this process about twice a second with ``{pe: {"in": n, "out": n}}``.
    provenance : noisecorr.provenance.Session, optional
        Record lineage; each worker process writes its records to the session's store.
    """
    if options:
        raise TypeError(f"unknown option(s) for the multiprocess mapping: {sorted(options)}")
    n = processes or os.cpu_count() or 1
    plan = make_plan(spec, n)
    ctx = mp.get_context(start_method)
    prefix = f"noisecorr-{os.getpid()}-{next(_runs)}"
    queues = [ctx.Queue() for _ in range(n)]
    control = ctx.Queue()
    slots = [ctx.RawArray("c", SLOT_BYTES) for _ in range(n)]
    positions = [ctx.RawArray("q", 1) for _ in range(n)]
    procs = {}
    t0 = time.perf_counter()
    try:
        for w in range(n):
            if plan.hosted_by(w):
                procs[w] = ctx.Process(
                    target=_worker_main,
                    args=(spec, plan, w, queues, control, slots[w], positions[w], prefix, window,
                          progress is not None, provenance),
                    name=f"noisecorr-worker-{w}",
                    daemon=True,
                )
                procs[w].start()
        hook = ProgressAggregator(progress) if progress is not None else None
        summaries = _collect(procs, control, slots, positions, plan, hook)
        for w in procs:
            queues[w].put(("stop",))
        for p in procs.values():
            p.join(timeout=30)
    finally:
        _cleanup(procs, queues + [control], prefix)
    return merge_summaries(spec, plan, summaries, mapping_name, time.perf_counter() - t0)


def _collect(procs, control, slots, positions, plan, progress=None):
    pending = set(procs)
    summaries = []
    while pending:
        try:
            msg = control.get(timeout=0.05)
        except queue.Empty:
            dead = [w for w in pending if procs[w].exitcode is not None]
            if not dead:
                continue
            try:  # its last words may still be in the pipe
                msg = control.get(timeout=0.5)
            except queue.Empty:
                raise _death_error(dead[0], procs[dead[0]], slots[dead[0]], positions[dead[0]], plan) from None
        kind, w = msg[0], msg[1]
        if kind == "progress":
            if progress is not None:
                progress(msg[2], worker=w)
        elif kind == "done":
            summaries.append(QueueTransport.unpack(msg[2], msg[3]))
            pending.discard(w)
        elif kind == "error":
            raise pickle.loads(msg[2])
        else:
            raise EngineError(f"worker process {w} failed outside any PE:\n{msg[2]}")
    return summaries


def _cleanup(procs, queues, prefix):
    for p in procs.values():
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 3
    for p in procs.values():
        if p.pid is None:  # start() itself failed: nothing to stop
            continue
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()
    for q in queues:
        q.cancel_join_thread()
        q.close()
    for path in glob.glob(f"{SHM_DIR}/{prefix}-*"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
