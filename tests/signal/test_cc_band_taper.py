"""Coherency and deconvolution keep the band taper that whitening applied (issue 18, part 8)."""

import numpy as np
import pytest

from noisecorr.signal.chain import cc_band_weights
from noisecorr.signal.correlate import accumulate_cross_spectra, receiver_factor, source_factor
from noisecorr.signal.normalize import whiten, whitening_taper
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.spectra import rfft_frequencies


def random_spectra(shape, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex128)


def test_factors_carry_the_weights_once_hand_computed():
    S, R = random_spectra((3, 64), 1), random_spectra((3, 64), 2)
    W = np.linspace(0.0, 1.0, 64)
    kw = dict(smoothspect_N=0, water_level=1e-9, band_weights=W)
    dec = source_factor(S, "deconv", **kw) * receiver_factor(R, "deconv", **kw)
    np.testing.assert_allclose(dec, W * R / S, rtol=1e-5, atol=1e-7)  # amplitudes are float32
    coh = source_factor(S, "coherency", **kw) * receiver_factor(R, "coherency", **kw)
    np.testing.assert_allclose(coh, W * np.conj(S) * R / (np.abs(S) * np.abs(R)), rtol=1e-5, atol=1e-7)  # amplitudes are float32
    # coherency's source factor stays the conjugate of its receiver factor (the tiled path relies on it)
    np.testing.assert_allclose(source_factor(S, "coherency", **kw), np.conj(receiver_factor(S, "coherency", **kw)))
    # xcorr ignores the weights: its whitened spectra already carry the taper
    np.testing.assert_array_equal(source_factor(S, "xcorr", band_weights=W), np.conj(S))


@pytest.mark.parametrize("cc_method", ["coherency", "deconv"])
def test_whitened_band_edges_follow_the_taper(cc_method):
    """Autocorrelation of whitened noise: the cross-spectrum is the band taper, not a boxcar."""
    p = CorrelationParams(sampling_rate=20.0, cc_len=100.0, step=100.0, freqmin=0.1, freqmax=2.0,
                          maxlag=20.0, cc_method=cc_method, freq_norm="phase_only")
    nfft = p.nfft
    X = whiten(random_spectra((4, nfft // 2 + 1), 3).astype(np.complex64), p.sampling_rate, nfft,
               p.freqmin, p.freqmax, "phase_only", water_level=1e-6)
    W = whitening_taper(rfft_frequencies(nfft, p.sampling_rate), p.freqmin, p.freqmax)
    kw = dict(smoothspect_N=0, water_level=1e-6)
    ramp = (W > 0.2) & (W < 0.8)
    assert ramp.sum() > 5
    old, n = accumulate_cross_spectra(X, X, cc_method, **kw)
    # before: the amplitude division undid the taper, so the ramps were flat at 1
    np.testing.assert_allclose(np.abs(old[ramp]) / n, 1.0, rtol=1e-3)
    new, n = accumulate_cross_spectra(X, X, cc_method, band_weights=cc_band_weights(p, nfft), **kw)
    np.testing.assert_allclose(np.abs(new[W > 0]) / n, W[W > 0], rtol=1e-3)
    assert np.all(new[W == 0] == 0)


def test_band_weights_only_for_amplitude_normalised_methods():
    assert cc_band_weights(CorrelationParams(cc_method="xcorr"), 1000) is None
    w = cc_band_weights(CorrelationParams(cc_method="deconv", freqmin=0.1, freqmax=2.0), 1000)
    f = rfft_frequencies(1000, 20.0)
    assert w.shape == f.shape and w[(f > 0.5) & (f < 1.0)].min() == 1.0 and w[f >= 2.0].max() == 0.0
