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
2. :meth:`ResultsWriter.close` merges the main file and all parts into
   ``<path>.tmp`` (the main file plus one ``/pairs/<SRC>/<RCV>/<COMP>``
   dataset per part row, created with the low-level API and no
   attributes, and filled from the parts' bytes in large copies when the
   merge is built on disk; the index columns concatenated and sorted),
   fsyncs it and renames it onto ``<path>``; only then are the parts
   deleted. A crash at any moment leaves the old main file and the
   parts intact; leftover ``*.tmp`` files are ignored and removed on the
   next open. Merging is idempotent (a pair in a later part replaces the
   same pair from an earlier part or the main file).

A crash loses at most the pairs not yet checkpointed. Reopening the same
path with the same ``params`` resumes: :meth:`ResultsWriter.completed` lists
every pair flagged complete in the main file and the parts.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import queue
import shutil
import threading
import time
from pathlib import Path

import h5py
import numpy as np

from . import index as ix
from .layout import (FORMAT, FORMAT_VERSION, check_code, check_component, from_attr,
                     geometry_many, half_length, pair_path, resolve_maxlag, to_attr)

log = logging.getLogger(__name__)

_STR = h5py.string_dtype()
read_index = ix.read_index  # noqa: F401  (imported from here by callers)


def parts_dir(path) -> Path:
    """Folder of the checkpoint parts of results file ``path``."""
    return Path(str(path) + ".parts")


def list_parts(path) -> list:
    """Whole part files of ``path``, oldest first."""
    d = parts_dir(path)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("part-*.h5"))


def _fsync(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _default_version() -> str:
    try:
        from noisecorr import __version__
        return str(__version__)
    except ImportError:
        return "unknown"


def read_stations(f: h5py.File) -> dict:
    """``{code: {"code", "latitude", "longitude", "elevation"}}`` from /stations."""
    if "stations" not in f:
        return {}
    g = f["stations"]
    codes = g["code"].asstr()[()].tolist()
    lat, lon, elev = g["latitude"][()], g["longitude"][()], g["elevation"][()]
    return {c: {"code": c, "latitude": float(a), "longitude": float(b), "elevation": float(e)}
            for c, a, b, e in zip(codes, lat, lon, elev)}


def _write_stations(f: h5py.File, stations: dict) -> None:
    if "stations" in f:
        del f["stations"]
    g = f.create_group("stations")
    codes = sorted(stations)
    g.create_dataset("code", data=np.array(codes, dtype=object), dtype=_STR)
    for key in ("latitude", "longitude", "elevation"):
        g.create_dataset(key, data=np.array([stations[c].get(key, np.nan) for c in codes],
                                            dtype=np.float64))


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
        n_lags = 2 * half_length(maxlag, fs) + 1
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
                blocks.create_dataset(str(shape_ids[shape]), data=np.concatenate(arrays))
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
    def close(self, merge: bool = True) -> None:
        """Checkpoint, then (``merge``) merge all parts into the main file atomically."""
        if self._closed:
            return
        self.checkpoint()
        if merge:
            merge_parts(self.path, root_attrs=self._root_attrs, stations=self._stations)
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


#: Merges up to this size are built in memory (see :class:`_image`).
IN_MEMORY_MERGE_BYTES = 2 * 2**30


class _image:
    """Build an HDF5 file in memory, then write its bytes to ``path`` and fsync.

    HDF5 handles a failing disk write (full disk, file-size limit) badly: the library may
    crash while closing the half-written file. Building the image in memory (HDF5's ``core``
    driver without backing store) keeps HDF5 away from the disk; the one plain ``os.write``
    loop then raises a clean ``OSError`` (ENOSPC, EFBIG), and the caller's temporary name
    plus rename keeps the real file untouched.
    """

    def __init__(self, path, initial=None):
        self.path = Path(path)
        if initial is not None:
            self.file = h5py.File(str(initial), "r+", driver="core", backing_store=False,
                                  libver="latest")
        else:
            self.file = h5py.File(str(self.path), "w", driver="core", backing_store=False,
                                  libver="latest")

    def __enter__(self):
        return self.file

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.file.close()
            return False
        self.file.flush()
        data = memoryview(self.file.id.get_file_image())
        self.file.close()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            done = 0
            while done < data.nbytes:
                done += os.write(fd, data[done:])
            os.fsync(fd)
        except OSError:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        os.close(fd)
        return False


def _check_free_space(folder, needed):
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    if free < needed:
        raise OSError(28, f"not enough free space in {folder} to merge the results: "
                          f"{needed / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free")


class _PairSink:
    """Create ``/pairs/<SRC>/<RCV>/<COMP>`` datasets fast (low-level h5py, no
    attributes, no timestamps, cached types and property lists), replacing existing
    ones.

    :meth:`put` writes a stack through HDF5; :meth:`allocate` only creates the dataset,
    contiguous and with its space allocated (no fill), and returns where its bytes are in
    the file, for :func:`_copy_ranges` to fill once the file is closed.
    """

    #: Open groups kept for reuse (a pair's group is reused by its other components).
    MAX_OPEN_GROUPS = 65536

    def __init__(self, f: h5py.File, compression=None, compression_opts=None):
        self.f = f
        self.root = f.require_group("pairs").id
        self.groups: dict = {}
        self.tid = h5py.h5t.py_create(np.dtype(np.float32))
        self.lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
        self.lcpl_parents = h5py.h5p.create(h5py.h5p.LINK_CREATE)
        self.lcpl_parents.set_create_intermediate_group(True)
        self.gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        self.gcpl.set_obj_track_times(False)  # as h5py's default: no creation times
        self.compression, self.opts = compression or None, compression_opts
        self.dcpls: dict = {}
        self.spaces: dict = {}

    def _group(self, parent, key, name: bytes):
        gid = self.groups.get(key)
        if gid is None:
            if parent.links.exists(name):
                gid = h5py.h5g.open(parent, name)
            else:
                gid = h5py.h5g.create(parent, name, self.lcpl, self.gcpl)
            if len(self.groups) >= self.MAX_OPEN_GROUPS:
                self.groups.clear()
            self.groups[key] = gid
        return gid

    def _dcpl(self, shape, allocated=False):
        dcpl = self.dcpls.get((shape, allocated))
        if dcpl is None:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_obj_track_times(False)
            if allocated:  # contiguous, space allocated now, never written by HDF5
                dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            elif self.compression:
                dcpl.set_chunk(shape)
                if self.compression == "gzip":
                    dcpl.set_deflate(4 if self.opts is None else int(self.opts))
                else:
                    dcpl.set_filter(h5py.h5z.FILTER_LZF, h5py.h5z.FLAG_OPTIONAL)
            self.dcpls[(shape, allocated)] = dcpl
            self.spaces[shape] = h5py.h5s.create_simple(shape)
        return dcpl

    def _create(self, src: bytes, rcv: bytes, comp: bytes, shape, tid, allocated=False):
        gs = self._group(self.root, src, src)
        gr = self._group(gs, (src, rcv), rcv)
        if gr.links.exists(comp):
            gr.unlink(comp)
        dcpl = self._dcpl(shape, allocated)
        return h5py.h5d.create(gr, comp, tid, self.spaces[shape], dcpl=dcpl)

    def put(self, src: bytes, rcv: bytes, comp: bytes, data: np.ndarray) -> None:
        ds = self._create(src, rcv, comp, data.shape, self.tid)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data, dtype=np.float32))

    def allocate(self, src: bytes, rcv: bytes, comp: bytes, shape, tid, new=False) -> int:
        """Create the dataset (file type ``tid``, space allocated, not written); returns
        the file offset of its bytes.

        ``new``: the pair has no dataset yet, so nothing is looked up or replaced and its
        receiver group is made, if missing, by the same call (a quarter faster).
        """
        if not new:
            return self._create(src, rcv, comp, shape, tid, allocated=True).get_offset()
        gs = self._group(self.root, src, src)
        dcpl = self._dcpl(shape, allocated=True)
        return h5py.h5d.create(gs, rcv + b"/" + comp, tid, self.spaces[shape], dcpl=dcpl,
                               lcpl=self.lcpl_parents).get_offset()


def _raw_blocks(part: h5py.File):
    """``{k: (dataset, file offset, bytes per row)}`` of a part's ``/blocks`` if every block
    can be copied byte for byte into the merged file (uncompressed and contiguous, so a row
    is a byte range of the part), else ``None``."""
    if from_attr(part.attrs.get("layout", "null")) != "blocks" \
            or from_attr(part.attrs.get("compression", "")):
        return None
    out = {}
    for k, ds in part["blocks"].items():
        if ds.chunks is not None or ds.compression is not None or ds.external:
            return None
        offset = ds.id.get_offset()
        if offset is None and ds.size:
            return None
        row = ds.id.get_type().get_size() * int(np.prod(ds.shape[1:], dtype=np.int64))
        out[int(k)] = (ds, offset, row)
    return out


class _Copier:
    """Copy byte ranges from the parts into the merged file in a background thread, while
    the merge goes on creating datasets (HDF5 never writes the space it allocated for
    them, so the two never touch the same bytes).

    :meth:`submit` queues one part's ranges; :meth:`close` waits for all and raises the
    first error of the copies; :meth:`abort` drops what is left.
    """

    def __init__(self, dst_path: Path):
        self.fd = os.open(dst_path, os.O_WRONLY)
        self.queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="merge-copy", daemon=True)
        self.thread.start()

    def submit(self, part: Path, ranges: list) -> None:
        """Queue ``[(source offset, destination offset, length)]`` from ``part``."""
        if self.error is not None:
            raise self.error
        self.queue.put((part, ranges))

    def _run(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain after a failure
            part, ranges = item
            try:
                src = os.open(part, os.O_RDONLY)
                try:
                    for src_off, dst_off, n in _runs(ranges):
                        _copy_range(src, self.fd, src_off, dst_off, n, part)
                finally:
                    os.close(src)
            except BaseException as exc:  # raised in the merging thread by submit/close
                self.error = exc

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        os.close(self.fd)
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        if self.thread.is_alive():
            self.error = self.error or RuntimeError("merge aborted")
            self.queue.put(None)
            self.thread.join()
            os.close(self.fd)


def _runs(ranges) -> list:
    """``(source offset, destination offset, length)`` ranges with adjacent ones joined."""
    runs = []
    for src_off, dst_off, n in sorted(ranges):
        last = runs[-1] if runs else None
        if last and last[0] + last[2] == src_off and last[1] + last[2] == dst_off:
            last[2] += n
        else:
            runs.append([src_off, dst_off, n])
    return runs


def _copy_range(src: int, dst: int, src_off: int, dst_off: int, n: int, name) -> None:
    while n > 0:
        try:
            if not hasattr(os, "copy_file_range"):  # Linux only
                raise OSError(errno.ENOSYS, "no copy_file_range")
            k = os.copy_file_range(src, dst, min(n, 1 << 30), src_off, dst_off)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            k = _copy_range_plain(src, dst, src_off, dst_off, min(n, 1 << 26))
        if k == 0:
            raise OSError(errno.EIO, f"{name} ends before byte {src_off + n}: truncated part")
        src_off, dst_off, n = src_off + k, dst_off + k, n - k


def _copy_range_plain(src: int, dst: int, src_off: int, dst_off: int, n: int) -> int:
    """``os.copy_file_range`` through a buffer (filesystems or kernels without it)."""
    data = os.pread(src, n, src_off)
    done = 0
    while done < len(data):
        done += os.pwrite(dst, data[done:], dst_off + done)
    return len(data)


def _v1_columns(f: h5py.File) -> dict:
    """Index columns of a version-1 file, from its per-dataset attributes (used
    once, when a version-1 file is resumed and merged into version 2)."""
    rows = read_index(f)
    cols = {"source": ix.text_column([r[0] for r in rows]),
            "receiver": ix.text_column([r[1] for r in rows]),
            "component": ix.text_column([r[2] for r in rows]),
            "complete": np.array([r[3] for r in rows], dtype=bool)}
    numeric = {k: [] for k in ix.NUMERIC if k != "complete"}
    times = {"starttime": [], "endtime": []}
    extra = []
    skip = {"source", "receiver", "component", "complete", "source_coordinates",
            "receiver_coordinates"}
    for s, r, c, _ in rows:
        attrs = {k: from_attr(v) for k, v in f[pair_path(s, r, c)].attrs.items()}
        for k in numeric:
            v = attrs.get(k)
            numeric[k].append(ix.NUMERIC[k][1] if v is None else v)
        for k in times:
            times[k].append(attrs.get(k))
        other = {k: v for k, v in attrs.items()
                 if k not in skip and k not in numeric and k not in times}
        extra.append(json.dumps(other, sort_keys=True) if other else None)
    for k, v in numeric.items():
        cols[k] = np.array(v, dtype=ix.NUMERIC[k][0])
    for k, v in times.items():
        cols[k] = ix.text_column(v)
    if any(extra):
        cols[ix.EXTRA] = ix.text_column(extra)
    return cols


#: HDF5 metadata of a merge on disk is gathered in blocks of this size, so that the
#: stacks' bytes, allocated one after the other, stay adjacent (one copy per part).
META_BLOCK_BYTES = 4 * 2**20


def merge_parts(path, root_attrs=None, stations=None) -> None:
    """Merge ``<path>.parts/*`` into ``path`` via ``<path>.tmp`` + rename.

    Safe to call at any time and after a crash (recovers a run whose writer
    never reached ``close``). Parts of format version 1 (one dataset per
    pair) are still merged; a version-1 main file is upgraded to version 2.

    Merges larger than ``IN_MEMORY_MERGE_BYTES`` are built on disk. There, when every
    part holds uncompressed blocks, each pair's dataset is created once (a pair that a
    later part replaces is skipped) with its space allocated but not written, and the
    stacks' bytes are copied from the parts, one range per block of a part, by a
    background thread (:class:`_Copier`) while the next part's datasets are created,
    instead of being read into memory and written pair by pair.
    """
    path = Path(path)
    parts = list_parts(path)
    if not parts and path.exists():
        try:
            parts_dir(path).rmdir()  # only if empty
        except OSError:
            pass
        return
    tmp = Path(str(path) + ".tmp")
    size = (path.stat().st_size if path.exists() else 0) + sum(p.stat().st_size for p in parts)
    copier = None  # a merge on disk copies the stacks' bytes (see _merge_into)
    if size <= IN_MEMORY_MERGE_BYTES:
        target = _image(tmp, path if path.exists() else None)
    else:
        _check_free_space(tmp.parent, size)
        if path.exists():
            shutil.copyfile(path, tmp)
        target = h5py.File(tmp, "r+" if path.exists() else "w", libver="latest",
                           meta_block_size=META_BLOCK_BYTES)
    try:
        with target as dst:
            if not isinstance(target, _image):
                copier = _Copier(tmp)
            _merge_into(dst, parts, root_attrs, stations, copier)
        if copier is not None:
            copier.close()
            _fsync(tmp)
    except BaseException:
        if copier is not None:
            copier.abort()
        if not isinstance(target, _image):  # (an image is never half written)
            tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    for p in parts:
        p.unlink()
    try:
        parts_dir(path).rmdir()
    except OSError:
        pass


def _merge_into(dst: h5py.File, parts: list, root_attrs, stations, copier) -> None:
    """Add ``parts`` to the open ``dst`` (see :func:`merge_parts`). With a :class:`_Copier`,
    if every part holds uncompressed blocks, each pair's dataset is only allocated and
    the copier fills it from the part's bytes; otherwise stacks are written pair by pair."""
    if "index" in dst and from_attr(dst.attrs.get("format_version", 1)) < 2:
        all_cols = [_v1_columns(dst)]
    else:
        all_cols = [ix.read_columns(dst)] if "index" in dst else []
    table = read_stations(dst)
    if root_attrs is not None:
        root_attrs(dst)
    winners = _raw_winners(parts) if copier is not None else None
    if winners is not None and all_cols:  # pairs of the main file are replaced, not added
        before = set(zip(all_cols[0]["source"].tolist(), all_cols[0]["receiver"].tolist(),
                         all_cols[0]["component"].tolist()))
    else:
        before = set()
    sink = None
    for number, part in enumerate(parts):
        with h5py.File(part, "r") as src:
            if root_attrs is None:
                for k, v in src.attrs.items():
                    if k not in ("layout", "compression", "compression_opts"):
                        dst.attrs[k] = v
                dst.attrs["format_version"] = FORMAT_VERSION
            for code, st in read_stations(src).items():
                table[code] = st
            if from_attr(src.attrs.get("layout", "null")) != "blocks":
                _merge_v1_part(src, dst)
                all_cols.append(_v1_columns(src))
                continue
            if sink is None:
                comp = from_attr(src.attrs.get("compression", ""))
                opts = src.attrs.get("compression_opts")
                sink = _PairSink(dst, comp or None, None if opts is None else from_attr(opts))
            cols = ix.read_columns(src)
            keys = list(zip(cols["source"].tolist(), cols["receiver"].tolist(),
                            cols["component"].tolist(), cols["block"].tolist(),
                            cols["block_row"].tolist()))
            if winners is not None:
                blocks = _raw_blocks(src)
                tids = {k: ds.id.get_type() for k, (ds, _, _) in blocks.items()}
                # rows a later part replaces are left out; in the part's row order, so
                # that the allocations follow the part's bytes
                order = np.lexsort((cols["block_row"], cols["block"]))
                ranges = []
                for j in order[winners[number][order]].tolist():
                    s, r, c, b, i = keys[j]
                    ds, offset, row = blocks[b]
                    at = sink.allocate(s, r, c, ds.shape[1:], tids[b], (s, r, c) not in before)
                    ranges.append((offset + i * row, at, row))
                copier.submit(part, ranges)
            else:
                blocks = {int(k): ds[()] for k, ds in src["blocks"].items()}
                for s, r, c, b, i in keys:
                    sink.put(s, r, c, blocks[b][i])
            del blocks
            all_cols.append({k: v for k, v in cols.items() if k not in ix.BLOCK})
    cols = ix.concat(all_cols)
    keep = ix.last_wins(cols)
    cols = {k: v[keep] for k, v in cols.items()}
    if stations:
        table.update(stations)
    _write_stations(dst, table)
    ix.write_columns(dst, cols)
    dst.attrs["format_version"] = FORMAT_VERSION
    dst.attrs["n_pairs"] = len(keep)


def _raw_winners(parts: list):
    """Per part, a mask of the index rows no later part replaces, if every part can be
    copied byte for byte (:func:`_raw_blocks`), else ``None``.

    Datasets are then created once per key: a replaced one is never allocated, so the
    space of each allocated dataset receives exactly one copy."""
    keys = []
    for number, part in enumerate(parts):
        with h5py.File(part, "r") as src:
            if _raw_blocks(src) is None:
                return None
            g = src["index"]
            cols = {k: g[k][()] for k in ix.KEYS}
        keys.append({**cols, "part": np.full(len(cols["source"]), number, dtype=np.int64),
                     "row": np.arange(len(cols["source"]), dtype=np.int64)})
    cols = ix.concat(keys)
    keep = ix.last_wins(cols)
    masks = [np.zeros(len(k["source"]), dtype=bool) for k in keys]
    for number, row in zip(cols["part"][keep].tolist(), cols["row"][keep].tolist()):
        masks[number][row] = True
    return masks


def _merge_v1_part(src: h5py.File, dst: h5py.File) -> None:
    """Copy a version-1 part's ``/pairs`` (H5Ocopy, one dataset at a time)."""
    dpairs = dst.require_group("pairs")
    sp = src["pairs"]
    for s in sp:
        if s not in dpairs:
            src.copy(sp[s], dpairs, name=s)
            continue
        for r in sp[s]:
            if r not in dpairs[s]:
                src.copy(sp[s][r], dpairs[s], name=r)
                continue
            for c in sp[s][r]:
                if c in dpairs[s][r]:
                    del dpairs[s][r][c]
                src.copy(sp[s][r][c], dpairs[s][r], name=c)
