"""Benchmark reads of per-chunk series (``keep: chunks``) as the number of pairs grows.

For each ``--pairs`` size it writes a results file of that many pairs, each with a series
of ``--chunks`` chunks of ``--lags`` lags (the sub-stack layout: row 0 the full stack, one
row per chunk, one chunk a gap), then, in a fresh open of the file each time, times:

* ``open + series``: opening the file and reading one pair's series
  (``Results.series``: a search of the sorted index, no scan), the pair drawn at random;
* ``open + stack`` (baseline, same run): opening and reading one pair's full stack;
* ``series_many``: iterating every pair's series (per pair).

Prints the median of ``--repeat`` runs (>= 3) per figure. Reads of one pair should stay
flat in the number of pairs (within noise); a scan would grow linearly.

Example::

    .venv/bin/python scripts/bench_series.py --pairs 1000 10000 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noisecorr.results import ResultsWriter, open_results  # noqa: E402
from noisecorr.results.substacks import pack  # noqa: E402

FS = 10.0


def write(path: Path, n_pairs: int, n_chunks: int, n_lags: int, compression) -> list:
    n_sta = int(np.ceil((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    codes = [f"XS.S{i:05d}" for i in range(n_sta)]
    pairs = [(a, b) for i, a in enumerate(codes) for b in codes[i + 1:]][:n_pairs]
    counts = [3] * n_chunks
    counts[n_chunks // 2] = 0
    starts = [86400.0 * k for k in range(n_chunks)]
    _, layout = pack({"stack": np.zeros(n_lags), "substacks": np.zeros((n_chunks, n_lags)),
                      "substack_starts": starts, "substack_counts": counts, "substack_len": 86400.0})
    maxlag = (n_lags // 2) / FS
    rng = np.random.default_rng(0)
    with ResultsWriter(path, {}, sampling_rate=FS, compression=compression) as w:
        for q in range(0, n_pairs, 5000):
            part = pairs[q:q + 5000]
            rows = rng.standard_normal((len(part), 1 + n_chunks, n_lags)).astype(np.float32)
            w.write_block([p[0] for p in part], [p[1] for p in part], "ZZ", maxlag, rows,
                          {"n_windows": sum(counts), **layout})
    return pairs


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--chunks", type=int, default=30)
    ap.add_argument("--lags", type=int, default=401)
    ap.add_argument("--compression", choices=["gzip", "lzf"], default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--many", action="store_true", help="also time series_many over every pair")
    args = ap.parse_args(argv)
    if args.repeat < 3:
        ap.error("--repeat must be >= 3 (medians)")
    print(f"{'pairs':>8} {'write s':>9} {'open+series ms':>15} {'open+stack ms':>14} {'series_many us/pair':>20}")
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.pairs:
            path = Path(tmp) / f"series_{n}.h5"
            t = time.perf_counter()
            pairs = write(path, n, args.chunks, args.lags, args.compression)
            t_write = time.perf_counter() - t

            def one(kind):
                a, b = pairs[int(rng.integers(len(pairs)))]
                with open_results(path) as res:
                    out = res.series(a, b, "ZZ") if kind == "series" else res.stack(a, b, "ZZ")
                assert out is not None

            t_series = median_time(lambda: one("series"), args.repeat)
            t_stack = median_time(lambda: one("stack"), args.repeat)
            many = ""
            if args.many:
                def all_pairs():
                    with open_results(path) as res:
                        k = sum(1 for _ in res.series_many("ZZ"))
                    assert k == n

                many = f"{1e6 * median_time(all_pairs, args.repeat) / n:20.1f}"
            print(f"{n:8d} {t_write:9.2f} {1e3 * t_series:15.2f} {1e3 * t_stack:14.2f} {many:>20}")
            path.unlink()


if __name__ == "__main__":
    main()
