"""Window cutting: the last window that fits is kept; gap and outlier windows are rejected."""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from noisecorr.signal.windows import (common_windows, cut_windows, detrend_linear,
                                      detrend_windows, taper_windows, window_start_indices)


@settings(max_examples=200, deadline=None)
@given(npts=st.integers(0, 500), win=st.integers(1, 100), step=st.integers(1, 100))
def test_start_indices_are_all_windows_that_fit(npts, win, step):
    starts = window_start_indices(npts, win, step)
    brute = [s for s in range(0, npts, step) if s + win <= npts]
    assert starts.tolist() == brute


def test_one_day_keeps_the_last_window_that_fits():
    # 86400 s, cc_len 1800 s, step 1800 s -> 48 windows; the last starts at 84600 s and ends exactly at 86400
    fs = 1.0
    w = cut_windows(np.random.default_rng(0).standard_normal(86400), fs, 1800, 1800)
    assert w.n_windows == 48
    assert w.starttimes[-1] == 86400 - 1800
    w = cut_windows(np.random.default_rng(0).standard_normal(86400), fs, 1800, 450)
    assert w.n_windows == (86400 - 1800) // 450 + 1 == 189


def test_window_content_and_start_times():
    x = np.arange(100, dtype=np.float32)
    w = cut_windows(x, 2.0, cc_len=10.0, step=5.0, starttime=1000.0)
    assert w.data.shape == (9, 20)
    np.testing.assert_array_equal(w.data[3], x[30:50])
    np.testing.assert_allclose(w.starttimes, 1000.0 + np.arange(9) * 5.0)
    assert w.data.dtype == np.float32


def test_gap_windows_rejected_and_counted():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1000)
    mask = np.zeros(1000, bool)
    mask[450] = True                       # one missing sample
    w = cut_windows(x, 1.0, 100, 50, gap_mask=mask)
    # windows starting at 400 and 450 contain sample 450 (the one at 350 ends at 449)
    assert w.n_candidates == 19
    assert w.rejected["gap"] == 2
    assert w.n_windows == 17
    assert 400.0 not in w.starttimes and 450.0 not in w.starttimes and 350.0 in w.starttimes


def test_outlier_and_flat_windows_rejected():
    # (a single spike in n samples has max/std <= sqrt(n - 1), so windows must be long enough)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(10000)
    x[1200] = 1000.0                       # a glitch in window [1000, 2000)
    x[6000:7000] = 0.0                     # a dead window
    w = cut_windows(x, 1.0, 1000, 1000, max_over_std=10)
    assert w.rejected == {"gap": 0, "flat": 1, "outlier": 1}
    assert w.n_windows == 8
    assert 1000.0 not in w.starttimes and 6000.0 not in w.starttimes
    # disabled criterion keeps the glitch window
    w2 = cut_windows(x, 1.0, 1000, 1000, max_over_std=np.inf)
    assert w2.rejected["outlier"] == 0 and w2.n_windows == 9
    # the criterion is max|x - mean| > max_over_std * std: a 5-sigma-only window is kept
    y = rng.standard_normal(1000)
    y = np.clip(y, -3, 3)
    y[10] = 5 * np.std(y)
    assert cut_windows(y, 1.0, 1000, 1000, max_over_std=10).n_windows == 1
    assert cut_windows(y, 1.0, 1000, 1000, max_over_std=4).rejected["outlier"] == 1


def test_cut_does_not_mutate_input():
    x = np.arange(50.0)
    x.flags.writeable = False
    w = cut_windows(x, 1.0, 10, 10)
    w.data[0, 0] = -1
    assert x[0] == 0


def test_detrend_and_taper():
    t = np.arange(200, dtype=np.float32)
    x = np.stack([3 + 0.5 * t, -2 * t])
    d = detrend_windows(x)
    np.testing.assert_allclose(d, 0, atol=1e-3)
    tp = taper_windows(np.ones((1, 200)), 0.1)
    assert tp[0, 0] == 0 and tp[0, 100] == 1 and tp[0, -1] == 0


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 172_801])
def test_detrend_linear_is_the_least_squares_fit(n):
    """Same as scipy's least-squares detrend; removes an exact line; the residual is
    orthogonal to 1 and k (the normal equations)."""
    rng = np.random.default_rng(n)
    k = np.arange(n, dtype=np.float64)
    x = np.stack([rng.standard_normal(n) * 1e3 + 5e4 - 0.3 * k, 7.0 - 2.5e-3 * k])
    d = detrend_linear(x)
    assert d.dtype == np.float64 and d.shape == x.shape
    if n == 1:
        np.testing.assert_array_equal(d, 0.0)
        return
    want = scipy.signal.detrend(x, axis=-1, type="linear")
    assert np.max(np.abs(d - want)) <= 1e-12 * np.max(np.abs(x))
    np.testing.assert_allclose(d[1], 0.0, atol=1e-9)  # an exact line leaves nothing
    assert abs(d[0].sum()) <= 1e-9 * n * 1e3 and abs(d[0] @ k) <= 1e-9 * n * n * 1e3


def test_detrend_linear_does_not_depend_on_blas_threads():
    """Mappings must give the same samples: a BLAS dot splits its sum by thread count."""
    from threadpoolctl import threadpool_limits

    x = np.random.default_rng(1).standard_normal(1_728_000) * 1e4
    with threadpool_limits(1):
        one = detrend_linear(x)
    with threadpool_limits(4):
        four = detrend_linear(x)
    np.testing.assert_array_equal(one, four)


def test_common_windows():
    ia, ib = common_windows(np.array([0.0, 10.0, 20.0, 30.0]), np.array([10.0, 30.0, 40.0]), 1.0)
    assert ia.tolist() == [1, 3] and ib.tolist() == [0, 1]
