"""Crash-safe, resumable writer of the results HDF5 file.

How a crash can never leave a corrupt file
------------------------------------------
HDF5 does not survive a process killed with the file open for writing: its
metadata cache may be half on disk. So no file that a reader trusts is ever
open for writing:

1. Pairs accumulate in memory and are written, every ``checkpoint_pairs``
   pairs (or on :meth:`ResultsWriter.checkpoint`), into a new *part* file
   ``<path>.parts/part-NNNNNN.h5``, built in memory, written as
   ``... .h5.tmp``, fsync'ed and renamed. A part that exists under its final
   name is whole. A part holds the stacks as a few 2-D ``/blocks/<k>``
   datasets (one per stack shape) plus the ``/index`` columns with
   ``block``/``block_row``: writing it creates a handful of HDF5 objects,
   not one per pair.
   When the writer compresses (``compression``), the blocks are stored one chunk
   per row, compressed here, by each writer in parallel, so the merge copies the
   chunks as they are.
2. :meth:`ResultsWriter.close` merges the main file and all parts into
   ``<path>.tmp`` and renames it onto ``<path>`` (:func:`noisecorr.results.merge.merge_parts`:
   one ``/pairs/<SRC>/<RCV>/<COMP>`` dataset per pair, the index columns concatenated and
   sorted, all through HDF5's own I/O and inside a memory budget); only then are the parts
   deleted. A crash at any moment leaves the old main file and the parts intact; leftover
   ``*.tmp`` files are ignored and removed on the next open. Merging is idempotent (a pair
   in a later part replaces the same pair from an earlier part or the main file).

A crash loses at most the pairs not yet checkpointed. Reopening the same
path with the same ``params`` resumes: :meth:`ResultsWriter.completed` lists
every pair flagged complete in the main file and the parts.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import h5py
import numpy as np

from . import index as ix
from .layout import (FORMAT, FORMAT_VERSION, SERIES_MAXLAG, check_code, check_component,
                     from_attr, geometry_many, lag_count, resolve_maxlag, to_attr)
# the part-file helpers and the merge live in .merge; their names stay importable from here
from .merge import (META_BLOCK_BYTES, MergeReport, _fsync, _image, _v1_columns,  # noqa: F401
                    _write_stations, list_parts, merge_parts, parts_dir, read_index,
                    read_stations)

log = logging.getLogger(__name__)


def _default_version() -> str:
    try:
        from noisecorr import __version__
        return str(__version__)
    except ImportError:
        return "unknown"



def _normalise_stations(stations) -> dict:
    out = {}
    for s in stations or ():
        if isinstance(s, dict):
            d = dict(s)
        else:  # objects with attributes (e.g. SynthStation)
            d = {k: getattr(s, k) for k in ("latitude", "longitude", "elevation")}
            d["code"] = s.code
        code = check_code(d["code"])
        out[code] = {"code": code, "latitude": float(d["latitude"]),
                     "longitude": float(d["longitude"]),
                     "elevation": float(d.get("elevation", 0.0))}
    return out


class ResultsWriter:
    """Write pair stacks into one HDF5 results file, crash-safe and resumable.

    Parameters
    ----------
    path : path
        The results file (``.h5``).
    params : dict
        Processing parameters (JSON-serialisable); stored as the file
        attribute ``params``. Resuming with different params is refused.
    version : str, optional
        Software version (default ``noisecorr.__version__``).
    stations : iterable, optional
        Station table: dicts with ``code`` (``NET.STA``), ``latitude``,
        ``longitude``, ``elevation``, or objects with those attributes.
        Used to fill coordinates, distance and azimuths of each pair.
    starttime, endtime : str or UTCDateTime, optional
        Time span of the input data.
    sampling_rate : float, optional
        Default sampling rate (Hz) of stacks whose ``meta`` has none.
    compression : {None, "gzip", "lzf"}
        Dataset compression; ``compression_opts`` is passed to h5py.
    checkpoint_pairs : int
        Pairs buffered before they are written to a part file.
    resume : bool
        If the file (or parts) exist: true resumes, false raises.
    writer_id : int, optional
        Several processes may write parts of the same results at once, each with its own
        ``writer_id`` (its parts are ``part-NNNNNN-w<ID>.h5``, so names never collide);
        each then closes with ``close(merge=False)`` and one process calls
        :func:`merge_parts` when all are done.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "r.h5")
    >>> with ResultsWriter(path, {"cc_len": 3600}, version="0.1") as w:
    ...     w.write_pair("XS.A", "XS.B", "ZZ", 1.0, np.zeros(21, "f4"),
    ...                  {"sampling_rate": 10.0, "n_windows": 3})
    ...     w.write_block(["XS.A", "XS.A"], ["XS.C", "XS.D"], "ZZ", 1.0,
    ...                   np.zeros((2, 21), "f4"),
    ...                   {"sampling_rate": 10.0, "n_windows": [4, 5]})
    >>> sorted(ResultsWriter(path, {"cc_len": 3600}).completed())
    [('XS.A', 'XS.B', 'ZZ'), ('XS.A', 'XS.C', 'ZZ'), ('XS.A', 'XS.D', 'ZZ')]
    """

    def __init__(self, path, params: dict, version: str | None = None, stations=None,
                 starttime=None, endtime=None, sampling_rate: float | None = None,
                 compression: str | None = None, compression_opts=None,
                 checkpoint_pairs: int = 2000, resume: bool = True, writer_id: int | None = None):
        self.path = Path(path)
        self.writer_id = writer_id
        self.params = json.loads(json.dumps(params, default=str))
        self._params_json = json.dumps(self.params, sort_keys=True)
        self.version = _default_version() if version is None else str(version)
        self.starttime = None if starttime is None else str(starttime)
        self.endtime = None if endtime is None else str(endtime)
        self.sampling_rate = None if sampling_rate is None else float(sampling_rate)
        if compression not in (None, "gzip", "lzf"):
            raise ValueError(f"compression must be None, 'gzip' or 'lzf', got {compression!r}")
        self.compression, self.compression_opts = compression, compression_opts
        if checkpoint_pairs < 1:
            raise ValueError("checkpoint_pairs must be >= 1")
        self.checkpoint_pairs = int(checkpoint_pairs)
        self._stations = _normalise_stations(stations)
        self._blocks: list = []  # [(data (n, ...), columns)] in write order
        self._n_buffered = 0
        self._closed = False
        self._last_checkpoint = time.monotonic()
        self._durable: set = set()
        # "src|rcv|comp" of the complete pairs queued by this writer: a pair written twice
        # (two partial stacks of one pair) is refused, not silently last-wins
        self._written: set = set()
        self._clean_tmp()
        self._load_existing(resume)

    # ---------------------------------------------------------------- state
    def _clean_tmp(self):
        if self.writer_id is None:
            leftovers = [Path(str(self.path) + ".tmp"), *parts_dir(self.path).glob("*.tmp")]
        else:  # other writers may be checkpointing right now: only our own leftovers
            leftovers = list(parts_dir(self.path).glob(f"part-*-w{self.writer_id}.h5.tmp"))
        for p in leftovers:
            if p.exists():
                log.warning("removing leftover partial file %s", p)
                p.unlink()

    def _load_existing(self, resume: bool):
        files = ([self.path] if self.path.exists() else []) + list_parts(self.path)
        if files and not resume:
            raise FileExistsError(f"{self.path} (or its parts) exists; pass resume=True "
                                  "to continue it or remove it")
        for p in files:
            with h5py.File(p, "r") as f:
                old = f.attrs.get("params")
                if old is not None and json.dumps(json.loads(old), sort_keys=True) \
                        != self._params_json:
                    raise ValueError(f"{p} was written with different params; "
                                     "refusing to mix runs")
                for src, rcv, comp, done in read_index(f):
                    if done:
                        self._durable.add((src, rcv, comp))
                    else:
                        self._durable.discard((src, rcv, comp))
                for code, st in read_stations(f).items():
                    self._stations.setdefault(code, st)
                self.starttime = self.starttime or from_attr(f.attrs.get("starttime", "null"))
                self.endtime = self.endtime or from_attr(f.attrs.get("endtime", "null"))
        if files:
            log.info("resuming %s: %d complete pairs", self.path, len(self._durable))

    def add_stations(self, stations) -> None:
        """Add or update station table entries (see ``stations``)."""
        self._stations.update(_normalise_stations(stations))

    def completed(self) -> set:
        """``{(source, receiver, component)}`` flagged complete: durable ones
        (main file and parts) plus those buffered in this session."""
        done = set(self._durable)
        for _, cols in self._blocks:
            keys = zip(cols["source"].tolist(), cols["receiver"].tolist(),
                       cols["component"].tolist(), cols["complete"].tolist())
            for s, r, c, ok in keys:
                (done.add if ok else done.discard)((s.decode(), r.decode(), c.decode()))
        return done

    # ---------------------------------------------------------------- write
    def write_pair(self, source: str, receiver: str, component: str, lags_or_maxlag,
                   stack, meta: dict | None = None) -> None:
        """Queue one pair's stack.

        Parameters
        ----------
        source, receiver : str
            ``"NET.STA"`` codes.
        component : str
            E.g. ``"ZZ"``.
        lags_or_maxlag : float or array
            ``maxlag`` in seconds, or the full lag array (checked to be the
            exact ``-maxlag..maxlag`` axis).
        stack : array
            float32-castable, shape ``(n,)`` or ``(n_substacks, n)`` with
            ``n = 2 * round(maxlag * fs) + 1``.
        meta : dict
            ``sampling_rate`` (if the writer has no default), ``n_windows``,
            ``starttime``, ``endtime``, ``complete`` (default True) and any
            other JSON-able items. ``distance_km``, ``azimuth`` and
            ``back_azimuth`` are computed from the station table unless
            given.
        """
        data = np.asarray(stack, dtype=np.float32)
        self.write_block([source], [receiver], component, lags_or_maxlag, data[None], meta)

    def write_many(self, items) -> None:
        """Queue many pairs: tuples ``(source, receiver, component,
        lags_or_maxlag, stack, meta)`` or dicts with those keys."""
        for it in items:
            if isinstance(it, dict):
                self.write_pair(it["source"], it["receiver"], it["component"],
                                it.get("lags_or_maxlag", it.get("maxlag", it.get("lags"))),
                                it["stack"], it.get("meta"))
            else:
                self.write_pair(*it)

    def write_block(self, sources, receivers, component, lags_or_maxlag, stacks,
                    meta: dict | None = None) -> None:
        """Queue many pairs of one component and lag axis at once.

        Parameters
        ----------
        sources, receivers : sequence of str
            ``"NET.STA"`` codes, one per row of ``stacks``.
        component : str or sequence of str
            One component for all rows, or one per row.
        lags_or_maxlag : float or array
            As in :meth:`write_pair` (shared by all rows).
        stacks : array
            ``(n_pairs, n_lags)`` or ``(n_pairs, n_substacks, n_lags)``,
            float32-castable.
        meta : dict
            ``sampling_rate`` (scalar), ``n_windows``, ``complete``,
            ``starttime``, ``endtime``, ``distance_km``, ``azimuth``,
            ``back_azimuth``: a scalar for all rows or a sequence of one value
            per row. Any other item is stored, the same for every row, in the
            ``extra`` JSON column.

        Raises
        ------
        ValueError
            Bad rows, or a pair this writer already wrote complete (named in the message).

        Examples
        --------
        >>> import tempfile, os, numpy as np
        >>> w = ResultsWriter(os.path.join(tempfile.mkdtemp(), "r.h5"), {})
        >>> w.write_block(["XS.A"], ["XS.B"], "ZZ", 0.5, np.zeros((1, 11)),
        ...               {"sampling_rate": 10.0, "n_windows": [7]})
        >>> w.close()
        """
        if self._closed:
            raise ValueError("writer is closed")
        meta = dict(meta or {})
        sources, receivers = list(sources), list(receivers)
        n = len(sources)
        comps = [component] * n if isinstance(component, str) else list(component)
        if len(receivers) != n or len(comps) != n:
            raise ValueError("sources, receivers (and components) must have the same length")
        for code in set(sources) | set(receivers):
            check_code(code)
        for comp in set(comps):
            check_component(comp)
        fs = meta.pop("sampling_rate", self.sampling_rate)
        if fs is None:
            raise ValueError("sampling_rate missing: give it in meta or to ResultsWriter")
        fs = float(np.asarray(fs).ravel()[0]) if np.ndim(fs) else float(fs)
        maxlag = resolve_maxlag(lags_or_maxlag, fs)
        n_lags = lag_count(maxlag, fs)
        if meta.get(SERIES_MAXLAG) is not None:  # sub-stack rows of a shorter maxlag
            n_lags = min(n_lags, lag_count(float(meta[SERIES_MAXLAG]), fs))
        data = np.ascontiguousarray(stacks, dtype=np.float32)
        if data.ndim not in (2, 3) or data.shape[0] != n or data.shape[-1] != n_lags:
            what = f"{sources[0]}-{receivers[0]} {comps[0]}" if n == 1 else f"{n} pairs"
            raise ValueError(f"stack of {what}: last axis must have 2*round(maxlag*fs)+1 = "
                             f"{n_lags} samples, got shape {data.shape[1:]}")
        if not np.isfinite(data).all():
            bad = int(np.flatnonzero(~np.isfinite(data.reshape(n, -1)).all(axis=1))[0])
            raise ValueError(f"stack of {sources[bad]}-{receivers[bad]} {comps[bad]} has NaN/inf")
        cols = {"source": ix.text_column(sources), "receiver": ix.text_column(receivers),
                "component": ix.text_column(comps),
                "sampling_rate": np.full(n, fs), "maxlag": np.full(n, maxlag)}
        for name, (kind, fill) in ix.NUMERIC.items():
            if name in ("sampling_rate", "maxlag"):
                continue
            value = meta.pop(name, fill)
            value = np.nan if value is None else value
            cols[name] = np.broadcast_to(np.asarray(value, dtype=kind), (n,)).copy()
        for name in ("starttime", "endtime"):
            value = meta.pop(name, None)
            values = [None if v is None else str(v) for v in value] \
                if isinstance(value, (list, tuple, np.ndarray)) else [value] * n
            cols[name] = ix.text_column([None if v in (None, "null") else str(v)
                                         for v in values])
        if meta:
            text = json.dumps({k: _jsonable(v) for k, v in meta.items()}, sort_keys=True)
            cols[ix.EXTRA] = np.full(n, text.encode(), dtype=f"S{len(text.encode())}")
        self._refuse_twice(sources, receivers, comps, cols["complete"])
        self._blocks.append((data, cols))
        self._n_buffered += n
        if self._n_buffered >= self.checkpoint_pairs:
            self.checkpoint()

    def _refuse_twice(self, sources, receivers, comps, complete) -> None:
        """Raise, naming the pair, if a pair was already written complete by this writer
        (or is twice in this call); rewriting a pair queued incomplete
        (``complete=False``) is allowed, and so is rewriting a pair of an earlier session
        (resume)."""
        added = set()
        for s, r, c, ok in zip(sources, receivers, comps, complete.tolist()):
            key = f"{s}|{r}|{c}"
            if key in self._written or key in added:
                raise ValueError(f"pair {s}-{r} {c} written twice to {self.path}: each pair's "
                                 "stack must reach the writer once (two partial stacks of a "
                                 "pair would each lack the other's windows)")
            if ok:
                added.add(key)
        self._written |= added

    def _fill_geometry(self, cols: dict) -> None:
        missing = np.isnan(cols["distance_km"])
        if not missing.any() or not self._stations:
            return
        rows = np.flatnonzero(missing)
        lat = {c.encode(): st["latitude"] for c, st in self._stations.items()}
        lon = {c.encode(): st["longitude"] for c, st in self._stations.items()}
        src, rcv = cols["source"][rows], cols["receiver"][rows]
        coords = np.array([[lat.get(s, np.nan), lon.get(s, np.nan), lat.get(r, np.nan),
                            lon.get(r, np.nan)] for s, r in zip(src.tolist(), rcv.tolist())])
        known = np.isfinite(coords).all(axis=1)
        if not known.any():
            return
        rows, coords = rows[known], coords[known]
        d, az, baz = geometry_many(coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3])
        for name, values in (("distance_km", d), ("azimuth", az), ("back_azimuth", baz)):
            cols[name] = cols[name].copy()
            cols[name][rows] = values

    def checkpoint(self) -> None:
        """Write the buffered pairs to a new part file (atomically)."""
        if not self._blocks:
            return
        # one /blocks/<k> dataset per stack shape, rows in write order
        shapes: dict = {}
        for data, _ in self._blocks:
            shapes.setdefault(data.shape[1:], []).append(data)
        shape_ids = {shape: k for k, shape in enumerate(shapes)}
        offsets = dict.fromkeys(shapes, 0)
        cols_list = []
        for data, cols in self._blocks:
            shape = data.shape[1:]
            cols = dict(cols, block=np.full(len(data), shape_ids[shape], dtype=np.int64),
                        block_row=np.arange(offsets[shape], offsets[shape] + len(data)))
            offsets[shape] += len(data)
            cols_list.append(cols)
        cols = ix.concat(cols_list)
        keep = ix.last_wins(cols)
        cols = {k: v[keep] for k, v in cols.items()}
        self._fill_geometry(cols)
        d = parts_dir(self.path)
        d.mkdir(parents=True, exist_ok=True)
        existing = list_parts(self.path)
        num = 1 + max((int(p.stem.split("-")[1]) for p in existing), default=0)
        final = d / (f"part-{num:06d}.h5" if self.writer_id is None else f"part-{num:06d}-w{self.writer_id}.h5")
        tmp = Path(str(final) + ".tmp")
        with _image(tmp) as f:
            self._root_attrs(f)
            f.attrs["layout"] = "blocks"
            f.attrs["compression"] = self.compression or ""
            if self.compression_opts is not None:
                f.attrs["compression_opts"] = self.compression_opts
            blocks = f.create_group("blocks", track_order=False)
            for shape, arrays in shapes.items():
                data = np.concatenate(arrays)
                if self.compression:  # one chunk per row: the merge copies it as it is
                    blocks.create_dataset(str(shape_ids[shape]), data=data,
                                          chunks=(1, *shape), compression=self.compression,
                                          compression_opts=self.compression_opts)
                else:
                    blocks.create_dataset(str(shape_ids[shape]), data=data)
            ix.write_columns(f, cols)
            _write_stations(f, self._stations)
        os.replace(tmp, final)
        for s, r, c, ok in zip(cols["source"].tolist(), cols["receiver"].tolist(),
                               cols["component"].tolist(), cols["complete"].tolist()):
            (self._durable.add if ok else self._durable.discard)(
                (s.decode(), r.decode(), c.decode()))
        log.debug("checkpoint %s: %d pairs", final, len(keep))
        self._blocks.clear()
        self._n_buffered = 0
        self._last_checkpoint = time.monotonic()

    def _root_attrs(self, f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["software_version"] = self.version
        f.attrs["params"] = self._params_json
        f.attrs["starttime"] = to_attr(self.starttime)
        f.attrs["endtime"] = to_attr(self.endtime)

    # ---------------------------------------------------------------- merge
    def close(self, merge: bool = True, memory: int | None = None) -> None:
        """Checkpoint, then (``merge``) merge all parts into the main file atomically,
        within ``memory`` bytes (see :func:`~noisecorr.results.merge.merge_parts`)."""
        if self._closed:
            return
        self.checkpoint()
        if merge:
            merge_parts(self.path, root_attrs=self._root_attrs, stations=self._stations,
                        memory=memory)
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)  # UTCDateTime, datetime, Path...
