"""Causal, acausal and symmetric parts of correlations and their signal-to-noise ratio,
vectorised over pairs.

A correlation on the lag axis ``-maxlag..maxlag`` (odd length ``2 h + 1``, lag 0 at the
centre, :func:`noisecorr.results.layout.lag_axis`) has a causal side (lags ``0..maxlag``:
energy travelling from source to receiver) and an acausal side (lags ``0..-maxlag``, read
in reverse so that both start at lag 0: energy from receiver to source). The symmetric
component is their mean (Bensen et al. 2007, GJI 169, section 4.1): a one-sided signal at
``t = 0..maxlag`` that averages the two directions of propagation.

SNR (Bensen et al. 2007, section 4.2): the peak of ``|x|`` in the signal window
``d / vmax <= t <= d / vmin`` over the RMS of ``x`` in the trailing noise window that starts
``noise_gap`` s after the signal window and lasts ``noise_length`` s (clipped at maxlag),
for each side and, after Gaussian narrow-band filters (:func:`noisecorr.signal.ftan.
gaussian_bank`), for each band. Where less than ``min_noise_samples`` remain for the noise
window (a pair too far for the lag range) the SNR is NaN and the pairs are logged.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.fft

log = logging.getLogger(__name__)

__all__ = ["sides", "symmetric", "snr", "SIDES"]

#: Side names, in the order of :func:`snr`'s output.
SIDES = ("causal", "acausal", "symmetric")


def _check(ccf):
    ccf = np.asarray(ccf)
    if ccf.ndim == 1:
        ccf = ccf[None]
    if ccf.ndim != 2 or ccf.shape[-1] % 2 != 1:
        raise ValueError(f"correlations must be (pairs, lags) with an odd number of lags "
                         f"(lag 0 at the centre), got shape {ccf.shape}")
    return ccf


def sides(ccf):
    """``(causal, acausal)``, each ``(pairs, h + 1)`` at ``t = 0..maxlag``; the acausal
    side is time-reversed (``acausal[:, k]`` is the lag ``-k`` sample).

    Examples
    --------
    >>> c, a = sides(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    >>> c.tolist(), a.tolist()
    ([[3.0, 4.0, 5.0]], [[3.0, 2.0, 1.0]])
    """
    ccf = _check(ccf)
    h = ccf.shape[-1] // 2
    return ccf[:, h:], ccf[:, h::-1]


def symmetric(ccf):
    """Mean of the causal and the time-reversed acausal side, ``(pairs, h + 1)``.

    Examples
    --------
    >>> symmetric(np.array([1.0, 2.0, 3.0, 4.0, 5.0])).tolist()
    [[3.0, 3.0, 3.0]]
    """
    c, a = sides(ccf)
    return 0.5 * (c + a)


def _windows(nt, dt, distance, vmin, vmax, noise_gap, noise_length):
    t = np.arange(nt) * dt
    s0, s1 = distance / vmax, distance / vmin
    n0 = s1 + noise_gap
    n1 = n0 + noise_length
    sig = (t[None] >= s0[:, None]) & (t[None] <= s1[:, None])
    noi = (t[None] >= n0[:, None]) & (t[None] <= n1[:, None])
    return sig, noi


def _ratio(x, sig, noi, min_noise):
    """Peak |x| in ``sig`` over RMS in ``noi``; x (n, [b,] t), masks (n, t)."""
    if x.ndim == 3:
        sig, noi = sig[:, None], noi[:, None]
    peak = np.max(np.where(sig, np.abs(x), 0.0), axis=-1)
    cnt = noi.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rms = np.sqrt(np.sum(np.where(noi, x * x, 0.0), axis=-1) / cnt)
        out = peak / rms
    return np.where((cnt >= min_noise) & sig.any(axis=-1), out, np.nan)


def snr(ccf, sampling_rate: float, distance_km, *, vmin: float = 1.5, vmax: float = 5.0,
        noise_gap: float = 0.0, noise_length: float = 150.0, periods=None, alpha: float = 20.0,
        min_noise_samples: int = 10, block: int = 1024) -> dict:
    """SNR of each side of many correlations, broadband and per narrow band.

    Parameters
    ----------
    ccf : ndarray (n, 2 h + 1)
        Correlations at lags ``-h..h`` samples.
    sampling_rate : float
        Hz.
    distance_km : array (n,)
        Inter-station distances, km.
    vmin, vmax : float
        Group velocity range of the signal window, km/s.
    noise_gap, noise_length : float
        Start of the noise window after the end of the signal window, and its length, s.
    periods : array (b,), optional
        Centre periods (s) of Gaussian bands ``exp(-alpha ((f - fc) / fc)^2)``.
    alpha : float
        Width of the bands (relative half-width at 1/e: ``1 / sqrt(alpha)``).
    min_noise_samples : int
        Fewer noise samples than this inside the lag range: NaN.
    block : int
        Pairs per batch.

    Returns
    -------
    dict
        ``{"causal", "acausal", "symmetric"}``: ``(n,)`` broadband SNR each; with
        ``periods``, also ``"band_causal"``, ... ``(n, b)`` and ``"periods"``.

    Examples
    --------
    A unit pulse at +10 s on an alternating background of RMS 0.1: the peak in the
    window is 1 - 0.1 (the background is -0.1 at that sample), the noise RMS 0.1:

    >>> fs, h = 10.0, 1000
    >>> x = np.zeros(2 * h + 1); x[h + 100] = 1.0
    >>> x[h + 1:] += 0.1 * np.where(np.arange(h) % 2 == 0, 1.0, -1.0)
    >>> r = snr(x[None], fs, [30.0], vmin=2.0, vmax=4.0, noise_length=50.0)
    >>> round(float(r["causal"][0]), 3)
    9.0
    """
    ccf = _check(ccf)
    n, nl = ccf.shape
    h = nl // 2
    dt = 1.0 / float(sampling_rate)
    d = np.asarray(distance_km, dtype=float).reshape(-1)
    if d.shape != (n,):
        raise ValueError(f"distance_km has {d.size} values for {n} correlations")
    if not 0 < vmin < vmax:
        raise ValueError(f"need 0 < vmin < vmax, got {vmin}, {vmax}")
    sig, noi = _windows(h + 1, dt, d, vmin, vmax, noise_gap, noise_length)
    out = {}
    parts = sides(ccf)
    parts = (parts[0], parts[1], 0.5 * (parts[0] + parts[1]))
    for name, x in zip(SIDES, parts):
        out[name] = _ratio(x.astype(np.float64), sig, noi, min_noise_samples)
    if periods is not None:
        from .ftan import gaussian_bank

        periods = np.asarray(periods, dtype=float)
        nfft = scipy.fft.next_fast_len(2 * (h + 1), real=True)
        bank = gaussian_bank(np.fft.rfftfreq(nfft, dt), periods, alpha)  # (b, F)
        for name in SIDES:
            out["band_" + name] = np.full((n, periods.size), np.nan)
        for b0 in range(0, n, block):
            sl = slice(b0, min(n, b0 + block))
            for name, x in zip(SIDES, parts):
                spec = scipy.fft.rfft(x[sl].astype(np.float32), nfft, axis=-1, workers=-1)
                y = scipy.fft.irfft(spec[:, None, :] * bank[None], nfft, axis=-1, workers=-1)[..., :h + 1]
                out["band_" + name][sl] = _ratio(y, sig[sl], noi[sl], min_noise_samples)
        out["periods"] = periods
    short = np.flatnonzero(~np.isfinite(out["symmetric"]))
    if short.size:
        log.warning("SNR undefined for %d of %d pairs (signal or noise window outside "
                    "maxlag %.1f s; first pair indices %s)", short.size, n, h * dt,
                    short[:5].tolist())
    return out
