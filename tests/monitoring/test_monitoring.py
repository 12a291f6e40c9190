"""``noisecorr.monitoring``: dv/v of many pairs through the engine, its files and the command."""

import csv
import json

import numpy as np
import pytest

from noisecorr.cli import main
from noisecorr.monitoring import DvvConfig, measure, read, write
from noisecorr.monitoring.measure import Series
from noisecorr.signal.dvv import combine
from noisecorr.synth.dvv import coda_correlations, dvv_model

DIST = np.array([12.0, 20.0, 31.0, 44.0, 150.0])          # the last: coda beyond the lags
TRUTH = dvv_model(12, step=(6, -0.002), trend=5e-5)
PAIRS = [("XX.A", "XX.B"), ("XX.A", "XX.C"), ("XX.B", "XX.C"), ("XX.B", "XX.D"), ("XX.C", "XX.D")]


@pytest.fixture(scope="module")
def series():
    lags, ref, ser = coda_correlations(DIST, TRUTH, sampling_rate=10.0, maxlag=80.0,
                                       n_scatterers=200, seed=5)
    times = 1.7e9 + 86400.0 * np.arange(TRUTH.size)
    return Series(PAIRS, times, lags, ser, np.full(ser.shape[:2], 48), ref, DIST, 86400.0, (0.25, 0.75))


@pytest.mark.parametrize("method", ["stretching", "mwcs", "wavelet"])
def test_measure_recovers_truth_and_reports_pairs_that_do_not_fit(series, method, caplog):
    r = measure(series, DvvConfig(method=method, coda_factor=2.0, coda_length=30.0), block=2)
    assert r.skipped == [PAIRS[4]] and np.isnan(r.dvv[4]).all()
    assert "does not fit" in caplog.text and "XX.C-XX.D" in caplog.text
    assert np.abs(r.dvv[:4] - TRUTH).max() < 2e-4
    v, e, n = r.network
    assert n.tolist() == [4] * TRUTH.size and np.abs(v - TRUTH).max() < 2e-4
    np.testing.assert_allclose(v, combine(r.dvv, r.error, axis=0, valid=r.valid)[0])
    assert set(r.stations) == {"XX.A", "XX.B", "XX.C", "XX.D"}
    assert r.stations["XX.A"][2].tolist() == [2] * TRUTH.size      # A-B, A-C


def test_same_result_under_every_mapping_and_block_size(series):
    cfg = DvvConfig(coda_factor=2.0, coda_length=30.0)
    ref = measure(series, cfg, block=5)
    for kw in (dict(block=1), dict(mapping="multiprocess", processes=2, block=2)):
        got = measure(series, cfg, **kw)
        # blocks differ only in which lags take part (the union of their coda windows):
        # the same numbers to rounding
        np.testing.assert_allclose(got.dvv, ref.dvv, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got.error, ref.error, rtol=1e-6)
        np.testing.assert_array_equal(got.valid, ref.valid)


def test_files_round_trip(series, tmp_path):
    r = measure(series, DvvConfig(coda_factor=2.0, coda_length=30.0))
    paths = write(r, tmp_path)
    back = read(paths["hdf5"])
    np.testing.assert_array_equal(back["dvv"], r.dvv)
    assert back["pairs"] == PAIRS and back["config"]["method"] == "stretching"
    np.testing.assert_array_equal(back["network"][0], r.network[0])
    rows = list(csv.DictReader(open(paths["pairs"])))
    assert len(rows) == len(PAIRS) * TRUTH.size
    row = rows[7]                                  # pair 0, day 7
    assert (row["source"], row["receiver"]) == PAIRS[0] and row["time"].startswith("2023-11-2")
    assert float(row["dvv_percent"]) == pytest.approx(100 * r.dvv[0, 7], abs=1e-6)
    assert rows[4 * TRUTH.size]["dvv_percent"] == ""          # the pair that does not fit
    net = list(csv.DictReader(open(paths["network"])))
    assert [int(x["n_pairs"]) for x in net] == [4] * TRUTH.size


def test_command_on_a_real_run(substack_run, capsys):
    assert main(["dvv", str(substack_run), "--coda-factor", "0", "--coda-start", "5",
                 "--coda-length", "20", "--mapping", "multiprocess", "-n", "2"]) == 0
    text = capsys.readouterr().out
    assert "6 pairs x" in text and "network mean" in text
    d = substack_run / "dvv"
    for name in ("dvv.h5", "dvv_pairs.csv", "dvv_stations.csv", "dvv_network.csv", "dvv_network.png",
                 "dvv_matrix.png"):
        assert (d / name).stat().st_size > 0, name
    back = read(d / "dvv.h5")
    # a stationary synthetic: no velocity change beyond the noise of half-hour stacks
    assert np.nanmax(np.abs(back["network"][0])) < 2e-3
    assert json.loads(json.dumps(back["config"]))["coda_start"] == 5.0


def test_command_refuses_a_run_without_substacks(tmp_path, capsys):
    out = tmp_path / "plain"
    assert main(["run", "--out", str(out), "--stations", "3"]) in (0, 3)
    assert main(["dvv", str(out)]) != 0
    assert "substack: true" in capsys.readouterr().err


def test_min_snr_leaves_low_snr_pairs_out_of_the_averages(series, caplog):
    from noisecorr.signal.symmetric import snr

    expect = snr(series.reference, 10.0, DIST, noise_length=50.0)["symmetric"]
    cut = 0.5 * (np.sort(expect[:4])[0] + np.sort(expect[:4])[1])     # between the lowest two
    low = int(np.nanargmin(expect[:4]))
    r = measure(series, DvvConfig(coda_factor=2.0, coda_length=30.0, min_snr=float(cut)))
    np.testing.assert_allclose(r.snr, expect, equal_nan=True)
    assert not r.valid[low].any() and np.isfinite(r.dvv[low]).all()   # reported, not averaged
    assert r.network[2].tolist() == [3] * TRUTH.size
    keep = [i for i in range(4) if i != low]
    np.testing.assert_allclose(r.network[0], combine(r.dvv[keep], r.error[keep], axis=0)[0])
    assert f"{PAIRS[low][0]}-{PAIRS[low][1]}" in caplog.text and "SNR below" in caplog.text
