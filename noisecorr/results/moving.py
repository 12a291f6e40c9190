"""Moving-window and reference stacks from the per-chunk series (``keep: chunks``).

A *moving stack* of width ``window`` and step ``step`` is, for every pair and component, the
stack of the chunks that lie in ``[t0 + j * step, t0 + j * step + window)``, ``j = 0, 1, ...``
(``t0`` the first chunk of the file's chunk grid), for every window that fits in the span
the file covers. The *reference stack* is the stack of every chunk, or of the chunks
starting in a chosen period; dv/v monitoring measures each moving stack (or each chunk)
against it.

How they are computed (:func:`moving_array`), vectorised over pairs and chunks:

* **linear**: ``sum_k n_k L_k / sum_k n_k`` over the chunks ``k`` of the window, with
  ``n_k`` the windows (correlation windows, ``cc_len``) stacked in chunk ``k`` and ``L_k``
  its linear mean: the window-weighted sums come from one cumulative sum along the chunk
  axis (``C[e] - C[b]``). This is exactly the linear stack of every correlation window of
  the moving window. A chunk without windows (a gap, ``n_k = 0``) contributes nothing; a
  moving window without any window is NaN and flagged (``counts == 0``).
* **pws** (Schimmel & Paulssen 1997): ``L * |P| ** pws_power`` with ``L`` the
  window-weighted linear mean as above and ``P`` the window-weighted mean of unit phasors
  ``exp(i arg H[x](t))`` of the analytic signal, also from a cumulative sum. Where the file
  was run with ``stack_method: pws`` it stores each chunk's linear mean and mean unit phasor
  *over its correlation windows*, and the moving PWS is exactly the PWS of every correlation
  window of the moving window (``phasors = "windows"``). From a linear (or robust) file only
  the chunk stacks are known: ``P`` is then the weighted mean of the unit phasors *of the
  chunk stacks* (``phasors = "chunks"``), the PWS of the chunk stacks, which is an
  approximation of the per-window PWS (a chunk's phase is that of its stack, not the spread
  of its windows' phases, so the coherence ``|P|`` is higher and fewer incoherent arrivals are
  suppressed). PWS of identical chunks is their linear stack (``|P| = 1``).

A file of robust chunk stacks (Pavlis & Vernon 2010) is stacked linearly (or as above for
pws) from its chunk stacks: not the robust stack of the moving window's windows (logged).

Window and step are whole multiples of the chunk length, given as durations (``"10d"``,
``"12h"``, ``"30m"``, ``"90s"``, or seconds): :func:`parse_duration`.

Storage: :func:`store` writes the group ``/moving`` of the results file, one subgroup per
component (``/moving/<COMP>``) with ``source``, ``receiver`` (the stored pair orientation,
in the order of :meth:`Results.pairs`), ``times`` (window starts, POSIX s), ``lags`` (s),
``data`` (float32, pairs x windows x lags, one HDF5 chunk per pair), ``counts`` (windows
stacked per pair and moving window), ``reference`` (pairs x lags) and
``reference_counts``; the attributes say ``window``, ``step`` (s), ``method``,
``pws_power``, ``phasors``, ``reference`` (``"all"`` or the ISO period) and ``chunk_length``.
The group is built in a temporary file beside the results and copied into the results file
under a temporary name, then linked as ``/moving`` in place of the previous one (a rerun
replaces it; a failure before the link leaves the previous group untouched, and the next
run removes any leftover). The pairs' datasets are never touched. HDF5 does not reclaim the
space of a replaced group (``h5repack`` does). An append (``noisecorr run --append``)
rewrites the results file without ``/moving``: moving stacks of a grown survey are stale and
are computed again.

References
----------
Schimmel, M. & Paulssen, H. (1997), Noise reduction and detection of weak, coherent signals
through phase-weighted stacks, Geophys. J. Int. 130, 497-505.
Pavlis, G. L. & Vernon, F. L. (2010), Array processing of teleseismic body waves with the
USArray, Computers & Geosciences 36, 910-920.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .layout import check_component, from_attr, to_attr

__all__ = ["GROUP", "MovingStacks", "iter_moving", "moving_array", "moving_stacks",
           "parse_duration", "parse_period", "read_moving", "read_reference", "store"]

log = logging.getLogger(__name__)

#: Group of the results file holding the moving and reference stacks.
GROUP = "moving"
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_EPS = 1e-6


def parse_duration(text, what: str = "window") -> float:
    """Seconds of a duration ``"10d"``, ``"12h"``, ``"30m"``, ``"90s"``, ``"1w"`` or a
    plain number of seconds (> 0).

    Raises
    ------
    ValueError
        Not a positive number with one of the units s, m, h, d, w (message names ``what``).

    Examples
    --------
    >>> parse_duration("10d"), parse_duration("1.5h"), parse_duration(600)
    (864000.0, 5400.0, 600.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smhdw]?)\s*", str(text))
        if m is None:
            raise ValueError(f"{what}: {text!r} is not a duration: a number with a unit s, m, h, d "
                             "or w (e.g. 10d, 12h, 3600s)")
        value = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what}: {text!r} must be a duration > 0")
    return value


def parse_period(text):
    """``None`` for ``"all"`` (or None), else ``(start, end)`` POSIX s of ``"START/END"``
    (ISO 8601 interval) or ``"START:END"`` (dates without a time of day).

    Raises
    ------
    ValueError
        Not ``all`` nor two times with start < end.

    Examples
    --------
    >>> parse_period("2024-01-01:2024-01-03")
    (1704067200.0, 1704240000.0)
    """
    from obspy import UTCDateTime

    if text is None or str(text).strip().lower() == "all":
        return None
    text = str(text).strip()
    parts = text.split("/") if "/" in text else text.split(":")
    hint = ("give 'all', START/END (ISO times, e.g. 2024-01-01T12:00:00/2024-01-05) or START:END "
            "(dates, e.g. 2024-01-01:2024-01-05)")
    if len(parts) != 2:
        raise ValueError(f"reference: {text!r} is not a period: {hint}")
    try:
        start, end = (float(UTCDateTime(p.strip()).timestamp) for p in parts)
    except Exception:  # obspy raises TypeError/ValueError/... for text it cannot read
        raise ValueError(f"reference: {text!r} has a time that is not ISO 8601: {hint}") from None
    if not start < end:
        raise ValueError(f"reference: {text!r} ends before it starts")
    return start, end


# ------------------------------------------------------------------------ the arithmetic
def _window_sums(values: np.ndarray, width: int, step: int, n_out: int) -> np.ndarray:
    """Sums over chunk windows ``[j step, j step + width)`` along axis 1, ``j < n_out``, from
    one cumulative sum (``values`` (P, K, ...), result (P, n_out, ...))."""
    csum = np.zeros((values.shape[0], values.shape[1] + 1) + values.shape[2:], dtype=values.dtype)
    np.cumsum(values, axis=1, out=csum[:, 1:])
    begin = np.arange(n_out) * step
    return csum[:, begin + width] - csum[:, begin]


def unit_phasors(x: np.ndarray) -> np.ndarray:
    """``exp(i arg H[x])`` along the last axis (the analytic signal's unit phasor; 0 where
    the analytic signal is 0), complex128."""
    from scipy.signal import hilbert

    z = hilbert(np.asarray(x, dtype=np.float64), axis=-1)
    mag = np.abs(z)
    return np.divide(z, mag, out=np.zeros_like(z), where=mag > 0)


def moving_array(linear, counts, width: int, step: int, method: str = "linear",
                 pws_power: float = 2.0, phasor=None, reference=None):
    """Moving and reference stacks of many pairs' chunk series (pure arrays).

    Parameters
    ----------
    linear : ndarray (P, K, n_lags)
        Linear mean of each pair's chunks on a common chunk grid (anything, NaN included,
        where ``counts`` is 0).
    counts : ndarray int (P, K)
        Correlation windows per chunk (0: a gap or no such chunk).
    width, step : int
        Moving window and step in chunks (>= 1).
    method : {"linear", "pws"}
    pws_power : float
        Exponent of the phase coherence (Schimmel & Paulssen 1997).
    phasor : ndarray complex (P, K, n_lags) or None
        pws: each chunk's mean unit phasor over its windows (exact PWS); None: the unit
        phasors of ``linear`` (the chunk stacks' own: an approximation, see the module notes).
    reference : ndarray bool (K,) or None
        Chunks of the reference stack (None: all).

    Returns
    -------
    data : ndarray float32 (P, J, n_lags)
        ``J = (K - width) // step + 1`` moving stacks; NaN where a window has no data.
    n : ndarray int (P, J)
        Windows stacked in each moving stack.
    ref : ndarray float32 (P, n_lags)
        NaN for a pair without data in the reference period.
    ref_n : ndarray int (P,)

    Raises
    ------
    ValueError
        Window longer than the series, bad method.
    """
    linear = np.asarray(linear)
    counts = np.asarray(counts, dtype=np.int64)
    n_pairs, k = counts.shape
    if method not in ("linear", "pws"):
        raise ValueError(f"method {method!r} is not one of ['linear', 'pws']")
    if not (1 <= width <= k) or step < 1:
        raise ValueError(f"a window of {width} chunks with a step of {step} does not fit {k} chunks")
    n_out = (k - width) // step + 1
    good = counts > 0
    w = np.where(good, counts, 0).astype(np.float64)[..., None]
    weighted = np.where(good[..., None], linear, 0.0) * w
    ref_mask = np.ones(k, dtype=bool) if reference is None else np.asarray(reference, dtype=bool)
    n = _window_sums(counts * good, width, step, n_out)
    ref_n = (counts * good * ref_mask).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        data = _window_sums(weighted, width, step, n_out) / n[..., None]
        ref = (weighted * ref_mask[None, :, None]).sum(axis=1) / ref_n[:, None]
        if method == "pws":
            if phasor is None:
                phasor = unit_phasors(np.where(good[..., None], linear, 0.0))
            ph = np.where(good[..., None], phasor, 0.0) * w
            coh = np.abs(_window_sums(ph, width, step, n_out)) / n[..., None]
            data *= coh ** pws_power
            ref *= (np.abs((ph * ref_mask[None, :, None]).sum(axis=1)) / ref_n[:, None]) ** pws_power
    data[n == 0] = np.nan
    ref[ref_n == 0] = np.nan
    return data.astype(np.float32), n, ref.astype(np.float32), ref_n


# ------------------------------------------------------------------- from a results file
@dataclass(frozen=True)
class MovingStacks:
    """Moving-window stacks of many pairs of one component (:func:`moving_stacks`).

    Attributes
    ----------
    component : str
    pairs : list of (source, receiver)
    times : ndarray (J,), POSIX seconds (UTC)
        Start of each moving window; it covers ``[times[j], times[j] + window)``.
    lags : ndarray (n_lags,), seconds
        Positive lag: the wave travels from source to receiver.
    data : ndarray float32 (n_pairs, J, n_lags)
        NaN where a moving window has no data (``counts == 0``).
    counts : ndarray int (n_pairs, J)
        Correlation windows stacked in each moving stack.
    reference : ndarray float32 (n_pairs, n_lags)
        The reference stack of each pair (NaN: no data in the reference period).
    reference_counts : ndarray int (n_pairs,)
    window, step, chunk_length : float
        Seconds.
    method : str
    pws_power : float
    phasors : str or None
        pws: ``"windows"`` (exact: the file's per-chunk window phasors) or ``"chunks"``
        (approximation: the chunk stacks' phasors); None for linear.
    reference_period : (start, end) or None
        POSIX s; None: every chunk.
    """

    component: str
    pairs: list
    times: np.ndarray
    lags: np.ndarray
    data: np.ndarray
    counts: np.ndarray
    reference: np.ndarray
    reference_counts: np.ndarray
    window: float
    step: float
    chunk_length: float
    method: str
    pws_power: float
    phasors: str | None
    reference_period: tuple | None

    @property
    def empty(self) -> np.ndarray:
        """bool (n_pairs, J): moving windows without any data (NaN stacks)."""
        return self.counts == 0


def _grid(res, first) -> tuple[float, float, int]:
    """``(origin, chunk_length, n_chunks)`` of the file's chunk grid."""
    from .append import read_coverage

    c = first.substack_len
    if c is None or not c > 0:
        raise ValueError(f"{res.path}: the chunk series has no chunk length (substack_len)")
    c = float(c)
    spans = None
    if res.path.exists():
        try:
            spans = read_coverage(res.path)
        except ValueError:
            spans = None
    # substack_origin is the epoch of a grid shared by every run; the chunk grid starts at
    # the file's first covered time (the first run's start, see append.chunk_grid_origin)
    origin = spans[0][0] if spans else float(first.starts[0])
    end = spans[-1][1] if spans else float(first.starts[-1]) + c
    n = int(math.ceil((end - origin) / c - _EPS))
    return origin, c, max(n, 1)


def _on_grid(a, b, comp, sub, origin, c, k):
    idx = (np.asarray(sub.starts, dtype=np.float64) - origin) / c
    j = np.rint(idx).astype(np.int64)
    if np.any(np.abs(idx - j) > 1e-6) or np.any(j < 0) or np.any(j >= k):
        raise ValueError(f"{a}-{b} {comp}: chunk starts are not on the file's chunk grid "
                         f"({k} chunks of {c:g} s from {origin:.0f})")
    return j


def iter_moving(res, window, step, method: str = "linear", component: str = "ZZ",
                reference=None, pws_power: float | None = None, pairs=None, batch: int = 256):
    """Compute moving and reference stacks batch by batch (bounded memory).

    Yields one ``dict`` of header items first (``times``, ``lags``, ``window``, ``step``,
    ``chunk_length``, ``method``, ``pws_power``, ``phasors``, ``reference_period``,
    ``component``), then, per batch of up to ``batch`` pairs, ``(pairs, data, counts,
    reference, reference_counts)`` as in :func:`moving_array`. Arguments as in
    :func:`moving_stacks`.
    """
    component = check_component(component)
    win = parse_duration(window, "window")
    stp = parse_duration(step, "step")
    period = reference if isinstance(reference, tuple) else parse_period(reference)
    if method not in ("linear", "pws"):
        raise ValueError(f"method {method!r} is not one of ['linear', 'pws']")
    proc = (res.params or {}).get("processing") or res.params or {}
    power = float(proc.get("pws_power", 2.0) if pws_power is None else pws_power)
    it = res.series_many(component, pairs)
    head = None
    buf = []

    def flush():
        subs = [s for _, _, s in buf]
        lin = np.full((len(subs), k, n_lags), np.nan, dtype=np.float32)
        cnt = np.zeros((len(subs), k), dtype=np.int64)
        ph = np.zeros((len(subs), k, n_lags), dtype=np.complex64) if exact else None
        for i, (a, b, s) in enumerate(buf):
            if s.lags.shape != (n_lags,):
                raise ValueError(f"{a}-{b} {component}: {s.lags.size} lags, not {n_lags} as the "
                                 "first pair; compute their moving stacks separately")
            j = _on_grid(a, b, component, s, origin, c, k)
            lin[i, j] = s.stacks if s.linear is None else s.linear
            cnt[i, j] = s.counts
            if exact:
                ph[i, j] = s.phasor
        out = moving_array(lin, cnt, width, stride, method, power, ph, ref_mask)
        return [(a, b) for a, b, _ in buf], *out

    for a, b, sub in it:
        if head is None:
            if sub.counts is None or sub.starts is None:
                raise ValueError(f"{a}-{b} {component}: stored without chunk counts and times")
            origin, c, k = _grid(res, sub)
            n_lags = sub.lags.size
            for name, value in (("window", win), ("step", stp)):
                r = value / c
                if abs(r - round(r)) > 1e-6:
                    raise ValueError(f"{name} {value:g} s is not a whole number of chunks of "
                                     f"{c:g} s (the file's chunk length)")
            width, stride = int(round(win / c)), int(round(stp / c))
            if width > k:
                raise ValueError(f"window {win:g} s ({width} chunks) is longer than the "
                                 f"{k * c:g} s ({k} chunks) that {res.path} covers")
            if sub.stack_method == "robust":
                log.warning("%s holds robust chunk stacks: the moving stacks are their %s stack "
                            "(window-weighted), not the robust stack of the windows", res.path, method)
            exact = method == "pws" and sub.phasor is not None
            chunk_t = origin + c * np.arange(k)
            ref_mask = None
            if period is not None:
                ref_mask = (chunk_t >= period[0] - _EPS) & (chunk_t < period[1] - _EPS)
                if not ref_mask.any():
                    raise ValueError(f"reference period has no chunk of {res.path} (chunks start "
                                     f"{_iso(chunk_t[0])} .. {_iso(chunk_t[-1])})")
            n_out = (k - width) // stride + 1
            head = dict(component=component, times=origin + stp * np.arange(n_out),
                        lags=np.asarray(sub.lags), window=win, step=stp, chunk_length=c,
                        method=method, pws_power=power,
                        phasors=None if method == "linear" else ("windows" if exact else "chunks"),
                        reference_period=period)
            if method == "pws" and not exact:
                log.info("%s: pws from the phasors of the chunk stacks (the file stores no "
                         "per-window phasors): an approximation of the per-window PWS", res.path)
            yield head
        if method == "pws" and exact and sub.phasor is None:
            raise ValueError(f"{a}-{b} {component}: stored without the chunk phasors the other "
                             "pairs have")
        buf.append((a, b, sub))
        if len(buf) >= batch:
            yield flush()
            buf = []
    if head is None:
        raise ValueError(f"no pair of component {component} in {res.path} kept its chunks "
                         "(run with keep: chunks)")
    if buf:
        yield flush()


def _iso(t: float) -> str:
    from obspy import UTCDateTime

    return str(UTCDateTime(float(t)))


def moving_stacks(res, window, step, method: str = "linear", component: str = "ZZ",
                  reference=None, pws_power: float | None = None, pairs=None,
                  batch: int = 256) -> MovingStacks:
    """Moving-window and reference stacks of every pair of ``component`` (in memory).

    Parameters
    ----------
    res : Results
        An open results file with per-chunk series (``keep: chunks``).
    window, step : str or float
        Durations (``"10d"``, ``"1d"``, ``"6h"`` or seconds), whole multiples of the chunk
        length.
    method : {"linear", "pws"}
        See the module notes (pws of a linear file is an approximation).
    component : str
    reference : None, "all", "START/END", "START:END" or (start, end) POSIX s
        The reference stack's chunks: those starting in the period (default: all).
    pws_power : float or None
        Default: the file's ``pws_power`` (2).
    pairs : list of (source, receiver) or None
        Default: every pair that kept its chunks.
    batch : int
        Pairs computed at once (memory ``batch * n_chunks * n_lags * 16`` bytes or so).

    Raises
    ------
    ValueError
        Bad window, step, reference or method (named); a window longer than the span, off
        the chunk grid; no pair with chunks.
    """
    it = iter_moving(res, window, step, method, component, reference, pws_power, pairs, batch)
    head = next(it)
    parts = list(it)
    cat = (lambda i: np.concatenate([p[i] for p in parts])) if parts else None
    return MovingStacks(head["component"], [p for part in parts for p in part[0]], head["times"],
                        head["lags"], cat(1), cat(2), cat(3), cat(4), head["window"],
                        head["step"], head["chunk_length"], head["method"], head["pws_power"],
                        head["phasors"], head["reference_period"])


# ------------------------------------------------------------------------------ storage
def store(path, window, step, method: str = "linear", components=None, reference=None,
          pws_power: float | None = None, batch: int = 256) -> dict:
    """Compute the moving and reference stacks of ``components`` (default: every component
    with chunk series) and store them as ``/moving`` of the results file ``path``, replacing
    any previous ones (see the module notes).

    Returns
    -------
    dict
        Per component: ``pairs``, ``windows`` (moving windows per pair), ``empty`` (moving
        windows without data, all pairs), ``phasors``.

    Raises
    ------
    ValueError
        As :func:`moving_stacks`; the results file has unmerged checkpoint parts.
    """
    from .merge import list_parts
    from .reader import open_results

    path = Path(path)
    if list_parts(path):
        raise ValueError(f"{path} has unmerged checkpoint parts: merge them first "
                         "(noisecorr.results.writer.merge_parts)")
    tmp = path.with_name(path.name + ".moving.h5")
    tmp.unlink(missing_ok=True)
    summary = {}
    try:
        with open_results(path) as res, h5py.File(tmp, "w") as out:
            comps = list(components) if components else res.components()
            top = out.create_group(GROUP)
            for comp in comps:
                comp = check_component(comp)
                try:
                    summary[comp] = _store_component(top, res, comp, window, step, method,
                                                     reference, pws_power, batch)
                except ValueError as exc:
                    if components or "kept its chunks" not in str(exc):
                        raise
                    log.info("%s: no chunk series, no moving stacks", comp)
            if not summary:
                raise ValueError(f"no pair of {path} kept its chunks (run with keep: chunks)")
            top.attrs["window"] = float(parse_duration(window, "window"))
            top.attrs["step"] = float(parse_duration(step, "step"))
            top.attrs["method"] = method
            top.attrs["components"] = to_attr(sorted(summary))
        with h5py.File(path, "r+") as f:
            for name in [n for n in f if n.startswith(GROUP + ".tmp")]:
                del f[name]
            with h5py.File(tmp, "r") as src:
                f.copy(src[GROUP], GROUP + ".tmp")
            f.flush()
            if GROUP in f:
                del f[GROUP]
            f.move(GROUP + ".tmp", GROUP)
    finally:
        tmp.unlink(missing_ok=True)
    return summary


def _store_component(top, res, comp, window, step, method, reference, pws_power, batch):
    it = iter_moving(res, window, step, method, comp, reference, pws_power, None, batch)
    head = next(it)
    n_pairs = len(res._pair_rows(comp)[1])  # upper bound (pairs without chunks skipped); trimmed below
    j, n_lags = len(head["times"]), len(head["lags"])
    g = top.create_group(comp)
    g["times"] = head["times"]
    g["lags"] = head["lags"]
    data = g.create_dataset("data", (n_pairs, j, n_lags), dtype="f4", maxshape=(None, j, n_lags),
                            chunks=(1, j, n_lags))
    counts = g.create_dataset("counts", (n_pairs, j), dtype="i8", maxshape=(None, j))
    ref = g.create_dataset("reference", (n_pairs, n_lags), dtype="f4", maxshape=(None, n_lags))
    ref_n = g.create_dataset("reference_counts", (n_pairs,), dtype="i8", maxshape=(None,))
    src, rcv, i, empty = [], [], 0, 0
    for pairs, d, n, r, rn in it:
        m = len(pairs)
        data[i:i + m], counts[i:i + m], ref[i:i + m], ref_n[i:i + m] = d, n, r, rn
        src += [a for a, _ in pairs]
        rcv += [b for _, b in pairs]
        empty += int((n == 0).sum())
        i += m
    for ds in (data, counts, ref, ref_n):
        ds.resize(i, axis=0)
    g["source"] = np.array(src, dtype="S")
    g["receiver"] = np.array(rcv, dtype="S")
    period = head["reference_period"]
    for key in ("window", "step", "chunk_length", "pws_power"):
        g.attrs[key] = float(head[key])
    g.attrs["method"] = head["method"]
    g.attrs["phasors"] = to_attr(head["phasors"])
    g.attrs["reference"] = to_attr("all" if period is None else [_iso(period[0]), _iso(period[1])])
    return {"pairs": i, "windows": j, "empty": empty, "phasors": head["phasors"]}


# ------------------------------------------------------------------------------ reading
def _group(h5, component):
    comp = check_component(component)
    if GROUP not in h5:
        raise ValueError(f"{h5.filename}: no moving stacks stored: run noisecorr stack")
    top = h5[GROUP]
    return top[comp] if comp in top else None


def _find(g, cache: dict, source: str, receiver: str):
    key = id(g)
    table = cache.get(key)
    if table is None:
        names = zip(g["source"][()].tolist(), g["receiver"][()].tolist())
        table = cache[key] = {(a.decode(), b.decode()): i for i, (a, b) in enumerate(names)}
    return table.get((source, receiver))


def _locate(h5, cache, source, receiver, component):
    """``(group, row, reverse)`` of a pair (or its reverse) in ``/moving``."""
    comp = check_component(component)
    for s, r, c, reverse in ((source, receiver, comp, False), (receiver, source, comp[::-1], True)):
        g = _group(h5, c)
        if g is not None:
            i = _find(g, cache, s, r)
            if i is not None:
                return g, i, reverse
    raise KeyError(f"no moving stack for {source} -> {receiver} component {comp} in {h5.filename}")


def read_moving(h5, source: str, receiver: str, component: str = "ZZ", cache=None):
    """``(times, lags, array, counts)`` of a pair's stored moving stacks (see
    :meth:`noisecorr.results.Results.moving`)."""
    from .reader import reversal_sign

    g, i, reverse = _locate(h5, {} if cache is None else cache, source, receiver, component)
    data, n = g["data"][i], g["counts"][i]
    if reverse:
        data = data[..., ::-1] * np.float32(reversal_sign(component))
    return g["times"][()], g["lags"][()], data, n


def read_reference(h5, source: str, receiver: str, component: str = "ZZ", cache=None):
    """``(lags, stack, n_windows)`` of a pair's stored reference stack."""
    from .reader import reversal_sign

    g, i, reverse = _locate(h5, {} if cache is None else cache, source, receiver, component)
    data = g["reference"][i]
    if reverse:
        data = data[::-1] * np.float32(reversal_sign(component))
    return g["lags"][()], data, int(g["reference_counts"][i])


def read_info(h5) -> dict:
    """The attributes of the stored moving stacks per component (``window``, ``step``,
    ``chunk_length`` s, ``method``, ``pws_power``, ``phasors``, ``reference``)."""
    if GROUP not in h5:
        raise ValueError(f"{h5.filename}: no moving stacks stored: run noisecorr stack")
    out = {}
    for comp, g in h5[GROUP].items():
        info = {k: from_attr(v) for k, v in g.attrs.items()}
        if info.get("reference") not in (None, "all"):
            info["reference"] = json.loads(info["reference"])
        out[comp] = info
    return out

