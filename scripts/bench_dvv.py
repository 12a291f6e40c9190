#!/usr/bin/env python
"""Benchmark: stretching, MWCS and wavelet dv/v on pairs x daily correlations.

Default: 1,000 pairs x 365 days, maxlag 120 s at 20 Hz (4,801 lags), coda from twice the
ballistic time for 40 s on both sides, stretch grid of 201 points over +-1 %, MWCS in 10 s
windows every 5 s, 0.2-0.8 Hz. The correlations are built from random decaying coda
references stretched by an imposed dv/v (seasonal, +-0.2 %) with 20 % noise.

The full series would be 7 GB of float32, so they are generated ``--block`` pairs at a time
(50 by default, about 0.35 GB) and every method is called on each block, ``--repeat`` times
(default 3); run ``k``'s time of a method is the sum over blocks of its ``k``-th call, and
the script prints the median over runs (seconds), the pair-days per second, the peak
resident memory of the process, and a baseline timed in the same run (one real FFT of every
correlation, the least work any method does; methods are also given as multiples of it,
which a loaded machine disturbs less than the seconds). ``--run-pairs N`` times only the
first N pairs and extrapolates linearly to ``--pairs`` (blocks are independent).

Correctness is checked in the same run, so a fast but wrong method shows: the RMS error of
the recovered dv/v against the imposed one, and the slope of a fit of the recovered against
the imposed (1 when unbiased, -1 for a sign error, < 1 for a shrink); a method fails the
check (exit status 1) when the slope is off by more than 10 %, the RMS error exceeds 30 % of
the imposed amplitude, or fewer than 95 % of the pair-days are measured.

Target (issue 21): under 2 minutes each on a 2-core machine.

    python scripts/bench_dvv.py                           # the full case, median of 3
    python scripts/bench_dvv.py --run-pairs 100           # 100 pairs, extrapolated to 1,000
    python scripts/bench_dvv.py --pairs 100 --days 60     # a quick look
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noisecorr.signal.dvv import coda_mask, mwcs, stretch_matrix, stretching  # noqa: E402
from noisecorr.signal.dvv_wavelet import wavelet_dvv  # noqa: E402

AMPLITUDE = 0.002  # imposed seasonal dv/v (fraction)


class Generator:
    """Synthetic references (all pairs, small) and series (block by block, reproducible:
    a block's series depend only on the seed and its first pair, not on the block size
    or which pairs are timed)."""

    def __init__(self, n_pairs: int, n_days: int, fs: float, maxlag: float, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.seed = seed
        L = int(round(maxlag * fs))
        self.lags = np.arange(-L, L + 1) / fs
        n = self.lags.size
        f = np.fft.rfftfreq(n, 1 / fs)
        shape = np.exp(-((f - 0.5) / 0.3) ** 2)
        self.ref = (np.fft.irfft(np.fft.rfft(rng.standard_normal((n_pairs, n)), axis=-1) * shape, n, axis=-1)
                    * np.exp(-np.abs(self.lags) / 40.0)).astype(np.float32)
        self.truth = AMPLITUDE * np.sin(2 * np.pi * np.arange(n_days) / 365.0)
        self.distances = rng.uniform(5.0, 60.0, n_pairs)
        # (days * lags, lags): one sparse product stretches every reference to every day
        self.W = stretch_matrix(self.lags, self.truth).astype(np.float32)
        # noise: slices of one long band-limited series at random offsets (cheap, independent enough)
        m = 2**22
        fm = np.fft.rfftfreq(m, 1 / fs)
        long = np.fft.irfft(np.fft.rfft(rng.standard_normal(m)) * np.exp(-((fm - 0.5) / 0.3) ** 2), m)
        self.long = (long / long.std()).astype(np.float32)
        self.n_days = n_days

    def block(self, p0: int, p1: int) -> np.ndarray:
        """Series of pairs ``p0:p1``, (p1 - p0, n_days, n_lags) float32."""
        rng = np.random.default_rng([self.seed, p0])
        n = self.lags.size
        s = np.ascontiguousarray((self.W @ self.ref[p0:p1].T).T).reshape(p1 - p0, self.n_days, n)
        scale = 0.2 * s.std(axis=-1, keepdims=True)
        off = rng.integers(0, self.long.size - n, size=(p1 - p0, self.n_days))
        for i in range(p1 - p0):  # one pair at a time: the gathered noise stays small
            s[i] += self.long[off[i][:, None] + np.arange(n)] * scale[i]
        return s


def check(est: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, bool]:
    """(rms error, slope of est on truth, measured fraction, passed)."""
    ok = np.isfinite(est)
    frac = float(ok.mean())
    t = np.broadcast_to(truth[None, :], est.shape)
    rms = float(np.sqrt(np.mean((est[ok] - t[ok]) ** 2))) if ok.any() else np.inf
    slope = float((est[ok] * t[ok]).sum() / (t[ok] ** 2).sum()) if ok.any() else np.nan
    passed = abs(slope - 1.0) <= 0.1 and rms <= 0.3 * AMPLITUDE and frac >= 0.95
    return rms, slope, frac, passed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--fs", type=float, default=20.0)
    ap.add_argument("--maxlag", type=float, default=120.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--block", type=int, default=50, help="pairs generated and measured together")
    ap.add_argument("--run-pairs", type=int, default=None,
                    help="time only this many pairs and extrapolate to --pairs")
    ap.add_argument("--methods", default="stretching,mwcs,wavelet")
    args = ap.parse_args(argv)
    run_pairs = min(args.run_pairs or args.pairs, args.pairs)
    methods = args.methods.split(",")
    for method in methods:
        if method not in ("stretching", "mwcs", "wavelet"):
            sys.exit(f"unknown method {method!r}: stretching, mwcs or wavelet")
    t = time.perf_counter()
    gen = Generator(args.pairs, args.days, args.fs, args.maxlag)
    lags, truth = gen.lags, gen.truth
    mask, fits = coda_mask(lags, gen.distances, velocity=3.0, ballistic_factor=2.0, length=40.0)
    print(f"series: {args.pairs} pairs x {args.days} days x {lags.size} lags "
          f"({args.pairs * args.days * lags.size * 4 / 2**30:.1f} GiB float32 in all), generated "
          f"{args.block} pairs at a time ({args.block * args.days * lags.size * 4 / 2**30:.2f} GiB); "
          f"timing {run_pairs} pairs; set-up {time.perf_counter() - t:.1f} s")

    def call(method, p0, p1, ser):
        m, fi, r = mask[p0:p1], fits[p0:p1], gen.ref[p0:p1]
        if method == "stretching":
            return stretching(ser, r, lags, m, fits=fi, freqmin=0.2, freqmax=0.8).dvv
        if method == "mwcs":
            return mwcs(ser, r, lags, m, freqmin=0.2, freqmax=0.8, window=10.0, step=5.0).dvv
        return wavelet_dvv(ser, r, lags, m, freqmin=0.2, freqmax=0.8, fits=fi).dvv[..., 0]

    names = ["baseline", *methods]
    times = {k: np.zeros(args.repeat) for k in names}
    est = {k: np.full((run_pairs, args.days), np.nan) for k in methods}
    t_gen = 0.0
    for p0 in range(0, run_pairs, args.block):
        p1 = min(p0 + args.block, run_pairs)
        t = time.perf_counter()
        ser = gen.block(p0, p1)
        t_gen += time.perf_counter() - t
        for k in range(args.repeat):
            t = time.perf_counter()
            np.fft.rfft(ser, axis=-1)
            times["baseline"][k] += time.perf_counter() - t
            for method in methods:
                t = time.perf_counter()
                out = call(method, p0, p1, ser)
                times[method][k] += time.perf_counter() - t
                est[method][p0:p1] = out
        del ser
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB
    scale = args.pairs / run_pairs
    n = run_pairs * args.days
    label = f"median of {args.repeat}" if args.repeat > 1 else "1 run"
    print(f"generation {t_gen:.1f} s (not timed); peak resident memory {peak:.2f} GiB")
    bmed = statistics.median(times["baseline"])
    status = 0
    for name in names:
        med = statistics.median(times[name])
        runs = ", ".join(f"{x:.1f}" for x in times[name])
        line = f"{name:10s} {med:7.1f} s ({label}: {runs}) for {run_pairs} pairs; {n / med:,.0f} pair-days/s"
        if scale != 1:
            line += f"; extrapolated to {args.pairs} pairs {med * scale:.0f} s"
        if name == "baseline":
            print(line + "; one rfft of every correlation")
            continue
        rms, slope, frac, passed = check(est[name], truth)
        status |= not passed
        print(line + f"; {med / bmed:.1f} x baseline; target < 120 s at full size")
        print(f"{'':10s} check {'ok' if passed else 'FAILED'}: rms error vs imposed dv/v {rms:.2e} "
              f"(amplitude {AMPLITUDE:.1e}), slope {slope:.3f}, measured {100 * frac:.1f} %")
    return status


if __name__ == "__main__":
    sys.exit(main())
