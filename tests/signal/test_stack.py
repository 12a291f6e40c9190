"""Stacking: linear, phase-weighted (Schimmel & Paulssen 1997), robust (Pavlis & Vernon 2010)."""

import numpy as np
import pytest

from noisecorr.signal.stack import (linear_stack, pws_stack, robust_stack, robust_weights, stack,
                                    substack)


def coherent_plus_noise(n_windows=40, n_lags=401, snr=0.5, seed=0):
    """Windows holding the same wavelet at lag index 250 plus independent noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_lags)
    wavelet = np.exp(-0.5 * ((t - 250) / 4.0) ** 2) * np.cos(2 * np.pi * (t - 250) / 16.0)
    noise = rng.standard_normal((n_windows, n_lags))
    return (snr * wavelet + noise).astype(np.float32), wavelet


def test_linear_is_mean():
    x = np.random.default_rng(1).standard_normal((7, 30)).astype(np.float32)
    s, n = linear_stack(x)
    np.testing.assert_allclose(s, x.mean(axis=0), rtol=1e-6)
    assert n == 7 and s.dtype == np.float32


def test_pws_suppresses_incoherent_noise_relative_to_linear():
    x, wavelet = coherent_plus_noise()
    lin, _ = linear_stack(x)
    pws, n = pws_stack(x, pws_power=2)
    assert n == 40

    def snr(s):
        signal = np.max(np.abs(s[230:270]))
        return signal / np.sqrt(np.mean(np.concatenate([s[:200], s[300:]]) ** 2))
    assert snr(pws) > 2 * snr(lin)
    assert np.argmax(np.abs(pws)) in range(245, 256)


def test_pws_power_zero_is_linear_and_coherent_data_unchanged():
    x, wavelet = coherent_plus_noise(n_windows=5)
    np.testing.assert_allclose(pws_stack(x, 0)[0], linear_stack(x)[0], rtol=1e-5)
    same = np.tile(wavelet, (6, 1)).astype(np.float32)
    np.testing.assert_allclose(pws_stack(same, 2)[0], wavelet, atol=1e-5)


def test_robust_downweights_outlier_windows():
    x, wavelet = coherent_plus_noise(n_windows=30, snr=3.0, seed=3)
    bad = x.copy()
    bad[:3] = 50.0 * np.random.default_rng(9).standard_normal((3, x.shape[1]))   # 10% garbage
    rob, n = robust_stack(bad)
    lin, _ = linear_stack(bad)
    err_rob = np.linalg.norm(rob - 3.0 * wavelet)
    err_lin = np.linalg.norm(lin - 3.0 * wavelet)
    assert n == 30
    assert err_rob < 0.5 * err_lin
    _, w, _ = robust_weights(bad)
    assert w.sum() == pytest.approx(1.0)
    assert w[:3].max() < 0.2 * np.median(w[3:])


def test_robust_of_identical_windows_is_that_window():
    _, wavelet = coherent_plus_noise()
    x = np.tile(wavelet, (4, 1))
    np.testing.assert_allclose(robust_stack(x)[0], wavelet, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["linear", "pws", "robust"])
def test_delayed_peak_survives_every_stack(method):
    x, _ = coherent_plus_noise(snr=2.0, seed=5)
    s, n = stack(x, method)
    assert n == 40 and abs(int(np.argmax(s)) - 250) <= 1


def test_empty_stack_is_zero_not_nan():
    for method in ("linear", "pws", "robust"):
        s, n = stack(np.zeros((0, 11), np.float32), method)
        assert n == 0 and s.shape == (11,) and np.all(s == 0)


def test_unknown_method():
    with pytest.raises(ValueError, match="stack_method"):
        stack(np.zeros((2, 3)), "median")


def test_substack_groups_by_time_span():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((10, 21)).astype(np.float32)
    t = 1000.0 + 450.0 * np.arange(10)           # windows every 450 s
    t = np.delete(t, [4, 5])                      # a data gap: spans may hold fewer windows
    x = np.delete(x, [4, 5], axis=0)
    subs, starts, counts = substack(x, t, 1800.0, origin=1000.0)
    # spans [1000, 2800), [2800, 4600), [4600, 6400): windows 0-3 | 6,7 | 8,9 (indices of the originals)
    assert counts.tolist() == [4, 2, 2]
    np.testing.assert_allclose(starts, [1000.0, 2800.0, 4600.0])
    np.testing.assert_allclose(subs[0], x[:4].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(subs[1], x[4:6].mean(axis=0), rtol=1e-5)
    one, _, c1 = substack(x, t, 450.0)
    assert c1.tolist() == [1] * 8
    np.testing.assert_allclose(one, x, rtol=1e-6)


def test_stack_rejects_nan_and_does_not_mutate():
    x = np.ones((3, 5), np.float32)
    x.flags.writeable = False
    for method in ("linear", "pws", "robust"):
        stack(x, method)
    y = np.ones((3, 5))
    y[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        stack(y, "linear")
