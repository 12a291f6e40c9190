"""Plots people expect from a noise-correlation run (matplotlib, Agg).

Every function builds its own :class:`matplotlib.figure.Figure` (no pyplot
state, safe in workers), returns it, and writes a PNG when ``path`` is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(figsize):
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=100):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(str(path), dpi=dpi, format="png")
    return fig


def _is_results(obj) -> bool:
    return hasattr(obj, "pairs") and hasattr(obj, "stack")


def _distances(res, component):
    """``(positions, pairs, distance_km)`` of a Results object's pairs of ``component`` whose
    distance is known (pairs without station coordinates cannot be placed and are left
    out); ``positions`` are their places in ``res.pairs(component)``."""
    pairs = res.pairs(component)
    if hasattr(res, "column"):
        dists = res.column("distance_km", component)
    else:  # any object with pairs, stack and meta
        dists = np.array([res.meta(s, r, component).get("distance_km", np.nan) for s, r in pairs],
                         dtype=np.float64)
    known = np.flatnonzero(np.isfinite(dists))
    return known, [pairs[i] for i in known.tolist()], dists[known]


def _read(res, component, pairs, positions):
    """``(lags, ccf)`` of each pair at ``positions`` of ``res.pairs(component)`` (``pairs``
    lists them), one stack at a time: the full stack of a pair with sub-stacks (a Results
    object gives it); rows of any other 2-D array averaged."""
    if hasattr(res, "stacks"):
        items = res.stacks(component, positions)
    else:
        items = (res.stack(s, r, component) for s, r in pairs)
    for lags, ccf in items:
        yield lags, (ccf if ccf.ndim == 1 else ccf.mean(axis=0))


def _traces_from(results_or_traces, component):
    """``[(label, distance_km, lags, ccf)]`` from a Results object or a list
    of ``(label, distance_km, lags, ccf)`` tuples."""
    if _is_results(results_or_traces):
        at, pairs, dists = _distances(results_or_traces, component)
        return [(f"{s}-{r}", float(d), lags, ccf) for (s, r), d, (lags, ccf)
                in zip(pairs, dists.tolist(), _read(results_or_traces, component, pairs, at))]
    return [(str(a), float(d), np.asarray(lg), np.asarray(c))
            for a, d, lg, c in results_or_traces]


#: Stacks a record-section bin averages at most (on average over the bins): 50 normalised
#: stacks per line already give its mean to a few per cent of its peak, and each one read is
#: an HDF5 read (about 0.3 ms), which at 20,000 reads was half the fixed cost of a run.
PAIRS_PER_BIN = 50


def _distance_bins(results_or_traces, component, n_bins, max_read=None):
    """Mean of the normalised CCFs in ``n_bins`` equal distance bins (bounded memory).

    Stacks are read one at a time, at most ``max_read`` of them (default
    ``PAIRS_PER_BIN * n_bins``; every k-th pair in distance order, so each bin keeps its
    share), so a plot of 499,500 pairs in 60 bins reads 3,000; the distances come from the
    index in memory. Returns ``[(label, bin centre km, lags, mean ccf)]`` for the bins that
    hold pairs.
    """
    if max_read is None:
        max_read = PAIRS_PER_BIN * n_bins
    if _is_results(results_or_traces):
        res = results_or_traces
        at, pairs, dists = _distances(res, component)
        if not pairs:
            return []
        order = np.argsort(dists, kind="stable")
        keep = np.sort(order[:: max(1, int(np.ceil(len(order) / max_read)))])
        chosen = [pairs[i] for i in keep.tolist()]

        def traces():
            for i, (lags, ccf) in zip(keep.tolist(), _read(res, component, chosen, at[keep])):
                yield "", float(dists[i]), lags, ccf
    else:
        items = [(str(a), float(d), np.asarray(lg), np.asarray(c))
                 for a, d, lg, c in results_or_traces]
        dists = [d for _, d, _, _ in items]

        def traces():
            return iter(items)
    edges = np.linspace(min(dists), max(dists) + 1e-9, n_bins + 1)
    sums, counts, lags = {}, {}, None
    for _, d, lg, c in traces():
        k = int(np.searchsorted(edges, d, side="right") - 1)
        norm = np.max(np.abs(c)) or 1.0
        sums[k] = sums.get(k, 0.0) + c / norm
        counts[k] = counts.get(k, 0) + 1
        lags = lg
    return [(f"{counts[k]} pairs", 0.5 * (edges[k] + edges[k + 1]), lags, sums[k] / counts[k])
            for k in sorted(sums)]


def _within(lags, lim):
    """The slice of the ascending ``lags`` inside ``[-lim, lim]``, with one more sample on
    either side so that a line drawn from it reaches the edges of the axes as the whole
    line would: drawing only that (a lag limit of 65 s shows a third of a 200 s stack)
    leaves the picture unchanged and costs matplotlib a fraction of the points."""
    a = max(0, int(np.searchsorted(lags, -lim, side="left")) - 1)
    b = min(len(lags), int(np.searchsorted(lags, lim, side="right")) + 1)
    return slice(a, b)


def record_section(results_or_traces, component: str = "ZZ", velocities=(2.0, 3.0, 4.0),
                   maxlag: float | None = None, scale: float | None = None,
                   path=None, title: str | None = None, figsize=(8, 6),
                   max_traces: int = 60) -> Figure:
    """CCFs ordered by inter-station distance, showing the move-out.

    Each CCF (normalised to its maximum absolute value) is drawn as one line
    at its distance, ``scale`` km per unit amplitude (default: half the
    median distance spacing, at least 1 km). ``velocities`` (km/s) add
    dashed guide lines ``lag = +/- distance / v`` (one line per sign and
    velocity). With more than ``max_traces`` pairs the normalised CCFs are averaged
    in ``max_traces`` equal distance bins (one stack read at a time), so a
    thousand-station run shows its move-out instead of a black area. Pairs whose
    distance is unknown (no station coordinates) cannot be placed and are left out.

    Parameters
    ----------
    results_or_traces : Results or list of (label, distance_km, lags, ccf)
    component : str
        Used with a Results object.
    """
    n_pairs = (len(results_or_traces.pairs(component)) if _is_results(results_or_traces)
               else len(results_or_traces))
    if n_pairs > max_traces:
        traces = _distance_bins(results_or_traces, component, max_traces)
        title = title or f"Record section, {component}, {n_pairs} pairs in {len(traces)} distance bins"
    else:
        traces = sorted(_traces_from(results_or_traces, component), key=lambda t: t[1])
    fig = _figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    if not traces:
        ax.text(0.5, 0.5, "no cross-correlations", ha="center", transform=ax.transAxes)
        return _save(fig, path)
    dists = np.array([t[1] for t in traces])
    if scale is None:
        step = np.median(np.diff(dists)) if len(dists) > 1 else 0.0
        scale = max(0.5 * step, 1.0)
    lim = maxlag if maxlag is not None else max(abs(t[2][0]) for t in traces)
    for _, d, lags, ccf in traces:
        norm = np.max(np.abs(ccf)) or 1.0  # over every lag, as without a limit
        shown = _within(lags, lim)
        ax.plot(lags[shown], d + scale * ccf[shown] / norm, color="k", linewidth=0.6)
    dmax = dists.max() + scale
    for i, v in enumerate(velocities or ()):
        for sign in (-1, 1):
            ax.plot([0, sign * dmax / v], [0, dmax], linestyle="--", linewidth=1.0,
                    color=f"C{i}", label=f"{v:g} km/s" if sign > 0 else None)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(min(0.0, dists.min() - scale), dmax)
    ax.set_xlabel("lag (s)")
    ax.set_ylabel("inter-station distance (km)")
    ax.set_title(title or f"Record section, {component}, {len(traces)} pairs")
    if velocities:
        ax.legend(loc="upper right", fontsize="small")
    return _save(fig, path)


def pair_ccf(results_or_lags, source=None, receiver=None, component: str = "ZZ",
             ccf=None, travel_time: float | None = None, path=None,
             figsize=(8, 3), counts=None) -> Figure:
    """One pair's CCF against lag.

    Call as ``pair_ccf(results, source, receiver, component)`` or
    ``pair_ccf(lags, ccf=ccf)``. ``travel_time`` (s) marks +/- the expected
    arrival with vertical dotted lines. Sub-stacks are drawn faint behind the
    full stack: from a results file, the stored full stack over every window;
    for a 2-D ``ccf`` (one sub-stack per row), their mean weighted by ``counts``
    (windows per row; default equal weights).
    """
    faint = None
    if hasattr(results_or_lags, "stack"):
        lags, data = results_or_lags.stack(source, receiver, component)
        label = f"{source} -> {receiver} {component}"
        if hasattr(results_or_lags, "substacks") and "substack_counts" in \
                results_or_lags.meta(source, receiver, component):
            faint = results_or_lags.substacks(source, receiver, component).stacks
    else:
        lags, data = np.asarray(results_or_lags), np.asarray(ccf)
        label = f"{source or ''} -> {receiver or ''} {component}".strip()
    if data.ndim == 2:
        faint = data
        w = np.ones(len(data)) if counts is None else np.asarray(counts, dtype=np.float64)
        if w.shape != (len(data),) or not w.sum() > 0:
            raise ValueError(f"counts must give {len(data)} non-negative window counts, not all 0, "
                             f"got {counts!r}")
        data = w / w.sum() @ data
    fig = _figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    for row in () if faint is None else faint:
        ax.plot(lags, row, color="0.75", linewidth=0.5)
    ax.plot(lags, data, color="k", linewidth=0.8)
    if travel_time is not None:
        for t in (-travel_time, travel_time):
            ax.axvline(t, color="tab:red", linestyle=":")
    ax.set_xlim(lags[0], lags[-1])
    ax.set_xlabel("lag (s)")
    ax.set_ylabel("correlation")
    ax.set_title(label)
    return _save(fig, path)


def availability(intervals, path=None, title: str = "Data availability",
                 figsize=None) -> Figure:
    """Time coverage per station.

    Parameters
    ----------
    intervals : iterable of (station, start, end)
        ``start``/``end`` as ObsPy UTCDateTime, datetime, or numbers
        (seconds); one horizontal bar per interval, one row per station
        (sorted).
    """
    from obspy import UTCDateTime

    rows: dict = {}
    for sta, a, b in intervals:
        rows.setdefault(str(sta), []).append((a, b))
    names = sorted(rows)
    fig = _figure(figsize or (8, 1 + 0.35 * max(len(names), 1)))
    ax = fig.add_subplot(1, 1, 1)
    as_dates = any(not isinstance(a, (int, float)) for v in rows.values() for a, _ in v)
    if as_dates:
        import matplotlib.dates as mdates

        def conv(t):
            return mdates.date2num(UTCDateTime(t).datetime)
    else:
        def conv(t):
            return float(t)
    for i, name in enumerate(names):
        spans = [(conv(a), conv(b) - conv(a)) for a, b in sorted(rows[name])]
        ax.broken_barh(spans, (i - 0.4, 0.8), facecolors="tab:blue")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.set_ylim(-0.6, len(names) - 0.4)
    if as_dates:
        ax.xaxis_date()
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d\n%H:%M"))
        ax.set_xlabel("time (UTC)")
    else:
        ax.set_xlabel("time (s)")
    ax.set_title(title)
    return _save(fig, path)
