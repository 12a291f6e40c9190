"""Stacking of per-window cross-correlations.

* linear: the mean over windows;
* phase-weighted (PWS, Schimmel & Paulssen 1997, GJI 130, 497): the linear stack
  multiplied by the phase coherence ``|1/N sum_j exp(i phi_j(t))| ** pws_power``
  of the analytic signals of the windows;
* robust (Pavlis & Vernon 2010, Computers & Geosciences 36, 2010; as used in NoisePy):
  iteratively reweighted mean where each window's weight is
  ``|d_j . b| / (||d_j|| ||d_j - (d_j . b) b||)`` for the unit-norm current stack ``b``.

Each function takes ``ccfs`` of shape ``(n_windows, n_lags)`` and returns
``(stack, n_windows_used)``; an empty input gives a zero stack and count 0 (logged),
never NaN.

Examples
--------
>>> import numpy as np
>>> ccfs = np.array([[0., 1., 0.], [0., 3., 0.]], dtype=np.float32)
>>> linear_stack(ccfs)
(array([0., 2., 0.], dtype=float32), 2)

Streaming and merging
---------------------
:class:`StackState` is the partial stack of any subset of windows, so windows may arrive
chunk by chunk and partial results of different processes may be merged
(``a.merge(b)`` or ``a + b``), in any order:

* linear: the window count and the sum of the CCFs;
* pws: the same plus the sum over windows of the unit phasors ``exp(i phi_j(t))`` of the
  analytic signals (Schimmel & Paulssen 1997), so the stack is
  ``linear_mean * |phasor_mean| ** pws_power`` exactly as :func:`pws_stack` over all
  windows; memory is ``O(n_lags)``, not ``O(n_windows * n_lags)``;
* robust: the Pavlis & Vernon re-weighting needs every window of the set it stacks, so it
  cannot be streamed exactly. A state keeps *pieces*: each batch of windows given to
  :meth:`StackState.from_windows` (one chunk of one pair, or its part in one sub-stack span)
  is reduced at once to its robust stack and window count; the stack of a state is the
  robust stack of its pieces, each piece's weight multiplied by its window count
  (:func:`robust_weights` with ``counts``). This two-level stack is exact when the state holds
  one piece (e.g. a sub-stack span inside one chunk) and otherwise is the robust stack of
  robust chunk stacks, as NoisePy's stacking step computes the robust stack of its stored
  sub-stacks. Memory is ``O(n_pieces * n_lags)``.

Sub-stacks sit on a calendar grid: span ``k`` covers ``[origin + k * substack_len,
origin + (k + 1) * substack_len)`` and a window belongs to the span holding its start time,
so span ``k`` of every pair covers the same interval. The default origin is
1970-01-01T00:00:00 UTC (POSIX 0, a midnight), so spans of a length that divides a day start
at midnight UTC and every ``substack_len`` after it.

>>> a = StackState.from_windows(ccfs[:1], "pws")
>>> b = StackState.from_windows(ccfs[1:], "pws")
>>> (a + b).n, np.allclose((a + b).result(2.0)[0], pws_stack(ccfs)[0])
(2, True)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

__all__ = ["STACK_METHODS", "DEFAULT_SUBSTACK_ORIGIN", "StackState", "check_windows", "linear_stack",
           "pws_stack", "robust_stack", "robust_weights", "stack", "stack_memory_bytes", "substack", "substack_index",
           "substack_states", "unit_phasors", "analytic_signal", "unit_phasors_nd",
           "pws_stack_block", "robust_stack_block", "hilbert_transform", "phasor_parts",
           "substack_states_block"]

logger = logging.getLogger(__name__)

STACK_METHODS = ("linear", "pws", "robust")

#: Origin of the sub-stack grid when none is configured: 1970-01-01T00:00:00 UTC (POSIX s).
DEFAULT_SUBSTACK_ORIGIN = 0.0


def check_windows(ccfs: np.ndarray) -> np.ndarray:
    """``ccfs`` as an array of shape ``(n_windows, n_lags)`` with finite values, or the
    ValueError every stacking function raises."""
    return _as_2d(ccfs)


def _as_2d(ccfs: np.ndarray) -> np.ndarray:
    x = np.asarray(ccfs)
    if x.ndim != 2:
        raise ValueError(f"ccfs must be 2-D (n_windows, n_lags), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("ccfs contain NaN or inf")
    return x


def _empty(x: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    logger.warning("%s stack of zero windows: returning zeros", name)
    return np.zeros(x.shape[1], dtype=np.result_type(x.dtype, np.float32)), 0


def linear_stack(ccfs: np.ndarray) -> tuple[np.ndarray, int]:
    """Mean over windows. Returns ``(stack, n_windows)``."""
    x = _as_2d(ccfs)
    if x.shape[0] == 0:
        return _empty(x, "linear")
    dtype = np.result_type(x.dtype, np.float32)
    return x.mean(axis=0, dtype=np.float64).astype(dtype), x.shape[0]


def pws_stack(ccfs: np.ndarray, pws_power: float = 2.0, smooth_samples: int = 0) -> tuple[np.ndarray, int]:
    """Phase-weighted stack (Schimmel & Paulssen 1997, eq. 4).

    ``pws(t) = linear(t) * |1/N sum_j exp(i phi_j(t))| ** pws_power`` where
    ``phi_j`` is the instantaneous phase of window ``j``'s analytic signal (Hilbert
    transform along the lag axis). ``pws_power = 0`` gives the linear stack.

    Parameters
    ----------
    ccfs : ndarray, shape (n_windows, n_lags)
    pws_power : float
        Exponent ``nu`` of the phase coherence (>= 0).
    smooth_samples : int
        Optional running-mean half-width (samples) applied to the coherence
        (Schimmel & Paulssen's time gate); 0 disables it.

    Returns
    -------
    (stack, n_windows)
    """
    x = _as_2d(ccfs)
    if pws_power < 0:
        raise ValueError(f"pws_power must be >= 0, got {pws_power!r}")
    if x.shape[0] == 0:
        return _empty(x, "phase-weighted")
    import scipy.signal  # (not at module level: ~0.7 s of imports a linear run never needs)

    analytic = scipy.signal.hilbert(x.astype(np.float64, copy=False), axis=-1)
    amp = np.abs(analytic)
    phasor = np.zeros_like(analytic)
    np.divide(analytic, amp, out=phasor, where=amp > 0)
    coherence = np.abs(phasor.mean(axis=0))
    if smooth_samples:
        from scipy.ndimage import uniform_filter1d

        coherence = uniform_filter1d(coherence, size=2 * int(smooth_samples) + 1, mode="nearest")
    linear, n = linear_stack(x)
    return (linear * coherence**pws_power).astype(linear.dtype), n


def unit_phasors(ccfs: np.ndarray) -> np.ndarray:
    """Unit phasors ``exp(i phi_j(t))`` of the analytic signals of the windows.

    The analytic signal is ``x + i H[x]`` along the lag axis (:func:`scipy.signal.hilbert`);
    where it is exactly zero the phasor is 0 (it adds no phase to the coherence).

    Parameters
    ----------
    ccfs : ndarray, shape (n_windows, n_lags)

    Returns
    -------
    ndarray, complex128, shape (n_windows, n_lags), ``|value| = 1`` or 0
    """
    x = _as_2d(ccfs)
    import scipy.signal  # (not at module level: ~0.7 s of imports a linear run never needs)

    analytic = scipy.signal.hilbert(x.astype(np.float64, copy=False), axis=-1)
    amp = np.abs(analytic)
    phasor = np.zeros_like(analytic)
    np.divide(analytic, amp, out=phasor, where=amp > 0)
    return phasor


def robust_weights(ccfs: np.ndarray, epsilon: float = 1e-5, maxiter: int = 20,
                   counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Weights of the robust stack (Pavlis & Vernon 2010, eqs. 5-7).

    Starting from the median, iterate: ``b = stack / ||stack||``;
    ``w_j = |d_j . b| / (||d_j|| ||d_j - (d_j . b) b||)``, normalised to sum 1;
    ``stack = sum_j w_j d_j``; stop when ``||stack_new - stack_old||_1 /
    (||stack_new||_2 n_windows) < epsilon`` (NoisePy's criterion) or after ``maxiter``.

    Parameters
    ----------
    ccfs : ndarray, shape (n_windows, n_lags)
        The traces ``d_j`` (windows, or stacks of groups of windows).
    epsilon, maxiter
        Convergence criterion and iteration limit.
    counts : ndarray of int, shape (n_windows,), optional
        Number of windows each row stands for (rows that are stacks themselves): each
        weight is multiplied by its count before normalisation, so a stack of 40 windows
        weighs 40 times a single window of the same fit. Default: 1 each.

    Returns
    -------
    stack : ndarray, shape (n_lags,), float64
    weights : ndarray, shape (n_windows,), float64, summing to 1
    n_iter : int
    """
    x = _as_2d(ccfs).astype(np.float64, copy=False)
    n = x.shape[0]
    if n == 0:
        raise ValueError("robust_weights needs at least one window")
    if counts is None:
        mult = np.ones(n)
    else:
        mult = np.asarray(counts, dtype=np.float64)
        if mult.shape != (n,) or not np.all(mult > 0):
            raise ValueError(f"counts must be {n} positive numbers, got {counts!r}")
    norms = np.linalg.norm(x, axis=1)
    tiny = np.finfo(np.float64).tiny
    new = np.median(x, axis=0)
    if not np.any(new):
        new = mult @ x / mult.sum()
    w = mult / mult.sum()
    it = 0
    for it in range(1, int(maxiter) + 1):
        old = new
        bnorm = np.linalg.norm(old)
        if bnorm == 0:
            break
        b = old / bnorm
        proj = x @ b
        resid = np.linalg.norm(x - proj[:, None] * b[None, :], axis=1)
        # a window equal to the stack has zero residual: floor it so its weight is large, not inf
        resid = np.maximum(resid, 1e-8 * norms)
        w = mult * np.abs(proj) / np.maximum(norms * resid, tiny)
        w[norms == 0] = 0.0
        total = w.sum()
        if not total > 0 or not np.isfinite(total):
            w = mult / mult.sum()
            new = w @ x
            break
        w = w / total
        new = w @ x
        denom = np.linalg.norm(new) * n
        if denom == 0 or np.linalg.norm(new - old, ord=1) / denom < epsilon:
            break
    return new, w, it


def robust_stack(ccfs: np.ndarray, epsilon: float = 1e-5, maxiter: int = 20) -> tuple[np.ndarray, int]:
    """Robust stack (Pavlis & Vernon 2010), see :func:`robust_weights`.

    Returns ``(stack, n_windows)``; windows with zero weight still count as used
    (they were considered), which matches NoisePy's bookkeeping.
    """
    x = _as_2d(ccfs)
    if x.shape[0] == 0:
        return _empty(x, "robust")
    new, _, _ = robust_weights(x, epsilon, maxiter)
    return new.astype(np.result_type(x.dtype, np.float32)), x.shape[0]


def stack(ccfs: np.ndarray, stack_method: str = "linear", *, pws_power: float = 2.0) -> tuple[np.ndarray, int]:
    """Dispatch on NoisePy's ``stack_method`` name ("linear", "pws", "robust")."""
    if stack_method == "linear":
        return linear_stack(ccfs)
    if stack_method == "pws":
        return pws_stack(ccfs, pws_power)
    if stack_method == "robust":
        return robust_stack(ccfs)
    raise ValueError(f"stack_method={stack_method!r} is not one of {list(STACK_METHODS)}")


@dataclass(frozen=True)
class StackState:
    """Mergeable partial stack of a set of windows (see the module notes).

    Build with :meth:`empty` or :meth:`from_windows`, combine with :meth:`merge` (or ``+``),
    finish with :meth:`result`. States are immutable: merging returns a new state.

    Attributes
    ----------
    method : {"linear", "pws", "robust"}
    n : int
        Windows in the set.
    linear_sum : ndarray, float64, shape (n_lags,)
        Sum of the windows' CCFs (every method keeps it).
    phasor_sum : ndarray, complex128, shape (n_lags,), or None
        pws only: sum of the windows' unit phasors (:func:`unit_phasors`).
    pieces : tuple of (stack, n, first_start)
        robust only: per batch of windows its robust stack (float64), window count and the
        start time of its first window (s; NaN if unknown), the order used to combine them.

    Examples
    --------
    >>> x = np.array([[0., 1., 0.], [0., 3., 0.], [1., 2., 0.]])
    >>> s = StackState.from_windows(x[:2], "linear") + StackState.from_windows(x[2:], "linear")
    >>> s.n, s.result()[0].tolist()
    (3, [0.3333333333333333, 2.0, 0.0])
    """

    method: str
    n: int
    linear_sum: np.ndarray
    phasor_sum: np.ndarray | None = None
    pieces: tuple = ()

    @classmethod
    def empty(cls, method: str, n_lags: int) -> "StackState":
        """The state of no windows."""
        _check_method(method)
        return cls(method, 0, np.zeros(int(n_lags)),
                   np.zeros(int(n_lags), dtype=np.complex128) if method == "pws" else None)

    @classmethod
    def from_windows(cls, ccfs: np.ndarray, method: str, starttimes=None) -> "StackState":
        """The state of windows ``ccfs`` (shape ``(n_windows, n_lags)``).

        ``starttimes`` (s) only orders the robust pieces (their first start); not needed
        otherwise.
        """
        _check_method(method)
        x = _as_2d(ccfs)
        n = x.shape[0]
        linear_sum = x.sum(axis=0, dtype=np.float64)
        phasor_sum = unit_phasors(x).sum(axis=0) if method == "pws" else None
        pieces = ()
        if method == "robust" and n:
            t0 = np.nan if starttimes is None or not len(starttimes) \
                else float(np.min(np.asarray(starttimes, dtype=np.float64)))
            pieces = ((robust_weights(x)[0], n, t0),)
        return cls(method, n, linear_sum, phasor_sum, pieces)

    @classmethod
    def from_window_sets(cls, sets, method: str, starttimes=None, *, single: bool = True,
                         batch_bytes: int = 8 << 20) -> list:
        """:meth:`from_windows` of many window sets at once, e.g. one chunk of each pair of a
        block of pairs: a list of states, one per set, in the order of ``sets``.

        The sets may hold different numbers of windows (0 included) but the same number of
        lags. linear: the per-set sums (equal to :meth:`from_windows`); pws: the unit
        phasors from batched Hilbert transforms (:func:`phasor_parts`) of about
        ``batch_bytes`` of rows (counted as float64) at a time, consecutive small sets
        together and a larger set in pieces, summed per set in float64; robust: one Pavlis &
        Vernon re-weighting vectorised over the sets of each window count, about
        ``batch_bytes`` of them at a time (:func:`robust_stack_block`'s per-set convergence
        mask), equal to :func:`robust_weights` per set to rounding. The default batch keeps
        a batch's rows and their phasors in the processor's cache (8 MiB: 131 windows of 8001
        lags; a 32 MiB batch made the pws states about 1.2x slower).

        Parameters
        ----------
        sets : sequence of ndarray, each shape (n_windows_i, n_lags)
        method : {"linear", "pws", "robust"}
        starttimes : sequence of array_like, optional
            Per set, the window start times (s); only orders the robust pieces.
        single : bool
            pws: Hilbert transforms and phasors in float32 (default; sums in float64), phase
            sums within ~1e-7 of the float64 ones of :meth:`from_windows` per window;
            False: float64 (equal to rounding).
        batch_bytes : int
            Rows per batch as bytes of float64 rows (at least one row).

        Examples
        --------
        >>> x = np.array([[0., 1., 0.], [0., 3., 0.], [1., 2., 0.]])
        >>> a, b = StackState.from_window_sets([x[:2], x[2:]], "pws")
        >>> bool(np.allclose((a + b).result()[0], pws_stack(x)[0]))
        True
        """
        _check_method(method)
        xs = [_as_2d(s) for s in sets]
        if not xs:
            return []
        n_lags = {x.shape[1] for x in xs}
        if len(n_lags) > 1:
            raise ValueError(f"window sets with different numbers of lags: {sorted(n_lags)}")
        M = n_lags.pop()
        counts = np.array([x.shape[0] for x in xs], dtype=np.int64)
        full = np.flatnonzero(counts)
        linear = np.zeros((len(xs), M))
        phasor = np.zeros((len(xs), M), dtype=np.complex128) if method == "pws" else None
        pieces = [()] * len(xs)
        row_bytes = M * 8
        for k in full:  # row by row in float64, as from_windows sums
            np.sum(xs[k], axis=0, dtype=np.float64, out=linear[k])
        if method == "pws":
            cap = max(1, int(batch_bytes) // row_bytes)  # rows per Hilbert batch
            i = 0
            while i < full.size:
                if counts[full[i]] > cap:  # a large set alone, cap rows at a time
                    k = full[i]
                    for r0 in range(0, int(counts[k]), cap):
                        re, im = phasor_parts(xs[k][r0:r0 + cap], single=single)
                        phasor.real[k] += re.sum(axis=0, dtype=np.float64)
                        phasor.imag[k] += im.sum(axis=0, dtype=np.float64)
                    i += 1
                    continue
                j, rows = i, 0  # consecutive small sets of at most cap rows, summed as segments
                while j < full.size and rows + counts[full[j]] <= cap:
                    rows += counts[full[j]]
                    j += 1
                sel = full[i:j]
                block = xs[sel[0]] if sel.size == 1 else np.concatenate([xs[k] for k in sel])
                re, im = phasor_parts(block, single=single)
                phasor.real[sel] = _segment_sums(re, counts[sel])
                phasor.imag[sel] = _segment_sums(im, counts[sel])
                i = j
        if method == "robust":
            t0 = np.full(len(xs), np.nan)
            if starttimes is not None:
                for k in full:
                    t = np.asarray(starttimes[k], dtype=np.float64)
                    if t.size:
                        t0[k] = float(t.min())
            for w in np.unique(counts[full]).tolist():
                same = np.flatnonzero(counts == w)
                per = max(1, int(batch_bytes) // (w * row_bytes))
                for q in range(0, same.size, per):
                    sel = same[q:q + per]
                    x3 = np.stack([xs[k] for k in sel])
                    stacks, _, _ = _robust_block(x3, np.ones(x3.shape[:2], dtype=bool))
                    for k, st in zip(sel.tolist(), stacks):
                        pieces[k] = ((st, int(w), t0[k]),)
        return [cls(method, int(counts[k]), linear[k], None if phasor is None else phasor[k],
                    pieces[k]) for k in range(len(xs))]

    def merge(self, other: "StackState") -> "StackState":
        """The state of the union of both sets of windows (they must not overlap)."""
        if other.method != self.method or other.linear_sum.shape != self.linear_sum.shape:
            raise ValueError(f"cannot merge a {other.method} state of {other.linear_sum.shape[0]} "
                             f"lags into a {self.method} state of {self.linear_sum.shape[0]} lags")
        phasor = None if self.phasor_sum is None else self.phasor_sum + other.phasor_sum
        return StackState(self.method, self.n + other.n, self.linear_sum + other.linear_sum,
                          phasor, self.pieces + other.pieces)

    __add__ = merge

    @property
    def nbytes(self) -> int:
        """Bytes held by the state's arrays."""
        total = self.linear_sum.nbytes
        if self.phasor_sum is not None:
            total += self.phasor_sum.nbytes
        return total + sum(p[0].nbytes for p in self.pieces)

    def linear_mean(self) -> np.ndarray:
        """Mean CCF over the windows (zeros if none), float64."""
        return self.linear_sum / self.n if self.n else np.zeros_like(self.linear_sum)

    def phasor_mean(self) -> np.ndarray:
        """pws only: mean unit phasor per lag (its modulus is the phase coherence)."""
        if self.phasor_sum is None:
            raise ValueError(f"a {self.method} state has no phasor sum")
        return self.phasor_sum / self.n if self.n else np.zeros_like(self.phasor_sum)

    def result(self, pws_power: float = 2.0, smooth_samples: int = 0) -> tuple[np.ndarray, int]:
        """``(stack float64, n_windows)`` of the state's method; zeros and 0 if empty.

        ``pws_power`` and ``smooth_samples`` as in :func:`pws_stack` (pws only).
        """
        if not self.n:
            logger.warning("%s stack of zero windows: returning zeros", self.method)
            return np.zeros_like(self.linear_sum), 0
        if self.method == "linear":
            return self.linear_mean(), self.n
        if self.method == "pws":
            if pws_power < 0:
                raise ValueError(f"pws_power must be >= 0, got {pws_power!r}")
            coherence = np.abs(self.phasor_mean())
            if smooth_samples:
                from scipy.ndimage import uniform_filter1d

                coherence = uniform_filter1d(coherence, size=2 * int(smooth_samples) + 1,
                                             mode="nearest")
            return self.linear_mean() * coherence**pws_power, self.n
        # robust: pieces in start-time order (then by size), so the result never depends
        # on the order in which the pieces arrived
        pieces = sorted(self.pieces, key=lambda p: (np.inf if np.isnan(p[2]) else p[2], -p[1]))
        if len(pieces) == 1:
            return pieces[0][0], self.n
        stacked, _, _ = robust_weights(np.stack([p[0] for p in pieces]),
                                       counts=np.array([p[1] for p in pieces]))
        return stacked, self.n


def _segment_sums(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Float64 sums of consecutive segments of ``counts`` rows each, ``(len(counts), n_cols)``,
    each summed row by row as ``np.add.reduceat`` does (same values, several times faster
    than ``reduceat`` with a float64 accumulator on float32 rows)."""
    if counts.size and np.all(counts == counts[0]):
        return rows.reshape(counts.size, int(counts[0]), -1).sum(axis=1, dtype=np.float64)
    out = np.empty((counts.size, rows.shape[1]))
    edges = np.concatenate(([0], np.cumsum(counts)))
    for k in range(counts.size):
        np.sum(rows[edges[k]:edges[k + 1]], axis=0, dtype=np.float64, out=out[k])
    return out


def stack_memory_bytes(n_pairs: int, n_lags: int, stack_method: str, duration: float,
                       chunk_length: float, substack_len: float | None = None) -> int:
    """Bytes the stack states of a run hold (:class:`pes.stack.StackPE`), all pairs together.

    Per pair and sub-stack span a :class:`StackState` holds ``8 * n_lags`` bytes (float64
    sum), pws ``24 * n_lags`` (plus the complex128 phasor sum); robust adds ``8 * n_lags``
    per piece (one per chunk and span it touches). The number of windows does not enter.

    Parameters
    ----------
    n_pairs : int
        Pairs times components.
    n_lags : int
        ``2 * maxlag_samples + 1``.
    stack_method : {"linear", "pws", "robust"}
    duration : float
        Seconds of data the run stacks (all chunks).
    chunk_length : float
        Seconds per chunk (one input item per pair and chunk).
    substack_len : float, optional
        Sub-stack span (s); None without sub-stacks (one span).

    Examples
    --------
    >>> round(stack_memory_bytes(4950, 4801, "pws", 86400.0, 86400.0) / 2**20)  # MiB, 100 stations
    544
    >>> stack_memory_bytes(4950, 4801, "linear", 86400.0, 86400.0, 3600.0) // (8 * 4950 * 4801)
    25
    """
    _check_method(stack_method)
    n_chunks = max(1, int(math.ceil(duration / chunk_length - 1e-9)))
    if substack_len:
        # a span not aligned with the data's start: one more than fits
        spans = int(math.ceil(duration / substack_len - 1e-9)) + 1
        spans_per_chunk = int(math.ceil(chunk_length / substack_len - 1e-9)) + 1
    else:
        spans, spans_per_chunk = 1, 1
    per_lag = spans * (24 if stack_method == "pws" else 8)
    if stack_method == "robust":
        per_lag += 8 * n_chunks * spans_per_chunk
    return int(n_pairs) * int(n_lags) * per_lag


def _check_method(method: str) -> None:
    if method not in STACK_METHODS:
        raise ValueError(f"stack_method={method!r} is not one of {list(STACK_METHODS)}")


def substack_index(starttimes, substack_len: float,
                   origin: float | None = None) -> np.ndarray:
    """Span of the calendar grid holding each window start.

    Span ``k`` is ``[origin + k * substack_len, origin + (k + 1) * substack_len)``; a
    window belongs to the span that holds its start time (a start within 1e-9 span lengths
    below a boundary counts as on it, against rounding).

    Parameters
    ----------
    starttimes : array_like of float
        Window start times, POSIX seconds (UTC).
    substack_len : float
        Span length, seconds (> 0).
    origin : float, optional
        A boundary of the grid, POSIX seconds; default :data:`DEFAULT_SUBSTACK_ORIGIN`
        (1970-01-01T00:00:00 UTC, so daily spans start at midnight UTC).

    Returns
    -------
    ndarray of int64
        ``k`` per window (negative before the origin).

    Examples
    --------
    >>> day = 86400.0
    >>> substack_index([19000 * day + 10.0, 19000 * day + 3600.0, 19001 * day], day).tolist()
    [19000, 19000, 19001]
    """
    if not substack_len > 0:
        raise ValueError(f"substack_len must be > 0 s, got {substack_len!r}")
    t0 = DEFAULT_SUBSTACK_ORIGIN if origin is None else float(origin)
    t = np.asarray(starttimes, dtype=np.float64)
    return np.floor((t - t0) / float(substack_len) + 1e-9).astype(np.int64)


def substack_states(ccfs: np.ndarray, starttimes, substack_len: float, stack_method: str = "linear",
                    origin: float | None = None) -> dict:
    """``{span k: StackState}`` of the windows of each span of the grid (see
    :func:`substack_index`); spans without windows are absent."""
    x = _as_2d(ccfs)
    t = np.asarray(starttimes, dtype=np.float64)
    if t.shape != (x.shape[0],):
        raise ValueError(f"starttimes has shape {t.shape}, expected ({x.shape[0]},)")
    span = substack_index(t, substack_len, origin)
    out = {}
    for key in np.unique(span).tolist():
        rows = span == key
        out[key] = StackState.from_windows(x[rows], stack_method, t[rows])
    return out


def substack_states_block(sets, starttimes, substack_len: float | None, stack_method: str = "linear",
                          origin: float | None = None, *, single: bool = True) -> list:
    """:func:`substack_states` of many window sets at once (one chunk of each pair of a block
    of pairs), through :meth:`StackState.from_window_sets`: a list of ``{span k:
    StackState}``, one per set. ``substack_len`` None: every set is span 0 whole (no
    sub-stacks; a set without windows still gives an empty state, as
    :meth:`StackState.from_windows` does), otherwise spans without windows are absent."""
    parts, owner = [], []
    for i, (x, t) in enumerate(zip(sets, starttimes)):
        x = _as_2d(x)
        if substack_len is None:
            parts.append((x, t))
            owner.append((i, 0))
            continue
        t = np.asarray(t, dtype=np.float64)
        if t.shape != (x.shape[0],):
            raise ValueError(f"starttimes has shape {t.shape}, expected ({x.shape[0]},)")
        span = substack_index(t, substack_len, origin)
        for key in np.unique(span).tolist():
            rows = span == key
            parts.append((x[rows], t[rows]))
            owner.append((i, key))
    states = StackState.from_window_sets([x for x, _ in parts], stack_method,
                                         [t for _, t in parts], single=single)
    out = [{} for _ in sets]
    for (i, key), state in zip(owner, states):
        out[i][key] = state
    return out


def substack(ccfs: np.ndarray, starttimes: np.ndarray, substack_len: float,
             stack_method: str = "linear", *, pws_power: float = 2.0,
             origin: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacks over the spans of a calendar grid of ``substack_len`` seconds (NoisePy ``substack``).

    Window ``j`` belongs to span ``k = floor((starttimes[j] - origin) / substack_len)``
    (:func:`substack_index`), so span ``k`` covers the same interval for every pair;
    spans without windows are omitted.

    Parameters
    ----------
    ccfs : ndarray, shape (n_windows, n_lags)
    starttimes : ndarray, shape (n_windows,)
        Window start times, POSIX seconds (UTC).
    substack_len : float
        Span length in seconds.
    stack_method, pws_power
        See :func:`stack`.
    origin : float, optional
        A span boundary, POSIX seconds; default 1970-01-01T00:00:00 UTC (midnight), not the
        first window, so that spans of different pairs line up.

    Returns
    -------
    stacks : ndarray, shape (n_spans, n_lags)
    span_starts : ndarray, shape (n_spans,), POSIX seconds
    counts : ndarray of int, shape (n_spans,), windows per span

    Examples
    --------
    >>> x = np.array([[1., 0.], [3., 0.], [5., 2.]])
    >>> subs, starts, counts = substack(x, [3599.0, 3600.0, 5000.0], 3600.0)
    >>> subs.tolist(), starts.tolist(), counts.tolist()
    ([[1.0, 0.0], [4.0, 1.0]], [0.0, 3600.0], [1, 2])
    """
    x = _as_2d(ccfs)
    dtype = np.result_type(x.dtype, np.float32)
    if not substack_len > 0:
        raise ValueError(f"substack_len must be > 0 s, got {substack_len!r}")
    states = substack_states(x, starttimes, substack_len, stack_method, origin)
    if not states:
        return np.zeros((0, x.shape[1]), dtype=dtype), np.zeros(0), np.zeros(0, dtype=np.int64)
    keys = sorted(states)
    t0 = DEFAULT_SUBSTACK_ORIGIN if origin is None else float(origin)
    stacks = np.stack([states[k].result(pws_power)[0] for k in keys]).astype(dtype)
    starts = t0 + np.asarray(keys, dtype=np.float64) * float(substack_len)
    return stacks, starts, np.array([states[k].n for k in keys], dtype=np.int64)


# ---------------------------------------------------------------------- blocks of pairs
def _block_inputs(ccfs, mask):
    x = np.asarray(ccfs)
    if x.ndim != 3:
        raise ValueError(f"ccfs must be 3-D (n_pairs, n_windows, n_lags), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("ccfs contain NaN or inf")
    if mask is None:
        m = np.ones(x.shape[:2], dtype=bool)
    else:
        m = np.asarray(mask, dtype=bool)
        if m.shape != x.shape[:2]:
            raise ValueError(f"mask has shape {m.shape}, expected {x.shape[:2]} (n_pairs, n_windows)")
    return x, m


def hilbert_transform(x: np.ndarray, axis: int = -1, single: bool = False) -> np.ndarray:
    """Circular Hilbert transform ``H[x]`` along ``axis`` (real, length unchanged), the
    imaginary part of :func:`scipy.signal.hilbert` with ``N`` equal to the length.

    One real FFT and one inverse real FFT of all rows at once (``scipy.fft.rfft`` /
    ``irfft``): the one-sided spectrum is multiplied by ``-i`` (positive frequencies; DC and,
    for an even length, the Nyquist bin by 0). ``single``: float32 transforms (float32
    result, ~1e-7 relative rounding), otherwise float64.
    """
    a = np.moveaxis(np.asarray(x, dtype=np.float32 if single else np.float64), axis, -1)
    m = a.shape[-1]
    spec = scipy.fft.rfft(a, axis=-1)
    spec[..., 0] = 0.0
    if m % 2 == 0 and m:
        spec[..., -1] = 0.0
    spec *= spec.dtype.type(-1j)  # (re + i im) * -i = im - i re, exactly, in place
    return np.moveaxis(scipy.fft.irfft(spec, n=m, axis=-1), -1, axis)


def analytic_signal(x: np.ndarray, axis: int = -1, single: bool = False) -> np.ndarray:
    """Analytic signal ``x + i H[x]`` along ``axis`` (circular, length unchanged), complex128
    (``single``: float32 transforms, complex64, ~1e-7 relative rounding).

    The same transform as :func:`scipy.signal.hilbert` with ``N`` equal to the length (so
    equal to rounding; the real part is ``x`` itself), from :func:`hilbert_transform`: one
    real FFT and one inverse real FFT instead of ``hilbert``'s two complex FFTs.
    """
    a = np.asarray(x, dtype=np.float32 if single else np.float64)
    out = np.empty(a.shape, dtype=np.complex64 if single else np.complex128)
    out.real = a
    out.imag = hilbert_transform(a, axis=axis, single=single)
    return out


def phasor_parts(ccfs: np.ndarray, single: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of the unit phasors ``exp(i phi(t))`` of the analytic signals
    of windows along the last axis of an array of any shape (:func:`unit_phasors`, as two
    real arrays: float64, ``single``: float32; both 0 where the analytic signal is exactly
    zero)."""
    a = np.asarray(ccfs, dtype=np.float32 if single else np.float64)
    h = hilbert_transform(a, axis=-1, single=single)
    inv = a * a
    inv += h * h
    np.sqrt(inv, out=inv)
    if not inv.all():
        inv[inv == 0] = np.inf  # amp 0: 1 / inf = 0, no phase
    np.reciprocal(inv, out=inv)
    return a * inv, np.multiply(h, inv, out=h)


def pws_stack_block(ccfs: np.ndarray, mask: np.ndarray | None = None, pws_power: float = 2.0,
                    rows_per_batch: int = 64, single: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Phase-weighted stacks of a block of pairs (:func:`pws_stack` for each pair at once).

    ``pws[p](t) = linear[p](t) * |1/N_p sum_j exp(i phi_pj(t))| ** pws_power`` over the
    windows ``j`` of pair ``p`` that ``mask`` keeps (Schimmel & Paulssen 1997); the
    analytic signals of all windows of the block come from one batched FFT-based Hilbert
    transform (:func:`hilbert_transform`), ``rows_per_batch`` pairs' windows at a time.

    Parameters
    ----------
    ccfs : ndarray, shape (n_pairs, n_windows, n_lags)
    mask : ndarray of bool, shape (n_pairs, n_windows), optional
        Windows of each pair to stack (default all); masked rows are ignored.
    pws_power : float
        ``nu`` (>= 0).
    single : bool
        Hilbert transforms and unit phasors in float32 (default; the phasor and linear sums
        are accumulated in float64): about 2x faster than float64, and the stack agrees with
        :func:`pws_stack` (float64) to ~1e-6 of its maximum, below the float32 the stacks
        are stored in. False: float64 throughout (equal to rounding).

    Returns
    -------
    stacks : ndarray, shape (n_pairs, n_lags), float32 (float64 for float64 input)
        Zeros for a pair without windows.
    counts : ndarray of int64, shape (n_pairs,)
    """
    x, m = _block_inputs(ccfs, mask)
    if pws_power < 0:
        raise ValueError(f"pws_power must be >= 0, got {pws_power!r}")
    P, W, M = x.shape
    counts = m.sum(axis=1).astype(np.int64)
    mf = m.astype(np.float64)
    linear = np.einsum("pw,pwm->pm", mf, x, dtype=np.float64)
    phasor = np.zeros((P, M), dtype=np.complex128)
    per = max(1, int(rows_per_batch) // max(W, 1))
    for p0 in range(0, P, per):
        p1 = min(p0 + per, P)
        re, im = phasor_parts(x[p0:p1], single=single)
        phasor.real[p0:p1] = np.einsum("pw,pwm->pm", mf[p0:p1], re, dtype=np.float64)
        phasor.imag[p0:p1] = np.einsum("pw,pwm->pm", mf[p0:p1], im, dtype=np.float64)
    n = np.maximum(counts, 1)[:, None]
    out = (linear / n) * (np.abs(phasor) / n) ** pws_power
    if (counts == 0).any():
        logger.warning("phase-weighted stack of zero windows for %d pair(s): zeros", int((counts == 0).sum()))
    return out.astype(np.result_type(x.dtype, np.float32)), counts


def unit_phasors_nd(ccfs: np.ndarray, single: bool = False) -> np.ndarray:
    """:func:`unit_phasors` of windows along the last axis of an array of any shape
    (complex128, ``single``: complex64; 0 where the analytic signal is exactly zero)."""
    re, im = phasor_parts(ccfs, single=single)
    out = np.empty(re.shape, dtype=np.complex64 if single else np.complex128)
    out.real, out.imag = re, im
    return out


def robust_stack_block(ccfs: np.ndarray, mask: np.ndarray | None = None, epsilon: float = 1e-5,
                       maxiter: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust stacks of a block of pairs (:func:`robust_weights` for each pair at once).

    The Pavlis & Vernon (2010) re-weighting of :func:`robust_weights`, vectorised over the
    pairs: every iteration updates the pairs that have not converged (a per-pair
    convergence mask; a converged pair keeps its stack, as the per-pair loop breaks), with
    the same start (median of the pair's windows), weights, floors and stopping rule.

    Parameters
    ----------
    ccfs : ndarray, shape (n_pairs, n_windows, n_lags)
    mask : ndarray of bool, shape (n_pairs, n_windows), optional
        Windows of each pair (default all); masked windows have weight 0.
    epsilon, maxiter
        As in :func:`robust_weights`.

    Returns
    -------
    stacks : ndarray, shape (n_pairs, n_lags), float32 (float64 for float64 input)
        Zeros for a pair without windows.
    counts : ndarray of int64, shape (n_pairs,)
    n_iter : ndarray of int64, shape (n_pairs,)
    """
    x_in, m = _block_inputs(ccfs, mask)
    new, counts, n_iter = _robust_block(x_in, m, epsilon, maxiter)
    out = new.astype(np.result_type(x_in.dtype, np.float32))
    if (counts == 0).any():
        logger.warning("robust stack of zero windows for %d pair(s): zeros", int((counts == 0).sum()))
    return out, counts, n_iter


def _median_windows(x: np.ndarray) -> np.ndarray:
    """``np.median(x, axis=1)`` of ``(n_pairs, n_windows, n_lags)`` as float64, the same
    values: one single-``kth`` partition of the windows of each lag (contiguous, in the
    input's precision; the median of float32 values is exact in float64) and, for an even
    count, the lower middle value as the maximum of the lower part (NumPy's two-``kth``
    partition is several times slower than one)."""
    W = x.shape[1]
    y = np.ascontiguousarray(np.swapaxes(x, 1, 2))  # (P, M, W): the windows of a lag together
    k = W // 2
    y.partition(k, axis=-1)
    upper = y[..., k].astype(np.float64)
    if W % 2:
        return upper
    return (y[..., :k].max(axis=-1).astype(np.float64) + upper) / 2.0


def _robust_block(x_in, m, epsilon=1e-5, maxiter=20):
    """:func:`robust_stack_block` on checked input: float64 stacks, counts, iterations.

    The residual norm ``||d_j - (d_j . b) b||`` of each window is computed as
    ``sqrt(||d_j||^2 - (d_j . b)^2)`` (``b`` has unit norm): one pass over the windows per
    iteration instead of three; where that leaves less than 1 % of ``||d_j||`` (cancellation
    would cost more than ~1e-12 relative) the difference is formed directly.
    """
    P, W, M = x_in.shape
    counts = m.sum(axis=1).astype(np.int64)
    full = bool(m.all())
    x = x_in.astype(np.float64, copy=False)
    mf = m.astype(np.float64)
    nwin = np.maximum(counts, 1).astype(np.float64)
    norms2 = np.einsum("pwm,pwm->pw", x, x) * mf
    norms = np.sqrt(norms2)
    tiny = np.finfo(np.float64).tiny
    if full:  # the median of the input's values (float32 stays float32 in the partition)
        new = _median_windows(x_in) if W else np.zeros((P, M))
    else:
        xm = np.where(m[:, :, None], x, np.nan)
        new = np.zeros((P, M))
        has = counts > 0
        if has.any():
            new[has] = np.nanmedian(xm[has], axis=1)
        del xm
    flat = ~np.any(new != 0, axis=1)
    if flat.any():
        new[flat] = np.einsum("pw,pwm->pm", mf[flat], x[flat]) / nwin[flat, None]
    n_iter = np.zeros(P, dtype=np.int64)
    active = np.flatnonzero(counts > 0)
    for it in range(1, int(maxiter) + 1):
        if not active.size:
            break
        if active.size == P:  # no copy while every pair iterates
            xa, ma, na, na2 = x, mf, norms, norms2
        else:
            xa, ma, na, na2 = x[active], mf[active], norms[active], norms2[active]
        old = new[active]
        bnorm = np.linalg.norm(old, axis=1)
        stop = bnorm == 0  # the per-pair loop breaks before counting the iteration... as here
        n_iter[active] = it
        b = old / np.where(stop, 1.0, bnorm)[:, None]
        proj = np.matmul(xa, b[:, :, None])[:, :, 0]
        resid2 = na2 - proj * proj
        close = resid2 < 1e-4 * na2
        resid = np.sqrt(np.maximum(resid2, 0.0))
        if close.any():
            pp, ww = np.nonzero(close)
            resid[pp, ww] = np.linalg.norm(xa[pp, ww] - proj[pp, ww, None] * b[pp], axis=1)
        resid = np.maximum(resid, 1e-8 * na)
        w = np.abs(proj) / np.maximum(na * resid, tiny)
        w[na == 0] = 0.0
        w *= ma
        total = w.sum(axis=1)
        bad = ~(total > 0) | ~np.isfinite(total)
        w = np.where(bad[:, None], ma / nwin[active, None], w / np.where(bad, 1.0, total)[:, None])
        upd = np.matmul(w[:, None, :], xa)[:, 0, :]
        denom = np.linalg.norm(upd, axis=1) * nwin[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            conv = (denom == 0) | (np.abs(upd - old).sum(axis=1) / denom < epsilon)
        new[active] = np.where(stop[:, None], old, upd)
        done = stop | bad | conv
        active = active[~done]
    return new, counts, n_iter
