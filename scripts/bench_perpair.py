"""Benchmark the per-pair path (PWS / robust stacks) on blocks of pairs against NoisePy 0.9.93.

The same pair-windows (``--pairs`` pairs x ``--windows`` windows of ``cc_len`` 1800 s at
20 Hz, maxlag 200 s; whitened spectra, rma 0.05-2 Hz, as input) go through

(a) ``block``: :func:`noisecorr.signal.correlate.correlate_block` (one batched band-limited
    multiply + irfft over all windows of all pairs) and
    :func:`noisecorr.signal.stack.pws_stack_block` / ``robust_stack_block``;
(b) ``pairwise``: the previous per-pair implementation kept as the reference,
    :func:`noisecorr.signal.correlate.correlate` + :func:`noisecorr.signal.stack.pws_stack`
    / ``robust_stack`` pair by pair (full-spectrum multiply, ``scipy.signal.hilbert``);
(c) ``noisepy``: NoisePy 0.9.93's own ``noise_module.correlate`` (``substack=True``,
    ``substack_len = cc_len``: one CCF per window) + ``noise_module.stacking`` (pws, then
    robust) on the same spectra, run in ``/opt/noisepy-venv/bin/python`` as a subprocess,
    one thread.

Everything runs on one thread (BLAS/OpenMP/FFT workers 1) so the figures are per core.
Prints the median of ``--repeat`` runs of each, pair-windows per second, the ratios, and
the maximum relative difference (``max|a - b| / max|b|``) of the stacks against NoisePy's:
NoisePy's lag axis is one sample late for even ``nfft`` (aligned here), it removes the
mean of the cross-spectrum (a spike at lag 0) and drops windows above 20x the median peak,
and its PWS Hilbert transform pads to ``next_fast_len``; so the comparison is made with
``--circular`` (NoisePy's ``nfft = cc_len`` samples), and differences of ~1e-3..1e-2 are
definitional, not errors.

Example::

    .venv/bin/python scripts/bench_perpair.py --pairs 4 --windows 96 --repeat 3
    .venv/bin/python scripts/bench_perpair.py --pairs 4 --windows 96 --circular
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noisecorr.signal.correlate import correlate, correlate_block  # noqa: E402
from noisecorr.signal.normalize import whiten  # noqa: E402
from noisecorr.signal.spectra import band_indices, rfft_windows  # noqa: E402
from noisecorr.signal.stack import pws_stack, pws_stack_block, robust_stack, robust_stack_block  # noqa: E402

FS, CC_LEN, MAXLAG, FMIN, FMAX = 20.0, 1800.0, 200.0, 0.05, 2.0
NOISEPY = Path("/opt/noisepy-venv/bin/python")
PEERS = ROOT.parent / "shared" / "peers" / "noisepy"

NOISEPY_SIDE = r'''
import json, sys, time
import numpy as np
from noisepy.seis import noise_module
from noisepy.seis.io.datatypes import StackMethod
sys.path.insert(0, sys.argv[2])
import ccf_peer as C
d = np.load(sys.argv[1])
spec, nfft, reps = d["spec"], int(d["nfft"]), int(d["reps"])
P, W = spec.shape[0] // 2, spec.shape[1]
p = C.make_params(inc_hours=24, substack=True, substack_len=1800, maxlag=200)
tt = np.arange(W) * 1800.0
def run(method):
    p.stack_method = method
    out = []
    for k in range(P):
        s1 = np.conj(spec[2 * k, :, : nfft // 2]); s2 = spec[2 * k + 1, :, : nfft // 2]
        c, t, n = noise_module.correlate(s1, s2, p, nfft, tt)
        r = noise_module.stacking(c, np.atleast_1d(t), np.atleast_1d(n).astype(np.int16), p)
        out.append(np.asarray(r[3], dtype=np.float64))
    return np.array(out)
res = {}
for name, m in (("pws", StackMethod.PWS), ("robust", StackMethod.ROBUST)):
    run(m)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter(); st = run(m); times.append(time.perf_counter() - t0)
    res[name] = times
    np.save(sys.argv[1] + f".{name}.npy", st)
print(json.dumps(res))
'''


def make_spectra(pairs, windows, nfft, seed=0):
    """Whitened spectra ``(2 * pairs, windows, nfft // 2 + 1)``: rows 2k / 2k + 1 are the
    source / receiver of pair k, the receiver the source delayed by 20 + 10 k samples plus
    noise."""
    rng = np.random.default_rng(seed)
    n = int(CC_LEN * FS)
    out = np.empty((2 * pairs, windows, nfft // 2 + 1), np.complex64)
    for k in range(pairs):
        d = 20 + 10 * k
        x = rng.standard_normal((windows, n + 200)).astype(np.float32)
        s = x[:, 100:100 + n]
        r = x[:, 100 - d:100 - d + n] + 0.5 * rng.standard_normal((windows, n)).astype(np.float32)
        for row, y in ((2 * k, s), (2 * k + 1, r)):
            out[row] = whiten(rfft_windows(y, nfft), FS, nfft, FMIN, FMAX, "rma", 10)
    return out


def block(spec, nfft, band, method):
    ccfs, _ = correlate_block(spec[0::2], spec[1::2], nfft, FS, MAXLAG, band=band)
    return pws_stack_block(ccfs)[0] if method == "pws" else robust_stack_block(ccfs)[0]


def pairwise(spec, nfft, method):
    out = []
    for k in range(spec.shape[0] // 2):
        ccfs, _ = correlate(spec[2 * k], spec[2 * k + 1], nfft, FS, MAXLAG)
        out.append((pws_stack(ccfs) if method == "pws" else robust_stack(ccfs))[0])
    return np.array(out)


def timed(fn, reps):
    fn()  # warm-up (FFT plans)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--windows", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--circular", action="store_true",
                    help="nfft = cc_len samples (NoisePy's; no zero padding) instead of 2 n - 1 -> fast length")
    ap.add_argument("--no-noisepy", action="store_true")
    a = ap.parse_args(argv)
    from noisecorr.signal.spectra import choose_nfft

    n = int(CC_LEN * FS)
    nfft = n if a.circular else choose_nfft(n, zero_pad=True)
    band = band_indices(nfft, FS, FMIN, FMAX)
    spec = make_spectra(a.pairs, a.windows, nfft)
    pw = a.pairs * a.windows
    print(f"{a.pairs} pairs x {a.windows} windows of {CC_LEN:.0f} s at {FS:g} Hz, maxlag {MAXLAG:g} s, "
          f"nfft {nfft}{' (circular)' if a.circular else ' (zero-padded)'}, one thread, median of {a.repeat}")
    peer = {}
    if not a.no_noisepy and NOISEPY.exists():
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / "spec.npz"
            np.savez(f, spec=spec, nfft=nfft, reps=a.repeat)
            script = Path(tmp) / "side.py"
            script.write_text(NOISEPY_SIDE)
            env = dict(os.environ, PYTHONWARNINGS="ignore")
            out = subprocess.run([str(NOISEPY), str(script), str(f), str(PEERS)], capture_output=True,
                                 text=True, env=env, timeout=3600)
            if out.returncode:
                print("NoisePy side failed:\n" + out.stderr[-2000:])
            else:
                times = json.loads(out.stdout.strip().splitlines()[-1])
                for m in ("pws", "robust"):
                    peer[m] = (statistics.median(times[m]), np.load(str(f) + f".{m}.npy"))
    L = int(MAXLAG * FS)
    for method in ("pws", "robust"):
        tb, sb = timed(lambda: block(spec, nfft, band, method), a.repeat)
        tp, sp = timed(lambda: pairwise(spec, nfft, method), a.repeat)
        ref = np.abs(sp).max(axis=1)
        same = float((np.abs(sb - sp).max(axis=1) / ref).max())
        print(f"\n{method}: correlate + stack")
        print(f"  block     {tb:8.3f} s  {pw / tb:9.1f} pair-windows/s/core")
        print(f"  pairwise  {tp:8.3f} s  {pw / tp:9.1f} pair-windows/s/core   block/pairwise speed-up "
              f"{tp / tb:5.2f}x  max rel diff {same:.1e}")
        if method in peer:
            tn, sn = peer[method]
            # NoisePy's sample k is lag (k - L - 1) dt for even nfft: align on our lags -L..L-1
            ours, theirs = sb[:, :2 * L], sn[:, 1:2 * L + 1]
            diff = float((np.abs(ours - theirs).max(axis=1) / np.abs(theirs).max(axis=1)).max())
            peaks_ok = bool(np.all(np.argmax(sb, axis=1) == np.argmax(sn, axis=1) - 1))
            print(f"  noisepy   {tn:8.3f} s  {pw / tn:9.1f} pair-windows/s/core   block/noisepy speed-up "
                  f"{tn / tb:5.2f}x  max rel diff {diff:.1e} (peaks at the same lag: {peaks_ok})")
            print(f"RESULT {method} block {pw / tb:.1f} pw/s, pairwise {pw / tp:.1f} pw/s, noisepy "
                  f"{pw / tn:.1f} pw/s; block/noisepy {tn / tb:.2f}x, block/pairwise {tp / tb:.2f}x")


if __name__ == "__main__":
    main()
