"""The block (vectorised over pairs) per-pair path equals the pair-by-pair reference.

Synthetic: a white-noise source recorded at a receiver delayed by a known number of
samples, for several pairs with different delays; the block correlation, PWS and robust
stacks must equal :func:`correlate`, :func:`pws_stack` / :func:`robust_stack` pair by pair
and peak at each pair's delay.
"""

import numpy as np
import pytest

from noisecorr.signal.components import rotate_to_rtz, rotate_to_rtz_block
from noisecorr.signal.correlate import correlate, correlate_block
from noisecorr.signal.normalize import whiten
from noisecorr.signal.spectra import band_indices, rfft_windows
from noisecorr.signal.stack import (_median_windows, analytic_signal, linear_stack, pws_stack,
                                    pws_stack_block, robust_stack, robust_stack_block)

FS, N, NFFT, MAXLAG = 10.0, 600, 1200, 8.0
DELAYS = [3, -7, 12, 0, 25]  # samples, one per pair


def _pairs(seed=0, n_windows=9):
    rng = np.random.default_rng(seed)
    src, rcv = [], []
    for d in DELAYS:
        x = rng.standard_normal((n_windows, N + 100))
        s = x[:, 50:50 + N]
        r = x[:, 50 - d:50 - d + N] + 0.3 * rng.standard_normal((n_windows, N))
        if d == 12:  # one outlier window for the robust stack to reject
            r[2] = 20 * rng.standard_normal(N)
        src.append(whiten(rfft_windows(s.astype(np.float32), NFFT), FS, NFFT, 0.2, 4.0, "rma", 5))
        rcv.append(whiten(rfft_windows(r.astype(np.float32), NFFT), FS, NFFT, 0.2, 4.0, "rma", 5))
    return np.stack(src), np.stack(rcv)


@pytest.mark.parametrize("method", ["xcorr", "coherency", "deconv"])
def test_block_correlation_equals_pairwise_reference(method):
    s, r = _pairs()
    band = band_indices(NFFT, FS, 0.2, 4.0)
    block, lags = correlate_block(s, r, NFFT, FS, MAXLAG, method, band=band, smoothspect_N=3,
                                  rows_per_batch=7)
    assert block.shape == (len(DELAYS), s.shape[1], 2 * int(MAXLAG * FS) + 1)
    for p, d in enumerate(DELAYS):
        ref, ref_lags = correlate(s[p], r[p], NFFT, FS, MAXLAG, method, smoothspect_N=3)
        np.testing.assert_array_equal(lags, ref_lags)
        np.testing.assert_allclose(block[p], ref, rtol=0, atol=1e-6 * np.abs(ref).max())
        assert lags[np.argmax(block[p].mean(axis=0))] == pytest.approx(d / FS)


def test_block_stacks_equal_pairwise_reference_and_peak_at_delay():
    s, r = _pairs(1)
    ccfs, lags = correlate_block(s, r, NFFT, FS, MAXLAG)
    pws, n_pws = pws_stack_block(ccfs, rows_per_batch=10)
    rob, n_rob, iters = robust_stack_block(ccfs)
    assert n_pws.tolist() == n_rob.tolist() == [s.shape[1]] * len(DELAYS)
    assert np.all(iters >= 1)
    for p, d in enumerate(DELAYS):
        lin_ref = linear_stack(ccfs[p])[0]
        pws_ref = pws_stack(ccfs[p], 2.0)[0]
        rob_ref = robust_stack(ccfs[p])[0]
        np.testing.assert_allclose(pws[p], pws_ref, rtol=0, atol=1e-5 * np.abs(pws_ref).max())
        exact = pws_stack_block(ccfs[p:p + 1], single=False)[0][0]
        np.testing.assert_allclose(exact, pws_ref, rtol=0, atol=1e-6 * np.abs(pws_ref).max())
        np.testing.assert_allclose(rob[p], rob_ref, rtol=0, atol=1e-6 * np.abs(rob_ref).max())
        for stacked in (lin_ref, pws[p], rob[p]):
            assert lags[np.argmax(stacked)] == pytest.approx(d / FS)
    # the outlier window of pair 2 is down-weighted: robust is closer to the clean mean
    clean = np.delete(ccfs[2], 2, axis=0).mean(axis=0)
    assert np.linalg.norm(rob[2] - clean) < np.linalg.norm(linear_stack(ccfs[2])[0] - clean)


def test_block_stacks_with_a_window_mask_equal_the_pairs_own_windows():
    s, r = _pairs(2)
    ccfs, _ = correlate_block(s, r, NFFT, FS, MAXLAG)
    mask = np.ones(ccfs.shape[:2], bool)
    mask[0, [1, 4]] = False
    mask[3, :] = False  # a pair without windows: zeros, count 0
    mask[4, -1] = False
    pws, n = pws_stack_block(ccfs, mask)
    rob, n2, _ = robust_stack_block(ccfs, mask)
    assert n.tolist() == n2.tolist() == [7, 9, 9, 0, 8]
    assert not pws[3].any() and not rob[3].any()
    for p in (0, 1, 2, 4):
        keep = ccfs[p][mask[p]]
        np.testing.assert_allclose(pws[p], pws_stack(keep)[0], rtol=0, atol=1e-5 * np.abs(pws[p]).max())
        np.testing.assert_allclose(rob[p], robust_stack(keep)[0], rtol=0, atol=1e-6 * np.abs(rob[p]).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_windows", [1, 2, 7, 8])
def test_block_median_start_equals_numpy_median(n_windows, dtype):
    x = np.random.default_rng(n_windows).standard_normal((3, n_windows, 33)).astype(dtype)
    x[1, :, 5] = 2.5  # ties
    got = _median_windows(x)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.median(x.astype(np.float64), axis=1))


def test_block_robust_with_windows_along_the_stack_equals_per_pair():
    """Windows (nearly) equal to a multiple of the stack have (nearly) no residual: the
    direct residual, not the norm difference, and the same floor as the per-pair loop."""
    rng = np.random.default_rng(7)
    pulse = np.exp(-0.5 * ((np.arange(81) - 40) / 3.0) ** 2)
    x = pulse + 0.2 * rng.standard_normal((2, 12, 81))
    x[0, :6] = 2.0 * pulse  # identical windows: the median and stack lie along them
    x[1, 3] = 3.0 * pulse + 1e-9 * rng.standard_normal(81)
    got, _, _ = robust_stack_block(x)
    for p in range(2):
        want = robust_stack(x[p])[0]
        np.testing.assert_allclose(got[p], want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_analytic_signal_matches_scipy_hilbert_even_and_odd():
    import scipy.signal

    rng = np.random.default_rng(3)
    for m in (64, 65):
        x = rng.standard_normal((3, 4, m))
        np.testing.assert_allclose(analytic_signal(x), scipy.signal.hilbert(x, axis=-1), atol=1e-12)


def test_rtz_block_equals_pairwise_rotation():
    rng = np.random.default_rng(4)
    t = rng.standard_normal((6, 3, 3, 4, 21)).astype(np.float32)
    az, baz = rng.uniform(0, 360, 6), rng.uniform(0, 360, 6)
    out = rotate_to_rtz_block(t, az, baz)
    assert out.dtype == np.float32 and out.shape == t.shape
    for k in range(6):
        np.testing.assert_allclose(out[k], rotate_to_rtz(t[k], az[k], baz[k]), atol=1e-5)
    with pytest.raises(ValueError, match="one azimuth"):
        rotate_to_rtz_block(t, az[:2], baz[:2])


def test_block_inputs_are_checked():
    with pytest.raises(ValueError, match="n_pairs, n_windows, n_lags"):
        pws_stack_block(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="mask has shape"):
        robust_stack_block(np.zeros((2, 3, 4)), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="same shape"):
        correlate_block(np.zeros((2, 3, 5), complex), np.zeros((2, 2, 5), complex), 8, 1.0, 2.0)


def test_block_correlation_of_station_pairs_by_index():
    s, r = _pairs(5)
    stations = np.concatenate([s, r])  # stations 0..4 sources, 5..9 receivers
    ii, jj = np.array([0, 1, 4, 2]), np.array([5, 6, 9, 0])
    block, _ = correlate_block(stations, stations, NFFT, FS, MAXLAG, pairs=(ii, jj), rows_per_batch=4)
    for p, (i, j) in enumerate(zip(ii, jj)):
        ref, _ = correlate(stations[i], stations[j], NFFT, FS, MAXLAG)
        np.testing.assert_allclose(block[p], ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    with pytest.raises(ValueError, match="pair indices"):
        correlate_block(stations, stations, NFFT, FS, MAXLAG, pairs=([0], [99]))
