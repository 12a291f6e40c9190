"""Run the conformance suite, unchanged, on the MPI mapping: every case on every rank.

::

    mpiexec -n 3 python -m noisecorr.testing.mpi_conformance [-k SUBSTRING]

Every rank enacts every case with ``mapping="mpi"`` (the mapping is collective). On rank 0,
:func:`~noisecorr.testing.conformance.run_case` checks the result and compares it with the
sequential mapping's answer; on the other ranks ``run`` must return ``None``, and a case that
must fail must raise the same :class:`PEError` on every rank. Rank 0 then prints one line per
case and a summary line::

    mpi conformance: 3 ranks, 16 passed, 0 failed

and the exit status is 0 only when every case passed on every rank.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from noisecorr.testing.conformance import CASES, enact, run_case


def run_on_this_rank(case, rank):
    """Run ``case`` as this rank's share of the collective; return ``None`` or a failure text."""
    try:
        if rank == 0:
            reference = None if case.raises is not None else enact(case, "sequential")
            run_case(case, "mpi", reference=reference)
            return None
        if case.raises is not None:
            try:
                enact(case, "mpi")
            except case.raises as err:
                case.check_error(err)
                return None
            return f"expected {case.raises.__name__}, the run succeeded"
        result = enact(case, "mpi")
        if result is not None:
            return f"run() returned {type(result).__name__} on rank {rank}; expected None off rank 0"
        return None
    except Exception:
        return traceback.format_exc()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", "--select", default="", help="only cases whose name contains this text")
    ap.add_argument("-v", "--verbose", action="store_true", help="rank 0 names each case as it starts (stderr)")
    args = ap.parse_args(argv)

    from mpi4py import MPI

    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    cases = [c for c in CASES if args.select in c.name]
    rows = []
    for case in cases:
        if args.verbose and rank == 0:
            print(f"running {case.name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        failure = run_on_this_rank(case, rank)
        rows.append((case.name, failure, time.perf_counter() - t0))
    everyone = world.gather(rows, root=0)
    if rank != 0:
        return 0 if all(f is None for _, f, _ in rows) else 1
    failed = 0
    for i, case in enumerate(cases):
        failures = [(r, everyone[r][i][1]) for r in range(size) if everyone[r][i][1] is not None]
        seconds = everyone[0][i][2]
        if failures:
            failed += 1
            print(f"FAIL {case.name} ({seconds:.2f} s)")
            for r, text in failures:
                print(f"  rank {r}: " + text.rstrip().replace("\n", "\n    "))
        else:
            print(f"PASS {case.name} ({seconds:.2f} s)")
    print(f"mpi conformance: {size} ranks, {len(cases) - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
