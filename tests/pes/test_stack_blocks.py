"""StackPE stacks blocks of pairs at once: the same items, in the same order, with the stacks
of the pair-by-pair definitions (linear mean, PWS of Schimmel & Paulssen, Pavlis & Vernon
robust per chunk), on synthetic correlations with a known arrival per pair; and the batched
state functions equal the per-set ones, edge cases included (one window, no window, NaN)."""

import logging

import numpy as np
import pytest
import scipy.signal

from noisecorr.engine import WorkflowGraph, run
from noisecorr.results.layout import lag_axis
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.stack import (StackState, hilbert_transform, linear_stack, phasor_parts,
                                    pws_stack, robust_stack, robust_weights, substack_index,
                                    substack_states, substack_states_block, unit_phasors)
from pes import StackPE

FS, MAXLAG, HOUR = 10.0, 4.0, 3600.0
LAGS = lag_axis(MAXLAG, FS)
T0 = 1704067200.0  # 2024-01-01T00:00:00Z
N_PAIRS = 21  # more than one block of 16


def arrival(p):
    """Lag (s) of pair p's arrival: a different one per pair."""
    return -3.0 + 0.3 * p


def windows(p, n, seed):
    rng = np.random.default_rng(seed)
    x = np.exp(-0.5 * ((LAGS - arrival(p)) / 0.3) ** 2) + 0.3 * rng.standard_normal((n, LAGS.size))
    if n > 3:
        x[1] *= 6.0  # a loud window (the robust stack weighs it down)
    return x.astype(np.float32)


def pair_items():
    """Two chunks of 12 h per pair, interleaved by chunk as CrossCorrelatePE sends them;
    pair 5 has one window in its first chunk and none in its second, pair 9 one window."""
    items, truth = [], {}
    for c in range(2):
        for p in range(N_PAIRS):
            n = {5: 1 - c, 9: 1}.get(p, 16 + 3 * p % 7)  # at most 11 h: inside the chunk
            t = T0 + c * 12 * HOUR + 1800.0 * np.arange(n)
            x = windows(p, n, 100 * p + c)
            key = f"XX.S{p:02d}.|XX.R.|ZZ"
            truth.setdefault(key, []).append((x, t))
            items.append({"key": key, "source": f"XX.S{p:02d}.", "receiver": "XX.R.", "component": "ZZ",
                          "source_id": f"XX.S{p:02d}..HHZ", "receiver_id": "XX.R..HHZ", "chunk": c,
                          "ccfs": x, "starttimes": t, "lags": LAGS, "sampling_rate": FS,
                          "distance_km": None, "azimuth": None, "back_azimuth": None})
    return items, truth


def params(**kw):
    base = dict(sampling_rate=FS, cc_len=1800.0, step=1800.0, freqmin=0.1, freqmax=2.0,
                maxlag=MAXLAG, substack=True, substack_len=6 * HOUR)
    return CorrelationParams(**{**base, **kw})


def run_stack(p, items):
    g = WorkflowGraph()
    pe = StackPE(p)
    g.add(pe)
    res = run(g, inputs={pe: [{"input": it} for it in items]}, mapping="sequential")
    return res.outputs[("StackPE", "output")]


def robust_pieces(chunks, substack_len=None):
    """Pavlis & Vernon per chunk (or per chunk and span): ``[(stack, n, t0)]``."""
    out = []
    for x, t in chunks:
        if not len(t):
            continue
        span = np.zeros(len(t), int) if substack_len is None else substack_index(t, substack_len)
        for k in np.unique(span):
            rows = span == k
            out.append((robust_weights(x[rows])[0], int(rows.sum()), t[rows].min()))
    return sorted(out, key=lambda q: q[2])


def definition(method, x):
    return {"linear": linear_stack, "pws": pws_stack, "robust": robust_stack}[method](x)[0]


@pytest.mark.parametrize("method", ["linear", "pws", "robust"])
@pytest.mark.parametrize("substack", [False, True])
def test_block_stacks_are_the_pair_by_pair_stacks_in_the_same_order(method, substack):
    items, truth = pair_items()
    out = run_stack(params(stack_method=method, substack=substack), items)
    assert [o["key"] for o in out] == sorted(truth)  # every pair once, in key order
    tol = {"linear": 1e-6, "pws": 2e-6, "robust": 1e-6}[method]
    for o in out:
        chunks = truth[o["key"]]
        x = np.concatenate([c[0] for c in chunks])
        t = np.concatenate([c[1] for c in chunks])
        assert o["n_windows"] == len(x)
        if method == "robust":
            pieces = robust_pieces(chunks, 6 * HOUR if substack else None)
            want = pieces[0][0] if len(pieces) == 1 else robust_weights(
                np.stack([q[0] for q in pieces]), counts=np.array([q[1] for q in pieces]))[0]
        else:
            want = definition(method, x)
        scale = np.abs(want).max()
        np.testing.assert_allclose(o["stack"], want, rtol=0, atol=tol * scale)
        p = int(o["key"][4:6])
        if len(x) > 3:  # the known arrival
            assert LAGS[np.argmax(o["stack"])] == pytest.approx(arrival(p), abs=0.15)
        if not substack:
            assert o["substacks"] is None
            continue
        span = substack_index(t, 6 * HOUR)
        keys = np.unique(span)
        np.testing.assert_array_equal(o["substack_starts"], keys * 6 * HOUR)
        np.testing.assert_array_equal(o["substack_counts"], [(span == k).sum() for k in keys])
        for row, k in zip(o["substacks"], keys):
            want = definition(method, x[span == k])  # each span lies inside one chunk
            np.testing.assert_allclose(row, want, rtol=0, atol=tol * np.abs(want).max())


def test_pair_without_windows_gives_zeros_and_count_zero(caplog):
    items, _ = pair_items()
    only = [it for it in items if it["key"].startswith("XX.S05")][1:]  # the chunk of 0 windows
    assert only[0]["ccfs"].shape == (0, LAGS.size)
    with caplog.at_level(logging.WARNING):
        out, = run_stack(params(stack_method="pws", substack=False), only)
    assert out["n_windows"] == 0 and not out["stack"].any()
    assert "zero windows" in caplog.text
    out, = run_stack(params(stack_method="robust"), only)  # sub-stacks: no span at all
    assert out["n_windows"] == 0 and out["substacks"].shape == (0, LAGS.size)


def test_nan_window_fails_in_its_own_process_call_before_any_flush():
    items, _ = pair_items()
    pe = StackPE(params(stack_method="pws"))
    for it in items[:3]:
        pe.process({"input": it})
    bad = dict(items[3], ccfs=items[3]["ccfs"].copy())
    bad["ccfs"][2, 7] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        pe.process({"input": bad})
    with pytest.raises(ValueError, match="starttimes has shape"):
        pe.process({"input": dict(items[4], starttimes=items[4]["starttimes"][:-1])})


def test_block_size_does_not_change_the_result():
    items, _ = pair_items()
    p = params(stack_method="pws")
    one = StackPE(p)
    one.pair_block = 1
    many = StackPE(p)
    for it in items:
        one.process({"input": it})
        many.process({"input": it})
    one.flush(), many.flush()
    assert sorted(one.state) == sorted(many.state)
    for key in one.state:
        a, b = one.state[key]["spans"], many.state[key]["spans"]
        assert sorted(a) == sorted(b)
        for k in a:
            assert a[k].n == b[k].n
            np.testing.assert_array_equal(a[k].linear_sum, b[k].linear_sum)
            np.testing.assert_allclose(a[k].phasor_sum, b[k].phasor_sum, rtol=0, atol=1e-9 * a[k].n)


@pytest.mark.parametrize("method", ["linear", "pws", "robust"])
def test_window_sets_equal_from_windows_per_set(method):
    rng = np.random.default_rng(3)
    sets = [rng.standard_normal((n, 41)) for n in (5, 0, 1, 5, 12, 2)]
    sets[3][0] = 0.0  # a zero window: no phase, zero robust weight
    times = [1000.0 * i + 60.0 * np.arange(len(s)) for i, s in enumerate(sets)]
    got = StackState.from_window_sets(sets, method, times, single=False, batch_bytes=41 * 8 * 6)
    assert len(got) == len(sets)
    for s, t, g in zip(sets, times, got):
        want = StackState.from_windows(s, method, t)
        assert g.n == want.n and len(g.pieces) == len(want.pieces)
        np.testing.assert_allclose(g.linear_sum, want.linear_sum, rtol=1e-14, atol=1e-14)
        if method == "pws":
            np.testing.assert_allclose(g.phasor_sum, want.phasor_sum, rtol=0, atol=1e-12)
        for (a, na, ta), (b, nb, tb) in zip(g.pieces, want.pieces):
            assert (na, ta) == (nb, tb)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        np.testing.assert_allclose(g.result()[0], want.result()[0], rtol=0, atol=1e-12)
    # single precision (the default): within float32 rounding of the phase
    got32 = StackState.from_window_sets(sets, method, times)
    for s, t, g in zip(sets, times, got32):
        np.testing.assert_allclose(g.result()[0], StackState.from_windows(s, method, t).result()[0],
                                   rtol=0, atol=1e-5)


def test_substack_states_block_equals_substack_states():
    rng = np.random.default_rng(4)
    sets = [rng.standard_normal((n, 21)).astype(np.float32) for n in (7, 3, 0)]
    times = [T0 + 5 * HOUR + 1800.0 * np.arange(len(s)) for s in sets]
    got = substack_states_block(sets, times, 6 * HOUR, "robust", single=False)
    for s, t, g in zip(sets, times, got):
        want = substack_states(s, t, 6 * HOUR, "robust")
        assert sorted(g) == sorted(want)
        for k in g:
            np.testing.assert_allclose(g[k].result()[0], want[k].result()[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("m", [8, 9, 1, 2])
def test_hilbert_transform_and_phasors_match_scipy(m):
    x = np.random.default_rng(m).standard_normal((3, 2, m))
    np.testing.assert_allclose(hilbert_transform(x), scipy.signal.hilbert(x, axis=-1).imag,
                               rtol=0, atol=1e-12)
    re, im = phasor_parts(x[0])
    ref = unit_phasors(x[0])
    np.testing.assert_allclose(re + 1j * im, ref, rtol=0, atol=1e-12)
    # a cosine's Hilbert transform is the sine (an exact case with a known answer)
    t = np.arange(64)
    np.testing.assert_allclose(hilbert_transform(np.cos(2 * np.pi * 5 * t / 64)),
                               np.sin(2 * np.pi * 5 * t / 64), atol=1e-12)
