#!/usr/bin/env python
"""Generate tests/data/bad/: a small archive where most stations carry one kind of bad input.

    .venv/bin/python scripts/make_bad_inputs.py [--out tests/data/bad]

A synthetic network of 16 stations, 20 minutes at 20 Hz (noisecorr.synth, seed 7), written
as SDS with one StationXML file per station in ``stationxml/``; then each defect below is
applied to its own station. ``defects.json`` lists them with the reason the run must report
(a regular expression) and whether the station must still be used. ``clean/`` holds the
same archive without any defect (the good stations' results must equal a run on it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: station -> (what is wrong, regex of the reported reason or None, station still used)
DEFECTS = {
    "S0005": ("truncated miniSEED (cut inside a record)", r"truncated miniSEED|not readable", False),
    "S0006": ("corrupt miniSEED (garbage over record headers)", r"corrupt or truncated miniSEED|not readable", False),
    "S0007": ("a text file with a .mseed name", r"not readable waveform data", False),
    "S0008": ("an empty file", r"empty file", False),
    "S0009": ("NaN and inf samples (FLOAT32 encoding)", r"NaN|inf|non-finite", False),
    "S0010": ("gaps and overlaps", None, True),
    "S0011": ("mixed sampling rates (20 and 40 Hz segments)", r"sampling rate", False),
    "S0012": ("missing from the StationXML", r"missing from the StationXML", False),
    "S0013": ("a response that cannot be removed (no response stages)", r"response", False),
    "S0014": ("a clock jump of +2.5 s half-way", None, True),
    "S0015": ("data outside the requested span (a day late)", r"no data", False),
    "S0016": ("malformed StationXML", r"malformed StationXML", False),
}
GOOD = ["S0001", "S0002", "S0003", "S0004"]


def _mseed(root, code):
    files = sorted((root / "SDS").rglob(f"XS.{code}..*"))
    assert len(files) == 1, files
    return files[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "bad"))
    args = ap.parse_args(argv)
    from obspy import Stream, read, read_inventory

    from noisecorr.synth import write_network

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    clean = out / "clean"
    write_network(clean, n_stations=16, hours=1 / 3, seed=7, reuse=False)
    inv = read_inventory(str(clean / "stations.xml"))
    (clean / "stationxml").mkdir()
    for net in inv:
        for sta in net:
            one = inv.select(network=net.code, station=sta.code)
            one.write(str(clean / "stationxml" / f"{net.code}.{sta.code}.xml"), format="STATIONXML")
    (clean / "stations.xml").unlink()
    bad = out / "archive"
    shutil.copytree(clean, bad)
    rng = np.random.default_rng(7)

    f = _mseed(bad, "S0005")
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2 + 1000])

    f = _mseed(bad, "S0006")
    data = bytearray(f.read_bytes())
    for rec in range(0, len(data), 4096):
        data[rec: rec + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    f.write_bytes(bytes(data))

    _mseed(bad, "S0007").write_text("station,value\nthis is not miniSEED\n" * 50)
    _mseed(bad, "S0008").write_bytes(b"")

    f = _mseed(bad, "S0009")
    st = read(str(f))
    for tr in st:
        tr.data = tr.data.astype(np.float32)
        tr.data[1000:1010] = np.nan
        tr.data[5000] = np.inf
    st.write(str(f), format="MSEED", encoding="FLOAT32")

    f = _mseed(bad, "S0010")
    tr = read(str(f))[0]
    fs = tr.stats.sampling_rate
    a = tr.slice(tr.stats.starttime, tr.stats.starttime + 300)
    b = tr.slice(tr.stats.starttime + 320, tr.stats.starttime + 700)  # 20 s gap
    c = tr.slice(tr.stats.starttime + 690, tr.stats.endtime)  # 10 s overlap
    Stream([a, b, c]).write(str(f), format="MSEED", encoding="STEIM2")

    f = _mseed(bad, "S0011")
    tr = read(str(f))[0]
    first = tr.slice(tr.stats.starttime, tr.stats.starttime + 600).copy()
    second = tr.slice(tr.stats.starttime + 600 + 1 / fs, tr.stats.endtime).copy()
    second.data = np.repeat(second.data, 2)
    second.stats.sampling_rate = 2 * fs
    Stream([first, second]).write(str(f), format="MSEED", encoding="STEIM2")

    (bad / "stationxml" / "XS.S0012.xml").unlink()

    path = bad / "stationxml" / "XS.S0013.xml"
    one = read_inventory(str(path))
    for ch in one[0][0]:
        ch.response.response_stages = []
        ch.response.instrument_sensitivity = None
    one.write(str(path), format="STATIONXML")

    f = _mseed(bad, "S0014")
    tr = read(str(f))[0]
    first = tr.slice(tr.stats.starttime, tr.stats.starttime + 600).copy()
    second = tr.slice(tr.stats.starttime + 600 + 1 / fs, tr.stats.endtime).copy()
    second.stats.starttime += 2.5
    Stream([first, second]).write(str(f), format="MSEED", encoding="STEIM2")

    f = _mseed(bad, "S0015")
    st = read(str(f))
    for tr in st:
        tr.stats.starttime += 86400
    st.write(str(f), format="MSEED", encoding="STEIM2")

    path = bad / "stationxml" / "XS.S0016.xml"
    path.write_text(path.read_text()[: len(path.read_text()) // 2])

    (out / "defects.json").write_text(json.dumps(
        {"good": GOOD, "defects": {k: {"what": w, "reason": r, "used": u} for k, (w, r, u) in DEFECTS.items()}},
        indent=1))
    (out / "bad_config.yaml").write_text("mapping: multiprocess\nprocessing:\n  cc_len: [300\n  step: 150\n")
    (out / "unknown_keys.yaml").write_text("mapping: sequential\nmaping: multiprocess\nprocessing:\n  cc_lenght: 300\n")
    (out / "run.yaml").write_text(
        "# the configuration the bad-input tests use\n"
        "processing:\n  cc_len: 300.0\n  step: 150.0\n  freqmin: 0.1\n  freqmax: 2.0\n  maxlag: 60.0\n")
    (out / "README.md").write_text(
        "# Bad input corpus\n\nGenerated by `scripts/make_bad_inputs.py` (do not edit by hand). `archive/` is an SDS\n"
        "archive with StationXML per station in `archive/stationxml/`; `clean/` is the same network\n"
        "without defects. Stations and their defects (`defects.json`):\n\n"
        + "\n".join(f"- XS.{k}: {w}" for k, (w, _, _) in DEFECTS.items())
        + "\n- XS.S0001..S0004: good\n\nConfigs: `run.yaml` (used by the tests), `bad_config.yaml` (invalid YAML),\n"
        "`unknown_keys.yaml` (misspelt keys).\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"bad-input corpus in {out}: {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
