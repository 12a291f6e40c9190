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
