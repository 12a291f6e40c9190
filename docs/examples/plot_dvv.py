"""
dv/v by stretching on synthetic coda
====================================

Correlations of a scattering medium whose velocity drops by 0.2 % on day 2
(:mod:`noisecorr.synth.dvv`), measured by stretching (:func:`noisecorr.signal.dvv.stretching`)
in a coda window starting at twice the ballistic time. dv/v > 0 is a velocity increase.
"""

import matplotlib.pyplot as plt
import numpy as np

from noisecorr.signal.dvv import coda_mask, stretching
from noisecorr.synth.dvv import coda_correlations, dvv_model

truth = dvv_model(8, step=(3, -0.002))
lags, ref, days = coda_correlations([20.0], truth, sampling_rate=10.0, maxlag=60.0, n_scatterers=100)
mask, fits = coda_mask(lags, [20.0], velocity=3.0, ballistic_factor=2.0, length=30.0)
r = stretching(days, ref, lags, mask, fits=fits, freqmin=0.25, freqmax=0.75)

fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
day = np.arange(len(truth))
ax.plot(day, 100 * np.asarray(truth), "k--", label="imposed")
ax.errorbar(day, 100 * r.dvv[0], yerr=100 * r.error[0], fmt="o", label="stretching")
ax.set_xlabel("day")
ax.set_ylabel("dv/v (%)")
ax.legend()
print("measured (%)", np.round(100 * r.dvv[0], 3))
