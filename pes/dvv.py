"""dv/v PE: one vectorised measurement per block of pairs (thin over :mod:`noisecorr.signal.dvv`).

Input items ``{"block", "series" (n, n_times, n_lags), "reference" (n, n_lags), "mask"
(n, n_lags), "fits" (n,), "lags"}``; output ``{"block", "dvv", "error", "coefficient"}``
arrays ``(n, n_times)``: the stretching coefficient, or the MWCS mean coherence of the
windows used, or the mean wavelet coherence of the points used.
"""

from __future__ import annotations

import numpy as np

from noisecorr.engine import IterativePE
from noisecorr.signal.dvv import mwcs, stretching
from noisecorr.signal.dvv_wavelet import wavelet_dvv

__all__ = ["DvvPE"]


class DvvPE(IterativePE):
    """Measure dv/v of a block of pairs with the method of a
    :class:`noisecorr.monitoring.DvvConfig`."""

    def __init__(self, config, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self.config = config

    def _process(self, item):
        c = self.config
        if c.method == "stretching":
            r = stretching(item["series"], item["reference"], item["lags"], item["mask"],
                           max_dvv=c.max_dvv, n_eps=c.n_eps, freqmin=c.freqmin, freqmax=c.freqmax,
                           fits=item["fits"])
            return {"block": item["block"], "dvv": r.dvv, "error": r.error, "coefficient": r.coefficient}
        if c.method == "wavelet":
            w = wavelet_dvv(item["series"], item["reference"], item["lags"], item["mask"],
                            freqmin=c.freqmin, freqmax=c.freqmax, omega0=c.wavelet_omega0,
                            smoothing=c.wavelet_smoothing, min_coherence=c.min_coherence,
                            fits=item["fits"])
            return {"block": item["block"], "dvv": w.dvv[..., 0], "error": w.error[..., 0],
                    "coefficient": w.coherence[..., 0]}
        m = mwcs(item["series"], item["reference"], item["lags"], item["mask"], freqmin=c.freqmin,
                 freqmax=c.freqmax, window=c.mwcs_window, step=c.mwcs_step, smoothing=c.mwcs_smoothing,
                 min_coherence=c.min_coherence, max_delay_error=c.max_delay_error)
        n_used = m.used.sum(-1)
        mean_coh = np.where(n_used > 0, np.where(m.used, m.coherence, 0.0).sum(-1) / np.maximum(n_used, 1),
                            np.nan)
        dvv = np.where(item["fits"][:, None], m.dvv, np.nan)
        return {"block": item["block"], "dvv": dvv, "error": np.where(np.isfinite(dvv), m.error, np.nan),
                "coefficient": mean_coh}
