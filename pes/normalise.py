"""Windowing + time-domain normalisation, spectra, and spectral whitening PEs.

Thin over :mod:`noisecorr.signal.windows`, :mod:`~noisecorr.signal.normalize` and
:mod:`~noisecorr.signal.spectra`; items are dicts that keep ``seed_id`` and ``chunk``.

* :class:`NormalisePE`: ``{"seed_id", "chunk", "trace"}`` ->
  ``{"seed_id", "chunk", "windows" (n_windows, n_samples) float32, "starttimes",
  "sampling_rate", "n_candidates", "rejected"}``
* :class:`SpectraPE`: adds ``"spectra"`` (n_windows, nfft // 2 + 1) complex64 and
  ``"nfft"``, drops ``"windows"``
* :class:`WhitenPE`: replaces ``"spectra"`` by the whitened spectra; also writes a small
  ``{"seed_id", "chunk", "n_windows", "n_candidates", "rejected"}`` record to ``stats``
  (window bookkeeping for run summaries without moving the spectra again).
"""

from __future__ import annotations

from noisecorr.engine import IterativePE
from noisecorr.signal.chain import WINDOW_TAPER
from noisecorr.signal.normalize import time_normalize, whiten
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.spectra import rfft_windows
from noisecorr.signal.windows import cut_windows, detrend_windows, taper_windows

__all__ = ["NormalisePE", "SpectraPE", "WhitenPE"]


class NormalisePE(IterativePE):
    """Cut into ``cc_len`` windows every ``step``, reject gap/outlier windows, detrend,
    taper and apply ``time_norm``."""

    def __init__(self, params: CorrelationParams, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self.params = params

    def _process(self, item):
        p = self.params
        tr = item["trace"]
        win = cut_windows(tr.data, tr.sampling_rate, p.cc_len, p.step, starttime=tr.starttime,
                          gap_mask=tr.gap_mask, max_over_std=p.max_over_std)
        x = time_normalize(taper_windows(detrend_windows(win.data), WINDOW_TAPER), p.time_norm,
                           p.smooth_N)
        return {"seed_id": item["seed_id"], "chunk": item["chunk"], "windows": x,
                "starttimes": win.starttimes, "sampling_rate": win.sampling_rate,
                "n_candidates": win.n_candidates, "rejected": dict(win.rejected)}


class SpectraPE(IterativePE):
    """Real FFT of every window with ``nfft = params.nfft`` (zero-padded when ``zero_pad``)."""

    def __init__(self, params: CorrelationParams, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self.params = params

    def _process(self, item):
        out = {k: v for k, v in item.items() if k != "windows"}
        out["nfft"] = self.params.nfft
        out["spectra"] = rfft_windows(item["windows"], out["nfft"])
        return out


class WhitenPE(IterativePE):
    """Band-limited whitening ``freq_norm`` between ``freqmin`` and ``freqmax``."""

    def __init__(self, params: CorrelationParams, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self._add_output("stats")
        self.params = params

    def _process(self, item):
        p = self.params
        self.write("stats", {"seed_id": item["seed_id"], "chunk": item["chunk"],
                             "n_windows": int(item["spectra"].shape[0]),
                             "n_candidates": item.get("n_candidates", 0),
                             "rejected": dict(item.get("rejected", {}))})
        spec = whiten(item["spectra"], item["sampling_rate"], item["nfft"], p.freqmin, p.freqmax,
                      p.freq_norm, p.smoothspect_N, p.spectral_water_level)
        return {**item, "spectra": spec}
