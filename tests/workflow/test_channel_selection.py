"""Channel and location collisions, end to end, in the tiled and the per-pair paths.

Ground truth: a "clean" SDS archive of three synthetic stations (100 Hz HH?, one channel per
station, XS.S0002 at location 00) and a "mixed" archive holding the same data plus a BHZ of
XS.S0001 (20 Hz, other noise) and a second location 10 of XS.S0002 (other noise). With the
default priorities the mixed archive must give exactly the clean archive's results (HH and
location 00 chosen, the rest dropped and reported); with ``all_locations`` XS.S0002.00 and
XS.S0002.10 are two stations whose results are distinct.
"""

import json
import shutil

import numpy as np
import pytest
from obspy import UTCDateTime, read, read_inventory

from noisecorr import open_results
from noisecorr.synth import write_network
from noisecorr.synth.archive import sds_path
from noisecorr.synth.response import sts2_response
from noisecorr.workflow import load_config, run_workflow

START, END = "2024-01-01T00:00:00", "2024-01-01T01:00:00"
COORDS = [(47.0, 9.6), (47.25, 10.25), (46.8, 10.35)]
PAIRS = [("XS.S0001", "XS.S0002"), ("XS.S0001", "XS.S0003"), ("XS.S0002", "XS.S0003")]


def _relabel_sds(src_root, dst_root, station, location=None, channel=None, decimate=1):
    """Copy ``station``'s day files from one SDS tree into another, relabelled."""
    for path in sorted(src_root.rglob(f"XS.{station}.*")):
        for tr in read(str(path)):
            if decimate > 1:
                tr.data = tr.data.astype(np.float64)
                tr.decimate(decimate)
                tr.data = np.rint(tr.data).astype(np.int32)
            tr.stats.location = tr.stats.location if location is None else location
            tr.stats.channel = tr.stats.channel if channel is None else channel
            out = sds_path(dst_root, "XS", station, tr.stats.location, tr.stats.channel, tr.stats.starttime)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "ab") as fh:
                tr.write(fh, format="MSEED", encoding="STEIM2")


def make_archives(tmp):
    """``(clean, mixed)`` archive folders written under ``tmp``."""
    kw = dict(n_stations=3, hours=1.0, sampling_rate=100.0, layout=COORDS, radius_km=60.0, n_sources=200)
    base, other = write_network(tmp / "base", seed=0, **kw), write_network(tmp / "other", seed=7, **kw)

    clean = tmp / "clean"
    shutil.copytree(base.sds_root, clean / "SDS", ignore=shutil.ignore_patterns("S0002"))
    _relabel_sds(base.sds_root, clean / "SDS", "S0002", location="00")
    inv = read_inventory(str(base.stationxml))
    for ch in next(s for s in inv[0] if s.code == "S0002"):
        ch.location_code = "00"
    inv.write(str(clean / "stations.xml"), format="STATIONXML")

    mixed = tmp / "mixed"
    shutil.copytree(clean, mixed)
    _relabel_sds(other.sds_root, mixed / "SDS", "S0001", channel="BHZ", decimate=5)
    _relabel_sds(other.sds_root, mixed / "SDS", "S0002", location="10")
    inv = read_inventory(str(clean / "stations.xml"))
    s1, s2 = (next(s for s in inv[0] if s.code == code) for code in ("S0001", "S0002"))
    bhz = s1[0].copy()
    bhz.code, bhz.sample_rate, bhz.response = "BHZ", 20.0, sts2_response(20.0)
    loc10 = s2[0].copy()
    loc10.location_code = "10"
    s1.channels.append(bhz)
    s2.channels.append(loc10)
    inv.write(str(mixed / "stations.xml"), format="STATIONXML")
    return clean, mixed


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    return make_archives(tmp_path_factory.mktemp("collisions"))


def _run(tmp_path, data, name, **overrides):
    config = load_config(overrides={"data": str(data), "out": str(tmp_path / name), "start": START,
                                    "end": END, **overrides})
    report = run_workflow(config)
    with open_results(report.results) as res:
        stacks = {(a, b): res.stack(a, b, "ZZ")[1] for a, b in res.pairs("ZZ")}
    return report, stacks


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled", "per-pair"])
def test_priorities_choose_hh_and_location_00_as_if_alone(archives, tmp_path, tiled):
    clean, mixed = archives
    _, want = _run(tmp_path, clean, "clean", tiled=tiled)
    report, got = _run(tmp_path, mixed, "mixed", tiled=tiled)
    assert sorted(want) == PAIRS and sorted(got) == PAIRS
    for pair in PAIRS:  # the same channels, so bit for bit the same stacks
        np.testing.assert_array_equal(got[pair], want[pair], err_msg=f"{pair} differs from the HHZ-only archive")
        assert np.abs(want[pair]).max() > 0
    assert not report.skipped and report.channels == 3
    summary = json.loads((tmp_path / "mixed" / "summary.json").read_text())
    for selection in (report.channel_selection, summary["channel_selection"]):
        assert selection["chosen"] == {"XS.S0001": ["XS.S0001..HHZ"], "XS.S0002": ["XS.S0002.00.HHZ"],
                                       "XS.S0003": ["XS.S0003..HHZ"]}
        dropped = {d["seed_id"]: d["reason"] for d in selection["dropped"]}
        assert dropped == {"XS.S0001..BHZ": "XS.S0001..HH? is earlier in channel_priority",
                           "XS.S0002.10.HHZ": "XS.S0002.00.HH? is earlier in location_priority"}
    table = report.table()
    assert "channels dropped" in table and "XS.S0001..BHZ" in table and "XS.S0002.10.HHZ" in table


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled", "per-pair"])
def test_all_locations_are_stations_of_their_own(archives, tmp_path, tiled):
    clean, mixed = archives
    _, want = _run(tmp_path, clean, "clean", tiled=tiled)
    report, got = _run(tmp_path, mixed, "all", tiled=tiled, all_locations=True)
    stations = ["XS.S0001", "XS.S0002.00", "XS.S0002.10", "XS.S0003"]
    assert sorted(got) == [(a, b) for i, a in enumerate(stations) for b in stations[i + 1:]]
    assert report.stations == 4 and report.channel_selection["chosen"]["XS.S0002.10"] == ["XS.S0002.10.HHZ"]
    # one band per location still: S0001's BHZ stays out
    assert [d["seed_id"] for d in report.channel_selection["dropped"]] == ["XS.S0001..BHZ"]
    # location 00 holds the clean archive's data, location 10 other noise
    scale = np.abs(want[("XS.S0001", "XS.S0002")]).max()
    for a, b in [("XS.S0001", "XS.S0002"), ("XS.S0002", "XS.S0003")]:
        key = (a.replace("S0002", "S0002.00"), b.replace("S0002", "S0002.00"))
        np.testing.assert_allclose(got[key], want[(a, b)], atol=1e-5 * scale, rtol=0)
        other = (a.replace("S0002", "S0002.10"), b.replace("S0002", "S0002.10"))
        assert np.abs(got[other] - got[key]).max() > 0.1 * np.abs(got[key]).max()
    with open_results(report.results) as res:
        assert [s["code"] for s in res.stations()] == stations
        meta = res.meta("XS.S0002.00", "XS.S0002.10", "ZZ")
        assert meta["distance_km"] == pytest.approx(0.0, abs=1e-6)
