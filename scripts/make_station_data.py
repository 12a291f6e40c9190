"""Regenerate the committed sample in ``station_data/`` (deterministic).

Usage::

    .venv/bin/python scripts/make_station_data.py [--out station_data]

Writes the SDS archive, ``stations.xml``, ``truth.csv``, ``sources.csv``,
``manifest.json`` and ``README.md`` with
:func:`noisecorr.synth.write_network`. Running it twice gives identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obspy import UTCDateTime  # noqa: E402

from noisecorr.synth import read_truth, write_network  # noqa: E402
from noisecorr.synth.response import STS2_POLES, sts2_response  # noqa: E402

#: Everything that defines the sample. Changing it changes the data.
PARAMS = dict(
    n_stations=6, hours=3.0, seed=2024, velocity=3.0, sampling_rate=20.0,
    start=UTCDateTime(2024, 1, 1, 22, 30, 0),
    gaps=[("S0003", 2400.0, 2430.0)],  # 30 s gap, 2024-01-01 23:10:00 to 23:10:30
    center=(47.0, 10.0), radius_km=50.0, n_sources=1000, snr=2.0,
    band=(0.1, 0.2, 4.0, 5.0), amplitude=1e-6)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def ccf_peaks(out: Path) -> dict:
    """{(source, receiver): (causal, acausal)} peak lags in samples of the
    3-h cross-correlation of the response-corrected records (gap zero-filled),
    C(tau) = sum_t a(t) b(t + tau)."""
    import numpy as np
    from obspy import read_inventory
    from obspy.clients.filesystem.sds import Client

    p = PARAMS
    client, inv = Client(str(out / "SDS")), read_inventory(str(out / "stations.xml"))
    t0, t1 = p["start"], p["start"] + p["hours"] * 3600
    npts = int(round(p["hours"] * 3600 * p["sampling_rate"]))
    data = {}
    for i in range(1, p["n_stations"] + 1):
        st = client.get_waveforms("XS", f"S{i:04d}", "", "BHZ", t0, t1)
        st.merge(fill_value=0).remove_response(inventory=inv, output="VEL")
        data[f"XS.S{i:04d}"] = st[0].data[:npts].astype(float)
    maxlag = int(60 * p["sampling_rate"])
    peaks = {}
    for a, b in read_truth(out / "truth.csv"):
        n = 2 * npts
        c = np.fft.irfft(np.conj(np.fft.rfft(data[a], n)) * np.fft.rfft(data[b], n), n)
        peaks[(a, b)] = (int(np.argmax(c[:maxlag + 1])),
                         -int(np.argmax(np.concatenate([c[:1], c[-maxlag:][::-1]]))))
    return peaks


def write_readme(out: Path, archive) -> None:
    p = PARAMS
    start = p["start"]
    end = start + p["hours"] * 3600
    gap_sta, g0, g1 = p["gaps"][0]
    files = sorted(q for q in (out / "SDS").rglob("*") if q.is_file())
    total = sum(q.stat().st_size for q in out.rglob("*") if q.is_file())
    truth = read_truth(out / "truth.csv")
    sens = sts2_response(p["sampling_rate"]).instrument_sensitivity.value
    lines = [
        "# station_data: a small synthetic sample with a known answer",
        "",
        "Made by `scripts/make_station_data.py` with `noisecorr.synth.write_network`",
        "(deterministic: regenerating gives identical bytes with the same ObsPy",
        "version, which StationXML records). Do not edit by hand;",
        "change `PARAMS` in the script and rerun:",
        "",
        "    .venv/bin/python scripts/make_station_data.py",
        "",
        "## What is in it",
        "",
        f"- Network `XS`, {p['n_stations']} stations `S0001`..`S{p['n_stations']:04d}`"
        " (codes sort in the same order as their numbers, so `--stations N`"
        " takes S0001..S000N).",
        f"- One channel per station: `BHZ`, location code empty, "
        f"{p['sampling_rate']:g} Hz, int32 counts, STEIM2, 4096-byte records.",
        f"- Span {start} to {end} ({p['hours']:g} h); it crosses midnight, so each",
        "  channel has two SDS day files (day 001 and day 002 of 2024).",
        f"- A gap on {gap_sta}: no data from {start + g0} to {start + g1}"
        f" ({g1 - g0:g} s) in day 2024.001.",
        f"- Layout: SDS (`SDS/YEAR/NET/STA/CHAN.D/NET.STA.LOC.CHAN.D.YEAR.DOY`);"
        " read it with `obspy.clients.filesystem.sds.Client('station_data/SDS')`.",
        f"- Size: {total / 1e6:.2f} MB in all.",
        "",
        "| station | latitude | longitude | elevation (m) |",
        "|---|---|---|---|",
    ]
    for s in archive.manifest["stations"]:
        lines.append(f"| {s['code']} | {s['latitude']:.6f} | {s['longitude']:.6f} | "
                     f"{s['elevation']:g} |")
    lines += [
        "",
        "## Instrument response (`stations.xml`)",
        "",
        "Standard two-stage StationXML response on every channel:",
        "",
        "1. `PolesZerosResponseStage`, M/S to V: Streckeisen STS-2 published poles and",
        f"   zeros (Laplace, rad/s; zeros 0, 0; poles {', '.join(str(x) for x in STS2_POLES)}),",
        "   normalised at 1 Hz, gain 1500 V/(m/s).",
        "2. `CoefficientsTypeResponseStage`, V to COUNTS: 24-bit digitizer,",
        "   1,677,721.6 counts/V, no filter coefficients.",
        "",
        f"Overall sensitivity {sens:.5e} counts/(m/s) at 1 Hz. The data are ground",
        "velocity convolved with this very response (evaluated by evalresp), so",
        "`Trace.remove_response(inventory, output='VEL')` recovers the ground velocity.",
        "",
        "## How the data were made (the known answer)",
        "",
        f"{p['n_sources']} noise sources on an annulus {3 * p['radius_km']:g} to "
        f"{5 * p['radius_km']:g} km around the network centre {p['center']} emit",
        f"uniform white noise band-limited to {p['band'][1]:g}-{p['band'][2]:g} Hz",
        f"(smooth tapers to 0 at {p['band'][0]:g} and {p['band'][3]:g} Hz), propagating at",
        f"{p['velocity']:g} km/s on a spherical Earth (R = 6371 km) with cylindrical spreading;",
        f"local noise per station with coherent/local RMS ratio {p['snr']:g};",
        f"coherent ground-velocity RMS about {p['amplitude']:g} m/s. Seed {p['seed']}.",
        "Full parameter set: `manifest.json`; source positions: `sources.csv`.",
        "",
        "`truth.csv` lists every pair (source < receiver alphabetically) with the",
        "great-circle distance (km) and travel time distance/velocity (s). With the",
        "convention C(tau) = sum_t a(t) b(t + tau) (a = source, b = receiver), the",
        "cross-correlation has peaks at +travel_time and -travel_time (sources all",
        "around). A finite ring of sources biases the peaks slightly inwards (about",
        "one sample); the table below shows the peaks of a plain 3-h correlation of",
        "the response-corrected records (numpy FFT, no whitening, gap zero-filled).",
        "",
        "| source | receiver | distance (km) | travel time (s) | in samples |"
        " causal peak | acausal peak |",
        "|---|---|---|---|---|---|---|",
    ]
    peaks = ccf_peaks(out)
    fs = p["sampling_rate"]
    for (a, b), (d, t) in sorted(truth.items()):
        pos, neg = peaks[(a, b)]
        lines.append(f"| {a} | {b} | {d:.3f} | {t:.3f} | {t * fs:.2f} | {pos} | {neg} |")
    lines += [
        "",
        "## Files and checksums (md5)",
        "",
    ]
    for q in files + [out / "stations.xml", out / "truth.csv"]:
        lines.append(f"- `{q.relative_to(out).as_posix()}` {q.stat().st_size} bytes, "
                     f"`{_md5(q)}`")
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "station_data"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    archive = write_network(out, reuse=False, **PARAMS)
    write_readme(out, archive)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
