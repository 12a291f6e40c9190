"""Dispersion plots: the FTAN image of one pair with its picked ridge, the curves of many
pairs over each other, and the period-distance coverage (trusted versus flagged)."""

from __future__ import annotations

import warnings

import numpy as np

from noisecorr.results.plot import _figure, _save
from noisecorr.signal.ftan import alpha_for, ftan_image

__all__ = ["plot_ftan", "plot_curves", "plot_coverage"]


def _period_axis(ax, periods):
    """Log period axis labelled in plain seconds at 1-2-5 steps."""
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    lo, hi = float(np.min(periods)), float(np.max(periods))
    ticks = [m * 10.0 ** e for e in range(-2, 4) for m in (1, 2, 5) if lo * 0.9 <= m * 10.0 ** e <= hi * 1.1]
    ax.xaxis.set_major_locator(FixedLocator(ticks or [lo, hi]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("period (s)")


def plot_ftan(signal, dt: float, distance_km: float, periods, group_velocity, trusted=None,
              phase_velocity=None, title: str = "", path=None, velocities=None,
              alpha0: float = 20.0):
    """FTAN image (envelope normalised per period) in the period-group velocity plane,
    with the picked group velocities (and phase velocities, dashed) over it.

    ``signal`` is the one-sided signal FTAN analysed (``t = k dt``); ``trusted`` marks
    the picks drawn filled (others hollow).
    """
    periods = np.asarray(periods, dtype=float)
    velocities = np.linspace(1.5, 5.0, 141) if velocities is None else np.asarray(velocities)
    fine = np.geomspace(periods[0], periods[-1], 60)
    img = ftan_image(signal, dt, distance_km, fine, velocities, alpha0=alpha0)
    fig = _figure((7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    mesh = ax.pcolormesh(fine, velocities, img.T, shading="auto", cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(mesh, ax=ax, label="normalised envelope")
    u = np.asarray(group_velocity, dtype=float)
    ok = np.ones(u.shape, bool) if trusted is None else np.asarray(trusted, bool)
    ax.plot(periods, u, "-", color="white", lw=1)
    ax.plot(periods[ok], u[ok], "o", color="white", ms=5, label="group velocity (trusted)")
    ax.plot(periods[~ok], u[~ok], "o", mfc="none", color="white", ms=5, label="flagged")
    if phase_velocity is not None:
        ax.plot(periods, phase_velocity, "--", color="orange", lw=1.5, label="phase velocity")
    _period_axis(ax, fine)
    ax.set_ylabel("velocity (km/s)")
    ax.set_ylim(velocities[0], velocities[-1])
    a = float(alpha_for([distance_km], alpha0)[0])
    ax.set_title(title or f"FTAN, {distance_km:.1f} km, alpha {a:.1f}")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_curves(table, kind: str = "group", path=None, trusted_only: bool = True,
                max_pairs: int = 2000):
    """Curves of many pairs over each other (``kind`` ``"group"`` or ``"phase"``), with
    the median of the trusted values per period."""
    if kind not in ("group", "phase"):
        raise ValueError(f"kind must be 'group' or 'phase', got {kind!r}")
    v = table.group_velocity if kind == "group" else table.phase_velocity
    v = np.where(table.trusted, v, np.nan) if trusted_only else v
    fig = _figure((7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    n = min(len(table), max_pairs)
    step = max(1, len(table) // n)
    for row in v[::step]:
        ax.plot(table.periods, row, "-", color="0.4", alpha=0.3, lw=0.8)
    with warnings.catch_warnings():  # periods without any trusted value: NaN, drawn as gaps
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(v, axis=0) if len(v) else v
    ax.plot(table.periods, med, "-o", color="C3", lw=2, ms=4, label="median")
    _period_axis(ax, table.periods)
    ax.set_ylabel(f"{kind} velocity (km/s)")
    ax.set_title(f"{kind} velocity, {table.component}, {len(table)} pairs"
                 + (" (trusted values)" if trusted_only else ""))
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_coverage(table, path=None, n_wavelengths: float | None = None):
    """Trusted (filled) and flagged (grey) measurements in the period-distance plane,
    with the far-field line ``d = n c T`` for the median trusted phase velocity."""
    fig = _figure((7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    d = np.broadcast_to(table.distance_km[:, None], table.flags.shape)
    t = np.broadcast_to(table.periods[None], table.flags.shape)
    ok = table.trusted
    ax.scatter(t[~ok], d[~ok], s=6, color="0.75", label="flagged")
    ax.scatter(t[ok], d[ok], s=8, color="C0", label="trusted")
    n_wl = n_wavelengths or table.params.get("n_wavelengths", 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        c = np.nanmedian(np.where(ok, table.phase_velocity, np.nan), axis=0) if ok.any() else None
    if c is not None and np.isfinite(c).any():
        ax.plot(table.periods, n_wl * c * table.periods, "k--", lw=1,
                label=f"{n_wl:g} wavelengths")
    _period_axis(ax, table.periods)
    ax.set_ylabel("inter-station distance (km)")
    ax.set_title(f"coverage, {table.component}: {int(ok.sum())} of {ok.size} trusted")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)
