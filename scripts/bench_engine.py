#!/usr/bin/env python
"""Engine throughput benchmark: small items through a 3-PE chain, and 1 MB numpy arrays.

Chain (the same as ``shared/peers/dispel4py/bench_pipeline.py``)::

    NumberSource (writes N ints) -> Doubler -> Sink

Prints items/s over the whole enactment (wall clock, process start-up included), the
median of ``--repeat`` runs. ``--arrays K`` also pushes K arrays of ``--array-mb`` MB
through ArraySource -> Touch -> ArraySink and prints GB/s.

Usage::

    python scripts/bench_engine.py --mapping sequential --items 200000
    python scripts/bench_engine.py --mapping multiprocess -n 2 --items 200000 --arrays 200
    mpiexec -n 3 python scripts/bench_engine.py --mapping mpi --items 200000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from noisecorr.engine import ConsumerPE, IterativePE, ProducerPE, WorkflowGraph, run
from noisecorr.engine.examples import chain_graph


class ArraySource(ProducerPE):
    def __init__(self, n, nbytes):
        super().__init__()
        self.n, self.nbytes = n, nbytes

    def _process(self, inputs):
        import numpy as np

        base = np.ones(self.nbytes // 8)
        for i in range(self.n):
            self.write("output", base * i)  # a new array each time, as a real producer makes


class Touch(IterativePE):
    """Reads one value of each array (forces the data to be mapped) and passes it on."""

    def _process(self, a):
        _ = a[-1]
        return a


class ArraySink(ConsumerPE):
    def __init__(self):
        super().__init__()
        self._add_output("output")
        self.n = 0
        self.nbytes = 0

    def _process(self, a):
        self.n += 1
        self.nbytes += a.nbytes

    def postprocess(self):
        self.write("output", (self.n, self.nbytes))


def array_graph(n, nbytes):
    g = WorkflowGraph()
    src, touch, sink = ArraySource(n, nbytes), Touch(), ArraySink()
    g.connect(src, "output", touch, "input")
    g.connect(touch, "output", sink, "input")
    return g


def is_root(mapping):
    if mapping != "mpi":
        return True
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank() == 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mapping", default="sequential")
    ap.add_argument("-n", "--processes", type=int, default=None)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--arrays", type=int, default=0, help="number of arrays for the bandwidth test")
    ap.add_argument("--array-mb", type=float, default=1.0)
    args = ap.parse_args(argv)

    rates = []
    for _ in range(args.repeat):
        graph = chain_graph(args.items)
        t0 = time.perf_counter()
        result = run(graph, mapping=args.mapping, processes=args.processes)
        dt = time.perf_counter() - t0
        if is_root(args.mapping):
            got = sum(c for c, _ in result.outputs[("Sink", "output")])
            if got != args.items:
                raise SystemExit(f"lost items: sink saw {got} of {args.items}")
        rates.append(args.items / dt)
    if is_root(args.mapping):
        print(
            f"chain mapping={args.mapping} n={args.processes} items={args.items}: "
            f"median {statistics.median(rates):,.0f} items/s over {args.repeat} runs "
            f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )
    if args.arrays:
        nbytes = int(args.array_mb * 2**20) // 8 * 8
        gbps = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = run(array_graph(args.arrays, nbytes), mapping=args.mapping, processes=args.processes)
            dt = time.perf_counter() - t0
            if is_root(args.mapping):
                n, total = result.outputs[("ArraySink", "output")][0]
                if n != args.arrays or total != args.arrays * nbytes:
                    raise SystemExit(f"lost arrays: {n} of {args.arrays}")
            gbps.append(args.arrays * nbytes / dt / 1e9)
        if is_root(args.mapping):
            print(
                f"arrays mapping={args.mapping} n={args.processes} {args.arrays} x {args.array_mb} MB: "
                f"median {statistics.median(gbps):.2f} GB/s (runs: {', '.join(f'{g:.2f}' for g in gbps)})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
