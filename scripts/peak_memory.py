"""Run a command and report the peak memory of its whole process tree.

Samples every ``--interval`` seconds the proportional set size (PSS, from
``/proc/PID/smaps_rollup``: shared pages are split between the processes that map them, so
the sum over processes is the memory the run really holds) and the RSS of every process
descended from the command (MPI ranks, multiprocess workers, ``mpiexec`` itself). Prints the
peak of the sum, the largest single process and when each happened; ``--csv`` writes the
timeline. Page cache (files written and read, e.g. spilled spectra or results.h5) is not
process memory and is not counted.

Example::

    .venv/bin/python scripts/peak_memory.py --csv mem.csv -- \\
        .venv/bin/noisecorr run --stations 1000 --mapping mpi -n 2 --memory 8GB
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def _children(pid: int) -> list:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def tree(pid: int) -> list:
    """``pid`` and all its descendants."""
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def memory(pid: int) -> tuple:
    """(pss, rss) in bytes, or (0, 0) if the process is gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return pss, rss


def _name(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    except OSError:
        return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=0.25)
    ap.add_argument("--csv", help="write the timeline (seconds, total PSS, largest PSS) here")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("give the command after --")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak_total = (0, 0.0)
    peak_one = (0, 0.0, "")
    rows = []
    while True:
        done = proc.poll() is not None
        t = time.perf_counter() - t0
        mem = {p: memory(p) for p in tree(proc.pid)}
        total = sum(m[0] for m in mem.values())
        if total > peak_total[0]:
            peak_total = (total, t)
        if mem:
            pid, (pss, _) = max(mem.items(), key=lambda kv: kv[1][0])
            if pss > peak_one[0]:
                peak_one = (pss, t, _name(pid))
            rows.append((t, total, pss))
        if done:
            break
        time.sleep(args.interval)
    wall = time.perf_counter() - t0
    print(f"peak_memory: exit {proc.returncode}, wall {wall:.1f} s; peak total PSS "
          f"{peak_total[0] / 1e9:.2f} GB at {peak_total[1]:.0f} s; largest process "
          f"{peak_one[0] / 1e9:.2f} GB at {peak_one[1]:.0f} s ({peak_one[2]})", file=sys.stderr)
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("seconds,total_pss_bytes,largest_pss_bytes\n")
            for t, total, one in rows:
                f.write(f"{t:.2f},{total},{one}\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
