#!/usr/bin/env python
"""Benchmark: FTAN (two passes, with the phase-matched filter) on many stacks.

Default: 100,000 stacks of the default length (maxlag 200 s at 20 Hz, 8,001 lags),
20 periods from 1 to 40 s, distances uniform in 20-250 km (the SNR noise window must
fit in maxlag). Stacks are diffuse-field correlations of a dispersive medium
(:func:`noisecorr.synth.dispersion.diffuse_ccf`, 500 distinct distances, plus independent
noise per stack so no two are alike), generated in memory block by block; only the SNR and FTAN calls are timed. Prints seconds per run
(median of ``--repeat`` runs, default 3), stacks per second, a baseline timed in the same run
(one forward and one inverse real FFT of every one-sided stack per period, the least work
any frequency-domain FTAN does; the ratio is less sensitive to a loaded machine than the
seconds), and the median group/phase velocity
error of the trusted values against the exact model as a sanity check (the run fails, exit
status 1, when the median error exceeds 1 % or fewer than half the pair-periods are trusted),
and the peak resident memory (the stacks live one block at a time: about 65 MB each).
``--run-stacks N`` times only N stacks and extrapolates linearly to ``--stacks``.
Target (issue 22): under 5 minutes on this 2-core machine.

    python scripts/bench_ftan.py                   # the full case
    python scripts/bench_ftan.py --stacks 5000     # a quick look
    python scripts/bench_ftan.py --run-stacks 10000  # 10,000 timed, extrapolated to 100,000
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

from noisecorr.signal.ftan import ftan  # noqa: E402
from noisecorr.signal.symmetric import sides, snr  # noqa: E402
from noisecorr.synth.dispersion import DispersionModel, diffuse_ccf  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--stacks", type=int, default=100_000)
    ap.add_argument("--sampling-rate", type=float, default=20.0)
    ap.add_argument("--maxlag", type=float, default=200.0)
    ap.add_argument("--periods", type=int, default=20)
    ap.add_argument("--block", type=int, default=2048, help="stacks generated and measured together")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-snr", action="store_true", help="time FTAN only")
    ap.add_argument("--run-stacks", type=int, default=None,
                    help="time only this many stacks and extrapolate to --stacks")
    args = ap.parse_args(argv)
    total = args.stacks
    args.stacks = min(args.run_stacks or total, total)

    fs = args.sampling_rate
    model = DispersionModel.linear_period(2.9, 0.025, 1.0)
    periods = np.geomspace(1.0, 40.0, args.periods)
    rng = np.random.default_rng(0)
    templates_d = np.linspace(20.0, 250.0, 500)
    t0 = time.perf_counter()
    templates = diffuse_ccf(templates_d, model, fs, args.maxlag, band=(0.01, 0.02, 1.5, 3.0))
    print(f"templates: {len(templates)} x {templates.shape[1]} lags in {time.perf_counter() - t0:.1f} s")
    ref = (lambda t: model.phase_velocity(1.0 / np.asarray(t)))

    def run():
        timed = 0.0
        errs_u, errs_c, trusted = [], [], 0
        for b0 in range(0, args.stacks, args.block):
            n = min(args.block, args.stacks - b0)
            pick = rng.integers(0, len(templates), n)
            ccf = templates[pick] + np.float32(0.01) * rng.standard_normal(
                (n, templates.shape[1]), dtype=np.float32)
            d = templates_d[pick]
            t1 = time.perf_counter()
            if not args.no_snr:
                snr(ccf, fs, d, noise_length=100.0)
            c, a = sides(ccf)
            r = ftan(0.5 * (c + a), 1 / fs, d, periods, reference=ref, noise_length=100.0,
                     phase_matched=True)  # the slower, two-pass case
            timed += time.perf_counter() - t1
            ok = r.trusted
            trusted += int(ok.sum())
            f = 1 / periods
            errs_u.append(np.abs(r.group_velocity / model.group_velocity(f) - 1)[ok])
            errs_c.append(np.abs(r.phase_velocity / model.phase_velocity(f) - 1)[ok])
        eu, ec = np.concatenate(errs_u), np.concatenate(errs_c)
        return timed, trusted, eu, ec

    def baseline():
        timed = 0.0
        for b0 in range(0, args.stacks, args.block):
            n = min(args.block, args.stacks - b0)
            ccf = templates[rng.integers(0, len(templates), n)]
            t1 = time.perf_counter()
            c, a = sides(ccf)
            x = np.fft.rfft(0.5 * (c + a), axis=-1)
            for _ in range(periods.size):
                np.fft.irfft(x, axis=-1)
            timed += time.perf_counter() - t1
        return timed

    base = []
    times = []
    for k in range(args.repeat):
        base.append(baseline())
        s, trusted, eu, ec = run()
        times.append(s)
        print(f"run {k + 1}: {s:.1f} s ({args.stacks / s:.0f} stacks/s); trusted {trusted} of "
              f"{args.stacks * periods.size} pair-periods; median |dU/U| {np.median(eu):.2e}, "
              f"|dc/c| {np.median(ec):.2e}; 99th percentile {np.percentile(eu, 99):.2e}, "
              f"{np.percentile(ec, 99):.2e}")
    med = statistics.median(times)
    label = f"median of {len(times)} runs" if len(times) > 1 else "1 run"
    extra = (f"; extrapolated to {total} stacks {med * total / args.stacks:.0f} s"
             if total != args.stacks else "")
    print(f"FTAN{'' if args.no_snr else ' + SNR'} on {args.stacks} stacks x {periods.size} periods "
          f"({templates.shape[1]} lags at {fs:g} Hz): {med:.1f} s ({label}){extra}; target < 300 s "
          f"for {total}")
    bmed = statistics.median(base)
    print(f"baseline (rfft + {periods.size} irfft per stack, same stacks): {bmed:.2f} s ({label}); "
          f"FTAN / baseline = {med / bmed:.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB
    passed = np.median(eu) <= 0.01 and np.median(ec) <= 0.01 and trusted >= 0.5 * args.stacks * periods.size
    print(f"peak resident memory {peak:.2f} GiB; check {'ok' if passed else 'FAILED'} (median errors "
          f"<= 1 %, at least half the pair-periods trusted)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
