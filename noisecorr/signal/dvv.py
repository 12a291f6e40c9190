"""Relative velocity changes (dv/v) from correlation time series: stretching and MWCS.

Everything is batched over pairs and days: correlation series are arrays of shape
``(n_pairs, n_days, n_lags)`` on the lag axis ``lags = arange(-L, L + 1) / fs`` seconds
(:func:`noisecorr.signal.correlate.lag_axis`), references ``(n_pairs, n_lags)``. No Python
loop runs per pair and day; pairs are processed in blocks to bound memory.

Sign convention (both methods return the same quantity)
--------------------------------------------------------
``dv/v > 0`` is a velocity *increase*. A homogeneous relative change ``dv/v`` of the
medium scales every travel time by ``1 / (1 + dv/v)``: an arrival at lag ``t`` in the
reference is at ``t / (1 + dv/v)`` in the current correlation, i.e. the current trace is the
reference evaluated at stretched times, ``cur(t) = ref(t (1 + dv/v))``. Delays
``dt = t_cur - t_ref`` then obey ``dt / t = -dv/v`` (to first order) on both sides of the
correlation (negative lags included, since ``t`` carries its sign). A velocity decrease
(e.g. after an earthquake, or with rising pore pressure) gives ``dv/v < 0`` and later coda
arrivals. Values are fractions (0.001 is 0.1 %).

Methods
-------
* :func:`stretching` (Sens-Schönfelder & Wegler 2006, GRL 33, L21302): the ``epsilon`` of
  a grid maximising the correlation coefficient between the current coda and the
  reference evaluated at ``t (1 + epsilon)``; then ``dv/v = epsilon``, refined by a
  parabola through the best grid point and its neighbours. The stretched references are
  one sparse matrix of cubic interpolation weights applied to all references at once.
  Error: Weaver et al. (2011, GJI 185, 1269), eq. 8: from the coefficient ``X``, the band
  and the window, :func:`stretching_error`.
* :func:`mwcs` (moving-window cross-spectral analysis; Clarke et al. 2011, GJI 186, 867;
  Poupinet et al. 1984): for each moving window, the delay ``dt`` is the slope of the
  cross-spectrum phase against angular frequency in the band, from a regression through
  the origin weighted by the coherence; then ``dt/t`` from a weighted regression of the
  delays against the window centre lags (through the origin by default), ``dv/v = -dt/t``.

Coda windows come from :func:`coda_mask` (a multiple of the ballistic time or a fixed lag,
causal, acausal or both sides); pairs whose window does not fit the lag axis are reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse

__all__ = ["SIDES", "coda_mask", "stretch_matrix", "stretching", "stretching_error",
           "StretchResult", "mwcs", "MWCSResult", "window_spectra", "dvv_regression", "combine",
           "station_average"]

logger = logging.getLogger(__name__)

#: Allowed values of ``side``.
SIDES = ("both", "causal", "acausal")

#: Pairs per block: bounds the stretched references (block x n_eps x n_lags float32).
_BLOCK_BYTES = 256 * 2**20


def coda_mask(lags: np.ndarray, distance_km=None, *, velocity: float | None = None,
              ballistic_factor: float | None = None, start: float | None = None,
              length: float = 40.0, side: str = "both") -> tuple[np.ndarray, np.ndarray]:
    """Boolean coda windows, one row per pair.

    The window starts at ``ballistic_factor * distance_km / velocity`` seconds (the
    ballistic arrival times a factor, e.g. 2) or, without those, at the fixed lag
    ``start``, and lasts ``length`` seconds; on the causal side (positive lags), the
    acausal side (negative lags, mirrored) or both.

    Parameters
    ----------
    lags : ndarray (n_lags,)
        Seconds, symmetric.
    distance_km : float or ndarray (n_pairs,), optional
        Inter-station distances; needed with ``ballistic_factor``.
    velocity : float, optional
        km/s, with ``ballistic_factor``.
    ballistic_factor : float, optional
    start : float, optional
        Seconds, when the window does not follow the distance.
    length : float
        Seconds.
    side : {"both", "causal", "acausal"}

    Returns
    -------
    (mask, fits)
        ``mask`` bool ``(n_pairs, n_lags)`` (one row when no distances are given) and
        ``fits`` bool ``(n_pairs,)``: False where the window runs past the largest lag
        (those rows are all False; callers report them, see :func:`stretching`).
    """
    lags = np.asarray(lags, dtype=np.float64)
    if side not in SIDES:
        raise ValueError(f"side={side!r} is not one of {list(SIDES)}")
    if not length > 0:
        raise ValueError(f"coda window length must be > 0 s, got {length!r}")
    if ballistic_factor is not None:
        if distance_km is None or velocity is None or not velocity > 0:
            raise ValueError("a coda window from the ballistic time needs distance_km and a velocity > 0")
        t1 = ballistic_factor * np.atleast_1d(np.asarray(distance_km, dtype=np.float64)) / velocity
    elif start is not None:
        n = 1 if distance_km is None else np.atleast_1d(distance_km).size
        t1 = np.full(n, float(start))
    else:
        raise ValueError("give either ballistic_factor (with distance_km and velocity) or start")
    if np.any(t1 < 0):
        raise ValueError("coda windows must start at a non-negative lag")
    t2 = t1 + length
    fits = t2 <= lags.max() + 1e-9
    a = np.abs(lags)[None, :]
    inside = (a >= t1[:, None]) & (a <= t2[:, None]) & fits[:, None]
    if side == "causal":
        inside &= lags[None, :] > 0
    elif side == "acausal":
        inside &= lags[None, :] < 0
    else:
        inside &= lags[None, :] != 0
    return inside, fits


def stretch_matrix(lags: np.ndarray, epsilons: np.ndarray, rows: np.ndarray | None = None) -> scipy.sparse.csr_matrix:
    """Sparse matrix evaluating a trace at ``lags[rows] * (1 + epsilon)`` for every epsilon.

    Row ``e * n_rows + r`` holds the 4 cubic-convolution weights (Keys 1981, ``a = -1/2``,
    exact for cubics) of the samples around ``lags[rows[r]] * (1 + epsilons[e])``; applied to
    traces sampled on ``lags`` (a uniform axis) it gives the stretched traces. Points beyond
    the axis read the nearest edge sample.

    Returns a CSR matrix of shape ``(n_eps * n_rows, n_lags)``, float64.
    """
    lags = np.asarray(lags, dtype=np.float64)
    n = lags.size
    rows = np.arange(n) if rows is None else np.asarray(rows)
    dt = lags[1] - lags[0]
    eps = np.asarray(epsilons, dtype=np.float64)
    pos = (lags[rows][None, :] * (1.0 + eps[:, None]) - lags[0]) / dt      # fractional index
    i0 = np.floor(pos).astype(np.int64)
    f = pos - i0
    # Keys cubic convolution weights for taps i0-1, i0, i0+1, i0+2
    w = np.stack([(-0.5 * f + f**2 - 0.5 * f**3),
                  (1.0 - 2.5 * f**2 + 1.5 * f**3),
                  (0.5 * f + 2.0 * f**2 - 1.5 * f**3),
                  (-0.5 * f**2 + 0.5 * f**3)], axis=-1)
    taps = np.clip(i0[..., None] + np.arange(-1, 3), 0, n - 1)
    n_out = eps.size * rows.size
    return scipy.sparse.csr_matrix(
        (w.reshape(-1), taps.reshape(-1), np.arange(0, 4 * n_out + 1, 4)), shape=(n_out, n))


@dataclass(frozen=True)
class StretchResult:
    """Output of :func:`stretching`.

    Attributes
    ----------
    dvv : ndarray (n_pairs, n_days)
        Relative velocity change (fraction; > 0 faster), NaN where not measured.
    coefficient : ndarray (n_pairs, n_days)
        Correlation coefficient of the current coda with the best-stretched reference.
    error : ndarray (n_pairs, n_days)
        Theoretical standard deviation of dv/v (Weaver et al. 2011), fraction.
    fits : ndarray of bool (n_pairs,)
        False for pairs whose coda window does not fit the lags (all NaN).
    at_edge : ndarray of bool (n_pairs, n_days)
        The best epsilon is at the end of the grid: the change may exceed ``max_dvv``.
    """

    dvv: np.ndarray
    coefficient: np.ndarray
    error: np.ndarray
    fits: np.ndarray
    at_edge: np.ndarray


def stretching_error(coefficient, freqmin: float, freqmax: float, t1, t2) -> np.ndarray:
    """Theoretical standard deviation of a stretching dv/v (Weaver et al. 2011, eq. 8).

    ``rms = sqrt(1 - X**2) / (2 X) * sqrt(6 sqrt(pi / 2) T / (wc**2 (t2**3 - t1**3)))``
    with ``X`` the correlation coefficient, ``T = 1 / (freqmax - freqmin)`` the inverse
    bandwidth, ``wc = pi (freqmin + freqmax)`` the central angular frequency and ``t1``,
    ``t2`` the coda window bounds (s, absolute lags). A window on both sides holds twice the
    data: pass ``t2**3 - t1**3`` summed over the sides through ``t1 = 0`` and
    ``t2 = (2 (t2**3 - t1**3)) ** (1/3)``, as :func:`stretching` does.

    Returns a fraction (same unit as dv/v); infinite where ``X <= 0``.
    """
    # capped just below 1: a perfect match has a vanishing but positive error, so it still
    # counts (with a large weight) in inverse-variance averages
    x = np.clip(np.asarray(coefficient, dtype=np.float64), -1.0, 1.0 - 1e-9)
    bw = 1.0 / (float(freqmax) - float(freqmin))
    wc = np.pi * (float(freqmin) + float(freqmax))
    span = np.asarray(t2, dtype=np.float64) ** 3 - np.asarray(t1, dtype=np.float64) ** 3
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(1.0 - x**2) / (2.0 * x) * np.sqrt(6.0 * np.sqrt(np.pi / 2.0) * bw / (wc**2 * span))
    return np.where(x > 0, out, np.inf)


def _normalised(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Demean and scale to unit norm inside ``mask`` (zeros outside), along the last axis."""
    m = mask.astype(x.dtype)
    n = np.maximum(m.sum(axis=-1, keepdims=True), 1.0)
    y = (x - (x * m).sum(axis=-1, keepdims=True) / n) * m
    norm = np.sqrt((y * y).sum(axis=-1, keepdims=True))
    return np.divide(y, norm, out=np.zeros_like(y), where=norm > 0)


def coda_inputs(series, reference, lags, mask, fits=None, dtype=None):
    """Check and shape the common inputs of the dv/v methods.

    Returns ``(cur, ref, lags, mask, fits)``: ``cur`` (n_pairs, n_days, n_lags) (a 2-D
    series is one day per pair), ``ref`` (n_pairs, n_lags), ``lags`` float64 seconds,
    ``mask`` broadcast to (n_pairs, n_lags), and ``fits`` (n_pairs,) bool: the given
    ``fits`` (all True if None) and-ed with "the coda window has at least one lag".
    ``dtype`` converts the series and reference (None: as given). Raises ValueError
    naming the three shapes when they disagree.
    """
    cur = np.asarray(series, dtype=dtype)
    if cur.ndim == 2:
        cur = cur[:, None, :]
    ref = np.asarray(reference, dtype=dtype)
    lags = np.asarray(lags, dtype=np.float64)
    n_pairs, _, n_lags = cur.shape
    if ref.shape != (n_pairs, n_lags) or lags.shape != (n_lags,):
        raise ValueError(f"shapes differ: series {cur.shape}, reference {ref.shape}, lags {lags.shape}")
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), (n_pairs, n_lags))
    fits = np.ones(n_pairs, bool) if fits is None else np.asarray(fits, bool)
    return cur, ref, lags, mask, fits & mask.any(axis=1)


def stretching(series: np.ndarray, reference: np.ndarray, lags: np.ndarray, mask: np.ndarray, *,
               max_dvv: float = 0.01, n_eps: int = 201, freqmin: float | None = None,
               freqmax: float | None = None, fits: np.ndarray | None = None) -> StretchResult:
    """dv/v by stretching, for every pair and day at once.

    Parameters
    ----------
    series : ndarray (n_pairs, n_days, n_lags)
        Current correlations (e.g. daily), any amplitude.
    reference : ndarray (n_pairs, n_lags)
        Reference correlation of each pair (e.g. the stack over the whole span).
    lags : ndarray (n_lags,)
        Seconds, uniform and symmetric.
    mask : ndarray of bool (n_pairs, n_lags) or (n_lags,)
        Coda window of each pair (:func:`coda_mask`).
    max_dvv : float
        Grid half-width: epsilons from ``-max_dvv`` to ``+max_dvv`` (fraction).
    n_eps : int
        Grid points (odd, so 0 is on the grid); the maximum is refined by a parabola
        through it and its neighbours, far below the grid step.
    freqmin, freqmax : float, optional
        Band of the correlations (Hz), for :func:`stretching_error`; without them the
        error is NaN.
    fits : ndarray of bool (n_pairs,), optional
        From :func:`coda_mask`; pairs that do not fit are NaN and counted in the log.

    Returns
    -------
    StretchResult
        ``dvv = epsilon`` (> 0: velocity increase, earlier arrivals).
    """
    cur, ref, lags, mask, fits = coda_inputs(series, reference, lags, mask, fits, dtype=np.float32)
    n_pairs, n_days, n_lags = cur.shape
    if (~fits).any():
        logger.warning("stretching: %d of %d pairs have no coda window inside the lags; left out (NaN)",
                       int((~fits).sum()), n_pairs)
    if n_eps < 3 or n_eps % 2 == 0:
        raise ValueError(f"n_eps must be odd and >= 3, got {n_eps}")
    eps = np.linspace(-max_dvv, max_dvv, n_eps)
    # only the lags some coda window uses take part
    used = np.nonzero(mask.any(axis=0))[0]
    out = np.full((n_pairs, n_days), np.nan)
    coef = np.full((n_pairs, n_days), np.nan)
    edge = np.zeros((n_pairs, n_days), bool)
    if used.size == 0:
        return StretchResult(out, coef, np.full_like(out, np.nan), fits, edge)
    W = stretch_matrix(lags, eps, used)                                   # (E * U, n_lags)
    m = mask[:, used]
    # float64: the parabola through the peak resolves a fraction of the grid step only if the
    # coefficients are exact to far better than float32's 1e-7
    block = max(1, int(_BLOCK_BYTES // (8 * max(n_eps, n_days) * used.size)))
    for p0 in range(0, n_pairs, block):
        p1 = min(p0 + block, n_pairs)
        c = _normalised(cur[p0:p1][:, :, used].astype(np.float64), m[p0:p1, None, :])   # (B, D, U)
        s = (W @ ref[p0:p1].T.astype(np.float64)).T.reshape(p1 - p0, n_eps, used.size)
        s = _normalised(s, m[p0:p1, None, :])
        cc = np.matmul(c, np.swapaxes(s, 1, 2))                           # (B, D, E)
        k = np.argmax(cc, axis=-1)
        kk = np.clip(k, 1, n_eps - 2)
        y0 = np.take_along_axis(cc, (kk - 1)[..., None], -1)[..., 0].astype(np.float64)
        y1 = np.take_along_axis(cc, kk[..., None], -1)[..., 0].astype(np.float64)
        y2 = np.take_along_axis(cc, (kk + 1)[..., None], -1)[..., 0].astype(np.float64)
        den = y0 - 2.0 * y1 + y2
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(den < 0, 0.5 * (y0 - y2) / den, 0.0)
        shift = np.clip(shift, -1.0, 1.0)
        at_edge = (k == 0) | (k == n_eps - 1)
        step = eps[1] - eps[0]
        best = np.where(at_edge, eps[k], eps[kk] + shift * step)
        peak = np.where(at_edge, np.take_along_axis(cc, k[..., None], -1)[..., 0],
                        y1 - 0.25 * (y0 - y2) * shift)
        out[p0:p1] = best
        coef[p0:p1] = peak
        edge[p0:p1] = at_edge
    out[~fits] = np.nan
    coef[~fits] = np.nan
    if freqmin is not None and freqmax is not None:
        a = np.abs(lags)
        # sum over the window's samples of t^2 dt = (t2^3 - t1^3) / 3 per side
        span = 3.0 * (mask * a[None, :] ** 2).sum(axis=1) * (lags[1] - lags[0])
        err = stretching_error(coef, freqmin, freqmax, 0.0, np.cbrt(span)[:, None])
        err[~fits] = np.nan
    else:
        err = np.full_like(out, np.nan)
    return StretchResult(out, coef, err, fits, edge)


# ------------------------------------------------------------------------------ MWCS
@dataclass(frozen=True)
class MWCSResult:
    """Output of :func:`mwcs`.

    Attributes
    ----------
    dvv, error : ndarray (n_pairs, n_days)
        ``-dt/t`` (fraction; > 0 faster) and its standard deviation from the weighted
        regression; NaN where fewer than 2 windows pass the quality limits.
    times : ndarray (n_windows,)
        Centre lag of each moving window (s).
    delay, delay_error, coherence : ndarray (n_pairs, n_days, n_windows)
        Delay ``dt`` of each window (s; > 0: the current arrives later), its error, and the
        mean coherence in the band.
    used : ndarray of bool (n_pairs, n_days, n_windows)
        Windows that entered the regression.
    """

    dvv: np.ndarray
    error: np.ndarray
    times: np.ndarray
    delay: np.ndarray
    delay_error: np.ndarray
    coherence: np.ndarray
    used: np.ndarray


def _smooth(x: np.ndarray, half: int) -> np.ndarray:
    """Running mean over ``2 half + 1`` bins along the last axis (Hann-free boxcar)."""
    if half <= 0:
        return x
    from scipy.ndimage import uniform_filter1d

    if np.iscomplexobj(x):
        return (uniform_filter1d(x.real, 2 * half + 1, axis=-1, mode="nearest")
                + 1j * uniform_filter1d(x.imag, 2 * half + 1, axis=-1, mode="nearest"))
    return uniform_filter1d(x, 2 * half + 1, axis=-1, mode="nearest")


def window_spectra(x: np.ndarray, starts: np.ndarray, nw: int, op: np.ndarray) -> np.ndarray:
    """``x[..., s:s + nw] @ op`` for every window start ``s``: shape ``(..., len(starts),
    op.shape[1])`` complex128, from real ``x`` (computed in float64: a BLAS picks its kernels
    by the matrix sizes, and in float32 their rounding differed by 1e-7 between a block of
    all pairs and an MPI rank's share of them, 4e-6 relative in dv/v; in float64 a row's
    result does not depend on the other rows to the tests' 1e-12).

    When every start is a multiple of a hop ``h`` that divides ``nw`` (MWCS's ``step`` a
    divisor of its ``window``, as with the defaults 10 s / 5 s), ``x`` is cut into
    ``nw / h`` consecutive blocks of ``h`` samples without gathering overlapping windows:
    one real matrix product of all blocks with the real and imaginary parts of every
    ``h``-row slice of ``op`` (a single large GEMM, which a threaded BLAS runs well, where a
    stack of small complex products per pair and day ran up to 17 times slower on a busy
    2-core machine), and each window's spectrum is the sum of its blocks' products.
    Otherwise the windows are gathered and multiplied as one real product.
    """
    x = np.asarray(x)
    lead = x.shape[:-1]
    starts = np.asarray(starts, dtype=np.int64)
    nb = op.shape[1]
    if starts.size == 0:
        return np.zeros((*lead, 0, nb), dtype=np.complex128)
    # the largest hop that divides nw and every start (>= 1: the gcd of positive nw and them)
    hop = int(np.gcd.reduce(np.concatenate([starts, np.diff(starts), [nw]])))
    if nw // hop <= 8:
        m = nw // hop
        k0 = starts // hop                                                # block of each window
        n_blocks = int(k0.max()) + m
        lo = int(k0.min())
        blocks = np.ascontiguousarray(x[..., lo * hop:n_blocks * hop], dtype=np.float64)
        blocks = blocks.reshape(-1, hop)                                   # (... x nbk, hop)
        parts = op.reshape(m, hop, nb)
        wide = np.concatenate([np.concatenate([p.real, p.imag], axis=1) for p in parts], axis=1)
        y = (blocks @ wide).reshape(*lead, n_blocks - lo, m, 2 * nb)
        k = k0 - lo
        acc = y[..., k, 0, :]
        for j in range(1, m):
            acc += y[..., k + j, j, :]
    else:
        idx = starts[:, None] + np.arange(nw)[None, :]
        win = np.ascontiguousarray(x[..., idx], dtype=np.float64)          # (..., W, nw)
        wide = np.concatenate([op.real, op.imag], axis=1)
        acc = (win.reshape(-1, nw) @ wide).reshape(*lead, starts.size, 2 * nb)
    out = np.empty(acc.shape[:-1] + (nb,), dtype=np.complex128)
    out.real = acc[..., :nb]
    out.imag = acc[..., nb:]
    return out


def mwcs(series: np.ndarray, reference: np.ndarray, lags: np.ndarray, mask: np.ndarray, *,
         freqmin: float, freqmax: float, window: float = 10.0, step: float = 5.0,
         smoothing: int = 2, min_coherence: float = 0.5, max_delay_error: float = 0.1,
         max_delay: float | None = None, through_origin: bool = True,
         centroid: bool = True) -> MWCSResult:
    """dv/v by moving-window cross-spectral analysis, for every pair and day at once.

    For each moving window of ``window`` seconds every ``step`` seconds whose samples lie
    inside the coda ``mask``: detrend, Hann taper, FFT of the current (``c``) and the
    reference (``r``); cross-spectrum ``X = R conj(C)`` and coherence
    ``|<X>| / sqrt(<|R|^2> <|C|^2>)`` with ``<>`` a running mean over ``2 smoothing + 1``
    bins; in ``freqmin..freqmax`` the phase of ``<X>`` is ``2 pi f dt``, ``dt`` fitted
    through the origin with weights ``sqrt(w sqrt(|<X>|))``, ``w = coh^2 / (1 - coh^2)``
    (Clarke et al. 2011; coherence capped at 0.99), and its error from the residuals.
    Then ``dt/t`` is the slope of ``dt`` against the window centre lags (weights
    ``1 / err^2``; through the origin unless ``through_origin`` is False, when an
    intercept absorbs a clock error), using windows with mean coherence >=
    ``min_coherence``, delay error <= ``max_delay_error`` (s) and ``|dt| <= max_delay``.

    Parameters
    ----------
    series, reference, lags, mask
        As :func:`stretching`.
    freqmin, freqmax : float
        Hz; the band of the phase regression.
    window, step : float
        Seconds.
    smoothing : int
        Half-width in bins of the spectral smoothing.
    centroid : bool
        Regress each window's delay against the lag of its energy centroid (the tapered
        reference squared) rather than its centre. The delay of a window is the
        energy-weighted mean of the delays inside it; in a decaying coda the energy sits
        early in each window, so the centre overstates ``|t|`` and shrinks dv/v by a few
        per cent (about 1.5 % on the test synthetics, 10-16 s windows; more for long
        windows or fast decay). With the centroid the shrink stays within 1 %, clean or at
        60 % noise (``tests/signal/test_dvv.py`` pins it). Lowering ``min_coherence`` lets
        noisy windows with wrapped phases in, which shrinks dv/v again.

    Returns
    -------
    MWCSResult
        ``dvv = -dt/t`` (> 0: velocity increase).
    """
    cur = np.asarray(series)
    if cur.ndim == 2:
        cur = cur[:, None, :]
    ref = np.asarray(reference)
    lags = np.asarray(lags, dtype=np.float64)
    n_pairs, n_days, n_lags = cur.shape
    if ref.shape != (n_pairs, n_lags):
        raise ValueError(f"shapes differ: series {cur.shape}, reference {ref.shape}")
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), (n_pairs, n_lags))
    dt = lags[1] - lags[0]
    fs = 1.0 / dt
    nw = int(round(window * fs))
    ns = max(1, int(round(step * fs)))
    if nw < 8:
        raise ValueError(f"MWCS window {window} s is shorter than 8 samples at {fs:g} Hz")
    starts = np.arange(0, n_lags - nw + 1, ns)
    centres = lags[starts] + (nw - 1) * dt / 2.0
    # a window takes part for a pair when all its samples are in that pair's coda
    inside = np.stack([mask[:, s:s + nw].all(axis=1) for s in starts], axis=1)   # (P, W)
    keep_w = np.nonzero(inside.any(axis=0))[0]
    starts, centres, inside = starts[keep_w], centres[keep_w], inside[:, keep_w]
    n_win = starts.size
    nfft = int(2 ** np.ceil(np.log2(2 * nw)))
    freqs = np.fft.rfftfreq(nfft, dt)
    band = (freqs >= freqmin) & (freqs <= freqmax)
    if band.sum() < 2:
        raise ValueError(f"MWCS band {freqmin}-{freqmax} Hz holds fewer than 2 bins of a {window} s window")
    taper = np.hanning(nw)
    delay = np.full((n_pairs, n_days, n_win), np.nan)
    derr = np.full_like(delay, np.nan)
    coh_out = np.full_like(delay, np.nan)
    if n_win:
        idx = starts[:, None] + np.arange(nw)[None, :]                     # (W, nw)
        # only the band's bins (and the smoothing's neighbours) are needed: one matrix
        # does detrend (remove mean and line), Hann taper and the DFT at those bins
        ib = np.nonzero(band)[0]
        lo, hi = max(ib[0] - smoothing, 0), min(ib[-1] + 1 + smoothing, freqs.size)
        inner = slice(ib[0] - lo, ib[-1] + 1 - lo)
        k = np.arange(nw) - (nw - 1) / 2.0
        proj = np.eye(nw) - 1.0 / nw - np.outer(k, k) / (k * k).sum()       # detrend
        dft = np.exp(-2j * np.pi * np.outer(np.arange(nw), np.arange(lo, hi)) / nfft)
        op = (proj * taper[None, :]) @ dft                                  # x @ op = spectrum
        block = max(1, int(_BLOCK_BYTES // (8 * 6 * n_days * n_win * (hi - lo) + 4 * n_days * n_win * nw)))
        v = 2.0 * np.pi * freqs[band]
        corr_bins = min((nfft / nw) * (2 * smoothing + 1), max(v.size / 2.0, 1.0))
        for p0 in range(0, n_pairs, block):
            p1 = min(p0 + block, n_pairs)
            C = window_spectra(cur[p0:p1], starts, nw, op)                # (B, D, W, nb)
            R = window_spectra(ref[p0:p1], starts, nw, op)[:, None]
            # R conj(C): a current delayed by dt has phase +2 pi f dt (numpy's FFT sign)
            X = _smooth(R * np.conj(C), smoothing)[..., inner]                # complex128
            pr = _smooth((R.real**2 + R.imag**2), smoothing)[..., inner]
            pc = _smooth((C.real**2 + C.imag**2), smoothing)[..., inner]
            mX = np.abs(X)
            with np.errstate(divide="ignore", invalid="ignore"):
                coh = mX / np.sqrt(pr * pc)
            coh = np.nan_to_num(coh, nan=0.0)
            phi = np.unwrap(np.angle(X), axis=-1)
            c2 = np.minimum(coh, 0.99) ** 2
            w = np.sqrt(c2 / (1.0 - c2) * np.sqrt(mX))
            sx2 = (w * v**2).sum(-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                m = (w * v * phi).sum(-1) / sx2                              # weighted LS, origin
                res = ((phi - m[..., None] * v) ** 2).sum(-1) / (v.size - 1)
                s2x2 = (v**2 * w**2).sum(-1)
                # bins are not independent: the zero padding (nfft / nw) and the smoothing
                # (2 smoothing + 1 bins) correlate neighbours; count independent bins only
                e = np.sqrt(res * s2x2 / sx2**2 * corr_bins)
            delay[p0:p1] = m
            derr[p0:p1] = e
            coh_out[p0:p1] = coh.mean(-1)
    used = (inside[:, None, :] & np.isfinite(delay) & (coh_out >= min_coherence)
            & (derr <= max_delay_error) & (derr > 0))
    if max_delay is not None:
        used &= np.abs(delay) <= max_delay
    # the delay of a window is the energy-weighted mean of the delays inside it, so it
    # belongs to the lag of the window's energy centroid (tapered reference squared), not
    # to its centre: in a decaying coda the energy sits early in each window and the
    # centre overstates |t|, shrinking dv/v by a few per cent
    if n_win and centroid:
        e = (np.asarray(ref, dtype=np.float64)[:, idx] * taper) ** 2                 # (P, W, nw)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_eff = (e * lags[idx]).sum(-1) / e.sum(-1)
        t_eff = np.where(np.isfinite(t_eff), t_eff, centres)[:, None, :]           # (P, 1, W)
    else:
        t_eff = centres
    slope, serr = dvv_regression(t_eff, delay, derr, used, through_origin=through_origin)
    # overlapping windows share samples: about window / step times fewer independent delays
    serr = serr * np.sqrt(max(1.0, nw / ns))
    return MWCSResult(-slope, serr, centres, delay, derr, coh_out, used)


def dvv_regression(times: np.ndarray, delay: np.ndarray, delay_error: np.ndarray,
                   used: np.ndarray, *, through_origin: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Slope ``dt/t`` of delays against lag, weighted by ``1 / delay_error^2``, batched.

    Parameters
    ----------
    times : ndarray (n_windows,)
        Window centre lags (s).
    delay, delay_error : ndarray (..., n_windows)
        Seconds.
    used : ndarray of bool (..., n_windows)

    Returns
    -------
    (slope, slope_error) : ndarrays (...)
        NaN where fewer than 2 windows are used (3 with an intercept). The error is that of
        the weighted fit, scaled by ``sqrt(chi2 / dof)`` when the delays scatter more than
        their errors say (neighbouring windows overlap and share coda, so per-window
        errors are not independent).
    """
    t = np.asarray(times, dtype=np.float64)
    w = np.where(used, 1.0 / np.where(used, delay_error, 1.0) ** 2, 0.0)
    d = np.where(used, delay, 0.0)
    n = used.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if through_origin:
            stt = (w * t**2).sum(-1)
            slope = (w * t * d).sum(-1) / stt
            err = np.sqrt(1.0 / stt)
            ok = n >= 2
        else:
            sw = w.sum(-1)
            st = (w * t).sum(-1)
            stt = (w * t**2).sum(-1)
            sd = (w * d).sum(-1)
            std_ = (w * t * d).sum(-1)
            det = sw * stt - st**2
            slope = (sw * std_ - st * sd) / det
            err = np.sqrt(sw / det)
            ok = n >= 3
        # the delay errors of neighbouring windows and bins are correlated and the formula
        # underestimates them; scale by the scatter about the fit when it is larger
        fit = slope[..., None] * t if through_origin else (slope[..., None] * t
                                                          + ((sd - slope * st) / sw)[..., None])
        chi2 = (w * (d - fit) ** 2).sum(-1) / np.maximum(n - (1 if through_origin else 2), 1)
        err = err * np.sqrt(np.maximum(chi2, 1.0))
    return np.where(ok, slope, np.nan), np.where(ok, err, np.nan)


# ------------------------------------------------------------------------ aggregation
def combine(dvv: np.ndarray, error: np.ndarray, axis: int = 0,
            valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance weighted mean along ``axis`` (e.g. over pairs: a network average).

    Entries that are NaN, have a non-positive or non-finite error, or are False in
    ``valid`` (quality filters) are left out.

    Returns ``(mean, error_of_mean, count)``; NaN where nothing is left.
    """
    x = np.asarray(dvv, dtype=np.float64)
    e = np.asarray(error, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(e) & (e > 0)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    w = np.where(ok, 1.0 / np.where(ok, e, 1.0) ** 2, 0.0)
    sw = w.sum(axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (w * np.where(ok, x, 0.0)).sum(axis) / sw
        err = 1.0 / np.sqrt(sw)
    cnt = ok.sum(axis)
    return np.where(cnt > 0, mean, np.nan), np.where(cnt > 0, err, np.nan), cnt


def station_average(pairs: list[tuple[str, str]], dvv: np.ndarray, error: np.ndarray,
                    valid: np.ndarray | None = None) -> dict:
    """Per station: the inverse-variance mean over every pair that includes it.

    ``pairs[i]`` names the stations of row ``i`` of ``dvv``/``error`` (n_pairs, n_days).
    Returns ``{station: (mean, error, count)}`` with arrays over days.
    """
    stations = sorted({s for p in pairs for s in p})
    out = {}
    for s in stations:
        rows = np.array([s in p for p in pairs])
        v = None if valid is None else np.asarray(valid)[rows]
        out[s] = combine(np.asarray(dvv)[rows], np.asarray(error)[rows], axis=0, valid=v)
    return out
