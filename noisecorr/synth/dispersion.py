"""Dispersive media for the synthetic generator: a phase velocity ``c(f)`` with its exact
group velocity, and the expected (noise-free) correlation of a diffuse field.

A model gives the phase velocity ``c(f)`` (km/s) as a smooth function of frequency ``f``
(Hz) and its derivative, so the group velocity

.. math::

    U(f) = \\frac{d\\omega}{dk} = \\frac{c}{1 - (f / c)\\, dc/df}

is exact (``k = 2 pi f / c``, ``dk/dw = (1 - (f/c) dc/df) / c``). A table is interpolated
by a monotone cubic in log-period (PCHIP), whose derivative is exact for the interpolant:
the truth is then the interpolant's ``U``, not a finite difference.

:func:`diffuse_ccf` is the ensemble mean of the correlation of a uniform ring of far
sources (the generator's set-up, Aki 1957; Snieder 2004): in the frequency domain
``C(f) = P(f) J0(k(f) d)``, ``P`` the source power, with the sign convention of noisecorr
(``C(tau) = sum_t a(t) b(t + tau)``, energy from A to B at positive lags). Its causal side
is ``P H0^(2)(k d) / 2``, far field ``sqrt(2 / (pi k d)) exp(-i (k d - pi / 4))``: a
wave-train with group delay ``d / U`` and phase ``omega t - k d + pi / 4``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.interpolate import PchipInterpolator
from scipy.special import j0

__all__ = ["DispersionModel", "diffuse_ccf", "parse_dispersion"]


@dataclass(frozen=True)
class DispersionModel:
    """Phase velocity as a function of frequency.

    Use :meth:`linear_period`, :meth:`table` or :meth:`constant`.

    Attributes
    ----------
    kind : str
        ``"constant"``, ``"linear_period"`` or ``"table"``.
    params : tuple
        The model's numbers (see the constructors).
    """

    kind: str
    params: tuple

    # ----------------------------------------------------------- constructors
    @classmethod
    def constant(cls, velocity: float) -> "DispersionModel":
        """No dispersion: ``c = U = velocity`` (km/s)."""
        if not velocity > 0:
            raise ValueError(f"velocity must be positive, got {velocity}")
        return cls("constant", (float(velocity),))

    @classmethod
    def linear_period(cls, c0: float, slope: float, t0: float = 1.0) -> "DispersionModel":
        """``c(T) = c0 + slope * (T - t0)`` km/s for period ``T = 1/f`` s.

        Normal dispersion (velocity increasing with period, as for Rayleigh waves in a
        crust over a faster mantle) has ``slope > 0``; then ``U < c``.
        ``dc/df = -slope / f^2`` and ``U = c / (1 + slope / (f c))``.
        """
        if not c0 > 0:
            raise ValueError(f"c0 must be positive, got {c0}")
        return cls("linear_period", (float(c0), float(slope), float(t0)))

    @classmethod
    def table(cls, periods, velocities) -> "DispersionModel":
        """Phase velocities ``velocities`` (km/s) at ``periods`` (s), interpolated by PCHIP
        in ``log(T)`` and held constant outside the table."""
        t = np.asarray(periods, dtype=float)
        v = np.asarray(velocities, dtype=float)
        if t.ndim != 1 or t.shape != v.shape or t.size < 2:
            raise ValueError("periods and velocities must be 1-D of the same length >= 2")
        if np.any(np.diff(t) <= 0) or np.any(t <= 0) or np.any(v <= 0):
            raise ValueError("periods must increase and be positive; velocities positive")
        return cls("table", (tuple(t.tolist()), tuple(v.tolist())))

    # ------------------------------------------------------------- evaluation
    def _pchip(self):
        t, v = self.params
        return PchipInterpolator(np.log(t), v, extrapolate=False)

    def phase_velocity(self, f) -> np.ndarray:
        """``c(f)`` in km/s for frequencies ``f`` (Hz, > 0)."""
        f = np.asarray(f, dtype=float)
        if self.kind == "constant":
            return np.full(f.shape, self.params[0])
        if self.kind == "linear_period":
            c0, slope, t0 = self.params
            return c0 + slope * (1.0 / f - t0)
        t, v = self.params
        x = np.clip(-np.log(f), np.log(t[0]), np.log(t[-1]))
        return self._pchip()(x)

    def dc_df(self, f) -> np.ndarray:
        """``dc/df`` in km/s per Hz (exact for the model or the interpolant)."""
        f = np.asarray(f, dtype=float)
        if self.kind == "constant":
            return np.zeros(f.shape)
        if self.kind == "linear_period":
            return -self.params[1] / f ** 2
        t, _ = self.params
        x = -np.log(f)
        inside = (x > np.log(t[0])) & (x < np.log(t[-1]))
        d = self._pchip().derivative()(np.clip(x, np.log(t[0]), np.log(t[-1])))
        return np.where(inside, -d / f, 0.0)  # dx/df = -1/f

    def group_velocity(self, f) -> np.ndarray:
        """Exact ``U(f) = c / (1 - (f / c) dc/df)`` in km/s."""
        f = np.asarray(f, dtype=float)
        c = self.phase_velocity(f)
        return c / (1.0 - f / c * self.dc_df(f))

    def describe(self) -> str:
        """One line for logs and file attributes."""
        if self.kind == "constant":
            return f"constant c={self.params[0]} km/s"
        if self.kind == "linear_period":
            return "linear_period c(T)={} + {} (T - {}) km/s".format(*self.params)
        return f"table of {len(self.params[0])} periods {self.params[0][0]}-{self.params[0][-1]} s"


def parse_dispersion(text: str) -> DispersionModel:
    """A model from a command-line string.

    ``"C0,SLOPE"`` or ``"C0,SLOPE,T0"``: :meth:`DispersionModel.linear_period`;
    a path to a CSV file with columns ``period,velocity`` (header optional):
    :meth:`DispersionModel.table`.
    """
    from pathlib import Path

    path = Path(text)
    if path.suffix.lower() in (".csv", ".txt") or path.exists():
        if not path.exists():
            raise ValueError(f"dispersion table {path} does not exist")
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            line = line.split("#")[0].strip()
            if not line:
                continue
            parts = [p.strip() for p in line.replace(";", ",").split(",")]
            try:
                rows.append((float(parts[0]), float(parts[1])))
            except (ValueError, IndexError):
                if rows or n > 1:
                    raise ValueError(f"{path}:{n}: expected 'period,velocity', got {line!r}") from None
        if not rows:
            raise ValueError(f"{path}: no rows 'period,velocity'")
        t, v = zip(*rows)
        return DispersionModel.table(t, v)
    try:
        numbers = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"dispersion must be 'C0,SLOPE[,T0]' (km/s, km/s per s) or a CSV "
                         f"table of period,velocity; got {text!r}") from None
    if len(numbers) not in (2, 3):
        raise ValueError(f"dispersion must be 'C0,SLOPE[,T0]', got {text!r}")
    return DispersionModel.linear_period(*numbers)


def diffuse_ccf(distances_km, model: DispersionModel, sampling_rate: float, maxlag: float,
                band=(0.05, 0.1, 1.0, 2.0), dtype=np.float32) -> np.ndarray:
    """Expected correlations of a diffuse field, ``(len(distances), 2 h + 1)`` on the lag
    axis ``-maxlag..maxlag`` (``h = round(maxlag * fs)``).

    ``C(f) = W(f)^2 J0(2 pi f d / c(f))`` with ``W`` the generator's band taper
    (:func:`noisecorr.synth.generator.band_taper`); computed on a grid of twice the lag
    span (so nothing wraps within ``+/- maxlag`` for a band that decays within it) and
    normalised to a peak of 1 per pair.

    Examples
    --------
    >>> m = DispersionModel.constant(3.0)
    >>> c = diffuse_ccf([30.0], m, 5.0, 60.0, band=(0.05, 0.1, 1.0, 2.0))
    >>> c.shape, int(abs(abs(c[0].argmax() - 300) - 50)) <= 2
    ((1, 601), True)
    """
    from .generator import band_taper

    d = np.asarray(distances_km, dtype=float).reshape(-1)
    h = int(round(maxlag * sampling_rate))
    n = scipy.fft.next_fast_len(4 * h + 2, real=True)
    f = np.fft.rfftfreq(n, 1.0 / sampling_rate)
    w = band_taper(f, band)
    nz = np.flatnonzero(w > 0)
    fz = f[nz]
    k = 2 * np.pi * fz / model.phase_velocity(fz)
    spec = np.zeros((d.size, f.size))
    spec[:, nz] = (w[nz] ** 2)[None] * j0(k[None] * d[:, None])
    x = np.fft.irfft(spec, n, axis=-1)
    out = np.concatenate([x[:, n - h:], x[:, :h + 1]], axis=-1)
    out /= np.maximum(np.abs(out).max(axis=-1, keepdims=True), np.finfo(float).tiny)
    return out.astype(dtype)
