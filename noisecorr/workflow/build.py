"""Build the ambient-noise workflow graph from a configuration.

The graph (each PE thin over :mod:`noisecorr.signal`)::

    Fetch -> Preprocess -> Orient -> Normalise -> Spectra -> Whiten -> TiledCorrelation -> WriteResults
      |          |           |                                  |
   rejected   rejected    rejected                            stats    (collected in the result)

``Orient`` (:class:`pes.preprocess.OrientPE`) gathers the channels of each sensor and chunk
(grouped by sensor, so they meet in one process), rotates 1/2/Z to E/N/Z from the StationXML
azimuth and dip, and bundles the channels ``joint_normalisation`` normalises together.

``TiledCorrelation`` (``TileRoute -> TileCorrelate -> TileStack``, see :mod:`pes.tiles`) is the
block-tiled stage (see :func:`tiled_path`); RTZ components and runs that record provenance use
``CrossCorrelate -> Stack`` instead (so does ``tiled: false``). Fetch and Preprocess also write
each channel-chunk they leave out to ``absent``, connected to the tiled stage's ``absent``
input: that chunk's tiles are computed (and its spectra freed) once the other stations arrived.

Library users build it, swap or insert their own PEs, and enact it with any mapping::

    import time
    from noisecorr.workflow import load_config, build_workflow
    from noisecorr.workflow.runner import finish
    from noisecorr.engine import run

    wf = build_workflow(load_config(overrides={"out": "my_run"}))
    t0 = time.perf_counter()
    result = run(wf.graph, inputs=wf.inputs, mapping="multiprocess", processes=4)
    finish(wf, result, time.perf_counter() - t0)  # record-section plot and summary.json
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from noisecorr.engine import WorkflowGraph
from noisecorr.results.layout import RESULTS_FILE  # the name stays importable from here
from noisecorr.signal.preprocess import fetch_pad

from .config import ConfigError, WorkflowConfig, keep_chunks_error
from .sources import Sources, resolve

log = logging.getLogger(__name__)

#: Least seconds of data fetched either side of each chunk so that filters settle outside it;
#: longer where the preprocessing taper needs it (low freqmin: see ``fetch_pad``).
FETCH_PAD = 100.0


@dataclass
class Workflow:
    """A built workflow: the graph, its inputs and what is needed to finish the run."""

    config: WorkflowConfig
    sources: Sources
    graph: WorkflowGraph
    inputs: dict
    results_path: Path
    completed: set = field(default_factory=set)
    pes: dict = field(default_factory=dict)
    #: The memory budget and the tile plan chosen within it (summary.json ``memory``).
    memory: dict = field(default_factory=dict)
    #: The disk the results will take and the free space found (:func:`disk_plan`).
    disk: dict = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        n = len(self.sources.stations)
        return n * (n - 1) // 2 * len(self.config.processing.components)


def completed_pairs(path: Path) -> set:
    """``{(source, receiver, component)}`` already complete in ``path`` (and its part files)."""
    import h5py

    from noisecorr.results.writer import list_parts, read_index

    done = set()
    for p in ([path] if path.exists() else []) + list_parts(path):
        with h5py.File(p, "r") as f:
            for src, rcv, comp, ok in read_index(f):
                (done.add if ok else done.discard)((src, rcv, comp))
    return done


def tiled_path(config: WorkflowConfig) -> bool:
    """The block-tiled stage serves ENZ component pairs: BLAS-3 cross-spectra summed over
    windows for linear stacks (the fast path for many stations), per-window tile
    correlations stacked by ``Stack`` for phase-weighted/robust stacks and sub-stacks. RTZ
    rotation keeps the per-pair path (``CrossCorrelate -> Stack``), and so do runs that
    record provenance: their lineage is per pair (a stack derives from its own pair's
    correlations), while the tiled stage moves whole tiles as one item."""
    from noisecorr.signal.components import ENZ_PAIRS

    p = config.processing
    return config.tiled and not config.provenance and all(c in ENZ_PAIRS for c in p.components)


def tile_plan(config: WorkflowConfig, sources: Sources, stations, n_chunks, budget=None):
    """Block size and tile owners for ``stations`` (``NET.STA.LOC`` keys) within ``budget``
    (bytes, all workers; default :func:`memory_budget`); fails before running."""
    span = min(config.chunk_length, float(sources.end - sources.start))
    budget = memory_budget(config)[0] if budget is None else budget
    return plan_for(config, len(stations), span, n_chunks, _workers(config), budget)


def plan_for(config: WorkflowConfig, n_stations: int, span: float, n_chunks: int, workers: int, budget):
    """The tile plan of a run of ``n_stations`` over chunks of ``span`` seconds: the one memory
    model of a run (:func:`noisecorr.tiles.plan.plan_tiles`), used by the run itself and by
    ``noisecorr slurm`` for the job's ``--mem``. ``budget``: bytes or a size, all workers
    together; ``None``: no limit (the plan the run prefers).

    Raises
    ------
    ConfigError
        Nothing fits in ``budget`` (the message says what the smallest plan needs).
    """
    from noisecorr.tiles import plan_tiles
    from noisecorr.tiles.kernel import carried_band
    from noisecorr.tiles.plan import PROCESS_OVERHEAD

    p = config.processing
    n_windows = max(1, int((span - p.cc_len) // p.step) + 1)
    band = carried_band(p, p.nfft)
    try:
        return plan_tiles(n_stations, n_windows, band.stop - band.start, p.nfft, 2 * p.maxlag_samples + 1,
                          budget, workers=workers,
                          n_factors=2 if p.cc_method == "deconv" else 1, n_chunks=n_chunks,
                          overhead=PROCESS_OVERHEAD)
    except MemoryError as exc:
        raise ConfigError(f"memory: {exc}") from None


def memory_budget(config: WorkflowConfig):
    """``(bytes, where from)``: the run's memory budget, all workers together.

    ``config.memory`` when set; else :func:`noisecorr.slurm.allocation.default_memory_budget`:
    inside a SLURM job 80 % of the smallest of the job's cgroup limit and its allocation
    (``SLURM_MEM_PER_NODE``/``SLURM_MEM_PER_CPU``), shared by the ranks of a node; outside a
    job 40 % of the physical memory (or 80 % of a smaller cgroup limit).
    """
    if config.memory:
        from noisecorr.tiles.plan import parse_memory

        return parse_memory(config.memory), "memory (configuration, NOISECORR_MEMORY or --memory)"
    b = default_memory_budget(_workers(config), mpi=config.mapping == "mpi")
    return b.total_bytes, b.describe()


def default_memory_budget(workers: int = 1, mpi: bool = False):
    """The :class:`~noisecorr.slurm.allocation.MemoryBudget` of a run that configures no
    ``memory`` (see :mod:`noisecorr.slurm.allocation`)."""
    from noisecorr.slurm.allocation import default_memory_budget as budget

    return budget(workers, mpi=mpi)


def memory_record(plan, budget: int, source: str) -> dict:
    """What summary.json says about memory: the budget, where it came from, the plan chosen."""
    return {"budget_bytes": int(budget), "budget_source": source, "workers": plan.workers,
            "per_worker_budget_bytes": int(budget) // plan.workers, "peak_bytes_per_worker": plan.peak_bytes,
            "block_size": plan.block_size, "panel_size": plan.panel_size, "store": plan.store}


def _workers(config):
    """Worker processes (or MPI ranks) the mapping will run: 1 for sequential."""
    if config.mapping in ("sequential", "simple"):
        return 1
    return config.processes or _default_workers(config)


def _default_workers(config):
    import os

    if config.mapping == "mpi":
        from noisecorr.mappings import load

        return load("mpi").default_workers(None)
    return os.cpu_count() or 1


def build_workflow(config: WorkflowConfig, sources: Sources | None = None) -> Workflow:
    """Resolve the data and build the graph for ``config`` (nothing runs yet)."""
    from pes import CrossCorrelatePE, FetchPE, NormalisePE, PreprocessPE, SpectraPE, StackPE, WhitenPE
    from pes.fetch import chunk_requests
    from pes.preprocess import OrientPE, sensor_of
    from pes.correlate import station_key
    from pes.tiles import TiledCorrelation
    from pes.write import WriteResultsPE

    sources = sources or resolve(config)
    p = config.chunk_params(sources.start)  # keep: chunks: one sub-stack per chunk
    out = Path(config.out)
    results_path = out / RESULTS_FILE
    done = completed_pairs(results_path) if config.resume else set()
    if done:
        log.info("resuming: %d pair components already complete in %s", len(done), results_path)
    components = p.components
    codes = sorted(sources.stations)
    todo_stations = {c for i, a in enumerate(codes) for b in codes[i + 1:] for comp in components
                     if (a, b, comp) not in done for c in (a, b)}
    seed_ids = [s for s in sources.seed_ids if sources.station_of(s) in todo_stations]
    requests = chunk_requests(seed_ids, sources.start, sources.end, config.chunk_length)
    coordinates = {c: (s["latitude"], s["longitude"]) for c, s in sources.stations.items()}

    fetch = FetchPE(sources.client, pad=max(FETCH_PAD, fetch_pad(p)), name="Fetch")
    pre = PreprocessPE(p, inventory=sources.inventory, name="Preprocess")
    orient = OrientPE(p, channels=seed_ids, name="Orient")
    norm, spec, white = NormalisePE(p, name="Normalise"), SpectraPE(p, name="Spectra"), WhitenPE(p, name="Whiten")
    write = WriteResultsPE(
        results_path, config.results_params(sources.start),
        sources.stations, sources.start, sources.end, compression=config.compression, skip=done,
        name="WriteResults", series_maxlag=config.series_maxlag,
    )
    n_chunks = max(1, len({r["starttime"] for r in requests}))
    chunk_starts = sorted({float(t.timestamp) for t in _chunk_grid(sources.start, sources.end, config.chunk_length)})
    selection = None
    if config.keep == "chunks":
        from noisecorr.results.series import ChunkSelection

        try:
            selection = ChunkSelection.from_config(config.keep_chunks, run_maxlag=p.maxlag)
        except ValueError as exc:
            raise keep_chunks_error(exc) from None
    disk = disk_plan(config, sources, len(chunk_starts), selection, out)
    if selection is not None:
        _check_chunk_state(config, disk, p)
    station_keys = sorted({station_key(s) for s in seed_ids})
    tiled = tiled_path(config) and len(station_keys) >= 2
    memory = {}
    if tiled:
        from noisecorr.tiles.plan import format_bytes

        budget, source = memory_budget(config)
        plan = tile_plan(config, sources, station_keys, n_chunks, budget=budget)
        memory = memory_record(plan, budget, source)
        log.info("memory budget %s (%s): tiles of %d stations, panel %d, factors in %s, predicted peak %s per "
                 "worker (%d worker(s))", format_bytes(budget), source, plan.block_size, plan.panel_size,
                 plan.store, format_bytes(plan.peak_bytes), plan.workers)
        channels = {}
        for s in seed_ids:  # a station is waited for only on the channels it has
            c = s[-1].upper()  # (1/2 horizontals reach the tiles rotated to E/N)
            channels.setdefault(station_key(s), set()).update(c if c in "ENZ" else "EN")
        correlate = [TiledCorrelation(p, station_keys, plan, n_chunks=n_chunks,
                                      span_starts=chunk_starts if selection is not None else None,
                                      selection=selection,
                                      blas_threads=None if config.mapping in ("sequential", "simple") else 1,
                                      coordinates=coordinates, scratch=config.scratch,
                                      channels=channels, name="TiledCorrelation")]
    else:
        correlate = [CrossCorrelatePE(p, coordinates=coordinates, n_channels=len(seed_ids), name="CrossCorrelate"),
                     StackPE(p, name="Stack", span_starts=chunk_starts if selection is not None else None,
                             selection=selection)]
    # The per-station chain (Fetch .. Whiten, and the tile router) runs as one instance per
    # worker with "local" streams, so a station's data stays in one process from waveforms
    # to spectra; only in-band spectral factors cross to the tile correlators.
    workers = _workers(config)
    per_station = [fetch, pre, orient, norm, spec, white]
    if tiled:
        per_station.append(correlate[0].inputmappings["input"][0])
    for pe in per_station:
        pe.numprocesses = workers
    # Stacks are written where they are made: one writer per worker, each with its own part
    # files, merged once at the end (no stack crosses processes; writing runs in parallel).
    write.parallel, write.numprocesses = True, workers
    if tiled and n_chunks == 1:  # each tile arrives once: stack it where it was made
        for pe in correlate[0].pes:
            if pe.name in ("TileStackPE", "StackPE"):
                pe.numprocesses = workers
                pe.inputconnections["input"]["grouping"] = "local"
    local_into = {pre, norm, spec, white, write} | ({correlate[0]} if tiled else set())
    if len({sensor_of(s) for s in seed_ids}) == len(seed_ids):
        local_into.add(orient)   # one channel per sensor (e.g. ZZ only): nothing to gather
    graph = WorkflowGraph()
    chain = [fetch, pre, orient, norm, spec, white, *correlate, write]
    for a, b in zip(chain, chain[1:]):
        graph.connect(a, "output", b, "input", grouping="local" if b in local_into else None)
    if tiled:  # a station-day fetch or preprocessing leaves out does not hold its chunk's tiles
        for pe in (fetch, pre):
            graph.connect(pe, "absent", correlate[0], "absent", grouping="local")
    pes = {pe.name: pe for pe in graph.pes}
    return Workflow(config, sources, graph, {fetch: [{"input": r} for r in requests]}, results_path, done, pes,
                    memory, disk)


def _chunk_grid(start, end, chunk_length):
    """Start of every chunk ``[t, t + chunk_length)`` of ``[start, end)`` (UTCDateTime)."""
    from obspy import UTCDateTime

    t, t2, out = UTCDateTime(start), UTCDateTime(end), []
    while t < t2:
        out.append(t)
        t = t + chunk_length
    return out


def _free_bytes(folder: Path) -> tuple[int, Path]:
    """Free bytes of the file system that will hold ``folder`` (its nearest existing parent)."""
    import shutil

    where = Path(folder).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    return shutil.disk_usage(where).free, where


def _check_chunk_state(config: WorkflowConfig, disk: dict, p) -> None:
    """Refuse a ``keep: chunks`` run whose stacking state cannot fit the memory budget: until
    a pair's last chunk has arrived its chunk rows wait in memory (float64; pws three
    times: sum and phasor), ``pairs_keeping_chunks x chunks x lags x 8`` bytes in all."""
    from noisecorr.tiles.plan import format_bytes

    per = 24 if p.stack_method == "pws" else 8
    need = disk["pairs_keeping_chunks"] * disk["chunks"] * (2 * p.maxlag_samples + 1) * per
    budget, source = memory_budget(config)
    log.info("keep: chunks: chunk rows held while stacking about %s (budget %s)", format_bytes(need),
             format_bytes(budget))
    if need > budget // 2:
        raise ConfigError(f"keep: chunks: the chunk rows of {disk['pairs_keeping_chunks']} pair components x "
                          f"{disk['chunks']} chunks wait in memory until each pair is complete, about "
                          f"{format_bytes(need)}, more than half the memory budget {format_bytes(budget)} "
                          f"({source}); restrict keep_chunks (components, pairs, distance_km), run fewer "
                          f"chunks at a time (--append), or raise --memory")


def disk_plan(config: WorkflowConfig, sources: Sources, n_chunks: int, selection, out: Path) -> dict:
    """The disk the results file will take (:func:`noisecorr.results.series.disk_estimate`,
    compression ignored), logged beside the memory plan; a run that does not fit the free
    space of the output folder is refused before it starts.

    Returns
    -------
    dict
        ``{"estimate_bytes", "free_bytes", "pairs", "pairs_keeping_chunks", "chunks",
        "chunk_lags"}``
        (:attr:`Workflow.disk`).

    Raises
    ------
    ConfigError
        The estimate exceeds the free space: the message gives both figures and how to
        reduce the estimate (``keep_chunks`` restrictions).
    """
    import numpy as np

    from noisecorr.results.layout import geometry_many, lag_count
    from noisecorr.results.series import disk_estimate
    from noisecorr.tiles.plan import format_bytes

    p = config.processing
    comps = list(p.components)
    codes = sorted(sources.stations)
    n_sta = len(codes)
    n_pairs = n_sta * (n_sta - 1) // 2 * len(comps)
    n_lags = 2 * p.maxlag_samples + 1
    n_kept = 0
    if selection is not None:
        if selection.everything:
            n_kept = n_pairs
        else:
            i, j = np.triu_indices(n_sta, 1)
            dist = np.full(len(i), np.nan)
            if selection.distance_km is not None and len(i):
                lat = np.array([float(sources.stations[c].get("latitude", np.nan)) for c in codes])
                lon = np.array([float(sources.stations[c].get("longitude", np.nan)) for c in codes])
                dist = geometry_many(lat[i], lon[i], lat[j], lon[j])[0]
            for a, b, d in zip(i, j, dist):
                for comp in comps:
                    n_kept += selection.keeps(codes[a], codes[b], comp, None if np.isnan(d) else d)
    chunk_lags = n_lags  # a shorter per-chunk maxlag keeps shorter chunk rows
    if config.series_maxlag is not None:
        chunk_lags = lag_count(config.series_maxlag, p.sampling_rate)
    need = disk_estimate(n_pairs, n_kept, n_chunks, n_lags, pws=p.stack_method == "pws", chunk_lags=chunk_lags)
    free, where = _free_bytes(out)
    log.info("disk: results about %s (%d pair components x %d lags x 4 B for the stacks%s; compression "
             "ignored), %s free in %s", format_bytes(need), n_pairs, n_lags,
             f", + {n_kept} keeping {n_chunks} chunks of {chunk_lags} lags each" if selection is not None else "",
             format_bytes(free), where)
    if need > free:
        how = ("restrict what is kept per chunk with keep_chunks (components, pairs, distance_km, maxlag), "
               "keep: stack, fewer stations or a shorter maxlag" if selection is not None
               else "fewer stations or a shorter maxlag")
        raise ConfigError(f"out: the results need about {format_bytes(need)} ({need} B, compression "
                          f"ignored) but {where} has {format_bytes(free)} ({free} B) free; {how}, "
                          f"or choose another out folder")
    return {"estimate_bytes": int(need), "free_bytes": int(free), "pairs": n_pairs,
            "pairs_keeping_chunks": n_kept, "chunks": n_chunks, "chunk_lags": chunk_lags}


__all__ = ["Workflow", "build_workflow", "completed_pairs", "RESULTS_FILE"]
