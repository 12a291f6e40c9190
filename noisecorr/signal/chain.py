"""The per-station and per-pair processing chain built from the pure functions.

Per station and chunk (Bensen et al. 2007; NoisePy's ``noise_processing``):
:func:`station_spectra` cuts a :class:`~noisecorr.signal.preprocess.ProcessedTrace`
into windows, rejects gap/flat/outlier windows, removes mean and trend, tapers,
applies the time-domain normalisation, computes the real spectra and whitens them.

Per pair: :func:`correlate_pair` gives the per-window correlations of the windows both
stations share; :func:`correlate_and_stack` stacks them. A linear stack without
sub-stacks takes the fast path (sum of cross-spectra, one inverse FFT); PWS and robust
stacks need every window's correlation and take the per-window path.

Examples
--------
>>> import numpy as np
>>> from noisecorr.signal.params import CorrelationParams
>>> from noisecorr.signal.preprocess import ProcessedTrace
>>> p = CorrelationParams(sampling_rate=10.0, cc_len=60.0, step=30.0, freqmin=0.2,
...                       freqmax=4.0, maxlag=5.0, max_over_std=np.inf)
>>> rng = np.random.default_rng(1)
>>> x = rng.standard_normal(3000).astype(np.float32)
>>> a = ProcessedTrace("XX.A..HHZ", 0.0, 10.0, x, np.zeros(x.size, bool))
>>> b = ProcessedTrace("XX.B..HHZ", 0.0, 10.0, np.roll(x, 7), np.zeros(x.size, bool))
>>> res = correlate_and_stack(station_spectra(a, p), station_spectra(b, p), p)
>>> float(res.lags[np.argmax(res.stack)]), res.n_windows
(0.7, 9)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from noisecorr.signal.correlate import (accumulate_cross_spectra, correlate, cross_spectra_to_lags,
                                        lag_axis)
from noisecorr.signal.noisepy_compat import (noisepy_whiten, noisepy_whitening_bins,
                                             noisepy_whitening_weights, window_taper)
from noisecorr.signal.normalize import time_normalize, whiten, whitening_taper
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.preprocess import ProcessedTrace
from noisecorr.signal.spectra import band_indices, rfft_frequencies, rfft_windows
from noisecorr.signal.stack import stack, substack
from noisecorr.signal.windows import Windows, common_windows, cut_detrended_windows

__all__ = ["StationSpectra", "PairResult", "station_spectra", "correlate_pair", "correlate_and_stack",
           "window_and_normalise", "whiten_spectra", "whitened_band", "cc_band_weights"]

logger = logging.getLogger(__name__)

#: Default fraction of each window tapered at both ends (``params.window_taper``).
WINDOW_TAPER = 0.05


@dataclass(frozen=True)
class StationSpectra:
    """Whitened spectra of the accepted windows of one channel and chunk.

    Attributes
    ----------
    seed_id : str
    starttimes : ndarray, float64, shape (n_windows,)
        Window start times, POSIX seconds.
    spectra : ndarray, complex64, shape (n_windows, nfft // 2 + 1)
    sampling_rate : float
    nfft : int
    n_candidates : int
    rejected : dict
        Rejected windows by reason.
    """

    seed_id: str
    starttimes: np.ndarray
    spectra: np.ndarray
    sampling_rate: float
    nfft: int
    n_candidates: int = 0
    rejected: dict = field(default_factory=dict)

    @property
    def n_windows(self) -> int:
        return int(self.spectra.shape[0])


@dataclass(frozen=True)
class PairResult:
    """Stacked correlation of one station pair.

    Attributes
    ----------
    source_id, receiver_id : str
    lags : ndarray, seconds
    stack : ndarray, float32, shape (n_lags,)
    n_windows : int
        Windows used in ``stack``.
    substacks, substack_starts, substack_counts : ndarray or None
        Present when ``params.substack``.
    """

    source_id: str
    receiver_id: str
    lags: np.ndarray
    stack: np.ndarray
    n_windows: int
    substacks: np.ndarray | None = None
    substack_starts: np.ndarray | None = None
    substack_counts: np.ndarray | None = None


def window_and_normalise(trace: ProcessedTrace, params: CorrelationParams) -> tuple[Windows, np.ndarray]:
    """Cut ``trace`` into windows, reject bad ones, detrend, taper, time-normalise.

    Returns the accepted :class:`~noisecorr.signal.windows.Windows` and their processed
    samples, float32 ``(n_windows, cc_len_samples)``: mean and linear trend removed,
    tapered by :func:`noisecorr.signal.noisepy_compat.window_taper` (``window_taper``,
    ``window_taper_max``), then ``time_norm``. The windows' ``data`` are the detrended,
    tapered samples (:func:`~noisecorr.signal.windows.cut_detrended_windows`), the same
    array as the processed samples for ``time_norm="none"``.
    """
    if abs(trace.sampling_rate - params.sampling_rate) > 1e-9 * params.sampling_rate:
        raise ValueError(f"{trace.seed_id}: sampling rate {trace.sampling_rate} Hz differs from "
                         f"params.sampling_rate {params.sampling_rate} Hz")
    taper = window_taper(params.cc_len_samples, params.window_taper, params.window_taper_max)
    # cut, reject, detrend and taper in one pass (cut_detrended_windows); win.data holds the
    # detrended, tapered windows, a new array: "none" returns it as it is, not a copy
    win = cut_detrended_windows(trace.data, trace.sampling_rate, params.cc_len, params.step, taper,
                                starttime=trace.starttime, gap_mask=trace.gap_mask,
                                max_over_std=params.max_over_std,
                                outlier_reference=params.outlier_reference)
    if params.time_norm == "none":
        return win, win.data
    return win, time_normalize(win.data, params.time_norm, params.smooth_N)


def whiten_spectra(spectra: np.ndarray, params: CorrelationParams, nfft: int) -> np.ndarray:
    """Spectral whitening ``freq_norm`` in the shape ``whitening_style`` selects."""
    fn = noisepy_whiten if params.whitening_style == "noisepy" else whiten
    return fn(spectra, params.sampling_rate, nfft, params.freqmin, params.freqmax,
              params.freq_norm, params.smoothspect_N, params.spectral_water_level)


def whitened_band(params: CorrelationParams, nfft: int) -> slice:
    """Spectral bins that can be non-zero after :func:`whiten_spectra` (a slice).

    ``freqmin..freqmax`` for the noisecorr whitening; NoisePy's extends 100 bins beyond
    each edge (:func:`noisecorr.signal.noisepy_compat.noisepy_whitening_bins`). Every bin
    for ``freq_norm="none"``.
    """
    n_freq = int(nfft) // 2 + 1
    if params.freq_norm == "none":
        return slice(0, n_freq)
    if params.whitening_style == "noisepy":
        ix00, _, _, ix11 = noisepy_whitening_bins(nfft, params.sampling_rate, params.freqmin,
                                                  params.freqmax)
        return slice(ix00, ix11)
    b = band_indices(nfft, params.sampling_rate, params.freqmin, params.freqmax)
    return slice(b.start, min(b.stop, n_freq))


def station_spectra(trace: ProcessedTrace, params: CorrelationParams) -> StationSpectra:
    """Windows -> detrend -> taper -> time normalisation -> rfft -> whitening."""
    win, x = window_and_normalise(trace, params)
    nfft = params.nfft
    spec = whiten_spectra(rfft_windows(x, nfft), params, nfft)
    return StationSpectra(trace.seed_id, win.starttimes, spec, params.sampling_rate, nfft,
                          win.n_candidates, dict(win.rejected))


def cc_band_weights(params: CorrelationParams, nfft: int) -> np.ndarray | None:
    """Band taper re-applied to coherency and deconvolution cross-spectra (one per bin).

    The whitening taper (:func:`noisecorr.signal.normalize.whitening_taper`, or NoisePy's
    with ``whitening_style="noisepy"``) on the ``nfft // 2 + 1`` bins; None for
    ``cc_method="xcorr"``, whose whitened spectra keep the taper. Coherency and
    deconvolution divide by the spectral amplitude and so divide the taper out (see
    :func:`noisecorr.signal.correlate.source_factor`); without whitening the band taper
    still limits them to the band the bandpass kept, instead of flattening the filtered-out
    noise up to the water level. (NoisePy does not re-apply it: its coherency and
    deconvolution spectra are flat out to its ramps' ends.)
    """
    if params.cc_method == "xcorr":
        return None
    if params.whitening_style == "noisepy":
        return noisepy_whitening_weights(nfft, params.sampling_rate, params.freqmin,
                                         params.freqmax).astype(np.float32)
    return whitening_taper(rfft_frequencies(nfft, params.sampling_rate), params.freqmin, params.freqmax)


def _shared(src: StationSpectra, rcv: StationSpectra) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if src.nfft != rcv.nfft or src.sampling_rate != rcv.sampling_rate:
        raise ValueError(f"{src.seed_id} and {rcv.seed_id} spectra differ in nfft or sampling rate")
    ia, ib = common_windows(src.starttimes, rcv.starttimes, src.sampling_rate)
    return src.spectra[ia], rcv.spectra[ib], src.starttimes[ia]


def correlate_pair(src: StationSpectra, rcv: StationSpectra,
                   params: CorrelationParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-window correlations of the shared windows.

    Returns ``(ccfs (n_windows, 2L+1) float32, window starttimes, lags in s)``.
    """
    s, r, t = _shared(src, rcv)
    ccfs, lags = correlate(s, r, src.nfft, src.sampling_rate, params.maxlag, params.cc_method,
                           smoothspect_N=params.smoothspect_N,
                           water_level=params.spectral_water_level,
                           band_weights=cc_band_weights(params, src.nfft))
    return ccfs, t, lags


def correlate_and_stack(src: StationSpectra, rcv: StationSpectra,
                        params: CorrelationParams) -> PairResult:
    """Correlate the shared windows and stack them with ``params.stack_method``."""
    if params.stack_method == "linear" and not params.substack:
        s, r, _ = _shared(src, rcv)
        L = params.maxlag_samples
        band = slice(None)
        if params.freq_norm != "none":
            # whitened spectra are exactly zero outside the band: only compute inside it
            # (plus the smoothing half-width, so smoothed denominators see the same zeros)
            b = whitened_band(params, src.nfft)
            pad = params.smoothspect_N + 1
            band = slice(max(b.start - pad, 0), min(b.stop + pad, s.shape[1]))
        w = cc_band_weights(params, src.nfft)
        part, n = accumulate_cross_spectra(s[:, band], r[:, band], params.cc_method,
                                           smoothspect_N=params.smoothspect_N,
                                           water_level=params.spectral_water_level,
                                           band_weights=None if w is None else w[band])
        total = np.zeros(s.shape[1], dtype=part.dtype)
        total[band] = part
        ccf = cross_spectra_to_lags(total / max(n, 1), src.nfft, L).astype(np.float32)
        return PairResult(src.seed_id, rcv.seed_id, lag_axis(L, src.sampling_rate), ccf, n)
    ccfs, t, lags = correlate_pair(src, rcv, params)
    full, n = stack(ccfs, params.stack_method, pws_power=params.pws_power)
    if not params.substack:
        return PairResult(src.seed_id, rcv.seed_id, lags, full, n)
    subs, starts, counts = substack(ccfs, t, params.substack_len, params.stack_method,
                                    pws_power=params.pws_power,
                                    origin=params.substack_origin_seconds)
    return PairResult(src.seed_id, rcv.seed_id, lags, full, n, subs, starts, counts)
