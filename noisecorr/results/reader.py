"""Read a results HDF5 file: stacks, metadata, station table, exports.

Opening reads only the root attributes; a pair is read by its path
``/pairs/<SRC>/<RCV>/<COMP>`` (an HDF5 B-tree lookup) and, in format
version 2, its metadata row by a binary search of the sorted ``/index``
columns (about ``3 * log2(n)`` single values), so reading one pair costs
about the same with 10 or 500,000 pairs. Listing uses the ``/index``
datasets, never a walk of the groups: every column is read once, as a whole
array, into one table of all files (newest file winning), and from then on
:meth:`Results.meta` and :meth:`Results.stack` find a pair in that table
(a sorted search in memory). :meth:`Results.column` and
:meth:`Results.stacks` read metadata and stacks of many pairs at once.
Version-1 files (metadata as dataset attributes) are read as before.
"""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np

from . import index as ix
from .layout import check_component, from_attr, lag_axis, pair_path, results_file
from .substacks import Substacks, combine, full_stack, stack_rows, unpack
from .merge import list_parts, read_stations


class _File:
    """One file of a results set (main file or checkpoint part) and how to
    find a pair in it."""

    def __init__(self, path):
        self.h5 = h5py.File(path, "r")
        self.version = from_attr(self.h5.attrs.get("format_version", 1))
        self.blocks = from_attr(self.h5.attrs.get("layout", "null")) == "blocks"
        self.cols = None  # all index columns, once loaded
        self._stations = None
        self._columns = None  # low-level handles of the /index columns
        self._blocks: dict = {}  # {k: /blocks/<k>} of a part, once used

    def columns(self):
        if self._columns is None:
            self._columns = ix.columns_of(self.h5)
        return self._columns

    def load(self) -> dict:
        """Every /index column as an array (text as bytes; version 1: from the
        pairs' attributes), read once."""
        if self.cols is None:
            if "index" not in self.h5:
                self.cols = {k: np.zeros(0, dtype="S1") for k in ix.KEYS}
            elif self.version >= 2:
                self.cols = ix.read_columns(self.h5)
            else:
                from .merge import _v1_columns

                self.cols = _v1_columns(self.h5)
        return self.cols

    def find(self, source, receiver, component):
        """``(row, dataset_or_None)`` of a pair, or ``None``."""
        if self.blocks:
            if "index" in self.h5:
                row = ix.find_row(self.h5, source, receiver, component, self.columns())
            else:
                row = None
            return None if row is None else (row, None)
        path = pair_path(source, receiver, component)
        if path not in self.h5:
            return None
        if self.version < 2:
            return (None, self.h5[path])
        row = ix.find_row(self.h5, source, receiver, component, self.columns())
        return (row, self.h5[path])

    def is_sorted(self) -> bool:
        """Whether /index is sorted by key with one row per key (what the writer makes)."""
        if "index" not in self.h5:
            return True
        return self.version >= 2 and bool(self.h5["index"].attrs.get("sorted", False))

    def read(self, row, source: bytes, receiver: bytes, component: bytes) -> np.ndarray:
        """The stack of row ``row`` (its key given, as bytes), without searching."""
        if self.blocks:
            cols = self.load()
            b, i = int(cols["block"][row]), int(cols["block_row"][row])
            ds = self._blocks.get(b)
            if ds is None:
                ds = self._blocks[b] = self.h5["blocks"][str(b)]
            return ds[i]
        path = b"/pairs/" + source + b"/" + receiver + b"/" + component
        if self.version < 2:
            return self.h5[path.decode()][()]
        dsid = h5py.h5d.open(self.h5.id, path)  # a few microseconds against tens for h5[path]
        out = np.empty(dsid.shape, dtype=dsid.dtype)
        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        return out

    def at(self, row, source, receiver, component):
        """``(row, dataset_or_None)`` of row ``row`` (the pair's key given), as :meth:`find`."""
        if self.blocks:
            return (row, None)
        ds = self.h5[pair_path(source, receiver, component)]
        return (None, ds) if self.version < 2 else (row, ds)

    def row(self, i) -> dict:
        """The metadata of row ``i`` (version 2)."""
        if self.cols:
            return ix.row_meta(self.cols, i)
        return ix.row_meta(ix.read_row(self.h5, i, self.columns()), 0)

    def data(self, row, ds):
        if ds is not None:
            return ds[()]
        if self.cols:
            b, i = int(self.cols["block"][row]), int(self.cols["block_row"][row])
        else:
            b, i = int(self.columns()["block"][row][0]), int(self.columns()["block_row"][row][0])
        return self.h5["blocks"][str(b)][i]

    def stations(self):
        if self._stations is None:
            self._stations = read_stations(self.h5)
        return self._stations


class Results:
    """An open results file (use :func:`open_results`).

    If the writer of the file crashed before merging, its checkpoint parts
    (``<path>.parts/part-*.h5``) are read too, newest first, so nothing
    complete is invisible; :func:`noisecorr.results.writer.merge_parts`
    makes it one file again.
    """

    def __init__(self, path):
        self.path = results_file(path)  # a run's folder stands for its results.h5
        files = ([self.path] if self.path.exists() else []) + list_parts(self.path)
        if not files:
            raise FileNotFoundError(f"no results file at {self.path}")
        self._sets = [_File(p) for p in files]
        self._files = [f.h5 for f in self._sets]
        self._search = self._sets[::-1]  # newest part first, main file last
        first = self._files[0]
        self.params = json.loads(first.attrs["params"])
        self.software_version = from_attr(first.attrs.get("software_version", "null"))
        self.format_version = from_attr(first.attrs.get("format_version", 0))
        self.starttime = from_attr(first.attrs.get("starttime", "null"))
        self.endtime = from_attr(first.attrs.get("endtime", "null"))
        self._tab = None  # one table of every file's /index, once listed
        self._by_component: dict = {}  # component: (table rows, pairs) of pairs(component)
        self._hits: dict = {}

    # ------------------------------------------------------------- listing
    def _table(self) -> dict:
        """The /index columns of all files as one table, one row per key (the newest
        file wins), sorted by key; ``_file`` and ``_row`` say where each row is."""
        if self._tab is None:
            cols = []
            for k, f in enumerate(self._sets):  # oldest to newest: later wins
                c = f.load()
                n = len(c["source"])
                cols.append({**{name: v for name, v in c.items() if name not in ix.BLOCK},
                             "_file": np.full(n, k, dtype=np.int64),
                             "_row": np.arange(n, dtype=np.int64)})
            tab = ix.concat(cols)
            if len(cols) > 1 or not self._sets[0].is_sorted():
                keep = ix.last_wins(tab)
                tab = {name: v[keep] for name, v in tab.items()}
                order = np.lexsort((tab["component"], tab["receiver"], tab["source"]))
                tab = {name: v[order] for name, v in tab.items()}
            self._tab = tab
        return self._tab

    def _table_row(self, source, receiver, component):
        """Row of a key in the (loaded, sorted) table, or ``None``."""
        tab = self._tab
        lo, hi = 0, len(tab["source"])
        for name, value in zip(ix.KEYS, (source, receiver, component)):
            col, value = tab[name][lo:hi], np.bytes_(value.encode())
            lo, hi = (lo + int(np.searchsorted(col, value, "left")),
                      lo + int(np.searchsorted(col, value, "right")))
            if lo == hi:
                return None
        return lo

    def _pair_rows(self, component):
        """``(table rows, pairs)`` of :meth:`pairs` ``(component)``, in that order."""
        hit = self._by_component.get(component)
        if hit is None:
            tab = self._table()
            src, rcv = tab["source"], tab["receiver"]
            if component is None:  # the table is sorted: the first row of each pair
                keep = np.ones(len(src), dtype=bool)
                keep[1:] = (src[1:] != src[:-1]) | (rcv[1:] != rcv[:-1])
            else:
                keep = tab["component"] == np.bytes_(str(component).encode())
            rows = np.flatnonzero(keep)
            pairs = list(zip(src[rows].astype(str).tolist(), rcv[rows].astype(str).tolist()))
            hit = self._by_component[component] = (rows, pairs)
        return hit

    def pairs(self, component: str | None = None) -> list:
        """Sorted ``[(source, receiver)]`` with at least one (or the given)
        component."""
        return list(self._pair_rows(component)[1])

    def components(self) -> list:
        """Sorted component names present in the file."""
        return np.unique(self._table()["component"]).astype(str).tolist()

    def column(self, name: str, component: str = "ZZ") -> np.ndarray:
        """One metadata item of every pair of ``component``, in the order of
        :meth:`pairs` ``(component)``, read from the index in memory (no per-pair lookup).

        Parameters
        ----------
        name : str
            ``distance_km``, ``azimuth``, ``back_azimuth``, ``sampling_rate``, ``maxlag``
            (float, NaN if unknown), ``n_windows`` (int, -1 if unknown), ``complete``
            (bool), or ``source``, ``receiver``, ``component``, ``starttime``,
            ``endtime`` (str, ``""`` if unknown).
        component : str

        Examples
        --------
        >>> import tempfile, os, numpy as np
        >>> from noisecorr.results import ResultsWriter
        >>> path = os.path.join(tempfile.mkdtemp(), "r.h5")
        >>> with ResultsWriter(path, {}, sampling_rate=10.0) as w:
        ...     w.write_block(["XS.A", "XS.A"], ["XS.B", "XS.C"], "ZZ", 0.2,
        ...                   np.zeros((2, 5)), {"n_windows": [3, 4], "distance_km": [1.5, 2.5]})
        >>> with open_results(path) as res:
        ...     res.pairs("ZZ"), res.column("distance_km", "ZZ").tolist()
        ([('XS.A', 'XS.B'), ('XS.A', 'XS.C')], [1.5, 2.5])
        """
        text = (*ix.KEYS, "starttime", "endtime")
        check_component(component)
        if name not in ix.NUMERIC and name not in text:
            raise KeyError(f"no column {name!r}; use one of {', '.join([*ix.NUMERIC, *text])}")
        rows = self._pair_rows(component)[0]
        tab = self._table()
        if name not in tab:  # a column no file has: all unknown
            return (np.full(len(rows), "", dtype="U1") if name in text
                    else np.full(len(rows), ix.NUMERIC[name][1], dtype=ix.NUMERIC[name][0]))
        values = tab[name][rows]
        return values.astype(str) if name in text else values

    def stacks(self, component: str = "ZZ", index=None):
        """Yield ``(lags_seconds, ccf)`` of ``pairs(component)[i]`` for each ``i`` in
        ``index`` (default: every pair), in that order, as :meth:`stack` gives them.

        Stacks are found through the index in memory (no search per pair) and yielded one
        at a time, each read by HDF5 (``H5Dread`` of the pair's dataset, whatever its
        layout, compression or the file driver). The ``lags`` arrays are shared between
        pairs and read-only.
        A pair stored with sub-stacks gives its full stack (see :meth:`stack`).
        """
        rows = self._pair_rows(check_component(component))[0]
        tab = self._table()
        if index is not None:
            rows = rows[np.asarray(index, dtype=np.int64)]
        lags_of: dict = {}
        for t, data in self._read_rows(rows.tolist()):
            fs = float(tab["sampling_rate"][t])
            if data.ndim == 2:  # sub-stacks: the metadata says which rows hold the full stack
                data = full_stack(data, ix.row_meta(tab, t), self.params)
            key = (data.shape[-1] // 2, fs)
            lags = lags_of.get(key)
            if lags is None:
                lags = lags_of[key] = lag_axis(key[0] / fs, fs)
                lags.flags.writeable = False
            yield lags, data

    def _read_rows(self, rows):
        """Yield ``(table row, stack)`` for table ``rows``, in that order."""
        tab = self._tab
        for t in rows:
            f = self._sets[int(tab["_file"][t])]
            key = (tab["source"][t], tab["receiver"][t], tab["component"][t])
            yield t, f.read(int(tab["_row"][t]), *key)

    def stations(self) -> list:
        """Station table: list of dicts (code, latitude, longitude, elevation)."""
        table = {}
        for f in self._sets:
            table.update(f.stations())
        return [table[c] for c in sorted(table)]

    def __len__(self) -> int:
        return len(self._table()["source"])

    # ---------------------------------------------------------------- pairs
    def _find(self, source, receiver, component):
        key = (source, receiver, component)
        if key in self._hits:  # stack() then meta() of a pair searches once
            return self._hits[key]
        found = None
        if self._tab is not None:  # listed: the table says where the pair is
            t = self._table_row(source, receiver, component)
            if t is not None:
                f = self._sets[int(self._tab["_file"][t])]
                found = (f, f.at(int(self._tab["_row"][t]), *key))
        else:
            for f in self._search:
                hit = f.find(source, receiver, component)
                if hit is not None:
                    found = (f, hit)
                    break
        if len(self._hits) >= 1024:
            self._hits.clear()
        self._hits[key] = found
        return found

    def _locate(self, source, receiver, component):
        hit = self._find(source, receiver, component)
        if hit is not None:
            return hit, False
        hit = self._find(receiver, source, check_component(component)[::-1])
        if hit is not None:
            return hit, True
        raise KeyError(f"no stack for {source} -> {receiver} component {component} "
                       f"in {self.path}")

    def stack(self, source: str, receiver: str, component: str = "ZZ"):
        """``(lags_seconds, ccf)`` of a pair.

        If only the reverse pair is stored, returns it time-reversed with the component
        letters swapped, since in a fixed frame C_BA^YX(tau) = C_AB^XY(-tau). ENZ is such a
        frame. R and T are not: reversing the pair turns the radial (source to receiver)
        and transverse directions around at both stations, so a component with exactly one
        of R, T and one Z (RZ, ZR, TZ, ZT) also changes sign; RR, RT, TR, TT and ZZ do not
        (each R/T letter contributes a factor -1).

        With sub-stacks (``substack: true``) the full stack over every window comes back
        (its sub-stacks: :meth:`substacks`); a file written before the full stack was
        stored gives the window-weighted mean of its sub-stacks (exact for linear stacks,
        logged as an approximation otherwise); any other 2-D dataset comes back as stored.

        Raises
        ------
        KeyError
            Neither the pair nor its reverse is stored.
        ValueError
            Only the reverse of a deconvolution (``cc_method="deconv"``) is stored: R/S is
            not S/R reversed in time, so it cannot be derived.
        """
        (f, (row, ds)), reverse = self._locate(source, receiver, component)
        if reverse:
            method = (self.params.get("processing") or self.params).get("cc_method", "xcorr")
            if method == "deconv":
                raise ValueError(
                    f"only {receiver} -> {source} {check_component(component)[::-1]} is stored in "
                    f"{self.path}, and a deconvolution cannot be reversed (R/S is not S/R in "
                    f"reverse time): read that pair instead")
        data = f.data(row, ds)
        if row is None:  # version 1: attributes
            fs = float(ds.attrs["sampling_rate"])
        elif f.cols:
            fs = float(f.cols["sampling_rate"][row])
        else:
            fs = float(f.columns()["sampling_rate"][row][0])
        if data.ndim == 2:
            data = full_stack(data, self._stored_meta(f, row, ds), self.params)
        h = data.shape[-1] // 2  # lags depend on the length and fs only
        lags = lag_axis(h / fs, fs)
        if reverse:
            data = data[..., ::-1] * np.float32(reversal_sign(component))
        return lags, data

    def dispersion(self, component: str = "ZZ"):
        """SNR and dispersion curves of every pair of ``component``, as stored by
        ``noisecorr dispersion`` (:class:`noisecorr.dispersion.table.DispersionTable`;
        ``KeyError`` if none was made). ``.select(min_snr=...)`` keeps pairs by SNR."""
        from noisecorr.dispersion.table import read_table

        return read_table(self._files[0], check_component(component))

    def snr(self, component: str = "ZZ") -> dict:
        """``{(source, receiver): (causal, acausal, symmetric)}`` broadband SNR of the
        pairs of ``component`` (from :meth:`dispersion`)."""
        t = self.dispersion(component)
        return {(s, r): (float(a), float(b), float(c)) for s, r, a, b, c in
                zip(t.source, t.receiver, t.snr_causal, t.snr_acausal, t.snr_symmetric)}

    @staticmethod
    def _stored_meta(f, row, ds) -> dict:
        if row is None:  # version 1: attributes
            return {k: from_attr(v) for k, v in ds.attrs.items()}
        return f.row(row)

    def substacks(self, source: str, receiver: str, component: str = "ZZ") -> Substacks:
        """The sub-stacks of a pair (a run with ``substack: true``), as a
        :class:`noisecorr.results.substacks.Substacks`: ``stacks`` ``(K, n_lags)`` in time
        order, ``starts`` (POSIX s, on the grid of ``substack_origin`` and
        ``substack_len`` shared by every pair), window ``counts``, the stored full
        ``stack``, and for pws the ``linear`` means and mean unit ``phasor`` of each span.

        A reverse pair is reversed as in :meth:`stack` (the phasors conjugated too: the
        analytic signal of ``x(-t)`` is the conjugate of that of ``x`` at ``-t``).

        Raises
        ------
        KeyError
            Neither the pair nor its reverse is stored.
        ValueError
            The pair was stored without sub-stacks.
        """
        lags, _ = self.stack(source, receiver, component)  # also refuses a reversed deconv
        (f, (row, ds)), reverse = self._locate(source, receiver, component)
        meta = self._stored_meta(f, row, ds)
        sub = unpack(lags, f.data(row, ds), meta, self.params)
        if not reverse:
            return sub
        sign = np.float32(reversal_sign(component))

        def flip(a):
            return None if a is None else a[..., ::-1] * sign

        phasor = None if sub.phasor is None else np.conj(sub.phasor[..., ::-1]) * sign
        return dataclasses.replace(sub, stack=flip(sub.stack), stacks=flip(sub.stacks),
                                   linear=flip(sub.linear), phasor=phasor)

    def series(self, source: str, receiver: str, component: str = "ZZ"):
        """The time-resolved correlations of a pair: ``(times, lags, array, windows)``.

        A per-chunk series is the sub-stack layout (``substack: true`` with
        ``substack_len`` equal to the chunk length on the calendar grid), so this reads
        :meth:`substacks`: one code path for both. Gaps (chunks without windows) are NaN
        rows with 0 windows; the :class:`Substacks` of :meth:`substacks` also names them
        (``gaps``). Many pairs: :meth:`series_many`, :meth:`series_array`.

        Returns
        -------
        times : ndarray (K,), POSIX seconds (UTC)
            Start of each span, in time order.
        lags : ndarray (n_lags,), seconds
            Positive lag: the wave travels from ``source`` to ``receiver``.
        array : ndarray (K, n_lags)
            One stack per span (reversed in time for a reverse pair, as :meth:`stack`).
        windows : ndarray of int (K,)
            Windows stacked in each span.

        Raises
        ------
        KeyError
            Neither the pair nor its reverse is stored.
        ValueError
            The pair was stored without sub-stacks.
        """
        sub = self.substacks(source, receiver, component)
        return sub.starts, sub.lags, sub.stacks, sub.counts

    def series_many(self, component: str = "ZZ", pairs=None):
        """Yield ``(source, receiver, Substacks)`` of many pairs' per-chunk series
        (``keep: chunks``), one pair at a time (bounded memory however many pairs).

        Parameters
        ----------
        component : str
        pairs : list of (source, receiver) or None
            The pairs, in that order (a reverse pair reversed as in :meth:`substacks`;
            each found by an index lookup). ``None``: every pair of ``component`` that
            kept its chunks, in the order of :meth:`pairs` (read through the index in
            memory, no search per pair); pairs that ``keep_chunks`` left out (their full
            stack only) are skipped.

        Raises
        ------
        KeyError
            A listed pair is not stored.
        ValueError
            A listed pair was stored without its chunks (named).
        """
        component = check_component(component)
        if pairs is not None:
            for a, b in pairs:
                yield a, b, self.substacks(a, b, component)
            return
        rows, names = self._pair_rows(component)
        tab = self._table()
        lags_of: dict = {}
        for (a, b), (t, data) in zip(names, self._read_rows(rows.tolist())):
            if data.ndim != 2:
                continue
            fs = float(tab["sampling_rate"][t])
            key = (data.shape[-1] // 2, fs)
            if key not in lags_of:
                lags_of[key] = lag_axis(key[0] / fs, fs)
                lags_of[key].flags.writeable = False
            yield a, b, unpack(lags_of[key], data, ix.row_meta(tab, t), self.params)

    def series_array(self, component: str = "ZZ", pairs=None):
        """The per-chunk series of many pairs as one array on a common time axis:
        ``(pairs, times, lags, array, counts)``.

        Returns
        -------
        pairs : list of (source, receiver)
            As :meth:`series_many` gives them.
        times : ndarray (n_times,), POSIX seconds (UTC)
            Every chunk start of any of the pairs, sorted.
        lags : ndarray (n_lags,), seconds
        array : ndarray float32 (n_pairs, n_times, n_lags)
            NaN where a pair has no windows (a gap) or no such chunk.
        counts : ndarray int (n_pairs, n_times)
            Windows per pair and chunk (0: gap).

        Memory is ``n_pairs * n_times * n_lags * 4`` bytes: for very many pairs iterate
        :meth:`series_many` or pass ``pairs`` in batches.

        Raises
        ------
        ValueError
            The pairs have different lag axes, or none has a series.
        """
        got = list(self.series_many(component, pairs))
        if not got:
            raise ValueError(f"no pair of component {component} in {self.path} kept its chunks "
                             "(keep: chunks)")
        lags = got[0][2].lags
        for a, b, sub in got:
            if sub.lags.shape != lags.shape:
                raise ValueError(f"{a}-{b} {component}: {sub.lags.size} lags, not {lags.size} as "
                                 f"{got[0][0]}-{got[0][1]}; read them separately")
        times = np.unique(np.concatenate([sub.starts for _, _, sub in got]))
        array = np.full((len(got), len(times), len(lags)), np.nan, dtype=np.float32)
        counts = np.zeros((len(got), len(times)), dtype=np.int64)
        for i, (_, _, sub) in enumerate(got):
            j = np.searchsorted(times, sub.starts)
            array[i, j] = sub.stacks
            counts[i, j] = sub.counts
        return [(a, b) for a, b, _ in got], times, lags, array, counts

    def series_at(self, time, component: str = "ZZ"):
        """One chunk of every pair that kept its chunks: ``(pairs, lags, array, counts)``.

        Reads row ``1 + k`` (chunk ``k`` starting at ``time``; after the rows of the full
        stack, :func:`~noisecorr.results.substacks.stack_rows`) of each pair's dataset only
        (an HDF5 hyperslab: of an uncompressed file just those bytes; a compressed pair is
        one chunk that HDF5 decompresses), so a day of all pairs does not read their whole
        series.

        Parameters
        ----------
        time : UTCDateTime, ISO text or POSIX seconds
            The chunk's start, on the file's chunk grid.
        component : str

        Returns
        -------
        pairs : list of (source, receiver)
            The pairs with a chunk starting at ``time``, in the order of :meth:`pairs`.
        lags : ndarray (n_lags,), seconds
        array : ndarray float32 (n_pairs, n_lags)
            NaN rows for gaps (0 windows).
        counts : ndarray int (n_pairs,)
        """
        t0 = _posix(time)
        rows, names = self._pair_rows(check_component(component))
        tab = self._table()
        pairs, out, counts, lags = [], [], [], None
        for (a, b), t in zip(names, rows.tolist()):
            meta = ix.row_meta(tab, t)
            starts = meta.get("substack_starts")
            if meta.get("substack_rows") is None or not starts:
                continue
            hit = np.flatnonzero(np.abs(np.asarray(starts, dtype=np.float64) - t0) < 1e-3)
            if not len(hit):
                continue
            k = int(hit[0])
            head = stack_rows(meta)  # the rows of the full stack come first
            f = self._sets[int(tab["_file"][t])]
            if f.blocks:  # a checkpoint part: its block row holds the whole series
                key = (tab["source"][t], tab["receiver"][t], tab["component"][t])
                row = f.read(int(tab["_row"][t]), *key)[head + k]
            else:
                row = f.h5[pair_path(a, b, component)][head + k]
            n = int(meta["substack_counts"][k])
            out.append(np.full(row.shape, np.nan, np.float32) if n == 0 else row)
            counts.append(n)
            pairs.append((a, b))
            if lags is None:
                fs = float(tab["sampling_rate"][t])
                lags = lag_axis((row.shape[-1] // 2) / fs, fs)
        if not pairs:
            raise ValueError(f"no pair of component {component} in {self.path} has a chunk starting "
                             f"at {time}")
        return pairs, lags, np.asarray(out, dtype=np.float32), np.asarray(counts, dtype=np.int64)

    def combine_substacks(self, source: str, receiver: str, component: str = "ZZ", *,
                          start=None, end=None):
        """``(lags, stack, n_windows)`` of the sub-stacks of a pair whose spans start in
        ``[start, end)`` (UTCDateTime, ISO text or POSIX s; default all), weighted by
        their window counts; for pws the exact PWS of their windows from the stored
        linear means and phasors (see :func:`noisecorr.results.substacks.combine`). Over
        all spans it equals the stored full stack (linear, pws).

        Examples
        --------
        >>> import tempfile, os, numpy as np
        >>> from noisecorr.results import ResultsWriter
        >>> from noisecorr.results.substacks import pack
        >>> data, layout = pack({"stack": np.full(3, 3.25, "f4"),
        ...                      "substacks": np.array([[1, 1, 1], [4, 4, 4]], "f4"),
        ...                      "substack_starts": [0.0, 3600.0], "substack_counts": [1, 3],
        ...                      "substack_len": 3600.0})
        >>> path = os.path.join(tempfile.mkdtemp(), "r.h5")
        >>> with ResultsWriter(path, {}, sampling_rate=10.0) as w:
        ...     w.write_pair("XS.A", "XS.B", "ZZ", 0.1, data, {"n_windows": 4, **layout})
        >>> with open_results(path) as res:
        ...     res.stack("XS.A", "XS.B")[1].tolist(), res.combine_substacks("XS.A", "XS.B")[1:]
        ([3.25, 3.25, 3.25], (array([3.25, 3.25, 3.25]), 4))
        """
        sub = self.substacks(source, receiver, component)
        proc = self.params.get("processing") or self.params
        stack, n = combine(sub, float(proc.get("pws_power", 2.0)), _posix(start), _posix(end))
        return sub.lags, stack, n

    def moving(self, source: str, receiver: str, component: str = "ZZ", counts: bool = False):
        """The stored moving-window stacks of a pair (``noisecorr stack``, see
        :mod:`noisecorr.results.moving`): ``(times, lags, array)``, ``times`` (J,) the window
        starts (POSIX s), ``array`` float32 (J, n_lags), NaN where a window has no data; with
        ``counts`` also the windows stacked per moving window. A reverse pair is reversed as
        in :meth:`stack`.

        Raises
        ------
        ValueError
            No moving stacks stored.
        KeyError
            Neither the pair nor its reverse has them.
        """
        from .moving import read_moving

        times, lags, data, n = read_moving(self._files[0], source, receiver, component,
                                           self.__dict__.setdefault("_moving_cache", {}))
        return (times, lags, data, n) if counts else (times, lags, data)

    def reference(self, source: str, receiver: str, component: str = "ZZ"):
        """The stored reference stack of a pair (``noisecorr stack --reference``):
        ``(lags, stack, n_windows)``; errors as :meth:`moving`."""
        from .moving import read_reference

        return read_reference(self._files[0], source, receiver, component,
                              self.__dict__.setdefault("_moving_cache", {}))

    def moving_info(self) -> dict:
        """``{component: {window, step, chunk_length (s), method, pws_power, phasors,
        reference}}`` of the stored moving stacks (ValueError if none)."""
        from .moving import read_info

        return read_info(self._files[0])

    def meta(self, source: str, receiver: str, component: str = "ZZ") -> dict:
        """Metadata of a pair as a dict of Python values: ``source``,
        ``receiver``, ``component``, ``source_coordinates``,
        ``receiver_coordinates`` ([lat, lon, elevation], if known),
        ``distance_km``, ``azimuth``, ``back_azimuth`` (if known),
        ``sampling_rate``, ``maxlag``, ``n_windows`` (-1 if unknown),
        ``starttime``, ``endtime`` (None if unknown), ``complete`` and the
        other items given to the writer."""
        (f, (row, ds)), reverse = self._locate(source, receiver, component)
        if row is None:
            meta = {k: from_attr(v) for k, v in ds.attrs.items()}
        else:
            meta = f.row(row)
            table = f.stations()
            for prefix in ("source", "receiver"):
                st = table.get(meta[prefix])
                if st:
                    meta[f"{prefix}_coordinates"] = [st["latitude"], st["longitude"],
                                                     st["elevation"]]
        if reverse:
            meta["reversed_from"] = f"{receiver}->{source}"
        return meta

    # --------------------------------------------------------------- export
    def to_trace(self, source: str, receiver: str, component: str = "ZZ"):
        """One stack as an ObsPy Trace (:func:`noisecorr.interop.mseed.stack_trace`: lag
        = time since 1970-01-01, so ``starttime = UTCDateTime(-maxlag)``, header codes of
        the receiver, location ``"CC"``, channel ``"X" + component``); the pair's
        metadata is in ``stats.noisecorr``."""
        from noisecorr.interop.mseed import stack_trace

        lags, data = self.stack(source, receiver, component)
        meta = self.meta(source, receiver, component)
        tr = stack_trace(lags, data, receiver, component, meta["sampling_rate"])
        tr.stats.noisecorr = dict(meta)
        return tr

    def export_sac(self, out_dir, pairs=None, components=None) -> list:
        """Write stacks as SAC files ``SRC_RCV_COMP.SAC`` in ``out_dir``: the header of
        :func:`noisecorr.interop.sac.write_sac` (``b = -maxlag``, ``delta = 1/fs``, the
        source as the "event", the receiver as the station, ``dist`` km, ``az``,
        ``baz``, ``gcarc``, ``user0 = n_windows``), one file per pair and component
        selected by :func:`noisecorr.interop.select.select` (a pair stored only the other
        way round is reversed). A pair with sub-stacks gives its full stack. Returns the
        paths. ``noisecorr export --format sac`` writes ``COMP/SRC_RCV.SAC`` instead."""
        from noisecorr.interop.sac import write_sac
        from noisecorr.interop.select import select

        sel = select(self, pairs=pairs, components=components)
        return write_sac(self, sel, out_dir, layout="flat")

    def export_mseed(self, out_dir, pairs=None, components=None) -> list:
        """Write stacks as float32 miniSEED files ``SRC_RCV_COMP.mseed`` (see
        :meth:`to_trace` for the header convention; :func:`noisecorr.interop.mseed.write_mseed`
        with the selection of :meth:`export_sac`). Returns the paths."""
        from noisecorr.interop.mseed import write_mseed
        from noisecorr.interop.select import select

        sel = select(self, pairs=pairs, components=components)
        return write_mseed(self, sel, out_dir, layout="flat")

    def to_xarray(self, component: str = "ZZ", pairs=None, block: int = 4096,
                  series: bool = False):
        """The stacks of ``component`` as a lazy :class:`xarray.Dataset` (pair x lag, or
        pair x time x lag for the per-chunk ``series``; dask arrays read block by block):
        see :func:`noisecorr.interop.xarray.to_xarray`."""
        from noisecorr.interop.xarray import to_xarray

        return to_xarray(self, check_component(component), pairs=pairs, block=block,
                         series=series)

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _posix(t):
    """POSIX seconds of a UTCDateTime, ISO text or number (None stays None)."""
    if t is None or isinstance(t, (int, float, np.integer, np.floating)):
        return None if t is None else float(t)
    from obspy import UTCDateTime

    return float(UTCDateTime(t).timestamp)


def reversal_sign(component: str) -> int:
    """Sign of the time-reversed reverse pair in a component: ``C_AB^XY(t) = sign *
    C_BA^YX(-t)``.

    In the RTZ frame of a pair the radial and transverse directions point the other way
    when source and receiver swap, at both stations (Lin et al. 2008's frame follows the
    great circle from source to receiver), so each R or T letter contributes -1: RZ, ZR,
    TZ and ZT change sign, RR, RT, TR, TT and ZZ do not. ENZ components are in a fixed
    frame: +1.

    >>> [reversal_sign(c) for c in ("RR", "RZ", "ZT", "TT", "ZZ", "EZ")]
    [1, -1, -1, 1, 1, 1]
    """
    c = check_component(component)
    return -1 if sum(letter in "RT" for letter in c) == 1 else 1


def open_results(path) -> Results:
    """Open a results file for reading (a context manager).

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> from noisecorr.results import ResultsWriter
    >>> path = os.path.join(tempfile.mkdtemp(), "r.h5")
    >>> with ResultsWriter(path, {}, version="0.1", sampling_rate=10.0) as w:
    ...     w.write_pair("XS.A", "XS.B", "ZZ", 0.2, np.arange(5, dtype="f4"), {})
    >>> with open_results(path) as res:
    ...     lags, ccf = res.stack("XS.A", "XS.B")
    >>> lags.tolist(), ccf.tolist()
    ([-0.2, -0.1, 0.0, 0.1, 0.2], [0.0, 1.0, 2.0, 3.0, 4.0])
    """
    return Results(path)
