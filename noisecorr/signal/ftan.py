"""Frequency-time analysis (FTAN): group and phase velocity dispersion curves of the
surface waves in cross-correlations, vectorised over pairs.

Method (Levshin et al. 1989; Bensen et al. 2007, GJI 169, 1239, section 5; Lin et al. 2008,
GJI 173, 281 for the phase):

1. The one-sided signal ``s(t)``, ``t = 0, dt, ...`` (usually the symmetric component,
   :func:`noisecorr.signal.symmetric.symmetric`) is Fourier transformed once per pair.
2. A bank of Gaussian filters ``G(f) = exp(-alpha ((f - fc) / fc)^2)``, ``fc = 1 / T``,
   ``alpha = alpha0 * sqrt(d / 1000 km)`` (Bensen et al. 2007, section 5.1; ``alpha0`` 20 by
   default) is applied to the positive frequencies; the inverse transform of ``2 S G`` is
   the analytic signal ``z(t) = A(t) exp(i phi(t))`` of each band. Only the bins the widest
   filter reaches are kept and the inverse transform is short, so each band is sampled at
   a few points per period instead of ``dt`` (exact for band-limited ``z``; times are then
   refined by a parabola through the envelope).
3. The envelope in the window ``d / vmax <= t <= d / vmin`` gives up to ``n_candidates``
   local maxima per period; a ridge is tracked from the period with the strongest
   envelope to shorter and longer periods, choosing at each period the strongest maximum
   within ``max_jump`` (relative velocity change) of the previous pick (jump control).
   Periods without such a maximum are flagged :data:`JUMP`.
4. Instantaneous-frequency correction: the filtered spectrum ``S G`` is centred on the
   frequency ``f_i = (1 / 2 pi) dphi/dt`` at the envelope peak, not on ``fc`` when ``|S|``
   slopes across the filter. Each pick belongs to the period ``1 / f_i``; the curves are
   interpolated back onto the requested periods.
5. Phase-matched filter (optional, Levshin & Ritzwoller 2001): the first-pass group times
   ``t_g(f)`` define a phase ``psi(f) = 2 pi integral t_g df`` that collapses the dispersed
   wave into a pulse near ``t = 0``; a window of ``+/- pmf_window`` periods keeps that
   pulse and rejects other arrivals and noise; undoing ``psi`` and repeating steps 2-4
   gives the final curves. Off by default: the window must keep the slowly decaying
   coda of a diffuse-field correlation (the ``J0`` tail that makes the ``pi/4``), so it
   is ``pmf_window`` longest periods wide and cannot separate arrivals closer than that;
   on the synthetics it changed nothing on clean data and made one of 50 noisy 150-km
   pairs worse. Use it against interfering arrivals well apart from the main one.
6. Group velocity ``U = d / t_g``. Phase velocity from the phase at the group time: the
   causal side of a diffuse-field correlation is ``~ H0^(2)(k d)``, far field
   ``exp(-i (k d - pi / 4))``, so ``phi(t_g) = omega t_g - k d + pi / 4 + 2 pi N`` and

   .. math:: c = \\frac{\\omega d}{\\omega t_g - \\phi(t_g) + \\pi / 4 + 2 \\pi N},

   with ``N`` from a reference curve (the user's or
   :func:`noisecorr.dispersion.reference.default_reference`): nearest it at the longest
   far-field period of each pair, where the branches lie furthest apart, then by
   continuity period by period (``branch="continuity"``, Lin et al. 2008), or nearest it
   at every period (``branch="reference"``).
7. Far field: a period is trusted only where ``d >= n_wavelengths * c * T`` (3 by default,
   Bensen et al. 2007); others are flagged :data:`NEAR_FIELD`. Periods where the
   narrow-band SNR (peak envelope in the window over the RMS of a trailing noise window)
   is below ``min_snr`` are flagged :data:`LOW_SNR`.

Sign conventions as everywhere in noisecorr: the correlation ``C(tau) = sum_t a(t) b(t +
tau)``, energy from A to B at positive lags; the inverse transform has ``exp(+2 pi i f t)``.
Units: seconds, Hz, km, km/s. Everything is batched: arrays ``(pairs, lags)`` in, arrays
``(pairs, periods)`` out, pairs processed in blocks of ``block`` to bound memory; the only
Python loops run over blocks and over periods (ridge tracking, vectorised over pairs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.fft

log = logging.getLogger(__name__)

__all__ = ["FTANResult", "ftan", "gaussian_bank", "narrowband", "ftan_image", "alpha_for",
           "NEAR_FIELD", "JUMP", "LOW_SNR", "NO_PICK", "OUTSIDE", "flag_names"]

#: Quality flags (bits of ``FTANResult.flags``); 0 means trusted.
NEAR_FIELD = 1   # distance < n_wavelengths * c * T
JUMP = 2         # no envelope maximum within max_jump of the tracked ridge
LOW_SNR = 4      # narrow-band SNR below min_snr, or undefined (noise window beyond the lags)
NO_PICK = 8      # no local maximum of the envelope inside the velocity window
OUTSIDE = 16     # the instantaneous period of the picks does not cover this period
_FLAG_NAMES = {NEAR_FIELD: "near_field", JUMP: "jump", LOW_SNR: "low_snr",
               NO_PICK: "no_pick", OUTSIDE: "outside"}


def flag_names(flags: int) -> list:
    """Names of the bits set in a flag value, e.g. ``flag_names(5)``
    gives ``['near_field', 'low_snr']``."""
    return [name for bit, name in _FLAG_NAMES.items() if int(flags) & bit]


@dataclass
class FTANResult:
    """Dispersion measurements of ``n`` pairs at ``m`` periods (arrays ``(n, m)``).

    Attributes
    ----------
    periods : ndarray (m,)
        Requested (nominal) periods, s.
    distance_km : ndarray (n,)
    group_velocity, phase_velocity : ndarray (n, m)
        km/s, NaN where nothing was measured; interpolated from the instantaneous periods
        onto ``periods``.
    group_time : ndarray (n, m)
        ``d / U``, s.
    snr : ndarray (n, m)
        Narrow-band SNR at each period (envelope peak in the window over the noise RMS).
    flags : ndarray (n, m) uint8
        Bits :data:`NEAR_FIELD`, :data:`JUMP`, :data:`LOW_SNR`, :data:`NO_PICK`,
        :data:`OUTSIDE`; 0 where the value is trusted.
    instantaneous_period : ndarray (n, m)
        ``1 / f_i`` of the pick at each nominal period (before interpolation), s.
    alpha : ndarray (n,)
        Gaussian filter parameter used per pair.
    """

    periods: np.ndarray
    distance_km: np.ndarray
    group_velocity: np.ndarray
    phase_velocity: np.ndarray
    group_time: np.ndarray
    snr: np.ndarray
    flags: np.ndarray
    instantaneous_period: np.ndarray
    alpha: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def trusted(self) -> np.ndarray:
        """``flags == 0``: bool ``(n, m)``."""
        return self.flags == 0


def alpha_for(distance_km, alpha0: float = 20.0, alpha_min: float = 2.0) -> np.ndarray:
    """Gaussian filter parameter ``alpha0 * sqrt(d / 1000 km)`` (Bensen et al. 2007,
    section 5.1), not below ``alpha_min`` (a very wide filter has no time resolution
    meaning). Larger ``alpha`` is a narrower filter: relative half-width at ``1/e`` of
    ``1 / sqrt(alpha)``."""
    d = np.asarray(distance_km, dtype=float)
    return np.maximum(alpha0 * np.sqrt(np.maximum(d, 0.0) / 1000.0), alpha_min)


def gaussian_bank(freqs, periods, alpha) -> np.ndarray:
    """Filters ``exp(-alpha ((f - fc) / fc)^2)``, ``fc = 1 / T``.

    ``alpha`` scalar gives ``(periods, freqs)``; ``alpha`` of shape ``(n,)`` gives
    ``(n, periods, freqs)`` (one bank per pair). float32.
    """
    f = np.asarray(freqs, dtype=np.float32)
    fc = (1.0 / np.asarray(periods, dtype=np.float32))[:, None]
    x = ((f[None] - fc) / fc) ** 2  # (m, K)
    a = np.asarray(alpha, dtype=np.float32)
    if a.ndim == 0:
        return np.exp(-a * x)
    return np.exp(-a[:, None, None] * x[None])


def _plan(nt: int, dt: float, periods, alpha_min: float):
    """FFT sizes: full transform ``nfft``, kept bins ``K`` (the filters reach
    ``exp(-14)`` at most there), short inverse length ``M`` and its step ``dtc``."""
    nfft = scipy.fft.next_fast_len(2 * nt, real=True)
    fmax = (1.0 / np.min(periods)) * (1.0 + np.sqrt(14.0 / alpha_min))
    K = int(min(nfft // 2 + 1, np.ceil(fmax * nfft * dt) + 2))
    # complex band signals need M > K; 3 M / K samples per period of the highest band
    M = scipy.fft.next_fast_len(max(int(1.5 * K), 16))
    return nfft, K, M, nfft * dt / M


def narrowband(signal, dt: float, periods, alpha, *, plan=None, spectrum=None):
    """Analytic signals of the Gaussian bands of one-sided ``signal``.

    Parameters
    ----------
    signal : ndarray (n, nt)
        Samples at ``t = 0, dt, ..., (nt - 1) dt``.
    dt : float
        Sampling interval, s.
    periods : array (m,)
        Centre periods, s.
    alpha : float or array (n,)
    plan, spectrum : optional
        Reuse of a :func:`_plan` and of ``2 * rfft(signal)[:, :K]`` (phase-matched pass).

    Returns
    -------
    z : ndarray (n, m, M) complex64
        Analytic signal of each band at times ``t = j * dtc``.
    dtc : float
        Its sampling interval, s (coarser than ``dt``; exact for the band-limited ``z``).
    """
    if signal is None:  # the spectrum and the plan are given
        n, nt = spectrum.shape[0], None
    else:
        signal = np.asarray(signal, dtype=np.float32)
        n, nt = signal.shape
    alpha_arr = np.broadcast_to(np.asarray(alpha, dtype=float), (n,))
    nfft, K, M, dtc = plan or _plan(nt, dt, periods, float(np.min(alpha_arr)))
    if spectrum is None:
        spectrum = 2.0 * scipy.fft.rfft(signal, nfft, axis=-1)[:, :K]
    freqs = np.arange(K) / (nfft * dt)
    bank = gaussian_bank(freqs, periods, alpha_arr)  # (n, m, K)
    bank *= np.float32(M / nfft)  # the analytic signal's amplitude on the coarse grid
    # the product goes straight into the zero-padded buffer the inverse transform works in
    # (no padded copy, no separate scaling pass)
    buf = np.zeros((n, np.size(periods), M), dtype=np.complex64)
    np.multiply(np.asarray(spectrum, dtype=np.complex64)[:, None, :], bank, out=buf[..., :K])
    z = scipy.fft.ifft(buf, axis=-1, workers=-1, overwrite_x=True)
    return z.astype(np.complex64, copy=False), dtc


def _local_maxima(env, lo, hi, n_candidates):
    """Strongest ``n_candidates`` local maxima of ``env`` (n, m, M) with index in
    ``[lo, hi]`` (per pair, (n,)); returns indices (n, m, C) (-1 where none) and values."""
    n, m, M = env.shape
    j = np.arange(M)
    inside = (j[None] >= lo[:, None]) & (j[None] <= hi[:, None])  # (n, M)
    peak = np.zeros(env.shape, dtype=bool)
    peak[..., 1:-1] = (env[..., 1:-1] > env[..., :-2]) & (env[..., 1:-1] >= env[..., 2:])
    peak &= inside[:, None, :]
    score = np.where(peak, env, -1.0)
    C = min(n_candidates, M)
    idx = np.argpartition(-score, C - 1, axis=-1)[..., :C]
    val = np.take_along_axis(score, idx, axis=-1)
    idx = np.where(val > 0, idx, -1)
    return idx, np.maximum(val, 0.0)


def _refine(z, idx, dtc):
    """Parabolic refinement of the envelope peaks at ``idx`` (n, m, C): time (s),
    unwrapped phase at that time and instantaneous frequency (Hz)."""
    M = z.shape[-1]
    i = np.clip(idx, 1, M - 2)
    zm = np.take_along_axis(z, i - 1, axis=-1)
    z0 = np.take_along_axis(z, i, axis=-1)
    zp = np.take_along_axis(z, i + 1, axis=-1)
    am, a0, ap = np.abs(zm), np.abs(z0), np.abs(zp)
    den = am - 2 * a0 + ap
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(den < 0, 0.5 * (am - ap) / den, 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    # rad/s at sample i: mean of the two one-step phase increments (unaliased below
    # half the band sampling rate, which the plan keeps above the highest filter)
    omega = (np.angle(zp * np.conj(z0)) + np.angle(z0 * np.conj(zm))) / (2 * dtc)
    phase = np.angle(z0) + omega * shift * dtc
    return (i + shift) * dtc, phase, omega / (2 * np.pi)


def _track(u, amp, start, max_jump):
    """Ridge through candidates ``u`` (n, m, C) (NaN: none) with amplitudes ``amp``,
    starting at period index ``start`` (n,). Returns the chosen candidate index (n, m)
    and a bool ``jumped`` (n, m)."""
    n, m, C = u.shape
    rows = np.arange(n)
    choice = np.zeros((n, m), dtype=np.int64)
    jumped = np.zeros((n, m), dtype=bool)
    first = np.argmax(np.where(np.isfinite(u[rows, start]), amp[rows, start], -1.0), axis=-1)
    choice[rows, start] = first
    for direction in (1, -1):
        prev = u[rows, start, first]
        for step in range(1, m):
            i = start + direction * step
            ok = (i >= 0) & (i < m)
            ii = np.clip(i, 0, m - 1)
            cand = u[rows, ii]  # (n, C)
            rel = np.abs(cand - prev[:, None]) / prev[:, None]
            near = np.isfinite(cand) & (rel <= max_jump)
            best = np.argmax(np.where(near, amp[rows, ii], -1.0), axis=-1)
            has = near.any(axis=-1)
            closest = np.argmin(np.where(np.isfinite(cand), rel, np.inf), axis=-1)
            pick = np.where(has, best, closest)
            choice[rows[ok], ii[ok]] = pick[ok]
            jumped[rows[ok], ii[ok]] = ~has[ok]
            newprev = cand[rows, pick]
            prev = np.where(ok & has, newprev, prev)
    return choice, jumped


def _interp_rows(x, y, xq):
    """Row-wise linear interpolation of (x, y) (n, m) (NaN: missing) at ``xq`` (q,);
    NaN outside each row's span. Vectorised: one sort and one search for all rows."""
    n, m = x.shape
    good = np.isfinite(x) & np.isfinite(y)
    big = np.where(good, x, np.inf)
    order = np.argsort(big, axis=-1)
    xs = np.take_along_axis(big, order, axis=-1)
    ys = np.take_along_axis(np.where(good, y, np.nan), order, axis=-1)
    cnt = good.sum(axis=-1)
    # offset rows so that one searchsorted serves them all: row i lives in [-A, A] + 4 A i,
    # its missing values are padded with 2 A + 4 A i, so the flat array stays sorted
    A = max(float(np.max(np.abs(np.where(good, x, 0.0)))) if x.size else 0.0,
            float(np.max(np.abs(xq))) if xq.size else 0.0) + 1.0
    off = (np.arange(n) * 4.0 * A)[:, None]
    flat = (np.where(np.isfinite(xs), xs, 2.0 * A) + off).ravel()
    q = (xq[None, :] + off)  # (n, q)
    pos = np.searchsorted(flat, q.ravel()).reshape(n, -1) - np.arange(n)[:, None] * m
    k = np.clip(pos, 1, np.maximum(cnt, 2)[:, None] - 1)
    x0 = np.take_along_axis(xs, k - 1, axis=-1)
    x1 = np.take_along_axis(xs, k, axis=-1)
    y0 = np.take_along_axis(ys, k - 1, axis=-1)
    y1 = np.take_along_axis(ys, k, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = (xq[None] - x0) / (x1 - x0)
        out = y0 + w * (y1 - y0)
    inside = (xq[None] >= x0) & (xq[None] <= x1) & (cnt[:, None] >= 2) & np.isfinite(out)
    return np.where(inside, out, np.nan)


def _one_pass(spectrum, dt, distance, periods, alpha, plan, nt, vmin, vmax, n_candidates,
              max_jump, noise_length):
    """One FTAN pass on the kept spectrum: picks at the nominal filter centres."""
    z, dtc = narrowband(None, dt, periods, alpha, plan=plan, spectrum=spectrum)
    n, m, M = z.shape
    env = np.abs(z)
    tmax_data = (nt - 1) * dt
    lo = np.ceil(distance / vmax / dtc).astype(np.int64)
    hi = np.minimum(np.floor(distance / vmin / dtc), np.floor(tmax_data / dtc)).astype(np.int64)
    # only the velocity window is searched (pairs come sorted by distance, so the block's
    # windows overlap and the slice is short)
    j0 = int(max(lo.min() - 1, 0))
    j1 = int(min(max(hi.max() + 2, j0 + 3), M))
    idx, val = _local_maxima(env[..., j0:j1], lo - j0, hi - j0, n_candidates)
    idx = np.where(idx >= 0, idx + j0, -1)
    t, phase, finst = _refine(z, np.maximum(idx, 1), dtc)
    ok = idx >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(ok & (t > 0), distance[:, None, None] / t, np.nan)
    # signal strength per period: the strongest maximum; start the ridge where it is largest
    # relative to the band's noise (SNR), so that a strong but noisy band does not lead
    n0 = hi + 1
    n1 = np.minimum(n0 + np.ceil(noise_length / dtc).astype(np.int64), int(np.floor(tmax_data / dtc)))
    k0, k1 = int(min(n0.min(), M)), int(min(max(n1.max() + 1, n0.min()), M))
    j = np.arange(k0, k1)
    nmask = (j[None] >= n0[:, None]) & (j[None] <= n1[:, None])  # (n, k1 - k0)
    cnt = nmask.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = env[..., k0:k1]
        noise = np.sqrt(np.einsum("nmk,nk->nm", e * e, nmask.astype(env.dtype)) / (2 * cnt[:, None]))
        snr = np.where(cnt[:, None] >= 3, val.max(axis=-1) / noise, np.nan)
    strength = np.where(np.isfinite(snr), snr, val.max(axis=-1))
    start = np.argmax(strength, axis=-1)
    choice, jumped = _track(u, val, start, max_jump)
    sel = choice[..., None]
    pick = lambda a: np.take_along_axis(a, sel, axis=-1)[..., 0]  # noqa: E731
    res = {"u": pick(u), "t": pick(t), "phase": pick(phase), "finst": pick(finst),
           "amp": pick(val), "jump": jumped, "snr": snr}
    res["nopick"] = ~np.isfinite(res["u"])
    return res


def _phase_match(spectrum, freqs, f_pick, t_pick, window):
    """Phase-matched filter: collapse with the picked group times, keep ``+/- window``
    s around ``t = 0``, expand again. ``spectrum`` (n, K) analytic, ``f_pick``,
    ``t_pick`` (n, m) the first-pass picks (NaN: none)."""
    n, K = spectrum.shape
    good = np.isfinite(f_pick) & np.isfinite(t_pick)
    usable = good.sum(axis=-1) >= 2
    tg = _interp_rows(f_pick, t_pick, freqs)  # (n, K), NaN outside the picks
    # hold the end values outside the picked band (forward / backward fill)
    idx = np.where(np.isfinite(tg), np.arange(K)[None], -1)
    np.maximum.accumulate(idx, axis=-1, out=idx)
    first = np.argmax(np.isfinite(tg), axis=-1)
    idx = np.where(idx < 0, first[:, None], idx)
    tg = np.take_along_axis(tg, idx, axis=-1)
    tg = np.where(np.isfinite(tg), tg, 0.0)
    df = freqs[1] - freqs[0]
    psi = 2 * np.pi * np.concatenate([np.zeros((n, 1)), np.cumsum(0.5 * (tg[:, 1:] + tg[:, :-1]) * df, axis=-1)],
                                     axis=-1)
    rot = np.exp(1j * psi).astype(np.complex64)
    L = 2 * (K - 1) if K > 1 else 2
    L = scipy.fft.next_fast_len(max(L, 2 * K))
    comp = scipy.fft.ifft(spectrum * rot, L, axis=-1, workers=-1)
    tt = np.fft.fftfreq(L) / df  # sample times, s, circular (step 1 / (L df))
    w = np.clip((window * 1.5 - np.abs(tt)) / (window * 0.5), 0.0, 1.0)
    w = 0.5 - 0.5 * np.cos(np.pi * w)  # cosine taper from window to 1.5 window
    cleaned = scipy.fft.fft(comp * w[None].astype(np.float32), L, axis=-1, workers=-1)[:, :K]
    out = cleaned * np.conj(rot)
    return np.where(usable[:, None], out, spectrum).astype(np.complex64)


def ftan(signal, dt: float, distance_km, periods, *, vmin: float = 1.5, vmax: float = 5.0,
         alpha0: float = 20.0, alpha_min: float = 2.0, n_candidates: int = 5,
         max_jump: float = 0.1, phase_matched: bool = False, pmf_window: float = 4.0,
         reference=None, n_wavelengths: float = 3.0, min_snr: float = 5.0,
         noise_length: float | None = None, branch: str = "continuity",
         block: int = 256) -> FTANResult:
    """Group and phase velocity curves of many one-sided signals.

    Parameters
    ----------
    signal : ndarray (n, nt)
        One-sided signals, sample ``k`` at ``t = k dt`` (the symmetric component of each
        correlation, or its causal or time-reversed acausal side).
    dt : float
        Sampling interval, s.
    distance_km : array (n,)
        Inter-station distances, km (> 0).
    periods : array (m,)
        Periods, s, increasing.
    vmin, vmax : float
        Group velocity window, km/s (``d / vmax <= t <= d / vmin``).
    alpha0, alpha_min : float
        ``alpha = max(alpha0 sqrt(d / 1000), alpha_min)`` (:func:`alpha_for`).
    n_candidates : int
        Envelope maxima kept per period for ridge tracking.
    max_jump : float
        Largest relative change of group velocity between neighbouring periods.
    phase_matched : bool
        Second pass through a phase-matched filter built from the first pass.
    pmf_window : float
        Half-width of the phase-matched window, in periods of the longest period.
    reference : (periods, velocities) or callable, optional
        Reference phase velocity (km/s) resolving the ``2 pi N`` ambiguity; default the
        package's continental Rayleigh table
        (:func:`noisecorr.dispersion.reference.default_reference`).
    n_wavelengths : float
        Far-field criterion: trust a period only if ``d >= n_wavelengths * c * T``.
    min_snr : float
        Narrow-band SNR below which a period is flagged :data:`LOW_SNR` (0: never).
    noise_length : float, optional
        Length of the trailing noise window, s (default: 5 x the longest period, at least
        the signal window's length).
    branch : {"continuity", "reference"}
        How ``N`` is chosen. ``"reference"``: at each period, the branch nearest the
        reference. ``"continuity"`` (Lin et al. 2008): nearest the reference only at the
        anchor, the longest far-field period of each pair (fewest wavelengths, so the
        branches lie furthest apart), then period by period the branch nearest the value
        predicted from the neighbouring measured one and the reference's *relative*
        change; only the shape of the reference matters away from the anchor.
    block : int
        Pairs per batch.

    Returns
    -------
    FTANResult

    Examples
    --------
    >>> import numpy as np
    >>> from noisecorr.synth.dispersion import DispersionModel, diffuse_ccf
    >>> from noisecorr.signal.symmetric import symmetric
    >>> m = DispersionModel.constant(3.0)
    >>> ccf = diffuse_ccf([300.0], m, 2.0, 400.0, band=(0.02, 0.04, 0.4, 0.8))
    >>> r = ftan(symmetric(ccf), 0.5, [300.0], [4.0, 5.0, 10.0, 20.0, 25.0],
    ...          reference=([1.0, 100.0], [3.0, 3.0]))
    >>> ok = r.trusted[0]
    >>> ok.tolist(), bool(np.all(np.abs(r.group_velocity[0, ok] / 3.0 - 1) < 0.01))
    ([False, True, True, True, False], True)

    The first and last periods are flagged :data:`OUTSIDE`: the instantaneous periods of
    the picks (``r.instantaneous_period``) do not reach them.
    """
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 2:
        raise ValueError(f"signal must be (pairs, samples), got shape {signal.shape}")
    n, nt = signal.shape
    d = np.asarray(distance_km, dtype=float).reshape(-1)
    if d.shape != (n,):
        raise ValueError(f"distance_km has {d.size} values for {n} signals")
    if np.any(~np.isfinite(d)) or np.any(d <= 0):
        bad = np.flatnonzero(~np.isfinite(d) | (d <= 0))
        raise ValueError(f"distance_km must be positive and finite; signal(s) {bad[:5].tolist()} "
                         f"have {d[bad[:5]].tolist()}")
    periods = np.asarray(periods, dtype=float)
    if periods.ndim != 1 or periods.size < 2 or np.any(np.diff(periods) <= 0) or periods[0] <= 2 * dt:
        raise ValueError(f"periods must increase, number at least 2, and exceed 2 dt = {2 * dt} s; "
                         f"got {periods.tolist()}")
    if not 0 < vmin < vmax:
        raise ValueError(f"need 0 < vmin < vmax, got {vmin}, {vmax}")
    if branch not in ("continuity", "reference"):
        raise ValueError(f"branch must be 'continuity' or 'reference', got {branch!r}")
    ref = _reference(reference)
    if noise_length is None:
        noise_length = 5.0 * periods[-1]
    alpha = alpha_for(d, alpha0, alpha_min)
    # the plan depends on the floor alpha_min, not on the pairs: a pair's curve does not
    # depend on the other pairs of the call (blocks, mappings)
    plan = _plan(nt, dt, periods, float(alpha_min))
    nfft, K, M, dtc = plan
    freqs = np.arange(K) / (nfft * dt)
    out = {k: np.full((n, periods.size), np.nan) for k in ("u", "c", "t", "snr", "tinst")}
    flags = np.zeros((n, periods.size), dtype=np.uint8)
    by_distance = np.argsort(d, kind="stable")  # similar windows in a block: short searches
    for b0 in range(0, n, block):
        sl = by_distance[b0:b0 + block]
        db, ab = d[sl], alpha[sl]
        spec = (2.0 * scipy.fft.rfft(signal[sl], nfft, axis=-1, workers=-1)[:, :K]).astype(np.complex64)
        args = (dt, db, periods, ab, plan, nt, vmin, vmax, n_candidates, max_jump, noise_length)
        res = _one_pass(spec, *args)
        if phase_matched:
            window = pmf_window * periods[-1]
            clean = _phase_match(spec, freqs, res["finst"], res["t"], window)
            res2 = _one_pass(clean, *args)
            res2["snr"] = res["snr"]  # the SNR is a property of the data, not of the filter
            res2["jump"] = res2["jump"] | res["jump"]
            res = res2
        fin = res["finst"]
        tinst = np.where(fin > 0, 1.0 / fin, np.nan)
        omega = 2 * np.pi * fin
        # phase velocity at the instantaneous periods, 2 pi N against the reference
        cref = ref(np.where(np.isfinite(tinst), tinst, periods[None]))
        k0 = (omega * res["t"] - res["phase"] + np.pi / 4)  # + 2 pi N, then / d
        kref = omega * db[:, None] / cref
        valid = np.isfinite(k0) & np.isfinite(kref) & (omega > 0)
        far = db[:, None] >= n_wavelengths * cref * np.where(np.isfinite(tinst), tinst, periods[None])
        N = _branches(k0, kref, valid, far, branch == "continuity")
        with np.errstate(divide="ignore", invalid="ignore"):
            c = omega * db[:, None] / (k0 + 2 * np.pi * N)
        bad = res["nopick"] | ~np.isfinite(tinst)
        u_i = np.where(bad, np.nan, res["u"])
        c_i = np.where(bad | (c <= 0), np.nan, c)
        u_q = _interp_rows(tinst, u_i, periods)
        c_q = _interp_rows(tinst, c_i, periods)
        jump_q = _interp_rows(tinst, res["jump"].astype(float), periods) > 0
        fl = np.zeros(u_q.shape, dtype=np.uint8)
        fl |= np.where(~np.isfinite(u_q), OUTSIDE, 0).astype(np.uint8)
        fl |= np.where(res["nopick"], NO_PICK, 0).astype(np.uint8)
        fl |= np.where(jump_q | res["jump"], JUMP, 0).astype(np.uint8)
        snr = res["snr"]
        if min_snr > 0:
            fl |= np.where(~(snr >= min_snr), LOW_SNR, 0).astype(np.uint8)
        cfar = np.where(np.isfinite(c_q), c_q, np.where(np.isfinite(u_q), u_q, ref(periods)[None]))
        fl |= np.where(db[:, None] < n_wavelengths * cfar * periods[None], NEAR_FIELD, 0).astype(np.uint8)
        out["u"][sl], out["c"][sl], out["snr"][sl], out["tinst"][sl] = u_q, c_q, snr, tinst
        with np.errstate(divide="ignore", invalid="ignore"):
            out["t"][sl] = db[:, None] / u_q
        flags[sl] = fl
    params = {"vmin": vmin, "vmax": vmax, "alpha0": alpha0, "alpha_min": alpha_min,
              "max_jump": max_jump, "phase_matched": phase_matched, "pmf_window": pmf_window,
              "n_wavelengths": n_wavelengths, "min_snr": min_snr, "noise_length": noise_length,
              "n_candidates": n_candidates, "branch": branch}
    log.debug("FTAN: %d signals x %d periods, nfft %d, kept bins %d, band samples %d",
              n, periods.size, nfft, K, M)
    return FTANResult(periods, d, out["u"], out["c"], out["t"], out["snr"], flags,
                      out["tinst"], alpha, params)


def _branches(k0, kref, valid, far, continuity):
    """Integers ``N`` (n, m) with ``k d = k0 + 2 pi N`` (see :func:`ftan`, ``branch``).

    ``k0``: measured ``k d`` modulo ``2 pi``; ``kref``: the reference's ``k d`` at the same
    (instantaneous) frequencies; periods increase along the last axis.
    """
    two_pi = 2 * np.pi
    N = np.round((kref - k0) / two_pi)
    if not continuity:
        return N
    n, m = k0.shape
    anchor_ok = valid & far
    last = lambda mask: m - 1 - np.argmax(mask[:, ::-1], axis=-1)  # noqa: E731
    anchor = np.where(anchor_ok.any(axis=-1), last(anchor_ok), last(valid))
    rows = np.arange(n)
    out = N.copy()
    for direction in (-1, 1):  # to shorter, then to longer periods from the anchor
        i_prev = anchor.copy()
        for step in range(1, m):
            i = anchor + direction * step
            inside = (i >= 0) & (i < m)
            ii = np.clip(i, 0, m - 1)
            ok = inside & valid[rows, ii] & valid[rows, i_prev]
            # predicted k d: the previous measurement scaled as the reference scales
            kpred = (k0[rows, i_prev] + two_pi * out[rows, i_prev]) * kref[rows, ii] / kref[rows, i_prev]
            n_new = np.round((kpred - k0[rows, ii]) / two_pi)
            out[rows[ok], ii[ok]] = n_new[ok]
            i_prev = np.where(ok, ii, i_prev)
    return out


def _reference(reference):
    """A callable ``c_ref(T)`` (km/s) from ``reference``."""
    if reference is None:
        from noisecorr.dispersion.reference import default_reference

        reference = default_reference()
    if callable(reference):
        return reference
    t, v = (np.asarray(x, dtype=float) for x in reference)
    if t.ndim != 1 or t.shape != v.shape or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError("reference must be (periods, velocities), 1-D, periods increasing")
    return lambda q: np.interp(q, t, v)


def ftan_image(signal, dt: float, distance_km: float, periods, velocities, *,
               alpha0: float = 20.0, alpha_min: float = 2.0):
    """Envelope in the velocity-period plane of one one-sided signal, for plots.

    Returns an array ``(len(periods), len(velocities))``, each period normalised to a
    maximum of 1 over the velocity range, ``velocities`` in km/s (time ``d / v``).
    """
    s = np.asarray(signal, dtype=np.float32).reshape(1, -1)
    a = alpha_for([distance_km], alpha0, alpha_min)
    z, dtc = narrowband(s, dt, np.asarray(periods, float), a)
    env = np.abs(z[0])  # (m, M)
    t = distance_km / np.asarray(velocities, dtype=float)
    tt = np.arange(env.shape[-1]) * dtc
    img = np.stack([np.interp(t, tt, e, right=np.nan) for e in env])
    peak = np.nanmax(img, axis=-1, keepdims=True)
    return img / np.where(peak > 0, peak, 1.0)
