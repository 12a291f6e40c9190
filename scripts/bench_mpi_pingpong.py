#!/usr/bin/env python
"""Raw mpi4py ping-pong bandwidth between rank 0 and rank 1: the ceiling for the engine.

Rank 0 sends a buffer of ``--mb`` MB with ``Send``, rank 1 receives it into a preallocated
``bytearray`` with ``Recv`` and sends it back; bandwidth counts the bytes moved one way per
unit of time (2 x size per round trip). Ranks above 1 (if any) wait idle, so the figure can
be compared with ``scripts/bench_engine.py --arrays`` run with the same ``mpiexec -n``.
Prints the median of ``--repeat`` measurements of ``--iters`` round trips each, on rank 0.

Usage::

    mpiexec -n 2 python scripts/bench_mpi_pingpong.py --mb 1 --iters 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def pingpong(comm, nbytes, iters):
    """Return the one-way bandwidth in GB/s of ``iters`` round trips of ``nbytes`` bytes."""
    from mpi4py import MPI

    rank = comm.Get_rank()
    buf = bytearray(nbytes)
    recv = bytearray(nbytes)
    comm.Barrier()
    t0 = time.perf_counter()
    if rank == 0:
        for _ in range(iters):
            comm.Send([buf, MPI.BYTE], 1, 7)
            comm.Recv([recv, MPI.BYTE], 1, 7)
    elif rank == 1:
        for _ in range(iters):
            comm.Recv([recv, MPI.BYTE], 0, 7)
            comm.Send([recv, MPI.BYTE], 0, 7)
    dt = time.perf_counter() - t0
    comm.Barrier()
    return 2 * iters * nbytes / dt / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=1.0, help="message size in MB (2**20 bytes)")
    ap.add_argument("--iters", type=int, default=200, help="round trips per measurement")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    from mpi4py import MPI

    comm = MPI.COMM_WORLD.Dup()
    if comm.Get_size() < 2:
        raise SystemExit("run under mpiexec -n 2 (or more)")
    nbytes = int(args.mb * 2**20)
    pingpong(comm, nbytes, max(1, args.iters // 10))  # warm-up: connections, page faults
    rates = [pingpong(comm, nbytes, args.iters) for _ in range(args.repeat)]
    if comm.Get_rank() == 0:
        print(
            f"pingpong mpi4py n={comm.Get_size()} {args.mb} MB x {args.iters} round trips: "
            f"median {statistics.median(rates):.2f} GB/s (runs: {', '.join(f'{r:.2f}' for r in rates)})"
        )
    comm.Free()
    return 0


if __name__ == "__main__":
    sys.exit(main())
