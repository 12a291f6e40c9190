"""Run the ambient-noise workflow end to end and report what happened."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from noisecorr.engine import run

from .build import Workflow, build_workflow
from .config import WorkflowConfig
from .idle import IDLE_NOTE, explain_idle
from .lock import LOCK, OutputLocked, OutputLockError, output_lock  # noqa: F401 (public here too)

log = logging.getLogger(__name__)

RECORD_SECTION = "record_section.png"
SUMMARY = "summary.json"


@dataclass
class Report:
    """What a run did: printed by the CLI as a table and stored as ``summary.json``."""

    out: str
    results: str
    plot: str | None
    mapping: str
    stations: int
    channels: int
    chunks: int
    pairs_expected: int
    pairs_written: int
    pairs_resumed: int
    windows_used: int
    windows_rejected: dict
    skipped: list = field(default_factory=list)
    #: ``[{"path", "reason", "damaged"}, ...]``: every file a reader could not read. Damaged
    #: waveform data is also in ``skipped`` (exit status 3); other files (notes, zips, other
    #: formats, links, folders) are only listed here.
    skipped_files: list = field(default_factory=list)
    #: ``{"chosen": {station: [seed_id, ...]}, "dropped": [{"seed_id", "station", "chosen",
    #: "reason"}, ...]}``: the channel group kept per station (``channel_priority``,
    #: ``location_priority``) and the channels left out for it (not skips: exit status 0).
    channel_selection: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    provenance: dict | None = None
    #: The memory budget of the run, where it came from and the tile plan chosen within it
    #: (:func:`noisecorr.workflow.build.memory_record`); empty without the tiled stage.
    memory: dict = field(default_factory=dict)
    #: Why the workers idled (:func:`noisecorr.workflow.idle.explain_idle`): their idle share
    #: of workers x engine wall, its seconds by cause and a sentence naming the main one;
    #: empty when the mapping reported no worker timings.
    idle: dict = field(default_factory=dict)
    #: Seconds of the run's phases in this process: ``build`` (sources, inventory, plan),
    #: ``engine`` (the enactment), ``merge`` (the writers' parts into ``results.h5``) and
    #: ``record_section``; with the interpreter's start and imports they are the fixed cost.
    phases: dict = field(default_factory=dict)

    @property
    def had_skips(self) -> bool:
        return bool(self.skipped)

    def table(self) -> str:
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(self.windows_rejected.items()) if v) or "none"
        lines = [
            f"{'stations read':<22}{self.stations} ({self.channels} channels, {self.chunks} chunk(s) each)",
            f"{'stations skipped':<22}{len(self.skipped)}",
            *[f"{'':<24}{who}: {why}" for who, why in self.skipped],
            f"{'files skipped':<22}{len(self.skipped_files)}",
            *[f"{'':<24}{f['path']}: {f['reason']}" for f in self.skipped_files[:5]],
            *([f"{'':<24}... all {len(self.skipped_files)} in summary.json"] if len(self.skipped_files) > 5 else []),
            *self._dropped_lines(),
            f"{'windows used':<22}{self.windows_used}",
            f"{'windows rejected':<22}{rejected}",
            f"{'pairs written':<22}{self.pairs_written} of {self.pairs_expected}"
            + (f" ({self.pairs_resumed} already complete)" if self.pairs_resumed else ""),
            f"{'mapping':<22}{self.mapping}",
            f"{'wall time':<22}{self.wall_seconds:.1f} s",
            *([f"{'idle':<22}{self.idle['reason']}"] if self.idle.get("share", 0.0) >= IDLE_NOTE else []),
            f"{'results':<22}{self.results}",
        ]
        if self.memory:
            from noisecorr.tiles.plan import format_bytes

            m = self.memory
            lines.append(f"{'memory':<22}budget {format_bytes(m['budget_bytes'])} ({m['budget_source']}); tiles of "
                         f"{m['block_size']} stations, factors in {m['store']}, peak "
                         f"{format_bytes(m['peak_bytes_per_worker'])} per worker")
        if self.plot:
            lines.append(f"{'record section':<22}{self.plot}")
        if self.provenance:
            lines.append(f"{'provenance':<22}run {self.provenance['run_id']} in {self.provenance['store']}")
        return "\n".join(lines)

    def _dropped_lines(self) -> list:
        dropped = self.channel_selection.get("dropped", [])
        if not dropped:
            return []
        return [f"{'channels dropped':<22}{len(dropped)} (another channel of the station kept)",
                *[f"{'':<24}{d['seed_id']}: {d['reason']}" for d in dropped[:5]],
                *([f"{'':<24}... all {len(dropped)} in summary.json"] if len(dropped) > 5 else [])]


def run_workflow(config: WorkflowConfig, progress=None, workflow: Workflow | None = None,
                 mapping_options: dict | None = None, plot: bool = True) -> Report | None:
    """Resolve the data, build the graph, enact it with ``config.mapping`` and finish.

    ``mapping_options`` are passed to the mapping (e.g. ``{"harness": True}`` runs the Storm
    topology under the test harness that plays Storm's side); ``plot``: draw the record
    section.

    Returns the :class:`Report` (``None`` on MPI ranks other than 0).

    Raises
    ------
    FileExistsError
        Results exist in ``config.out`` and ``config.resume`` is false.
    OutputLocked
        Another live run writes to ``config.out`` (see :mod:`noisecorr.workflow.lock`).
    OutputLockError
        The lock file in ``config.out`` cannot be created (read-only or full file system...).
    """
    out = Path(config.out)
    root = _is_root(config.mapping)
    if root:
        results = out / "results.h5"
        if not config.resume and (results.exists() or Path(str(results) + ".parts").exists()):
            raise FileExistsError(f"{results} exists; use --resume to continue it or choose another --out")
    lock = output_lock(out, stale_after=config.lock_stale_after) if root else _NoLock()
    with lock:
        t0 = time.perf_counter()
        wf = workflow or build_workflow(config)
        phases = {"build": time.perf_counter() - t0}
        log.info("%d stations, %d channels from %s, %s to %s, mapping %s",
                 len(wf.sources.stations), len(wf.sources.seed_ids), wf.sources.description,
                 wf.sources.start, wf.sources.end, config.mapping)
        if wf.completed and not any(wf.inputs.values()):
            # --resume of a finished run: every pair is complete, nothing to fetch. The engine
            # refuses a source without input, so report without enacting (every MPI rank agrees:
            # each read the same results file).
            log.info("every pair is already complete in %s: nothing to do", wf.results_path)
            if not root:
                return None
            from noisecorr.engine.result import RunResult

            return finish(wf, RunResult(mapping=config.mapping), time.perf_counter() - t0, plot=plot,
                          phases=phases)
        if progress is not None and hasattr(progress, "start"):
            progress.start(sum(len(v) for v in wf.inputs.values() if isinstance(v, (list, tuple))))
        prov = provenance_options(config)
        options = dict(mapping_options or {})
        if progress is not None and config.mapping in ("sequential", "multiprocess", "mpi", "dask", "simple", "multi"):
            options["progress"] = progress
        if config.mapping == "dask" and wf.memory:  # a local cluster's workers get the planner's budget each
            options.setdefault("memory_limit", wf.memory["per_worker_budget_bytes"])
        warm = _warm_imports(config.mapping, PLOT_MODULES if plot else ())
        result = run(wf.graph, inputs=wf.inputs, mapping=config.mapping, processes=config.processes,
                     provenance=prov, **options)
        if warm is not None:
            warm.join()
        if result is None:  # an MPI rank other than 0
            return None
        report = finish(wf, result, time.perf_counter() - t0,
                        provenance=prov and {"run_id": result.provenance_run_id, "store": prov["store"]},
                        plot=plot, phases=phases)
        return report


#: What drawing the record section imports (matplotlib's Figure and Agg canvas: about half a
#: second of CPU).
PLOT_MODULES = ("noisecorr.results.plot",)
#: Mappings whose driver only waits while worker processes compute.
_DRIVER_WAITS = ("multiprocess", "multi", "dask")


def _warm_imports(mapping: str, modules):
    """Import ``modules`` in a background thread while the workers of ``mapping`` run, when
    this process only waits for them (``multiprocess``, ``dask``): the record section's
    imports then cost the run no wall time. The mapping's own module is imported first, so
    the two threads never import the same modules. Returns the thread to join, or None."""
    if not modules or mapping not in _DRIVER_WAITS:
        return None
    import importlib
    import threading

    from noisecorr.mappings import load

    load(mapping)

    def target():
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:  # the record section reports it when it imports the module itself
                log.debug("warming the import of %s failed", name, exc_info=True)

    thread = threading.Thread(target=target, name="noisecorr-warm-imports", daemon=True)
    thread.start()
    return thread


def provenance_options(config: WorkflowConfig) -> dict | None:
    """The ``provenance=`` argument of :func:`noisecorr.engine.run` for ``config``.

    ``provenance: true`` records to ``<out>/provenance.sqlite``; a string is a store URL.
    The bundle of the run holds the whole configuration.
    """
    if not config.provenance:
        return None
    from noisecorr.provenance.store import FILENAME

    store = config.provenance if isinstance(config.provenance, str) else str(Path(config.out).resolve() / FILENAME)
    return {"store": store, "rules": config.provenance_rules, "config": config.to_dict()}


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _is_root(mapping):
    if mapping != "mpi":
        return True
    from noisecorr.mappings import load

    return load("mpi").is_root()


def plot_record_section(config: WorkflowConfig, results_path: Path, synthetic: bool = False) -> str | None:
    """Draw ``<out>/record_section.png`` of the first component of ``results_path``; its path,
    or None without results or pairs. ``synthetic``: one guide line at the synthetic velocity."""
    if not Path(results_path).exists():
        return None
    from noisecorr.results import open_results
    from noisecorr.results.plot import record_section

    plot_path = str(Path(config.out) / RECORD_SECTION)
    with open_results(results_path) as res:
        comp = config.processing.components[0]
        n_pairs = len(res.pairs(comp))
        if not n_pairs:
            return None
        # show the move-out: lags up to the slowest guide velocity's arrival, with margin
        # (distances from the index in memory; unknown ones count as 0 km)
        far = float(np.max(np.nan_to_num(res.column("distance_km", comp), nan=0.0)))
        record_section(res, component=comp, path=plot_path,
                       maxlag=min(config.processing.maxlag, max(10.0, 1.3 * far / 2.0)),
                       velocities=(config.synthetic_velocity,) if synthetic else (2.0, 3.0, 4.0),
                       title=f"Record section {comp}, {n_pairs} pairs")
    return plot_path


def finish(wf: Workflow, result, wall, provenance=None, plot: bool = True, phases: dict | None = None) -> Report:
    """Plot the record section (unless not ``plot``) and write ``summary.json`` for a
    finished enactment. ``phases``: seconds of the phases before it (``{"build": s}``),
    completed here with ``engine``, ``merge`` and ``record_section`` (:attr:`Report.phases`)."""
    phases = dict(phases or {})
    phases["engine"] = result.timings.get("wall", 0.0)
    config, sources = wf.config, wf.sources
    stats = result.outputs.get(("Whiten", "stats"), [])
    rejected_windows = {}
    for s in stats:
        for reason, n in s["rejected"].items():
            rejected_windows[reason] = rejected_windows.get(reason, 0) + n
    skipped = list(sources.skipped)
    for pe in ("Fetch", "Preprocess", "Orient"):
        for r in result.outputs.get((pe, "rejected"), []):
            skipped.append((f"{r['seed_id']} chunk {_iso(r['chunk'])}", r["reason"]))
    skipped_files = _skipped_files(result.outputs.get(("Fetch", "skipped_files"), []))
    for f in skipped_files:  # damaged waveform data found while indexing counts as a skip
        if f["damaged"] and not any(f["path"] in why for _, why in skipped):
            skipped.append((f["path"], f["reason"]))
    written = sum(n for what, n in result.outputs.get(("WriteResults", "output"), []) if what == "written")
    from noisecorr.results import merge_parts
    from noisecorr.results.writer import list_parts

    t = time.perf_counter()
    if list_parts(wf.results_path):  # the writers' parts (one set per worker) become results.h5
        from .build import memory_budget

        # the workers are done: the merge may use the run's whole budget (--memory)
        merge_parts(wf.results_path, memory=memory_budget(config)[0])
    phases["merge"] = time.perf_counter() - t
    t = time.perf_counter()
    plot_path = plot_record_section(config, wf.results_path, bool(sources.truth)) if plot else None
    phases["record_section"] = time.perf_counter() - t
    chunks = max(1, len({s["chunk"] for s in stats})) if stats else 0
    tile_stats = result.outputs.get(("TileCorrelatePE", "stats"), [])
    report = Report(
        out=str(config.out), results=str(wf.results_path), plot=plot_path, mapping=result.mapping,
        stations=len(sources.stations), channels=len(sources.seed_ids), chunks=chunks,
        pairs_expected=wf.n_pairs, pairs_written=written, pairs_resumed=len(wf.completed),
        windows_used=sum(s["n_windows"] for s in stats), windows_rejected=rejected_windows,
        skipped=skipped, skipped_files=skipped_files, wall_seconds=wall,
        channel_selection=sources.channel_selection(),
        timings={**{k: round(v, 3) for k, v in result.timings.items()}, **tile_timings(tile_stats)},
        provenance=provenance or None, memory=dict(wf.memory),
        idle=explain_idle(result.workers, result.timings.get("wall", 0.0), _tiles_per_instance(tile_stats)),
        phases={k: round(v, 3) for k, v in phases.items()},
    )
    if report.idle.get("share", 0.0) >= IDLE_NOTE:
        log.info("%s (seconds by cause, all workers: %s)", report.idle["reason"], report.idle["seconds"])
    tmp = Path(config.out) / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps({**report.__dict__, "config": config.to_dict()}, indent=1, default=str))
    os.replace(tmp, Path(config.out) / SUMMARY)
    return report


def _skipped_files(entries) -> list:
    """Each unreadable file once (every Fetch instance reports the files it met), by path;
    logged as a count and the first few at WARNING."""
    by_path = {}
    for e in entries:
        by_path.setdefault(e["path"], {"path": e["path"], "reason": e["reason"], "damaged": bool(e["damaged"])})
    files = [by_path[p] for p in sorted(by_path)]
    if files:
        log.warning("%d file(s) could not be read and were left out (all listed in %s under 'skipped_files'): %s%s",
                    len(files), SUMMARY, "; ".join(f"{f['path']}: {f['reason']}" for f in files[:3]),
                    " ..." if len(files) > 3 else "")
    return files


def tile_timings(stats) -> dict:
    """Seconds of the tiled stage's steps summed over its instances, the bytes of spectra
    spilled to scratch files, and the cross-spectral GFLOP/s (each instance's flops over its
    own product seconds, summed: the rate the workers reached together)."""
    if not stats:
        return {}
    out = {f"tiles.{k}": round(sum(s["seconds"][k] for s in stats), 3)
           for k in ("allocate", "assemble", "cross_spectra", "inverse_fft")}
    out["tiles.spilled_bytes"] = sum(s.get("spilled_bytes", 0) for s in stats)
    out["tiles.cross_spectra_gflops"] = round(
        sum(s["flops"] / s["seconds"]["cross_spectra"] for s in stats if s["seconds"]["cross_spectra"] > 0) / 1e9, 1)
    return out


def _tiles_per_instance(stats) -> list:
    """Tiles each tiled-correlation instance computed, in instance order (none: ``[]``)."""
    return [s["tiles"] for s in sorted(stats, key=lambda s: s.get("instance", 0))]


def _iso(t):
    from obspy import UTCDateTime

    return str(UTCDateTime(t))


# ------------------------------------------------------------------ incremental runs
#: Folder in ``out`` where the runs of the new spans of an append are made before the merge.
APPEND_STAGING = "append.staging"


@dataclass
class AppendReport:
    """What ``noisecorr run --append`` did (:func:`append_workflow`); printed by the CLI and
    added to the ``appends`` list of ``summary.json``.

    Attributes
    ----------
    out, results : str
    requested : (str, str)
        The span asked for (ISO UTC).
    coverage_before, coverage_after : list of (str, str)
        What the results file covered before and after (ISO UTC intervals).
    chunks_requested, chunks_skipped : int
        Chunks of the requested span, and those already in the file (not recomputed).
    appended : list of (str, str)
        The spans run and merged.
    runs : list of Report
        The run of each appended span.
    updated, new, unchanged : int
        Pair components extended, added (new stations or pairs) and left as they were.
    stations_new : list of str
        Stations the file did not have; their pairs got new datasets.
    stations_absent : list of str
        Stations of the file without data in the appended span (their pairs are unchanged).
    """

    out: str
    results: str
    requested: tuple
    coverage_before: list
    coverage_after: list
    chunks_requested: int
    chunks_skipped: int
    appended: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    updated: int = 0
    new: int = 0
    unchanged: int = 0
    stations_new: list = field(default_factory=list)
    stations_absent: list = field(default_factory=list)
    plot: str | None = None
    wall_seconds: float = 0.0

    @property
    def had_skips(self) -> bool:
        return any(r.had_skips for r in self.runs)

    def table(self) -> str:
        def spans(x):
            return ", ".join(f"{a} .. {b}" for a, b in x) or "none"

        lines = [f"{'appended':<22}{spans(self.appended)}",
                 f"{'chunks':<22}{self.chunks_requested - self.chunks_skipped} computed, "
                 f"{self.chunks_skipped} already in the file (skipped)",
                 f"{'pairs':<22}{self.updated} updated, {self.new} new, {self.unchanged} unchanged",
                 f"{'new stations':<22}{', '.join(self.stations_new) or 'none'}",
                 f"{'stations without data':<22}{', '.join(self.stations_absent) or 'none'}",
                 f"{'results cover':<22}{spans(self.coverage_after)}"]
        for r in self.runs:
            lines += ["", *r.table().splitlines()]
        lines += ["", f"{'wall time':<22}{self.wall_seconds:.1f} s", f"{'results':<22}{self.results}"]
        return "\n".join(lines)


def _span_name(a: float, b: float) -> str:
    from obspy import UTCDateTime

    return f"{UTCDateTime(a).strftime('%Y%m%dT%H%M%S')}_{UTCDateTime(b).strftime('%Y%m%dT%H%M%S')}"


def _span_of(name: str):
    from obspy import UTCDateTime

    try:
        a, b = name.split("_")
        return float(UTCDateTime(a).timestamp), float(UTCDateTime(b).timestamp)
    except ValueError:
        return None


def _covered(coverage, span) -> bool:
    return any(a <= span[0] + 1e-6 and span[1] <= b + 1e-6 for a, b in coverage)


def write_params(config: WorkflowConfig, start=None) -> dict:
    """The ``params`` a run of ``config`` starting at ``start`` stores in its results file
    (what an append compares; :meth:`WorkflowConfig.results_params`, as the build writes it)."""
    return config.results_params(start)


def append_workflow(config: WorkflowConfig, progress=None, build=None,
                    mapping_options: dict | None = None) -> AppendReport | None:
    """Add the chunks of ``[config.start, config.end)`` missing from ``<out>/results.h5``.

    Only the spans the file does not cover are run (each in ``<out>/append.staging/<span>``,
    with the run's resume machinery), then merged into the results file in one atomic step
    (:func:`noisecorr.results.append.merge_results`, whose notes say how each stack method is
    updated). ``config.start`` defaults to the end of what the file covers; ``config.end``
    is required. An interrupted append is finished by running the same append again.

    Parameters
    ----------
    config : WorkflowConfig
        The run; its parameters must be the file's (:func:`noisecorr.results.append.check_params`).
    progress, mapping_options
        As in :func:`run_workflow`.
    build : callable, optional
        ``build(config) -> Workflow`` for each new span (default :func:`build_workflow`).

    Returns
    -------
    AppendReport, or None on MPI ranks other than 0.

    Raises
    ------
    FileNotFoundError
        No results file in ``config.out``.
    noisecorr.results.append.AppendError
        Parameters differ from the file's, the span does not start on the file's chunk grid,
        a robust file without one span per chunk, or an unfinished append of another span.
    ConfigError
        No ``end``.
    """
    import shutil

    from noisecorr.results.append import (AppendError, check_method, check_params, merge_results,
                                          missing_spans, read_coverage)
    from noisecorr.results.writer import list_parts

    from .build import RESULTS_FILE
    from .config import ConfigError

    out = Path(config.out)
    results = out / RESULTS_FILE
    if not results.exists():
        raise FileNotFoundError(f"--append: no results file {results} to append to; make it with a run "
                                f"without --append first")
    if list_parts(results):
        raise AppendError(f"{results} has the parts of an unfinished run: finish it with --resume first")
    if not config.end:
        raise ConfigError("end: --append needs --end (the end of the span to add)")
    root = _is_root(config.mapping)
    lock = output_lock(out, stale_after=config.lock_stale_after) if root else _NoLock()
    with lock:
        t0 = time.perf_counter()
        import h5py

        with h5py.File(results, "r") as f:
            file_params = json.loads(f.attrs["params"])
        # keep: chunks: any start on the file's chunk grid gives the file's substack_origin
        grid = config.start or (file_params.get("processing") or {}).get("substack_origin")
        check_params(file_params, write_params(config, grid), where=str(results))
        coverage = read_coverage(results)
        check_method(file_params, coverage, where=str(results))
        from noisecorr.results.append import _iso, _posix, chunk_grid_origin

        start = _posix(config.start) if config.start else coverage[-1][1]
        end = _posix(config.end)
        missing = missing_spans(coverage, start, end, config.chunk_length)
        L, g0 = config.chunk_length, chunk_grid_origin(coverage)

        def n_chunks(a, b):
            return max(0, int(math.ceil((b - g0) / L - 1e-9)) - int(math.floor((a - g0) / L + 1e-9)))

        requested = n_chunks(start, end)
        computed = sum(n_chunks(a, b) for a, b in missing)
        log.info("append to %s: %d chunk(s) of %s .. %s, %d already in the file (skipped), %d to compute: %s",
                 results, requested, _iso(start), _iso(end), requested - computed, computed,
                 ", ".join(f"{_iso(a)} .. {_iso(b)}" for a, b in missing) or "none")
        staging = out / APPEND_STAGING
        wanted = {_span_name(a, b) for a, b in missing}
        if root and staging.is_dir():
            for d in sorted(staging.iterdir()):
                span = _span_of(d.name)
                if d.name in wanted:
                    log.info("resuming the interrupted append of %s", d.name)
                elif span is not None and _covered(coverage, span):
                    log.info("removing %s: its span is already merged into %s", d, results)
                    shutil.rmtree(d)
                else:
                    raise AppendError(f"{d} holds an unfinished append of another span "
                                      f"({_iso(span[0]) + ' .. ' + _iso(span[1]) if span else d.name}): "
                                      f"finish it with the same --start and --end, or remove the folder")
        runs, staged, done, truth = [], [], [], False
        for a, b in missing:
            cfg = config.replace(out=str(staging / _span_name(a, b)), start=_iso(a), end=_iso(b), resume=True)
            wf = (build or build_workflow)(cfg)
            check_params(file_params, wf.pes["WriteResults"].params if "WriteResults" in wf.pes
                         else write_params(cfg, cfg.start), where=str(results))
            report = run_workflow(cfg, progress=progress, workflow=wf, mapping_options=mapping_options, plot=False)
            truth = truth or bool(wf.sources.truth)
            if not root:
                continue
            runs.append(report)
            if Path(report.results).exists():
                staged.append(Path(report.results))
                done.append((a, b))
            else:
                log.warning("no pair has windows in %s .. %s: nothing to add, the span stays uncovered",
                            _iso(a), _iso(b))
        if not root:
            return None
        old_stations = set()
        with h5py.File(results, "r") as f:
            if "stations" in f:
                old_stations = set(f["stations"]["code"].asstr()[()].tolist())
        report = AppendReport(out=str(out), results=str(results), requested=(_iso(start), _iso(end)),
                              coverage_before=[(_iso(a), _iso(b)) for a, b in coverage],
                              coverage_after=[(_iso(a), _iso(b)) for a, b in coverage],
                              chunks_requested=requested, chunks_skipped=requested - computed,
                              appended=[(_iso(a), _iso(b)) for a, b in done], runs=runs)
        if staged:
            stats = merge_results(results, staged, coverage + done, compression=config.compression)
            report.coverage_after = [(_iso(a), _iso(b)) for a, b in stats.coverage]
            report.updated, report.new, report.unchanged = stats.updated, stats.new, stats.unchanged
            report.stations_new = stats.stations_new
            seen = {s for r in runs for s in r.channel_selection.get("chosen", {})}
            report.stations_absent = sorted(old_stations - seen)
            if report.stations_new:
                log.info("new stations in this append (their pairs get new datasets): %s",
                         ", ".join(report.stations_new))
            report.plot = plot_record_section(config, results, synthetic=truth)
        for a, b in missing:  # merged (or without windows): the staging runs have served
            d = staging / _span_name(a, b)
            if d.exists():
                shutil.rmtree(d)
        try:
            staging.rmdir()
        except OSError:
            pass
        report.wall_seconds = time.perf_counter() - t0
        summary_path = out / SUMMARY
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        summary.setdefault("appends", []).append(
            {k: v for k, v in report.__dict__.items() if k != "runs"}
            | {"runs": [{k: v for k, v in r.__dict__.items()} for r in runs]})
        tmp = out / (SUMMARY + ".tmp")
        tmp.write_text(json.dumps(summary, indent=1, default=str))
        os.replace(tmp, summary_path)
        return report
