"""Moving-window and reference stacks from per-chunk series (issue 20, noisecorr stack).

Ground truth: (1) a small series of random chunk rows with known window counts and a gap,
whose moving stacks are computed here by a plain loop over the chunks of each window; (2) a
stationary synthetic network run with keep: chunks (3 hours, 1 h chunks), where a window
spanning the whole run must give the run's total stack (linear exactly the window-weighted
sum; pws exactly the stored PWS of every window, from the per-chunk phasors); (3) identical
chunks, whose PWS is their linear stack (phase coherence 1).
"""

from pathlib import Path

import h5py
import numpy as np
import pytest

from noisecorr import open_results
from noisecorr.cli import main
from noisecorr.results import ResultsWriter
from noisecorr.results.moving import (moving_array, moving_stacks, parse_duration,
                                      parse_period, store)
from noisecorr.results.substacks import pack
from noisecorr.synth import write_network
from noisecorr.workflow import load_config, run_workflow

T0 = 1704067200.0  # 2024-01-01
H = 3600.0
BASE = dict(chunk_length=H, sampling_rate=10.0, cc_len=600.0, step=300.0, maxlag=20.0,
            freqmin=0.1, freqmax=2.0, start="2024-01-01T00:00:00", end="2024-01-01T03:00:00")


def brute(rows, counts, width, step):
    """Moving linear stacks by a plain loop: sum n_k s_k / sum n_k over each window."""
    k = len(counts)
    out, ns = [], []
    for b in range(0, k - width + 1, step):
        acc, n = np.zeros(rows.shape[1]), 0
        for c in range(b, b + width):
            if counts[c] > 0:
                acc += counts[c] * rows[c].astype(np.float64)
                n += counts[c]
        out.append(acc / n if n else np.full(rows.shape[1], np.nan))
        ns.append(n)
    return np.array(out), np.array(ns)


def write_series(path, pairs, rows, counts, pws=None):
    """A results file of per-chunk rows on an hourly grid from T0 (what keep: chunks writes)."""
    k = rows.shape[1]
    with ResultsWriter(path, {"processing": {"stack_method": "linear", "pws_power": 2.0}},
                       sampling_rate=10.0, starttime="2024-01-01T00:00:00",
                       endtime=str(np.datetime64(int(T0 + k * H), "s")) + "Z") as w:
        for (a, b), r, n in zip(pairs, rows, counts):
            good = n > 0
            full = (n[good] @ r[good]) / max(n.sum(), 1)
            data, layout = pack({"stack": full, "substacks": np.where(good[:, None], r, 0),
                                 "substack_starts": T0 + H * np.arange(k),
                                 "substack_counts": n, "substack_len": H,
                                 "substack_origin": "1970-01-01T00:00:00"})
            w.write_pair(a, b, "ZZ", (rows.shape[2] // 2) / 10.0, data, {"n_windows": int(n.sum()), **layout})


@pytest.fixture
def random_file(tmp_path):
    rng = np.random.default_rng(1)
    pairs = [("XS.A", "XS.B"), ("XS.A", "XS.C"), ("XS.B", "XS.C")]
    rows = rng.normal(size=(3, 7, 9)).astype(np.float32)
    counts = rng.integers(1, 12, size=(3, 7))
    counts[1, 2] = 0            # a gap
    counts[2, 3:6] = 0          # three gaps in a row: a 3-chunk window without data
    path = tmp_path / "results.h5"
    write_series(path, pairs, rows, counts)
    return path, pairs, rows, counts


def test_moving_linear_equals_the_loop_over_each_windows_chunks(random_file):
    path, pairs, rows, counts = random_file
    with open_results(path) as res:
        ms = moving_stacks(res, "3h", "2h")
    assert ms.pairs == pairs
    np.testing.assert_array_equal(ms.times, T0 + 2 * H * np.arange(3))
    for i in range(3):
        want, n = brute(rows[i], counts[i], 3, 2)
        np.testing.assert_array_equal(ms.counts[i], n)
        np.testing.assert_allclose(ms.data[i], want, rtol=1e-5, atol=1e-6)
    # the gap chunk weighs nothing; the window of gaps is NaN and flagged
    assert ms.empty.tolist() == [[False] * 3, [False] * 3, [False, False, False]]
    with open_results(path) as res:
        ms1 = moving_stacks(res, "3h", "1h")
    want, n = brute(rows[2], counts[2], 3, 1)
    assert n[3] == 0 and ms1.empty[2, 3] and np.isnan(ms1.data[2, 3]).all()
    np.testing.assert_allclose(ms1.data[2], want, rtol=1e-5, atol=1e-6)


def test_store_then_read_moving_and_reference(random_file):
    path, pairs, rows, counts = random_file
    summary = store(path, "2h", "1h", reference="2024-01-01T01:00:00/2024-01-01T04:00:00")
    assert summary["ZZ"] == {"pairs": 3, "windows": 6, "empty": 2, "phasors": None}
    with open_results(path) as res:
        times, lags, data, n = res.moving("XS.A", "XS.C", counts=True)
        want, wn = brute(rows[1], counts[1], 2, 1)
        np.testing.assert_allclose(data, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(n, wn)
        assert lags.size == 9 and times[0] == T0
        # reference: chunks 1, 2, 3 (starting in [01:00, 04:00)), chunk 2 a gap
        lags, ref, nref = res.reference("XS.A", "XS.C")
        sel = [1, 3]
        assert nref == counts[1, sel].sum()
        np.testing.assert_allclose(ref, counts[1, sel] @ rows[1, sel] / nref, rtol=1e-5, atol=1e-6)
        # the reverse pair, reversed in time (ZZ: sign +1)
        np.testing.assert_array_equal(res.moving("XS.C", "XS.A")[2], data[:, ::-1])
        assert res.moving_info()["ZZ"]["reference"] == ["2024-01-01T01:00:00.000000Z",
                                                        "2024-01-01T04:00:00.000000Z"]
        with pytest.raises(KeyError, match="XS.A -> XS.Q"):
            res.moving("XS.A", "XS.Q")
    # a rerun replaces the group; a failing rerun leaves the previous one untouched
    store(path, "7h", "1h")
    with open_results(path) as res:
        assert res.moving("XS.A", "XS.B")[2].shape == (1, 9)
        assert res.moving_info()["ZZ"]["reference"] == "all"
    with pytest.raises(ValueError, match="longer than"):
        store(path, "8h", "1h")
    with h5py.File(path, "r") as f:
        assert sorted(f["moving"]) == ["ZZ"] and not [n for n in f if n.startswith("moving.tmp")]
        assert f["moving/ZZ/data"].shape == (3, 1, 9)
    assert not path.with_name(path.name + ".moving.h5").exists()


def test_pws_of_identical_chunks_is_their_linear_stack(tmp_path):
    lags = np.linspace(-1, 1, 21)
    row = (np.exp(-lags ** 2 / 0.05) * np.cos(12 * lags)).astype(np.float32)
    rows = np.broadcast_to(row, (1, 5, 21)).copy()
    counts = np.array([[3, 0, 7, 2, 5]])
    write_series(tmp_path / "r.h5", [("XS.A", "XS.B")], rows, counts)
    with open_results(tmp_path / "r.h5") as res:
        pws = moving_stacks(res, "2h", "1h", method="pws")
    assert pws.phasors == "chunks" and pws.counts.tolist() == [[3, 7, 9, 7]]
    np.testing.assert_allclose(pws.data[0], np.broadcast_to(row, (4, 21)), rtol=1e-5, atol=1e-6)
    # different chunks: the coherence < 1 lowers the stack below the linear one
    d, n, ref, _ = moving_array(np.stack([rows[0], -rows[0]])[None, :, 0], np.array([[1, 1]]),
                                2, 1, "pws")
    assert np.abs(d).max() < 1e-6 and n.tolist() == [[2]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("moving")
    write_network(root / "data", n_stations=4, hours=3, seed=5, sampling_rate=10.0,
                  band=(0.1, 0.2, 3.0, 4.0))
    out = {}
    for method in ("linear", "pws"):
        cfg = load_config(overrides=dict(BASE, data=str(root / "data"), out=str(root / method),
                                         keep="chunks", stack_method=method))
        out[method] = run_workflow(cfg).results
    return out


@pytest.mark.parametrize("method", ["linear", "pws"])
def test_window_over_the_whole_span_is_the_total_stack(runs, method):
    with open_results(runs[method]) as res:
        ms = moving_stacks(res, "3h", "1h", method=method)
        assert ms.data.shape[:2] == (6, 1) and ms.phasors == (None if method == "linear" else "windows")
        for i, (a, b) in enumerate(ms.pairs):
            total = res.stack(a, b)[1]
            peak = np.abs(total).max()
            assert np.abs(ms.data[i, 0] - total).max() <= 2e-5 * peak
            assert np.abs(ms.reference[i] - total).max() <= 2e-5 * peak
            assert ms.counts[i, 0] == res.meta(a, b)["n_windows"]
        # a shorter window differs from the total (three different hours of noise)
        short = moving_stacks(res, "1h", "1h", method=method)
        assert np.abs(short.data[:, 0] - ms.data[:, 0]).max() > 1e-3 * np.abs(ms.data).max()


def test_bad_window_step_and_reference_are_named(runs):
    for text, what in (("ten days", "window"), ("-1d", "window"), ("0", "step")):
        with pytest.raises(ValueError, match=what):
            parse_duration(text, what)
    with pytest.raises(ValueError, match="ends before"):
        parse_period("2024-01-05:2024-01-01")
    with pytest.raises(ValueError, match="not a period"):
        parse_period("2024-01-01T00:00:00:2024-01-02T00:00:00")
    with open_results(runs["linear"]) as res:
        with pytest.raises(ValueError, match="not a whole number of chunks of 3600 s"):
            moving_stacks(res, "90m", "1h")
        with pytest.raises(ValueError, match="longer than"):
            moving_stacks(res, "1d", "1h")
        with pytest.raises(ValueError, match="method"):
            moving_stacks(res, "1h", "1h", method="robust")
        with pytest.raises(ValueError, match="no chunk"):
            moving_stacks(res, "1h", "1h", reference="2025-01-01:2025-01-02")


def test_stack_command(runs, capsys):
    folder = Path(runs["pws"]).parent
    assert main(["stack", str(folder), "--window", "2h", "--step", "1h", "--method", "pws",
                 "--reference", "2024-01-01T01:00:00/2024-01-01T03:00:00"]) == 0
    out = capsys.readouterr().out
    assert "ZZ: 6 pairs x 2 moving windows" in out and "0 without data" in out
    with open_results(runs["pws"]) as res:
        a, b = res.pairs("ZZ")[0]
        times, lags, data = res.moving(a, b)
        assert data.shape == (2, lags.size) and np.isfinite(data).all()
        want, n = res.combine_substacks(a, b, start=T0 + H, end=T0 + 3 * H)[1:]
        _, ref, nref = res.reference(a, b)
        assert nref == n and np.abs(ref - want).max() <= 2e-5 * np.abs(want).max()
        np.testing.assert_allclose(data[1], ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    assert main(["stack", str(folder), "--window", "5h", "--step", "1h"]) != 0
    assert "longer than" in capsys.readouterr().err
    assert main(["stack", str(folder), "--window", "2x", "--step", "1h"]) != 0
    assert "window: '2x' is not a duration" in capsys.readouterr().err


def test_dvv_monitoring_takes_the_stored_reference(runs):
    from noisecorr.monitoring import load_series

    path = runs["linear"]
    with pytest.raises(ValueError, match="no moving stacks stored"):
        load_series(path, reference="stored")
    store(path, "1h", "1h", reference="2024-01-01T01:00:00/2024-01-01T03:00:00")
    stored = load_series(path, reference="stored")
    period = load_series(path, reference=(T0 + H, T0 + 3 * H))
    full = load_series(path)
    assert stored.pairs == period.pairs and len(stored.pairs) == 6
    peak = np.abs(period.reference).max()
    assert np.abs(stored.reference - period.reference).max() <= 2e-5 * peak
    assert np.abs(stored.reference - full.reference).max() > 1e-3 * peak  # not the full stack
