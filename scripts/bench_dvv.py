#!/usr/bin/env python
"""Benchmark: stretching and MWCS dv/v on pairs x daily correlations.

Default: 1,000 pairs x 365 days, maxlag 120 s at 20 Hz (4,801 lags), coda from twice the
ballistic time for 40 s on both sides, stretch grid of 201 points over +-1 %, MWCS in 10 s
windows every 5 s, 0.2-0.8 Hz. The correlations are built from random decaying coda
references stretched by an imposed dv/v (seasonal, +-0.2 %) with 20 % noise; the script
prints seconds per method (median of ``--repeat`` runs, default 3), the pair-days per second, and the
RMS error against the imposed dv/v as a sanity check, and a baseline timed in the same run
(one real FFT of every correlation, the least work any method does; methods are also
given as multiples of it, which a loaded machine disturbs less than the seconds). The
wavelet cross-spectrum (``--methods wavelet``) is timed the same way. Target (issue 21): under 2 minutes
each on a 2-core machine.

    python scripts/bench_dvv.py                       # the full case (about 7 GB of series)
    python scripts/bench_dvv.py --pairs 100 --days 60 # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noisecorr.signal.dvv import coda_mask, mwcs, stretch_matrix, stretching  # noqa: E402
from noisecorr.signal.dvv_wavelet import wavelet_dvv  # noqa: E402


def make_series(n_pairs: int, n_days: int, fs: float, maxlag: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    L = int(round(maxlag * fs))
    lags = np.arange(-L, L + 1) / fs
    f = np.fft.rfftfreq(lags.size, 1 / fs)
    shape = np.exp(-((f - 0.5) / 0.3) ** 2)
    ref = np.fft.irfft(np.fft.rfft(rng.standard_normal((n_pairs, lags.size)), axis=-1) * shape,
                       lags.size, axis=-1) * np.exp(-np.abs(lags) / 40.0)
    ref = ref.astype(np.float32)
    truth = 0.002 * np.sin(2 * np.pi * np.arange(n_days) / 365.0)
    series = np.empty((n_pairs, n_days, lags.size), dtype=np.float32)
    W = stretch_matrix(lags, truth)                    # (days * lags, lags): one product for all
    # noise: slices of one long band-limited series at random offsets (cheap, independent enough)
    m = 2**22
    fm = np.fft.rfftfreq(m, 1 / fs)
    long = np.fft.irfft(np.fft.rfft(rng.standard_normal(m)) * np.exp(-((fm - 0.5) / 0.3) ** 2), m)
    long = (long / long.std()).astype(np.float32)
    for p0 in range(0, n_pairs, 50):
        p1 = min(p0 + 50, n_pairs)
        s = (W @ ref[p0:p1].T).T.reshape(p1 - p0, n_days, lags.size)
        off = rng.integers(0, m - lags.size, size=(p1 - p0, n_days))
        noise = long[off[..., None] + np.arange(lags.size)]
        series[p0:p1] = s + 0.2 * noise * s.std(axis=-1, keepdims=True)
    distances = rng.uniform(5.0, 60.0, n_pairs)
    return lags, ref, series, truth, distances


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--fs", type=float, default=20.0)
    ap.add_argument("--maxlag", type=float, default=120.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--methods", default="stretching,mwcs,wavelet")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    lags, ref, series, truth, dist = make_series(args.pairs, args.days, args.fs, args.maxlag)
    print(f"series: {args.pairs} pairs x {args.days} days x {lags.size} lags "
          f"({series.nbytes / 2**30:.1f} GiB float32), built in {time.perf_counter() - t:.1f} s")
    mask, fits = coda_mask(lags, dist, velocity=3.0, ballistic_factor=2.0, length=40.0)
    n = args.pairs * args.days
    bmed, btimes, _ = timed(lambda: np.fft.rfft(series, axis=-1), args.repeat)
    print(f"{'baseline':10s} median {bmed:7.2f} s of {args.repeat} ({', '.join(f'{x:.2f}' for x in btimes)}): "
          f"one rfft of every correlation")
    for method in args.methods.split(","):
        if method == "stretching":
            fn = lambda: stretching(series, ref, lags, mask, fits=fits, freqmin=0.2, freqmax=0.8)  # noqa: E731
        elif method == "mwcs":
            fn = lambda: mwcs(series, ref, lags, mask, freqmin=0.2, freqmax=0.8, window=10.0, step=5.0)  # noqa: E731
        elif method == "wavelet":
            fn = lambda: wavelet_dvv(series, ref, lags, mask, freqmin=0.2, freqmax=0.8, fits=fits)  # noqa: E731
        else:
            sys.exit(f"unknown method {method!r}: stretching, mwcs or wavelet")
        med, times, res = timed(fn, args.repeat)
        est = res.dvv[..., 0] if res.dvv.ndim == 3 else res.dvv
        rms = float(np.sqrt(np.nanmean((est - truth[None, :]) ** 2)))
        print(f"{method:10s} median {med:7.1f} s of {args.repeat} ({', '.join(f'{x:.1f}' for x in times)}); "
              f"{n / med:,.0f} pair-days/s; rms error vs imposed dv/v {rms:.2e} "
              f"(imposed amplitude 2.0e-03); {med / bmed:.0f} x baseline; target < 120 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
