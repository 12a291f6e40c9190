"""dv/v results as HDF5 (``dvv.h5``) and CSV (per pair, per station, network).

``dvv.h5`` layout: datasets ``times`` (POSIX s), ``pairs`` (n, 2) strings, ``distance_km``,
``dvv``, ``error``, ``coefficient`` (n_pairs, n_times) float64, ``valid`` bool, ``fits``
bool (n_pairs,), ``network/{dvv,error,count}`` and ``stations/<code>/{dvv,error,count}``
over times; the attribute ``config`` holds the :class:`~noisecorr.monitoring.DvvConfig`
as JSON. Written to a temporary name and renamed (never a half-written file).
CSV files are long tables (one row per pair or station and time, ISO UTC times) for a
spreadsheet; dv/v and errors in percent there, as fractions in HDF5.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["write", "read"]


def _iso(t: float) -> str:
    from obspy import UTCDateTime

    return UTCDateTime(float(t)).isoformat() + "Z"


def write(result, out_dir) -> dict:
    """Write ``dvv.h5``, ``dvv_pairs.csv``, ``dvv_stations.csv``, ``dvv_network.csv``.

    Returns ``{name: path}``.
    """
    import h5py

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    h5 = out / "dvv.h5"
    tmp = out / ".dvv.h5.tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["config"] = json.dumps(result.config.to_dict())
        f["times"] = result.times
        f["pairs"] = np.array(result.pairs, dtype="S")
        f["distance_km"] = result.distance_km
        for name in ("dvv", "error", "coefficient"):
            f.create_dataset(name, data=getattr(result, name), compression="gzip")
        f["valid"] = result.valid
        f["fits"] = result.fits
        g = f.create_group("network")
        for name, a in zip(("dvv", "error", "count"), result.network):
            g[name] = a
        s = f.create_group("stations")
        for code, vals in result.stations.items():
            gs = s.create_group(code)
            for name, a in zip(("dvv", "error", "count"), vals):
                gs[name] = a
    os.replace(tmp, h5)
    paths["hdf5"] = h5
    times = [_iso(t) for t in result.times]
    comp = result.config.component

    def table(name, header, rows):
        p = out / name
        tmpc = out / f".{name}.tmp"
        with open(tmpc, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        os.replace(tmpc, p)
        return p

    def pct(x):
        return "" if not np.isfinite(x) else f"{100.0 * x:.6f}"

    paths["pairs"] = table("dvv_pairs.csv",
                           ["source", "receiver", "component", "time", "dvv_percent", "error_percent",
                            "coefficient", "valid"],
                           ([a, b, comp, times[k], pct(result.dvv[i, k]), pct(result.error[i, k]),
                             "" if not np.isfinite(result.coefficient[i, k]) else f"{result.coefficient[i, k]:.5f}",
                             int(result.valid[i, k])]
                            for i, (a, b) in enumerate(result.pairs) for k in range(len(times))))
    paths["stations"] = table("dvv_stations.csv",
                              ["station", "component", "time", "dvv_percent", "error_percent", "n_pairs"],
                              ([code, comp, times[k], pct(v[0][k]), pct(v[1][k]), int(v[2][k])]
                               for code, v in result.stations.items() for k in range(len(times))))
    paths["network"] = table("dvv_network.csv",
                             ["component", "time", "dvv_percent", "error_percent", "n_pairs"],
                             ([comp, times[k], pct(result.network[0][k]), pct(result.network[1][k]),
                               int(result.network[2][k])] for k in range(len(times))))
    return paths


def read(path) -> dict:
    """``dvv.h5`` back as a dict of arrays (``config`` parsed, pairs as str tuples)."""
    import h5py

    with h5py.File(path, "r") as f:
        d = {k: f[k][()] for k in ("times", "distance_km", "dvv", "error", "coefficient", "valid", "fits")}
        d["pairs"] = [tuple(x.decode() for x in row) for row in f["pairs"][()]]
        d["config"] = json.loads(f.attrs["config"])
        d["network"] = tuple(f["network"][k][()] for k in ("dvv", "error", "count"))
        d["stations"] = {c: tuple(f["stations"][c][k][()] for k in ("dvv", "error", "count"))
                         for c in f["stations"]}
    return d
