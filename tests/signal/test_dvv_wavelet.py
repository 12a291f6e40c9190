"""dv/v by wavelet cross-spectrum (Mao et al. 2020) against synthetics with a known dv/v.

Same synthetics and tolerances as the stretching and MWCS tests (tests/signal/test_dvv.py):
0.02 % absolute on a clean synthetic, errors covering the truth at about the stated rate
on noisy ones.
"""

import numpy as np
import pytest

from noisecorr.signal.dvv import coda_mask
from noisecorr.signal.dvv_wavelet import morlet_frequencies, wavelet_dvv
from noisecorr.synth.dvv import coda_correlations

from dvv_cases import TRUTH, clean_case, noisy_case


@pytest.fixture(scope="module")
def clean():
    return clean_case()


def test_recovers_the_imposed_dvv_in_every_band(clean):
    lags, ref, ser, mask, fits = clean
    bands = [(0.25, 0.75), (0.25, 0.45), (0.45, 0.75)]
    r = wavelet_dvv(ser, ref, lags, mask, freqmin=0.25, freqmax=0.75, bands=bands, fits=fits)
    assert r.dvv.shape == (4, 24, 3) and r.bands.tolist() == [list(b) for b in bands]
    assert np.abs(r.dvv - TRUTH[None, :, None]).max() < 2e-4        # 0.02 % absolute
    assert np.all(r.dvv[:, 8] - r.dvv[:, 7] < -0.002)                # a drop is negative
    assert np.all(r.coherence > 0.95) and np.all(r.error > 0)


def test_sign_of_a_pure_delay_and_a_frequency_independent_change():
    """A 0.3 % faster medium: every band gives +0.003 (earlier arrivals, dv/v > 0), a 0.3 %
    slower one -0.003, within 0.02 % absolute."""
    lags, ref, ser = coda_correlations([20.0], np.array([0.003, -0.003]), sampling_rate=10.0, maxlag=80.0,
                                       n_scatterers=250, seed=2)
    mask, fits = coda_mask(lags, [20.0], velocity=3.0, ballistic_factor=2.0, length=30.0)
    r = wavelet_dvv(ser, ref, lags, mask, freqmin=0.3, freqmax=0.7, bands=[(0.3, 0.5), (0.5, 0.7)])
    np.testing.assert_allclose(r.dvv[0, 0], 0.003, atol=2e-4)
    np.testing.assert_allclose(r.dvv[0, 1], -0.003, atol=2e-4)


def test_errors_cover_the_truth_on_noisy_synthetics():
    truth, lags, ref, ser, mask, fits = noisy_case()
    r = wavelet_dvv(ser, ref, lags, mask, freqmin=0.2, freqmax=0.8, fits=fits)
    z = np.abs(r.dvv[..., 0] - truth) / r.error[..., 0]
    assert np.isfinite(z).all()
    assert 0.55 <= np.mean(z < 1.0) <= 0.9            # nominal 68 %
    assert np.mean(z < 2.0) >= 0.9
    # no shrink: the mean over pairs follows the imposed curve with slope 1 within 5 %
    slope = np.polyfit(truth, r.dvv[..., 0].mean(axis=0), 1)[0]
    assert 0.95 < slope < 1.05


def test_pairs_without_a_window_and_bad_input(clean, caplog):
    lags, ref, ser, mask, fits = clean
    f = fits.copy()
    f[2] = False
    r = wavelet_dvv(ser[:, :3], ref, lags, mask, freqmin=0.25, freqmax=0.75, fits=f)
    assert np.isnan(r.dvv[2]).all() and np.isfinite(r.dvv[[0, 1, 3]]).all()
    assert "1 of 4 pairs" in caplog.text
    with pytest.raises(ValueError, match="f1 < f2"):
        wavelet_dvv(ser, ref, lags, mask, freqmin=0.25, freqmax=0.75, bands=[(0.5, 0.4)])
    with pytest.raises(ValueError, match="Nyquist"):
        wavelet_dvv(ser, ref, lags, mask, freqmin=0.25, freqmax=6.0)


def test_frequencies_two_per_filter_width():
    f = morlet_frequencies(0.2, 0.8, omega0=6.0)
    assert f[0] == pytest.approx(0.2) and f[-1] == pytest.approx(0.8)
    assert np.all(np.diff(np.log(f)) <= np.log1p(0.5 / 6.0) + 1e-12)
