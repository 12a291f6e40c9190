"""Butterworth bandpass design and the Tukey window without importing :mod:`scipy.signal`.

:mod:`scipy.signal` takes about 0.7 s of CPU to import (SciPy 1.17 loads :mod:`scipy.stats`
with it), more than a small run's computing. The run path needs only two of its functions,
re-derived here with the same formulas, so that :mod:`scipy.signal` is imported only where
its other tools are used (decimation, time-domain filtering, Hilbert transforms).

* :func:`butter_bandpass_zpk` equals ``scipy.signal.butter(corners, [freqmin, freqmax],
  btype="bandpass", fs=sampling_rate, output="zpk")``: the analog Butterworth prototype
  (poles ``-exp(i pi m / 2N)``, ``m = -N+1, -N+3, ..., N-1``), the lowpass-to-bandpass
  transform at the pre-warped edges ``4 tan(pi f / fs)`` (SciPy's ``iirfilter`` with an
  internal rate of 2), and the bilinear transform; zeros, poles and gain to rounding
  (``tests/signal/test_filters.py`` compares them).
* :func:`tukey` equals ``scipy.signal.windows.tukey(M, alpha)`` (symmetric): cosine ramps
  of ``alpha (M - 1) / 2`` samples at either end, 1 in between (Harris 1978).
"""

from __future__ import annotations

import numpy as np

__all__ = ["butter_bandpass_zpk", "tukey"]


def butter_bandpass_zpk(corners: int, freqmin: float, freqmax: float, sampling_rate: float):
    """Zeros, poles and gain of a digital Butterworth bandpass of order ``corners`` with
    -3 dB edges ``freqmin`` and ``freqmax`` (Hz) at ``sampling_rate`` (Hz): ``2 corners``
    zeros (``corners`` at z = 1 and ``corners`` at z = -1) and ``2 corners`` poles, as
    :func:`scipy.signal.butter` gives them.

    >>> z, p, k = butter_bandpass_zpk(2, 0.1, 1.0, 20.0)
    >>> z.size, p.size, bool(np.all(np.abs(p) < 1))
    (4, 4, True)
    """
    n = int(corners)
    if n < 1:
        raise ValueError(f"corners must be >= 1, got {corners!r}")
    fs = float(sampling_rate)
    wn = 2.0 * np.array([freqmin, freqmax], dtype=np.float64) / fs    # of Nyquist
    if not (0.0 < wn[0] < wn[1] < 1.0):
        raise ValueError(f"bandpass edges {freqmin}, {freqmax} Hz must satisfy "
                         f"0 < freqmin < freqmax < {fs / 2:g} Hz (Nyquist)")
    warped = 4.0 * np.tan(np.pi * wn / 2.0)                            # rad/s at rate 2
    # analog prototype: no zeros, n poles on the left unit half circle, gain 1
    m = np.arange(-n + 1, n, 2)
    p = -np.exp(1j * np.pi * m / (2 * n))
    z = np.zeros(0, dtype=complex)
    k = 1.0
    # lowpass -> bandpass around wo with bandwidth bw
    bw = warped[1] - warped[0]
    wo = np.sqrt(warped[0] * warped[1])
    p_lp = p * bw / 2.0
    root = np.sqrt(p_lp**2 - wo**2)
    p = np.concatenate((p_lp + root, p_lp - root))
    z = np.zeros(n, dtype=complex)                                     # n zeros at s = 0
    k = k * bw**n
    # bilinear transform at the internal rate 2 (fs2 = 2 rate = 4)
    fs2 = 4.0
    degree = p.size - z.size
    k = k * np.real(np.prod(fs2 - z) / np.prod(fs2 - p))
    z = np.append((fs2 + z) / (fs2 - z), -np.ones(degree))
    p = (fs2 + p) / (fs2 - p)
    return z, p, float(k)


def tukey(m: int, alpha: float = 0.5) -> np.ndarray:
    """Symmetric Tukey window of ``m`` points (float64): cosine ramps over a fraction
    ``alpha / 2`` of the window at either end (``alpha`` 0: boxcar, 1: Hann), as
    :func:`scipy.signal.windows.tukey` with ``sym=True``.

    >>> tukey(5, 1.0).round(3).tolist()
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    m = int(m)
    if m <= 1:
        return np.ones(max(m, 0))
    if alpha <= 0:
        return np.ones(m)
    if alpha >= 1.0:
        n = np.arange(m)
        return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (m - 1))
    n = np.arange(m)
    width = int(np.floor(alpha * (m - 1) / 2.0))
    n1, n3 = n[:width + 1], n[m - width - 1:]
    w = np.ones(m)
    w[:width + 1] = 0.5 * (1.0 + np.cos(np.pi * (-1.0 + 2.0 * n1 / alpha / (m - 1))))
    w[m - width - 1:] = 0.5 * (1.0 + np.cos(np.pi * (-2.0 / alpha + 1.0 + 2.0 * n3 / alpha / (m - 1))))
    return w
