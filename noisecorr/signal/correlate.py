"""Frequency-domain cross-correlation with an exact lag axis.

Sign convention
---------------
For a source window ``s`` and a receiver window ``r`` (same length, same start time,
sampling interval ``dt``) the correlation is

    C(tau) = sum_t s(t) r(t + tau),        tau = k * dt,  k = -maxlag .. +maxlag

so a receiver that records the source delayed by ``+k`` samples peaks at lag
``+k * dt`` (causal side = energy travelling from source to receiver). In the
frequency domain (numpy's forward FFT sign) this is ``C(f) = conj(S(f)) R(f)``.

The lags are read straight from the circular output of the inverse FFT: lag ``k >= 0``
is bin ``k`` and lag ``-k`` is bin ``nfft - k``. No ``fftshift``/``ifftshift`` is used,
so there is no half-sample bookkeeping and the result is exact for even and odd
``nfft`` (a peer code's ``ifftshift`` on even lengths shifts every lag by one sample).
With ``nfft >= 2 n - 1`` (``zero_pad``) the correlation is linear; otherwise it is
circular and only unambiguous for ``|k| < nfft / 2``.

The computation is separable so it can be tiled (Bensen et al. 2007; NoisePy,
Jiang & Denolle 2020):

1. :func:`source_factor` / :func:`receiver_factor` scale each station's spectra
   (per station, not per pair),
2. :func:`cross_spectrum` multiplies them, per window, or
   :func:`accumulate_cross_spectra` sums the products over windows (a linear stack
   commutes with the inverse FFT; for a block of stations this sum is a matrix product
   over the window dimension, see :func:`block_cross_spectra`),
3. :func:`cross_spectra_to_lags` runs the inverse FFT and cuts ``-maxlag..+maxlag``.

Examples
--------
>>> import numpy as np
>>> from noisecorr.signal.spectra import rfft_windows
>>> rng = np.random.default_rng(0)
>>> s = rng.standard_normal((1, 64)).astype(np.float32)
>>> r = np.roll(s, 3, axis=1)             # receiver = source delayed by 3 samples
>>> nfft = 128
>>> ccf, lags = correlate(rfft_windows(s, nfft), rfft_windows(r, nfft), nfft,
...                       sampling_rate=1.0, maxlag=10)
>>> float(lags[np.argmax(ccf[0])])
3.0
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.fft

from noisecorr.signal.normalize import floor_denominator, smooth_amplitude

__all__ = [
    "CC_METHODS",
    "lag_axis",
    "source_factor",
    "receiver_factor",
    "cross_spectrum",
    "accumulate_cross_spectra",
    "block_cross_spectra",
    "cross_spectra_to_lags",
    "correlate",
    "correlate_block",
]

logger = logging.getLogger(__name__)

CC_METHODS = ("xcorr", "coherency", "deconv")


def _check_method(cc_method: str) -> None:
    if cc_method not in CC_METHODS:
        raise ValueError(f"cc_method={cc_method!r} is not one of {list(CC_METHODS)}")


def lag_axis(maxlag_samples: int, sampling_rate: float) -> np.ndarray:
    """Lag times in seconds, ``np.arange(-L, L + 1) / sampling_rate`` (float64).

    Parameters
    ----------
    maxlag_samples : int
        ``L``, the largest lag in samples.
    sampling_rate : float
        Hz.

    Examples
    --------
    >>> lag_axis(2, 4.0)
    array([-0.5 , -0.25,  0.  ,  0.25,  0.5 ])
    """
    L = int(maxlag_samples)
    if L < 0:
        raise ValueError(f"maxlag_samples must be >= 0, got {maxlag_samples}")
    return np.arange(-L, L + 1, dtype=np.float64) / float(sampling_rate)


def _scaled(spectra: np.ndarray, power: int, smoothspect_N: int, water_level: float,
            weights: np.ndarray | None = None) -> np.ndarray:
    x = np.asarray(spectra)
    dtype = np.complex128 if x.dtype == np.complex128 else np.complex64
    den = floor_denominator(smooth_amplitude(x, smoothspect_N), water_level)
    if power == 2:
        den = den * den
    out = np.zeros(x.shape, dtype=dtype)
    np.divide(x, den, out=out, where=den > 0)
    if weights is not None:
        w = np.asarray(weights, dtype=np.float32 if dtype == np.complex64 else np.float64)
        if w.shape != x.shape[-1:]:
            raise ValueError(f"band_weights have shape {w.shape}, expected ({x.shape[-1]},)")
        out *= w
    return out


def source_factor(spectra: np.ndarray, cc_method: str = "xcorr", *, smoothspect_N: int = 0,
                  water_level: float = 1e-3, band_weights: np.ndarray | None = None) -> np.ndarray:
    """Per-station factor of the virtual source in ``C(f) = source_factor * receiver_factor``.

    * ``"xcorr"``: ``conj(S)``
    * ``"coherency"``: ``conj(S) / A_S``
    * ``"deconv"``: ``conj(S) / A_S**2``  (so ``C = R / S`` where ``S`` is non-zero)

    ``A_S`` is ``|S|`` smoothed over ``2 * smoothspect_N + 1`` bins and floored at
    ``water_level * max(A_S)`` per window (``water_level**2 * max(A_S)**2`` for deconv),
    so the result is finite everywhere; a window whose spectrum is zero in every bin
    (e.g. outside a whitened band) gives zeros, never NaN.

    Dividing by the amplitude also divides out the cosine band taper that whitening put
    on the spectra (:func:`noisecorr.signal.normalize.whitening_taper`): the cross-spectrum
    would be flat up to the band edges and then jump to zero, which rings in the lag
    domain. ``band_weights`` (real, one per bin, e.g. that taper) re-applies a band taper
    to the cross-spectrum: coherency multiplies each factor by ``sqrt(W)`` (so the source
    factor stays the conjugate of the receiver factor), deconvolution multiplies the
    source factor by ``W``; the cross-spectrum then carries ``W`` once. Ignored for xcorr,
    whose whitened spectra already carry the taper.

    Parameters
    ----------
    spectra : ndarray, shape (n_windows, n_freq), complex
    cc_method : {"xcorr", "coherency", "deconv"}
    smoothspect_N : int
    water_level : float
        Relative floor in (0, 1).
    band_weights : ndarray, shape (n_freq,), optional
        Band taper re-applied for coherency and deconv (see above).

    Returns
    -------
    ndarray, complex64 (complex128 for complex128 input), same shape.
    """
    _check_method(cc_method)
    x = np.asarray(spectra)
    if cc_method == "xcorr":
        dtype = np.complex128 if x.dtype == np.complex128 else np.complex64
        return np.conj(x).astype(dtype, copy=False)
    power = 1 if cc_method == "coherency" else 2
    w = None
    if band_weights is not None:
        w = np.sqrt(np.asarray(band_weights, dtype=np.float64)) if power == 1 else band_weights
    return np.conj(_scaled(x, power, smoothspect_N, water_level, w))


def receiver_factor(spectra: np.ndarray, cc_method: str = "xcorr", *, smoothspect_N: int = 0,
                    water_level: float = 1e-3, band_weights: np.ndarray | None = None) -> np.ndarray:
    """Per-station factor of the receiver: ``R`` (xcorr, deconv) or ``R sqrt(W) / A_R`` (coherency).

    See :func:`source_factor` for ``A_R``, ``smoothspect_N``, ``water_level`` and
    ``band_weights`` (``W``; 1 when not given).
    """
    _check_method(cc_method)
    x = np.asarray(spectra)
    if cc_method == "coherency":
        w = None if band_weights is None else np.sqrt(np.asarray(band_weights, dtype=np.float64))
        return _scaled(x, 1, smoothspect_N, water_level, w)
    dtype = np.complex128 if x.dtype == np.complex128 else np.complex64
    return np.array(x, dtype=dtype, copy=True)


def cross_spectrum(source: np.ndarray, receiver: np.ndarray, cc_method: str = "xcorr", *,
                   smoothspect_N: int = 0, water_level: float = 1e-3,
                   band_weights: np.ndarray | None = None) -> np.ndarray:
    """Per-window cross-spectra ``source_factor(S) * receiver_factor(R)``.

    Parameters
    ----------
    source, receiver : ndarray, shape (n_windows, n_freq), complex
        Spectra of the same windows (same start times) of the two stations.
    cc_method, smoothspect_N, water_level, band_weights
        See :func:`source_factor`.

    Returns
    -------
    ndarray, shape (n_windows, n_freq), complex64
    """
    s = np.asarray(source)
    r = np.asarray(receiver)
    if s.shape != r.shape:
        raise ValueError(f"source spectra {s.shape} and receiver spectra {r.shape} differ in shape")
    kw = dict(smoothspect_N=smoothspect_N, water_level=water_level, band_weights=band_weights)
    return source_factor(s, cc_method, **kw) * receiver_factor(r, cc_method, **kw)


def accumulate_cross_spectra(source: np.ndarray, receiver: np.ndarray, cc_method: str = "xcorr", *,
                             smoothspect_N: int = 0, water_level: float = 1e-3,
                             band_weights: np.ndarray | None = None,
                             out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Sum of the per-window cross-spectra over windows (for a linear stack).

    Because the inverse FFT is linear, ``irfft(sum_w C_w) = sum_w irfft(C_w)``: one
    inverse FFT per pair and day instead of one per window.

    Parameters
    ----------
    source, receiver : ndarray, shape (n_windows, n_freq)
    cc_method, smoothspect_N, water_level, band_weights
        See :func:`source_factor`.
    out : ndarray, shape (n_freq,), optional
        Running sum to add to (in place; it is the caller's accumulator). The
        accumulation is done in the dtype of ``out`` (complex128 recommended for
        long sums).

    Returns
    -------
    (sum, n_windows)
        ``sum`` has shape (n_freq,); divide by the total count for the mean.
    """
    c = cross_spectrum(source, receiver, cc_method, smoothspect_N=smoothspect_N,
                       water_level=water_level, band_weights=band_weights)
    total = c.sum(axis=0, dtype=np.complex128 if out is None else out.dtype)
    if out is None:
        return total, c.shape[0]
    out += total
    return out, c.shape[0]


def block_cross_spectra(sources: np.ndarray, receivers: np.ndarray,
                        band: slice | None = None) -> np.ndarray:
    """Window-summed cross-spectra of all station pairs of two blocks (BLAS-3).

    ``out[f, i, j] = sum_w sources[i, w, f] * receivers[j, w, f]``, computed as one
    matrix product per frequency (the windows are the inner dimension). Pass spectra
    already multiplied by :func:`source_factor` / :func:`receiver_factor`; ``sources``
    therefore already carry the complex conjugate.

    Parameters
    ----------
    sources : ndarray, shape (n_i, n_windows, n_freq)
    receivers : ndarray, shape (n_j, n_windows, n_freq)
    band : slice, optional
        Frequency bins to compute (e.g. :func:`noisecorr.signal.spectra.band_indices`);
        default all.

    Returns
    -------
    ndarray, shape (n_band, n_i, n_j)
    """
    a = np.asarray(sources)
    b = np.asarray(receivers)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"block shapes {a.shape} and {b.shape} must be (n, n_windows, n_freq) alike")
    band = slice(None) if band is None else band
    at = np.ascontiguousarray(np.moveaxis(a[:, :, band], 2, 0))      # (F, n_i, W)
    bt = np.ascontiguousarray(np.moveaxis(b[:, :, band], 2, 0))      # (F, n_j, W)
    return np.matmul(at, np.swapaxes(bt, 1, 2))                       # (F, n_i, n_j)


def cross_spectra_to_lags(cross_spectra: np.ndarray, nfft: int, maxlag_samples: int, *,
                          workers: int | None = None) -> np.ndarray:
    """Inverse FFT of one-sided cross-spectra and cut to lags ``-L..+L``.

    Parameters
    ----------
    cross_spectra : ndarray, shape (..., nfft // 2 + 1), complex
    nfft : int
        FFT length used for the forward transforms (even or odd).
    maxlag_samples : int
        ``L``; must satisfy ``L <= (nfft - 1) // 2`` so positive and negative lags do
        not overlap.

    Returns
    -------
    ndarray, shape (..., 2 L + 1), float32 (float64 for complex128 input)
        Column ``L + k`` holds lag ``k`` samples (see :func:`lag_axis`).
    """
    c = np.asarray(cross_spectra)
    nfft = int(nfft)
    L = int(maxlag_samples)
    if c.shape[-1] != nfft // 2 + 1:
        raise ValueError(f"cross-spectra have {c.shape[-1]} bins, expected nfft // 2 + 1 = {nfft // 2 + 1}")
    if not 0 <= L <= (nfft - 1) // 2:
        raise ValueError(f"maxlag_samples={L} must be in [0, (nfft - 1) // 2 = {(nfft - 1) // 2}]")
    full = scipy.fft.irfft(c, n=nfft, axis=-1, workers=workers)
    real = np.float64 if c.dtype == np.complex128 else np.float32
    out = np.empty(full.shape[:-1] + (2 * L + 1,), dtype=real)
    out[..., L:] = full[..., : L + 1]            # lags 0 .. +L
    if L:
        out[..., :L] = full[..., nfft - L:]      # lags -L .. -1
    return out


def correlate(source: np.ndarray, receiver: np.ndarray, nfft: int, sampling_rate: float,
              maxlag: float, cc_method: str = "xcorr", *, smoothspect_N: int = 0,
              water_level: float = 1e-3, band_weights: np.ndarray | None = None,
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per-window cross-correlations of two stations' spectra.

    Parameters
    ----------
    source, receiver : ndarray, shape (n_windows, nfft // 2 + 1), complex
    nfft : int
    sampling_rate : float
        Hz.
    maxlag : float
        Largest lag in seconds (rounded to the nearest whole sample).
    cc_method, smoothspect_N, water_level, band_weights
        See :func:`source_factor`.

    Returns
    -------
    ccfs : ndarray, shape (n_windows, 2 L + 1), float32
    lags : ndarray, shape (2 L + 1,), seconds (:func:`lag_axis`)
    """
    L = int(round(float(maxlag) * float(sampling_rate)))
    c = cross_spectrum(source, receiver, cc_method, smoothspect_N=smoothspect_N,
                       water_level=water_level, band_weights=band_weights)
    return cross_spectra_to_lags(c, nfft, L), lag_axis(L, sampling_rate)


def correlate_block(source: np.ndarray, receiver: np.ndarray, nfft: int, sampling_rate: float,
                    maxlag: float, cc_method: str = "xcorr", *, band: slice | None = None,
                    smoothspect_N: int = 0, water_level: float = 1e-3,
                    band_weights: np.ndarray | None = None, rows_per_batch: int = 16,
                    workers: int = 1, pairs=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-window correlations of a block of station pairs: one batched multiply and irfft.

    The block version of :func:`correlate` (same sign convention and lag axis): the
    windows of all pairs are rows of one batched product ``source_factor * receiver_factor``
    on the carried band and one batched inverse real FFT (``scipy.fft.irfft``,
    ``workers`` threads; 1 when every core runs a worker process), ``rows_per_batch`` rows
    at a time so the full-length ``irfft`` output of only that many windows is held.

    Parameters
    ----------
    source, receiver : ndarray, shape (..., n_windows, nfft // 2 + 1), complex
        Spectra of the same windows of the two stations of each pair (leading axes: pairs);
        a window one station lacks may be all zeros (its correlation is then zero).
    nfft : int
    sampling_rate : float
        Hz.
    maxlag : float
        Largest lag, s (rounded to the nearest sample).
    cc_method, smoothspect_N, water_level, band_weights
        See :func:`source_factor`.
    band : slice, optional
        Bins outside which both spectra are exactly zero (whitened spectra:
        :func:`noisecorr.signal.chain.whitened_band`); the factors are computed on it
        padded by ``smoothspect_N + 1`` bins, so smoothed denominators and their per-window
        floor see the same values as on the full spectrum and the result equals
        :func:`correlate` on the full spectrum. Default: every bin.

    pairs : (ndarray, ndarray) of int, optional
        ``(ii, jj)``: ``source`` and ``receiver`` are then the spectra of *stations*,
        shape (n_stations, n_windows, n_freq) each (on one window grid), and pair ``p``
        is source station ``ii[p]`` with receiver station ``jj[p]`` (no per-pair copies).

    Returns
    -------
    ccfs : ndarray, shape (..., n_windows, 2 L + 1), float32 (float64 for complex128 input)
        With ``pairs``: (n_pairs, n_windows, 2 L + 1).
    lags : ndarray, shape (2 L + 1,), seconds (:func:`lag_axis`)
    """
    _check_method(cc_method)
    if pairs is not None and isinstance(source, (list, tuple)):
        # stations as a list of (n_windows, n_freq) arrays: no stacked copy of them
        shapes = {np.shape(x) for x in list(source) + list(receiver)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"pairs: station spectra must all be (n_windows, n_freq) alike, got {shapes}")
        s, r = _Stations(source), _Stations(receiver)
    else:
        s = np.asarray(source)
        r = np.asarray(receiver)
    if pairs is not None:
        ii, jj = (np.asarray(v, dtype=np.int64).ravel() for v in pairs)
        if (s.ndim != 3 or r.ndim != 3 or s.shape[1:] != r.shape[1:] or ii.shape != jj.shape
                or (ii.size and (ii.min() < 0 or ii.max() >= s.shape[0] or jj.min() < 0
                                 or jj.max() >= r.shape[0]))):
            raise ValueError(f"pairs: station spectra {s.shape} / {r.shape} must be (n_stations, "
                             "n_windows, n_freq) alike and the pair indices within them")
    elif s.shape != r.shape or s.ndim < 2:
        raise ValueError(f"source spectra {s.shape} and receiver spectra {r.shape} must have the "
                         "same shape (..., n_windows, n_freq)")
    nfft = int(nfft)
    nf = nfft // 2 + 1
    if s.shape[-1] != nf:
        raise ValueError(f"spectra have {s.shape[-1]} bins, expected nfft // 2 + 1 = {nf}")
    L = int(round(float(maxlag) * float(sampling_rate)))
    if not 0 <= L <= (nfft - 1) // 2:
        raise ValueError(f"maxlag of {L} samples must be in [0, (nfft - 1) // 2 = {(nfft - 1) // 2}]")
    band = slice(0, nf) if band is None else slice(*band.indices(nf)[:2])
    pad = 0 if cc_method == "xcorr" else int(smoothspect_N) + 1
    wide = slice(max(band.start - pad, 0), min(band.stop + pad, nf))
    inner = slice(band.start - wide.start, band.stop - wide.start)
    w = None if band_weights is None else np.asarray(band_weights)[wide]
    kw = dict(smoothspect_N=smoothspect_N, water_level=water_level, band_weights=w)
    # (pairs, windows, bins) views; a strided block (e.g. every other station) is not copied
    s3 = s if isinstance(s, _Stations) else s.reshape((-1,) + s.shape[-2:])
    r3 = r if isinstance(r, _Stations) else r.reshape((-1,) + r.shape[-2:])
    if pairs is None:
        lead = s.shape[:-1]
        ii = jj = np.arange(s3.shape[0])
    else:
        lead = (len(ii), s.shape[1])
    P, W = len(ii), s3.shape[1]
    rows = P * W
    wide_prec = np.complex128 in (s.dtype, r.dtype) if pairs is None or not isinstance(s, _Stations) \
        else any(np.asarray(x).dtype == np.complex128 for x in s.items + r.items)
    out = np.empty((rows, 2 * L + 1), dtype=np.float64 if wide_prec else np.float32)
    # a few windows at a time: the buffer and the irfft output stay small and warm
    step = max(1, int(rows_per_batch))
    buf = np.zeros((min(step, max(rows, 1)), nf), dtype=np.complex128 if wide_prec else np.complex64)
    for r0 in range(0, rows, step):
        r1 = min(r0 + step, rows)
        b = buf[:r1 - r0]
        k = r0
        while k < r1:  # the rows r0..r1 may span pairs
            p, w0 = divmod(k, W)
            w1 = min(W, w0 + r1 - k)
            b[k - r0:k - r0 + w1 - w0, band] = (
                source_factor(s3[ii[p], w0:w1, wide], cc_method, **kw)[:, inner]
                * receiver_factor(r3[jj[p], w0:w1, wide], cc_method, **kw)[:, inner])
            k += w1 - w0
        full = scipy.fft.irfft(b, n=nfft, axis=-1, workers=workers)
        out[r0:r1, L:] = full[:, :L + 1]
        if L:
            out[r0:r1, :L] = full[:, nfft - L:]
    return out.reshape(lead + (2 * L + 1,)), lag_axis(L, sampling_rate)


class _Stations:
    """A list of per-station ``(n_windows, n_freq)`` spectra indexed like a 3-D array."""

    def __init__(self, items):
        self.items = list(items)
        self.shape = (len(self.items),) + np.shape(self.items[0]) if self.items else (0, 0, 0)
        self.ndim = 3
        self.dtype = None

    def __getitem__(self, key):
        k, rest = key[0], key[1:]
        return np.asarray(self.items[k])[rest]
