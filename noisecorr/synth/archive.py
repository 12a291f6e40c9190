"""Write a synthetic network to disk: SDS miniSEED, StationXML, truth table.

Folder layout written by :func:`write_network`::

    out_dir/
        SDS/YEAR/NET/STA/CHAN.D/NET.STA.LOC.CHAN.D.YEAR.DOY   int32 counts, STEIM2
        stations.xml        StationXML, STS-2 + digitizer response per channel
        truth.csv           source,receiver,distance_km,travel_time_s
        dvv_truth.csv       day,dvv (fraction) of each day, with a time-varying medium
        sources.csv         index,latitude,longitude of the noise sources
        manifest.json       parameters; written last, so its presence with
                            "complete": true means the folder is whole

A later call with identical parameters finds the manifest and reuses the
folder without generating anything.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from obspy import Trace, UTCDateTime

from .generator import SyntheticNetwork
from .response import build_inventory

log = logging.getLogger(__name__)

#: Bump when the generator's output for given parameters changes.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SynthArchive:
    """Paths of a written synthetic network."""

    path: Path
    sds_root: Path
    stationxml: Path
    truth_csv: Path
    manifest: dict
    reused: bool

    def client(self):
        """An ObsPy SDS client on the archive."""
        from obspy.clients.filesystem.sds import Client
        return Client(str(self.sds_root))


def _to_utc(start: UTCDateTime, t) -> UTCDateTime:
    return t if isinstance(t, UTCDateTime) else start + float(t)


def _json_default(o):
    if isinstance(o, UTCDateTime):
        return str(o)
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    if hasattr(o, "to_json"):  # a DvvHistory
        return o.to_json()
    if hasattr(o, "kind") and hasattr(o, "describe"):  # a DispersionModel
        return {"dispersion": o.kind, "params": o.params}
    raise TypeError(f"not JSON serialisable: {o!r}")


def _canonical(params: dict) -> dict:
    return json.loads(json.dumps(params, default=_json_default, sort_keys=True))


def read_truth(path) -> dict:
    """``{(source, receiver): (distance_km, travel_time_s)}`` from ``truth.csv``."""
    out = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            out[(row["source"], row["receiver"])] = (float(row["distance_km"]),
                                                     float(row["travel_time_s"]))
    return out


def sds_path(root: Path, network, station, location, channel, t: UTCDateTime) -> Path:
    """SDS file path of the day containing ``t``."""
    return (Path(root) / f"{t.year}" / network / station / f"{channel}.D" /
            f"{network}.{station}.{location}.{channel}.D.{t.year}.{t.julday:03d}")


def _segments(t0: UTCDateTime, n: int, fs: float, cuts):
    """Split samples [0, n) starting at t0 at UTC midnights and remove gap
    intervals ``cuts`` [(ga, gb)], returning [(i0, i1)] sample ranges."""
    bounds = [0, n]
    day = UTCDateTime(t0.date)
    while True:
        day += 86400
        i = int(np.ceil(round((day - t0) * fs, 6)))
        if i >= n:
            break
        bounds.append(i)
    bounds = sorted(set(bounds))
    segs = list(zip(bounds[:-1], bounds[1:]))
    for ga, gb in cuts:
        ia = int(np.ceil(round((ga - t0) * fs, 6)))
        ib = int(np.ceil(round((gb - t0) * fs, 6)))
        new = []
        for a, b in segs:
            if ib <= a or ia >= b:
                new.append((a, b))
                continue
            if ia > a:
                new.append((a, ia))
            if ib < b:
                new.append((ib, b))
        segs = new
    return [s for s in segs if s[1] > s[0]]


def write_network(out_dir, n_stations: int = 10, hours: float = 1.0, seed: int = 0,
                  velocity: float = 3.0, sampling_rate: float = 20.0,
                  start=UTCDateTime(2024, 1, 1), gaps=(), encoding: str = "STEIM2",
                  reclen: int = 4096, reuse: bool = True, **network_kwargs) -> SynthArchive:
    """Generate a synthetic network and write it as an SDS archive.

    Parameters
    ----------
    out_dir : path
        Folder to write (created). If it holds a complete archive with the
        same parameters and ``reuse`` is true, nothing is regenerated.
    n_stations, seed, velocity, sampling_rate, start
        See :class:`~noisecorr.synth.generator.SyntheticNetwork`.
    hours : float
        Duration from ``start``.
    gaps : sequence of (station, t0, t1)
        Data removed from all channels of ``station`` (``"STA"`` or
        ``"NET.STA"``) in [t0, t1); times as UTCDateTime or seconds after
        ``start``. Exercises gap handling downstream.
    encoding : {"STEIM2", "INT32"}
        miniSEED encoding of the int32 counts.
    reclen : int
        miniSEED record length in bytes.
    **network_kwargs
        Passed to :class:`SyntheticNetwork` (``n_sources``, ``band``,
        ``snr``, ``components``, ``layout``, ...).

    Returns
    -------
    SynthArchive
    """
    out = Path(out_dir)
    start = UTCDateTime(start)
    end = start + float(hours) * 3600.0
    gaps = [(str(s), _to_utc(start, a), _to_utc(start, b)) for s, a, b in gaps]
    params = _canonical(dict(
        format_version=FORMAT_VERSION, n_stations=n_stations, hours=hours, seed=seed,
        velocity=velocity, sampling_rate=sampling_rate, start=start, gaps=gaps,
        encoding=encoding, reclen=reclen, network_kwargs=network_kwargs))
    man_path = out / MANIFEST
    if man_path.exists():
        old = json.loads(man_path.read_text())
        if reuse and old.get("complete") and old.get("parameters") == params:
            log.info("reusing synthetic archive in %s", out)
            return SynthArchive(out, out / "SDS", out / "stations.xml", out / "truth.csv",
                                old, True)
        # ours, but different or incomplete: clear what we wrote
        man_path.unlink()
        for name in ("SDS", "stations.xml", "truth.csv", "sources.csv", "dvv_truth.csv"):
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    elif (out / "SDS").exists():
        raise FileExistsError(f"{out / 'SDS'} exists without a {MANIFEST}; "
                              "refusing to overwrite data this function did not write")
    out.mkdir(parents=True, exist_ok=True)

    net = SyntheticNetwork(n_stations=n_stations, seed=seed, velocity=velocity,
                           sampling_rate=sampling_rate, start=start, **network_kwargs)
    sds = out / "SDS"
    fs = net.sampling_rate
    cuts_by_sta: dict[str, list] = {}
    for sta, a, b in gaps:
        code = sta if "." in sta else f"{net.network}.{sta}"
        cuts_by_sta.setdefault(code, []).append((a, b))
    for batch in net.iter_batches(start, end, output="COUNTS"):
        counts = np.rint(batch.data).astype(np.int32)
        for k, st in enumerate(batch.stations):
            segs = _segments(batch.starttime, counts.shape[-1], fs,
                             cuts_by_sta.get(st.code, []))
            for c, cha in enumerate(batch.channels):
                for i0, i1 in segs:
                    t = batch.starttime + i0 / fs
                    path = sds_path(sds, st.network, st.station, "", cha, t)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tr = Trace(np.ascontiguousarray(counts[k, c, i0:i1]), header=dict(
                        network=st.network, station=st.station, location="",
                        channel=cha, sampling_rate=fs, starttime=t))
                    with open(path, "ab") as fh:
                        tr.write(fh, format="MSEED", encoding=encoding, reclen=reclen)
    inv = build_inventory(net.stations, net.channels, fs, start)
    inv.write(str(out / "stations.xml"), format="STATIONXML")
    _write_truth(out / "truth.csv", net.truth())
    with open(out / "sources.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "latitude", "longitude"])
        for i, (la, lo) in enumerate(zip(net.source_latitudes, net.source_longitudes)):
            w.writerow([i, f"{la:.6f}", f"{lo:.6f}"])
    if net.dvv is not None:
        n_days = int(np.ceil((UTCDateTime(end.date) - UTCDateTime(start.date)) / 86400.0 + (end > UTCDateTime(end.date))))
        days = UTCDateTime(start.date).timestamp + 86400.0 * np.arange(max(n_days, 1))
        with open(out / "dvv_truth.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["day", "dvv"])
            for t, v in zip(days, net.dvv.at(days)):
                w.writerow([UTCDateTime(t).date.isoformat(), f"{v:.9g}"])
    manifest = dict(
        complete=True, parameters=params,
        stations=[dict(code=s.code, latitude=s.latitude, longitude=s.longitude,
                       elevation=s.elevation) for s in net.stations],
        channels=list(net.channels), starttime=str(start), endtime=str(end),
        chunk_samples=net.chunk_samples, pad_before=net.pad_before,
        pad_after=net.pad_after)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, default=_json_default))
    os.replace(tmp, man_path)
    return SynthArchive(out, sds, out / "stations.xml", out / "truth.csv", manifest, False)


def _write_truth(path: Path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "receiver", "distance_km", "travel_time_s"])
        for src, rcv, d, t in rows:
            w.writerow([src, rcv, f"{d:.6f}", f"{t:.6f}"])
