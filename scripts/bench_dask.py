#!/usr/bin/env python
"""The dask mapping against the multiprocess mapping, in the same run.

Engine: small items through NumberSource -> Doubler -> Sink (items/s) and 1 MB arrays
through ArraySource -> Touch -> ArraySink (GB/s), as ``scripts/bench_engine.py``.
Workflow: ``noisecorr run`` on a synthetic network of ``--stations`` x ``--hours`` (generated
once, before timing), with ``-n`` workers.

Each figure is the median of ``--repeat`` runs; the mappings alternate run by run, so a
change in the machine's load hits both. ``dask`` starts and closes its own LocalCluster in
every run (as ``noisecorr run --mapping dask`` does, the cost of starting it included, as
multiprocess's includes starting its processes); ``dask-warm`` runs on one cluster
started before timing (``--scheduler``: a cluster that is already up). The last line is
the workflow ratio dask / multiprocess (the target: within 1.2).

Usage::

    python scripts/bench_dask.py                        # 300 stations x 24 h, 2 workers
    python scripts/bench_dask.py --stations 50 --hours 2 --items 100000 --arrays 100
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import array_graph  # noqa: E402

from noisecorr.engine import run  # noqa: E402
from noisecorr.engine.examples import chain_graph  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_line(label, values, unit, fmt="{:,.2f}"):
    runs = ", ".join(fmt.format(v) for v in values)
    print(f"{label:<44} median {fmt.format(statistics.median(values))} {unit}  (runs: {runs})", flush=True)
    return statistics.median(values)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--processes", type=int, default=2)
    ap.add_argument("--stations", type=int, default=300)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--items", type=int, default=200_000, help="items of the engine chain (0: skip)")
    ap.add_argument("--arrays", type=int, default=200, help="1 MB arrays of the bandwidth test (0: skip)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-workflow", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import distributed  # noqa: F401 (its import sets its loggers' levels: set ours after it)

    logging.getLogger("distributed").setLevel(logging.ERROR)
    from noisecorr.mappings.dask import local_cluster

    n = args.processes
    cluster = local_cluster(n, dashboard=False)
    mappings = {
        "multiprocess": dict(mapping="multiprocess", processes=n),
        "dask": dict(mapping="dask", processes=n),
        "dask-warm": dict(mapping="dask", processes=n, scheduler=cluster.scheduler_address),
    }
    try:
        if args.items:
            rates = {m: [] for m in mappings}
            for _ in range(args.repeat):
                for m, kw in mappings.items():
                    res = {}
                    dt = timed(lambda: res.update(r=run(chain_graph(args.items), **kw)))
                    got = sum(c for c, _ in res["r"].outputs[("Sink", "output")])
                    if got != args.items:
                        raise SystemExit(f"{m}: lost items, the sink saw {got} of {args.items}")
                    rates[m].append(args.items / dt)
            for m, v in rates.items():
                median_line(f"chain {args.items} items, {m} -n {n}", v, "items/s", "{:,.0f}")
        if args.arrays:
            nbytes = 2**20
            rates = {m: [] for m in mappings}
            for _ in range(args.repeat):
                for m, kw in mappings.items():
                    res = {}
                    dt = timed(lambda: res.update(r=run(array_graph(args.arrays, nbytes), **kw)))
                    got = res["r"].outputs[("ArraySink", "output")][0][0]
                    if got != args.arrays:
                        raise SystemExit(f"{m}: lost arrays, {got} of {args.arrays}")
                    rates[m].append(args.arrays * nbytes / dt / 1e9)
            for m, v in rates.items():
                median_line(f"arrays {args.arrays} x 1 MB, {m} -n {n}", v, "GB/s")
        if not args.no_workflow:
            workflow(args, mappings, cluster)
    finally:
        cluster.close()
    return 0


def workflow(args, mappings, cluster):
    from noisecorr.workflow import load_config, run_workflow
    from noisecorr.workflow.sources import resolve

    n = args.processes
    base = {"stations": args.stations, "synthetic_hours": args.hours, "processes": n}
    with tempfile.TemporaryDirectory(prefix="bench_dask_") as tmp:
        t0 = time.perf_counter()
        resolve(load_config(overrides={**base, "out": f"{tmp}/gen"}))  # generate the network once
        print(f"synthetic network {args.stations} stations x {args.hours:g} h ready in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        walls = {m: [] for m in mappings}
        pairs = args.stations * (args.stations - 1) // 2
        for k in range(args.repeat):
            for m, kw in mappings.items():
                config = load_config(overrides={**base, "mapping": kw["mapping"], "out": f"{tmp}/{m}-{k}"})
                options = {"scheduler": kw["scheduler"]} if "scheduler" in kw else None
                report = {}
                dt = timed(lambda: report.update(r=run_workflow(config, mapping_options=options)))
                if report["r"].pairs_written != pairs:
                    raise SystemExit(f"{m}: {report['r'].pairs_written} pairs written of {pairs}")
                walls[m].append(dt)
        med = {m: median_line(f"workflow {args.stations} x {args.hours:g} h, {m} -n {n}", v, "s") for m, v in
               walls.items()}
        print(f"workflow dask / multiprocess: {med['dask'] / med['multiprocess']:.2f} "
              f"(warm cluster: {med['dask-warm'] / med['multiprocess']:.2f}; target <= 1.20)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
