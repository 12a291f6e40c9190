"""Tests of write_network: SDS + StationXML read back with ObsPy, response
removal recovers ground velocity, truth table, caching, gaps."""

import json
from pathlib import Path

import numpy as np
import pytest
from obspy import UTCDateTime, read_inventory
from obspy.clients.filesystem.sds import Client

from noisecorr.synth import SyntheticNetwork, read_truth, write_network
from noisecorr.synth.geometry import destination

START = UTCDateTime(2024, 3, 1, 23, 0, 0)  # crosses midnight: two day files
KW = dict(n_stations=3, hours=1.5, seed=11, start=START, n_sources=40,
          chunk_length=600.0, chunks_per_batch=3)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return write_network(tmp_path_factory.mktemp("synth") / "net",
                         gaps=[("S0002", 1800.0, 1800.0 + 12.35)], **KW)


def sds_bytes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_of_the_folder(archive):
    root = archive.path
    names = sorted(p.relative_to(root).as_posix() for p in (root / "SDS").rglob("*.D.*"))
    assert "SDS/2024/XS/S0001/BHZ.D/XS.S0001..BHZ.D.2024.061" in names
    assert "SDS/2024/XS/S0001/BHZ.D/XS.S0001..BHZ.D.2024.062" in names
    assert len(names) == 3 * 2
    man = json.loads((root / "manifest.json").read_text())
    assert man["complete"] and man["parameters"]["seed"] == 11
    assert [s["code"] for s in man["stations"]] == ["XS.S0001", "XS.S0002", "XS.S0003"]


def test_sds_reads_back_and_equals_generator(archive):
    client = Client(str(archive.sds_root))
    st = client.get_waveforms("XS", "S0001", "", "BHZ", START, START + 5400)
    st.merge()
    assert len(st) == 1
    tr = st[0]
    assert tr.stats.starttime == START and tr.stats.npts == 5400 * 20
    assert tr.data.dtype == np.int32
    net = SyntheticNetwork(n_stations=3, seed=11, start=START, n_sources=40,
                           chunk_length=600.0, chunks_per_batch=3)
    expect = np.rint(net.generate(0, 5400, stations=[0])[0, 0]).astype(np.int32)
    # generated alone vs in a block of 3 stations: BLAS rounding may flip the
    # integer rounding of a few samples by one count
    diff = np.abs(tr.data.astype(np.int64) - expect)
    assert diff.max() <= 1 and np.count_nonzero(diff) < 0.01 * diff.size


def test_gap_is_written(archive):
    st = Client(str(archive.sds_root)).get_waveforms("XS", "S0002", "", "BHZ",
                                                     START, START + 5400)
    st.merge()
    gaps = st.get_gaps()
    assert len(gaps) == 1
    g = gaps[0]
    # last sample before the gap and first after it
    assert UTCDateTime(g[4]) == START + 1800 - 0.05
    assert UTCDateTime(g[5]) == START + 1800 + 12.35  # on a sample: first one kept


def test_stationxml_has_standard_response(archive):
    inv = read_inventory(str(archive.stationxml))
    cha = inv.select(station="S0003", channel="BHZ")[0][0][0]
    stages = cha.response.response_stages
    assert [s.__class__.__name__ for s in stages] == ["PolesZerosResponseStage",
                                                      "CoefficientsTypeResponseStage"]
    assert stages[0].input_units == "M/S" and stages[-1].output_units == "COUNTS"
    assert len(stages[0].poles) == 5 and len(stages[0].zeros) == 2
    sens = cha.response.instrument_sensitivity.value
    assert sens == pytest.approx(1500.0 * 2 ** 23 / 5.0, rel=1e-3)
    assert cha.sample_rate == 20.0 and cha.dip == -90.0
    coords = inv.get_coordinates("XS.S0003..BHZ", START)
    net = SyntheticNetwork(n_stations=3, seed=11, n_sources=40)
    assert coords["latitude"] == net.stations[2].latitude


def test_remove_response_recovers_ground_velocity(archive):
    inv = read_inventory(str(archive.stationxml))
    st = Client(str(archive.sds_root)).get_waveforms("XS", "S0001", "", "BHZ",
                                                     START, START + 5400)
    st.merge()
    st.remove_response(inventory=inv, output="VEL", pre_filt=(0.05, 0.1, 6.0, 8.0))
    net = SyntheticNetwork(n_stations=3, seed=11, start=START, n_sources=40,
                           chunk_length=600.0, chunks_per_batch=3)
    truth = net.generate(0, 5400, stations=[0], output="VEL")[0, 0].astype(float)
    got = st[0].data
    sl = slice(20 * 600, -20 * 600)  # away from remove_response's taper
    err = np.std(got[sl] - truth[sl]) / np.std(truth[sl])
    assert err < 0.03
    assert np.std(got[sl]) == pytest.approx(np.std(truth[sl]), rel=0.03)


def test_truth_table(archive):
    truth = read_truth(archive.truth_csv)
    assert set(truth) == {("XS.S0001", "XS.S0002"), ("XS.S0001", "XS.S0003"),
                          ("XS.S0002", "XS.S0003")}
    header = archive.truth_csv.read_text().splitlines()[0]
    assert header == "source,receiver,distance_km,travel_time_s"
    d, t = truth[("XS.S0001", "XS.S0002")]
    assert t == pytest.approx(d / 3.0, abs=2e-6)


def test_reuse_and_determinism(archive, tmp_path):
    again = write_network(archive.path, gaps=[("S0002", 1800.0, 1800.0 + 12.35)], **KW)
    assert again.reused
    other = write_network(tmp_path / "b", gaps=[("S0002", 1800.0, 1800.0 + 12.35)], **KW)
    assert not other.reused
    assert sds_bytes(other.sds_root) == sds_bytes(archive.sds_root)
    assert other.truth_csv.read_bytes() == archive.truth_csv.read_bytes()
    changed = write_network(tmp_path / "b", gaps=[("S0002", 1800.0, 1800.0 + 12.35)],
                            **{**KW, "seed": 12})
    assert not changed.reused
    assert sds_bytes(changed.sds_root) != sds_bytes(archive.sds_root)


def test_refuses_to_overwrite_foreign_data(tmp_path):
    (tmp_path / "SDS").mkdir()
    with pytest.raises(FileExistsError):
        write_network(tmp_path, n_stations=2, hours=0.1)


def test_truth_from_disk_matches_ccf_peak(tmp_path):
    """End to end through miniSEED and response removal: the CCF of the two
    records peaks at +travel_time from truth.csv. Stations and sources lie on
    one great circle, sources to the west (end-fire), so every source gives
    exactly d/v and the peak, interpolated, is within a fraction of a sample."""
    c = (47.0, 10.0)
    pts = [tuple(float(x) for x in destination(*c, 270.0, 30.0)),
           tuple(float(x) for x in destination(*c, 90.0, 45.0))]
    arch = write_network(tmp_path / "pair", n_stations=2, hours=1.0, seed=21,
                         layout=pts, n_sources=150, source_azimuths=(270.0, 270.0))
    (key, (dist, tt)), = read_truth(arch.truth_csv).items()
    inv = read_inventory(str(arch.stationxml))
    client = arch.client()
    t0 = UTCDateTime(2024, 1, 1)
    data = []
    for code in key:
        st = client.get_waveforms("XS", code.split(".")[1], "", "BHZ", t0, t0 + 3600)
        st.merge().remove_response(inventory=inv, output="VEL")
        data.append(st[0].data.astype(float))
    a, b = data
    n = 2 * len(a)
    cc = np.fft.irfft(np.conj(np.fft.rfft(a, n)) * np.fft.rfft(b, n), n)
    maxlag = 40 * 20
    cc = np.concatenate([cc[-maxlag:], cc[:maxlag + 1]])
    i = int(np.argmax(cc))
    lag = (i - maxlag) / 20.0
    assert abs(lag - tt) <= 1 / 20.0
    # parabolic interpolation of the peak: sub-sample agreement
    y0, y1, y2 = cc[i - 1:i + 2]
    frac = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    assert abs(lag + frac / 20.0 - tt) < 0.25 / 20.0
