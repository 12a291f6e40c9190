"""NoisePy-compatible variants of the steps where noisecorr deliberately differs.

noisecorr's defaults follow Bensen et al. (2007) with choices made for correctness; NoisePy
0.9.93 (Jiang & Denolle 2020, SRL 91(3)) makes other choices. ``configs/noisepy.yaml``
switches every step below to NoisePy's behaviour; ``scripts/compare_noisepy.py`` measures
each step against NoisePy itself, run in its own environment. The differences, step by step:

========================  ==============================  =====================================
step                      noisecorr default               NoisePy 0.9.93 (preset value)
========================  ==============================  =====================================
FFT length                ``zero_pad: true``: >= 2n - 1,  n (``next_fast_len``): circular
                          linear correlation              correlation (``zero_pad: false``)
window taper              5 % cosine at each end          Hann ramps of min(20 samples, 5 %)
                          (``window_taper: 0.05``)        (``window_taper_max: 20`` samples)
outlier rejection         ``max|x - mean|`` >             ``max|x| > max_over_std * std`` of
                          ``max_over_std * std`` of the   the whole chunk
                          window                          (``outlier_reference: chunk``)
                          ``outlier_reference: window``
whitening band            flat inside, cosine ramps       flat between the bins nearest
                          *inside* the band over 10 % of  ``freqmin``/``freqmax``, cos^2 ramps
                          its log width                   of 100 bins *outside* it
                                                          (``whitening_style: noisepy``)
whitening smoothing       running mean over               running mean over ``smoothspect_N``
                          ``2 smoothspect_N + 1`` bins    bins (full width; <= 1: phase only)
lag axis                  exact: lag k at sample L + k    ``ifftshift`` on an even nfft: every
                                                          lag labelled one sample late
                                                          (noisecorr does not copy this)
last window               the last window that fits is    dropped: ``floor((T - cc_len) /
                          kept                            step)`` windows (not copied: one
                                                          window more data)
========================  ==============================  =====================================

Not copied either: NoisePy subtracts the mean of the one-sided cross-spectrum (a spike at
lag 0) and rejects stacked windows whose peak exceeds 20 times the median peak;
``scripts/compare_noisepy.py`` shows both change the stacks by less than 1e-4 in
correlation coefficient on its synthetic. Preprocessing (bandpass corners, response
removal, chunk-edge taper) differs too, see :mod:`noisecorr.signal.preprocess`; its effect
on the stacks is measured by the script as the ``preprocess`` step.

Examples
--------
>>> import numpy as np
>>> noisepy_moving_average(np.array([[1.0, 2.0, 3.0, 4.0]]), 2).round(2).tolist()
[[1.0, 1.5, 2.5, 3.5]]
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.ndimage import convolve1d

from noisecorr.signal.spectra import rfft_frequencies

__all__ = ["NOISEPY_WHITEN_TAPER_BINS", "noisepy_moving_average", "noisepy_whitening_bins",
           "noisepy_whitening_weights", "noisepy_whiten", "window_taper"]

logger = logging.getLogger(__name__)

#: Width in bins of NoisePy's cos^2 ramps outside the whitening band (``n_taper=100``).
NOISEPY_WHITEN_TAPER_BINS = 100


def noisepy_moving_average(a: np.ndarray, n: int) -> np.ndarray:
    """NoisePy's ``moving_ave``/``moving_ave_2D`` along the last axis, batched.

    A boxcar of ``n`` samples (the *full* width; for even ``n`` the window covers
    ``n // 2`` samples before and ``n // 2 - 1`` after, as ``np.convolve(mode="same")``
    places it), the ends extended by repeating the first and last value.

    Parameters
    ----------
    a : ndarray, (..., m)
    n : int
        Full window width in samples, >= 1.

    Returns
    -------
    ndarray, float64, same shape.
    """
    x = np.asarray(a, dtype=np.float64)
    n = int(n)
    if n < 1:
        raise ValueError(f"moving average width must be >= 1, got {n}")
    if n == 1:
        return x.copy()
    # np.convolve(temp, ones(n)/n, "same") centres the kernel at offset (n - 1) // 2
    # of the full convolution; convolve1d's origin shifts it the same way.
    origin = -1 if n % 2 == 0 else 0
    return convolve1d(x, np.full(n, 1.0 / n), axis=-1, mode="nearest", origin=origin)


def noisepy_whitening_bins(nfft: int, sampling_rate: float, freqmin: float,
                           freqmax: float) -> tuple[int, int, int, int]:
    """``(ix00, ix0, ix1, ix11)``: NoisePy's whitening bins on the one-sided grid.

    ``ix0``/``ix1`` are the bins nearest ``freqmin``/``freqmax``; the spectrum is
    normalised on ``ix00:ix11`` (``ix0 - 100`` to ``ix1 + 100``, clipped to the grid),
    rises as ``cos^2`` on ``ix00:ix0``, is flat on ``ix0:ix1`` and falls on ``ix1:ix11``;
    everything else is zero.
    """
    freqs = rfft_frequencies(nfft, sampling_rate)
    n_freq = freqs.size
    ix0 = int(np.argmin(np.abs(freqs - freqmin)))
    ix1 = int(np.argmin(np.abs(freqs - freqmax)))
    ix00 = max(ix0 - NOISEPY_WHITEN_TAPER_BINS, 0)
    # NoisePy clips at nfft on the two-sided grid; on the one-sided grid that is n_freq
    ix11 = min(ix1 + NOISEPY_WHITEN_TAPER_BINS, n_freq)
    return ix00, ix0, ix1, ix11


def noisepy_whitening_weights(nfft: int, sampling_rate: float, freqmin: float,
                              freqmax: float) -> np.ndarray:
    """Band weights of NoisePy's whitening, one per one-sided bin (float64).

    1 on ``ix0:ix1``, ``cos^2`` of ``linspace(pi/2, pi)`` on ``ix00:ix0``, ``cos^2`` of
    ``linspace(0, pi/2)`` on ``ix1:ix11``, 0 elsewhere (see
    :func:`noisepy_whitening_bins`).
    """
    ix00, ix0, ix1, ix11 = noisepy_whitening_bins(nfft, sampling_rate, freqmin, freqmax)
    w = np.zeros(int(nfft) // 2 + 1, dtype=np.float64)
    w[ix00:ix11] = 1.0
    w[ix00:ix0] *= np.cos(np.linspace(np.pi / 2.0, np.pi, ix0 - ix00)) ** 2
    w[ix1:ix11] *= np.cos(np.linspace(0.0, np.pi / 2.0, ix11 - ix1)) ** 2
    return w


def noisepy_whiten(spectra: np.ndarray, sampling_rate: float, nfft: int, freqmin: float,
                   freqmax: float, freq_norm: str = "rma", smoothspect_N: int = 10,
                   water_level: float = 1e-3) -> np.ndarray:
    """NoisePy 0.9.93's ``whiten_2D`` on one-sided spectra.

    On the bins ``ix00:ix11`` of :func:`noisepy_whitening_bins`, ``Y = X / A * W`` with
    ``A = |X|`` for ``freq_norm="phase_only"`` or ``smoothspect_N <= 1`` (NoisePy keeps
    the phase only then), else :func:`noisepy_moving_average` of ``|X|`` over
    ``smoothspect_N`` bins computed on ``ix00:ix11`` only (its ends repeat the edge
    values); ``W`` is :func:`noisepy_whitening_weights`; zero elsewhere. Unlike NoisePy,
    ``A`` is floored at ``water_level`` times its maximum (NoisePy divides by zero and
    returns NaN for a window with a silent band), which changes nothing on real data.

    Parameters and return value as :func:`noisecorr.signal.normalize.whiten`.
    """
    from noisecorr.signal.normalize import floor_denominator

    x = np.asarray(spectra)
    if not np.iscomplexobj(x):
        raise ValueError("whiten expects complex spectra")
    dtype = np.complex128 if x.dtype == np.complex128 else np.complex64
    if x.shape[-1] != int(nfft) // 2 + 1:
        raise ValueError(f"spectra have {x.shape[-1]} bins, expected nfft // 2 + 1 = {int(nfft) // 2 + 1}")
    if freq_norm == "none":
        return np.array(x, dtype=dtype, copy=True)
    if freq_norm not in ("rma", "phase_only"):
        raise ValueError(f"freq_norm={freq_norm!r} is not one of ['none', 'phase_only', 'rma']")
    ix00, _, _, ix11 = noisepy_whitening_bins(nfft, sampling_rate, freqmin, freqmax)
    out = np.zeros(x.shape, dtype=dtype)
    if ix11 <= ix00:
        logger.warning("whitening band %.4g-%.4g Hz holds no frequency bin (nfft=%d, fs=%g)",
                       freqmin, freqmax, nfft, sampling_rate)
        return out
    seg = x[..., ix00:ix11]
    amp = np.abs(seg).astype(np.float64)
    if freq_norm == "rma" and smoothspect_N > 1:
        amp = noisepy_moving_average(amp, smoothspect_N)
    den = floor_denominator(amp, water_level)
    w = noisepy_whitening_weights(nfft, sampling_rate, freqmin, freqmax)[ix00:ix11]
    res = np.zeros(seg.shape, dtype=dtype)
    np.divide(seg * w, den, out=res, where=den > 0)
    out[..., ix00:ix11] = res
    return out


def window_taper(n: int, fraction: float = 0.05, max_samples: int | None = None) -> np.ndarray:
    """Taper applied to every correlation window of ``n`` samples (float32).

    Without ``max_samples`` a Tukey window with ``fraction`` of the window ramped at each
    end (noisecorr's default, ``fraction=0.05``). With ``max_samples``, NoisePy's
    ``taper``: Hann ramps of ``wlen = min(max_samples, int(fraction * n))`` samples at each
    end (the halves of a Hann window of ``2 wlen + 1`` points; NoisePy uses 20 samples).
    """
    n = int(n)
    if not 0 <= fraction <= 0.5:
        raise ValueError(f"window taper fraction must be in [0, 0.5], got {fraction!r}")
    from noisecorr.signal.filters import tukey  # scipy.signal.windows.tukey's, without its import

    if max_samples is None:
        return tukey(n, alpha=2 * fraction).astype(np.float32)
    wlen = min(int(max_samples), int(n * fraction))
    win = np.ones(n, dtype=np.float64)
    if wlen > 0:
        # obspy's "hann" taper function is scipy.signal.windows.hann (symmetric): a Tukey
        # window with alpha 1
        sides = tukey(2 * wlen if 2 * wlen == n else 2 * wlen + 1, 1.0)
        win[:wlen] = sides[:wlen]
        win[n - wlen:] = sides[len(sides) - wlen:]
    return win.astype(np.float32)
