"""Sides, symmetric component and SNR, checked by hand on analytic signals."""

import numpy as np
import pytest

from noisecorr.signal.symmetric import sides, snr, symmetric


def test_sides_and_symmetric_on_a_known_asymmetric_ccf():
    h, fs = 50, 10.0
    x = np.zeros((2, 2 * h + 1))
    x[0, h + 20] = 2.0  # causal arrival at +2 s
    x[0, h - 30] = 4.0  # acausal arrival at -3 s
    x[1, h] = 1.0
    c, a = sides(x)
    assert c.shape == a.shape == (2, h + 1)
    assert c[0, 20] == 2.0 and a[0, 30] == 4.0
    s = symmetric(x)
    assert s[0, 20] == 1.0 and s[0, 30] == 2.0 and s[1, 0] == 1.0
    with pytest.raises(ValueError, match="odd"):
        symmetric(np.zeros((1, 10)))


def test_snr_by_hand_per_side_and_per_band():
    """Signal window 10..20 s (d = 40 km, 2-4 km/s); noise window 20..70 s.
    Causal: a 5-amplitude cosine burst at 15 s; acausal: 2.5; background: a sinusoid of
    amplitude sqrt(2) * 0.5 (RMS 0.5) at 0.1 Hz everywhere, and a weak one (0.05) at 1.05 Hz."""
    fs, h = 20.0, 2400
    t = np.arange(h + 1) / fs
    background = np.sqrt(2) * 0.5 * np.sin(2 * np.pi * 0.1 * t) + 0.05 * np.sin(2 * np.pi * 1.05 * t)
    burst = np.exp(-((t - 15.0) / 1.0) ** 2) * np.cos(2 * np.pi * 1.0 * (t - 15.0))
    causal = 5.0 * burst + background
    acausal = 2.5 * burst + background
    ccf = np.concatenate([acausal[:0:-1], causal])[None]
    r = snr(ccf, fs, [40.0], vmin=2.0, vmax=4.0, noise_length=50.0, periods=[1.0, 10.0], alpha=50.0)
    noise_rms = np.sqrt(np.mean(background[(t >= 20) & (t <= 70)] ** 2))
    assert noise_rms == pytest.approx(np.sqrt(0.25 + 0.05 ** 2 / 2), rel=2e-3)
    win = (t >= 10) & (t <= 20)
    assert r["causal"][0] == pytest.approx(np.abs(causal[win]).max() / noise_rms, rel=1e-9)
    assert r["acausal"][0] == pytest.approx(np.abs(acausal[win]).max() / noise_rms, rel=1e-9)
    # narrow bands separate the burst (1 s) from the background (10 s); the noise window
    # starts 20 s after the signal window, beyond the filtered burst's tail
    r = snr(ccf, fs, [40.0], vmin=2.0, vmax=4.0, noise_gap=20.0, noise_length=50.0,
            periods=[1.0, 10.0], alpha=50.0)
    assert r["band_causal"][0, 0] > 20  # the 0.1-Hz background is filtered out of the 1-s band
    assert r["band_causal"][0, 1] < 3  # at 10 s only the background: peak / rms ~ sqrt(2)
    assert r["band_causal"][0, 0] > 1.5 * r["band_acausal"][0, 0] > 10
    # the broadband signal window holds both: the 10-s band sees only the background
    assert 0.5 < r["band_symmetric"][0, 1] < 2.0  # a sinusoid: peak / RMS <= sqrt(2)


def test_snr_nan_when_noise_window_is_outside_maxlag(caplog):
    x = np.random.default_rng(0).normal(size=(2, 401))
    r = snr(x, 10.0, [10.0, 500.0], vmin=2.0, vmax=4.0, noise_length=5.0)
    assert np.isfinite(r["symmetric"][0]) and np.isnan(r["symmetric"][1])
    assert "SNR undefined for 1 of 2 pairs" in caplog.text
