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

__all__ = ["dvv_model", "coda_correlations", "DvvHistory"]


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


# ------------------------------------------------------------------ a medium's history
_UNITS = {"s": 1.0, "h": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0, "y": 365.25 * 86400.0}


def _duration(text: str, what: str) -> float:
    """``"365d"``, ``"12h"``, ``"3600s"``, ``"1y"`` -> seconds."""
    t = text.strip().lower()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if t.endswith(unit):
            try:
                return float(t[: -len(unit)]) * _UNITS[unit]
            except ValueError:
                break
    raise ValueError(f"{what}: expected a duration like 365d, 12h or 3600s, got {text!r}")


class DvvHistory:
    """dv/v of the synthetic medium as a function of time: a sum of steps, linear trends
    and seasonal sines, each given as a string (the ``--dvv`` options of ``noisecorr synth``).

    * ``step:DATE:AMP``: ``+AMP`` from ``DATE`` (ISO, UTC) on;
    * ``trend:RATE/day`` (or ``/h``, ``/s``, ``/y``): ``RATE`` per unit of time since ``start``;
    * ``sine:AMP:PERIOD[:PHASE]``: ``AMP sin(2 pi (t - start - PHASE) / PERIOD)``, durations
      like ``365d``, ``12h``.

    Values are fractions (0.001 = 0.1 %), ``dv/v > 0`` faster. :meth:`at` evaluates the
    history at the UTC midnight that begins each time's day: the medium is that of its day,
    as the Green's functions of each day of ``noisecorr synth --days`` are.

    Examples
    --------
    >>> from obspy import UTCDateTime
    >>> h = DvvHistory(["step:2024-01-03:-0.002", "trend:0.0001/day"], UTCDateTime(2024, 1, 1))
    >>> [round(float(v), 6) for v in h.daily(4)]
    [0.0, 0.0001, -0.0018, -0.0017]
    """

    def __init__(self, specs, start):
        from obspy import UTCDateTime

        self.specs = [str(s) for s in ([specs] if isinstance(specs, str) else specs)]
        self.start = UTCDateTime(start)
        self._terms = [self._parse(s) for s in self.specs]

    def _parse(self, spec: str):
        from obspy import UTCDateTime

        kind, _, rest = spec.partition(":")
        kind = kind.strip().lower()
        try:
            if kind == "step":
                date, _, amp = rest.rpartition(":")
                return ("step", float(UTCDateTime(date).timestamp), float(amp))
            if kind == "trend":
                rate, _, unit = rest.partition("/")
                return ("trend", float(rate) / _duration("1" + (unit or "day"), spec))
            if kind == "sine":
                parts = rest.split(":")
                if len(parts) not in (2, 3):
                    raise ValueError("sine needs AMP:PERIOD[:PHASE]")
                period = _duration(parts[1], spec)
                phase = _duration(parts[2], spec) if len(parts) == 3 else 0.0
                if not period > 0:
                    raise ValueError("the period must be > 0")
                return ("sine", float(parts[0]), period, phase)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"--dvv {spec!r}: {exc}") from None
        raise ValueError(f"--dvv {spec!r}: expected step:DATE:AMP, trend:RATE/day or "
                         f"sine:AMP:PERIOD[:PHASE]")

    def at(self, posix) -> np.ndarray:
        """dv/v (fraction) of the day of each POSIX time (s)."""
        t = np.floor(np.asarray(posix, dtype=np.float64) / 86400.0) * 86400.0
        t0 = float(self.start.timestamp)
        out = np.zeros_like(t)
        for term in self._terms:
            if term[0] == "step":
                out = out + np.where(t >= term[1], term[2], 0.0)
            elif term[0] == "trend":
                out = out + term[1] * (t - np.floor(t0 / 86400.0) * 86400.0)
            else:
                out = out + term[1] * np.sin(2.0 * np.pi * (t - t0 - term[3]) / term[2])
        return out

    def daily(self, n_days: int) -> np.ndarray:
        """dv/v of ``n_days`` days from the day of ``start``."""
        day0 = np.floor(float(self.start.timestamp) / 86400.0) * 86400.0
        return self.at(day0 + 86400.0 * np.arange(int(n_days)))

    def describe(self) -> str:
        return " + ".join(self.specs)

    def to_json(self) -> dict:
        return {"dvv": self.specs, "start": str(self.start)}
