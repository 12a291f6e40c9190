"""The Dask mapping: PE instances spread over the workers of a ``dask.distributed`` cluster.

Usage::

    run(graph, mapping="dask", processes=4)                          # a LocalCluster of 4 processes
    run(graph, mapping="dask", scheduler="tcp://host:8786")          # an existing cluster
    noisecorr run --mapping dask -n 4 [--scheduler tcp://host:8786]

Without a scheduler address, a :class:`distributed.LocalCluster` of ``processes`` worker
processes (default: the number of CPUs; one thread each, TCP on 127.0.0.1) is started for
the run and closed after it; its dashboard address is logged. With an address, the run uses
that cluster's workers (``processes`` defaults to their number) and leaves the cluster
running.

Design: the mapping is a transport over the shared run loop, like the multiprocess and MPI
mappings. The plan places PE instances on ``processes`` engine workers; engine worker ``w``
runs on Dask worker ``w mod M`` (the cluster's ``M`` workers sorted by address) as one
long-running task (:func:`noisecorr.mappings.dask.transport.worker_task`) beside an inbox
actor; batches go worker to worker as actor calls (see
:mod:`noisecorr.mappings.dask.transport`). Groupings, lifecycle, end of stream and
back-pressure are the run loop's own, so they are the same as in every other mapping.

The driver (this process, a Dask client) waits for the tasks, polls the workers' progress
snapshots through their actors, and watches the scheduler's worker list: a Dask worker that
disappears (killed, out of memory, lost) ends the run with a :class:`PEError` naming the PE
instance and the item it was processing, read from the worker's post-mortem slot. A PE
error in any worker stops the others and is raised with the remote traceback.

The engine itself never imports Dask; this package needs ``pip install 'noisecorr[dask]'``.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import socket
import time

import cloudpickle

from noisecorr.engine.errors import EngineError, MappingError, PEError
from noisecorr.engine.plan import make_plan
from noisecorr.engine.result import ProgressAggregator, merge_summaries

log = logging.getLogger("noisecorr.engine.dask")

NAME = "dask"
#: Seconds between looks at the scheduler's worker list and the workers' progress.
WATCH_SECONDS = 0.5
#: Seconds to wait for the scheduler to notice a dead worker after a peer could not reach it.
DEATH_GRACE_SECONDS = 10.0
_runs = itertools.count()

#: Dask settings of the worker processes of a local cluster. Dask's nanny sets
#: ``MALLOC_TRIM_THRESHOLD_`` in its workers' environment, which turns off glibc's dynamic
#: mmap threshold: every array above 128 kB is then a fresh ``mmap`` whose pages fault in
#: one by one (the workflow makes many 1-40 MB arrays); the run loop returns freed memory
#: itself (``malloc_trim``, see :mod:`noisecorr.engine.runtime`). The statistical profiler
#: samples every thread's stack 100 times a second, under the GIL. BLAS and OpenMP stay at
#: one thread, as Dask sets them (the tiles run one BLAS thread per worker).
WORKER_SETTINGS = {
    "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1},
    "distributed.worker.profile.enabled": False,
}

#: Dask's memory management of the local cluster's workers when ``memory_limit`` is the run's
#: per-worker budget. A worker task's arrays are not Dask-managed data, so there is nothing
#: to spill and a paused worker would only stall the actor calls; the nanny kills a worker
#: only above its whole budget (the planner's predicted peak stays within it), and the run
#: then reports the PE and the item, as for any killed worker.
MEMORY_SETTINGS = {
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
    "distributed.worker.memory.terminate": 1.0,
}


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise MappingError(f"the dask mapping needs dask.distributed ({exc}); "
                           "install it with: pip install 'noisecorr[dask]'") from exc
    return distributed


def local_cluster(processes, memory_limit="auto", dashboard=True):
    """Start a :class:`distributed.LocalCluster` of ``processes`` one-thread worker processes.

    Workers talk TCP on 127.0.0.1. The scheduler's HTTP server takes a free port; it serves
    the dashboard when bokeh is installed (its address is logged when ``dashboard``).
    ``memory_limit`` is Dask's per worker: bytes or a size (``"2GB"``), as the workflow
    passes its memory budget divided over the workers (with :data:`MEMORY_SETTINGS`), or
    ``"auto"`` (the machine's memory divided over the workers, Dask's own thresholds). The
    limit the workers report is logged.
    """
    import importlib.util

    distributed = _distributed()
    # the scheduler's HTTP server (health, metrics, and the dashboard when bokeh is there)
    # always takes a free port: a fixed one (8787) collides with other clusters
    import dask

    settings = dict(WORKER_SETTINGS)
    if memory_limit not in (None, "auto"):
        settings.update(MEMORY_SETTINGS)
    with dask.config.set(settings):
        cluster = distributed.LocalCluster(
            n_workers=processes, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tcp://",
            dashboard_address=":0", memory_limit=memory_limit, silence_logs=logging.ERROR,
        )
    from dask.utils import format_bytes

    limits = sorted({w.get("memory_limit") or 0 for w in cluster.scheduler_info["workers"].values()})
    limit = "no memory limit" if limits == [0] else "memory limit " + "/".join(format_bytes(x) for x in limits)
    if dashboard and importlib.util.find_spec("bokeh") is not None:
        log.info("dask: started a local cluster of %d worker process(es) (%s per worker), scheduler %s, "
                 "dashboard %s", processes, limit, cluster.scheduler_address, cluster.dashboard_link)
    else:
        log.info("dask: started a local cluster of %d worker process(es) (%s per worker), scheduler %s "
                 "(no dashboard: install bokeh for one)", processes, limit, cluster.scheduler_address)
    return cluster


def cluster_workers(scheduler) -> int:
    """The number of workers of the cluster at ``scheduler`` (the default ``processes``)."""
    distributed = _distributed()
    with distributed.Client(scheduler, timeout=30) as client:
        return len(client.scheduler_info(n_workers=-1)["workers"])


def default_workers(processes=None):
    """Engine workers of a run without a scheduler address: ``processes`` or the CPU count."""
    return processes or os.cpu_count() or 1


def enact(spec, processes=None, mapping_name=NAME, scheduler=None, window=16, progress=None, provenance=None,
          memory_limit="auto", timeout=30, **options):
    """Run ``spec`` on a Dask cluster and return a :class:`~noisecorr.engine.result.RunResult`.

    Parameters
    ----------
    processes : int, optional
        Engine workers (long-running Dask tasks). Default: the number of CPUs for a local
        cluster, the number of Dask workers for ``scheduler``.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). Default: Dask's
        ``scheduler-address`` setting (environment ``DASK_SCHEDULER_ADDRESS``); without
        either, a local cluster is started and closed by the run.
    window : int
        Unacknowledged batches per worker above which its sources pause (back-pressure).
    progress : callable, optional
        Called in this process about twice a second with ``{pe: {"in": n, "out": n}}``.
    provenance : noisecorr.provenance.Session, optional
        Record lineage; each worker records its own PE instances.
    memory_limit : str or int
        Per worker memory limit of a local cluster (Dask's ``memory_limit``; the workflow
        passes its memory budget divided over the workers). Ignored with ``scheduler``.
    timeout : float
        Seconds to wait for the scheduler to answer (``OSError`` after that).
    """
    if options:
        raise TypeError(f"unknown option(s) for the dask mapping: {sorted(options)}")
    distributed = _distributed()
    t0 = time.perf_counter()
    cluster = None
    if scheduler is None:  # Dask's own setting (DASK_SCHEDULER_ADDRESS), as Client() reads it
        import dask

        scheduler = dask.config.get("scheduler-address", None)
    if scheduler is None:
        cluster = local_cluster(default_workers(processes), memory_limit=memory_limit)
        scheduler = cluster.scheduler_address
    try:
        with distributed.Client(scheduler, timeout=timeout) as client:
            summaries, plan = _Run(client, spec, processes, window, progress, provenance, local=cluster is not None).execute()
    finally:
        if cluster is not None:
            cluster.close()
    return merge_summaries(spec, plan, summaries, mapping_name, time.perf_counter() - t0)


class _Run:
    """One enactment seen from the driver: place, start, watch, collect, stop."""

    def __init__(self, client, spec, processes, window, progress, provenance, local):
        self.client = client
        self.spec = spec
        self.window = window
        self.progress = ProgressAggregator(progress) if progress is not None else None
        self.provenance = provenance
        self.local = local
        workers = client.scheduler_info(n_workers=-1)["workers"]
        if not workers:
            raise MappingError(f"the dask cluster at {client.scheduler.address} has no workers")
        self.addresses = sorted(workers)
        self.hosts = {a: workers[a].get("host") for a in self.addresses}
        n = processes or len(self.addresses)
        self.plan = make_plan(spec, n)
        self.run = f"noisecorr-{socket.gethostname()}-{os.getpid()}-{next(_runs)}"
        self.gone = set()  # engine workers whose Dask worker died
        self.on = {w: self.addresses[w % len(self.addresses)] for w in range(n) if self.plan.hosted_by(w)}

    def execute(self):
        from .transport import Inbox, worker_task

        client = self.client
        ids = sorted(self.on)
        n = self.plan.workers
        actor_futures = {w: client.submit(Inbox, self.run, w, actor=True, workers=[self.on[w]],
                                          allow_other_workers=False, key=f"{self.run}-inbox-{w}") for w in ids}
        self.inboxes = {}
        tasks = {}
        try:
            for w in ids:
                self.inboxes[w] = actor_futures[w].result()
            peers = [self.inboxes.get(w) for w in range(n)]
            spec_bytes = cloudpickle.dumps(self.spec)
            for w in ids:
                tasks[w] = client.submit(worker_task, self.run, spec_bytes, self.plan, w, peers, self.window,
                                         self.progress is not None, self.provenance, workers=[self.on[w]],
                                         allow_other_workers=False, pure=False, key=f"{self.run}-worker-{w}")
            summaries = self._watch(tasks)
            return summaries, self.plan
        except BaseException:
            self._stop(tasks, "the run failed")
            raise
        finally:
            client.cancel(list(tasks.values()) + list(actor_futures.values()), force=True)

    def _watch(self, tasks):
        distributed = _distributed()
        pending = dict(tasks)
        summaries = []
        next_watch = 0.0
        while pending:
            try:
                done, _ = distributed.wait(list(pending.values()), timeout=WATCH_SECONDS / 5,
                                           return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing finished yet (distributed raises instead of returning)
                done = ()
            for w in [w for w, f in pending.items() if f in done]:
                fut = pending.pop(w)
                if fut.status != "finished":
                    raise self._death_or(EngineError(f"dask worker {w} failed outside any PE: {fut.exception()!r}"))
                outcome = fut.result()
                kind = outcome[0]
                if kind == "done":
                    from .transport import DaskTransport

                    summaries.append(DaskTransport.unpack(outcome[1], outcome[2]))
                elif kind == "error":
                    raise pickle.loads(outcome[1])
                elif kind == "aborted":
                    raise EngineError(f"dask worker {w}: {outcome[1]}")
                else:
                    raise self._death_or(EngineError(f"dask worker {w} failed outside any PE:\n{outcome[1]}"))
            now = time.monotonic()
            if pending and now >= next_watch:
                next_watch = now + WATCH_SECONDS
                dead = self._dead()
                if dead:
                    raise self._death_error(dead)
                self._poll_progress(pending)
        self._poll_progress(tasks)
        return summaries

    def _dead(self):
        """Engine workers whose Dask worker left the cluster."""
        alive = set(self.client.scheduler_info(n_workers=-1)["workers"])
        return [w for w, a in sorted(self.on.items()) if a not in alive]

    def _death_or(self, err):
        """A dead worker explains a peer's transport failure: report the death instead."""
        deadline = time.monotonic() + DEATH_GRACE_SECONDS
        while True:
            dead = self._dead()
            if dead:
                return self._death_error(dead)
            if "cannot reach dask worker" not in str(err) or time.monotonic() > deadline:
                return err
            time.sleep(0.2)

    def _death_error(self, dead):
        """The error for engine workers ``dead`` (their Dask worker process is gone).

        Several engine workers may share the dead process: the one that was processing an
        item (its post-mortem slot says which) is named, else the first with its PEs.
        """
        from .transport import SEP, slot_path

        self.gone.update(dead)
        address = self.on[dead[0]]
        reason = (f"dask worker process {address} left the cluster: it was killed "
                  "(by a signal or the out-of-memory killer), crashed or lost its connection")
        for w in dead:
            slot = self._read_slot(slot_path(self.run, w), self.on[w])
            if slot is not None and slot[1]:
                at, text = slot
                pe, index, size, *shown = text.split(SEP)
                item = shown[at] if 0 <= at < len(shown) else f"number {at} of a batch of {size} starting with {shown[0]}"
                return PEError(pe, int(index), item, "worker", "", where=f"dask worker {w}", reason=reason)
        hosted = ", ".join(f"{pe}[{i}]" for w in dead for pe, i in self.plan.hosted_by(w))
        return PEError(hosted, None, None, "worker", "", where=f"dask worker {dead[0]}", reason=reason)

    def _read_slot(self, path, address):
        from .transport import read_slot

        if self.local or os.path.exists(path):
            return read_slot(path)
        host = self.hosts.get(address)
        alive = self.client.scheduler_info(n_workers=-1)["workers"]
        same_host = [a for a, info in alive.items() if info.get("host") == host]
        if not same_host:
            return None
        try:
            return self.client.run(read_slot, path, workers=same_host[:1])[same_host[0]]
        except Exception as exc:  # the post-mortem is a courtesy: the death is reported anyway
            log.warning("dask: cannot read the post-mortem slot of %s on %s: %s", address, host, exc)
            return None

    def _poll_progress(self, workers):
        if self.progress is None:
            return
        calls = {w: self.inboxes[w].progress() for w in workers}
        for w, call in calls.items():
            try:
                raw = call.result(timeout=10)
            except Exception as exc:
                log.debug("dask: no progress from worker %d: %s", w, exc)
                continue
            if raw is not None:
                self.progress(pickle.loads(raw), worker=w)

    def _stop(self, tasks, reason):
        """Ask every still running worker task to stop (a remote cluster keeps running)."""
        calls = []
        for w, fut in tasks.items():
            if fut.status == "pending" and w in self.inboxes and w not in self.gone:
                try:
                    calls.append(self.inboxes[w].abort(reason))
                except Exception as exc:
                    log.debug("dask: cannot stop worker %d: %s", w, exc)
        for call in calls:
            try:
                call.result(timeout=5)
            except Exception as exc:
                log.debug("dask: a stop request failed: %s", exc)
