"""Benchmark what a run does after the engine: merge, record section, summary.

Builds the part files that ``--writers`` parallel results writers leave after a
run of ``--stations`` stations (every pair, one ``write_block`` per tile of
``--block`` x ``--block`` stations, tiles dealt round-robin to the writers,
``--maxlag`` s at 20 Hz float32; the defaults give 499,500 pairs of 8001 lags,
about 16 GB), then runs :func:`noisecorr.workflow.runner.finish` on them as a
run would and times its phases:

``merge``
    :func:`noisecorr.results.merge_parts` (parts to ``results.h5``) and its steps
    ``merge.datasets`` (creating the pairs' datasets and writing the stacks
    through HDF5) and ``merge.fsync`` (a merge built on disk); the line
    ``merge: ...`` says what the merge did (in memory or on disk, batches, chunks
    copied: :class:`noisecorr.results.merge.MergeReport`). ``--merge-memory``
    gives the merge a budget (default: :func:`merge_parts`'s, this process's share
    of the machine or job), so that the merge on disk or in memory can be chosen.
``record_section``
    :func:`noisecorr.results.plot.record_section` (PNG written).
``rest``
    Everything else in ``finish``: opening the results, listing the pairs, the
    largest distance, the summary.
``resume_index``
    :func:`noisecorr.workflow.build.completed_pairs` of the merged file (what
    ``--resume`` reads before anything runs).

``*_cpu`` columns are CPU seconds of this process (all threads, kernel time
included) in the same phase: on a busy machine they vary less than the wall
seconds. Prints the median of ``--repeat`` runs (the parts are rebuilt before
each, as the merge consumes them). Needs free disk for about twice the results.

``--compression gzip`` or ``lzf``: the writers compress the stacks, and the merge copies
them as stored chunks (``merge: ... chunks_copied``) instead of reading and writing them.

``--build`` times :func:`noisecorr.workflow.build.build_workflow` instead, for
``--stations`` synthetic stations under ``--mapping mpi -n 2`` (the network is
generated once, in ``noisecorr_cache`` under ``--dir``, and not timed).

Example::

    .venv/bin/python scripts/bench_finish.py --dir /tmp/bench --repeat 3
    .venv/bin/python scripts/bench_finish.py --stations 200 --maxlag 20   # quick
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FS = 20.0


def stations_of(n):
    """``{"NET.STA": {latitude, longitude, elevation}}`` of ``n`` stations in a 4 x 4 degree area."""
    rng = np.random.default_rng(1)
    lat = 45 + 4 * rng.random(n)
    lon = 8 + 4 * rng.random(n)
    return {f"XS.S{i + 1:04d}": {"latitude": float(a), "longitude": float(b), "elevation": 0.0}
            for i, (a, b) in enumerate(zip(lat, lon))}


def write_parts(path, stations, maxlag, block, writers, compression=None):
    """Leave the part files of ``writers`` parallel writers for every pair of ``stations``
    (stacks compressed with ``compression``, ``"gzip"`` or ``"lzf"``, if given)."""
    from noisecorr.results import ResultsWriter

    codes = sorted(stations)
    n_lags = 2 * int(round(maxlag * FS)) + 1
    table = [{"code": c, **stations[c]} for c in codes]
    params = {"processing": {"maxlag": maxlag, "sampling_rate": FS}, "chunk_length": 7200.0}
    ws = [ResultsWriter(path, params, stations=table, starttime="2024-01-01T00:00:00.000000Z",
                        endtime="2024-01-01T02:00:00.000000Z", resume=True, writer_id=w,
                        compression=compression)
          for w in range(writers)]
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((block * block, n_lags)).astype(np.float32)
    blocks = [codes[i:i + block] for i in range(0, len(codes), block)]
    k = 0
    for i, a in enumerate(blocks):
        for b in blocks[i:]:
            pairs = [(s, r) for s in a for r in b if s < r]
            n = len(pairs)
            ws[k % writers].write_block([p[0] for p in pairs], [p[1] for p in pairs], "ZZ", maxlag,
                                        rows[:n], {"sampling_rate": FS, "n_windows": np.full(n, 7),
                                                   "stack_method": "linear"})
            k += 1
    for w in ws:
        w.close(merge=False)


def workflow_of(out, stations, maxlag):
    """A :class:`noisecorr.workflow.build.Workflow` with what ``finish`` reads (no graph)."""
    from obspy import UTCDateTime

    from noisecorr.engine import WorkflowGraph
    from noisecorr.workflow.build import RESULTS_FILE, Workflow
    from noisecorr.workflow.config import load_config
    from noisecorr.workflow.sources import Sources

    config = load_config(overrides={"out": str(out), "stations": len(stations), "mapping": "mpi",
                                    "processes": 2})
    seed_ids = [f"{c}..BHZ" for c in sorted(stations)]
    sources = Sources(None, None, seed_ids, stations, UTCDateTime(2024, 1, 1),
                      UTCDateTime(2024, 1, 1, 2), "benchmark")
    return Workflow(config, sources, WorkflowGraph(), {}, Path(out) / RESULTS_FILE)


class _Timed:
    """Wrap ``module.name`` so that calls add their seconds to ``times[key]`` (and the CPU
    seconds of this process, all threads and the kernel's work for it, to ``cpu[key]``)."""

    def __init__(self, module, name, times, key, cpu):
        self.module, self.name, self.times, self.key, self.cpu = module, name, times, key, cpu
        self.orig = self.call = getattr(module, name)  # orig is put back on exit

    def __enter__(self):
        def timed(*args, **kwargs):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return self.call(*args, **kwargs)
            finally:
                self.times[self.key] = self.times.get(self.key, 0.0) + time.perf_counter() - t0
                self.cpu[self.key] = self.cpu.get(self.key, 0.0) + time.process_time() - c0
        setattr(self.module, self.name, timed)

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.orig)


def run_once(folder, stations, maxlag, block, writers, memory=None, compression=None):
    import noisecorr.results
    import noisecorr.results.plot
    from noisecorr.engine.result import RunResult
    from noisecorr.workflow.runner import finish

    out = Path(folder) / "run"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wf = workflow_of(out, stations, maxlag)
    t0 = time.perf_counter()
    write_parts(wf.results_path, stations, maxlag, block, writers, compression)
    t_parts = time.perf_counter() - t0
    import noisecorr.results.merge as merge

    times, cpu = {}, {}
    timers = [_Timed(noisecorr.results, "merge_parts", times, "merge", cpu),
              _Timed(noisecorr.results.plot, "record_section", times, "record_section", cpu)]
    steps = ((merge, "_merge_into", "datasets"), (merge, "_fsync", "fsync"))
    timers += [_Timed(obj, name, times, f"merge.{key}", cpu) for obj, name, key in steps]
    reports = []
    real_merge = timers[0].orig

    def merge_and_report(*args, **kwargs):
        if memory is not None:
            kwargs["memory"] = memory
        reports.append(real_merge(*args, **kwargs))
    timers[0].call = merge_and_report
    for t in timers:
        t.__enter__()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        finish(wf, RunResult(mapping="mpi"), 0.0)
        total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        for t in timers:
            t.__exit__()
    times["rest"] = total - times.get("merge", 0.0) - times.get("record_section", 0.0)
    times["total"] = total
    times["total_cpu"] = total_cpu
    times.update({f"{k}_cpu": v for k, v in cpu.items() if k in ("merge", "record_section")})
    from noisecorr.workflow.build import completed_pairs

    t0 = time.perf_counter()
    completed_pairs(wf.results_path)
    times["resume_index"] = time.perf_counter() - t0
    for r in reports:
        print(f"  merge: {r!r}", flush=True)
    order = ("merge", "record_section", "rest", "total", "resume_index")
    times = {k: times[k] for k in sorted(times, key=lambda k: (
        order.index(k.split(".")[0].replace("_cpu", "")), k))}
    size = wf.results_path.stat().st_size
    shutil.rmtree(out)
    return t_parts, times, size


def bench_build(folder, n_stations, repeat):
    """Seconds of ``build_workflow`` (sources resolved inside) for a synthetic network."""
    import os

    from noisecorr.workflow.build import build_workflow
    from noisecorr.workflow.config import load_config
    from noisecorr.workflow.sources import resolve

    os.chdir(folder)  # the synthetic network is cached in ./noisecorr_cache
    config = load_config(overrides={"out": str(Path(folder) / "out"), "stations": n_stations,
                                    "mapping": "mpi", "processes": 2})
    t0 = time.perf_counter()
    resolve(config)
    print(f"  synthetic network ready in {time.perf_counter() - t0:.1f} s (not timed)", flush=True)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        build_workflow(config)
        runs.append(time.perf_counter() - t0)
    return runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--maxlag", type=float, default=200.0)
    ap.add_argument("--block", type=int, default=64, help="stations per tile side (one part per tile)")
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="folder for the files (default: a temporary one)")
    ap.add_argument("--build", action="store_true", help="time build_workflow instead")
    ap.add_argument("--merge-memory", default=None,
                    help="memory budget of the merge, e.g. 1G (default: merge_parts's)")
    ap.add_argument("--compression", choices=("gzip", "lzf"), default=None,
                    help="the writers compress the stacks (the merge copies them as stored chunks)")
    args = ap.parse_args(argv)
    if args.build:
        folder = Path(args.dir or tempfile.mkdtemp())
        runs = bench_build(folder.resolve(), args.stations, args.repeat)
        print(f"stations={args.stations} build_workflow_s={statistics.median(runs):.2f} "
              f"(median of {args.repeat}: {', '.join(f'{r:.2f}' for r in runs)})")
        return 0
    stations = stations_of(args.stations)
    runs = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for _ in range(args.repeat):
            memory = None
            if args.merge_memory:
                from noisecorr.tiles.plan import parse_memory
                memory = parse_memory(args.merge_memory)
            runs.append(run_once(tmp, stations, args.maxlag, args.block, args.writers, memory,
                                 args.compression))
            t = runs[-1][1]
            print("  run: " + " ".join(f"{k}={v:.2f}" for k, v in t.items()), flush=True)
    n = args.stations * (args.stations - 1) // 2
    med = {k: statistics.median(r[1][k] for r in runs) for k in runs[0][1]}
    print(f"stations={args.stations} pairs={n} n_lags={2 * int(round(args.maxlag * FS)) + 1} "
          f"writers={args.writers} file_GB={runs[0][2] / 1e9:.1f} median of {args.repeat}: "
          f"parts_s={statistics.median(r[0] for r in runs):.1f} (not part of finish) "
          + " ".join(f"{k}_s={v:.2f}" for k, v in med.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
