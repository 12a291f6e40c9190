"""The synthetic dv/v case shared by the stretching, MWCS and wavelet tests.

Four pairs (12 to 58 km) over 24 days with a -0.3 % step on day 8, a 1e-4/day trend and a
0.1 % sine of 12 days; coda window from twice the ballistic time at 3 km/s, 40 s long.
"""

import numpy as np

from noisecorr.signal.dvv import coda_mask
from noisecorr.synth.dvv import coda_correlations, dvv_model

DIST = np.array([12.0, 27.0, 41.0, 58.0])
TRUTH = dvv_model(24, step=(8, -0.003), trend=1e-4, seasonal=(0.001, 12, 0))


def clean_case():
    """``(lags, reference, series, mask, fits)`` of the noise-free synthetic."""
    lags, ref, ser = coda_correlations(DIST, TRUTH, sampling_rate=10.0, maxlag=80.0,
                                       n_scatterers=250, seed=1)
    mask, fits = coda_mask(lags, DIST, velocity=3.0, ballistic_factor=2.0, length=40.0)
    return lags, ref, ser, mask, fits


def noisy_case():
    """``(truth, lags, reference, series, mask, fits)``: six pairs (10 to 45 km) over 30 days
    with a 0.2 % sine of 15 days, local noise 0.3 of the coda."""
    truth = dvv_model(30, seasonal=(0.002, 15, 0))
    d = np.array([10.0, 20.0, 30.0, 45.0, 15.0, 35.0])
    lags, ref, ser = coda_correlations(d, truth, sampling_rate=10.0, maxlag=80.0, noise=0.3,
                                       n_scatterers=250, seed=3)
    mask, fits = coda_mask(lags, d, velocity=3.0, ballistic_factor=2.0, length=40.0)
    return truth, lags, ref, ser, mask, fits
