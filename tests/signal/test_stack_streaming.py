"""Streaming, mergeable stacks and the calendar grid of sub-stacks, against ground truth."""

import numpy as np
import pytest
import scipy.signal

from noisecorr.signal.stack import (StackState, linear_stack, pws_stack, robust_stack,
                                    robust_weights, substack, substack_index)

MIDNIGHT = 1704067200.0  # 2024-01-01T00:00:00Z
HOUR = 3600.0


def windows(n, n_lags=81, seed=0):
    """Noisy copies of a wavelet at lag +10 samples, plus a few strong outliers."""
    rng = np.random.default_rng(seed)
    lag = np.arange(n_lags) - n_lags // 2
    wavelet = np.exp(-0.5 * ((lag - 10) / 3.0) ** 2) * np.cos(0.6 * (lag - 10))
    x = wavelet + 0.7 * rng.standard_normal((n, n_lags))
    x[::7] *= 5.0
    return x.astype(np.float32)


def pws_by_definition(x, nu):
    """Schimmel & Paulssen (1997) eq. 4 written out: mean * |mean of exp(i phase)|^nu."""
    analytic = scipy.signal.hilbert(x.astype(np.float64), axis=1)
    coherence = np.abs(np.mean(analytic / np.abs(analytic), axis=0))
    return x.astype(np.float64).mean(axis=0) * coherence ** nu


@pytest.mark.parametrize("nu", [0.0, 1.0, 2.0, 3.5])
def test_streaming_pws_over_chunks_equals_batch_pws(nu):
    x = windows(50)
    state = StackState.empty("pws", x.shape[1])
    for chunk in np.array_split(x, [3, 4, 20, 33]):  # chunks of unequal size, one of 1 window
        state = state.merge(StackState.from_windows(chunk, "pws"))
    got, n = state.result(nu)
    assert n == 50
    np.testing.assert_allclose(got, pws_by_definition(x, nu), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got, pws_stack(x, nu)[0], rtol=1e-5, atol=1e-6)
    # the phase weighting does something here: a plain mean is not the answer
    if nu:
        assert not np.allclose(got, x.mean(axis=0), rtol=1e-2)


@pytest.mark.parametrize("method", ["linear", "pws"])
def test_merge_of_two_halves_equals_the_whole_in_either_order(method):
    x = windows(31, seed=3)
    whole = StackState.from_windows(x, method)
    a, b = StackState.from_windows(x[:12], method), StackState.from_windows(x[12:], method)
    for merged in (a + b, b.merge(a)):
        assert merged.n == whole.n == 31
        np.testing.assert_allclose(merged.linear_sum, whole.linear_sum, rtol=1e-12)
        np.testing.assert_allclose(merged.result(2.0)[0], whole.result(2.0)[0], rtol=1e-10,
                                   atol=1e-13)
        if method == "pws":
            np.testing.assert_allclose(merged.phasor_sum, whole.phasor_sum, rtol=1e-12)
    np.testing.assert_allclose((a + b).result()[0], (linear_stack(x) if method == "linear"
                                                     else pws_stack(x))[0], rtol=1e-5, atol=1e-6)


def test_state_memory_does_not_grow_with_windows_for_linear_and_pws():
    few, many = windows(2), windows(400)
    for method, per_lag in (("linear", 8), ("pws", 8 + 16)):
        a, b = StackState.from_windows(few, method), StackState.from_windows(many, method)
        assert a.nbytes == b.nbytes == per_lag * few.shape[1]
    robust = StackState.from_windows(many[:200], "robust") + StackState.from_windows(many[200:], "robust")
    assert robust.nbytes == (2 + 1) * 8 * few.shape[1]  # one robust stack per piece, plus the sum


def test_robust_state_is_exact_for_one_piece_and_count_weighted_across_pieces():
    x = windows(40, seed=5)
    one = StackState.from_windows(x, "robust")
    np.testing.assert_allclose(one.result()[0], robust_stack(x)[0], rtol=1e-6, atol=1e-7)
    parts = [x[:10], x[10:40]]
    state = StackState.from_windows(parts[1], "robust", [100.0]) + \
        StackState.from_windows(parts[0], "robust", [0.0])
    assert state.n == 40 and len(state.pieces) == 2
    pieces = np.stack([robust_stack(p)[0] for p in parts]).astype(np.float64)
    want, w, _ = robust_weights(pieces, counts=[10, 30])
    np.testing.assert_allclose(state.result()[0], want, rtol=1e-6, atol=1e-7)
    # the same pieces arriving in the other order give the same stack (sorted by start)
    other = StackState.from_windows(parts[0], "robust", [0.0]) + \
        StackState.from_windows(parts[1], "robust", [100.0])
    np.testing.assert_array_equal(other.result()[0], state.result()[0])


def test_robust_weights_counts():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 30))
    np.testing.assert_allclose(robust_weights(x, counts=np.ones(5))[0], robust_weights(x)[0])
    # a heavier count pulls the stack towards that row
    light = robust_weights(x, counts=[1, 1, 1, 1, 1])[0]
    heavy = robust_weights(x, counts=[50, 1, 1, 1, 1])[0]
    assert np.linalg.norm(heavy - x[0]) < np.linalg.norm(light - x[0])
    with pytest.raises(ValueError, match="counts"):
        robust_weights(x, counts=[1, 1, 0, 1, 1])


def test_substack_spans_of_pairs_with_different_first_windows_line_up_at_midnight():
    day = 86400.0
    # pair 1 starts at 00:10, pair 2 at 05:37 the same day; both run into the next day
    t1 = MIDNIGHT + 600.0 + 1800.0 * np.arange(70)
    t2 = MIDNIGHT + 5 * HOUR + 37 * 60 + 1800.0 * np.arange(40)
    x1, x2 = windows(70), windows(40, seed=1)
    s1, starts1, n1 = substack(x1, t1, day)
    s2, starts2, n2 = substack(x2, t2, day)
    assert starts1.tolist() == starts2.tolist() == [MIDNIGHT, MIDNIGHT + day]
    # windows starting before midnight of day 2 belong to day 1: 00:10 + 1800 k < 24:00
    assert n1.tolist() == [48, 22] and n2.tolist() == [37, 3]
    np.testing.assert_allclose(s1[0], x1[:48].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s2[1], x2[37:].mean(axis=0), rtol=1e-5, atol=1e-6)
    # hourly spans too: span starts are whole hours for both pairs
    _, h1, _ = substack(x1, t1, HOUR)
    _, h2, _ = substack(x2, t2, HOUR)
    assert np.all(np.mod(np.concatenate([h1, h2]) - MIDNIGHT, HOUR) == 0)
    assert h1[0] == MIDNIGHT and h2[0] == MIDNIGHT + 5 * HOUR


def test_substack_origin_shifts_the_grid_and_boundaries_belong_to_the_later_span():
    origin = MIDNIGHT + 3 * HOUR  # e.g. 03:00 UTC
    t = MIDNIGHT + np.array([0.0, 2 * HOUR, 3 * HOUR - 1e-6 * HOUR, 3 * HOUR, 9 * HOUR + 1.0])
    k = substack_index(t, 6 * HOUR, origin)
    assert k.tolist() == [-1, -1, -1, 0, 1]
    _, starts, counts = substack(np.ones((5, 3)), t, 6 * HOUR, origin=origin)
    assert starts.tolist() == [MIDNIGHT - 3 * HOUR, origin, origin + 6 * HOUR]
    assert counts.tolist() == [3, 1, 1]
    # the default grid is anchored at midnight UTC: 03:00 is inside the first span
    assert substack_index(t, 6 * HOUR).tolist() == [4 * 19723, 4 * 19723, 4 * 19723,
                                                    4 * 19723, 4 * 19723 + 1]


@pytest.mark.parametrize("method", ["linear", "pws", "robust"])
def test_substack_each_span_is_the_stack_of_its_windows(method):
    x = windows(30, seed=2)
    t = MIDNIGHT + 1800.0 * np.arange(30)
    subs, starts, counts = substack(x, t, 4 * HOUR, method, pws_power=2.0)
    assert counts.tolist() == [8, 8, 8, 6]
    for i, (a, b) in enumerate([(0, 8), (8, 16), (16, 24), (24, 30)]):
        want = {"linear": linear_stack, "pws": pws_stack, "robust": robust_stack}[method](x[a:b])[0]
        np.testing.assert_allclose(subs[i], want, rtol=1e-5, atol=1e-6)


def test_substack_origin_from_yaml_is_normalised_and_bad_values_name_the_field(tmp_path):
    from pathlib import Path

    from noisecorr.signal.params import CorrelationParams
    from noisecorr.workflow.config import ConfigError, load_config

    root = Path(__file__).resolve().parents[2]
    default = load_config(root / "configs" / "default.yaml", environ={}).processing
    assert default.substack_origin is None and default.substack_origin_seconds == 0.0
    cfg = tmp_path / "c.yaml"
    cfg.write_text("substack: true\nsubstack_len: 21600\nsubstack_origin: 2024-01-01T05:00:00+02:00\n")
    p = load_config(cfg, environ={}).processing  # YAML reads the unquoted time as a datetime
    assert p.substack_origin == "2024-01-01T03:00:00.000000Z"
    assert p.substack_origin_seconds == MIDNIGHT + 3 * HOUR
    assert CorrelationParams.from_dict(p.to_dict()) == p
    env = load_config(environ={"NOISECORR_SUBSTACK_ORIGIN": "2024-01-01"}).processing
    assert env.substack_origin_seconds == MIDNIGHT
    for bad in ("noon", 3.0):
        cfg.write_text(f"substack_origin: {bad}\n")
        with pytest.raises(ConfigError, match="substack_origin"):
            load_config(cfg, environ={})


def test_stack_memory_bytes_counts_states_not_windows():
    from noisecorr.signal.stack import stack_memory_bytes

    L, P = 4801, 4950
    assert stack_memory_bytes(P, L, "linear", 86400.0, 86400.0) == P * L * 8
    assert stack_memory_bytes(P, L, "pws", 86400.0, 86400.0) == P * L * 24
    # daily sub-stacks over 30 daily chunks: 31 spans (an unaligned start), robust 2 pieces a chunk
    assert stack_memory_bytes(P, L, "pws", 30 * 86400.0, 86400.0, 86400.0) == P * L * 24 * 31
    assert stack_memory_bytes(P, L, "robust", 30 * 86400.0, 86400.0, 86400.0) == P * L * 8 * (31 + 60)
