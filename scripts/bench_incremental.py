"""Benchmark a survey that grows day by day: keep: chunks run, append of one day, moving stack.

Steps, each a separate ``noisecorr`` process measured by ``scripts/peak_memory.py`` (wall
seconds and peak PSS of the process tree):

1. ``noisecorr synth --stations N --days D+1`` (cached in ``--cache``, not timed again);
2. ``run --keep chunks`` over days 1..D (the history);
3. baseline, same run: ``run --keep chunks`` of day D+1 alone (one day of computing);
4. ``run --keep chunks --append`` of day D+1 to a fresh copy of the history (the copy is
   not timed), reported also as a ratio to step 3;
5. the cost of the append's rewrite of the whole results file: every object of the
   appended file copied by HDF5 into a new file and fsync'ed (what a rewrite costs at least,
   independent of the computing);
6. ``noisecorr stack --window W --step 1d`` over every pair of the appended file.

Steps 3-6 run ``--repeat`` times (medians printed, >= 3 by default); step 2 once.

Full size (issue 20; about an hour or more on a loaded 2-core machine)::

    .venv/bin/python scripts/bench_incremental.py --stations 100 --days 10 --window 10d

Reduced size (minutes)::

    .venv/bin/python scripts/bench_incremental.py --stations 10 --days 3 --window 2d
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOISECORR = [sys.executable, "-m", "noisecorr", "-q"]
PEAK = [sys.executable, str(ROOT / "scripts" / "peak_memory.py"), "--"]


def day(k: int) -> str:
    return f"2024-01-{k + 1:02d}"


def measured(args, cwd) -> tuple[float, float]:
    """``(wall s, peak total PSS MiB)`` of ``noisecorr args`` under peak_memory.py."""
    proc = subprocess.run(PEAK + NOISECORR + list(args), cwd=cwd, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    line = [ln for ln in text.splitlines() if ln.startswith("peak_memory:")]
    if proc.returncode not in (0, 3) or not line or "exit 0" not in line[-1] and "exit 3" not in line[-1]:
        raise SystemExit(f"noisecorr {' '.join(args)} failed:\n{text[-3000:]}")
    wall = float(re.search(r"wall ([0-9.]+) s", line[-1]).group(1))
    peak = re.search(r"peak total PSS ([0-9.]+) ?([KMG]i?B)", line[-1])
    scale = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}[peak.group(2)[0]]
    return wall, float(peak.group(1)) * scale


def rewrite_seconds(path: Path) -> float:
    """Seconds to copy every object of ``path`` into a new HDF5 file and fsync it."""
    import h5py

    dst = path.with_name("rewrite.h5")
    t = time.perf_counter()
    with h5py.File(path, "r") as src, h5py.File(dst, "w") as out:
        for name in src:
            src.copy(src[name], out, name=name)
        for k, v in src.attrs.items():
            out.attrs[k] = v
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    seconds = time.perf_counter() - t
    dst.unlink()
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=100)
    ap.add_argument("--days", type=int, default=10, help="days of history; one more is appended")
    ap.add_argument("--window", default="10d", help="moving window of the stack step")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "noisecorr_bench_incremental"))
    ap.add_argument("--mapping", default="sequential")
    ap.add_argument("-n", "--processes", type=int, default=None)
    a = ap.parse_args(argv)
    run_opts = ["--mapping", a.mapping] + ([] if a.processes is None else ["-n", str(a.processes)])
    data = Path(a.cache) / f"net_{a.stations}x{a.days + 1}d"
    if not (data / "truth.csv").exists():
        t = time.perf_counter()
        subprocess.run(NOISECORR + ["synth", "--stations", str(a.stations), "--days", str(a.days + 1),
                                    "--out", str(data)], check=True)
        print(f"synth {a.stations} stations x {a.days + 1} days (cached in {data}): "
              f"{time.perf_counter() - t:.1f} s")
    work = Path(tempfile.mkdtemp(prefix="bench_incremental_"))
    try:
        hist = work / "history"
        keep = ["--data", str(data), "--keep", "chunks"] + run_opts
        wall, peak = measured(["run", *keep, "--start", day(0), "--end", day(a.days), "--out", str(hist)], work)
        print(f"history run, {a.days} days:       {wall:8.1f} s  peak {peak:8.0f} MiB")
        rows = {"one day alone": [], "append of one day": [], "rewrite of the file": [],
                f"stack --window {a.window}": []}
        peaks = {k: [] for k in rows}
        for r in range(a.repeat):
            one = work / f"one{r}"
            w, p = measured(["run", *keep, "--start", day(a.days), "--end", day(a.days + 1),
                             "--out", str(one)], work)
            rows["one day alone"].append(w)
            peaks["one day alone"].append(p)
            shutil.rmtree(one)
            grown = work / f"grown{r}"
            shutil.copytree(hist, grown)
            w, p = measured(["run", *keep, "--append", "--end", day(a.days + 1), "--out", str(grown)], work)
            rows["append of one day"].append(w)
            peaks["append of one day"].append(p)
            rows["rewrite of the file"].append(rewrite_seconds(grown / "results.h5"))
            peaks["rewrite of the file"].append(float("nan"))
            w, p = measured(["stack", str(grown), "--window", a.window, "--step", "1d"], work)
            rows[f"stack --window {a.window}"].append(w)
            peaks[f"stack --window {a.window}"].append(p)
            size = (grown / "results.h5").stat().st_size
            shutil.rmtree(grown)
        print(f"{a.stations} stations ({a.stations * (a.stations - 1) // 2} pairs), {a.days} days + 1 "
              f"appended, results {size / 2**20:.0f} MiB; medians of {a.repeat}:")
        for name, values in rows.items():
            pk = [p for p in peaks[name] if p == p]
            mem = f"  peak {statistics.median(pk):8.0f} MiB" if pk else ""
            print(f"  {name:24s} {statistics.median(values):8.2f} s{mem}")
        one = statistics.median(rows["one day alone"])
        app = statistics.median(rows["append of one day"])
        rew = statistics.median(rows["rewrite of the file"])
        print(f"append / one day alone: {app / one:.2f}x; rewrite / append: {rew / app:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
