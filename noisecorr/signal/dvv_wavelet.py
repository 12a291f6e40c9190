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

Everything is batched over pairs and days (pairs in blocks bounding memory, in the order of
their coda windows so that a block's windows are alike); the Python loops run over the
``f_k`` (tens) and the contiguous stretches of lags the windows need (one or two). Each
``f_k`` is computed on its own grid of ``_RATE`` = 2 samples per period (every ``q_k``-th
lag): the smoothed products hold no energy above about ``0.7 f_k`` and the products
themselves none above about ``1.3 f_k`` (at the 1e-6 level, for ``omega0 = 6`` and
``smoothing = 1``), so on that grid the smoothing and the sums of step 4 (weighted by the
grid step, as integrals over the lag) are those of the continuous fields. One FFT per
correlation, of a length with many divisors so that each ``q_k`` divides it; the analytic
signal on a ``q_k`` grid is one inverse FFT of the filtered spectrum folded onto
``nfft / q_k`` bins (the filter's band is narrower than that, so nothing overlaps); the
smoothing is a product of FFTs (exactly ``gaussian_filter1d`` with ``mode="constant"``);
the phase is :func:`_phase` (float32, within 1e-7 rad). Compared with every quantity on
one fine grid, dv/v differs by a few per cent of its error (on ``scripts/bench_dvv.py``'s
synthetic, rms 6e-6 for errors of 3e-4).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.fft

from noisecorr.signal.dvv import coda_inputs

__all__ = ["WCSResult", "wavelet_dvv", "morlet_frequencies"]

logger = logging.getLogger(__name__)

_BLOCK_BYTES = 96 * 2**20

#: Samples per period of the grid each centre frequency is computed on (see the module notes).
_RATE = 2.0


def morlet_frequencies(freqmin: float, freqmax: float, omega0: float = 6.0) -> np.ndarray:
    """Log-spaced centre frequencies (Hz) from ``freqmin`` to ``freqmax``, two per
    frequency standard deviation of the Morlet filter (``f / omega0``), at least 2."""
    if not 0 < freqmin < freqmax:
        raise ValueError(f"need 0 < freqmin < freqmax, got {freqmin}, {freqmax}")
    n = max(2, int(np.ceil(np.log(freqmax / freqmin) / np.log1p(0.5 / omega0))) + 1)
    return np.geomspace(freqmin, freqmax, n)


def _band_bins(freqs: np.ndarray, omega0: float, nfft: int, dt: float) -> list[tuple[int, int]]:
    """Bins ``[j0, j1)`` of an ``nfft``-point DFT where each Morlet filter exceeds ``2 exp(-12.5)``
    (``omega0 |f / f_k - 1| <= 5``); never bin 0 (the filters are analytic)."""
    df = 1.0 / (nfft * dt)
    lo = np.maximum(np.floor(freqs * (1.0 - 5.0 / omega0) / df), 1).astype(int)
    hi = np.minimum(np.ceil(freqs * (1.0 + 5.0 / omega0) / df) + 1, nfft // 2).astype(int)
    return list(zip(lo.tolist(), hi.tolist()))


def _fft_plan(n_min: int, freqs: np.ndarray, omega0: float, dt: float) -> tuple[int, np.ndarray]:
    """``(nfft, q)``: a transform length ``>= n_min`` and, per centre frequency, a decimation
    ``q_k`` dividing ``nfft`` with ``q_k dt <= 1 / (_RATE f_k)`` and room for the filter's band
    in ``nfft / q_k`` bins; of the 5-smooth lengths up to ``1.25 n_min``, the one with the
    fewest samples over all ``k``."""
    qmax = np.maximum(np.floor(1.0 / (_RATE * freqs * dt)), 1).astype(int)
    best = None
    for n in range(n_min, int(1.25 * n_min) + 2):
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m != 1:
            continue
        div = np.array([d for d in range(1, int(qmax.max()) + 1) if n % d == 0])
        q = np.array([div[div <= qk].max() for qk in qmax])
        width = np.array([b - a for a, b in _band_bins(freqs, omega0, n, dt)])
        while np.any(width > n // q):                     # band wider than the folded axis
            bad = width > n // q
            q[bad] = [div[div < qk].max() for qk in q[bad]]
        cost = int((n // q).sum())
        if best is None or cost < best[0]:
            best = (cost, n, q)
    return best[1], best[2]


def _runs(used: np.ndarray, radius: int, n: int) -> list[tuple[int, int]]:
    """Contiguous ``[a, b)`` ranges of ``0..n`` within ``radius`` of a ``used`` index."""
    a = np.maximum(used - radius, 0)
    b = np.minimum(used + radius + 1, n)
    breaks = np.nonzero(a[1:] > b[:-1])[0]
    return list(zip(a[np.r_[0, breaks + 1]], b[np.r_[breaks, used.size - 1]]))


def _gauss_smoother(sigma: float, radius: int, n: int, real: bool) -> np.ndarray:
    """Transfer function on ``n`` (r)fft bins of ``gaussian_filter1d``'s kernel (standard
    deviation ``sigma`` samples, ``radius`` samples each side, weights summing to 1)."""
    u = np.arange(-radius, radius + 1)
    kern = np.exp(-0.5 * (u / sigma) ** 2)
    circ = np.zeros(n)
    circ[u % n] = kern / kern.sum()
    return (scipy.fft.rfft(circ) if real else scipy.fft.fft(circ)).real.astype(np.float32)


def _smooth(x: np.ndarray, sigma: float, radius: int) -> np.ndarray:
    """``gaussian_filter1d(x, sigma, axis=-1, mode="constant")`` (zeros beyond the ends,
    kernel cut at ``radius``) as a product of FFTs zero-padded by ``radius``: exact, and
    faster than the direct sum for the kernels used here (tens of samples)."""
    n = x.shape[-1]
    nf = scipy.fft.next_fast_len(n + radius)
    if np.iscomplexobj(x):
        return scipy.fft.ifft(scipy.fft.fft(x, nf, axis=-1) * _gauss_smoother(sigma, radius, nf, False),
                              axis=-1, overwrite_x=True)[..., :n]
    return scipy.fft.irfft(scipy.fft.rfft(x, nf, axis=-1) * _gauss_smoother(sigma, radius, nf, True),
                           nf, axis=-1, overwrite_x=True)[..., :n]


#: atan(a) = a P(a^2) on [0, 1] within 4e-8 rad (least squares towards minimax, degree 7).
_ATAN = (0.99999933, -0.33329853, 0.19946485, -0.13908233, 0.09641186, -0.05589844,
         0.02185324, -0.00405185)


def _phase(z: np.ndarray) -> np.ndarray:
    """``np.angle(z)`` in float32 within 1e-7 rad, several times faster: the polynomial
    :data:`_ATAN` on ``min(|re|, |im|) / max(|re|, |im|)`` and the octant's reflections.
    NaN where ``z`` is; 0 at 0."""
    re, im = z.real, z.imag
    ax, ay = np.abs(re), np.abs(im)
    a = np.minimum(ax, ay)
    a /= np.maximum(np.maximum(ax, ay), np.finfo(np.float32).tiny)      # 0 at 0, NaN at NaN
    s = a * a
    p = np.full_like(a, _ATAN[-1])
    for c in _ATAN[-2::-1]:
        p *= s
        p += np.float32(c)
    p *= a
    # reflections as arithmetic blends (np.where on random masks is several times slower)
    for flip, c in ((ay > ax, np.pi / 2), (re < 0, np.pi)):
        t = np.float32(c) - 2.0 * p                                         # c - p, minus p
        t *= flip
        p += t
    return np.copysign(p, im, out=p)


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
    # one transform length for the trace and the widest wavelet's reach (5 time standard
    # deviations), so that the circular convolution is the linear one over the trace
    sig_t = omega0 / (2.0 * np.pi * freqs)
    nfft, q = _fft_plan(n_lags + int(np.ceil(5.0 * sig_t.max() / dt)), freqs, omega0, dt)
    bins = _band_bins(freqs, omega0, nfft, dt)
    f = np.arange(nfft // 2 + 1) / (nfft * dt)                              # Hz
    h = q * dt                                                              # grid step per f_k (s)
    n_grid = (n_lags - 1) // q + 1                                          # grid samples in the trace
    sig_s = smoothing / freqs / h                                           # smoothing, grid samples
    radius = (4.0 * sig_s + 0.5).astype(int)                                # gaussian_filter1d's reach
    # fraction of an independent point that one (sample, f_k) covers: time step over the
    # correlation time, log-frequency step over the correlation width in log f
    tau = 2.0 * np.sqrt(np.pi) * np.sqrt(sig_t**2 + (smoothing / freqs) ** 2)
    dlnf = np.log(freqs[1] / freqs[0])
    frac = np.minimum(h / tau, 1.0) * min(dlnf * omega0 / (2.0 * np.pi**0.5), 1.0)   # (K,)
    # pairs in the order of their coda windows: a block of alike windows transforms few lags
    has = mask.any(axis=1)
    first = np.where(has, mask.argmax(axis=1), n_lags)
    last = np.where(has, n_lags - 1 - mask[:, ::-1].argmax(axis=1), -1)
    order = np.lexsort((last, first))
    order = order[fits[order]]                                             # the others stay NaN
    per_row = 8 * nfft + 8 * 8 * int((nfft // q).max())
    bp = max(1, int(_BLOCK_BYTES // (per_row * n_days)))                   # pairs per block

    for i0 in range(0, order.size, bp):
        pidx = order[i0:i0 + bp]
        P = pidx.size
        buf = np.zeros((P, n_days, nfft), np.float32)
        for i, p in enumerate(pidx):                                        # per pair, not per day
            buf[i, :, :n_lags] = cur[p]
        C = scipy.fft.rfft(buf, axis=-1, overwrite_x=True)                  # (P, D, nfft//2+1)
        del buf
        R = scipy.fft.rfft(np.asarray(ref[pidx], dtype=np.float64), nfft, axis=-1)
        mb = mask[pidx]
        acc = np.zeros((7, P, n_days, n_b))          # stt, std, sdd, n, neff, coherence, weight
        for k in range(freqs.size):
            M = nfft // q[k]
            mk = mb[:, ::q[k]]
            used = np.nonzero(mk.any(axis=0))[0]
            if used.size == 0:
                continue
            # the filtered spectrum folded onto M bins: its inverse transform is the analytic
            # signal at every q_k-th sample (the band is narrower than M bins, nothing overlaps)
            j0, j1 = bins[k]
            g = 2.0 * np.exp(-0.5 * (omega0 * (f[j0:j1] / freqs[k] - 1.0)) ** 2)
            Xr = np.zeros((2, P, M), np.complex128)
            Xc = np.zeros((P, n_days, M), np.complex64)
            g32 = g.astype(np.float32)
            cut = min(j1, (j0 // M + 1) * M)
            for a, b in ((j0, cut), (cut, j1)):                             # at most 2 pieces
                if b <= a:
                    continue
                s = slice(a % M, a % M + b - a)
                Xr[0][:, s] = R[:, a:b] * g[a - j0:b - j0]
                Xr[1][:, s] = Xr[0][:, s] * (2j * np.pi * f[a:b])          # d/dt
                Xc[..., s] = C[..., a:b] * g32[a - j0:b - j0]
            wr, dwr = scipy.fft.ifft(Xr, axis=-1)[..., :n_grid[k]]
            wc = scipy.fft.ifft(Xc, axis=-1, overwrite_x=True)[..., :n_grid[k]]
            parts = {"x": [], "pc": [], "pr": [], "fi": []}
            for a, b in _runs(used, radius[k], n_grid[k]):
                sel = used[(used >= a) & (used < b)] - a
                r, dr, c = wr[:, a:b], dwr[:, a:b], wc[..., a:b]
                s, rad = sig_s[k], radius[k]
                parts["x"].append(_smooth(r.astype(np.complex64)[:, None] * np.conj(c), s, rad)[..., sel])
                parts["pc"].append(_smooth(c.real**2 + c.imag**2, s, rad)[..., sel])
                parts["pr"].append(_smooth(r.real**2 + r.imag**2, s, rad)[:, sel])
                parts["fi"].append(_smooth((np.conj(r) * dr).imag, s, rad)[:, sel])
            x, pc, pr, fi = (np.concatenate(v, axis=-1) for v in parts.values())
            t = lags[used * q[k]]
            with np.errstate(divide="ignore", invalid="ignore"):
                fi = fi / (2.0 * np.pi * pr)
                coh = np.abs(x) / np.sqrt(pr.astype(np.float32)[:, None] * pc)
                delay = _phase(x) / (2.0 * np.pi * fi.astype(np.float32)[:, None])
            ok = (mk[:, None, used] & np.isfinite(delay) & (coh >= min_coherence)
                  & (fi > 0)[:, None])
            coh = np.where(ok, coh, 0.0)
            c2 = np.minimum(coh, 0.99) ** 2
            w = (c2 / (1.0 - c2)).astype(np.float64) * h[k]               # Riemann weight: s
            wd = w * np.where(ok, delay, 0.0)
            n = ok.sum(axis=-1)
            v = np.stack([w @ t**2, wd @ t, (wd * np.where(ok, delay, 0.0)).sum(-1), n, n * frac[k],
                          coh.sum(-1, dtype=np.float64) * h[k], n * h[k]])
            acc[..., in_band[:, k]] += v[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            stt, std, sdd, n, neff, cs, cw = acc
            slope = std / stt
            # weighted residual sum: sum w (d - slope t)^2
            rss = np.maximum(sdd - slope * std, 0.0)
            var = rss / np.maximum(neff - 1.0, 1e-12) / stt
            good = (neff >= 2.0) & (stt > 0)
            out[pidx] = np.where(good, -slope, np.nan)
            err[pidx] = np.where(good, np.sqrt(var), np.nan)
            coh_out[pidx] = np.where(n > 0, cs / cw, np.nan)
    if (~fits).any():
        logger.warning("wavelet dv/v: %d of %d pairs have no coda window inside the lags; left out (NaN)",
                       int((~fits).sum()), n_pairs)
    return WCSResult(out, err, coh_out, bands, freqs)
