"""What runs on the Dask workers: the inbox actor, the transport and the worker task.

Every engine worker of a run is one long-running Dask task (:func:`worker_task`) that runs
the shared loop (:class:`~noisecorr.engine.runtime.Worker`) on the instances the plan places
on it, next to one :class:`Inbox` actor on the same Dask worker process. A batch for engine
worker ``w`` is a call of ``inbox[w].put(...)``: Dask sends actor calls straight from worker
to worker over its own comms (TCP), never through the scheduler. The actor method is a
coroutine, so it runs on the receiving worker's event loop and only appends the message to
a thread-safe queue that the worker task reads.

Items are serialised by the engine (:func:`noisecorr.engine.serialize.dumps`, so an item
that cannot be pickled is named with its PE and destination); numpy buffers of 64 KiB or
more travel as ``uint8`` arrays beside the pickle stream, which Dask moves as separate
frames without copying them into a pickle.

Order: Dask may carry concurrent calls from one worker to another over different
connections, so they can arrive out of order. Every message from one engine worker to
another carries a sequence number and the inbox releases messages to the loop strictly in
that order (end-of-stream markers never overtake the data sent before them).

Post-mortem slot: the transport writes the PE instance and the items of the batch being
processed, and the index of the item, into a small memory-mapped file in the worker host's
temporary folder; when a worker process dies, the driver reads it (on the same host, or
through another worker of that host) to name the PE and the item, as the multiprocess
mapping does with shared memory.
"""

from __future__ import annotations

import mmap
import os
import pickle
import queue
import tempfile
import threading
import time
import traceback

import numpy as np

from noisecorr.engine import serialize
from noisecorr.engine.errors import EngineError, PEError, TransportError, short_repr
from noisecorr.engine.runtime import DEFAULT_BATCH, Transport, Worker, unpicklable_output_error


#: Bytes of the post-mortem slot: 8 bytes of item index, then the text.
SLOT_BYTES = 16384
#: Items of a batch recorded in the slot (larger batches record their first item).
RECORDED_ITEMS = 64
SEP = "\x1f"
#: Seconds a blocked worker waits on its inbox before checking for an abort.
POLL_SECONDS = 0.5

#: ``{(run, worker id): Inbox}`` of the inboxes hosted by this process (the task finds its own).
_INBOXES = {}
_INBOXES_LOCK = threading.Lock()


class Aborted(EngineError):
    """The driver stopped this worker (another worker failed or died)."""


def slot_path(run, worker_id):
    """The post-mortem slot file of engine worker ``worker_id`` on the host that runs it."""
    return os.path.join(tempfile.gettempdir(), f"{run}-{worker_id}.slot")


def read_slot(path, remove=True):
    """``(index, text)`` of a post-mortem slot file, or None when there is none."""
    try:
        with open(path, "rb") as f:
            raw = f.read(SLOT_BYTES)
    except FileNotFoundError:
        return None
    if remove:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    if len(raw) < 8:
        return None
    index = int(np.frombuffer(raw[:8], dtype=np.int64)[0])
    text = raw[8:].split(b"\0", 1)[0].decode("utf-8", "replace")
    return index, text


class Inbox:
    """The actor that receives the messages of one engine worker (see the module docstring).

    Messages are ``(kind, a, b)``: ``("batch", header, arrays)``, ``("ack", count, None)``;
    :meth:`put` releases them in sequence order per sender onto :attr:`queue`.
    """

    def __init__(self, run, worker_id):
        self.run = run
        self.worker_id = worker_id
        self.queue = queue.Queue()
        self.expected = {}
        self.held = {}
        self.latest = None  # the worker's last progress snapshot (pickled)
        with _INBOXES_LOCK:
            _INBOXES[(run, worker_id)] = self

    async def put(self, sender, seq, kind, a, b):
        expected = self.expected.get(sender, 0)
        if seq != expected:
            self.held[(sender, seq)] = (kind, sender, a, b)
            return None
        self.queue.put_nowait((kind, sender, a, b))
        expected += 1
        while (sender, expected) in self.held:
            self.queue.put_nowait(self.held.pop((sender, expected)))
            expected += 1
        self.expected[sender] = expected
        return None

    async def abort(self, reason):
        """Stop the worker task at its next look at the inbox."""
        self.queue.put_nowait(("abort", None, reason, None))

    async def progress(self):
        """The worker's last progress snapshot, pickled (or None)."""
        return self.latest



class DaskTransport(Transport):
    """Batches as sequenced actor calls between Dask workers (see the module docstring)."""

    remote = True

    def __init__(self, run, worker_id, peers, inbox, slot):
        super().__init__()
        self.run = run
        self.worker_id = worker_id
        self.peers = peers
        self.inbox = inbox
        self.limits = [DEFAULT_BATCH] * len(peers)
        self.seq = [0] * len(peers)
        self.in_flight = []
        self.where = f"dask worker {worker_id}"
        self.slot = slot
        # the index of the item being processed lives in the slot itself (read after a death)
        self.position = np.ndarray((1,), dtype=np.int64, buffer=slot, offset=0)

    # -- sending -----------------------------------------------------------------------
    def pack(self, obj):
        header, buffers = serialize.dumps(obj)
        return header, [np.frombuffer(raw, dtype=np.uint8) for raw in buffers]

    @staticmethod
    def unpack(header, arrays):
        return serialize.loads(header, [memoryview(a) for a in arrays] if arrays else ())

    def _post(self, worker, kind, a, b):
        seq = self.seq[worker]
        self.seq[worker] = seq + 1
        self.in_flight.append((worker, self.peers[worker].put(self.worker_id, seq, kind, a, b)))
        if len(self.in_flight) > 64:
            self.check_sends()

    def check_sends(self):
        """Forget completed calls; raise :class:`TransportError` if one failed."""
        keep = []
        for worker, fut in self.in_flight:
            if not fut.done():
                keep.append((worker, fut))
                continue
            try:
                fut.result()
            except Exception as exc:
                raise TransportError(f"cannot reach dask worker {worker}: {type(exc).__name__}: {exc}") from None
        self.in_flight = keep

    def send(self, worker, data, eos):
        header, arrays = self.pack_batch((data, eos), data, f"dask worker {worker}")
        self._post(worker, "batch", header, arrays)
        self.adapt_limit(worker, sum(len(items) for _, items in data), len(header) + sum(a.nbytes for a in arrays))

    def ack(self, worker, count):
        self._post(worker, "ack", count, None)

    # -- receiving ---------------------------------------------------------------------
    def _event(self, msg):
        kind, sender, a, b = msg
        if kind == "batch":
            data, eos = self.unpack(a, b)
            return ("batch", sender, data, eos)
        if kind == "ack":
            return ("ack", sender, a)
        if kind == "abort":
            raise Aborted(f"dask worker {self.worker_id} was stopped: {a}")
        raise EngineError(f"dask worker {self.worker_id}: unknown message {kind!r} from worker {sender}")

    def recv(self, block):
        self.check_sends()
        q = self.inbox.queue
        try:
            if block:
                while True:
                    try:
                        msg = q.get(timeout=POLL_SECONDS)
                        break
                    except queue.Empty:
                        self.check_sends()
            else:
                msg = q.get_nowait()
        except queue.Empty:
            return []
        events = [self._event(msg)]
        for _ in range(256):
            try:
                events.append(self._event(q.get_nowait()))
            except queue.Empty:
                break
        return events

    def wait_sends(self, timeout=60.0):
        """Wait until every call this worker made has been delivered (end of its loop)."""
        deadline = time.monotonic() + timeout
        for worker, fut in self.in_flight:
            try:
                fut.result(timeout=max(0.1, deadline - time.monotonic()))
            except Exception as exc:
                raise TransportError(f"cannot reach dask worker {worker}: {type(exc).__name__}: {exc}") from None
        self.in_flight = []

    # -- post-mortem slot --------------------------------------------------------------
    def note_item(self, runner, batch):
        shown = batch if len(batch) <= RECORDED_ITEMS else batch[:1]
        text = SEP.join([runner.name, str(runner.index), str(len(batch))] + [short_repr(x) for x in shown])
        raw = text.encode("utf-8", "replace")[: SLOT_BYTES - 9] + b"\0"
        self.slot[8:8 + len(raw)] = raw

    def note_idle(self):
        self.slot[8] = 0


def _open_slot(path):
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, SLOT_BYTES)
        return mmap.mmap(fd, SLOT_BYTES)
    finally:
        os.close(fd)


def worker_task(run, spec_bytes, plan, worker_id, peers, window, progress, provenance):
    """The long-running Dask task of engine worker ``worker_id``.

    Returns ``("done", header, arrays)`` (the worker's summary, packed), ``("error",
    pickled PEError)`` or ``("crash", traceback text)``.
    """
    from distributed import secede

    # Leave the worker's thread pool: a Dask worker may host several engine workers (more
    # engine workers than Dask threads), and each must run, or the run would deadlock.
    secede()
    with _INBOXES_LOCK:  # (the actor itself lives on in Dask until the driver releases it)
        inbox = _INBOXES.pop((run, worker_id), None)
    if inbox is None:
        return ("crash", f"dask worker {worker_id}: its inbox actor is not in this process (pid {os.getpid()})")
    path = slot_path(run, worker_id)
    slot = _open_slot(path)
    transport = DaskTransport(run, worker_id, peers, inbox, slot)
    try:
        spec = pickle.loads(spec_bytes)
        hook = None
        if progress:
            def hook(snapshot):
                inbox.latest = pickle.dumps(snapshot)
        worker = Worker(spec, plan, worker_id, transport, window=window, progress=hook, provenance=provenance)
        summary = worker.run()
        try:
            header, arrays = transport.pack(summary)
        except TransportError:
            err = unpicklable_output_error(summary, f"dask worker {worker_id}", "the driver")
            if err is None:
                raise
            raise err from None
        transport.wait_sends()
        return ("done", header, arrays)
    except PEError as err:
        return ("error", pickle.dumps(err))
    except Aborted as exc:
        return ("aborted", str(exc))
    except Exception:
        return ("crash", traceback.format_exc())
    finally:
        transport.slot = None
        transport.position = None
        try:
            slot.close()
        except BufferError:  # a view of it is still alive somewhere: the file goes anyway
            pass
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
