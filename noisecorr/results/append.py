"""Incremental runs: add the chunks of a new time span to an existing results file.

A survey that grows day by day is computed once per new day, not once per history. The
new span is run on its own (a *staging* run, :func:`noisecorr.workflow.runner.append_workflow`)
and its pairs are then merged into the results file by :func:`merge_results`, here:

* **what is already there is skipped.** The file records the time it covers (the root
  attribute ``coverage``, a JSON list of ``[start, end]`` ISO UTC intervals; files written
  before it have ``[[starttime, endtime]]``). :func:`missing_spans` subtracts it from the
  requested span, so only the missing time range is fetched and processed.
* **chunks line up.** Chunks are cut every ``chunk_length`` seconds from the start of the
  first run (the *chunk grid*); a missing span must start on it (a file that ends inside a
  chunk cannot be continued: a one-shot run would have cut that chunk whole), so an
  appended file has exactly the chunks, windows and per-chunk rows of a single run over
  the whole span.
* **the same numbers or nothing.** Every processing parameter that changes the numbers
  (rates, ``cc_len``, ``step``, band, normalisation, whitening, ``maxlag``, stack method,
  ``chunk_length``, components, sub-stack grid...: the whole stored ``params``) must equal
  the file's; :func:`check_params` refuses a run that differs, naming each parameter and
  both values.
* **the total stack is the window-weighted stack of every span**
  (:func:`noisecorr.results.substacks.combine`): ``sum_k n_k s_k / sum_k n_k`` for linear
  stacks (exact); for phase-weighted stacks ``L * |P| ** pws_power`` of the
  window-weighted linear means ``L`` and mean unit phasors ``P`` stored per span (exactly
  the PWS of all windows, Schimmel & Paulssen 1997). A span that both the file and the new
  run hold (a span longer than a chunk, cut by the append) is merged the same way.
  Robust stacks (Pavlis & Vernon 2010) cannot be merged from their results: they are
  **recomputed from the stored per-chunk robust stacks** (the robust stack of the chunk
  stacks weighted by their window counts, which is what a single run computes, see
  :class:`noisecorr.signal.stack.StackState`), and so need one span per chunk
  (``substack_len == chunk_length`` on the chunk grid); any other robust file is refused.
  A file without sub-stacks (1-D stacks) can only be appended with linear stacks
  (``n_windows``-weighted mean of the two totals, exact); it keeps no per-chunk rows.
* **atomic.** The merged file is written by a :class:`~noisecorr.results.ResultsWriter`
  under a temporary name beside the results (``results.h5.append.h5``), fsync'ed and
  renamed onto ``results.h5`` in one step: a crash leaves either the old file or the new
  one, never a mix; the staging runs are removed only after the rename, and a staging run
  whose span the file already covers is recognised as merged (never added twice).

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
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .layout import SERIES_MAXLAG, from_attr
from .substacks import ROWS_KEY, Substacks, combine, pack

__all__ = ["AppendError", "COVERAGE", "MergeStats", "check_params", "chunk_grid_origin",
           "merge_results", "merge_substacks", "missing_spans", "read_coverage"]

log = logging.getLogger(__name__)

#: Root attribute of a results file: the time it covers, JSON ``[[start, end], ...]`` ISO UTC.
COVERAGE = "coverage"
#: Tolerance (s) of time comparisons on the chunk grid.
_EPS = 1e-6
#: Metadata items recomputed by the merge (or derived by the writer) rather than copied.
_DERIVED = {"source", "receiver", "component", "source_coordinates", "receiver_coordinates",
            "maxlag", "complete", "reversed_from", "n_windows", "starttime", "endtime",
            ROWS_KEY, "substack_starts", "substack_counts", "substack_len", "substack_origin",
            SERIES_MAXLAG}


class AppendError(ValueError):
    """An append that cannot give the numbers of a single run; the message says why."""


# ------------------------------------------------------------------------ time coverage
def _posix(t) -> float:
    from obspy import UTCDateTime

    return float(UTCDateTime(t).timestamp)


def _iso(t: float) -> str:
    from obspy import UTCDateTime

    return str(UTCDateTime(float(t)))


def read_coverage(path) -> list:
    """``[(start, end), ...]`` POSIX seconds that the results file ``path`` covers, sorted
    and joined where they touch (from the ``coverage`` attribute, else the file's
    ``starttime`` and ``endtime``).

    Raises
    ------
    AppendError
        The file records no time span.
    """
    with h5py.File(path, "r") as f:
        text = f.attrs.get(COVERAGE)
        if text is not None:
            spans = [(_posix(a), _posix(b)) for a, b in json.loads(from_attr(text))]
        else:
            start = from_attr(f.attrs.get("starttime", "null"))
            end = from_attr(f.attrs.get("endtime", "null"))
            if start is None or end is None:
                raise AppendError(f"{path} records no start and end time: cannot tell which chunks it holds")
            spans = [(_posix(start), _posix(end))]
    return _union(spans)


def _union(spans) -> list:
    out = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + _EPS:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def chunk_grid_origin(coverage) -> float:
    """The start of the first run of a file: chunks are ``[origin + k L, origin + (k+1) L)``."""
    return min(a for a, _ in coverage)


def missing_spans(coverage, start, end, chunk_length: float) -> list:
    """The parts of ``[start, end)`` (ISO text, UTCDateTime or POSIX s) that ``coverage``
    (see :func:`read_coverage`) does not hold, as ``[(a, b), ...]`` POSIX seconds.

    Raises
    ------
    AppendError
        A missing part does not start on the chunk grid of the file (chunks of
        ``chunk_length`` seconds from :func:`chunk_grid_origin`): its chunks would not be
        those of a single run over the whole span.

    Examples
    --------
    >>> missing_spans([(0.0, 7200.0)], 3600.0, 14400.0, 3600.0)
    [(7200.0, 14400.0)]
    >>> missing_spans([(0.0, 7200.0)], 0.0, 7200.0, 3600.0)
    []
    """
    lo = start if isinstance(start, float) else _posix(start)
    hi = end if isinstance(end, float) else _posix(end)
    if not hi > lo:
        raise AppendError(f"end {_iso(hi)} is not after start {_iso(lo)}")
    out, t = [], lo
    for a, b in _union(coverage):
        if b <= t + _EPS:
            continue
        if a >= hi - _EPS:
            break
        if a > t + _EPS:
            out.append((t, min(a, hi)))
        t = max(t, b)
    if t < hi - _EPS:
        out.append((t, hi))
    origin = chunk_grid_origin(coverage)
    for a, _ in out:
        k = (a - origin) / float(chunk_length)
        if abs(k - round(k)) * chunk_length > _EPS:
            before = origin + math.floor(k) * chunk_length
            raise AppendError(
                f"the new span would start at {_iso(a)}, inside the chunk {_iso(before)} .. "
                f"{_iso(before + chunk_length)} of the results (chunks of {chunk_length:g} s from "
                f"{_iso(origin)}): its chunks would not be those of a single run. Start on a chunk "
                f"boundary ({_iso(before)} or {_iso(before + chunk_length)}); a file whose last chunk "
                f"is partial cannot be continued")
    return out


# ------------------------------------------------------------------------- parameters
def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_params(file_params: dict, run_params: dict, where="the results file") -> None:
    """Refuse a run whose parameters differ from those stored in the results file.

    Parameters are compared as stored (JSON); ``processing.`` is left out of the names
    (``cc_len``, as in the configuration). A parameter the file lacks (an older file) is a
    difference too.

    Raises
    ------
    AppendError
        Listing each differing parameter with the file's value and this run's.

    Examples
    --------
    >>> check_params({"processing": {"cc_len": 1800}}, {"processing": {"cc_len": 3600}})
    Traceback (most recent call last):
    ...
    noisecorr.results.append.AppendError: cannot append to the results file: 1 parameter differs from it (cc_len: file 1800, this run 3600); append with the file's parameters or write a new --out
    """
    a = _flatten(json.loads(json.dumps(file_params, default=str)))
    b = _flatten(json.loads(json.dumps(run_params, default=str)))
    missing = object()
    diffs = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, missing), b.get(key, missing)
        if x != y:
            name = key.removeprefix("processing.")
            diffs.append(f"{name}: file {'(absent)' if x is missing else json.dumps(x)}, "
                         f"this run {'(absent)' if y is missing else json.dumps(y)}")
    if diffs:
        raise AppendError(f"cannot append to {where}: {len(diffs)} parameter{'s differ' if len(diffs) > 1 else ' differs'}"
                          f" from it ({'; '.join(diffs)}); append with the file's parameters or write a new --out")


def check_method(params: dict, coverage, where="the results file") -> None:
    """Refuse a robust-stack file whose spans are not one chunk each (see the module notes)."""
    proc = params.get("processing") or params
    if proc.get("stack_method") != "robust":
        return
    chunk = float(params.get("chunk_length", 86400.0))
    span = proc.get("substack_len")
    origin = _posix(proc.get("substack_origin") or "1970-01-01T00:00:00")
    offset = (chunk_grid_origin(coverage) - origin) / chunk
    if not proc.get("substack") or span is None or abs(float(span) - chunk) > _EPS \
            or abs(offset - round(offset)) * chunk > _EPS:
        raise AppendError(
            f"cannot append to {where}: a robust stack (Pavlis & Vernon 2010) is not a sum, so it is "
            f"recomputed from the stored per-chunk robust stacks, which needs one sub-stack span per chunk "
            f"(substack: true, substack_len = chunk_length = {chunk:g} s, the chunks starting on the "
            f"sub-stack grid); this file has substack={proc.get('substack')}, substack_len={span}. "
            f"Run the whole span again, or use linear or pws stacks")


# ------------------------------------------------------------------------------ merge
def merge_substacks(subs, pws_power: float = 2.0) -> Substacks:
    """One :class:`Substacks` of the spans of ``subs`` (the same pair and component from
    several runs), in time order, with its full stack over all of them.

    A span present in several inputs (a span longer than a chunk, cut by an append) is
    merged exactly: linear from the window-weighted means, pws from the weighted linear
    means and phasors (robust: refused, see the module notes). With one input, it comes
    back unchanged (its stored full stack kept bit for bit).

    Raises
    ------
    AppendError
        The inputs differ in lags, method, span length or grid, or robust spans overlap.
    """
    subs = list(subs)
    if len(subs) == 1:
        return subs[0]
    first = subs[0]
    for s in subs[1:]:
        for name in ("stack_method", "substack_len", "origin"):
            if getattr(s, name) != getattr(first, name):
                raise AppendError(f"sub-stacks to merge differ in {name}: {getattr(first, name)!r} and "
                                  f"{getattr(s, name)!r}")
        if s.lags.shape != first.lags.shape or not np.allclose(s.lags, first.lags):
            raise AppendError("sub-stacks to merge have different lag axes")
    pws = first.stack_method == "pws"
    starts = np.concatenate([s.starts for s in subs])
    counts = np.concatenate([s.counts for s in subs]).astype(np.int64)
    uniq, inv = np.unique(np.round(starts, 6), return_inverse=True)
    n = np.zeros(len(uniq), dtype=np.int64)
    np.add.at(n, inv, counts)
    if len(uniq) == len(starts):  # no span in two runs: the rows as they are, in time order
        order = np.argsort(starts, kind="stable")
        stacks = np.concatenate([s.stacks for s in subs])[order]
        linear = np.concatenate([s.linear for s in subs])[order] if pws else None
        phasor = np.concatenate([s.phasor for s in subs])[order] if pws else None
        counts = counts[order]
    else:
        if first.stack_method == "robust":
            raise AppendError("robust sub-stack spans present in two runs cannot be merged")
        w = np.where(n[inv] > 0, counts / np.maximum(n[inv], 1), 0.0)

        def wsum(rows, dtype):
            out = np.zeros((len(uniq), rows.shape[1]), dtype=dtype)
            np.add.at(out, inv, rows.astype(dtype) * w[:, None])
            return out

        if pws:
            lin = wsum(np.concatenate([s.linear for s in subs]), np.float64)
            ph = wsum(np.concatenate([s.phasor for s in subs]), np.complex128)
            stacks = (lin * np.abs(ph) ** pws_power).astype(np.float32)
            linear, phasor = lin.astype(np.float32), ph.astype(np.complex64)
        else:
            stacks = wsum(np.concatenate([s.stacks for s in subs]), np.float64).astype(np.float32)
            linear = phasor = None
        counts = n
    merged = Substacks(first.lags, None, stacks, uniq.astype(np.float64), counts,
                       first.substack_len, first.origin, first.stack_method, linear, phasor)
    from dataclasses import replace

    if any(s.stack is None or s.stack.shape != s.lags.shape for s in subs):
        # rows of a shorter maxlag (keep_chunks.maxlag) do not hold the whole stack: it is
        # the window-weighted mean of the inputs' full stacks, exact for linear stacks only
        if first.stack_method != "linear" or any(s.stack is None for s in subs) \
                or len({s.stack.shape for s in subs}) > 1:
            raise AppendError(f"{first.stack_method} sub-stacks that keep a shorter maxlag than "
                              "their stack (keep_chunks.maxlag) cannot update the full stack; "
                              "only linear ones can")
        n = np.array([s.counts.sum() for s in subs], dtype=np.float64)
        w = n / n.sum() if n.sum() else np.full(len(subs), 1.0 / len(subs))
        full = w @ np.stack([s.stack.astype(np.float64) for s in subs])
        return replace(merged, stack=full.astype(np.float32))
    full, _ = combine(merged, pws_power)
    return replace(merged, stack=full.astype(np.float32))


def _merge_1d(items, method: str, where: str):
    """``(stack, n)`` of linear 1-D stacks ``[(stack, n_windows), ...]``, weighted by window counts."""
    if len(items) == 1:
        return items[0]
    if method != "linear":
        raise AppendError(f"{where}: stored without sub-stacks, a {method} stack cannot be updated "
                          f"(its per-chunk linear means and phasors are not in the file); run with "
                          f"substack: true (or keep: chunks) to make appendable files")
    n = np.array([max(int(k), 0) for _, k in items], dtype=np.float64)
    if not n.sum():
        return items[-1]
    stack = (n / n.sum()) @ np.stack([np.asarray(s, dtype=np.float64) for s, _ in items])
    return stack.astype(np.float32), int(n.sum())


@dataclass
class MergeStats:
    """What :func:`merge_results` did.

    Attributes
    ----------
    updated : int
        Pair components present before and extended by the new runs.
    new : int
        Pair components the file did not have (new stations, or pairs without windows before).
    unchanged : int
        Pair components of the file the new runs had no windows for (copied as they were).
    stations_new : list of str
        Stations the file did not have.
    coverage : list of (start, end)
        POSIX seconds the merged file covers.
    """

    updated: int = 0
    new: int = 0
    unchanged: int = 0
    stations_new: list = field(default_factory=list)
    coverage: list = field(default_factory=list)


def _clear(path: Path) -> None:
    """Remove a leftover merge target (and the writer's parts of it) of an interrupted merge."""
    from .writer import parts_dir

    for p in (path, Path(str(path) + ".tmp")):
        if p.exists():
            log.warning("removing %s left by an interrupted append", p)
            p.unlink()
    if parts_dir(path).exists():
        log.warning("removing %s left by an interrupted append", parts_dir(path))
        shutil.rmtree(parts_dir(path))


def _pair_meta(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in _DERIVED and v is not None}


def _time_bounds(metas):
    from obspy import UTCDateTime

    starts = [UTCDateTime(m["starttime"]) for m in metas if m.get("starttime")]
    ends = [UTCDateTime(m["endtime"]) for m in metas if m.get("endtime")]
    return (str(min(starts)) if starts else None), (str(max(ends)) if ends else None)


def merge_results(path, staged, coverage, *, compression=None, checkpoint_bytes: int = 256 * 2**20) -> MergeStats:
    """Merge the results files ``staged`` (runs over new spans, same parameters) into the
    results file ``path``, atomically (see the module notes).

    Parameters
    ----------
    path : path
        The results file (``results.h5``); replaced in one rename.
    staged : list of path
        Results files of the new spans, in any order (their spans must not overlap the
        file's; :func:`missing_spans` made them so).
    coverage : list of (start, end)
        POSIX seconds the merged file covers (stored as its ``coverage`` attribute).
    compression : None, "gzip" or "lzf"
        Compression of the merged file's datasets.
    checkpoint_bytes : int
        Bytes of stacks the writer buffers before writing a part (bounds the memory).

    Returns
    -------
    MergeStats
    """
    from .reader import open_results
    from .writer import ResultsWriter

    path = Path(path)
    target = Path(str(path) + ".append.h5")
    _clear(target)
    stats = MergeStats(coverage=_union(coverage))
    old = open_results(path)
    news = [open_results(p) for p in staged]
    try:
        params = old.params
        for s, p in zip(news, staged):
            check_params(params, s.params, where=f"{path} (from {p})")
        proc = params.get("processing") or params
        pws_power = float(proc.get("pws_power", 2.0))
        method = str(proc.get("stack_method", "linear"))
        old_codes = {st["code"] for st in old.stations()}
        stations = {st["code"]: st for r in (old, *news) for st in r.stations()}
        stats.stations_new = sorted(set(stations) - old_codes)
        starts = [r.starttime for r in (old, *news) if r.starttime]
        ends = [r.endtime for r in (old, *news) if r.endtime]
        from obspy import UTCDateTime

        writer = None
        for comp in sorted({c for r in (old, *news) for c in r.components()}):
            keys_old = set(old.pairs(comp))
            keys_new = [set(r.pairs(comp)) for r in news]
            for key in sorted(keys_old.union(*keys_new)):
                holders = ([old] if key in keys_old else []) + [r for r, k in zip(news, keys_new) if key in k]
                metas = [r.meta(*key, comp) for r in holders]
                if writer is None:
                    row_bytes = 4 * (2 * int(round(metas[0]["maxlag"] * metas[0]["sampling_rate"])) + 1)
                    per_pair = row_bytes * (1 + 4 * max(1, len(metas[0].get("substack_counts") or [])))
                    writer = ResultsWriter(target, params, stations=list(stations.values()),
                                           starttime=min(starts, key=UTCDateTime) if starts else None,
                                           endtime=max(ends, key=UTCDateTime) if ends else None,
                                           compression=compression, resume=False,
                                           checkpoint_pairs=max(1, checkpoint_bytes // per_pair))
                where = f"{key[0]} -> {key[1]} {comp}"
                meta = _pair_meta(metas[-1])
                t0, t1 = _time_bounds(metas)
                meta.update(starttime=t0, endtime=t1)
                if all(m.get(ROWS_KEY) is not None for m in metas):
                    sub = merge_substacks([r.substacks(*key, comp) for r in holders], pws_power)
                    # rows of a shorter maxlag (keep_chunks.maxlag): the stack keeps the file's
                    lags = sub.lags if sub.stack.shape == sub.lags.shape else float(metas[-1]["maxlag"])
                    data, layout = pack({"stack": sub.stack, "substacks": sub.stacks,
                                         "substack_starts": sub.starts, "substack_counts": sub.counts,
                                         "substack_len": sub.substack_len, "substack_origin": sub.origin,
                                         "substack_linear": sub.linear, "substack_phasor": sub.phasor,
                                         "sampling_rate": metas[0]["sampling_rate"]},
                                        series_maxlag=metas[-1].get(SERIES_MAXLAG))
                    meta.update(layout, n_windows=int(np.sum(sub.counts)))
                elif not any(m.get(ROWS_KEY) is not None or m.get("substack_counts") is not None for m in metas):
                    read = [r.stack(*key, comp) for r in holders]
                    lags = read[0][0]
                    items = [(ccf, m.get("n_windows", -1)) for (_, ccf), m in zip(read, metas)]
                    data, n = _merge_1d(items, method, where)
                    meta["n_windows"] = int(n)
                else:
                    raise AppendError(f"{where}: stored with and without the sub-stack layout in the runs "
                                      f"to merge (an older file?); cannot merge them exactly")
                writer.write_pair(key[0], key[1], comp, lags, data, meta)
                if key not in keys_old:
                    stats.new += 1
                elif len(holders) > 1:
                    stats.updated += 1
                else:
                    stats.unchanged += 1
    finally:
        old.close()
        for r in news:
            r.close()
    if writer is None:
        raise AppendError(f"{path} and the new runs hold no pair: nothing to merge")
    writer.close()
    with h5py.File(target, "r+") as f:
        f.attrs[COVERAGE] = json.dumps([[_iso(a), _iso(b)] for a, b in stats.coverage])
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(target, path)
    log.info("merged %d new run(s) into %s: %d pair components updated, %d new, %d unchanged",
             len(staged), path, stats.updated, stats.new, stats.unchanged)
    return stats
