#!/usr/bin/env python
"""noisecorr's engine beside dispel4py 1.2.1 on the same 3-PE chain, in the same run.

dispel4py lives in its own virtual environment outside the project (see
``../shared/peers/README.md``)::

    python3 -m venv /tmp/peer-d4p && /tmp/peer-d4p/bin/pip install dispel4py==1.2.1 mpi4py mpich
    python scripts/bench_engine_vs_dispel4py.py --peer-python /tmp/peer-d4p/bin/python

Each configuration runs ``--repeat`` times, noisecorr and dispel4py interleaved so both see
the same machine load; the medians (items/s, wall clock including process start-up) are
printed side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_SCRIPT = ROOT.parent / "shared" / "peers" / "dispel4py" / "bench_pipeline.py"

#: (label, noisecorr mapping, processes, dispel4py mapping, processes)
CONFIGS = [
    ("sequential", "sequential", None, "simple", None),
    ("multiprocess -n 2", "multiprocess", 2, "multi", 2),
    ("multiprocess -n 3", "multiprocess", 3, "multi", 3),
    ("mpi -n 3", "mpi", 3, "mpi", 3),
]


def _ours(mapping, n, items):
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_engine.py"), "--mapping", mapping, "--items", str(items),
           "--repeat", "1"]
    if mapping == "mpi":
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(n)] + cmd
    elif n:
        cmd += ["-n", str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    m = re.search(r"median ([\d,]+) items/s", out.stdout)
    if not m:
        return None, (out.stdout + out.stderr)[-300:]
    return float(m.group(1).replace(",", "")), None


def _peer(python, mapping, n, items):
    cmd = [python, str(PEER_SCRIPT), "--mapping", mapping, "-N", str(items)]
    env = dict(os.environ)
    if mapping == "multi":
        cmd += ["-n", str(n)]
    if mapping == "mpi":
        cmd = [str(Path(python).parent / "mpiexec"), "-n", str(n), "env", "PYTHONHASHSEED=0"] + cmd
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    m = re.search(r"items/s=(\d+)", out.stdout)
    if not m:
        return None, (out.stdout + out.stderr)[-300:].replace("\n", " ")
    return float(m.group(1)), None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-python", required=True, help="python of the dispel4py virtual environment")
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"{'configuration':<20}{'noisecorr items/s':>20}{'dispel4py 1.2.1 items/s':>26}   ratio")
    for label, ours_map, ours_n, peer_map, peer_n in CONFIGS:
        ours, peer, notes = [], [], []
        for _ in range(args.repeat):
            rate, err = _ours(ours_map, ours_n, args.items)
            ours.append(rate) if rate else notes.append(f"noisecorr: {err}")
            rate, err = _peer(args.peer_python, peer_map, peer_n, args.items)
            peer.append(rate) if rate else notes.append(f"dispel4py: {err}")
        o = statistics.median(ours) if ours else None
        p = statistics.median(peer) if peer else None
        ratio = f"{o / p:6.1f}x" if o and p else "   n/a"
        print(f"{label:<20}{o or 0:>20,.0f}{p or 0:>26,.0f}   {ratio}")
        for note in sorted(set(notes))[:2]:
            print(f"    {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
