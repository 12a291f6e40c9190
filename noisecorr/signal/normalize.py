"""Time-domain normalisation and spectral whitening (Bensen et al. 2007, GJI 169, 1239).

All functions are batched over windows (rows of a 2-D array), return new arrays and
never divide by zero: denominators are floored at a relative water level and rows
that are entirely zero stay zero.

Joint normalisation of several channels
---------------------------------------
Normalising E and N each on its own changes their amplitude ratio, window by window
and frequency by frequency, before the ENZ correlation tensor is rotated to RTZ: a
purely radial wave then leaks into T (TT/RR about 0.07, RT/RR about 0.27 with
rma whitening, phase-only whitening or one-bit). :func:`joint_time_normalize` and
:func:`joint_whiten` divide every channel of a group by one common weight, computed
from the quadratic mean of the channels' amplitudes,

    ``a = sqrt((|x_1|**2 + ... + |x_C|**2) / C)``

(sample by sample in time, bin by bin in frequency). A common weight is a scalar
factor on the particle-motion vector, so a linearly polarised wave keeps its direction
and rotating after normalisation equals normalising after rotation; the quadratic mean
of the horizontals is also invariant under any rotation of the horizontal axes (1/2 or
E/N), so the result does not depend on how the sensor was installed. For one channel
(``C = 1``) it is exactly the per-channel operation. This follows the practice of
MSNoise and NoisePy of taking one set of weights from the horizontal components (their
mean or maximum envelope); the quadratic mean is chosen here because it is the
rotation-invariant member of that family.

Examples
--------
>>> import numpy as np
>>> x = np.array([[0.5, -2.0, 0.0, 3.0]], dtype=np.float32)
>>> time_normalize(x, "one_bit")
array([[ 1., -1.,  0.,  1.]], dtype=float32)
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.ndimage import uniform_filter1d

from noisecorr.signal.spectra import rfft_frequencies

__all__ = [
    "time_normalize",
    "one_bit",
    "running_absolute_mean",
    "whiten",
    "whitening_taper",
    "smooth_amplitude",
    "floor_denominator",
    "JOINT_MODES",
    "joint_groups",
    "common_amplitude",
    "joint_time_normalize",
    "joint_whiten",
    "joint_whiten_with",
]

logger = logging.getLogger(__name__)


def floor_denominator(den: np.ndarray, water_level: float) -> np.ndarray:
    """Floor a non-negative denominator at ``water_level`` times its per-row maximum.

    Rows whose maximum is zero keep zeros; callers divide with
    ``np.divide(..., where=den > 0)`` so those rows produce zeros, never NaN.
    """
    if not 0 < water_level < 1:
        raise ValueError(f"water_level must be in (0, 1), got {water_level!r}")
    den = np.asarray(den)
    floor = water_level * np.max(den, axis=-1, keepdims=True)
    return np.maximum(den, floor)


def _safe_divide(num: np.ndarray, den: np.ndarray, dtype) -> np.ndarray:
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape), dtype=dtype)
    np.divide(num, den, out=out, where=den > 0)
    return out


def one_bit(windows: np.ndarray) -> np.ndarray:
    """One-bit normalisation: the sign of each sample (0 stays 0), float32."""
    return np.sign(np.asarray(windows)).astype(np.float32)


def running_absolute_mean(windows: np.ndarray, smooth_N: int, water_level: float = 1e-6) -> np.ndarray:
    """Running-absolute-mean normalisation (Bensen et al. 2007, eq. 1).

    ``y[n] = x[n] / w[n]`` with ``w[n] = 1 / (2N + 1) * sum_{j=n-N}^{n+N} |x[j]|``,
    ``N = smooth_N`` samples; the window is reflected at the row ends, and ``w`` is
    floored at ``water_level * max(w)`` so silent stretches do not blow up.

    Parameters
    ----------
    windows : ndarray, shape (..., n_samples)
    smooth_N : int
        Half-width of the averaging window in samples (``smooth_N = 0``: one-bit
        except at exact zeros).
    water_level : float
        Relative floor of the weights, in (0, 1).

    Returns
    -------
    ndarray, float32, same shape.
    """
    x = np.asarray(windows, dtype=np.float32)
    smooth_N = int(smooth_N)
    if smooth_N < 0:
        raise ValueError(f"smooth_N must be >= 0, got {smooth_N}")
    w = uniform_filter1d(np.abs(x), size=2 * smooth_N + 1, axis=-1, mode="reflect")
    return _safe_divide(x, floor_denominator(w, water_level), np.float32)


def time_normalize(windows: np.ndarray, time_norm: str, smooth_N: int = 10) -> np.ndarray:
    """Dispatch on NoisePy's ``time_norm`` name.

    Parameters
    ----------
    windows : ndarray, shape (n_windows, n_samples)
    time_norm : {"none", "one_bit", "rma"}
    smooth_N : int
        Half-width in samples for ``"rma"``.

    Returns
    -------
    ndarray, float32 (a copy for ``"none"``).
    """
    if time_norm == "none":
        return np.array(windows, dtype=np.float32, copy=True)
    if time_norm == "one_bit":
        return one_bit(windows)
    if time_norm == "rma":
        return running_absolute_mean(windows, smooth_N)
    raise ValueError(f"time_norm={time_norm!r} is not one of ['none', 'one_bit', 'rma']")


def whitening_taper(freqs: np.ndarray, freqmin: float, freqmax: float,
                    taper_fraction: float = 0.1) -> np.ndarray:
    """Band weights for spectral whitening: 0 outside, 1 inside, cosine ramps at the edges.

    The weight is exactly 0 for ``f <= freqmin`` and ``f >= freqmax``, rises as a
    half cosine from ``freqmin`` to ``f2 = freqmin * (freqmax / freqmin) ** taper_fraction``,
    is exactly 1 between ``f2`` and ``f3 = freqmax * (freqmin / freqmax) ** taper_fraction``,
    and falls as a half cosine to ``freqmax``: each ramp spans ``taper_fraction`` of
    the band measured in log-frequency (octaves), so both edges are equally gentle.

    Parameters
    ----------
    freqs : ndarray
        Frequencies in Hz.
    freqmin, freqmax : float
        Band edges in Hz, ``0 < freqmin < freqmax``.
    taper_fraction : float
        In ``[0, 0.5]``; 0 gives a boxcar.

    Returns
    -------
    ndarray, float32, same shape as ``freqs``.
    """
    if not 0 < freqmin < freqmax:
        raise ValueError(f"need 0 < freqmin < freqmax, got freqmin={freqmin!r}, freqmax={freqmax!r}")
    if not 0 <= taper_fraction <= 0.5:
        raise ValueError(f"taper_fraction must be in [0, 0.5], got {taper_fraction!r}")
    f = np.asarray(freqs, dtype=np.float64)
    ratio = freqmax / freqmin
    f2 = freqmin * ratio**taper_fraction
    f3 = freqmax / ratio**taper_fraction
    w = np.zeros(f.shape, dtype=np.float64)
    inside = (f > freqmin) & (f < freqmax)
    w[inside] = 1.0
    if taper_fraction > 0:
        lo = inside & (f < f2)
        w[lo] = 0.5 * (1.0 - np.cos(np.pi * (f[lo] - freqmin) / (f2 - freqmin)))
        hi = inside & (f > f3)
        w[hi] = 0.5 * (1.0 - np.cos(np.pi * (freqmax - f[hi]) / (freqmax - f3)))
    return w.astype(np.float32)


def smooth_amplitude(spectra: np.ndarray, smoothspect_N: int) -> np.ndarray:
    """Amplitude spectrum smoothed by a running mean over ``2 * smoothspect_N + 1`` bins.

    float32, same shape as ``spectra``; ``smoothspect_N = 0`` returns ``|spectra|``.
    """
    amp = np.abs(np.asarray(spectra)).astype(np.float32, copy=False)
    n = int(smoothspect_N)
    if n < 0:
        raise ValueError(f"smoothspect_N must be >= 0, got {smoothspect_N}")
    if n == 0:
        return amp
    return uniform_filter1d(amp, size=2 * n + 1, axis=-1, mode="nearest")


def whiten(spectra: np.ndarray, sampling_rate: float, nfft: int, freqmin: float, freqmax: float,
           freq_norm: str = "rma", smoothspect_N: int = 10, water_level: float = 1e-3,
           taper_fraction: float = 0.1) -> np.ndarray:
    """Band-limited spectral whitening of one-sided spectra (Bensen et al. 2007, sec. 3.3).

    ``Y = X / A * W`` where ``W`` is :func:`whitening_taper` (zero outside
    ``(freqmin, freqmax)``, one in the flat part) and ``A`` is

    * ``"phase_only"``: ``|X|`` (unit amplitude in the flat part of the band),
    * ``"rma"``: ``|X|`` smoothed over ``2 * smoothspect_N + 1`` bins (NoisePy's
      ``smoothspect_N``),

    floored at ``water_level * max(A)`` per window; windows with ``A == 0``
    everywhere give zeros. ``"none"`` returns an unchanged copy (no band limit).

    Parameters
    ----------
    spectra : ndarray, shape (n_windows, nfft // 2 + 1), complex
    sampling_rate : float
        Hz.
    nfft : int
        FFT length the spectra were computed with (sets the bin frequencies).
    freqmin, freqmax : float
        Whitening band in Hz.
    freq_norm : {"rma", "phase_only", "none"}
    smoothspect_N : int
    water_level : float
        Relative floor of the amplitude, in (0, 1).
    taper_fraction : float
        See :func:`whitening_taper`.

    Returns
    -------
    ndarray, complex64 (or the input's complex128), same shape.
    """
    x = np.asarray(spectra)
    if not np.iscomplexobj(x):
        raise ValueError("whiten expects complex spectra")
    dtype = np.complex128 if x.dtype == np.complex128 else np.complex64
    if x.shape[-1] != int(nfft) // 2 + 1:
        raise ValueError(f"spectra have {x.shape[-1]} bins, expected nfft // 2 + 1 = {int(nfft) // 2 + 1}")
    if freq_norm == "none":
        return np.array(x, dtype=dtype, copy=True)
    if freq_norm not in ("phase_only", "rma"):
        raise ValueError(f"freq_norm={freq_norm!r} is not one of ['none', 'phase_only', 'rma']")
    # the amplitude is only needed inside the band: computed there (and, smoothed, over the
    # smoothing half-width either side), not over the whole spectrum
    weights, band = _whitening_band(sampling_rate, nfft, freqmin, freqmax, taper_fraction)
    inside = np.flatnonzero(weights > 0)
    if inside.size == 0:
        return _divide_band(x, np.zeros(x.shape[:-1] + (0,), np.float32), weights, band, water_level,
                            dtype, freqmin, freqmax, nfft, sampling_rate)
    lo, hi = int(inside[0]), int(inside[-1]) + 1
    half = int(smoothspect_N) if freq_norm == "rma" else 0
    if half < 0:
        raise ValueError(f"smoothspect_N must be >= 0, got {smoothspect_N}")
    e_lo, e_hi = max(lo - half, 0), min(hi + half, x.shape[-1])
    if freq_norm == "phase_only":
        amp_ext = np.abs(x[..., e_lo:e_hi]).astype(np.float32, copy=False)
    else:
        # mode "nearest" at the slice ends only reaches bins outside [lo, hi) (or is the
        # spectrum's own end): the band values are those of the whole-spectrum smoothing
        amp_ext = smooth_amplitude(x[..., e_lo:e_hi], half)
    amp_band = amp_ext[..., lo - e_lo:hi - e_lo]
    if not isinstance(band, slice):  # a taper with holes inside its span: pick its bins
        amp_band = amp_band[..., band[lo:hi]]
    return _divide_band(x, amp_band, weights, band, water_level, dtype, freqmin, freqmax, nfft,
                        sampling_rate)


#: Values of ``joint_normalisation``: which channels of a sensor share their weights.
JOINT_MODES = ("auto", "horizontal", "all", "none")


def joint_groups(letters, mode: str) -> list[tuple[str, ...]]:
    """Groups of orientation letters normalised together under ``mode``.

    Parameters
    ----------
    letters : iterable of str
        Orientation letters of one sensor's channels after rotation to ZNE (``"E"``,
        ``"N"``, ``"Z"``).
    mode : {"horizontal", "all", "none"}
        ``"horizontal"``: E and N share weights, Z on its own; ``"all"``: E, N and Z
        share weights; ``"none"``: every channel on its own (``"auto"`` must be resolved
        first, see :attr:`noisecorr.signal.params.CorrelationParams.joint_mode`).

    Returns
    -------
    list of tuple of str
        Every letter exactly once, in E, N, Z order; e.g.
        ``joint_groups("ZNE", "horizontal") == [("E", "N"), ("Z",)]``.
    """
    order = {c: k for k, c in enumerate("ENZ")}
    present = sorted(set(letters), key=lambda c: (order.get(c, 3), c))
    if mode == "none":
        return [(c,) for c in present]
    if mode == "horizontal":
        horiz = tuple(c for c in present if c in "EN")
        return ([horiz] if horiz else []) + [(c,) for c in present if c not in "EN"]
    if mode == "all":
        return [tuple(present)] if present else []
    raise ValueError(f"joint_normalisation={mode!r} is not one of {list(JOINT_MODES[1:])} (resolve 'auto' first)")


def common_amplitude(x: np.ndarray) -> np.ndarray:
    """Quadratic mean over the first axis of ``|x|``: ``sqrt(mean_c |x[c]|**2)``.

    Parameters
    ----------
    x : ndarray, shape (n_channels, ...), real or complex
        Channels stacked on the first axis (windows, or spectra, on the others).

    Returns
    -------
    ndarray, float32, shape ``x.shape[1:]``
        The amplitude shared by the channels; ``|x[0]|`` for one channel.
    """
    a = np.asarray(x)
    if a.ndim < 2:
        raise ValueError(f"expected channels stacked on the first axis, got shape {a.shape}")
    if a.shape[0] == 1:
        return np.abs(a[0]).astype(np.float32, copy=False)
    power = np.square(np.abs(a), dtype=np.float64).mean(axis=0)
    return np.sqrt(power).astype(np.float32)


def joint_time_normalize(windows: np.ndarray, time_norm: str, smooth_N: int = 10,
                         water_level: float = 1e-6) -> np.ndarray:
    """Time-domain normalisation of several channels with common weights.

    ``y[c, w, n] = x[c, w, n] / g[w, n]`` where ``a = common_amplitude(x)``
    (:func:`common_amplitude`) and

    * ``"one_bit"``: ``g = a`` (each sample's particle-motion vector scaled to a
      quadratic-mean amplitude of 1; 0 where all channels are 0),
    * ``"rma"``: ``g`` is the running mean of ``a`` over ``2 * smooth_N + 1`` samples
      (reflected at the window ends), floored at ``water_level * max(g)`` per window
      (Bensen et al. 2007, eq. 1, with ``|x|`` replaced by the common amplitude),
    * ``"none"``: a float32 copy.

    With one channel this is exactly :func:`time_normalize`.

    Parameters
    ----------
    windows : ndarray, shape (n_channels, n_windows, n_samples)
        The channels' windows, sample-aligned (same start times).
    time_norm : {"none", "one_bit", "rma"}
    smooth_N : int
        Half-width in samples for ``"rma"``.
    water_level : float
        Relative floor of the ``"rma"`` weights, in (0, 1).

    Returns
    -------
    ndarray, float32, same shape.

    Examples
    --------
    >>> x = np.array([[[3.0, 0.0]], [[4.0, 0.0]]])      # E and N of one 2-sample window
    >>> y = joint_time_normalize(x, "one_bit")[:, 0, 0]   # a = sqrt((9 + 16) / 2)
    >>> round(float(y[1] / y[0]), 6), round(float(np.mean(y ** 2)), 6)   # ratio kept, unit power
    (1.333333, 1.0)
    """
    x = np.asarray(windows, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"windows must have shape (n_channels, n_windows, n_samples), got {x.shape}")
    if time_norm == "none":
        return np.array(x, dtype=np.float32, copy=True)
    if x.shape[0] == 1:
        return time_normalize(x[0], time_norm, smooth_N)[None]
    a = common_amplitude(x)
    if time_norm == "one_bit":
        return _safe_divide(x, a, np.float32)
    if time_norm == "rma":
        smooth_N = int(smooth_N)
        if smooth_N < 0:
            raise ValueError(f"smooth_N must be >= 0, got {smooth_N}")
        g = uniform_filter1d(a, size=2 * smooth_N + 1, axis=-1, mode="reflect")
        return _safe_divide(x, floor_denominator(g, water_level), np.float32)
    raise ValueError(f"time_norm={time_norm!r} is not one of ['none', 'one_bit', 'rma']")


def joint_whiten(spectra: np.ndarray, sampling_rate: float, nfft: int, freqmin: float, freqmax: float,
                 freq_norm: str = "rma", smoothspect_N: int = 10, water_level: float = 1e-3,
                 taper_fraction: float = 0.1) -> np.ndarray:
    """Band-limited whitening of several channels with one common amplitude per bin.

    As :func:`whiten`, but ``A`` is computed from ``common_amplitude(spectra)`` (the
    quadratic mean of the channels' ``|X|``, :func:`common_amplitude`): used as it is
    for ``"phase_only"``, smoothed over ``2 * smoothspect_N + 1`` bins for ``"rma"``,
    floored at ``water_level * max(A)`` per window, and every channel is divided by it.
    With one channel this is exactly :func:`whiten`.

    Parameters
    ----------
    spectra : ndarray, shape (n_channels, n_windows, nfft // 2 + 1), complex
        The channels' spectra of the same windows.
    sampling_rate, nfft, freqmin, freqmax, freq_norm, smoothspect_N, water_level, taper_fraction
        See :func:`whiten`.

    Returns
    -------
    ndarray, complex64 (or the input's complex128), same shape.
    """
    x = np.asarray(spectra)
    if x.ndim != 3:
        raise ValueError(f"spectra must have shape (n_channels, n_windows, n_bins), got {x.shape}")
    if x.shape[0] == 1:
        return whiten(x[0], sampling_rate, nfft, freqmin, freqmax, freq_norm, smoothspect_N,
                      water_level, taper_fraction)[None]
    if not np.iscomplexobj(x):
        raise ValueError("joint_whiten expects complex spectra")
    if x.shape[-1] != int(nfft) // 2 + 1:
        raise ValueError(f"spectra have {x.shape[-1]} bins, expected nfft // 2 + 1 = {int(nfft) // 2 + 1}")
    dtype = np.complex128 if x.dtype == np.complex128 else np.complex64
    if freq_norm == "none":
        return np.array(x, dtype=dtype, copy=True)
    amp = common_amplitude(x)
    if freq_norm == "rma":
        amp = smooth_amplitude(amp, smoothspect_N)
    elif freq_norm != "phase_only":
        raise ValueError(f"freq_norm={freq_norm!r} is not one of ['none', 'phase_only', 'rma']")
    return _divide_in_band(x, amp, sampling_rate, nfft, freqmin, freqmax, water_level, taper_fraction, dtype)


def joint_whiten_with(spectra: np.ndarray, whiten_one) -> np.ndarray:
    """Joint whitening with any per-channel whitening of the form ``Y = X * G(|X|)``.

    ``G`` (real, >= 0: band taper over a floored, possibly smoothed amplitude) depends on
    ``|X|`` only, as for :func:`whiten` and NoisePy's whitening
    (:func:`noisecorr.signal.noisepy_compat.noisepy_whiten`); so the common gain is
    ``G(a) = whiten_one(a) / a`` for the common amplitude ``a`` of
    :func:`common_amplitude`, and every channel is multiplied by it. Equals
    :func:`joint_whiten` for ``whiten_one`` = :func:`whiten` (to float32 rounding).

    Parameters
    ----------
    spectra : ndarray, shape (n_channels, n_windows, n_bins), complex
    whiten_one : callable
        ``whiten_one(spectra (n_windows, n_bins)) -> whitened spectra``, one channel.

    Returns
    -------
    ndarray, complex, same shape (``whiten_one``'s dtype).
    """
    x = np.asarray(spectra)
    if x.ndim != 3 or not np.iscomplexobj(x):
        raise ValueError(f"spectra must be complex, shape (n_channels, n_windows, n_bins), got {x.dtype} {x.shape}")
    if x.shape[0] == 1:
        return np.asarray(whiten_one(x[0]))[None]
    a = common_amplitude(x)
    wa = np.asarray(whiten_one(a.astype(x.dtype)))
    gain = np.zeros(a.shape, dtype=np.float32 if wa.dtype == np.complex64 else np.float64)
    np.divide(wa.real, a, out=gain, where=a > 0)
    return (x * gain).astype(wa.dtype, copy=False)


def _whitening_band(sampling_rate, nfft, freqmin, freqmax, taper_fraction):
    """``(weights, band)``: the whitening taper on the ``nfft // 2 + 1`` bins and the bins
    where it is non-zero, a slice where they are contiguous (always, for a band)."""
    weights = whitening_taper(rfft_frequencies(nfft, sampling_rate), freqmin, freqmax, taper_fraction)
    band = weights > 0
    inside = np.flatnonzero(band)
    if inside.size and inside[-1] - inside[0] + 1 == inside.size:
        band = slice(int(inside[0]), int(inside[-1]) + 1)  # contiguous: views, not copies
    return weights, band


def _divide_in_band(x, amp, sampling_rate, nfft, freqmin, freqmax, water_level, taper_fraction, dtype):
    """``x * W / max(amp, water level)`` inside the band, 0 outside (shared by the whitenings);
    ``amp`` covers every bin (only its band bins are read)."""
    weights, band = _whitening_band(sampling_rate, nfft, freqmin, freqmax, taper_fraction)
    return _divide_band(x, amp[..., band], weights, band, water_level, dtype, freqmin, freqmax, nfft,
                        sampling_rate)


def _divide_band(x, amp_band, weights, band, water_level, dtype, freqmin, freqmax, nfft, sampling_rate):
    """:func:`_divide_in_band` given the amplitude of the band bins only. The product and the
    quotient are formed in the output's band, in place (no temporaries of the band's size):
    the same operations on the same dtypes as ``_safe_divide(x[band] * W[band], den)``, so
    the same numbers."""
    out = np.zeros(x.shape, dtype=dtype)
    if amp_band.shape[-1] == 0:
        logger.warning("whitening band %.4g-%.4g Hz holds no frequency bin (nfft=%d, fs=%g)",
                       freqmin, freqmax, nfft, sampling_rate)
        return out
    den = floor_denominator(amp_band, water_level)
    positive = den > 0
    if not isinstance(band, slice):
        out[..., band] = _safe_divide(x[..., band] * weights[band], den, dtype)
        return out
    out_band = out[..., band]
    np.multiply(x[..., band], weights[band], out=out_band)
    np.divide(out_band, den, out=out_band, where=positive)
    if not positive.all():
        out_band[~positive] = 0
    return out
