"""Plots of dv/v (matplotlib Agg, no pyplot state; see :mod:`noisecorr.results.plot`).

* :func:`dvv_timeseries`: dv/v (percent) against time with error bars, the network average
  over the stations' (or chosen pairs');
* :func:`dvv_matrix`: the per-pair dv/v as an image (time x pairs, ordered by distance);
* :func:`series_image`: the correlation time series of one pair as an image (time x lag)
  with the coda window shaded.
"""

from __future__ import annotations

import numpy as np

from noisecorr.results.plot import _figure, _save

__all__ = ["dvv_timeseries", "dvv_matrix", "series_image"]


def _axis(times):
    """``(scale, label)``: time in days (or hours for spans under two days) after the first."""
    t = np.asarray(times, dtype=np.float64)
    span = (t[-1] - t[0]) if t.size > 1 else 0.0
    first = _dates(t[:1])[0]
    if span < 2 * 86400.0:
        return 3600.0, f"hours after {first:%Y-%m-%d %H:%M} UTC"
    return 86400.0, f"days after {first:%Y-%m-%d %H:%M} UTC"


def _dates(times):
    import datetime as dt

    return [dt.datetime.fromtimestamp(float(t), tz=dt.timezone.utc) for t in times]


def dvv_timeseries(result, path=None, stations=True, pairs=()):
    """dv/v against time: the network average (black, with 1-sigma bars), each station's
    average (thin lines) and any ``pairs`` given as ``(source, receiver)``."""
    fig = _figure((10, 4.5))
    ax = fig.add_subplot()
    t = _dates(result.times)
    if stations:
        for code, (v, e, n) in result.stations.items():
            ax.plot(t, 100 * v, lw=0.8, alpha=0.6, label=code if len(result.stations) <= 10 else None)
    for p in pairs:
        i = result.pairs.index(tuple(p))
        ok = result.valid[i]
        ax.errorbar(np.array(t)[ok], 100 * result.dvv[i, ok], 100 * result.error[i, ok], fmt="o", ms=3,
                    lw=0.8, label=f"{p[0]}-{p[1]}")
    v, e, n = result.network
    ax.errorbar(t, 100 * v, 100 * e, fmt="k-o", ms=3, lw=1.5, capsize=2, label="network")
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_ylabel("dv/v (%)")
    ax.set_title(f"dv/v, {result.config.method}, {result.config.component} "
                 f"({result.config.freqmin:g}-{result.config.freqmax:g} Hz); > 0: faster")
    ax.legend(fontsize="small", ncol=4)
    fig.autofmt_xdate()
    return _save(fig, path)


def dvv_matrix(result, path=None):
    """Per-pair dv/v (percent) as an image, pairs ordered by distance, invalid blank."""
    fig = _figure((10, 6))
    ax = fig.add_subplot()
    order = np.argsort(np.nan_to_num(result.distance_km, nan=np.inf))
    img = np.where(result.valid, 100 * result.dvv, np.nan)[order]
    lim = np.nanpercentile(np.abs(img), 98) if np.isfinite(img).any() else 1.0
    t = result.times
    span = (t[1] - t[0]) if t.size > 1 else 86400.0
    unit, label = _axis(t)
    im = ax.imshow(img, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim, interpolation="nearest",
                   extent=[0, (t[-1] - t[0] + span) / unit, len(order), 0])
    ax.set_xlabel(label)
    ax.set_ylabel("pair (by distance)")
    fig.colorbar(im, ax=ax, label="dv/v (%)")
    ax.set_title(f"dv/v per pair, {result.config.component}")
    return _save(fig, path)


def series_image(series, index: int, mask=None, path=None):
    """Correlation series of pair ``index`` of a :class:`~noisecorr.monitoring.measure.Series`
    (each span normalised to its maximum), lag against time, coda window shaded."""
    fig = _figure((10, 5))
    ax = fig.add_subplot()
    d = series.data[index].astype(np.float64)
    peak = np.abs(d).max(axis=1, keepdims=True)
    d = np.divide(d, peak, out=np.zeros_like(d), where=peak > 0)
    t = series.times
    span = (t[1] - t[0]) if t.size > 1 else 86400.0
    unit, label = _axis(t)
    ax.imshow(d.T, aspect="auto", cmap="seismic", vmin=-1, vmax=1, origin="lower",
              extent=[0, (t[-1] - t[0] + span) / unit, series.lags[0], series.lags[-1]])
    if mask is not None:
        m = np.asarray(mask[index], bool)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], m.astype(int), [0]))))
        for a, b in zip(edges[::2], edges[1::2]):
            ax.axhspan(series.lags[a], series.lags[b - 1], color="gold", alpha=0.25, lw=0)
    src, rcv = series.pairs[index]
    ax.set_title(f"{src} - {rcv}: correlation per span (coda window shaded)")
    ax.set_xlabel(label)
    ax.set_ylabel("lag (s)")
    return _save(fig, path)
