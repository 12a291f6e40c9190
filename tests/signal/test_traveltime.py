"""Travel-time picking against an analytic diffuse 2-D field (sources on a ring)."""

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from noisecorr.signal.traveltime import pick_travel_time, snr, symmetric_component


def ring_correlation(r_km, c_kms, fs, maxlag, band=(0.2, 2.0), n_sources=2000):
    """Correlation of a band-limited field from sources uniformly on a ring in the far field:
    each source at azimuth theta delays the receiver by (r/c) cos(theta)."""
    n = 2 * int(maxlag * fs) + 1
    lags = (np.arange(n) - n // 2) / fs
    theta = np.linspace(0, 2 * np.pi, n_sources, endpoint=False)
    delays = (r_km / c_kms) * np.cos(theta)
    ccf = np.zeros(n)
    idx = delays * fs + n // 2
    lo = np.floor(idx).astype(int)
    w = idx - lo
    np.add.at(ccf, lo, 1 - w)  # linear interpolation of fractional delays
    np.add.at(ccf, lo + 1, w)
    sos = butter(4, band, btype="bandpass", fs=fs, output="sos")
    return lags, sosfiltfilt(sos, ccf)


@pytest.mark.parametrize("r_km", [12.0, 33.3, 57.4])
def test_pi_over_4_correction_recovers_travel_time(r_km):
    fs, c = 20.0, 3.0
    lags, ccf = ring_correlation(r_km, c, fs, maxlag=60.0)
    truth = r_km / c
    corrected = pick_travel_time(ccf, fs, geometry="2d")
    raw = pick_travel_time(ccf, fs, geometry="none")
    assert abs(corrected - truth) <= 1.0 / fs, (corrected, truth)
    assert raw < truth - 1.0 / fs, "the raw peak of a 2-D field lies inside the travel time"


def test_symmetric_component_and_errors():
    c = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert np.allclose(symmetric_component(c), [3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="odd number of lags"):
        symmetric_component(np.ones(4))
    with pytest.raises(ValueError, match="geometry"):
        pick_travel_time(np.ones(5), 1.0, geometry="3d")


def test_snr_separates_signal_from_noise():
    fs = 20.0
    lags, ccf = ring_correlation(30.0, 3.0, fs, maxlag=100.0)
    rng = np.random.default_rng(0)
    noisy = ccf + 0.05 * ccf.max() * rng.standard_normal(ccf.size)
    assert snr(noisy, fs, 10.0) > 5
    assert snr(rng.standard_normal(ccf.size), fs, 10.0) < 5
