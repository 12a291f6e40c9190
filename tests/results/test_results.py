"""Tests of the HDF5 results format: round trip, lag axis, resume, crash
safety, exports."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from obspy import UTCDateTime, read
from obspy.geodetics import gps2dist_azimuth

import noisecorr.results.index as index_mod
from noisecorr.results import ResultsWriter, lag_axis, merge_parts, open_results
from noisecorr.results.writer import list_parts, parts_dir

REPO = Path(__file__).resolve().parents[2]
FS = 20.0
STATIONS = [{"code": "XS.S0001", "latitude": 47.0, "longitude": 10.0, "elevation": 500.0},
            {"code": "XS.S0002", "latitude": 47.3, "longitude": 10.4, "elevation": 0.0},
            {"code": "XS.S0003", "latitude": 46.8, "longitude": 9.7, "elevation": 12.0}]
PARAMS = {"cc_len": 1800, "step": 900, "freqmin": 0.1, "freqmax": 2.0}


def stack_for(i, n):
    return np.random.default_rng(i).standard_normal(n).astype(np.float32)


def test_lag_axis_is_exact():
    lags = lag_axis(60.0, FS)
    assert lags.size == 2 * 1200 + 1 and lags[1200] == 0.0
    assert lags[0] == -60.0 and lags[-1] == 60.0
    assert np.all(np.diff(lags) > 0)
    # a delta at +k samples sits at exactly +k / fs
    assert lags[1200 + 37] == 37 / FS
    # maxlag not a multiple of dt: n = 2 * round(maxlag * fs) + 1
    assert lag_axis(1.03, FS).size == 2 * 21 + 1


def test_round_trip_stacks_and_metadata(tmp_path):
    path = tmp_path / "r.h5"
    n = 2 * int(round(30.0 * FS)) + 1
    substacks = np.vstack([stack_for(10, n), stack_for(11, n)])
    delta = np.zeros(n, np.float32)
    delta[n // 2 + 25] = 1.0
    with ResultsWriter(path, PARAMS, version="9.9.9", stations=STATIONS, sampling_rate=FS,
                       starttime=UTCDateTime(2024, 1, 1), endtime=UTCDateTime(2024, 1, 2)) as w:
        w.write_pair("XS.S0001", "XS.S0002", "ZZ", 30.0, delta,
                     {"n_windows": 47, "starttime": UTCDateTime(2024, 1, 1),
                      "endtime": UTCDateTime(2024, 1, 2), "stack_method": "linear"})
        w.write_many([("XS.S0001", "XS.S0003", "ZZ", lag_axis(30.0, FS), stack_for(1, n),
                       {"n_windows": 48}),
                      {"source": "XS.S0002", "receiver": "XS.S0003", "component": "RT",
                       "maxlag": 30.0, "stack": substacks, "meta": {"n_windows": 2}}])
    assert not parts_dir(path).exists() and not Path(str(path) + ".tmp").exists()
    with open_results(path) as res:
        assert res.params == PARAMS and res.software_version == "9.9.9"
        assert res.starttime == "2024-01-01T00:00:00.000000Z"
        assert res.pairs() == [("XS.S0001", "XS.S0002"), ("XS.S0001", "XS.S0003"),
                               ("XS.S0002", "XS.S0003")]
        assert res.pairs("RT") == [("XS.S0002", "XS.S0003")]
        assert res.components() == ["RT", "ZZ"]
        assert [s["code"] for s in res.stations()] == ["XS.S0001", "XS.S0002", "XS.S0003"]
        assert res.stations()[0]["elevation"] == 500.0
        lags, ccf = res.stack("XS.S0001", "XS.S0002")
        np.testing.assert_array_equal(lags, lag_axis(30.0, FS))
        assert ccf.dtype == np.float32 and lags[np.argmax(ccf)] == 25 / FS
        np.testing.assert_array_equal(res.stack("XS.S0001", "XS.S0003")[1], stack_for(1, n))
        np.testing.assert_array_equal(res.stack("XS.S0002", "XS.S0003", "RT")[1], substacks)
        m = res.meta("XS.S0001", "XS.S0002", "ZZ")
        d, az, baz = gps2dist_azimuth(47.0, 10.0, 47.3, 10.4)
        assert m["distance_km"] == pytest.approx(d / 1000)
        assert m["azimuth"] == pytest.approx(az) and m["back_azimuth"] == pytest.approx(baz)
        assert m["source_coordinates"] == [47.0, 10.0, 500.0]
        assert m["receiver_coordinates"] == [47.3, 10.4, 0.0]
        assert (m["source"], m["receiver"], m["component"]) == ("XS.S0001", "XS.S0002", "ZZ")
        assert m["sampling_rate"] == FS and m["maxlag"] == 30.0 and m["n_windows"] == 47
        assert m["starttime"] == "2024-01-01T00:00:00.000000Z" and m["complete"] is True
        assert m["stack_method"] == "linear"
        # the reverse pair is the time-reversed CCF (C_BA(tau) = C_AB(-tau))
        rl, rc = res.stack("XS.S0002", "XS.S0001")
        assert rl[np.argmax(rc)] == -25 / FS
        with pytest.raises(KeyError):
            res.stack("XS.S0002", "XS.S0003", "ZZ")
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "noisecorr.results"
        assert json.loads(f.attrs["params"]) == PARAMS
        assert "/pairs/XS.S0001/XS.S0002/ZZ" in f


def test_bad_input_is_refused(tmp_path):
    w = ResultsWriter(tmp_path / "r.h5", PARAMS, sampling_rate=FS)
    with pytest.raises(ValueError, match="2\\*round"):
        w.write_pair("XS.S0001", "XS.S0002", "ZZ", 1.0, np.zeros(40), {})
    with pytest.raises(ValueError, match="lags"):
        w.write_pair("XS.S0001", "XS.S0002", "ZZ", np.linspace(-1, 1, 41) + 0.01,
                     np.zeros(41), {})
    with pytest.raises(ValueError, match="NaN"):
        w.write_pair("XS.S0001", "XS.S0002", "ZZ", 1.0, np.full(41, np.nan), {})
    with pytest.raises(ValueError, match="NET.STA"):
        w.write_pair("S0001", "XS.S0002", "ZZ", 1.0, np.zeros(41), {})
    with pytest.raises(ValueError, match="compression"):
        ResultsWriter(tmp_path / "s.h5", PARAMS, compression="zstd")


def test_compression_and_sampling_rate_from_meta(tmp_path):
    path = tmp_path / "c.h5"
    with ResultsWriter(path, PARAMS, compression="gzip", compression_opts=4) as w:
        w.write_pair("XS.S0001", "XS.S0002", "ZZ", 2.0, np.ones(2 * 20 + 1),
                     {"sampling_rate": 10.0})
    with h5py.File(path, "r") as f:
        ds = f["/pairs/XS.S0001/XS.S0002/ZZ"]
        assert ds.compression == "gzip" and ds.chunks == (41,)
    with open_results(path) as res:
        lags, ccf = res.stack("XS.S0001", "XS.S0002")
        assert lags[1] - lags[0] == pytest.approx(0.1) and np.all(ccf == 1)


def test_resume_lists_completed_and_refuses_other_params(tmp_path):
    path = tmp_path / "r.h5"
    n = 2 * 20 + 1
    with ResultsWriter(path, PARAMS, sampling_rate=FS) as w:
        w.write_pair("XS.S0001", "XS.S0002", "ZZ", 1.0, np.zeros(n), {})
        w.write_pair("XS.S0001", "XS.S0003", "ZZ", 1.0, np.zeros(n), {"complete": False})
    w = ResultsWriter(path, PARAMS, sampling_rate=FS)
    assert w.completed() == {("XS.S0001", "XS.S0002", "ZZ")}
    w.write_pair("XS.S0001", "XS.S0003", "ZZ", 1.0, np.ones(n), {})
    w.close()
    with open_results(path) as res:
        assert np.all(res.stack("XS.S0001", "XS.S0003")[1] == 1)
        assert res.meta("XS.S0001", "XS.S0003")["complete"] is True
        assert len(res) == 2
    assert ResultsWriter(path, PARAMS).completed() == {("XS.S0001", "XS.S0002", "ZZ"),
                                                       ("XS.S0001", "XS.S0003", "ZZ")}
    with pytest.raises(ValueError, match="different params"):
        ResultsWriter(path, {**PARAMS, "cc_len": 3600})
    with pytest.raises(FileExistsError):
        ResultsWriter(path, PARAMS, resume=False)


CHILD = r"""
import sys, numpy as np
sys.path.insert(0, {repo!r})
from noisecorr.results import ResultsWriter
w = ResultsWriter({path!r}, {params!r}, sampling_rate=20.0, checkpoint_pairs=7)
i = 0
while True:  # write forever, closing (merging) now and then, until killed
    w.write_pair("XS.S%04d" % (i // 1000), "XS.R%04d" % (i % 1000), "ZZ", 5.0,
                 np.full(201, i, np.float32), {{"n_windows": i}})
    i += 1
    if i % 50 == 0:
        w.close()
        w = ResultsWriter({path!r}, {params!r}, sampling_rate=20.0, checkpoint_pairs=7)
"""


@pytest.mark.parametrize("wait_parts, wait_main", [(3, False), (2, True)])
def test_sigkill_mid_write_leaves_complete_pairs_readable(tmp_path, wait_parts, wait_main):
    path = tmp_path / "crash.h5"
    code = CHILD.format(repo=str(REPO), path=str(path), params=PARAMS)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 120  # (a bound on waiting for progress, not a speed test)
        while time.monotonic() < deadline:
            if len(list_parts(path)) >= wait_parts and (path.exists() or not wait_main):
                break
            assert proc.poll() is None, "writer died on its own"
            time.sleep(0.005)
        else:
            pytest.fail("writer made no progress")
        time.sleep(0.01 * wait_parts)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # everything that claims to be complete opens and holds the right values
    w = ResultsWriter(path, PARAMS, sampling_rate=20.0)
    done = w.completed()
    assert len(done) >= 7
    assert not list(tmp_path.rglob("*.tmp"))  # partial files were discarded
    with open_results(path) as res:
        assert {(s, r, "ZZ") for s, r in res.pairs()} == done
        for s, r, c in done:
            i = int(s[4:]) * 1000 + int(r[4:])
            lags, ccf = res.stack(s, r, c)
            assert ccf.shape == (201,) and np.all(ccf == i)
            assert res.meta(s, r, c)["n_windows"] == i
    # and the run can go on and be merged into one file
    w.close()
    assert not parts_dir(path).exists()
    with open_results(path) as res:
        assert len(res.pairs()) == len(done)


def test_interrupted_merge_and_truncated_tmp_are_harmless(tmp_path):
    path = tmp_path / "r.h5"
    n = 41
    with ResultsWriter(path, PARAMS, sampling_rate=FS) as w:
        w.write_pair("XS.S0001", "XS.S0002", "ZZ", 1.0, np.ones(n), {})
    w = ResultsWriter(path, PARAMS, sampling_rate=FS, checkpoint_pairs=1)
    w.write_pair("XS.S0001", "XS.S0003", "ZZ", 1.0, 2 * np.ones(n), {})  # -> part
    # a crash while merging leaves a truncated path.tmp; a crash while
    # checkpointing leaves a truncated part .tmp
    good = path.read_bytes()
    Path(str(path) + ".tmp").write_bytes(good[: len(good) // 2])
    (parts_dir(path) / "part-000099.h5.tmp").write_bytes(good[:100])
    with open_results(path) as res:  # main file + the whole part
        assert res.pairs() == [("XS.S0001", "XS.S0002"), ("XS.S0001", "XS.S0003")]
        assert np.all(res.stack("XS.S0001", "XS.S0003")[1] == 2)
    merge_parts(path)
    with open_results(path) as res:
        assert len(res) == 2 and np.all(res.stack("XS.S0001", "XS.S0003")[1] == 2)


def test_open_and_read_one_pair_do_not_scan(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    with ResultsWriter(path, PARAMS, sampling_rate=FS, checkpoint_pairs=500) as w:
        w.write_many((f"XS.A{i:04d}", f"XS.B{j:04d}", "ZZ", 0.5, np.full(21, i * 100 + j), {})
                     for i in range(40) for j in range(40))

    def boom(*a, **k):
        raise AssertionError("index read on open")
    monkeypatch.setattr(index_mod, "read_index", boom)
    monkeypatch.setattr(index_mod, "read_columns", boom)
    with open_results(path) as res:
        assert np.all(res.stack("XS.A0031", "XS.B0007")[1] == 3107)


def test_sac_and_mseed_export(tmp_path):
    path = tmp_path / "r.h5"
    n = 2 * int(round(12.5 * FS)) + 1
    with ResultsWriter(path, PARAMS, stations=STATIONS, sampling_rate=FS) as w:
        w.write_pair("XS.S0001", "XS.S0002", "ZZ", 12.5, stack_for(3, n), {"n_windows": 9})
        w.write_pair("XS.S0001", "XS.S0003", "ZZ", 12.5, stack_for(4, n), {"n_windows": 8})
    with open_results(path) as res:
        sac = res.export_sac(tmp_path / "sac")
        one = res.export_sac(tmp_path / "one", pairs=[("XS.S0001", "XS.S0003")])
        ms = res.export_mseed(tmp_path / "ms")
        meta = res.meta("XS.S0001", "XS.S0002")
    assert [p.name for p in sac] == ["XS.S0001_XS.S0002_ZZ.SAC", "XS.S0001_XS.S0003_ZZ.SAC"]
    assert len(one) == 1
    tr = read(str(sac[0]))[0]
    assert tr.stats.delta == pytest.approx(1 / FS)
    assert tr.stats.sac.b == pytest.approx(-12.5)
    assert tr.stats.sac.e == pytest.approx(12.5, abs=1e-4)
    assert tr.stats.npts == n
    np.testing.assert_array_equal(tr.data, stack_for(3, n))
    assert tr.stats.sac.dist == pytest.approx(meta["distance_km"], rel=1e-6)
    assert tr.stats.sac.evla == pytest.approx(47.0) and tr.stats.sac.stla == pytest.approx(47.3)
    assert tr.stats.sac.kcmpnm == "ZZ" and tr.stats.sac.user0 == 9
    tm = read(str(ms[1]))[0]
    assert tm.stats.starttime == UTCDateTime(-12.5) and tm.stats.delta == 1 / FS
    assert tm.id == "XS.S0003.CC.XZZ"
    np.testing.assert_array_equal(tm.data, stack_for(4, n))
