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
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.signal

__all__ = ["STACK_METHODS", "linear_stack", "pws_stack", "robust_stack", "robust_weights",
           "stack", "substack"]

logger = logging.getLogger(__name__)

STACK_METHODS = ("linear", "pws", "robust")


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


def robust_weights(ccfs: np.ndarray, epsilon: float = 1e-5, maxiter: int = 20) -> tuple[np.ndarray, np.ndarray, int]:
    """Weights of the robust stack (Pavlis & Vernon 2010, eqs. 5-7).

    Starting from the median, iterate: ``b = stack / ||stack||``;
    ``w_j = |d_j . b| / (||d_j|| ||d_j - (d_j . b) b||)``, normalised to sum 1;
    ``stack = sum_j w_j d_j``; stop when ``||stack_new - stack_old||_1 /
    (||stack_new||_2 n_windows) < epsilon`` (NoisePy's criterion) or after ``maxiter``.

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
    norms = np.linalg.norm(x, axis=1)
    tiny = np.finfo(np.float64).tiny
    new = np.median(x, axis=0)
    if not np.any(new):
        new = x.mean(axis=0)
    w = np.full(n, 1.0 / n)
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
        w = np.abs(proj) / np.maximum(norms * resid, tiny)
        w[norms == 0] = 0.0
        total = w.sum()
        if not total > 0 or not np.isfinite(total):
            w = np.full(n, 1.0 / n)
            new = x.mean(axis=0)
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


def substack(ccfs: np.ndarray, starttimes: np.ndarray, substack_len: float,
             stack_method: str = "linear", *, pws_power: float = 2.0,
             origin: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacks over consecutive time spans of ``substack_len`` seconds (NoisePy ``substack``).

    Window ``j`` belongs to span ``floor((starttimes[j] - origin) / substack_len)``;
    spans without windows are omitted.

    Parameters
    ----------
    ccfs : ndarray, shape (n_windows, n_lags)
    starttimes : ndarray, shape (n_windows,)
        Window start times (POSIX seconds or any consistent seconds).
    substack_len : float
        Span length in seconds.
    stack_method, pws_power
        See :func:`stack`.
    origin : float, optional
        Start of the first span; default the earliest window start.

    Returns
    -------
    stacks : ndarray, shape (n_spans, n_lags)
    span_starts : ndarray, shape (n_spans,), seconds
    counts : ndarray of int, shape (n_spans,), windows per span
    """
    x = _as_2d(ccfs)
    t = np.asarray(starttimes, dtype=np.float64)
    if t.shape != (x.shape[0],):
        raise ValueError(f"starttimes has shape {t.shape}, expected ({x.shape[0]},)")
    if not substack_len > 0:
        raise ValueError(f"substack_len must be > 0 s, got {substack_len!r}")
    if x.shape[0] == 0:
        return (np.zeros((0, x.shape[1]), dtype=np.result_type(x.dtype, np.float32)),
                np.zeros(0), np.zeros(0, dtype=np.int64))
    t0 = float(t.min()) if origin is None else float(origin)
    # a tiny tolerance keeps window starts that sit exactly on a span boundary in that span
    span = np.floor((t - t0) / substack_len + 1e-9).astype(np.int64)
    keys = np.unique(span)
    stacks, counts = [], []
    for key in keys:
        s, n = stack(x[span == key], stack_method, pws_power=pws_power)
        stacks.append(s)
        counts.append(n)
    return np.stack(stacks), t0 + keys * substack_len, np.asarray(counts, dtype=np.int64)
