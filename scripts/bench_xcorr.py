"""Benchmark the block-tiled correlation stage end to end.

Stages (each timed; synthetic generation is reported but excluded from the total):

1. synthetic records, in memory: ``--input synth`` uses :class:`noisecorr.synth.SyntheticNetwork`
   (the physical noise field; slow for 1,000 stations x 24 h), ``--input noise`` independent
   white noise per station from numpy (same processing cost downstream, no known answer);
2. spectra: :func:`noisecorr.signal.chain.station_spectra` (windows, taper, rfft,
   whitening) and :func:`noisecorr.tiles.station_factors` (in-band factors), run over
   ``-n`` processes; the in-band factors go to a scratch memory-mapped file (what a spectra
   store would hold), generation and spectra share the processes, their times are split by
   the time measured in each;
3. the engine graph ``FactorSource -> TileRoutePE -> TileCorrelatePE -> TileStackPE ->
   WriteResultsPE`` with ``--mapping`` and ``-n`` processes, arranged as the workflow does
   (stacks and writers local to the worker that correlated them, one part file set per
   worker): cross-spectra (BLAS-3), inverse FFT, block assembly and the one-time fault-in
   of each worker's cross-spectra buffer ("cross-spectra buffer") are timed inside the PEs
   (per-worker seconds; the stage figure is the busiest worker's);
4. the merge of the writers' part files into one results file (``--no-write``: a local sink
   that drops the stacks instead, neither writing nor merging).

The cross-spectral GFLOP/s are compared with a large complex64 ``np.matmul`` measured in
the same run with the same BLAS threads per worker. Peak RSS: this process and the largest
child (``RUSAGE_CHILDREN``); their sum bounds the total.

Example::

    env -u OPENBLAS_CORETYPE .venv/bin/python scripts/bench_xcorr.py --stations 100 --hours 24 \\
        --mapping multiprocess -n 2 --memory 8GB --repeat 3
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noisecorr.engine import ProducerPE, WorkflowGraph, run  # noqa: E402
from noisecorr.signal.chain import station_spectra  # noqa: E402
from noisecorr.signal.params import CorrelationParams  # noqa: E402
from noisecorr.signal.preprocess import ProcessedTrace  # noqa: E402
from noisecorr.tiles import carried_band, format_bytes, plan_tiles, station_factors  # noqa: E402
from pes.tiles import TileCorrelatePE, TileRoutePE, TileStackPE  # noqa: E402
from pes.write import WriteResultsPE  # noqa: E402

PARAMS = dict(sampling_rate=20.0, cc_len=1800.0, step=1800.0, freqmin=0.05, freqmax=2.0,
              maxlag=200.0, stack_method="linear", max_over_std=np.inf)


def _codes(n):
    return [f"XS.S{k + 1:04d}" for k in range(n)]


def _spectra_worker(args):
    """Generate stations ``idx`` and write their in-band factors into the memmap."""
    idx, n_st, hours, source, seed, path, shape = args
    p = CorrelationParams(**PARAMS)
    fs = p.sampling_rate
    n = int(round(hours * 3600 * fs))
    store = np.lib.format.open_memmap(path, mode="r+")
    t_gen = t_spec = 0.0
    net = None
    t0 = time.perf_counter()
    if source == "synth":
        from noisecorr.synth import SyntheticNetwork

        net = SyntheticNetwork(n_stations=n_st, seed=seed, n_sources=200, chunk_length=3600.0,
                               chunks_per_batch=max(1, int(np.ceil(hours))), station_block=16)
        blocks = (b for b in net.iter_batches(0.0, hours * 3600.0, stations=idx, output="VEL"))
    else:
        blocks = iter([None])
    t_gen += time.perf_counter() - t0
    starts = None
    pos = 0
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(blocks)
        except StopIteration:
            break
        if batch is None:  # white noise, station by station
            rows = [np.random.default_rng([seed, int(k)]).standard_normal(n, dtype=np.float32)
                    for k in idx]
        else:
            rows = list(batch.data[:, 0])
        t_gen += time.perf_counter() - t0
        t0 = time.perf_counter()
        for x in rows:
            k = idx[pos]
            pos += 1
            s = station_spectra(ProcessedTrace(f"XS.S{k + 1:04d}..BHZ", 0.0, fs, x,
                                               np.zeros(x.size, bool)), p)
            rcv, _, _ = station_factors(s.spectra, p, s.nfft)
            store[k] = rcv
            starts = s.starttimes
        t_spec += time.perf_counter() - t0
    store.flush()
    return t_gen, t_spec, starts


class FactorSource(ProducerPE):
    """Yields station ``i``'s pre-computed in-band factors from the scratch memmap."""

    def __init__(self, path, starttimes, band, nfft):
        super().__init__()
        self.path, self.starttimes, self.band, self.nfft = str(path), starttimes, band, nfft
        self.store = None
        self.i = 0

    def _process(self, inputs):
        if self.store is None:
            self.store = np.load(self.path, mmap_mode="r")
        i = self.i
        self.i += 1
        return {"seed_id": f"XS.S{i + 1:04d}..BHZ", "chunk": 0.0, "rcv": np.array(self.store[i]),
                "src": None, "band": self.band, "starttimes": self.starttimes,
                "sampling_rate": 20.0, "nfft": self.nfft}


class Discard(ProducerPE.__mro__[1]):  # GenericPE
    """Counts the pairs it receives (``--no-write``)."""

    def __init__(self):
        super().__init__()
        self.name = "WriteResults"
        self._add_input("input")
        self._add_output("output")
        self.n = 0

    def process(self, inputs):
        self.n += len(inputs["input"]["keys"])

    def postprocess(self):
        self.write("output", ("written", self.n))


def matmul_peak(threads):
    from threadpoolctl import threadpool_limits

    n = 2048
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))).astype(np.complex64)
    with threadpool_limits(threads):
        np.matmul(a, a)
        best = []
        for _ in range(3):
            t = time.perf_counter()
            np.matmul(a, a)
            best.append(8 * n**3 / (time.perf_counter() - t) / 1e9)
    return statistics.median(best)


def once(args, tmp):
    p = CorrelationParams(**PARAMS)
    nfft = p.nfft
    band = carried_band(p, nfft)
    nb = band.stop - band.start
    n_win = int((args.hours * 3600 - p.cc_len) // p.step) + 1
    path = Path(tmp) / "factors.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.complex64, shape=(args.stations, n_win, nb))
    # -- stages 1 + 2: synthetic records and spectra over n processes
    idx = np.arange(args.stations)
    parts = np.array_split(idx, max(1, args.n))
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(args.n) as pool:
        res = list(pool.map(_spectra_worker, [(part, args.stations, args.hours, args.input, 1,
                                                str(path), None) for part in parts if len(part)]))
    wall12 = time.perf_counter() - t0
    gen = sum(r[0] for r in res)
    spec = sum(r[1] for r in res)
    t_synth = wall12 * gen / (gen + spec)
    t_spectra = wall12 * spec / (gen + spec)
    starts = res[0][2]
    # -- stage 3: the tiled graph
    plan = plan_tiles(args.stations, n_win, nb, nfft, 2 * p.maxlag_samples + 1, args.memory,
                      workers=args.n if args.mapping != "sequential" else 1, store=args.store,
                      block_size=args.block)
    stations = [c + "." for c in _codes(args.stations)]
    src = FactorSource(path, starts, (band.start, band.stop), nfft)
    route = TileRoutePE(p, stations, plan)
    blas = 1 if args.mapping != "sequential" else None
    corr = TileCorrelatePE(p, stations, plan, blas_threads=blas, scratch=tmp)
    stack = TileStackPE(p, n_chunks=1)
    workers = plan.workers
    if args.write:
        coords = {c: {"latitude": 0.0, "longitude": 0.01 * k, "elevation": 0.0}
                  for k, c in enumerate(_codes(args.stations))}
        sink = WriteResultsPE(Path(tmp) / "results.h5", p.to_dict(), coords, "2024-01-01",
                              "2024-01-02", name="WriteResults")
        sink.parallel = True
    else:
        sink = Discard()
    # as the workflow: stacks stacked and written where they were correlated
    stack.numprocesses = sink.numprocesses = workers
    g = WorkflowGraph()
    g.connect(src, "output", route, "input")
    g.connect(route, "output", corr, "input")
    g.connect(corr, "output", stack, "input", grouping="local")
    g.connect(stack, "output", sink, "input", grouping="local")
    t0 = time.perf_counter()
    out = run(g, inputs={src: args.stations}, mapping=args.mapping,
              processes=None if args.mapping == "sequential" else args.n)
    wall3 = time.perf_counter() - t0
    t0 = time.perf_counter()
    if args.write:
        from noisecorr.results import merge_parts

        merge_parts(Path(tmp) / "results.h5")
    merge = time.perf_counter() - t0
    written = sum(n for what, n in out.outputs[("WriteResults", "output")] if what == "written")
    assert written == args.stations * (args.stations - 1) // 2, written
    stats = out.outputs[("TileCorrelatePE", "stats")]
    xs = max(s["seconds"]["cross_spectra"] for s in stats)
    ifft = max(s["seconds"]["inverse_fft"] for s in stats)
    asm = max(s["seconds"]["assemble"] for s in stats)
    alloc = max(s["seconds"]["allocate"] for s in stats)
    gflops = sum(s["flops"] / max(s["seconds"]["cross_spectra"], 1e-9) for s in stats) / 1e9
    spilled = sum(s["spilled_bytes"] for s in stats)
    return dict(synth=t_synth, spectra=t_spectra, allocate=alloc, assemble=asm, cross=xs, ifft=ifft, spilled=spilled,
                merge=merge, graph=wall3, total=t_spectra + wall3 + merge, gflops=gflops,
                plan=plan, n_win=n_win, nb=nb)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--mapping", default="multiprocess", choices=["sequential", "multiprocess"])
    ap.add_argument("-n", type=int, default=2, help="processes (spectra stage and mapping)")
    ap.add_argument("--memory", default="8GB", help="budget of the correlation stage (no process overhead)")
    ap.add_argument("--store", choices=["memory", "disk"], help="force where workers keep factors")
    ap.add_argument("--block", type=int, help="force the block size")
    ap.add_argument("--input", default="synth", choices=["synth", "noise"])
    ap.add_argument("--no-write", dest="write", action="store_false")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_info

    kernel = ", ".join(f"{i.get('internal_api')} {i.get('architecture')} x{i.get('num_threads')}"
                       for i in threadpool_info())
    per_worker_threads = 1 if args.mapping != "sequential" else None
    peak_one = matmul_peak(1)
    peak_all = matmul_peak(per_worker_threads or 2)
    peak = peak_one * args.n if args.mapping != "sequential" else peak_all
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=".") as tmp:
            runs.append(once(args, tmp))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], float)}
    r0 = runs[0]
    pairs = args.stations * (args.stations - 1) // 2
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(f"stations={args.stations} pairs={pairs} windows={r0['n_win']} in_band_bins={r0['nb']} "
          f"hours={args.hours} input={args.input} mapping={args.mapping} n={args.n} "
          f"memory={args.memory} block={r0['plan'].block_size} panel={r0['plan'].panel_size} "
          f"store={r0['plan'].store} spilled={format_bytes(r0['spilled'])} tiles={len(r0['plan'].tiles)} "
          f"predicted_peak/worker={format_bytes(r0['plan'].peak_bytes)}")
    print(f"BLAS: {kernel}; matmul complex64 2048^3: 1 thread {peak_one:.0f} GFLOP/s, "
          f"{per_worker_threads or 2} thread(s) {peak_all:.0f} GFLOP/s; reference for this run "
          f"{peak:.0f} GFLOP/s")
    print(f"medians of {args.repeat} (s): synthetic {med['synth']:.1f} (excluded) | spectra "
          f"{med['spectra']:.1f} | cross-spectra buffer {med['allocate']:.1f} | tile assembly "
          f"{med['assemble']:.1f} | cross-spectra "
          f"{med['cross']:.1f} | inverse FFT {med['ifft']:.1f} | graph wall (correlate, stack, "
          f"write) {med['graph']:.1f} | merge {med['merge']:.1f} | total (spectra + graph + merge) "
          f"{med['total']:.1f}")
    totals = ", ".join(f"{r['total']:.1f}" for r in runs)
    print(f"runs total: {totals}; pair-windows/s "
          f"{pairs * r0['n_win'] / med['total']:.3g}; cross-spectra {med['gflops']:.0f} GFLOP/s = "
          f"{100 * med['gflops'] / peak:.0f}% of the measured matmul peak")
    print(f"peak RSS: this process {format_bytes(self_rss)}, largest child {format_bytes(child_rss)}"
          f" (sum {format_bytes(self_rss + child_rss)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
