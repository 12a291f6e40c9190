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

Joint normalisation: a bundle ``{"sensor", "chunk", "channels": [item, ...]}`` from
:class:`pes.preprocess.OrientPE` (the channels ``params.joint_mode`` normalises
together, e.g. E and N) travels as one item: ``NormalisePE`` keeps the windows every
channel accepted (the others count as rejected ``"other_channel"``) and applies
:func:`noisecorr.signal.normalize.joint_time_normalize`, ``SpectraPE`` transforms each
channel, and ``WhitenPE`` whitens them with one common amplitude
(:func:`noisecorr.signal.normalize.joint_whiten_with`) and writes them one channel per
item, as above.
"""

from __future__ import annotations

import logging
from functools import reduce

import numpy as np

from noisecorr.engine import IterativePE
from noisecorr.signal.chain import whiten_spectra, window_and_normalise
from noisecorr.signal.normalize import joint_time_normalize, joint_whiten_with
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.spectra import rfft_windows

__all__ = ["NormalisePE", "SpectraPE", "WhitenPE"]


class NormalisePE(IterativePE):
    """Cut into ``cc_len`` windows every ``step``, reject gap/outlier windows, detrend,
    taper and apply ``time_norm`` (jointly to the channels of a bundle)."""

    def __init__(self, params: CorrelationParams, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self.params = params
        self._warned_alone = False

    def _process(self, item):
        if "channels" in item:
            return self._joint(item)
        p = self.params
        if p.joint_mode != "none" and not self._warned_alone and "sensor" not in item \
                and item["seed_id"][-1].upper() in ("EN" if p.joint_mode == "horizontal" else "ENZ"):
            self._warned_alone = True
            self.log("%s arrived on its own, not in a bundle from OrientPE: it is normalised alone, "
                     "not jointly (joint_normalisation=%s); put OrientPE between PreprocessPE and "
                     "NormalisePE (build_workflow does)", item["seed_id"], p.joint_mode, level=logging.WARNING)
        tr = item["trace"]
        win, x = window_and_normalise(tr, p)
        return {"seed_id": item["seed_id"], "chunk": item["chunk"], "windows": x,
                "starttimes": win.starttimes, "sampling_rate": win.sampling_rate,
                "n_candidates": win.n_candidates, "rejected": dict(win.rejected)}

    def _joint(self, bundle):
        p = self.params
        raw = p.replace(time_norm="none")
        cut = [window_and_normalise(ch["trace"], raw) for ch in bundle["channels"]]
        fs = p.sampling_rate
        grids = [np.round(win.starttimes * fs).astype(np.int64) for win, _ in cut]
        shared = reduce(np.intersect1d, grids)
        rows = [np.searchsorted(g, shared) for g in grids]
        x = np.stack([xw[r] for (_, xw), r in zip(cut, rows)]) if shared.size else \
            np.zeros((len(cut), 0, p.cc_len_samples), np.float32)
        y = joint_time_normalize(x, p.time_norm, p.smooth_N)
        channels = []
        for k, (ch, (win, _)) in enumerate(zip(bundle["channels"], cut)):
            rejected = dict(win.rejected)
            rejected["other_channel"] = int(win.starttimes.size - shared.size)
            channels.append({"seed_id": ch["seed_id"], "chunk": ch["chunk"], "windows": y[k],
                             "starttimes": win.starttimes[rows[k]], "sampling_rate": win.sampling_rate,
                             "n_candidates": win.n_candidates, "rejected": rejected})
        return {"sensor": bundle["sensor"], "chunk": bundle["chunk"], "channels": channels}


class SpectraPE(IterativePE):
    """Real FFT of every window with ``nfft = params.nfft`` (zero-padded when ``zero_pad``)."""

    def __init__(self, params: CorrelationParams, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self.params = params

    def _process(self, item):
        if "channels" in item:
            return {**item, "channels": [self._process(ch) for ch in item["channels"]]}
        out = {k: v for k, v in item.items() if k != "windows"}
        out["nfft"] = self.params.nfft
        out["spectra"] = rfft_windows(item["windows"], out["nfft"])
        return out


class WhitenPE(IterativePE):
    """Band-limited whitening ``freq_norm`` between ``freqmin`` and ``freqmax`` (with one
    common amplitude for the channels of a bundle, which leave one by one)."""

    def __init__(self, params: CorrelationParams, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self._add_output("stats")
        self.params = params

    def _stats(self, item):
        self.write("stats", {"seed_id": item["seed_id"], "chunk": item["chunk"],
                             "n_windows": int(item["spectra"].shape[0]),
                             "n_candidates": item.get("n_candidates", 0),
                             "rejected": dict(item.get("rejected", {}))})

    def _process(self, item):
        p = self.params
        if "channels" in item:
            channels = item["channels"]
            for ch in channels:
                self._stats(ch)
            nfft = channels[0]["nfft"]
            spec = joint_whiten_with(np.stack([ch["spectra"] for ch in channels]),
                                     lambda s: whiten_spectra(s, p, nfft))
            for ch, s in zip(channels, spec):
                self.write("output", {**ch, "spectra": np.ascontiguousarray(s)})
            return None
        self._stats(item)
        spec = whiten_spectra(item["spectra"], p, item["nfft"])
        return {**item, "spectra": spec}
