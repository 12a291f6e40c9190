"""The numerical kernel of the block-tiled correlation (pure numpy, no engine).

1. :func:`station_factors`: once per station and chunk, the spectral factors of
   :func:`noisecorr.signal.correlate.source_factor` / ``receiver_factor``, computed on the
   whitened band padded by ``smoothspect_N + 1`` bins (so smoothed denominators see the same
   zeros as on the full spectrum) and cut to the *carried band* (:func:`carried_band`).
   Whitened spectra are exactly zero outside ``freqmin..freqmax``, hence so are the factors
   and every cross-spectrum: dropping those bins changes nothing. With ``freq_norm="none"``
   the spectra are not band-limited and the full band is carried (same result as the
   per-window path, about 5x more work and traffic than a whitened run at 0.05-2 Hz / 20 Hz).
2. :func:`assemble_block`: the factors of a block of stations (stored frequency-major,
   ``(n_freq, n_windows)`` per station) on a common window grid,
   ``(n_freq, n_stations, n_windows)`` complex64, zeros where a station lacks a window,
   plus the 0/1 window mask. A tile is computed as one source block times receiver
   *panels* of a few dozen stations, which bounds the cross-spectra held at once.
3. :func:`tile_cross_spectra`: for each frequency ``S_I S_J^T`` over the window dimension
   (one BLAS-3 ``np.matmul``; the receiver panel is assembled already transposed,
   ``(n_freq, n_windows, n_stations)``); windows missing at either station are zero, so
   only common windows count; ``mask_I @ mask_J^T`` gives each pair's number of common
   windows.
4. :func:`pairs_to_lags`: the window-summed cross-spectra of the tile's pairs, placed back
   on the one-sided grid, one batched inverse real FFT per pair (linear stack: the sum
   over windows commutes with the inverse FFT), cut to ``-maxlag..+maxlag`` with the lag
   axis of :func:`noisecorr.signal.correlate.cross_spectra_to_lags`.

:func:`tile_window_ccfs` is the per-window variant for phase-weighted and robust stacks.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from noisecorr.signal.chain import cc_band_weights, whitened_band
from noisecorr.signal.correlate import receiver_factor, source_factor

__all__ = ["carried_band", "station_factors", "window_grid", "assemble_block",
           "tile_cross_spectra", "tile_pair_index", "pairs_to_lags", "tile_window_ccfs"]


def carried_band(params, nfft: int) -> slice:
    """Spectral bins that can be non-zero after whitening (all bins for ``freq_norm="none"``)."""
    return whitened_band(params, nfft)


def station_factors(spectra: np.ndarray, params, nfft: int) -> tuple:
    """In-band factors of one station's spectra.

    Parameters
    ----------
    spectra : ndarray, shape (n_windows, nfft // 2 + 1), complex
        Whitened spectra (:func:`noisecorr.signal.chain.station_spectra`).
    params : CorrelationParams
        ``cc_method``, ``smoothspect_N``, ``spectral_water_level``, band, ``freq_norm``.
    nfft : int

    Returns
    -------
    (receiver, source, band)
        ``receiver``: ``receiver_factor`` on ``band``, complex64 C-contiguous
        ``(n_windows, n_band)``; ``source``: ``source_factor`` on ``band`` for
        ``cc_method="deconv"``, else None (then ``source == conj(receiver)``).
    """
    x = np.asarray(spectra)
    n_freq = x.shape[-1]
    band = carried_band(params, nfft)
    pad = params.smoothspect_N + 1
    wide = slice(max(band.start - pad, 0), min(band.stop + pad, n_freq))
    inner = slice(band.start - wide.start, band.stop - wide.start)
    xw = x[:, wide]
    w = cc_band_weights(params, nfft)
    kw = dict(smoothspect_N=params.smoothspect_N, water_level=params.spectral_water_level,
              band_weights=None if w is None else w[wide])
    rcv = receiver_factor(xw, params.cc_method, **kw)[:, inner]
    rcv = np.ascontiguousarray(rcv, dtype=np.complex64)
    src = None
    if params.cc_method == "deconv":
        src = np.ascontiguousarray(source_factor(xw, params.cc_method, **kw)[:, inner],
                                   dtype=np.complex64)
    return rcv, src, band


def window_grid(starttimes_list, sampling_rate: float) -> np.ndarray:
    """Sorted union of window start times as integer sample numbers (int64)."""
    fs = float(sampling_rate)
    grids = [np.round(np.asarray(t, dtype=np.float64) * fs).astype(np.int64) for t in starttimes_list]
    if not grids:
        return np.zeros(0, np.int64)
    return np.unique(np.concatenate(grids))


def assemble_block(factors, starttimes, grid: np.ndarray, sampling_rate: float, n_band: int,
                   conjugate: bool = False, stations_last: bool = False) -> tuple:
    """Stack station factors on a common window grid.

    Parameters
    ----------
    factors : list of ndarray (n_band, n_windows_k) or None
        One per station of the block, frequency-major (the transpose of
        :func:`station_factors`' output); None: no data this chunk.
    starttimes : list of ndarray
        Window start times (s) of each station.
    grid : ndarray of int64
        :func:`window_grid` of the tile.
    conjugate : bool
        Store ``conj(factors)`` (source side of xcorr/coherency).
    stations_last : bool
        Lay the block out ``(n_band, n_grid, n_stations)`` instead: the receiver operand of
        :func:`tile_cross_spectra`, which OpenBLAS multiplies 10-30 % faster as a plain
        (not transposed) matrix. Built a few dozen frequencies at a time through a small
        ``(n_stations, chunk, n_grid)`` buffer, so no second full-size copy is held.

    Returns
    -------
    (block, mask)
        ``block`` complex64 ``(n_band, n_stations, n_grid)`` (``stations_last``:
        ``(n_band, n_grid, n_stations)``); ``mask`` float32 ``(n_stations, n_grid)``, 1 where
        the station has the window.
    """
    n, w = len(factors), len(grid)
    mask = np.zeros((n, w), dtype=np.float32)
    fs = float(sampling_rate)
    present = []  # (k, factors, grid columns or None for every window)
    for k, (f, t) in enumerate(zip(factors, starttimes)):
        if f is None or len(t) == 0:
            continue
        r = np.searchsorted(grid, np.round(np.asarray(t, dtype=np.float64) * fs).astype(np.int64))
        mask[k, r] = 1.0
        present.append((k, f, None if len(r) == w else r))

    def fill(dest, f0, f1):  # dest (n, f1 - f0, w); untouched where a station lacks a window
        for k, f, r in present:
            src = f[f0:f1]
            if r is None:  # every window: one strided copy
                if conjugate:
                    np.conjugate(src, out=dest[k])
                else:
                    dest[k] = src
            else:
                dest[k][:, r] = np.conj(src) if conjugate else src

    if not stations_last:
        block = np.zeros((n_band, n, w), dtype=np.complex64)
        fill(block.transpose(1, 0, 2), 0, n_band)
        return block, mask
    complete = len(present) == n and all(r is None for _, _, r in present)
    block = np.empty((n_band, w, n), dtype=np.complex64)
    chunk = max(1, min(n_band, (1 << 20) // max(n * w * 8, 1)))  # ~1 MB, stays in cache
    buf = np.zeros((n, chunk, w), dtype=np.complex64)
    for f0 in range(0, n_band, chunk):
        f1 = min(f0 + chunk, n_band)
        part = buf[:, :f1 - f0]
        if not complete:
            part[...] = 0
        fill(part, f0, f1)
        block[f0:f1] = part.transpose(1, 2, 0)
    return block, mask


def tile_cross_spectra(src_block: np.ndarray, rcv_block: np.ndarray, out=None) -> np.ndarray:
    """Window-summed cross-spectra of all pairs of a tile (BLAS-3).

    ``out[f, i, j] = sum_w src_block[f, i, w] * rcv_block[f, w, j]``: one complex matrix
    product per frequency over the window dimension (``np.matmul``, OpenBLAS ``cgemm``).

    Parameters
    ----------
    src_block : ndarray, complex64 (n_band, n_i, n_windows)
        Source factors (already conjugated), :func:`assemble_block`.
    rcv_block : ndarray, complex64 (n_band, n_windows, n_j)
        Receiver factors, :func:`assemble_block` with ``stations_last=True``.

    Returns
    -------
    ndarray, complex64 (n_band, n_i, n_j)
    """
    return np.matmul(src_block, rcv_block, out=out)


def tile_pair_index(n_i: int, n_j: int, diagonal: bool, offset_i: int = 0, offset_j: int = 0):
    """Row/column indices of the pairs of a tile (``i < j`` on a diagonal tile), row-major."""
    if diagonal:
        ii, jj = np.triu_indices(n_i, k=1)
    else:
        ii, jj = np.divmod(np.arange(n_i * n_j), n_j)
    return ii.astype(np.int64) + offset_i, jj.astype(np.int64) + offset_j


def pairs_to_lags(cross: np.ndarray, ii: np.ndarray, jj: np.ndarray, band: slice, nfft: int,
                  maxlag_samples: int, pair_batch: int = 64, workers: int | None = None) -> np.ndarray:
    """Inverse FFT of selected pairs' summed cross-spectra, cut to ``-L..+L``.

    Parameters
    ----------
    cross : ndarray, (n_band, n_i, n_j) complex
        :func:`tile_cross_spectra`.
    ii, jj : ndarray of int
        Pairs to transform.
    band : slice
        Bins of the one-sided grid that ``cross`` covers.
    nfft, maxlag_samples : int
    pair_batch : int
        Pairs per batched ``irfft`` (bounds memory).

    Returns
    -------
    ndarray, float32 (n_pairs, 2 L + 1); column ``L + k`` is lag ``k`` samples.
    """
    L = int(maxlag_samples)
    nf = int(nfft) // 2 + 1
    if not 0 <= L <= (nfft - 1) // 2:
        raise ValueError(f"maxlag_samples={L} must be in [0, (nfft - 1) // 2]")
    n = len(ii)
    out = np.empty((n, 2 * L + 1), dtype=np.float32)
    flat = cross.reshape(cross.shape[0], -1)
    lin = np.asarray(ii) * cross.shape[2] + np.asarray(jj)
    buf = np.zeros((min(pair_batch, max(n, 1)), nf), dtype=np.complex64)
    for p0 in range(0, n, pair_batch):
        p1 = min(p0 + pair_batch, n)
        b = buf[:p1 - p0]
        b[:, band] = flat[:, lin[p0:p1]].T
        full = scipy.fft.irfft(b, n=nfft, axis=-1, workers=workers)
        out[p0:p1, L:] = full[:, :L + 1]
        if L:
            out[p0:p1, :L] = full[:, nfft - L:]
    return out


def tile_window_ccfs(src_block: np.ndarray, rcv_block: np.ndarray, i: int, j: int,
                     common: np.ndarray, band: slice, nfft: int, maxlag_samples: int) -> np.ndarray:
    """Per-window correlations of one pair of a tile (PWS / robust stacks).

    ``common`` are the grid columns both stations have; returns float32
    ``(len(common), 2 L + 1)``.
    """
    L = int(maxlag_samples)
    nf = int(nfft) // 2 + 1
    spec = np.zeros((len(common), nf), dtype=np.complex64)
    spec[:, band] = (src_block[:, i, common] * rcv_block[:, j, common]).T
    full = scipy.fft.irfft(spec, n=nfft, axis=-1)
    out = np.empty((len(common), 2 * L + 1), dtype=np.float32)
    out[:, L:] = full[:, :L + 1]
    if L:
        out[:, :L] = full[:, nfft - L:]
    return out
