"""dv/v per frequency band from the wavelet cross-spectrum (Mao et al. 2020).

Method (Mao, Mordret, Campillo, Fang & van der Hilst 2020, GJI 221, 1366-1385, "On the
measurement of seismic traveltime changes in the time-frequency domain with wavelet
cross-spectrum analysis"; wavelet coherence after Torrence & Compo 1998 and Torrence &
Webster 1999):

1. The analytic Morlet transform ``W(t, f_k)`` of the reference ``r`` and of the current
   correlation ``c`` at centre frequencies ``f_k`` (log-spaced in ``freqmin..freqmax``):
   the trace filtered by ``2 exp(-(omega0 (f / f_k - 1))^2 / 2)`` on positive frequencies
   (the Fourier transform of a Morlet wavelet of scale ``omega0 / (2 pi f_k)``; its
   frequency standard deviation is ``f_k / omega0``, its time one ``omega0 / (2 pi f_k)``).
2. The cross-spectrum ``Wrc = W_r conj(W_c)`` and the powers, smoothed in time by a
   Gaussian of standard deviation ``smoothing / f_k`` seconds (``<>``); the wavelet
   coherence ``|<Wrc>| / sqrt(<|W_r|^2> <|W_c|^2>)``.
3. The time-frequency delay ``dt(t, f_k) = angle(<Wrc>) / (2 pi f_i)``, where ``f_i`` is
   the instantaneous frequency of the reference in that band,
   ``Im <conj(W_r) dW_r/dt> / (2 pi <|W_r|^2>)``: a delayed current ``c(t) = r(t - dt)``
   has ``W_c(t) ~ W_r(t) exp(-i 2 pi f_i dt)``, so this is exact to first order even where
   the signal's spectrum is not centred on ``f_k`` (the centre frequency would bias dt).
4. Per band ``(f1, f2)``: ``dt/t`` from a regression through the origin of ``dt`` against
   the lag ``t`` over every coda sample and every ``f_k`` in the band, weighted by
   ``coh^2 / (1 - coh^2)`` (coherence capped at 0.99), using points of coherence
   ``>= min_coherence``; ``dv/v = -dt/t``.

Sign: as :mod:`noisecorr.signal.dvv`, ``dv/v > 0`` is a velocity increase (earlier
arrivals); a fraction.

Error: the weighted residual variance about the fit, divided by the number of
*independent* points: the points of one band are strongly correlated in time (over about
``2 sqrt(pi) sqrt(sigma_t^2 + s^2)``, with ``sigma_t = omega0 / (2 pi f_k)`` the wavelet's
and ``s = smoothing / f_k`` the smoothing's standard deviations) and in frequency (over
about ``2 sqrt(pi) f_k / omega0``); each point counts for the fraction of an independent
one that its sample step and frequency step cover.

Limits: the phase is not unwrapped, so ``|dt|`` must stay below half a period
(``|dv/v| t f < 1/2``: 1 % at 60 s lag is fine below 0.8 Hz). The transform of a sample
uses the trace around it (the wavelet's duration), so coda windows should start a few
periods after the ballistic arrival, as :func:`noisecorr.signal.dvv.coda_mask` windows do;
where they start close to it, the ballistic arrival's smaller delay leaks into the first
coda samples of the lowest frequencies (wavelets of ``omega0 / (2 pi f)`` seconds) and the
regression through the origin shrinks: on the test synthetic (coda from twice the ballistic
time of a 20 km pair, 0.3-0.5 Hz) by about 4 %, in 0.5-0.7 Hz by about 1 %.

Everything is batched over pairs and days (pair-day rows in blocks bounding memory); the
only Python loop runs over the ``f_k`` (tens). The analytic signals are computed decimated
(their spectra end near ``freqmax (1 + 5 / omega0)``), the reference's once per pair, and
only over the lags the coda windows need (plus the smoothing's reach).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.ndimage import gaussian_filter1d

from noisecorr.signal.dvv import coda_inputs

__all__ = ["WCSResult", "wavelet_dvv", "morlet_frequencies"]

logger = logging.getLogger(__name__)

_BLOCK_BYTES = 128 * 2**20


def morlet_frequencies(freqmin: float, freqmax: float, omega0: float = 6.0) -> np.ndarray:
    """Log-spaced centre frequencies (Hz) from ``freqmin`` to ``freqmax``, two per
    frequency standard deviation of the Morlet filter (``f / omega0``), at least 2."""
    if not 0 < freqmin < freqmax:
        raise ValueError(f"need 0 < freqmin < freqmax, got {freqmin}, {freqmax}")
    n = max(2, int(np.ceil(np.log(freqmax / freqmin) / np.log1p(0.5 / omega0))) + 1)
    return np.geomspace(freqmin, freqmax, n)


@dataclass(frozen=True)
class WCSResult:
    """Output of :func:`wavelet_dvv`.

    Attributes
    ----------
    dvv, error : ndarray (n_pairs, n_days, n_bands)
        ``-dt/t`` (fraction; > 0 faster) per band and its standard deviation; NaN where
        fewer than 2 independent points pass ``min_coherence`` or the pair does not fit.
    coherence : ndarray (n_pairs, n_days, n_bands)
        Mean wavelet coherence of the points used.
    bands : ndarray (n_bands, 2)
        Hz.
    frequencies : ndarray (n_freqs,)
        Centre frequencies of the transform (Hz).
    """

    dvv: np.ndarray
    error: np.ndarray
    coherence: np.ndarray
    bands: np.ndarray
    frequencies: np.ndarray


def wavelet_dvv(series: np.ndarray, reference: np.ndarray, lags: np.ndarray, mask: np.ndarray, *,
                freqmin: float, freqmax: float, bands=None, omega0: float = 6.0,
                smoothing: float = 1.0, min_coherence: float = 0.5,
                fits: np.ndarray | None = None) -> WCSResult:
    """dv/v per frequency band by wavelet cross-spectrum, for every pair and day at once.

    Parameters
    ----------
    series : ndarray (n_pairs, n_days, n_lags)
        Current correlations.
    reference : ndarray (n_pairs, n_lags)
    lags : ndarray (n_lags,)
        Seconds, uniform and symmetric.
    mask : ndarray of bool (n_pairs, n_lags) or (n_lags,)
        Coda window of each pair (:func:`noisecorr.signal.dvv.coda_mask`).
    freqmin, freqmax : float
        Hz: range of the transform's centre frequencies.
    bands : sequence of (f1, f2), optional
        Hz; default one band ``(freqmin, freqmax)``.
    omega0 : float
        Morlet non-dimensional frequency (6: the usual choice).
    smoothing : float
        Time smoothing of the cross-spectrum, in periods (Gaussian standard deviation).
    min_coherence : float
        Points of lower wavelet coherence are left out.
    fits : ndarray of bool (n_pairs,), optional
        Pairs whose coda window does not fit the lags (False) are NaN.

    Returns
    -------
    WCSResult
    """
    cur, ref, lags, mask, fits = coda_inputs(series, reference, lags, mask, fits)
    n_pairs, n_days, n_lags = cur.shape
    freqs = morlet_frequencies(freqmin, freqmax, omega0)
    bands = np.array([(freqmin, freqmax)] if bands is None else bands, dtype=np.float64).reshape(-1, 2)
    if np.any(bands[:, 0] >= bands[:, 1]):
        raise ValueError(f"every band needs f1 < f2, got {bands.tolist()}")
    in_band = (freqs[None, :] >= bands[:, :1] * (1 - 1e-9)) & (freqs[None, :] <= bands[:, 1:] * (1 + 1e-9))
    if not in_band.any(axis=1).all():
        raise ValueError(f"bands {bands.tolist()} must overlap {freqmin}-{freqmax} Hz")
    dt = lags[1] - lags[0]
    fs = 1.0 / dt
    if freqmax >= fs / 2:
        raise ValueError(f"freqmax {freqmax} Hz is not below the Nyquist frequency {fs / 2} Hz")
    n_b = bands.shape[0]
    out = np.full((n_pairs, n_days, n_b), np.nan)
    err = np.full_like(out, np.nan)
    coh_out = np.full_like(out, np.nan)
    # the analytic signals hold no energy above fcut (the filters are < 4e-6 there): they are
    # computed decimated by q, from the first nfft / q bins of the spectrum (complex ifft)
    fcut = float(freqs.max()) * (1.0 + 5.0 / omega0)
    q = max(1, int(fs // (2.0 * fcut)))
    nd = scipy.fft.next_fast_len(int(np.ceil(2 * n_lags / q)))             # linear, no wrap-around
    nfft = nd * q
    f = np.arange(nd) / (nfft * dt)                                         # Hz, bins 0..nd-1
    G = 2.0 * np.exp(-0.5 * (omega0 * (f[None, :] / freqs[:, None] - 1.0)) ** 2)   # (K, nd)
    G[:, 0] = 0.0
    dq = dt * q                                                             # decimated step (s)
    # fraction of an independent point that one (sample, f_k) covers: time step over the
    # correlation time, log-frequency step over the correlation width in log f
    sig_t = omega0 / (2.0 * np.pi * freqs)
    tau = 2.0 * np.sqrt(np.pi) * np.sqrt(sig_t**2 + (smoothing / freqs) ** 2)
    dlnf = np.log(freqs[1] / freqs[0])
    frac = np.minimum(dq / tau, 1.0) * min(dlnf * omega0 / (2.0 * np.sqrt(np.pi)), 1.0)   # (K,)
    lag_d = lags[::q]
    n_d = lag_d.size
    mask_d = mask[:, ::q]
    used = np.nonzero(mask_d.any(axis=0))[0]
    if used.size == 0:
        return WCSResult(out, err, coh_out, bands, freqs)
    # smoothing reaches a few sigma beyond the used lags: transform only that span
    pad = int(np.ceil(4.0 * smoothing / freqs.min() / dq)) + 1
    s0, s1 = max(used[0] - pad, 0), min(used[-1] + 1 + pad, n_d)
    uu = used - s0
    t_used = lag_d[used]
    m_used = mask_d[:, used]
    rows = n_pairs * n_days
    per_row = 16 * nd * 3 + 8 * (s1 - s0) * 8
    block = max(n_days, int(_BLOCK_BYTES // per_row)) // n_days * n_days    # whole pairs
    cur2 = cur.reshape(rows, n_lags)

    def sm(x, sig):
        if np.iscomplexobj(x):
            return (gaussian_filter1d(x.real, sig, axis=-1, mode="constant")
                    + 1j * gaussian_filter1d(x.imag, sig, axis=-1, mode="constant"))
        return gaussian_filter1d(x, sig, axis=-1, mode="constant")

    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        p0, p1 = r0 // n_days, (r1 - 1) // n_days + 1
        pi = np.arange(r0, r1) // n_days - p0                               # row -> pair in block
        R = scipy.fft.rfft(np.asarray(ref[p0:p1], dtype=np.float64), nfft, axis=-1)[:, :nd]
        C = scipy.fft.rfft(np.asarray(cur2[r0:r1], dtype=np.float64), nfft, axis=-1)[:, :nd]
        m = m_used[p0:p1][pi]                                               # (B, U)
        acc = {k: np.zeros((r1 - r0, n_b)) for k in ("stt", "std", "sdd", "n", "neff", "coh")}
        for k in range(freqs.size):
            sig = smoothing / freqs[k] / dq                                 # samples
            wr = scipy.fft.ifft(R * G[k], axis=-1)[:, s0:s1]                # (P, S) analytic
            dwr = scipy.fft.ifft(R * G[k] * (2j * np.pi * f), axis=-1)[:, s0:s1]
            wc = scipy.fft.ifft(C * G[k], axis=-1)[:, s0:s1]                # (B, S)
            pr = sm(wr.real**2 + wr.imag**2, sig)[:, uu]
            fi = sm((np.conj(wr) * dwr).imag, sig)[:, uu] / (2.0 * np.pi)
            x = sm(wr[pi] * np.conj(wc), sig)[:, uu]
            pc = sm(wc.real**2 + wc.imag**2, sig)[:, uu]
            with np.errstate(divide="ignore", invalid="ignore"):
                fi = fi / pr
                coh = np.abs(x) / np.sqrt(pr[pi] * pc)
                delay = np.angle(x) / (2.0 * np.pi * fi[pi])
            ok = m & np.isfinite(delay) & np.isfinite(coh) & (coh >= min_coherence) & (fi[pi] > 0)
            c2 = np.minimum(np.where(ok, coh, 0.0), 0.99) ** 2
            w = np.where(ok, c2 / (1.0 - c2), 0.0)
            d = np.where(ok, delay, 0.0)
            parts = {"stt": (w * t_used**2).sum(-1), "std": (w * t_used * d).sum(-1),
                     "sdd": (w * d * d).sum(-1), "n": ok.sum(-1), "neff": ok.sum(-1) * frac[k],
                     "coh": np.where(ok, coh, 0.0).sum(-1)}
            for b in np.nonzero(in_band[:, k])[0]:
                for name, v in parts.items():
                    acc[name][:, b] += v
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = acc["std"] / acc["stt"]
            # weighted residual sum: sum w (d - slope t)^2
            rss = np.maximum(acc["sdd"] - slope * acc["std"], 0.0)
            var = rss / np.maximum(acc["neff"] - 1.0, 1e-12) / acc["stt"]
            good = (acc["neff"] >= 2.0) & (acc["stt"] > 0)
            out.reshape(rows, n_b)[r0:r1] = np.where(good, -slope, np.nan)
            err.reshape(rows, n_b)[r0:r1] = np.where(good, np.sqrt(var), np.nan)
            coh_out.reshape(rows, n_b)[r0:r1] = np.where(acc["n"] > 0, acc["coh"] / acc["n"], np.nan)
    if (~fits).any():
        logger.warning("wavelet dv/v: %d of %d pairs have no coda window inside the lags; left out (NaN)",
                       int((~fits).sum()), n_pairs)
    for a in (out, err, coh_out):
        a[~fits] = np.nan
    return WCSResult(out, err, coh_out, bands, freqs)
