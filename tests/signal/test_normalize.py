"""Time-domain normalisation and spectral whitening against analytic expectations."""

import numpy as np
import pytest

from noisecorr.signal.normalize import (one_bit, running_absolute_mean, time_normalize, whiten,
                                        whitening_taper)
from noisecorr.signal.spectra import rfft_frequencies, rfft_windows


def test_one_bit_is_sign():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 100)) * 1e-9
    x[0, 5] = 0.0
    y = time_normalize(x, "one_bit")
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.sign(x))
    assert y[0, 5] == 0.0


def test_rma_matches_definition_in_the_interior():
    """w[n] = mean(|x[n-N..n+N]|), y = x / w (Bensen et al. 2007, eq. 1)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 300)).astype(np.float32)
    N = 7
    y = running_absolute_mean(x, N)
    for n in range(N, 300 - N):
        w = np.abs(x[:, n - N:n + N + 1]).mean(axis=1)
        np.testing.assert_allclose(y[:, n], x[:, n] / w, rtol=1e-4)


def test_rma_equalises_a_large_amplitude_burst():
    """A 1000x louder second half comes out at the same level as the first half."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(4000)
    x[2000:] *= 1000.0
    y = time_normalize(x[None], "rma", smooth_N=20)[0]
    quiet, loud = np.std(y[200:1800]), np.std(y[2200:3800])
    assert loud / quiet == pytest.approx(1.0, rel=0.1)
    assert np.std(x[2200:3800]) / np.std(x[200:1800]) > 500


def test_rma_of_a_sine_has_peak_pi_over_two():
    """For a*sin, the running mean of |x| over whole periods is 2a/pi, so peaks become pi/2."""
    t = np.arange(4000)
    x = 3.0 * np.sin(2 * np.pi * t / 50.0)              # 50-sample period
    y = running_absolute_mean(x[None], 50)[0]           # 101-sample window ~ 2 periods
    assert np.max(y[200:-200]) == pytest.approx(np.pi / 2, rel=0.02)


def test_time_norm_none_copies_and_unknown_raises():
    x = np.ones((2, 5), np.float32)
    y = time_normalize(x, "none")
    y[0, 0] = 5.0
    assert x[0, 0] == 1.0
    with pytest.raises(ValueError, match="time_norm"):
        time_normalize(x, "clip")


def test_zero_window_stays_zero():
    y = running_absolute_mean(np.zeros((1, 50)), 5)
    assert np.all(y == 0) and np.all(np.isfinite(y))


@pytest.mark.parametrize("nfft", [1000, 1001])
def test_phase_only_whitening_flat_in_band_zero_outside(nfft):
    rng = np.random.default_rng(3)
    fs, fmin, fmax = 20.0, 0.5, 4.0
    x = rng.standard_normal((4, 800)) * np.linspace(1, 50, 800)    # coloured, non-stationary
    spec = rfft_windows(x.astype(np.float32), nfft)
    spec[:, 1::7] *= 1e3                                           # a very uneven spectrum
    out = whiten(spec, fs, nfft, fmin, fmax, "phase_only", water_level=1e-6)
    f = rfft_frequencies(nfft, fs)
    w = whitening_taper(f, fmin, fmax)
    np.testing.assert_array_equal(out[:, (f <= fmin) | (f >= fmax)], 0)
    np.testing.assert_allclose(np.abs(out), np.broadcast_to(w, out.shape), rtol=1e-4, atol=1e-6)
    flat = w == 1.0
    assert flat.sum() > 0.5 * ((f > fmin) & (f < fmax)).sum()
    np.testing.assert_allclose(np.abs(out[:, flat]), 1.0, rtol=1e-4)
    # the phase is kept
    np.testing.assert_allclose(np.angle(out[:, flat]), np.angle(spec[:, flat]), atol=1e-4)
    assert out.dtype == np.complex64


def test_taper_is_a_monotonic_cosine_ramp():
    f = np.linspace(0, 10, 10001)
    w = whitening_taper(f, 1.0, 8.0, taper_fraction=0.2)
    f2, f3 = 1.0 * 8.0**0.2, 8.0 / 8.0**0.2
    assert np.all(w[f <= 1.0] == 0) and np.all(w[f >= 8.0] == 0)
    assert np.all(w[(f >= f2) & (f <= f3)] == 1)
    lo = (f > 1.0) & (f < f2)
    assert np.all(np.diff(w[lo]) > 0)
    mid = np.argmin(np.abs(f - 0.5 * (1.0 + f2)))
    assert w[mid] == pytest.approx(0.5, abs=2e-3)


def test_rma_whitening_flattens_smooth_amplitude():
    """A spectrum whose amplitude varies slowly becomes ~1 in the flat band."""
    fs, nfft = 10.0, 2000
    f = rfft_frequencies(nfft, fs)
    amp = 1.0 + 100.0 * f**2
    phase = np.random.default_rng(4).uniform(-np.pi, np.pi, f.size)
    spec = (amp * np.exp(1j * phase))[None].astype(np.complex64)
    out = whiten(spec, fs, nfft, 0.5, 3.0, "rma", smoothspect_N=5)
    flat = whitening_taper(f, 0.5, 3.0) == 1
    np.testing.assert_allclose(np.abs(out[0, flat]), 1.0, rtol=0.01)
    assert np.all(out[0, (f <= 0.5) | (f >= 3.0)] == 0)


def test_whitening_never_divides_by_zero():
    spec = np.zeros((2, 51), np.complex64)
    spec[1, 10] = 1.0
    with np.errstate(all="raise"):
        for norm in ("phase_only", "rma"):
            out = whiten(spec, 10.0, 100, 1.0, 4.0, norm)
            assert np.all(np.isfinite(out))
            assert np.all(out[0] == 0)


def test_whiten_none_is_identity_copy():
    spec = np.arange(6, dtype=np.complex64).reshape(1, 6)
    out = whiten(spec, 10.0, 10, 1.0, 4.0, "none")
    np.testing.assert_array_equal(out, spec)
    out[0, 0] = 9
    assert spec[0, 0] == 0
