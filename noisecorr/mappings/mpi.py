"""The MPI mapping (mpi4py): PE instances spread over the ranks of an MPI job.

Launch
------
Every rank runs the same program and calls ``run(graph, mapping="mpi")`` with the same graph
and inputs; the world size is the number of workers (``processes``, when given, must equal
it). :func:`noisecorr.engine.plan.make_plan` places the instances deterministically, so the
ranks agree on the placement without talking (they only compare a digest of it). The
result is gathered to rank 0: ``run`` returns the :class:`~noisecorr.engine.result.RunResult`
on rank 0 and ``None`` on every other rank::

    mpiexec -n 4 python my_workflow.py             # my_workflow.py calls run(..., mapping="mpi")
    noisecorr enact my_workflow --mapping mpi -n 4 # re-launches itself under mpiexec -n 4

Importing this module does not initialise MPI; :func:`enact`, :func:`is_root` and
:func:`default_workers` do (mpi4py initialises MPI on its first import).

Protocol
--------
All traffic of a run goes through a duplicate of ``COMM_WORLD`` (``Dup``), so the user's own
MPI messages cannot match ours. Two tags:

``TAG_MSG``
    Framed messages: one byte of kind, the number of out-of-band buffers that follow and their
    sizes, then a payload. Kinds: ``BATCH`` (a pickled ``(data, eos)`` batch of the run loop),
    ``ACK`` (a count of batches received, for back-pressure), ``DONE`` (to rank 0: this rank's
    loop has finished; the payload is its summary), ``STOP`` (from rank 0: every rank is done),
    ``ERROR`` (a pickled exception, from a failing rank to every other rank) and ``PROGRESS``
    (to rank 0: a snapshot of this rank's counters, only when a progress callback is given).
``TAG_BUF``
    The out-of-band buffers of the preceding ``BATCH`` or ``DONE`` frame from the same sender:
    numpy arrays of 64 KiB or more (:func:`noisecorr.engine.serialize.dumps`) travel as raw
    memory, sent from the array's own memory (no pickling copy) and received with ``Recv`` into
    a preallocated ``bytearray`` that is then exposed read-only, so no PE can change memory
    another PE sees.

MPI keeps messages from one sender to one receiver on one tag and communicator in order, so
a batch's end-of-stream markers never overtake data sent before them, and a frame's buffers
are matched to it (the receiver takes them from the frame's sender right after the frame).

Every send is non-blocking and *synchronous* (``Issend``): the request completes only when
the receiver has matched the message. The sender keeps each request with the memory it sends
from until it completes, testing them on every poll. Synchronous mode is what makes the end
of a run exact (below): once a rank's requests are complete, nothing it sent is in flight.

Back-pressure and deadlock freedom
----------------------------------
The shared loop pauses a rank's sources while ``window`` of its batches are unacknowledged;
receivers acknowledge (``ACK``) after each pass. Nothing else ever waits on a send: sends are
non-blocking and every rank keeps receiving while it has anything to do, so ranks feeding
each other cannot deadlock. Waiting for messages polls with ``Improbe``; when nothing comes
a rank only yields the processor while its own sends are incomplete (MPI moves a large
message only while both ranks are inside MPI calls), and otherwise sleeps a little (growing
up to :data:`MAX_IDLE_SLEEP`) so that idle ranks leave the CPU to busy ones when ranks
outnumber cores. This is a poll interval, not a timeout: nothing ever ends because time
passed.

Termination
-----------
End of stream is the run loop's: markers counted per instance. When its loop returns a rank
sends ``DONE`` with its summary (outputs and counters) to rank 0 and keeps receiving (late
acknowledgements) until rank 0, having a ``DONE`` from every rank and itself finished, sends
``STOP``. Then each rank waits for its own sends to complete while still receiving, enters a
non-blocking barrier (``Ibarrier``) and keeps receiving until the barrier completes (the
"NBX" consensus): at that point every message of the run has been received. A last
``allgather`` tells every rank whether any rank failed (below); then the communicator is
freed and rank 0 merges the summaries with :func:`~noisecorr.engine.result.merge_summaries`.

Failure
-------
A PE exception on any rank (or any other exception in a rank's loop) is pickled and sent as
``ERROR`` to every other rank. A rank that receives it leaves its loop at once. Every rank then
drains as above (discarding what still arrives), the ranks exchange their errors in the
final ``allgather``, and *every* rank raises the same error: the :class:`PEError` of the
lowest failing rank, naming the PE, instance, item and carrying the remote traceback. The MPI world
stays usable: a program may catch the error and run again. If this shutdown itself fails,
the error is printed and the job is aborted with ``MPI_Abort``, so no rank hangs. A rank that
dies (a signal, the out-of-memory killer) is handled by the launcher, which ends the job; so
are interrupts (``KeyboardInterrupt`` propagates at once: mpiexec signals every rank). A PE
calling ``sys.exit`` counts as a failure, since the other ranks would wait for it forever.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import shutil
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

from noisecorr.engine import serialize
from noisecorr.engine.errors import EngineError, MappingError, PEError, TransportError
from noisecorr.engine.plan import make_plan
from noisecorr.engine.result import ProgressAggregator, merge_summaries
from noisecorr.engine.runtime import DEFAULT_BATCH, Transport, Worker, unpicklable_output_error

log = logging.getLogger("noisecorr.engine.mpi")

NAME = "mpi"
TAG_MSG = 0x4E43  # "NC"
TAG_BUF = 0x4E44
BATCH, ACK, DONE, STOP, ERROR, PROGRESS = 1, 2, 3, 4, 5, 6
_KIND_NAMES = {BATCH: "BATCH", ACK: "ACK", DONE: "DONE", STOP: "STOP", ERROR: "ERROR", PROGRESS: "PROGRESS"}
_FRAME = struct.Struct("<BI")
_COUNT = struct.Struct("<Q")

#: A batch aims at about this many bytes (the items per batch adapt to it).
#: Frames handled per ``recv`` call, so a flood of messages cannot starve the loop.
MAX_EVENTS = 256
#: Polls without a message before an idle rank starts sleeping, and the sleep bounds.
BUSY_POLLS = 64
MIN_IDLE_SLEEP = 20e-6
MAX_IDLE_SLEEP = 1e-3

#: Environment variables set by MPI launchers (MPICH/Hydra, Intel MPI, Open MPI, PMIx, srun).
LAUNCHER_VARIABLES = (
    "PMI_RANK",
    "PMI_SIZE",
    "PMI_FD",
    "PMIX_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "MPI_LOCALRANKID",
)
#: Set in the environment of a re-launched command so that it never re-launches again.
RELAUNCHED = "NOISECORR_MPI_RELAUNCHED"


# -- launching -----------------------------------------------------------------------------
def _mpi():
    """Import mpi4py's ``MPI`` (this initialises MPI) or fail naming the extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise MappingError(
            f"the mpi mapping needs mpi4py and an MPI library ({exc}); install them with: pip install 'noisecorr[mpi]'"
        ) from exc
    return MPI


def in_srun_step(environ=None) -> bool:
    """Whether this process is a task of a SLURM ``srun`` step (not the batch script itself)."""
    env = os.environ if environ is None else environ
    step = env.get("SLURM_STEP_ID", env.get("SLURM_STEPID"))
    if step is None:
        return False
    # The batch script and the extern step carry special ids (or names), not srun steps.
    return step.isdigit() and int(step) < 0xFFFFFFF0


def launched_by_mpi(environ=None) -> bool:
    """Whether this process was started by an MPI launcher (mpiexec, mpirun, srun).

    Looks only at the environment (PMI, PMIx, Open MPI and SLURM variables), so it answers
    without initialising MPI.
    """
    env = os.environ if environ is None else environ
    if any(name in env for name in LAUNCHER_VARIABLES):
        return True
    return in_srun_step(env) and int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1")) or 1) > 1


def inside_mpi() -> bool:
    """Whether this process runs as an MPI rank already (so it must not re-launch itself).

    True under an MPI launcher, in a SLURM ``srun`` step, or in a command that
    :func:`relaunch_if_needed` started. Looks only at the environment.
    """
    return launched_by_mpi() or in_srun_step() or bool(os.environ.get(RELAUNCHED))


def find_mpiexec():
    """The ``mpiexec`` next to the running Python (a virtual environment's own), else on PATH."""
    here = Path(sys.executable).parent  # not resolved: the venv's bin/, not the base Python's
    for name in ("mpiexec", "mpirun"):
        candidate = here / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("mpiexec") or shutil.which("mpirun")


def relaunch_if_needed(processes, argv=None):
    """Re-run this command under ``mpiexec -n processes`` unless MPI already started it.

    Returns the exit status of the re-launched command, or ``None`` when the caller should
    go on in this process: it was started by an MPI launcher (mpiexec, or a task of a SLURM
    ``srun`` step, where mpiexec must never be called), it is itself a re-launch, or no
    ``processes`` was asked for (a one-rank run).

    The command re-launched is ``sys.executable -m noisecorr ARGV`` with ``argv`` (default:
    this process's ``sys.argv[1:]``), with the ``mpiexec`` found by :func:`find_mpiexec`.
    """
    if processes is None or inside_mpi():
        return None
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise MappingError("mpiexec was not found next to Python nor on PATH; install the mpi extra: pip install 'noisecorr[mpi]'")
    args = list(sys.argv[1:] if argv is None else argv)
    command = [mpiexec, "-n", str(processes), sys.executable, "-m", "noisecorr", *args]
    log.info("re-launching under MPI: %s", " ".join(command))
    env = dict(os.environ, **{RELAUNCHED: "1"})
    return subprocess.call(command, env=env)


def world_size() -> int:
    """Number of ranks in ``COMM_WORLD`` (initialises MPI)."""
    return _mpi().COMM_WORLD.Get_size()


def is_root() -> bool:
    """Whether this process is rank 0 of ``COMM_WORLD`` (initialises MPI)."""
    return _mpi().COMM_WORLD.Get_rank() == 0


def default_workers(processes=None) -> int:
    """The number of workers of an MPI run: the world size (``processes`` must match it)."""
    size = world_size()
    _check_processes(processes, size)
    return size


def _check_processes(processes, size):
    if processes is not None and processes != size:
        raise MappingError(
            f"the mpi mapping runs one worker per MPI rank: processes={processes} was asked for but the "
            f"MPI world has {size} rank(s); launch with mpiexec -n {processes} or leave processes out"
        )


# -- the transport --------------------------------------------------------------------------
class PeerFailed(Exception):
    """Raised inside a rank's loop when another rank reports a failure (``ERROR``)."""

    def __init__(self, rank):
        super().__init__(f"MPI rank {rank} failed")
        self.rank = rank


class MPITransport(Transport):
    """Batches as framed messages on a private communicator; large arrays as raw buffers."""

    remote = True

    def __init__(self, comm, MPI, progress=None):
        super().__init__()
        self.progress = progress  # rank 0: a ProgressAggregator, or None
        self.comm = comm
        self.MPI = MPI
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.limits = [DEFAULT_BATCH] * self.size
        self.threshold = serialize.OUT_OF_BAND_BYTES
        self.requests = []  # outstanding Issend requests ...
        self.keep = []  # ... and the memory each sends from, kept alive until it completes
        self.status = MPI.Status()
        self.summaries = {}  # rank 0: summaries received with DONE
        self.stopped = False
        self.failed = False

    # -- sending -----------------------------------------------------------------------
    def _post(self, dest, kind, payload=b"", buffers=()):
        frame = _FRAME.pack(kind, len(buffers))
        if buffers:
            frame += struct.pack(f"<{len(buffers)}Q", *(b.nbytes for b in buffers))
        frame += payload
        issend, byte = self.comm.Issend, self.MPI.BYTE
        self.requests.append(issend([frame, byte], dest, TAG_MSG))
        self.keep.append(frame)
        for raw in buffers:
            self.requests.append(issend([raw, byte], dest, TAG_BUF))
            self.keep.append(raw)

    def test_sends(self):
        """Release the memory of sends that have completed; return whether all have."""
        if not self.requests:
            return True
        if self.MPI.Request.Testall(self.requests):
            self.requests.clear()
            self.keep.clear()
            return True
        done = self.MPI.Request.Testsome(self.requests)
        if done:
            finished = set(done)
            self.requests = [r for i, r in enumerate(self.requests) if i not in finished]
            self.keep = [k for i, k in enumerate(self.keep) if i not in finished]
        return False

    def pack(self, obj):
        return serialize.dumps(obj, self.threshold)

    def send(self, worker, data, eos):
        stream, buffers = self.pack_batch((data, eos), data, f"MPI rank {worker}")
        self._post(worker, BATCH, stream, buffers)
        self.adapt_limit(worker, sum(len(items) for _, items in data), len(stream) + sum(b.nbytes for b in buffers))

    def ack(self, worker, count):
        self._post(worker, ACK, _COUNT.pack(count))

    def send_done(self, summary):
        stream, buffers = self.pack(summary)
        self._post(0, DONE, stream, buffers)

    def send_progress(self, snapshot):
        self._post(0, PROGRESS, pickle.dumps(snapshot))

    def send_stop(self):
        for dest in range(1, self.size):
            self._post(dest, STOP)

    def send_error(self, payload):
        for dest in range(self.size):
            if dest != self.rank:
                self._post(dest, ERROR, payload)

    # -- receiving ---------------------------------------------------------------------
    def poll(self):
        """Receive one framed message if there is one: ``(kind, sender, payload, buffers)``."""
        msg = self.comm.Improbe(self.MPI.ANY_SOURCE, TAG_MSG, self.status)
        if msg is None:
            return None
        sender = self.status.Get_source()
        frame = bytearray(self.status.Get_count(self.MPI.BYTE))
        msg.Recv([frame, self.MPI.BYTE])
        kind, nbuf = _FRAME.unpack_from(frame)
        offset = _FRAME.size
        buffers = []
        if nbuf:
            sizes = struct.unpack_from(f"<{nbuf}Q", frame, offset)
            offset += 8 * nbuf
            for nbytes in sizes:
                raw = bytearray(nbytes)
                self.comm.Recv([raw, self.MPI.BYTE], sender, TAG_BUF)
                buffers.append(memoryview(raw).toreadonly())
        return kind, sender, memoryview(frame)[offset:], buffers

    def wait(self):
        """Block until a framed message arrives (polling, sleeping more the longer it is idle)."""
        polls = 0
        while True:
            got = self.poll()
            if got is not None:
                return got
            polls = self.idle(polls)

    def idle(self, polls):
        """Pause between polls that found nothing; ``polls`` counts them (returned + 1).

        While our own sends are incomplete we only yield the processor: MPI moves a large
        message only while both sides are inside MPI calls, so sleeping here would stall the
        receiver that is copying from us. Otherwise the pause grows from nothing to
        :data:`MAX_IDLE_SLEEP`, leaving the processor to busy ranks.
        """
        polls += 1
        if not self.test_sends():
            os.sched_yield()
        elif polls > BUSY_POLLS:
            doublings = min(16, (polls - BUSY_POLLS) // 16)
            time.sleep(min(MAX_IDLE_SLEEP, MIN_IDLE_SLEEP * (1 << doublings)))
        return polls

    def _event(self, got):
        """Turn a message into a run-loop event, or handle it here (``None``)."""
        kind, sender, payload, buffers = got
        if kind == BATCH:
            data, eos = serialize.loads(payload, buffers)
            return ("batch", sender, data, eos)
        if kind == ACK:
            return ("ack", sender, _COUNT.unpack_from(payload)[0])
        if kind == DONE:
            self.summaries[sender] = serialize.loads(payload, buffers)
            return None
        if kind == PROGRESS:
            if self.progress is not None:
                self.progress(pickle.loads(payload), worker=sender)
            return None
        if kind == ERROR:
            self.failed = True
            raise PeerFailed(sender)
        if kind == STOP:
            self.stopped = True
            return None
        raise EngineError(f"MPI rank {self.rank}: unknown message kind {kind} from rank {sender}")

    def recv(self, block):
        self.test_sends()
        events = []
        for _ in range(MAX_EVENTS):
            got = self.poll()
            if got is None:
                if events or not block:
                    break
                got = self.wait()
            event = self._event(got)
            if event is not None:
                events.append(event)
        return events


# -- one run ---------------------------------------------------------------------------------
def _digest(spec, plan):
    """A short digest of what every rank must agree on: PEs, edges, inputs and placement."""
    text = repr((
        [(p.name, p.cls, sorted(p.inputs.items()), tuple(p.outputs), p.numprocesses) for p in spec.pes],
        [(e.source, e.source_port, e.dest, e.dest_port, e.grouping) for e in spec.edges],
        sorted((k, v if isinstance(v, int) else len(v)) for k, v in spec.iterations.items()),
        sorted(plan.placement.items()),
    ))
    return hashlib.sha1(text.encode()).hexdigest()


def _as_error(exc, rank):
    """The exception to report for a failure on ``rank``, in a picklable form."""
    if isinstance(exc, PEError):
        return PEError(exc.pe, exc.instance, exc.item, exc.phase, exc.remote_traceback,
                       where=f"MPI rank {rank}", reason=exc.reason)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return EngineError(f"MPI rank {rank} failed outside any PE:\n{text}")


class _Run:
    """The life of one enactment on one rank: loop, report, stop, drain, result."""

    def __init__(self, comm, MPI, spec, plan, window, progress=None, provenance=None):
        self.comm = comm
        self.MPI = MPI
        self.spec = spec
        self.plan = plan
        self.window = window
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.provenance = provenance
        aggregator = ProgressAggregator(progress) if progress is not None and self.rank == 0 else None
        self.transport = MPITransport(comm, MPI, aggregator)
        # Each rank's loop reports its counters: rank 0 to the aggregator, the others to rank 0.
        self.progress_hook = None
        if progress is not None:
            self.progress_hook = aggregator if self.rank == 0 else self.transport.send_progress

    def execute(self, mapping_name, t0):
        transport = self.transport
        local_error = None
        failed = False
        try:
            extra = {}
            if self.progress_hook is not None:
                extra["progress"] = self.progress_hook
            if self.provenance is not None:
                extra["provenance"] = self.provenance
            worker = Worker(self.spec, self.plan, self.rank, transport, window=self.window, **extra)
            summary = worker.run()
            if self.rank == 0:
                transport.summaries[0] = summary
                self._collect_done()
                transport.send_stop()
            else:
                self._send_done(summary)
                while not transport.stopped:
                    self._after_loop(transport.wait())
        except PeerFailed:
            failed = True
        except (Exception, SystemExit) as exc:  # a PE error, or anything else that broke this rank's loop
            failed = True
            local_error = _as_error(exc, self.rank)
            log.debug("MPI rank %d failed: %s", self.rank, local_error)
            transport.send_error(_pickle_error(local_error))
        try:
            unexpected = self._drain(failed)
            if unexpected and local_error is None:
                local_error = EngineError(f"MPI rank {self.rank}: unexpected messages after the run ended: {unexpected}")
            # Every rank takes part, failed or not, so that a rank failing late (after its DONE)
            # cannot leave the others in a different collective.
            errors = self.comm.allgather(None if local_error is None else _pickle_error(local_error))
        except Exception:
            _abort(self.MPI, self.rank, local_error)
            raise  # pragma: no cover - Abort does not return
        if any(e is not None for e in errors) or failed:
            raise _first_error(errors)
        if self.rank != 0:
            return None
        summaries = [transport.summaries[r] for r in range(self.size)]
        return merge_summaries(self.spec, self.plan, summaries, mapping_name, time.perf_counter() - t0)

    def _send_done(self, summary):
        try:
            self.transport.send_done(summary)
        except TransportError:
            err = unpicklable_output_error(summary, f"MPI rank {self.rank}", "rank 0")
            if err is None:
                raise
            raise err from None

    def _collect_done(self):
        """Rank 0, its own loop finished: wait for ``DONE`` from every other rank."""
        transport = self.transport
        while len(transport.summaries) < self.size:
            self._after_loop(transport.wait())

    def _after_loop(self, got):
        """A message that arrives after this rank's loop has returned."""
        kind = got[0]
        if kind == ACK:  # late acknowledgements: nothing to pause any more
            return
        if kind in (DONE, STOP, ERROR, PROGRESS):
            self.transport._event(got)
            return
        raise EngineError(f"MPI rank {self.rank}: {_KIND_NAMES.get(kind, kind)} from rank {got[1]} after its loop ended")

    def _drain(self, failed):
        """Complete our sends and receive everything still addressed to us (NBX consensus).

        Returns the kinds of messages that should not have arrived (only after success).
        """
        transport = self.transport
        unexpected = []

        def receive_all():
            while (got := transport.poll()) is not None:
                # Late ERRORs are not unexpected: their senders report them in the allgather.
                if got[0] not in (ACK, ERROR) and not failed:
                    unexpected.append(f"{_KIND_NAMES.get(got[0], got[0])} from rank {got[1]}")

        polls = 0
        while not transport.test_sends():
            receive_all()
            polls = transport.idle(polls)
        barrier = self.comm.Ibarrier()
        while not barrier.Test():
            receive_all()
            polls = transport.idle(polls)
        return unexpected




def _pickle_error(err):
    try:
        return pickle.dumps(err)
    except Exception:  # an exception with unpicklable state: keep its text
        return pickle.dumps(EngineError(str(err)))


def _first_error(errors):
    """The error every rank raises: the PE error of the lowest failing rank, else the first."""
    found = [pickle.loads(payload) for payload in errors if payload is not None]
    for err in found:
        if isinstance(err, PEError):
            return err
    if found:
        return found[0]
    return EngineError("an MPI rank reported a failure but no rank had one to report")


def _abort(MPI, rank, error):
    """Last resort when the shutdown after a failure fails itself: print and end the job."""
    text = traceback.format_exc()
    if error is not None:
        print(f"noisecorr: MPI rank {rank}: {error}", file=sys.stderr, flush=True)
    print(f"noisecorr: MPI rank {rank}: cannot shut the run down cleanly, aborting the MPI job:\n{text}",
          file=sys.stderr, flush=True)
    MPI.COMM_WORLD.Abort(1)


def enact(spec, processes=None, mapping_name=NAME, window=16, progress=None, provenance=None, **options):
    """Run ``spec`` on the ranks of ``COMM_WORLD``; every rank must call it (collective).

    Parameters
    ----------
    spec : GraphSpec
        The same graph and inputs on every rank.
    processes : int, optional
        Must equal the world size when given.
    window : int
        Unacknowledged batches per rank above which its sources pause (back-pressure).
    progress : callable, optional
        Called on rank 0 only, about twice a second, with ``{pe: {"in": n, "out": n}}``
        summed over every rank (the other ranks send their counters to rank 0).
    provenance : noisecorr.provenance.Session, optional
        Record lineage; the loop of every rank records its own PE instances.

    Returns
    -------
    RunResult or None
        The result on rank 0, ``None`` on every other rank.

    Raises
    ------
    MappingError
        ``processes`` differs from the world size, or the ranks were given different graphs.
    PEError
        On every rank, when a PE failed on any rank.
    """
    if options:
        raise TypeError(f"unknown option(s) for the mpi mapping: {sorted(options)}")
    MPI = _mpi()
    world = MPI.COMM_WORLD
    _check_processes(processes, world.Get_size())
    plan = make_plan(spec, world.Get_size())
    t0 = time.perf_counter()
    comm = world.Dup()
    try:
        digests = comm.allgather(_digest(spec, plan))
        if len(set(digests)) > 1:
            differ = [r for r, d in enumerate(digests) if d != digests[0]]
            raise MappingError(f"the MPI ranks were given different graphs, inputs or placements (ranks {differ} differ from rank 0)")
        return _Run(comm, MPI, spec, plan, window, progress, provenance).execute(mapping_name, t0)
    finally:
        comm.Free()
