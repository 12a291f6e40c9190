"""Merge a results file's checkpoint parts into it, through HDF5's own I/O.

A run's writers leave ``<path>.parts/part-*.h5`` (see :mod:`noisecorr.results.writer`);
:func:`merge_parts` builds ``<path>.tmp`` from the main file and every part, fsyncs it and
renames it onto ``<path>``; only then are the parts deleted, so a crash at any moment leaves
the old main file and the parts intact. Merging is idempotent: a pair in a later part
replaces the same pair from an earlier part or the main file, and a replaced pair is never
written.

Every byte goes through HDF5's supported calls (``H5Dread``/``H5Dwrite`` through
:meth:`h5py.Dataset.read_direct` and the low-level dataset ``write``, direct chunk
reads and writes for compressed stacks), so the merge does not depend on the file driver,
the layout of the parts or HDF5's fill settings, and it stays inside a memory budget (see
:func:`merge_parts`).

This module also holds what the writer, the merge and the reader share about part files
(:func:`parts_dir`, :func:`list_parts`, the station table, :class:`_image`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import h5py
import numpy as np

from . import index as ix
from .layout import FORMAT_VERSION, from_attr, pair_path

log = logging.getLogger(__name__)

_STR = h5py.string_dtype()
read_index = ix.read_index

#: HDF5 file-format bounds of the parts and the merged file: the object encodings of HDF5
#: 1.10 (new-style groups and links, v2 B-trees), so that every tool built on HDF5 1.10 or
#: later reads them. With ``"latest"`` the HDF5 2.0 that h5py bundles encodes some objects
#: (the boolean ``complete`` column, an enum) in a form that HDF5 1.10's ``h5dump`` cannot read.
LIBVER = ("v110", "v110")


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
                                  libver=LIBVER)
        else:
            self.file = h5py.File(str(self.path), "w", driver="core", backing_store=False,
                                  libver=LIBVER)

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


def _open_on_disk(tmp: Path, exists: bool) -> h5py.File:
    """Open (``exists``) or create the merge's file ``tmp`` on disk: HDF5 1.10 objects,
    metadata gathered in :data:`META_BLOCK_BYTES` blocks, and no sieve buffer.

    Every stack is written whole, once, by one ``H5Dwrite``, so HDF5's sieve buffer (64 KiB
    by default) would only copy each stack once more before the same write reaches the file
    driver.
    """
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(*(getattr(h5py.h5f, "LIBVER_" + v.upper()) for v in LIBVER))
    fapl.set_meta_block_size(META_BLOCK_BYTES)
    fapl.set_sieve_buf_size(0)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)  # as h5py.File: closing closes all
    name = os.fsencode(tmp)
    if exists:
        fid = h5py.h5f.open(name, h5py.h5f.ACC_RDWR, fapl=fapl)
    else:
        fid = h5py.h5f.create(name, h5py.h5f.ACC_TRUNC, fapl=fapl)
    return h5py.File(fid)


def _check_free_space(folder, needed):
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    if free < needed:
        raise OSError(28, f"not enough free space in {folder} to merge the results: "
                          f"{needed / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free")


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
#: stacks' bytes, allocated one after the other, stay adjacent (reads of many pairs are
#: mostly sequential).
META_BLOCK_BYTES = 4 * 2**20


class MergeReport:
    """What :func:`merge_parts` did (returned by it; also logged).

    Attributes
    ----------
    pairs : int
        Pairs in the merged file.
    in_memory : bool
        Whether the merged file was built in memory (HDF5's ``core`` driver) and written
        with one write loop, else on disk.
    memory : int
        The budget the merge kept to (bytes).
    index_bytes : int
        What the merge counted for the index columns, the keys' sort and the station table.
    batch_rows : int
        Most stack rows read from a part per :meth:`h5py.Dataset.read_direct` (sized from the
        budget: see :func:`merge_parts`); 0 if every stack was copied as a chunk.
    batches : int
        Reads of batches of rows from the parts' uncompressed blocks.
    rows_written : int
        Stacks written through ``H5Dwrite`` (from a batch buffer).
    buffers : int
        Batch buffers allocated: one per merge (reused by every block of every part), more
        only when a block has larger stacks than any before.
    chunks_copied : int
        Stacks copied as stored (compressed) chunks, ``read_direct_chunk`` to
        ``write_direct_chunk``, without decompressing them.
    """

    __slots__ = ("pairs", "in_memory", "memory", "index_bytes", "batch_rows", "batches",
                 "rows_written", "chunks_copied", "buffers")

    def __init__(self, memory=0, index_bytes=0, in_memory=False):
        self.pairs, self.in_memory, self.memory = 0, bool(in_memory), int(memory)
        self.index_bytes, self.batch_rows = int(index_bytes), 0
        self.batches = self.rows_written = self.chunks_copied = self.buffers = 0

    def __repr__(self):
        return "MergeReport(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


#: Merges up to this size (main file plus parts) may be built in memory, if the budget holds
#: twice it. Larger ones are built on disk: measured with ``scripts/bench_finish.py``, a merge
#: of 0.6 GB took 2 to 4 s on disk against 6 to 11 s in memory, and of 2.6 GB 12 s against 23 s.
IN_MEMORY_MERGE_BYTES = 64 * 2**20
#: Most bytes of stacks read from a part at once (larger batches are no faster).
MAX_BATCH_BYTES = 64 * 2**20
#: Bytes counted per index row and per byte of its columns: the columns of every file, their
#: concatenation, the rows kept, the keys joined for the last-wins search and its sort.
INDEX_COPIES = 4
INDEX_ROW_OVERHEAD = 64
#: Bytes counted per group handle the merge keeps open for reuse (at most
#: :attr:`_PairSink.MAX_OPEN_GROUPS`, at most one per row).
GROUP_BYTES = 512


def _default_memory() -> int:
    from noisecorr.slurm.allocation import default_memory_budget

    return default_memory_budget(1).total_bytes


def _index_bytes(files) -> int:
    """Bytes the merge counts for the index of ``files`` (see :data:`INDEX_COPIES`)."""
    total = rows = 0
    for p in files:
        with h5py.File(p, "r") as f:
            if "index" in f:
                g = f["index"]
                n = 0
                row = 0
                for ds in g.values():
                    n = max(n, ds.shape[0])
                    row += ds.dtype.itemsize if ds.dtype.kind != "O" else 64
                total += n * (INDEX_COPIES * row + INDEX_ROW_OVERHEAD)
                rows += n
            if "stations" in f:
                total += 4 * 64 * f["stations"]["code"].shape[0]
    return total + GROUP_BYTES * min(rows, _PairSink.MAX_OPEN_GROUPS)


def _row_bytes(parts) -> int:
    """Largest stack (bytes) in the parts' blocks."""
    most = 0
    for p in parts:
        with h5py.File(p, "r") as f:
            for ds in (f["blocks"].values() if "blocks" in f else ()):
                most = max(most, ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))
    return most


def merge_parts(path, root_attrs=None, stations=None, memory: int | None = None) -> MergeReport:
    """Merge ``<path>.parts/*`` into ``path`` via ``<path>.tmp`` + rename.

    Safe to call at any time and after a crash (recovers a run whose writer never reached
    ``close``). Parts of format version 1 (one dataset per pair) are still merged; a
    version-1 main file is upgraded to version 2.

    Parameters
    ----------
    path : path
        The results file.
    root_attrs : callable, optional
        ``root_attrs(h5py.File)`` sets the root attributes (else the parts' are copied).
    stations : dict, optional
        Station table entries to add.
    memory : int, optional
        Memory budget of the merge in bytes (default: this process's share of the machine or
        job, :func:`noisecorr.slurm.allocation.default_memory_budget` with one worker).

    Returns
    -------
    MergeReport

    Raises
    ------
    MemoryError
        If the budget cannot hold the index of all pairs plus one stack (the parts are kept).

    Notes
    -----
    Only HDF5's own I/O touches the files. Each stack goes one of two ways:

    * a part's **compressed** blocks are chunked one row per chunk, compressed by the
      writer at checkpoint; the merge copies each chunk as stored
      (``read_direct_chunk`` to ``write_direct_chunk``) into a pair dataset with the same
      filters and one chunk, so nothing is decompressed or compressed again;
    * **uncompressed** blocks are read in batches of rows with
      :meth:`h5py.Dataset.read_direct` into one buffer and each row is written to its
      contiguous pair dataset with one ``H5Dwrite`` (space allocated when the dataset is
      created, no fill, no sieve buffer: see :func:`_dcpl_plain`, :func:`_open_on_disk`).

    Either way the pair datasets are created :data:`WRITE_PASS` at a time, then filled.
    Measured with ``scripts/bench_finish.py --stations 400`` (79,800 stacks, 2.6 GB; CPU
    seconds of the merge, median of 6 runs in two sessions, 2 cores at load 3 to 8): 6.8 s,
    the same as the raw-bytes merge this one replaced (6.8 s), which copied the parts' bytes
    with ``copy_file_range`` instead of one ``H5Dwrite`` per stack; 9.0 s when each dataset
    was created and written in turn.

    Memory: the merge counts the index columns of every file
    (:data:`INDEX_COPIES` copies of each row's columns plus :data:`INDEX_ROW_OVERHEAD`
    bytes, the sort of the keys included) and the station table; what the budget has left
    sizes the batch buffer (at most :data:`MAX_BATCH_BYTES`, at least one stack). A small
    file (up to :data:`IN_MEMORY_MERGE_BYTES`) is built in memory (a failing disk write then
    raises a clean ``OSError``) if twice its size (the image and its copy written out) fits
    beside that; else it is built on disk in ``<path>.tmp`` (free space checked first). HDF5's own caches (metadata
    cache, one dataset's chunk cache, a few MiB) are not counted.

    A write that fails (full disk, file-size limit) never touches ``path`` or the parts. In
    memory it raises a clean ``OSError`` and leaves no ``.tmp``; on disk HDF5 may fail while
    closing the file, even crash the process, and leave ``<path>.tmp``, which the next merge
    (or the next :class:`~noisecorr.results.writer.ResultsWriter` of ``path``) replaces.
    """
    path = Path(path)
    parts = list_parts(path)
    if not parts and path.exists():
        try:
            parts_dir(path).rmdir()  # only if empty
        except OSError:
            pass
        return MergeReport()
    memory = _default_memory() if memory is None else int(memory)
    tmp = Path(str(path) + ".tmp")
    files = ([path] if path.exists() else []) + parts
    size = sum(p.stat().st_size for p in files)
    index = _index_bytes(files)
    row = _row_bytes(parts)
    if index + row > memory:
        raise MemoryError(f"merging {len(parts)} parts of {path} needs at least "
                          f"{(index + row) / 2**20:.1f} MiB (index {index / 2**20:.1f} MiB, "
                          f"one stack {row / 2**10:.1f} KiB), the memory budget is "
                          f"{memory / 2**20:.1f} MiB: merge again with a larger budget "
                          "(the parts are kept)")
    in_memory = size <= IN_MEMORY_MERGE_BYTES and 2 * size + index + row <= memory
    report = MergeReport(memory, index, in_memory)
    batch = min(MAX_BATCH_BYTES, memory - index - (2 * size if in_memory else 0))
    if in_memory:
        target = _image(tmp, path if path.exists() else None)
    else:
        _check_free_space(tmp.parent, size)
        if path.exists():
            shutil.copyfile(path, tmp)
        target = _open_on_disk(tmp, path.exists())
    try:
        with target as dst:
            _merge_into(dst, parts, root_attrs, stations, batch, report)
        if not in_memory:
            _fsync(tmp)
    except BaseException:
        if not in_memory:  # (an image is never half written)
            tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    for p in parts:
        p.unlink()
    try:
        parts_dir(path).rmdir()
    except OSError:
        pass
    log.info("merged %d parts into %s: %r", len(parts), path, report)
    return report


class _PairSink:
    """Create ``/pairs/<SRC>/<RCV>/<COMP>`` datasets fast (low-level h5py, no attributes, no
    timestamps, cached types and property lists), replacing existing ones, and fill them
    through HDF5: :meth:`write` (``H5Dwrite`` of one stack) or :meth:`write_chunk` (one
    stored chunk)."""

    #: Open groups kept for reuse (a pair's group is reused by its other components).
    MAX_OPEN_GROUPS = 65536

    def __init__(self, f: h5py.File):
        self.f = f
        self.root = f.require_group("pairs").id
        self.groups: dict = {}
        self.lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
        self.lcpl_parents = h5py.h5p.create(h5py.h5p.LINK_CREATE)
        self.lcpl_parents.set_create_intermediate_group(True)
        self.gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        self.gcpl.set_obj_track_times(False)  # as h5py's default: no creation times
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

    def space(self, shape):
        sp = self.spaces.get(shape)
        if sp is None:
            sp = self.spaces[shape] = h5py.h5s.create_simple(shape)
        return sp

    def create(self, src: bytes, rcv: bytes, comp: bytes, shape, tid, dcpl, new=False):
        """The new dataset of a pair. ``new``: the pair has no dataset yet, so nothing is
        looked up or replaced and its receiver group is made, if missing, by the same call
        (a quarter faster)."""
        gs = self._group(self.root, src, src)
        if new:
            return h5py.h5d.create(gs, rcv + b"/" + comp, tid, self.space(shape), dcpl=dcpl,
                                   lcpl=self.lcpl_parents)
        gr = self._group(gs, (src, rcv), rcv)
        if gr.links.exists(comp):
            gr.unlink(comp)
        return h5py.h5d.create(gr, comp, tid, self.space(shape), dcpl=dcpl)

    def create_many(self, srcs, rcvs, comps, fresh, shape, tid, dcpl) -> list:
        """The new datasets of pairs ``srcs``, ``rcvs``, ``comps`` (byte-string arrays),
        in that order, as :meth:`create` makes them one by one (``fresh``: array of its
        ``new``), with the Python work per dataset cut to one ``h5d.create`` call for a
        new pair."""
        space, groups, root = self.space(shape), self.groups, self.root
        lcpl, create = self.lcpl_parents, h5py.h5d.create
        names = np.char.add(np.char.add(rcvs, b"/"), comps).tolist()
        out = []
        for s, r, c, name, new in zip(srcs.tolist(), rcvs.tolist(), comps.tolist(), names,
                                      fresh.tolist()):
            if not new:
                out.append(self.create(s, r, c, shape, tid, dcpl))
                continue
            gs = groups.get(s)
            if gs is None:
                gs = self._group(root, s, s)
            out.append(create(gs, name, tid, space, dcpl, lcpl))
        return out


def _dcpl_plain(shape, compression, opts):
    """Creation properties of a pair dataset written through ``H5Dwrite``: contiguous, or
    one chunk with ``compression`` (a part of an older version whose blocks are not yet
    compressed).

    A contiguous dataset gets its space when it is created and is never filled (the one
    ``H5Dwrite`` that follows covers all of it), so that write neither allocates space nor
    updates the object header, and no fill value is written first."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    if not compression:
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    else:
        dcpl.set_chunk(shape)
        if compression == "gzip":
            dcpl.set_deflate(4 if opts is None else int(opts))
        else:
            dcpl.set_filter(h5py.h5z.FILTER_LZF, h5py.h5z.FLAG_OPTIONAL)
    return dcpl


def _dcpl_like(block: h5py.Dataset):
    """Creation properties of a pair dataset that receives one chunk of ``block`` as stored:
    one chunk of the stack's shape and the block's filters, in the same order."""
    src = block.id.get_create_plist()
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    dcpl.set_chunk(block.shape[1:])
    for i in range(src.get_nfilters()):
        code, flags, values, _ = src.get_filter(i)
        dcpl.set_filter(code, flags, values)
    return dcpl


def _row_chunks(block: h5py.Dataset) -> bool:
    """Whether ``block`` is stored one filtered chunk per row (so rows copy as chunks)."""
    return block.chunks == (1, *block.shape[1:]) and \
        block.id.get_create_plist().get_nfilters() > 0


def _merge_into(dst: h5py.File, parts: list, root_attrs, stations, batch_bytes: int,
                report: MergeReport) -> None:
    """Add ``parts`` to the open ``dst`` (see :func:`merge_parts`); pairs a later part
    replaces are not written at all."""
    if "index" in dst and from_attr(dst.attrs.get("format_version", 1)) < 2:
        all_cols = [_v1_columns(dst)]
    else:
        all_cols = [ix.read_columns(dst)] if "index" in dst else []
    table = read_stations(dst)
    if root_attrs is not None:
        root_attrs(dst)
    main = all_cols[0] if all_cols else None
    winners = _winners(parts, main)
    sink = _PairSink(dst)
    buffer = _Buffer(batch_bytes)
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
            cols = ix.read_columns(src)
            n = len(cols["source"])
            if winners is None:
                keep, fresh = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
            else:
                keep, fresh = winners[0][number], winners[1][number]
            comp = from_attr(src.attrs.get("compression", "")) or None
            opts = src.attrs.get("compression_opts")
            opts = None if opts is None else from_attr(opts)
            for b, block in src["blocks"].items():
                rows = np.flatnonzero(keep & (cols["block"] == int(b)))
                rows = rows[np.argsort(cols["block_row"][rows], kind="stable")]
                sel = (cols["source"][rows], cols["receiver"][rows], cols["component"][rows],
                       cols["block_row"][rows], fresh[rows])
                if _row_chunks(block):
                    _copy_chunks(block, sel, sink, report)
                else:
                    _write_rows(block, sel, sink, _dcpl_plain(block.shape[1:], comp, opts),
                                buffer, report)
            all_cols.append({k: v for k, v in cols.items() if k not in ix.BLOCK})
    cols = ix.concat(all_cols)
    del all_cols
    keep = ix.last_wins(cols)
    cols = {k: v[keep] for k, v in cols.items()}
    if stations:
        table.update(stations)
    _write_stations(dst, table)
    ix.write_columns(dst, cols)
    dst.attrs["format_version"] = FORMAT_VERSION
    dst.attrs["n_pairs"] = len(keep)
    report.pairs = len(keep)


#: Pair datasets created in one pass before their stacks are written (one ``H5Dwrite``
#: each) or their chunks copied. Creating and filling them in turn, one stack at a time,
#: took a third more CPU for written stacks (400 stations: 8.8 s against 6.6 s with
#: ``scripts/bench_finish.py``; at 200 stations 16 to 128 per pass were all faster, 64 the
#: fastest) and 20 % more for copied chunks (200 stations, LZF). The datasets of a pass are
#: open together: a few KiB each.
WRITE_PASS = 64


def _copy_chunks(block, sel, sink, report) -> None:
    """Copy rows of ``block`` (one stored chunk each) into their pairs' datasets, created
    :data:`WRITE_PASS` at a time before their chunks are copied; ``sel``: the rows' sources,
    receivers, components, block rows and whether each pair is new to the file."""
    tid = block.id.get_type()
    dcpl = _dcpl_like(block)
    shape = block.shape[1:]
    zeros = (0,) * len(shape)
    srcs, rcvs, comps, brows, fresh = sel
    read = block.id.read_direct_chunk
    for a in range(0, len(brows), WRITE_PASS):
        b = min(a + WRITE_PASS, len(brows))
        datasets = sink.create_many(srcs[a:b], rcvs[a:b], comps[a:b], fresh[a:b], shape, tid,
                                    dcpl)
        for ds, i in zip(datasets, brows[a:b].tolist()):
            mask, data = read((i, *zeros))
            ds.write_direct_chunk(zeros, data, mask)
        del datasets  # (closed here)
        report.chunks_copied += b - a


class _Buffer:
    """The one batch buffer of a merge: at most ``nbytes`` (but at least one stack), kept
    from block to block and part to part, grown only when a block's stack is larger than
    any before.

    Allocating a fresh 64 MiB array per block cost more than reading into it: each new
    mapping faults in every page again (measured with ``scripts/bench_finish.py``, 400
    stations: ``read_direct`` of 2.6 GB took 4.8 s into fresh buffers).
    """

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        self.raw = np.empty(0, dtype=np.uint8)
        self.allocated = 0

    def rows(self, shape, dtype, n_max: int):
        """``(n, buffer)``: a C-contiguous ``(n, *shape)`` view of the buffer, ``n`` rows
        (``1 <= n <= n_max``) within the budget."""
        dtype = np.dtype(dtype)
        row = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        n = max(1, min(self.nbytes // max(row, 1), n_max))
        if self.raw.nbytes < n * row:
            self.raw = np.empty(0, dtype=np.uint8)  # (the old one freed first)
            self.raw = np.empty(n * row, dtype=np.uint8)
            self.allocated += 1
        return n, self.raw[:n * row].view(dtype).reshape((n, *shape))


def _write_rows(block, sel, sink, dcpl, buffer: _Buffer, report) -> None:
    """Read rows of ``block`` in batches (a range of rows each, read with ``read_direct``
    into the merge's one ``buffer``) and write each row to its pair's dataset with
    ``H5Dwrite``, the datasets created :data:`WRITE_PASS` at a time before their rows are
    written; ``sel`` as in :func:`_copy_chunks`."""
    shape = block.shape[1:]
    tid = block.id.get_type()
    srcs, rcvs, comps, brows, fresh = sel
    if not len(brows):
        return
    n_batch, buf = buffer.rows(shape, block.dtype, block.shape[0])
    report.batch_rows = max(report.batch_rows, n_batch)
    report.buffers = buffer.allocated
    # one memory type and space for every row (else h5py makes a type per write)
    mtype, space = h5py.h5t.py_create(buf.dtype), sink.space(shape)
    k = 0
    while k < len(brows):
        start = int(brows[k])
        stop = min(start + n_batch, block.shape[0])
        block.read_direct(buf, np.s_[start:stop], np.s_[0:stop - start])
        report.batches += 1
        end = int(np.searchsorted(brows, stop))
        for a in range(k, end, WRITE_PASS):
            b = min(a + WRITE_PASS, end)
            datasets = sink.create_many(srcs[a:b], rcvs[a:b], comps[a:b], fresh[a:b], shape,
                                        tid, dcpl)
            for ds, i in zip(datasets, (brows[a:b] - start).tolist()):
                ds.write(space, space, buf[i], mtype)
            del datasets  # (closed here)
        report.rows_written += end - k
        k = end


def _joined(cols) -> np.ndarray:
    return np.char.add(np.char.add(np.char.add(cols["source"], b"/"),
                                   np.char.add(cols["receiver"], b"/")), cols["component"])


def _winners(parts: list, main):
    """``(keep, fresh)``: per part, a mask of the index rows no later part replaces and a
    mask of the rows whose pair the main file (columns ``main``) does not hold, if every
    part has the blocks layout, else ``None``. Datasets are then created once per key, a
    replaced one never, and a new one without looking it up."""
    keys = []
    for number, part in enumerate(parts):
        with h5py.File(part, "r") as src:
            if from_attr(src.attrs.get("layout", "null")) != "blocks":
                return None
            if "index" not in src:
                cols = {k: np.zeros(0, dtype="S1") for k in ix.KEYS}
            else:
                g = src["index"]
                cols = {k: g[k][()] for k in ix.KEYS}
        keys.append({**cols, "part": np.full(len(cols["source"]), number, dtype=np.int64),
                     "row": np.arange(len(cols["source"]), dtype=np.int64)})
    cols = ix.concat(keys)
    keep = ix.last_wins(cols)
    masks = [np.zeros(len(k["source"]), dtype=bool) for k in keys]
    for number, row in zip(cols["part"][keep].tolist(), cols["row"][keep].tolist()):
        masks[number][row] = True
    if main is not None and len(main["source"]):
        old = _joined(main)
        fresh = [~np.isin(_joined(k), old) for k in keys]
    else:
        fresh = [np.ones(len(k["source"]), dtype=bool) for k in keys]
    return masks, fresh


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
