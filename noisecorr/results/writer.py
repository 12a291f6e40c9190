"""Crash-safe, resumable writer of the results HDF5 file.

How a crash can never leave a corrupt file
------------------------------------------
HDF5 does not survive a process killed with the file open for writing: its
metadata cache may be half on disk. So no file that a reader trusts is ever
open for writing:

1. Pairs accumulate in memory and are written, every ``checkpoint_pairs``
   pairs (or on :meth:`ResultsWriter.checkpoint`), into a new *part* file
   ``<path>.parts/part-NNNNNN.h5``, created as ``... .h5.tmp``, closed,
   fsync'ed and renamed. A part that exists under its final name is whole.
2. :meth:`ResultsWriter.close` merges the main file and all parts into
   ``<path>.tmp`` (a copy of the main file plus H5Ocopy of the parts'
   groups), closes it and renames it onto ``<path>``; only then are the
   parts deleted. A crash at any moment leaves the old main file and the
   parts intact; leftover ``*.tmp`` files are ignored and removed on the
   next open. Merging is idempotent (a pair in a later part replaces the
   same pair from an earlier part or the main file).

A crash loses at most the pairs not yet checkpointed. Reopening the same
path with the same ``params`` resumes: :meth:`ResultsWriter.completed` lists
every pair flagged complete in the main file and the parts.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np

from .layout import (FORMAT, FORMAT_VERSION, check_code, check_component, from_attr,
                     geometry, half_length, pair_path, resolve_maxlag, to_attr)

log = logging.getLogger(__name__)

_STR = h5py.string_dtype()


_SCALAR_SPACE = None
_NUMERIC_TYPES: dict = {}


def _set_attrs(obj, attrs: dict) -> None:
    """Set attributes; float/int/bool scalars through the low-level API with
    cached HDF5 types (about 3x faster than ``obj.attrs[k] = v``, which
    matters at 500,000 pairs x 14 attributes)."""
    global _SCALAR_SPACE
    if _SCALAR_SPACE is None:
        _SCALAR_SPACE = h5py.h5s.create(h5py.h5s.SCALAR)
    for key, value in attrs.items():
        value = to_attr(value)
        if isinstance(value, str) and value.isascii() and value:
            # fixed-length ASCII string (read back as bytes, decoded by from_attr)
            arr = np.array(value.encode(), dtype=f"S{len(value)}")
        elif isinstance(value, np.ndarray) and value.dtype == np.float64 and value.ndim == 1:
            arr = value
        elif isinstance(value, (float, int, np.floating, np.integer, np.bool_)) \
                and not isinstance(value, bool):
            arr = np.asarray(value)
        else:
            obj.attrs[key] = value
            continue
        tid = _NUMERIC_TYPES.get(arr.dtype)
        if tid is None:
            tid = _NUMERIC_TYPES[arr.dtype] = h5py.h5t.py_create(arr.dtype)
        space = _SCALAR_SPACE if arr.ndim == 0 else h5py.h5s.create_simple(arr.shape)
        name = key.encode()
        if h5py.h5a.exists(obj.id, name):
            h5py.h5a.delete(obj.id, name)
        h5py.h5a.create(obj.id, name, tid, space).write(arr)


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


def read_index(f: h5py.File) -> list:
    """``[(source, receiver, component, complete)]`` from a file's /index."""
    if "index" not in f:
        return []
    g = f["index"]
    src = g["source"].asstr()[()]
    rcv = g["receiver"].asstr()[()]
    cmp_ = g["component"].asstr()[()]
    done = g["complete"][()]
    return list(zip(src.tolist(), rcv.tolist(), cmp_.tolist(), done.astype(bool).tolist()))


def _write_index(f: h5py.File, rows) -> None:
    if "index" in f:
        del f["index"]
    g = f.create_group("index")
    rows = list(rows)
    g.create_dataset("source", data=np.array([r[0] for r in rows], dtype=object), dtype=_STR)
    g.create_dataset("receiver", data=np.array([r[1] for r in rows], dtype=object), dtype=_STR)
    g.create_dataset("component", data=np.array([r[2] for r in rows], dtype=object),
                     dtype=_STR)
    g.create_dataset("complete", data=np.array([bool(r[3]) for r in rows], dtype=bool))


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

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "r.h5")
    >>> with ResultsWriter(path, {"cc_len": 3600}, version="0.1") as w:
    ...     w.write_pair("XS.A", "XS.B", "ZZ", 1.0, np.zeros(21, "f4"),
    ...                  {"sampling_rate": 10.0, "n_windows": 3})
    >>> sorted(ResultsWriter(path, {"cc_len": 3600}).completed())
    [('XS.A', 'XS.B', 'ZZ')]
    """

    def __init__(self, path, params: dict, version: str | None = None, stations=None,
                 starttime=None, endtime=None, sampling_rate: float | None = None,
                 compression: str | None = None, compression_opts=None,
                 checkpoint_pairs: int = 2000, resume: bool = True):
        self.path = Path(path)
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
        self._buffer: dict = {}
        self._closed = False
        self._last_checkpoint = time.monotonic()
        self._durable: set = set()
        self._clean_tmp()
        self._load_existing(resume)

    # ---------------------------------------------------------------- state
    def _clean_tmp(self):
        for p in [Path(str(self.path) + ".tmp"), *parts_dir(self.path).glob("*.tmp")]:
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
        for key, item in self._buffer.items():
            if item["meta"].get("complete", True):
                done.add(key)
            else:
                done.discard(key)
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
            other JSON-able items. Coordinates, ``distance_km``, ``azimuth``
            and ``back_azimuth`` are filled from the station table unless
            given.
        """
        if self._closed:
            raise ValueError("writer is closed")
        meta = dict(meta or {})
        check_code(source), check_code(receiver), check_component(component)
        fs = meta.get("sampling_rate", self.sampling_rate)
        if fs is None:
            raise ValueError("sampling_rate missing: give it in meta or to ResultsWriter")
        fs = float(fs)
        maxlag = resolve_maxlag(lags_or_maxlag, fs)
        n = 2 * half_length(maxlag, fs) + 1
        data = np.asarray(stack, dtype=np.float32)
        if data.ndim not in (1, 2) or data.shape[-1] != n:
            raise ValueError(f"stack of {source}-{receiver} {component}: last axis must have "
                             f"2*round(maxlag*fs)+1 = {n} samples, got shape {data.shape}")
        if not np.all(np.isfinite(data)):
            raise ValueError(f"stack of {source}-{receiver} {component} has NaN/inf")
        meta["sampling_rate"] = fs
        meta["maxlag"] = maxlag
        meta.setdefault("complete", True)
        self._buffer[(source, receiver, component)] = {"data": data, "meta": meta}
        if len(self._buffer) >= self.checkpoint_pairs:
            self.checkpoint()

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

    def _pair_attrs(self, source, receiver, component, meta) -> dict:
        attrs = {"source": source, "receiver": receiver, "component": component}
        s, r = self._stations.get(source), self._stations.get(receiver)
        for prefix, st in (("source", s), ("receiver", r)):
            if st:
                attrs[f"{prefix}_coordinates"] = np.array(
                    [st["latitude"], st["longitude"], st["elevation"]], dtype=np.float64)
        attrs.update(geometry(s, r))
        attrs.update({"n_windows": -1, "starttime": "null", "endtime": "null"})
        attrs.update(meta)
        return attrs

    def checkpoint(self) -> None:
        """Write the buffered pairs to a new part file (atomically)."""
        if not self._buffer:
            return
        d = parts_dir(self.path)
        d.mkdir(parents=True, exist_ok=True)
        existing = list_parts(self.path)
        num = 1 + max((int(p.stem.split("-")[1]) for p in existing), default=0)
        final = d / f"part-{num:06d}.h5"
        tmp = Path(str(final) + ".tmp")
        rows = []
        with _image(tmp) as f:
            self._root_attrs(f)
            pairs = f.create_group("pairs")
            last = (None, None)
            for (src, rcv, comp), item in sorted(self._buffer.items()):
                if last[0] != src:
                    gsrc = pairs.create_group(src)
                if last != (src, rcv):
                    g = gsrc.create_group(rcv)
                last = (src, rcv)
                data = item["data"]
                kw = {}
                if self.compression:
                    kw = dict(chunks=data.shape, compression=self.compression,
                              compression_opts=self.compression_opts)
                ds = g.create_dataset(comp, data=data, **kw)
                attrs = self._pair_attrs(src, rcv, comp, item["meta"])
                _set_attrs(ds, attrs)
                rows.append((src, rcv, comp, bool(attrs["complete"])))
            _write_index(f, rows)
            _write_stations(f, self._stations)
        os.replace(tmp, final)
        for src, rcv, comp, done in rows:
            (self._durable.add if done else self._durable.discard)((src, rcv, comp))
        log.debug("checkpoint %s: %d pairs", final, len(rows))
        self._buffer.clear()
        self._last_checkpoint = time.monotonic()

    def _root_attrs(self, f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["software_version"] = self.version
        f.attrs["params"] = self._params_json
        f.attrs["starttime"] = to_attr(self.starttime)
        f.attrs["endtime"] = to_attr(self.endtime)

    # ---------------------------------------------------------------- merge
    def close(self) -> None:
        """Checkpoint, then merge all parts into the main file atomically."""
        if self._closed:
            return
        self.checkpoint()
        merge_parts(self.path, root_attrs=self._root_attrs, stations=self._stations)
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


#: Merges up to this size are built in memory (see :class:`_image`).
IN_MEMORY_MERGE_BYTES = 2 * 2**30


class _image:
    """Build an HDF5 file in memory, then write its bytes to ``path`` and fsync.

    HDF5 handles a failing disk write (full disk, file-size limit) badly: the library may
    crash while closing the half-written file. Building the image in memory keeps HDF5 away
    from the disk; the one plain ``os.write`` loop then raises a clean ``OSError`` (ENOSPC,
    EFBIG), and the caller's temporary name plus rename keeps the real file untouched.
    """

    def __init__(self, path, initial=None):
        self.path = Path(path)
        self.buffer = io.BytesIO(Path(initial).read_bytes() if initial is not None else b"")
        self.file = h5py.File(self.buffer, "r+" if initial is not None else "w", libver="latest")

    def __enter__(self):
        return self.file

    def __exit__(self, *exc):
        self.file.close()
        if exc[0] is not None:
            return False
        data = self.buffer.getbuffer()
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


def merge_parts(path, root_attrs=None, stations=None) -> None:
    """Merge ``<path>.parts/*`` into ``path`` via ``<path>.tmp`` + rename.

    Safe to call at any time and after a crash (recovers a run whose writer
    never reached ``close``).
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
    if size <= IN_MEMORY_MERGE_BYTES:
        target = _image(tmp, path if path.exists() else None)
    else:
        _check_free_space(tmp.parent, size)
        if path.exists():
            shutil.copyfile(path, tmp)
        target = h5py.File(tmp, "r+" if path.exists() else "w", libver="latest")
    with target as dst:
        index = {(s, r, c): done for s, r, c, done in read_index(dst)}
        table = read_stations(dst)
        if root_attrs is not None:
            root_attrs(dst)
        dpairs = dst.require_group("pairs")
        for part in parts:
            with h5py.File(part, "r") as src:
                if root_attrs is None:
                    for k, v in src.attrs.items():
                        dst.attrs[k] = v
                for code, st in read_stations(src).items():
                    table[code] = st
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
                for s, r, c, done in read_index(src):
                    index[(s, r, c)] = done
        if stations:
            table.update(stations)
        _write_stations(dst, table)
        _write_index(dst, [(s, r, c, d) for (s, r, c), d in sorted(index.items())])
        dst.attrs["n_pairs"] = len(index)
    if not isinstance(target, _image):
        _fsync(tmp)
    os.replace(tmp, path)
    for p in parts:
        p.unlink()
    try:
        parts_dir(path).rmdir()
    except OSError:
        pass
