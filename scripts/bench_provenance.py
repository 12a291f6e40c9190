#!/usr/bin/env python
"""Provenance overhead on the sample workflow: ``noisecorr run`` with and without it.

Runs ``noisecorr run`` on the bundled sample stations ``--repeat`` times each way (fresh
output folders, alternating so machine load hits both alike), prints the median wall time
of each and the overhead in percent. The requirement is at most 10 %.

Usage::

    python scripts/bench_provenance.py [--repeat 3] [--mapping sequential] [-n N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def once(out, provenance, mapping, processes):
    cmd = [sys.executable, "-m", "noisecorr", "-q", "run", "--out", str(out), "--mapping", mapping]
    if processes:
        cmd += ["-n", str(processes)]
    if provenance:
        cmd.append("--provenance")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mapping", default="sequential")
    ap.add_argument("-n", "--processes", type=int)
    args = ap.parse_args(argv)
    times = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        once(Path(tmp) / "warm", False, args.mapping, args.processes)  # caches, imports
        for i in range(args.repeat):
            for prov in (False, True):
                times[prov].append(once(Path(tmp) / f"{i}-{prov}", prov, args.mapping, args.processes))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"mapping {args.mapping}: without provenance median {off:.2f} s {['%.2f' % t for t in times[False]]}")
    print(f"mapping {args.mapping}: with provenance    median {on:.2f} s {['%.2f' % t for t in times[True]]}")
    print(f"overhead {100 * (on - off) / off:+.1f} % (median of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
