"""Benchmark the synthetic network generator.

Generates ``--stations`` x ``--hours`` of data (float32 counts, streamed
batch by batch and discarded) or, with ``--write DIR``, writes the full SDS
archive, and prints stations, hours, seconds and throughput (MB/s of float32
samples produced, i.e. 4 bytes per sample per channel).

Example::

    .venv/bin/python scripts/bench_synth.py --stations 1000 --hours 24 --repeat 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noisecorr.synth import SyntheticNetwork, write_network  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=100)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--sources", type=int, default=300)  # the generator default
    ap.add_argument("--components", default="Z")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--write", metavar="DIR", help="write an SDS archive into DIR")
    args = ap.parse_args(argv)

    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        if args.write:
            out = Path(args.write)
            shutil.rmtree(out, ignore_errors=True)
            write_network(out, n_stations=args.stations, hours=args.hours, seed=1,
                          n_sources=args.sources, components=args.components)
        else:
            net = SyntheticNetwork(n_stations=args.stations, seed=1,
                                   n_sources=args.sources, components=args.components)
            for _batch in net.iter_batches(0.0, args.hours * 3600.0):
                pass
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    mb = args.stations * len(args.components) * args.hours * 3600 * 20.0 * 4 / 1e6
    mode = "write" if args.write else "generate"
    print(f"mode={mode} stations={args.stations} hours={args.hours} "
          f"sources={args.sources} components={args.components} "
          f"seconds={sec:.1f} (runs: {', '.join(f'{t:.1f}' for t in times)}) "
          f"MB/s={mb / sec:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
