"""Benchmark the results HDF5 writer and reader.

Writes ``--pairs`` stacks (``--maxlag`` s at 20 Hz, float32; the default
200 s gives 8001 samples) from synthetic stations, either in batches through
``ResultsWriter.write_block`` (``--api block``, as the tiled correlation does)
or pair by pair through ``write_many`` (``--api pair``), checkpoints and the
final merge included, then times opening the file and reading one pair
(stack and metadata). Prints medians over ``--repeat`` runs.

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

FS = 20.0


def run(n_pairs, maxlag, compression, batch, api, tmpdir):
    n = 2 * int(round(maxlag * FS)) + 1
    n_sta = int(np.ceil((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    stations = [{"code": f"XS.S{i:04d}", "latitude": 47 + i * 1e-3,
                 "longitude": 10 + i * 1e-3, "elevation": 0.0} for i in range(n_sta)]
    codes = [s["code"] for s in stations]
    pairs = list(itertools.islice(itertools.combinations(codes, 2), n_pairs))
    rng = np.random.default_rng(0)
    block = rng.standard_normal((batch, n)).astype(np.float32)
    path = Path(tmpdir) / f"bench_{compression}.h5"
    meta = {"n_windows": 48, "starttime": "2024-01-01T00:00:00",
            "endtime": "2024-01-02T00:00:00"}
    t0 = time.perf_counter()
    with ResultsWriter(path, {"cc_len": 1800}, version="bench", stations=stations,
                       sampling_rate=FS, compression=compression,
                       checkpoint_pairs=batch) as w:
        for i in range(0, len(pairs), batch):
            chunk = pairs[i:i + batch]
            if api == "block":
                w.write_block([p[0] for p in chunk], [p[1] for p in chunk], "ZZ", maxlag,
                              block[:len(chunk)], dict(meta, n_windows=np.full(len(chunk), 48)))
            else:
                w.write_many((s, r, "ZZ", maxlag, block[k], meta)
                             for k, (s, r) in enumerate(chunk))
        t_merge = time.perf_counter()
    t_merge = time.perf_counter() - t_merge
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open_results(path) as res:
        t_open = time.perf_counter() - t0
        t1 = time.perf_counter()
        res.stack(*pairs[len(pairs) // 2])
        res.meta(*pairs[len(pairs) // 2])
        t_one = time.perf_counter() - t1
        warm = []
        for k in rng.integers(0, len(pairs), 20):
            t1 = time.perf_counter()
            res.stack(*pairs[k])
            res.meta(*pairs[k])
            warm.append(time.perf_counter() - t1)
    size = path.stat().st_size
    path.unlink()
    return t_write, t_merge, t_open, t_one, size, statistics.median(warm)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--maxlag", type=float, default=200.0)
    ap.add_argument("--compression", default=None, choices=[None, "gzip", "lzf"])
    ap.add_argument("--batch", type=int, default=2000,
                    help="pairs per write_block call and per checkpoint part")
    ap.add_argument("--api", default="block", choices=["block", "pair"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="folder for the files (default: a temporary one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        res = [run(args.pairs, args.maxlag, args.compression, args.batch, args.api, tmp)
               for _ in range(args.repeat)]
    w = statistics.median(r[0] for r in res)
    print(f"pairs={args.pairs} n_lags={2 * int(round(args.maxlag * FS)) + 1} api={args.api} "
          f"compression={args.compression} median of {args.repeat}: "
          f"write_s={w:.2f} (runs: {', '.join(f'{r[0]:.2f}' for r in res)}) "
          f"pairs/s={args.pairs / w:.0f} (end to end, merge included) "
          f"merge_s={statistics.median(r[1] for r in res):.2f} "
          f"open_ms={1e3 * statistics.median(r[2] for r in res):.1f} "
          f"read_one_ms={1e3 * statistics.median(r[3] for r in res):.2f} (stack + meta, first after "
          f"open) then {1e3 * statistics.median(r[5] for r in res):.2f} (median of 20 others) "
          f"file_MB={res[0][4] / 1e6:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
