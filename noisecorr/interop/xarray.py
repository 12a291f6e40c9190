"""A lazy :class:`xarray.Dataset` view of the stacks of one component.

The stacks become a dask array ``(pair, lag)``: one dask chunk per block of ``block``
pairs, each read by its own task, which opens the results file, reads its pairs with
:meth:`noisecorr.results.reader.Results.stacks` and closes it. Nothing is read until the
data are computed, so the stacks of 499,500 pairs never need to fit in memory; the
coordinates (codes, positions, distances, from the results' index and station table) are
small and read at once.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["to_xarray", "read_block", "read_series_block", "BLOCKS_READ"]

#: How many pair blocks have been read by :func:`read_block` in this process (a public
#: counter, e.g. to check that building a Dataset reads no stacks).
BLOCKS_READ = [0]


def read_block(path, component: str, index) -> np.ndarray:
    """Stacks ``(len(index), n_lags)`` float32 of ``pairs(component)[i]`` for ``i`` in
    ``index``, read from the results file at ``path`` (opened and closed here)."""
    from noisecorr.results.reader import open_results

    BLOCKS_READ[0] += 1
    with open_results(path) as res:
        rows = [np.asarray(d, dtype=np.float32) for _, d in res.stacks(component, index)]
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def read_series_block(path, component: str, pairs, times) -> np.ndarray:
    """Per-chunk series ``(len(pairs), len(times), n_lags)`` float32 of ``pairs`` on the
    time grid ``times`` (POSIX s), NaN where a pair has no span, read from ``path``."""
    from noisecorr.results.reader import open_results

    BLOCKS_READ[0] += 1
    where = {float(t): k for k, t in enumerate(times)}
    out = None
    with open_results(path) as res:
        for i, (s, r) in enumerate(pairs):
            starts, _, arr, _ = res.series(s, r, component)
            if out is None:
                out = np.full((len(pairs), len(times), arr.shape[-1]), np.nan, np.float32)
            out[i, [where[float(t)] for t in starts]] = arr
    return out


def _series(res, component, sel, block, h):
    """``(data (pair, time, lag) dask, times, windows (pair, time), h)`` of the sub-stacks,
    ``h`` the rows' half length (the stacks' ``h``, or less with ``keep_chunks.maxlag``)."""
    import dask.array as da
    from dask import delayed

    from noisecorr.results.layout import SERIES_MAXLAG, half_length

    starts, halves = [], set()
    for s, r in sel:
        meta = res.meta(s, r, component)
        if meta.get("substack_starts") is None:
            raise ValueError(f"{s}_{r} {component} in {res.path} has no per-chunk series "
                             f"(stored without sub-stacks); use series=False")
        starts.append((np.asarray(meta["substack_starts"], float),
                       np.asarray(meta["substack_counts"], np.int64)))
        if meta.get(SERIES_MAXLAG) is not None:
            halves.add(half_length(float(meta[SERIES_MAXLAG]), float(meta["sampling_rate"])))
        else:
            halves.add(h)
    if len(halves) != 1:
        raise ValueError(f"{res.path} {component}: per-chunk series of different lengths "
                         f"(half lengths {sorted(halves)}); select pairs with one axis")
    h = halves.pop()
    n_lags = 2 * h + 1
    times = np.unique(np.concatenate([t for t, _ in starts]))
    col = {float(t): k for k, t in enumerate(times)}
    windows = np.zeros((len(sel), len(times)), np.int64)
    for i, (t, n) in enumerate(starts):
        windows[i, [col[float(x)] for x in t]] = n
    parts = []
    for lo in range(0, len(sel), block):
        chunk = sel[lo:lo + block]
        task = delayed(read_series_block, pure=True)(str(res.path), component, chunk,
                                                    times.tolist())
        parts.append(da.from_delayed(task, shape=(len(chunk), len(times), n_lags),
                                     dtype=np.float32))
    return da.concatenate(parts, axis=0), times, windows, h


def to_xarray(res, component: str = "ZZ", pairs=None, block: int = 4096,
              series: bool = False):
    """Dataset of the stacks of ``component``, lazily backed by the results file.

    Parameters
    ----------
    res : noisecorr.results.reader.Results
    component : str
    pairs : list of (source, receiver), optional
        Default every pair of the component, in ``res.pairs(component)`` order.
    block : int
        Pairs per dask chunk (one task reads one block).
    series : bool
        The per-chunk (sub-stack) series instead of the full stacks: ``stack`` is
        ``(pair, time, lag)`` on the union of the pairs' span starts (coordinate ``time``,
        ``datetime64[ns]`` UTC; NaN where a pair has no span) and ``windows``
        ``(pair, time)`` counts the windows of each span (0 where none); ``lag`` is then
        the rows' axis (the central lags ``|lag| <= keep_chunks.maxlag`` when the run kept
        a shorter maxlag per chunk).

    Returns
    -------
    xarray.Dataset
        Variable ``stack`` ``(pair, lag)`` float32 (a dask array); coordinates ``lag`` (s,
        positive = wave from source to receiver), ``source``, ``receiver``,
        ``distance_km``, ``azimuth``, ``back_azimuth`` (degrees), ``n_windows`` and
        ``source_/receiver_`` ``latitude``, ``longitude`` (degrees), ``elevation`` (m)
        (NaN where unknown). ``attrs``: component, sampling_rate, path.

    Raises
    ------
    KeyError
        A pair that is not stored for ``component`` (named).
    ValueError
        Pairs with different lag axes.
    """
    try:
        import dask.array as da
        import xarray as xr
        from dask import delayed
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("to_xarray needs xarray and dask: "
                                  "pip install 'noisecorr[interop]'") from exc
    from noisecorr.results.layout import half_length, lag_axis

    from .select import parse_pair, station_table

    all_pairs = res.pairs(component)
    if pairs is None:
        index = np.arange(len(all_pairs))
    else:
        where = {p: i for i, p in enumerate(all_pairs)}
        wanted = [parse_pair(p) for p in pairs]
        bad = [f"{s}_{r}" for s, r in wanted if (s, r) not in where]
        if bad:
            raise KeyError(f"pair(s) {', '.join(bad)} not in {res.path} for {component}")
        index = np.array([where[p] for p in wanted], dtype=np.int64)
    col = {k: res.column(k, component)[index] for k in
           ("distance_km", "azimuth", "back_azimuth", "n_windows", "sampling_rate", "maxlag")}
    if len(index) == 0:
        raise ValueError(f"no pairs of component {component} in {res.path}")
    fs = np.unique(col["sampling_rate"])
    h = {half_length(float(m), float(f)) for m, f in zip(col["maxlag"], col["sampling_rate"])}
    if len(fs) != 1 or len(h) != 1:
        raise ValueError(f"{res.path} {component}: pairs with different lag axes "
                         f"(sampling rates {fs.tolist()}, half lengths {sorted(h)}); "
                         f"select pairs with one axis")
    fs, h = float(fs[0]), h.pop()
    n_lags = 2 * h + 1
    sel = [all_pairs[i] for i in index]
    if series:
        data, times, windows, h = _series(res, component, sel, block, h)
    else:
        parts = []
        for lo in range(0, len(index), block):
            idx = index[lo:lo + block]
            task = delayed(read_block, pure=True)(str(res.path), component, idx.tolist())
            parts.append(da.from_delayed(task, shape=(len(idx), n_lags), dtype=np.float32))
        data = da.concatenate(parts, axis=0)
    table = station_table(res)
    nan3 = (np.nan, np.nan, np.nan)
    coords = {"lag": ("lag", lag_axis(h / fs, fs)),
              "source": ("pair", np.array([s for s, _ in sel])),
              "receiver": ("pair", np.array([r for _, r in sel]))}
    for k in ("distance_km", "azimuth", "back_azimuth", "n_windows"):
        coords[k] = ("pair", col[k])
    for prefix, pos in (("source", 0), ("receiver", 1)):
        xyz = np.array([table.get(p[pos], nan3) for p in sel], dtype=float)
        for j, name in enumerate(("latitude", "longitude", "elevation")):
            coords[f"{prefix}_{name}"] = ("pair", xyz[:, j])
    variables = {"stack": (("pair", "lag"), data)}
    if series:
        coords["time"] = ("time", (times * 1e9).astype("int64").astype("datetime64[ns]"))
        variables = {"stack": (("pair", "time", "lag"), data),
                     "windows": (("pair", "time"), windows)}
    return xr.Dataset(variables, coords=coords,
                      attrs={"component": component, "sampling_rate": fs,
                             "path": str(res.path)})
