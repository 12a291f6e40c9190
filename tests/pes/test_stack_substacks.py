"""StackPE and WriteResultsPE with sub-stacks: a calendar grid shared by all pairs, the full
stack always written, and readers, exports and plots that use it (not an unweighted mean)."""

import numpy as np
import pytest
import scipy.signal
from obspy import read

from noisecorr.engine import WorkflowGraph, run
from noisecorr.results import open_results
from noisecorr.results.layout import lag_axis
from noisecorr.results.plot import pair_ccf
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.stack import pws_stack, robust_stack, robust_weights
from pes import StackPE
from pes.write import WriteResultsPE

FS = 10.0
MAXLAG = 4.0
MIDNIGHT = 1704067200.0  # 2024-01-01T00:00:00Z
HOUR = 3600.0
LAGS = lag_axis(MAXLAG, FS)
STATIONS = {"XX.A": {"latitude": 0.0, "longitude": 0.0, "elevation": 0.0},
            "XX.B": {"latitude": 0.0, "longitude": 0.2, "elevation": 0.0},
            "XX.C": {"latitude": 0.1, "longitude": 0.0, "elevation": 0.0}}


def params(**kw):
    base = dict(sampling_rate=FS, cc_len=600.0, step=600.0, freqmin=0.1, freqmax=2.0,
                maxlag=MAXLAG, substack=True, substack_len=6 * HOUR)
    return CorrelationParams(**{**base, **kw})


def ccfs(n, seed, lag=1.5):
    rng = np.random.default_rng(seed)
    wavelet = np.exp(-0.5 * ((LAGS - lag) / 0.4) ** 2)
    x = wavelet + 0.8 * rng.standard_normal((n, LAGS.size))
    x[::5] *= 4.0
    return x.astype(np.float32)


def item(src, rcv, x, t, chunk=0):
    return {"key": f"{src}.|{rcv}.|ZZ", "source": f"{src}.", "receiver": f"{rcv}.",
            "component": "ZZ", "source_id": f"{src}..HHZ", "receiver_id": f"{rcv}..HHZ",
            "chunk": chunk, "ccfs": x, "starttimes": np.asarray(t, dtype=np.float64),
            "lags": LAGS, "sampling_rate": FS, "distance_km": None, "azimuth": None,
            "back_azimuth": None}


def run_stack(p, items, path=None):
    """Run StackPE (and WriteResultsPE into ``path``) over ``items``; the stack outputs."""
    g = WorkflowGraph()
    stack = StackPE(p)
    g.add(stack)
    if path is not None:
        write = WriteResultsPE(path, p.to_dict(), STATIONS, "2024-01-01", "2024-01-03")
        g.connect(stack, "output", write, "input")
    result = run(g, inputs={stack: [{"input": it} for it in items]}, mapping="sequential")
    if path is not None:
        assert result.outputs[("WriteResultsPE", "output")] == [("written", 2)]
        return None
    return {o["key"]: o for o in result.outputs[("StackPE", "output")]}


def two_pairs():
    """Pair A-B from 00:10 on day 1 to 01:00 on day 2, pair A-C from 05:37 to 12:07 with a
    gap, windows every 10 min; A-B arrives in two chunks split inside a span, and its day-2
    windows are offset by +1 (so that an unweighted mean of sub-stacks is visibly wrong)."""
    t_ab = MIDNIGHT + 600.0 + 600.0 * np.arange(150)
    t_ac = np.delete(MIDNIGHT + 5 * HOUR + 37 * 60 + 600.0 * np.arange(40), [3, 4, 5, 6])
    x_ab, x_ac = ccfs(t_ab.size, 1), ccfs(t_ac.size, 2, lag=-2.0)
    x_ab[t_ab >= MIDNIGHT + 86400.0] += 1.0
    late = t_ab >= MIDNIGHT + 15 * HOUR
    items = [item("XX.A", "XX.B", x_ab[~late], t_ab[~late], 0),
             item("XX.A", "XX.C", x_ac, t_ac, 0),
             item("XX.A", "XX.B", x_ab[late], t_ab[late], 1)]
    return items, (x_ab, t_ab), (x_ac, t_ac)


def span_means(x, t, starts, length):
    return np.stack([x[(t >= a) & (t < a + length)].astype(np.float64).mean(axis=0) for a in starts])


def test_substack_spans_of_pairs_with_different_first_windows_are_aligned_on_the_grid():
    items, (x_ab, t_ab), (x_ac, t_ac) = two_pairs()
    six = 6 * HOUR
    out = run_stack(params(), items)
    ab, ac = out["XX.A.|XX.B.|ZZ"], out["XX.A.|XX.C.|ZZ"]
    # counted by hand: A-B 00:10-05:50 | 06:00-11:50 | 12:00-17:50 | 18:00-23:50 | 00:00-01:00
    assert ab["substack_starts"].tolist() == [MIDNIGHT + k * six for k in range(5)]
    assert ab["substack_counts"].tolist() == [35, 36, 36, 36, 7]
    # A-C 05:37, 05:47, 05:57 | 07:17-11:57 (after the gap) | 12:07: the same grid
    assert ac["substack_starts"].tolist() == [MIDNIGHT, MIDNIGHT + six, MIDNIGHT + 2 * six]
    assert ac["substack_counts"].tolist() == [3, 32, 1]
    np.testing.assert_allclose(ab["substacks"], span_means(x_ab, t_ab, ab["substack_starts"], six),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ac["substacks"], span_means(x_ac, t_ac, ac["substack_starts"], six),
                               rtol=1e-5, atol=1e-6)
    assert ab["substack_len"] == six and ab["substack_origin"] == "1970-01-01T00:00:00.000000Z"
    # a configured origin moves the grid of every pair: 03:00, 09:00, ...
    shifted = run_stack(params(substack_origin="2024-01-01T03:00:00Z"), items)
    ab, ac = shifted["XX.A.|XX.B.|ZZ"], shifted["XX.A.|XX.C.|ZZ"]
    assert ab["substack_starts"].tolist() == [MIDNIGHT - 3 * HOUR + k * six for k in range(5)]
    assert ab["substack_counts"].tolist() == [17, 36, 36, 36, 25]
    assert ac["substack_starts"].tolist() == [MIDNIGHT + 3 * HOUR, MIDNIGHT + 9 * HOUR]
    assert ac["substack_counts"].tolist() == [21 - 4, 19]  # 05:37-08:57 less the gap | 09:07-12:07


def test_full_stack_is_written_and_is_the_window_weighted_combination(tmp_path):
    items, (x_ab, t_ab), _ = two_pairs()
    p = params()
    out = run_stack(p, items)["XX.A.|XX.B.|ZZ"]
    counts, subs = out["substack_counts"], out["substacks"].astype(np.float64)
    weighted = counts @ subs / counts.sum()
    assert out["n_windows"] == 150 and out["stack"].shape == LAGS.shape
    np.testing.assert_allclose(out["stack"], x_ab.astype(np.float64).mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["stack"], weighted, rtol=1e-5, atol=1e-6)
    assert np.abs(subs.mean(axis=0) - weighted).max() > 0.1  # what an unweighted mean gets wrong

    path = tmp_path / "results.h5"
    run_stack(p, items, path)
    with open_results(path) as res:
        lags, full = res.stack("XX.A", "XX.B")
        assert full.ndim == 1
        np.testing.assert_array_equal(full, out["stack"])
        np.testing.assert_array_equal(lags, LAGS)
        assert res.meta("XX.A", "XX.B")["n_windows"] == 150
        sub = res.substacks("XX.A", "XX.B")
        np.testing.assert_array_equal(sub.stacks, out["substacks"])
        np.testing.assert_array_equal(sub.counts, counts)
        np.testing.assert_array_equal(sub.starts, out["substack_starts"])
        assert sub.substack_len == 6 * HOUR and sub.stack_method == "linear" and sub.phasor is None
        _, combined, n = res.combine_substacks("XX.A", "XX.B")
        assert n == 150
        np.testing.assert_allclose(combined, full, rtol=1e-5, atol=1e-6)
        # a time range: the spans starting 06:00 and 12:00 (72 windows)
        _, part, n = res.combine_substacks("XX.A", "XX.B", start="2024-01-01T06:00:00Z",
                                             end=MIDNIGHT + 18 * HOUR)
        in_range = (t_ab >= MIDNIGHT + 6 * HOUR) & (t_ab < MIDNIGHT + 18 * HOUR)
        assert n == 72
        np.testing.assert_allclose(part, x_ab[in_range].astype(np.float64).mean(axis=0), rtol=1e-5,
                                   atol=1e-6)
        # the reverse pair is the full stack reversed in time
        np.testing.assert_array_equal(res.stack("XX.B", "XX.A")[1], full[::-1])
        np.testing.assert_array_equal(res.substacks("XX.B", "XX.A").stacks, out["substacks"][:, ::-1])
        # bulk reading, exports and plots use the full stack
        (_, bulk), = list(res.stacks("ZZ", [res.pairs("ZZ").index(("XX.A", "XX.B"))]))
        np.testing.assert_array_equal(bulk, full)
        sac, = res.export_sac(tmp_path / "sac", pairs=[("XX.A", "XX.B")], components=["ZZ"])
        np.testing.assert_array_equal(read(str(sac))[0].data, full)
        mseed, = res.export_mseed(tmp_path / "mseed", pairs=[("XX.A", "XX.B")], components=["ZZ"])
        np.testing.assert_array_equal(read(str(mseed))[0].data, full)
        fig = pair_ccf(res, "XX.A", "XX.B", "ZZ")
        lines = fig.axes[0].lines
        assert len(lines) == 5 + 1  # five sub-stacks, faint, and the full stack
        np.testing.assert_array_equal(lines[-1].get_ydata(), full)


def pws_by_definition(x, nu=2.0):
    analytic = scipy.signal.hilbert(x.astype(np.float64), axis=1)
    return x.astype(np.float64).mean(axis=0) * np.abs((analytic / np.abs(analytic)).mean(axis=0)) ** nu


def test_pws_streams_over_chunks_and_substacks_combine_through_their_phasors(tmp_path):
    items, (x_ab, t_ab), _ = two_pairs()
    p = params(stack_method="pws", pws_power=2.0)
    out = run_stack(p, items)["XX.A.|XX.B.|ZZ"]
    np.testing.assert_allclose(out["stack"], pws_by_definition(x_ab), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["stack"], pws_stack(x_ab)[0], rtol=1e-4, atol=1e-6)
    six = 6 * HOUR
    for k, start in enumerate(out["substack_starts"]):
        rows = (t_ab >= start) & (t_ab < start + six)
        np.testing.assert_allclose(out["substacks"][k], pws_by_definition(x_ab[rows]), rtol=1e-4,
                                   atol=1e-6)
    # without sub-stacks the state of a pair is a sum and a phasor sum: no windows kept
    pe = StackPE(params(stack_method="pws", substack=False))
    for it in items:
        pe.process({"input": it})
    pe.flush()  # items wait in blocks of pairs until a flush (or postprocess)
    state, = pe.state["XX.A.|XX.B.|ZZ"]["spans"].values()
    assert state.n == 150 and state.nbytes == (8 + 16) * LAGS.size

    path = tmp_path / "results.h5"
    run_stack(p, items, path)
    with open_results(path) as res:
        np.testing.assert_array_equal(res.stack("XX.A", "XX.B")[1], out["stack"])
        _, again, n = res.combine_substacks("XX.A", "XX.B")
        assert n == 150
        np.testing.assert_allclose(again, out["stack"], rtol=1e-4, atol=1e-6)
        lo, hi = MIDNIGHT + six, MIDNIGHT + 3 * six
        _, part, n = res.combine_substacks("XX.A", "XX.B", start=lo, end=hi)
        rows = (t_ab >= lo) & (t_ab < hi)
        assert n == rows.sum() == 72
        np.testing.assert_allclose(part, pws_by_definition(x_ab[rows]), rtol=1e-4, atol=1e-6)
        sub = res.substacks("XX.A", "XX.B")
        mean_of_pws = sub.counts[1:3] @ sub.stacks[1:3] / sub.counts[1:3].sum()
        assert np.abs(mean_of_pws - part).max() > 1e-2  # a mean of PWS is not the PWS
        # reversed pair: phasors conjugated and reversed; the PWS is the reversed PWS
        _, rev, _ = res.combine_substacks("XX.B", "XX.A", start=lo, end=hi)
        np.testing.assert_allclose(rev, part[::-1], rtol=1e-6, atol=1e-9)


def test_robust_substacks_are_exact_per_span_and_the_full_stack_is_two_level():
    items, (x_ab, t_ab), _ = two_pairs()
    # one item per pair: the full robust stack is Pavlis & Vernon over every window
    one = [item("XX.A", "XX.B", x_ab, t_ab)]
    out = run_stack(params(stack_method="robust", substack=False), one)["XX.A.|XX.B.|ZZ"]
    np.testing.assert_allclose(out["stack"], robust_stack(x_ab)[0], rtol=1e-5, atol=1e-6)
    # sub-stacks: exact per span (each span inside one item); the full stack is the robust
    # stack of the pieces (item x span), weighted by their window counts
    out = run_stack(params(stack_method="robust"), one)["XX.A.|XX.B.|ZZ"]
    six = 6 * HOUR
    for k, start in enumerate(out["substack_starts"]):
        rows = (t_ab >= start) & (t_ab < start + six)
        np.testing.assert_allclose(out["substacks"][k], robust_stack(x_ab[rows])[0], rtol=1e-5,
                                   atol=1e-6)
    want, _, _ = robust_weights(out["substacks"].astype(np.float64), counts=out["substack_counts"])
    np.testing.assert_allclose(out["stack"], want, rtol=1e-5, atol=1e-6)
    assert out["n_windows"] == 150


def test_older_file_with_substacks_only_reads_as_their_weighted_mean(tmp_path):
    from noisecorr.results import ResultsWriter

    subs = np.stack([np.full(LAGS.size, 1.0), np.full(LAGS.size, 4.0)]).astype(np.float32)
    path = tmp_path / "old.h5"
    for method in ("linear", "pws"):
        with ResultsWriter(path, {"stack_method": method}, sampling_rate=FS, resume=False) as w:
            w.write_pair("XX.A", "XX.B", "ZZ", MAXLAG, subs,
                         {"n_windows": 4, "substack_starts": [0.0, 3600.0],
                          "substack_counts": [1, 3], "stack_method": method})
        with open_results(path) as res:
            np.testing.assert_allclose(res.stack("XX.A", "XX.B")[1], 3.25)  # (1 + 3 * 4) / 4
            np.testing.assert_allclose(res.to_trace("XX.A", "XX.B").data, 3.25)
            np.testing.assert_array_equal(res.substacks("XX.A", "XX.B").stacks, subs)
            if method == "pws":
                with pytest.raises(ValueError, match="phasors"):
                    res.combine_substacks("XX.A", "XX.B")
            else:
                np.testing.assert_allclose(res.combine_substacks("XX.A", "XX.B")[1], 3.25)
        path.unlink()


def test_series_returns_the_spans_of_a_pair_in_time_order(tmp_path):
    items, (x_ab, t_ab), _ = two_pairs()
    p = params()
    out = run_stack(p, items)["XX.A.|XX.B.|ZZ"]
    path = tmp_path / "results.h5"
    run_stack(p, items, path)
    with open_results(path) as res:
        times, lags, array, windows = res.series("XX.A", "XX.B")
        np.testing.assert_array_equal(times, out["substack_starts"])
        np.testing.assert_array_equal(lags, LAGS)
        np.testing.assert_array_equal(array, out["substacks"])
        np.testing.assert_array_equal(windows, out["substack_counts"])
        assert windows.sum() == 150 and np.all(np.diff(times) > 0)
        # the first span's stack is the mean of the windows that start in it
        first = (t_ab >= times[0]) & (t_ab < times[0] + 6 * HOUR)
        np.testing.assert_allclose(array[0], x_ab[first].astype(np.float64).mean(axis=0),
                                   rtol=1e-5, atol=1e-6)
        _, _, rev, _ = res.series("XX.B", "XX.A")
        np.testing.assert_array_equal(rev, out["substacks"][:, ::-1])
