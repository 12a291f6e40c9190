"""Benchmark the per-pair path (PWS / robust stacks) on blocks of pairs against NoisePy 0.9.93.

The same pair-windows (every pair of ``--stations`` stations x ``--windows`` windows of
``cc_len`` 1800 s at 20 Hz, maxlag 200 s; whitened spectra, rma 0.05-2 Hz, as input) go
through

(a) ``pipeline``: what a run executes, :class:`pes.correlate.CrossCorrelatePE` ->
    :class:`pes.stack.StackPE` under the sequential mapping, the stations' spectra as one
    chunk (CrossCorrelatePE correlates its pairs in blocks of ``pair_block`` with
    ``correlate_block``, StackPE stacks the items in blocks of ``pair_block`` with
    ``substack_states_block``);
(b) ``block``: :func:`noisecorr.signal.correlate.correlate_block` over all pairs at once +
    :func:`noisecorr.signal.stack.pws_stack_block` / ``robust_stack_block`` (the library's
    3-D block functions);
(c) ``pairwise``: the per-pair reference, :func:`noisecorr.signal.correlate.correlate` +
    :func:`noisecorr.signal.stack.pws_stack` / ``robust_stack`` pair by pair
    (full-spectrum multiply, ``scipy.signal.hilbert``);
(d) ``noisepy``: NoisePy 0.9.93's own ``noise_module.correlate`` (``substack=True``,
    ``substack_len = cc_len``: one CCF per window) + ``noise_module.stacking`` (pws, then
    robust) on the same spectra and pairs, run in ``/opt/noisepy-venv/bin/python`` as a
    subprocess, one thread.

Everything runs on one thread (BLAS/OpenMP/FFT workers 1) so the figures are per core.
Prints the median of ``--repeat`` runs of each (wall and CPU seconds; the ratios from
CPU time, which other load on a shared machine disturbs least), pair-windows per CPU
second, and the maximum relative difference (``max|a - b| / max|b|``, per pair) of the stacks against
the pairwise ones and NoisePy's: NoisePy's lag axis is one sample late for even ``nfft``
(aligned here), it removes the mean of the cross-spectrum (a spike at lag 0) and drops
windows above 20x the median peak, and its PWS Hilbert transform pads to
``next_fast_len``; so the comparison is made with ``--circular`` (NoisePy's ``nfft =
cc_len`` samples), and differences of ~1e-3..1e-2 are definitional, not errors.

Example::

    .venv/bin/python scripts/bench_perpair.py --stations 6 --windows 96 --repeat 3
    .venv/bin/python scripts/bench_perpair.py --stations 6 --windows 96 --circular
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

from noisecorr.engine import WorkflowGraph, run  # noqa: E402
from noisecorr.signal.correlate import correlate, correlate_block  # noqa: E402
from noisecorr.signal.normalize import whiten  # noqa: E402
from noisecorr.signal.params import CorrelationParams  # noqa: E402
from noisecorr.signal.spectra import band_indices, rfft_windows  # noqa: E402
from noisecorr.signal.stack import pws_stack, pws_stack_block, robust_stack, robust_stack_block  # noqa: E402
from pes import CrossCorrelatePE, StackPE  # noqa: E402

FS, CC_LEN, MAXLAG, FMIN, FMAX = 20.0, 1800.0, 200.0, 0.05, 2.0
T0 = 1704067200.0  # 2024-01-01T00:00:00Z, the windows' first start
NOISEPY = Path("/opt/noisepy-venv/bin/python")
PEERS = ROOT.parent / "shared" / "peers" / "noisepy"

NOISEPY_SIDE = r"""
import json, sys, time
import numpy as np
from noisepy.seis import noise_module
from noisepy.seis.io.datatypes import StackMethod
sys.path.insert(0, sys.argv[2])
import ccf_peer as C
d = np.load(sys.argv[1])
spec, ii, jj, nfft, reps = d["spec"], d["ii"], d["jj"], int(d["nfft"]), int(d["reps"])
W = spec.shape[1]
p = C.make_params(inc_hours=24, substack=True, substack_len=1800, maxlag=200)
tt = np.arange(W) * 1800.0
def run(method):
    p.stack_method = method
    out = []
    for i, j in zip(ii, jj):
        s1 = np.conj(spec[i, :, : nfft // 2]); s2 = spec[j, :, : nfft // 2]
        c, t, n = noise_module.correlate(s1, s2, p, nfft, tt)
        r = noise_module.stacking(c, np.atleast_1d(t), np.atleast_1d(n).astype(np.int16), p)
        out.append(np.asarray(r[3], dtype=np.float64))
    return np.array(out)
res = {}
for name, m in (("pws", StackMethod.PWS), ("robust", StackMethod.ROBUST)):
    run(m)
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        st = run(m)
        times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    res[name] = times
    res[name + "_cpu"] = cpu
    np.save(sys.argv[1] + f".{name}.npy", st)
print(json.dumps(res))
"""


def station_pairs(stations):
    """``(ii, jj)``: every pair ``i < j``, in CrossCorrelatePE's order (sorted station keys)."""
    ii, jj = np.triu_indices(stations, 1)
    return ii, jj


def station_id(s):
    return f"XX.S{s:03d}..HHZ"


def make_spectra(stations, windows, nfft, seed=0):
    """Whitened spectra ``(stations, windows, nfft // 2 + 1)``: station ``s`` records one
    common noise field delayed by ``10 s`` samples plus its own noise (half the amplitude),
    so pair ``(i, j)`` has its arrival at ``10 (j - i)`` samples."""
    rng = np.random.default_rng(seed)
    n = int(CC_LEN * FS)
    pad = 10 * stations
    x = rng.standard_normal((windows, n + pad)).astype(np.float32)
    out = np.empty((stations, windows, nfft // 2 + 1), np.complex64)
    for s in range(stations):
        y = x[:, pad - 10 * s:pad - 10 * s + n] + 0.5 * rng.standard_normal((windows, n)).astype(np.float32)
        out[s] = whiten(rfft_windows(y, nfft), FS, nfft, FMIN, FMAX, "rma", 10)
    return out


def pipeline_params(method, circular):
    return CorrelationParams(sampling_rate=FS, cc_len=CC_LEN, step=CC_LEN, freqmin=FMIN, freqmax=FMAX,
                             maxlag=MAXLAG, stack_method=method, zero_pad=not circular)


def pipeline(spec, params):
    """CrossCorrelatePE -> StackPE (sequential mapping) on the stations' spectra as one chunk:
    the stacks ``(n_pairs, n_lags)`` in :func:`station_pairs` order."""
    S, W, _ = spec.shape
    t = T0 + CC_LEN * np.arange(W)
    items = [{"input": {"seed_id": station_id(s), "chunk": T0, "spectra": spec[s], "starttimes": t,
                        "sampling_rate": FS, "nfft": params.nfft}} for s in range(S)]
    g = WorkflowGraph()
    cc, st = CrossCorrelatePE(params, n_channels=S), StackPE(params)
    g.connect(cc, "output", st, "input")
    res = run(g, inputs={cc: items}, mapping="sequential")
    out = {o["key"]: o["stack"] for o in res.outputs[("StackPE", "output")]}
    keys = [f"{station_id(i)[:-4]}|{station_id(j)[:-4]}|ZZ" for i, j in zip(*station_pairs(S))]
    return np.array([out[k] for k in keys])


def block(spec, nfft, band, method):
    ccfs, _ = correlate_block(spec, spec, nfft, FS, MAXLAG, band=band, pairs=station_pairs(spec.shape[0]))
    return pws_stack_block(ccfs)[0] if method == "pws" else robust_stack_block(ccfs)[0]


def pairwise(spec, nfft, method):
    out = []
    for i, j in zip(*station_pairs(spec.shape[0])):
        ccfs, _ = correlate(spec[i], spec[j], nfft, FS, MAXLAG)
        out.append((pws_stack(ccfs) if method == "pws" else robust_stack(ccfs))[0])
    return np.array(out)


def timed(fn, reps):
    """``(median wall s, median CPU s, result)`` of ``reps`` calls after a warm-up (FFT plans).
    The CPU time (``time.process_time``, one thread) is what load from other processes on a
    shared machine disturbs least."""
    fn()
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        res = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu), res


def rel_diff(a, b):
    """``max over pairs of max|a - b| / max|b|``."""
    return float((np.abs(a - b).max(axis=1) / np.abs(b).max(axis=1)).max())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stations", type=int, default=6, help="every pair of them (default 6: 15 pairs)")
    ap.add_argument("--windows", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--circular", action="store_true",
                    help="nfft = cc_len samples (NoisePy's; no zero padding) instead of 2 n - 1 -> fast length")
    ap.add_argument("--no-noisepy", action="store_true")
    a = ap.parse_args(argv)

    params = pipeline_params("linear", a.circular)
    nfft = params.nfft
    band = band_indices(nfft, FS, FMIN, FMAX)
    spec = make_spectra(a.stations, a.windows, nfft)
    ii, jj = station_pairs(a.stations)
    pw = len(ii) * a.windows
    print(f"{len(ii)} pairs ({a.stations} stations) x {a.windows} windows of {CC_LEN:.0f} s at {FS:g} Hz, "
          f"maxlag {MAXLAG:g} s, nfft {nfft}{' (circular)' if a.circular else ' (zero-padded)'}, one thread, "
          f"median of {a.repeat}")
    peer = {}
    if not a.no_noisepy and NOISEPY.exists():
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / "spec.npz"
            np.savez(f, spec=spec, ii=ii, jj=jj, nfft=nfft, reps=a.repeat)
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
                    peer[m] = (statistics.median(times[m]), statistics.median(times[m + "_cpu"]),
                               np.load(str(f) + f".{m}.npy"))
    L = int(MAXLAG * FS)
    for method in ("pws", "robust"):
        p = pipeline_params(method, a.circular)
        tl, cl, sl = timed(lambda: pipeline(spec, p), a.repeat)
        tb, cb, sb = timed(lambda: block(spec, nfft, band, method), a.repeat)
        tp, cp, sp = timed(lambda: pairwise(spec, nfft, method), a.repeat)
        print(f"\n{method}: correlate + stack (wall s, CPU s, pair-windows per CPU s)")
        print(f"  pipeline  {tl:8.3f} {cl:8.3f} {pw / cl:9.1f}   vs pairwise {cp / cl:5.2f}x (CPU)  "
              f"max rel diff {rel_diff(sl, sp):.1e}")
        print(f"  block     {tb:8.3f} {cb:8.3f} {pw / cb:9.1f}   vs pairwise {cp / cb:5.2f}x (CPU)  "
              f"max rel diff {rel_diff(sb, sp):.1e}")
        print(f"  pairwise  {tp:8.3f} {cp:8.3f} {pw / cp:9.1f}")
        if method in peer:
            tn, cn, sn = peer[method]
            # NoisePy's sample k is lag (k - L - 1) dt for even nfft: align on our lags -L..L-1
            ours, theirs = sl[:, :2 * L], sn[:, 1:2 * L + 1]
            peaks_ok = bool(np.all(np.argmax(sl, axis=1) == np.argmax(sn, axis=1) - 1))
            print(f"  noisepy   {tn:8.3f} {cn:8.3f} {pw / cn:9.1f}   pipeline/noisepy {cn / cl:5.2f}x CPU, "
                  f"{tn / tl:5.2f}x wall; block/noisepy {cn / cb:5.2f}x CPU; max rel diff "
                  f"{rel_diff(ours, theirs):.1e} (peaks at the same lag: {peaks_ok})")
            print(f"RESULT {method} pair-windows per CPU s: pipeline {pw / cl:.1f}, block {pw / cb:.1f}, "
                  f"pairwise {pw / cp:.1f}, noisepy {pw / cn:.1f}; pipeline/noisepy {cn / cl:.2f}x CPU "
                  f"({tn / tl:.2f}x wall)")

if __name__ == "__main__":
    main()
