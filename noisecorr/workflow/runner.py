"""Run the ambient-noise workflow end to end and report what happened."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from noisecorr.engine import run

from .build import Workflow, build_workflow
from .config import WorkflowConfig
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
                 mapping_options: dict | None = None) -> Report | None:
    """Resolve the data, build the graph, enact it with ``config.mapping`` and finish.

    ``mapping_options`` are passed to the mapping (e.g. ``{"harness": True}`` runs the Storm
    topology under the test harness that plays Storm's side).

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

            return finish(wf, RunResult(mapping=config.mapping), time.perf_counter() - t0)
        if progress is not None and hasattr(progress, "start"):
            progress.start(sum(len(v) for v in wf.inputs.values() if isinstance(v, (list, tuple))))
        prov = provenance_options(config)
        options = dict(mapping_options or {})
        if progress is not None and config.mapping in ("sequential", "multiprocess", "mpi", "simple", "multi"):
            options["progress"] = progress
        result = run(wf.graph, inputs=wf.inputs, mapping=config.mapping, processes=config.processes,
                     provenance=prov, **options)
        if result is None:  # an MPI rank other than 0
            return None
        report = finish(wf, result, time.perf_counter() - t0,
                        provenance=prov and {"run_id": result.provenance_run_id, "store": prov["store"]})
        return report


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


def finish(wf: Workflow, result, wall, provenance=None) -> Report:
    """Plot the record section and write ``summary.json`` for a finished enactment."""
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

    if list_parts(wf.results_path):  # the writers' parts (one set per worker) become results.h5
        merge_parts(wf.results_path)
    plot_path = None
    if wf.results_path.exists():
        from noisecorr.results import open_results
        from noisecorr.results.plot import record_section

        plot_path = str(Path(config.out) / RECORD_SECTION)
        with open_results(wf.results_path) as res:
            comp = config.processing.components[0]
            n_pairs = len(res.pairs(comp))
            if n_pairs:
                # show the move-out: lags up to the slowest guide velocity's arrival, with margin
                # (distances from the index in memory; unknown ones count as 0 km)
                far = float(np.max(np.nan_to_num(res.column("distance_km", comp), nan=0.0)))
                record_section(res, component=comp, path=plot_path,
                               maxlag=min(config.processing.maxlag, max(10.0, 1.3 * far / 2.0)),
                               velocities=(config.synthetic_velocity,) if sources.truth else (2.0, 3.0, 4.0),
                               title=f"Record section {comp}, {n_pairs} pairs")
            else:
                plot_path = None
    chunks = max(1, len({s["chunk"] for s in stats})) if stats else 0
    report = Report(
        out=str(config.out), results=str(wf.results_path), plot=plot_path, mapping=result.mapping,
        stations=len(sources.stations), channels=len(sources.seed_ids), chunks=chunks,
        pairs_expected=wf.n_pairs, pairs_written=written, pairs_resumed=len(wf.completed),
        windows_used=sum(s["n_windows"] for s in stats), windows_rejected=rejected_windows,
        skipped=skipped, skipped_files=skipped_files, wall_seconds=wall,
        channel_selection=sources.channel_selection(),
        timings={**{k: round(v, 3) for k, v in result.timings.items()},
                 **tile_timings(result.outputs.get(("TileCorrelatePE", "stats"), []))},
        provenance=provenance or None, memory=dict(wf.memory),
    )
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


def _iso(t):
    from obspy import UTCDateTime

    return str(UTCDateTime(t))
