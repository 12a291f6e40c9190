"""Cutting a continuous trace into correlation windows (Bensen et al. 2007, sec. 3).

Windows of ``cc_len`` seconds start every ``step`` seconds from the first sample, and
the last window that fits completely is kept: a trace of ``npts`` samples gives
``(npts - n_win) // n_step + 1`` windows (a peer code drops that last one).

Examples
--------
>>> import numpy as np
>>> w = cut_windows(np.arange(10, dtype=np.float32), sampling_rate=1.0, cc_len=4, step=3)
>>> w.data.tolist(), w.starttimes.tolist()
([[0.0, 1.0, 2.0, 3.0], [3.0, 4.0, 5.0, 6.0], [6.0, 7.0, 8.0, 9.0]], [0.0, 3.0, 6.0])
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from noisecorr.signal.filters import tukey

__all__ = ["Windows", "window_start_indices", "cut_windows", "cut_detrended_windows", "detrend_linear",
           "detrend_windows",
           "taper_windows",
           "common_windows", "REJECT_REASONS"]

logger = logging.getLogger(__name__)

#: Reasons a window can be rejected, in the order they are tested.
REJECT_REASONS = ("gap", "flat", "outlier")


@dataclass(frozen=True)
class Windows:
    """Accepted windows of one trace.

    Attributes
    ----------
    data : ndarray, shape (n_windows, n_samples), float32
    starttimes : ndarray, shape (n_windows,), float64
        Start time of each window (same time base as the ``starttime`` passed in,
        e.g. POSIX seconds).
    sampling_rate : float
        Hz.
    n_candidates : int
        Windows that fitted before rejection.
    rejected : dict
        Number of rejected windows per reason in :data:`REJECT_REASONS` (each window
        is counted once, under the first reason that applies).
    """

    data: np.ndarray
    starttimes: np.ndarray
    sampling_rate: float
    n_candidates: int
    rejected: dict = field(default_factory=dict)

    @property
    def n_windows(self) -> int:
        return int(self.data.shape[0])


def window_start_indices(npts: int, win_samples: int, step_samples: int) -> np.ndarray:
    """Start sample of every window that fits: ``0, step, 2 step, ...`` up to ``npts - win``.

    Includes the last window that fits, e.g. ``npts=10, win=4, step=3`` gives
    ``[0, 3, 6]``.
    """
    npts, win, step = int(npts), int(win_samples), int(step_samples)
    if win < 1 or step < 1:
        raise ValueError(f"window ({win}) and step ({step}) must be >= 1 sample")
    if npts < win:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, npts - win + 1, step, dtype=np.int64)


def cut_windows(data: np.ndarray, sampling_rate: float, cc_len: float, step: float, *,
                starttime: float = 0.0, gap_mask: np.ndarray | None = None,
                max_over_std: float | None = None, outlier_reference: str = "window") -> Windows:
    """Cut a trace into windows and reject bad ones.

    Parameters
    ----------
    data : ndarray, shape (npts,)
        Continuous samples on a regular grid.
    sampling_rate : float
        Hz.
    cc_len, step : float
        Window length and step in seconds (rounded to whole samples).
    starttime : float
        Time of ``data[0]`` (e.g. POSIX seconds); window start times are
        ``starttime + index / sampling_rate``.
    gap_mask : ndarray of bool, shape (npts,), optional
        True where the sample was missing (zero-filled); any window touching a
        masked sample is rejected as ``"gap"``.
    max_over_std : float, optional
        Reject as ``"outlier"`` a window with ``max|x - mean| > max_over_std * std``
        (NoisePy's amplitude criterion for earthquakes and glitches). None or inf
        disables it. Windows with zero standard deviation are rejected as ``"flat"``.
    outlier_reference : {"window", "chunk"}
        ``"window"`` (default): the criterion above, against the window's own standard
        deviation. ``"chunk"``: NoisePy's (``cut_trace_make_stat``): reject a window with
        ``max|x| >= max_over_std * std`` where ``std`` is that of the whole trace (its
        unmasked samples). The window criterion keeps a long earthquake's coda windows
        when they are all large; the chunk criterion rejects every window much louder
        than the chunk, and depends on how loud the rest of the chunk is.

    Returns
    -------
    Windows
    """
    return _cut(data, sampling_rate, cc_len, step, starttime, gap_mask, max_over_std,
                outlier_reference, None)


def cut_detrended_windows(data: np.ndarray, sampling_rate: float, cc_len: float, step: float,
                          taper: np.ndarray, *, starttime: float = 0.0, gap_mask: np.ndarray | None = None,
                          max_over_std: float | None = None, outlier_reference: str = "window") -> Windows:
    """:func:`cut_windows`, with the accepted windows' mean and linear trend removed and
    multiplied by ``taper``, in the same pass.

    ``data`` of the result holds ``detrend_windows(cut_windows(...).data) * taper``, the
    same float32 samples (tested), without the intermediate copies: each block of candidate
    windows is read once into a float64 block that stays in the processor's cache, which
    gives the rejection statistics and the detrended samples.

    Parameters
    ----------
    taper : ndarray, float32, shape (round(cc_len * sampling_rate),)
        Multiplied into every window after detrending (e.g.
        :func:`noisecorr.signal.noisepy_compat.window_taper`).
    data, sampling_rate, cc_len, step, starttime, gap_mask, max_over_std, outlier_reference
        See :func:`cut_windows`.

    Returns
    -------
    Windows
    """
    return _cut(data, sampling_rate, cc_len, step, starttime, gap_mask, max_over_std,
                outlier_reference, np.asarray(taper, dtype=np.float32))


def _cut(data, sampling_rate, cc_len, step, starttime, gap_mask, max_over_std, outlier_reference, taper):
    """:func:`cut_windows` (``taper`` None: the raw samples) and :func:`cut_detrended_windows`."""
    x = np.asarray(data)
    if x.ndim != 1:
        raise ValueError(f"data must be 1-D, got shape {x.shape}")
    if outlier_reference not in ("window", "chunk"):
        raise ValueError(f"outlier_reference={outlier_reference!r} is not one of ['window', 'chunk']")
    fs = float(sampling_rate)
    win = int(round(cc_len * fs))
    stp = int(round(step * fs))
    starts = window_start_indices(x.size, win, stp)
    rejected = {reason: 0 for reason in REJECT_REASONS}
    if starts.size == 0:
        return Windows(np.zeros((0, max(win, 0)), np.float32), np.zeros(0), fs, 0, rejected)
    if taper is not None and taper.shape != (win,):
        raise ValueError(f"taper has shape {taper.shape}, the windows {win} samples")
    # the candidate windows as a view (starts are 0, stp, 2 stp, ...): no copy
    view = sliding_window_view(x, win)[::stp][:starts.size]
    keep = np.ones(starts.size, dtype=bool)
    if gap_mask is not None:
        mask = np.asarray(gap_mask, dtype=bool)
        if mask.shape != x.shape:
            raise ValueError(f"gap_mask shape {mask.shape} differs from data shape {x.shape}")
        # number of masked samples in each window from a cumulative sum (O(npts))
        csum = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
        bad = (csum[starts + win] - csum[starts]) > 0
        rejected["gap"] = int(np.count_nonzero(bad))
        keep &= ~bad
    limit = None
    if max_over_std is not None and np.isfinite(max_over_std):
        limit = float(max_over_std)
        if outlier_reference == "chunk":
            good = x if gap_mask is None else x[~np.asarray(gap_mask, dtype=bool)]
            chunk_std = float(np.std(good, dtype=np.float64)) if good.size else 0.0
    if taper is not None:
        k, ksq = _centred_index(win)                                 # as detrend_linear
    out = np.empty((int(np.count_nonzero(keep)), win), dtype=np.float32)
    n_out = 0
    scratch = None
    for rows in _row_blocks(*view.shape):   # per block of rows: the float64 temporaries stay in cache
        ok = keep[rows]
        if not ok.any():
            continue
        # mean and standard deviation in float64 (numpy's std: the mean, then the mean square
        # of the deviations), the same numbers as view.std(axis=1, dtype=np.float64) to rounding
        xd = view[rows].astype(np.float64)
        if scratch is None or scratch.shape[0] < xd.shape[0]:
            scratch = np.empty(xd.shape)
        tmp = scratch[:xd.shape[0]]
        xd -= xd.mean(axis=1, keepdims=True)
        std = np.sqrt(np.square(xd, out=tmp).sum(axis=1) / win)
        flat = ok & ~(std > 0)
        rejected["flat"] += int(np.count_nonzero(flat))
        ok &= ~flat
        if limit is not None:
            if outlier_reference == "window":
                outlier = ok & (np.abs(xd, out=tmp).max(axis=1) > limit * std)
            else:
                outlier = ok & ~(np.max(np.abs(view[rows]), axis=1) < limit * chunk_std)
            rejected["outlier"] += int(np.count_nonzero(outlier))
            ok &= ~outlier
        keep[rows] = ok
        n = int(np.count_nonzero(ok))
        if not n:
            continue
        dest = out[n_out:n_out + n]
        if taper is None:
            dest[...] = view[rows][ok]
        else:
            # detrend_linear's operations on the demeaned rows, then float32 times the taper
            slope = np.multiply(xd, k, out=tmp).sum(axis=-1, keepdims=True) / ksq
            xd -= np.multiply(slope, k, out=tmp)
            dest[...] = xd[ok] if n < ok.size else xd
            dest *= taper
        n_out += n
    if any(rejected.values()):
        logger.debug("rejected windows: %s of %d", rejected, starts.size)
    return Windows(
        data=out[:n_out],
        starttimes=float(starttime) + starts[keep] / fs,
        sampling_rate=fs,
        n_candidates=int(starts.size),
        rejected=rejected,
    )


def detrend_linear(x: np.ndarray, *, overwrite_x: bool = False) -> np.ndarray:
    """Remove the least-squares line ``a + b k`` (k the sample index) from every row, in float64.

    Same result as ``scipy.signal.detrend(x, type="linear")`` (to rounding, about 1e-16 of
    the data), by the closed form of the fit: with ``k`` centred on the row's middle the
    two normal equations decouple, ``a = mean(x)`` and ``b = sum(x k) / sum(k**2)``.
    That is two passes over the data instead of a least-squares solve (40 times faster
    for a day at 20 Hz). A row of one sample is demeaned.

    Parameters
    ----------
    x : ndarray, (..., n)
    overwrite_x : bool
        If ``x`` is a float64 array, detrend it in place and return it (the same numbers).

    Returns
    -------
    ndarray, float64, same shape.
    """
    xd = np.asarray(x, dtype=np.float64)
    n = xd.shape[-1]
    mean = xd.mean(axis=-1, keepdims=True)
    if overwrite_x and xd is x:
        xd -= mean
        out = xd
    else:
        out = xd - mean
    if n < 2:
        return out
    k, ksq = _centred_index(n)
    # numpy's pairwise sums, not a BLAS dot: those split the sum by the number of BLAS
    # threads, and results must not depend on the mapping or the process count. One
    # temporary holds each product in turn (the same values as new arrays, fewer pages)
    tmp = np.empty_like(out)
    slope = np.multiply(out, k, out=tmp).sum(axis=-1, keepdims=True) / ksq
    out -= np.multiply(slope, k, out=tmp)
    return out


@functools.lru_cache(maxsize=4)
def _centred_index(n: int) -> tuple[np.ndarray, float]:
    """``(k, sum(k**2))`` with ``k = arange(n) - (n - 1) / 2`` (float64, read-only), kept for
    the few lengths a run detrends (a chunk's, a window's)."""
    k = np.arange(n, dtype=np.float64)
    k -= (n - 1) / 2.0
    k.flags.writeable = False
    return k, float(np.square(k).sum())


def detrend_windows(windows: np.ndarray) -> np.ndarray:
    """Remove the mean and the least-squares linear trend of every row (float32 copy,
    computed in float64 by :func:`detrend_linear`, a block of rows at a time so that the
    float64 temporaries stay in the processor's cache: the same samples as one call on the
    whole array, since every row is reduced on its own)."""
    x = np.asarray(windows)
    if x.ndim != 2:
        return detrend_linear(x).astype(np.float32)
    out = np.empty(x.shape, dtype=np.float32)
    for rows in _row_blocks(*x.shape):
        out[rows] = detrend_linear(x[rows])
    return out


#: Bytes of float64 temporaries per block of rows in :func:`_row_blocks` (fits in L2 cache).
BLOCK_BYTES = 1 << 20


def _row_blocks(n_rows: int, row_len: int):
    """Slices of consecutive rows whose float64 copy takes about :data:`BLOCK_BYTES`."""
    step = max(1, BLOCK_BYTES // (8 * max(int(row_len), 1)))
    for i in range(0, int(n_rows), step):
        yield slice(i, min(i + step, int(n_rows)))


def taper_windows(windows: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Multiply every row by a Tukey (cosine) taper; ``fraction`` of the row is tapered at each end."""
    x = np.asarray(windows, dtype=np.float32)
    if not 0 <= fraction <= 0.5:
        raise ValueError(f"fraction must be in [0, 0.5], got {fraction!r}")
    taper = tukey(x.shape[-1], alpha=2 * fraction).astype(np.float32)
    return x * taper


def common_windows(starts_a: np.ndarray, starts_b: np.ndarray, sampling_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the windows two stations share (same start time to within half a sample).

    Returns ``(idx_a, idx_b)`` such that ``starts_a[idx_a] == starts_b[idx_b]``
    (in increasing time).
    """
    fs = float(sampling_rate)
    a = np.round(np.asarray(starts_a, dtype=np.float64) * fs).astype(np.int64)
    b = np.round(np.asarray(starts_b, dtype=np.float64) * fs).astype(np.int64)
    _, ia, ib = np.intersect1d(a, b, assume_unique=False, return_indices=True)
    return ia, ib
