"""Real FFT spectra of windowed data, batched over windows.

Layout (shared with the block-tiled BLAS-3 correlation path): spectra of one station
and component are a C-contiguous 2-D ``complex64`` array of shape
``(n_windows, nfft // 2 + 1)``; row ``w`` is the one-sided spectrum
``X[k] = sum_n x[n] exp(-2 pi i k n / nfft)`` (numpy/scipy sign convention, no scaling)
of window ``w`` at frequencies ``k * sampling_rate / nfft`` Hz.

Examples
--------
>>> import numpy as np
>>> x = np.ones((3, 100), dtype=np.float32)
>>> nfft = choose_nfft(100, zero_pad=True)
>>> nfft >= 199, rfft_windows(x, nfft).shape == (3, nfft // 2 + 1)
(True, True)
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.fft

__all__ = ["choose_nfft", "rfft_windows", "irfft_windows", "rfft_frequencies", "band_indices"]

logger = logging.getLogger(__name__)


#: Rows per block of :func:`rfft_windows`'s zero padding: pocketfft transforms rows in SIMD
#: groups (16 float32 lanes with AVX-512); fewer rows per call measured 1.6 times slower
#: (7 rows of 72,000), more rows no faster. The padded buffer is ``16 * nfft`` samples.
PAD_BLOCK_ROWS = 16


def choose_nfft(n_samples: int, zero_pad: bool = True) -> int:
    """FFT length for windows of ``n_samples`` samples.

    Parameters
    ----------
    n_samples : int
        Window length in samples (>= 1).
    zero_pad : bool
        If True, the smallest fast length ``>= 2 * n_samples - 1`` so that the
        correlation of two windows is linear (no circular wrap-around at any lag);
        otherwise the smallest fast length ``>= n_samples`` (circular correlation,
        unambiguous for ``|lag| < nfft / 2``).

    Returns
    -------
    int
        A 5-smooth length (scipy.fft.next_fast_len with ``real=True``).
    """
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    target = 2 * n_samples - 1 if zero_pad else n_samples
    return int(scipy.fft.next_fast_len(target, real=True))


def rfft_windows(windows: np.ndarray, nfft: int | None = None, *,
                 dtype: np.dtype | type = np.complex64, workers: int | None = None) -> np.ndarray:
    """One-sided spectra of each window (row) of a 2-D array.

    Parameters
    ----------
    windows : ndarray, shape (n_windows, n_samples) or (n_samples,)
        Real time series; cast to float32 (or float64 if ``dtype`` is complex128).
    nfft : int, optional
        FFT length (>= n_samples; zero padding at the end). Default: ``n_samples``.
    dtype : complex64 or complex128
        Output dtype. complex64 by default.
    workers : int, optional
        Passed to :func:`scipy.fft.rfft`.

    Returns
    -------
    ndarray, shape (n_windows, nfft // 2 + 1)
        C-contiguous spectra; the input is not modified. With zero padding, rows are
        transformed a block of :data:`PAD_BLOCK_ROWS` at a time: the same numbers as one
        call on the whole array.
    """
    x = np.asarray(windows)
    dtype = np.dtype(dtype)
    if dtype not in (np.complex64, np.complex128):
        raise ValueError(f"dtype must be complex64 or complex128, got {dtype}")
    real = np.float32 if dtype == np.complex64 else np.float64
    n = x.shape[-1]
    nfft = n if nfft is None else int(nfft)
    if nfft < n:
        raise ValueError(f"nfft ({nfft}) must be >= the window length ({n})")
    if x.ndim != 2 or nfft == n or x.shape[0] <= 1:
        spec = scipy.fft.rfft(x.astype(real, copy=False), n=nfft, axis=-1, workers=workers)
        return np.ascontiguousarray(spec, dtype=dtype)
    # zero padding: a block of rows at a time through one small padded buffer, instead of
    # scipy's padded copy of the whole array (as large as the spectra: fresh pages on every
    # call, whose faults took as long as the transform on a day's 189 windows); every row is
    # transformed on its own, so the same numbers (tested)
    out = np.empty((x.shape[0], nfft // 2 + 1), dtype=dtype)
    rows = PAD_BLOCK_ROWS
    buf = np.zeros((min(rows, x.shape[0]), nfft), dtype=real)
    for i in range(0, x.shape[0], rows):
        j = min(i + rows, x.shape[0])
        buf[:j - i, :n] = x[i:j]
        out[i:j] = scipy.fft.rfft(buf[:j - i], axis=-1, workers=workers)
    return out


def irfft_windows(spectra: np.ndarray, nfft: int, *, workers: int | None = None) -> np.ndarray:
    """Inverse of :func:`rfft_windows` along the last axis (length ``nfft``), real output.

    float32 for complex64 input, float64 for complex128 input.
    """
    spec = np.asarray(spectra)
    out = scipy.fft.irfft(spec, n=int(nfft), axis=-1, workers=workers)
    return out.astype(np.float32 if spec.dtype == np.complex64 else np.float64, copy=False)


def rfft_frequencies(nfft: int, sampling_rate: float) -> np.ndarray:
    """Frequencies in Hz of the ``nfft // 2 + 1`` one-sided spectral bins (float64)."""
    return scipy.fft.rfftfreq(int(nfft), d=1.0 / float(sampling_rate))


def band_indices(nfft: int, sampling_rate: float, freqmin: float, freqmax: float) -> slice:
    """Slice of the spectral bins with ``freqmin <= f <= freqmax``.

    Whitened spectra are exactly zero outside this slice (see
    :func:`noisecorr.signal.normalize.whiten`), so the cross-spectra of a linear
    stack only need computing inside it.
    """
    freqs = rfft_frequencies(nfft, sampling_rate)
    lo = int(np.searchsorted(freqs, freqmin, side="left"))
    hi = int(np.searchsorted(freqs, freqmax, side="right"))
    return slice(lo, hi)
