"""Correlation time series of a medium whose velocity changes with time (a known dv/v).

:func:`dvv_model` gives dv/v per day from a step, a linear trend and a seasonal sine;
:func:`coda_correlations` builds, for each pair and day, the correlation (Green's function)
of that day's medium: a ballistic arrival at ``distance / velocity`` on both sides and a
diffuse coda of ``n_scatterers`` single-scattering arrivals with an exponential decay, every
arrival time divided by ``1 + dv/v`` of the day (the medium is uniformly faster or slower,
so every path's travel time scales). Each arrival is a Gabor wavelet evaluated exactly at
its time, so the truth is exact: no resampling or interpolation of a reference trace is
involved (the stretching method's own approximation is not built into the data).

Sign: ``dv/v > 0`` is a velocity increase; arrivals come earlier
(see :mod:`noisecorr.signal.dvv`).

Examples
--------
>>> import numpy as np
>>> model = dvv_model(10, step=(5, -0.002))
>>> model[:5].tolist() == [0.0] * 5, float(model[5])
(True, -0.002)
"""

from __future__ import annotations

import numpy as np

__all__ = ["dvv_model", "coda_correlations"]


def dvv_model(n_days: int, *, step: tuple[float, float] | None = None, trend: float = 0.0,
              seasonal: tuple[float, float, float] | None = None) -> np.ndarray:
    """dv/v (fraction) on each of ``n_days`` days.

    Parameters
    ----------
    n_days : int
    step : (day, amplitude), optional
        A change of ``amplitude`` from day ``day`` on (e.g. a co-seismic drop, negative).
    trend : float
        Linear change per day (fraction per day), zero on day 0.
    seasonal : (amplitude, period_days, phase_days), optional
        ``amplitude * sin(2 pi (day - phase_days) / period_days)``.
    """
    d = np.arange(int(n_days), dtype=np.float64)
    out = trend * d
    if step is not None:
        out = out + np.where(d >= step[0], float(step[1]), 0.0)
    if seasonal is not None:
        amp, period, phase = seasonal
        out = out + amp * np.sin(2.0 * np.pi * (d - phase) / period)
    return out


def coda_correlations(distances_km, dvv: np.ndarray, *, sampling_rate: float = 20.0,
                      maxlag: float = 120.0, velocity: float = 3.0, f0: float = 0.5,
                      bandwidth: float = 0.5, decay: float = 30.0, n_scatterers: int = 400,
                      noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daily correlations of each pair in a medium with the given dv/v per day.

    Parameters
    ----------
    distances_km : array (n_pairs,)
    dvv : array (n_days,) or (n_pairs, n_days)
        Relative velocity change each day (fraction).
    sampling_rate : float
        Hz.
    maxlag : float
        Seconds; lags ``-maxlag..maxlag``.
    velocity : float
        km/s of the unperturbed medium.
    f0, bandwidth : float
        Centre frequency and ~1/e half-width (Hz) of the Gabor wavelets.
    decay : float
        Seconds: coda amplitude ``exp(-t / decay)``, ``t`` the arrival time.
    n_scatterers : int
        Coda arrivals per pair and side (arrival times uniform between the ballistic time
        and ``maxlag``).
    noise : float
        Standard deviation of noise added to every day, relative to the RMS of the day's
        clean trace (0: clean); the noise has the wavelets' band (correlations are
        band-passed), independent from day to day.
    seed : int

    Returns
    -------
    (lags, reference, series)
        ``lags`` (n_lags,) s; ``reference`` (n_pairs, n_lags) float32, the correlation of
        the unperturbed medium (dv/v = 0, no noise); ``series`` (n_pairs, n_days, n_lags)
        float32.
    """
    rng = np.random.default_rng(seed)
    dist = np.atleast_1d(np.asarray(distances_km, dtype=np.float64))
    n_pairs = dist.size
    dvv = np.asarray(dvv, dtype=np.float64)
    dvv = np.broadcast_to(dvv, (n_pairs, dvv.shape[-1]))
    n_days = dvv.shape[1]
    L = int(round(maxlag * sampling_rate))
    lags = np.arange(-L, L + 1) / sampling_rate
    sigma = 1.0 / (np.pi * bandwidth)                 # wavelet envelope exp(-(t/sigma)^2)

    ref = np.zeros((n_pairs, lags.size), dtype=np.float64)
    series = np.zeros((n_pairs, n_days, lags.size), dtype=np.float64)
    for p in range(n_pairs):                        # pairs are few in tests; days are batched
        t_ball = dist[p] / velocity
        times, amps = [], []
        for sign in (1.0, -1.0):                                 # causal, acausal side
            t_arr = np.concatenate(([t_ball], rng.uniform(t_ball, maxlag, n_scatterers)))
            amp = np.concatenate(([3.0], rng.standard_normal(n_scatterers))) * np.exp(-t_arr / decay)
            times.append(sign * t_arr)
            amps.append(amp)
        times = np.concatenate(times)                            # signed arrival times (s)
        amps = np.concatenate(amps)

        def traces(scale):                                       # scale (k,) -> (k, n_lags)
            t = lags[None, None, :] - times[None, :, None] * scale[:, None, None]
            return np.einsum("a,kal->kl", amps,
                             np.exp(-(t / sigma) ** 2) * np.cos(2.0 * np.pi * f0 * t))

        ref[p] = traces(np.ones(1))[0]
        k = max(1, int(64 * 2**20 // (8 * times.size * lags.size)))
        for d0 in range(0, n_days, k):
            d1 = min(d0 + k, n_days)
            series[p, d0:d1] = traces(1.0 / (1.0 + dvv[p, d0:d1]))
    if noise > 0:
        # noise in the band of the signal (correlations are band-passed), spectrum shaped
        # like the wavelets', scaled to ``noise`` times the RMS of each clean trace
        f = np.fft.rfftfreq(lags.size, 1.0 / sampling_rate)
        shape = np.exp(-((f - f0) / bandwidth) ** 2)
        n = np.fft.irfft(np.fft.rfft(rng.standard_normal(series.shape), axis=-1) * shape,
                         lags.size, axis=-1)
        n /= np.sqrt(np.mean(n**2, axis=-1, keepdims=True))
        rms = np.sqrt(np.mean(series**2, axis=-1, keepdims=True))
        series = series + noise * rms * n
    return lags, ref.astype(np.float32), series.astype(np.float32)
