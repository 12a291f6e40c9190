#!/usr/bin/env python
"""Step-by-step comparison of noisecorr with NoisePy 0.9.93 on a synthetic line network.

NoisePy runs in its own environment (it needs Python 3.10; never install it in the
project's)::

    ~/.pyenv/versions/3.10.13/bin/python -m venv /opt/noisepy-venv
    /opt/noisepy-venv/bin/pip install noisepy-seis==0.9.93
    .venv/bin/python scripts/compare_noisepy.py --noisepy-python /opt/noisepy-venv/bin/python

It writes the synthetic (:func:`noisecorr.testing.noisepy_reference.line_network`) to a
file, has ``scripts/noisepy_side.py`` run NoisePy's own functions on it with that
interpreter (intermediate results of every step), computes noisecorr's steps, and prints,
for noisecorr's defaults, for each setting of ``configs/noisepy.yaml`` alone, for the
preset less each setting, and for the whole preset, the median correlation coefficient
with NoisePy after preprocessing, after windowing (demean, detrend, taper), after
whitening, and of the stacks (NoisePy's one-sample lag shift undone). Two rows feed
NoisePy's own intermediate results into noisecorr's later steps, which isolates the
whitening and the correlation. ``--write-reference`` stores NoisePy's stacks for
``tests/signal/test_noisepy_reference.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noisecorr.signal.chain import StationSpectra, correlate_and_stack, whiten_spectra  # noqa: E402
from noisecorr.signal.params import CorrelationParams  # noqa: E402
from noisecorr.signal.spectra import rfft_windows  # noqa: E402
from noisecorr.testing.noisepy_reference import (PARAMS, compare_stages, line_network,  # noqa: E402
                                                 noisecorr_stages, pair_keys,
                                                 stack_coefficients, write_input)
from noisecorr.workflow.config import load_yaml  # noqa: E402


def preset_processing(path: Path) -> dict:
    """The ``processing`` keys of a preset file."""
    return dict(load_yaml(path).get("processing") or {})


def run_noisepy(python: str, inp: Path, out: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run([python, str(ROOT / "scripts" / "noisepy_side.py"), str(inp), str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"NoisePy side failed ({python}):\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t


def noisepy_version(python: str) -> str:
    proc = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('noisepy-seis'))"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def hybrid_rows(noisepy: dict, params: CorrelationParams, n_stations: int) -> list[tuple[str, float]]:
    """NoisePy's windows (or whitened spectra) through noisecorr's later steps."""
    fs = params.sampling_rate
    good = [np.nonzero((noisepy[f"std_{i}"] < params.max_over_std) & (noisepy[f"std_{i}"] > 0))[0]
            for i in range(n_stations)]
    rows = []
    for label, over in (("NoisePy windows -> noisecorr whitening (default) + correlation", {}),
                        ("NoisePy windows -> noisecorr whitening (noisepy style) + correlation",
                         dict(whitening_style="noisepy", spectral_water_level=1e-7))):
        p = params.replace(zero_pad=False, **over)
        specs = []
        for i in range(n_stations):
            w = noisepy[f"win_{i}"][good[i]]
            sp = whiten_spectra(rfft_windows(w, p.nfft), p, p.nfft)
            specs.append(StationSpectra(f"S{i}", noisepy[f"t_{i}"][good[i]], sp, fs, p.nfft))
        stacks = {k: correlate_and_stack(specs[k[0]], specs[k[1]], p) for k in pair_keys(n_stations)}
        rows.append((label, float(np.median(list(stack_coefficients(stacks, noisepy).values())))))
    nf = int(noisepy["nfft"])
    p = params.replace(zero_pad=False, freq_norm="none")
    specs = []
    for i in range(n_stations):
        h = noisepy[f"white_{i}"][good[i]]
        sp = np.zeros((h.shape[0], nf // 2 + 1), np.complex64)
        sp[:, : h.shape[1]] = h
        specs.append(StationSpectra(f"S{i}", noisepy[f"t_{i}"][good[i]], sp, fs, nf))
    stacks = {k: correlate_and_stack(specs[k[0]], specs[k[1]], p) for k in pair_keys(n_stations)}
    rows.append(("NoisePy whitened spectra -> noisecorr correlation",
                 float(np.median(list(stack_coefficients(stacks, noisepy).values())))))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--noisepy-python", default=os.environ.get("NOISEPY_PYTHON", "/opt/noisepy-venv/bin/python"),
                    help="interpreter of NoisePy's environment (default: $NOISEPY_PYTHON or %(default)s)")
    ap.add_argument("--stations", type=int, default=5)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--pad", type=float, default=0.0,
                    help="seconds of record either side of the chunk, given to both codes (default 0: "
                         "both see exactly the chunk)")
    ap.add_argument("--preset", type=Path, default=ROOT / "configs" / "noisepy.yaml")
    ap.add_argument("--write-reference", type=Path, default=None,
                    help="store NoisePy's stacks and the synthetic's identity here (npz)")
    args = ap.parse_args(argv)
    if not Path(args.noisepy_python).exists():
        sys.exit(f"NoisePy's interpreter {args.noisepy_python} not found: see this script's docstring")

    base = CorrelationParams(**PARAMS)
    net = line_network(args.stations, args.hours, base.sampling_rate, args.seed, pad=args.pad)
    print(f"synthetic: {args.stations} stations on a line at {np.round(net.positions_km, 2).tolist()} km, "
          f"{args.hours:g} h at {base.sampling_rate:g} Hz (pad {args.pad:g} s), seed {args.seed}; "
          f"NoisePy {noisepy_version(args.noisepy_python)} at {args.noisepy_python}")
    with tempfile.TemporaryDirectory(prefix="compare_noisepy_") as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        write_input(inp, net, base)
        wall = run_noisepy(args.noisepy_python, inp, out)
        noisepy = dict(np.load(out))
    print(f"NoisePy side: {wall:.1f} s")

    preset = preset_processing(args.preset)
    # the settings that differ from noisecorr's defaults (the preset also restates some)
    changed = {k: v for k, v in preset.items() if getattr(base.replace(**{k: v}), k) != getattr(base, k)}
    configs = [("noisecorr defaults", {})]
    configs += [(f"defaults + {k}: {v}", {k: v}) for k, v in changed.items()]
    configs += [(f"preset - {k}", {kk: vv for kk, vv in changed.items() if kk != k}) for k in changed]
    configs += [(f"preset ({args.preset.name})", changed)]
    head = f"{'configuration':52s} {'preproc':>8s} {'windows':>8s} {'whitened':>8s} {'stack':>7s} {'min':>7s} {'windows':>9s}"
    print("\nmedian correlation coefficient with NoisePy after each step (windows: accepted, noisecorr/NoisePy)")
    print(head)
    print("-" * len(head))
    results = {}
    for label, over in configs:
        p = base.replace(**over)
        r = compare_stages(noisecorr_stages(net, p), noisepy, p)
        results[label] = r
        print(f"{label:52s} {r['pre']:8.4f} {r['windows']:8.4f} {r['whitened']:8.4f} {r['stack']:7.4f} "
              f"{r['stack_min']:7.4f} {r['n_windows']:4d}/{r['n_windows_noisepy']:<4d}")
    print("\nisolating steps (NoisePy's own intermediate results fed into noisecorr's later steps)")
    for label, c in hybrid_rows(noisepy, base, args.stations):
        print(f"{label:72s} stack {c:7.4f}")
    final = results[f"preset ({args.preset.name})"]
    print("\nper pair, preset:", {f"{k[0]}-{k[1]}": round(v, 4) for k, v in final["pairs"].items()})
    if args.write_reference:
        keys = pair_keys(args.stations)
        np.savez_compressed(
            args.write_reference,
            ccf=np.stack([noisepy[f"ccf_{i}_{j}"] for i, j in keys]).astype(np.float32),
            ngood=np.array([int(noisepy[f"ngood_{i}_{j}"]) for i, j in keys]),
            pairs=np.array(keys), checksum=net.checksum(),
            meta=json.dumps(dict(stations=args.stations, hours=args.hours, seed=args.seed, pad=args.pad,
                                 params=PARAMS, noisepy=noisepy_version(args.noisepy_python),
                                 numpy=np.__version__)))
        print(f"reference written to {args.write_reference}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
