"""Benchmark the results HDF5 writer and reader.

Writes ``--pairs`` stacks (``--maxlag`` s at 20 Hz, float32) from ``--stations``
synthetic stations through ``ResultsWriter.write_many`` (checkpoints and the
final merge included), then times opening the file and reading one pair.

Example::

    .venv/bin/python scripts/bench_results.py --pairs 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noisecorr.results import ResultsWriter, open_results  # noqa: E402


def run(n_pairs, maxlag, compression, batch, tmpdir):
    fs = 20.0
    n = 2 * int(round(maxlag * fs)) + 1
    n_sta = int(np.ceil((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    stations = [{"code": f"XS.S{i:04d}", "latitude": 47 + i * 1e-3,
                 "longitude": 10 + i * 1e-3, "elevation": 0.0} for i in range(n_sta)]
    codes = [s["code"] for s in stations]
    pairs = list(itertools.islice(itertools.combinations(codes, 2), n_pairs))
    rng = np.random.default_rng(0)
    stack = rng.standard_normal(n).astype(np.float32)
    path = Path(tmpdir) / f"bench_{compression}.h5"
    t0 = time.perf_counter()
    with ResultsWriter(path, {"cc_len": 1800}, version="bench", stations=stations,
                       sampling_rate=fs, compression=compression,
                       checkpoint_pairs=batch) as w:
        for i in range(0, len(pairs), batch):
            w.write_many((s, r, "ZZ", maxlag, stack,
                          {"n_windows": 48, "starttime": "2024-01-01T00:00:00",
                           "endtime": "2024-01-02T00:00:00"})
                         for s, r in pairs[i:i + batch])
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open_results(path) as res:
        t_open = time.perf_counter() - t0
        t1 = time.perf_counter()
        res.stack(*pairs[len(pairs) // 2])
        t_one = time.perf_counter() - t1
    size = path.stat().st_size
    path.unlink()
    return t_write, t_open, t_one, size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--maxlag", type=float, default=60.0)
    ap.add_argument("--compression", default=None, choices=[None, "gzip", "lzf"])
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        res = [run(args.pairs, args.maxlag, args.compression, args.batch, tmp)
               for _ in range(args.repeat)]
    w = statistics.median(r[0] for r in res)
    print(f"pairs={args.pairs} n_lags={2 * int(round(args.maxlag * 20)) + 1} "
          f"compression={args.compression} write_s={w:.2f} "
          f"(runs: {', '.join(f'{r[0]:.2f}' for r in res)}) pairs/s={args.pairs / w:.0f} "
          f"open_ms={1e3 * statistics.median(r[1] for r in res):.1f} "
          f"read_one_ms={1e3 * statistics.median(r[2] for r in res):.2f} "
          f"file_MB={res[0][3] / 1e6:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
