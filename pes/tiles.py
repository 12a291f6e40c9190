"""Block-tiled correlation PEs: route station spectra to tiles, correlate tiles, stack.

Thin over :mod:`noisecorr.tiles` (planning and the BLAS-3 kernel). The stage replaces
``CrossCorrelatePE -> StackPE`` for many stations::

    ... -> WhitenPE -> TileRoutePE -> TileCorrelatePE -> TileStackPE -> WriteResultsPE
                          ^ absent (PreprocessPE / FetchPE ``absent``)

Items
-----
TileRoutePE input : dict
    :class:`pes.normalise.WhitenPE` output (``seed_id``, ``chunk``, ``spectra``,
    ``starttimes``, ``sampling_rate``, ``nfft``). A station without windows in a chunk
    still sends an item (``spectra`` of shape ``(0, n_freq)``).
    An item may instead carry the factors already (``"rcv"`` ``(n_windows, n_band)``,
    ``"src"``, ``"band"``), e.g. read back from a spectra store.
TileRoutePE absent : dict (optional input)
    ``{"seed_id", "chunk", "reason"}``: this channel has no data for this chunk (a rejected
    or empty station-day; :class:`pes.preprocess.PreprocessPE` ``absent``). Its tiles are
    computed as soon as every other station of them has arrived, instead of waiting, with
    the chunk's spectra, for the end of the run. A channel-chunk has exactly one of
    spectra or an absence: both, either twice, or either after the chunk's tiles were
    computed is an error naming the seed id and chunk.
TileRoutePE output / TileCorrelatePE input : dict (grouped by ``"slot"``)
    ``{"slot", "worker", "chunk", "station" (index in the sorted station list), "channel"
    (last letter of the seed id), "seed_id", "starttimes", "rcv" (n_band, n_windows)
    complex64 frequency-major, "src" (deconv only, else None), "band" (start, stop), "nfft",
    "sampling_rate"}``: one copy per *worker* owning a tile with the station's block (not
    one per pair, nor per tile), in-band bins only. An absence is
    ``{"slot", "worker", "chunk", "station", "channel", "seed_id", "absent": True, "reason"}``.
TileCorrelatePE output : dict, per tile, chunk and component, at most
    :attr:`noisecorr.tiles.plan.TilePlan.out_pairs` pairs each (linear stack)
    ``{"tile": (I, J), "panel": (panel, part) (informative only), "chunk", "component",
    "chunk_pairs" (pairs of this tile, chunk and component over all its items), "keys",
    "source", "receiver", "source_id", "receiver_id" (lists, one entry per pair),
    "ccf_sum" (n_pairs, 2L+1) float32 (sum over the pair's common windows of the
    per-window correlations), "n_windows" (n_pairs,) int64, "lags" (s), "sampling_rate"}``.
    Which item a pair travels in is not an identity: it changes from chunk to chunk when
    stations are missing. A tile-chunk without any pair (its stations absent) sends one
    item with ``chunk_pairs`` 0 and no pairs, so the stack knows that chunk is complete.
    For ``stack_method`` pws/robust or sub-stacks it emits
    instead :class:`pes.correlate.CrossCorrelatePE` items (per pair, per-window ``ccfs``)
    for :class:`pes.stack.StackPE`.
TileStackPE output : dict
    ``batched=True``: per tile and component, at most ``out_pairs`` pairs each,
    ``{"tile", "component", "keys", "source", "receiver", "source_id", "receiver_id",
    "lags", "stack" (n_pairs, 2L+1) float32 (mean), "n_windows" (n_pairs,),
    "stack_method", "sampling_rate", "params"}``;
    ``batched=False``: one :class:`pes.stack.StackPE`-style dict per pair.

Memory: a ``TileCorrelatePE`` instance keeps the factors it receives in a
:class:`noisecorr.tiles.store.FactorStore`, in memory or (``plan.store == "disk"``) in an
unlinked scratch file, and computes a tile as its source block times receiver panels of
``plan.panel_size`` stations, so its memory is what :func:`noisecorr.tiles.plan_tiles`
predicted. A chunk's factors are dropped once its tiles are computed, i.e. once every
station of them has sent its spectra or been reported absent.

Routing: the tiles are dealt to ``workers`` slots by :func:`noisecorr.tiles.plan_tiles`
(balanced by pair count); slot ``w`` has a group-by key that the engine's stable hash
sends to instance ``w`` of ``TileCorrelatePE`` (``numprocesses = workers``), in every
mapping. The result never depends on the routing: any instance count is correct.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from noisecorr.engine import CompositePE, GenericPE
from pes.correlate import station_key
from noisecorr.engine.routing import stable_hash
from noisecorr.signal.components import ENZ_PAIRS
from noisecorr.signal.correlate import lag_axis
from noisecorr.signal.geodesy import pair_geometry
from noisecorr.signal.params import CorrelationParams
from noisecorr.tiles.kernel import (assemble_block, pairs_to_lags, station_factors,
                                    tile_cross_spectra, tile_window_ccfs, window_grid)
from noisecorr.tiles.plan import OUT_PAIRS, TilePlan, block_range, format_bytes
from noisecorr.tiles.store import FactorStore

__all__ = ["TileRoutePE", "TileCorrelatePE", "TileStackPE", "TiledCorrelation", "slot_keys",
           "station_key"]


def slot_keys(n: int) -> list:
    """``n`` group-by keys (ints) such that key ``w`` reaches instance ``w`` of ``n``."""
    keys, k = [None] * n, 0
    while any(x is None for x in keys):
        w = stable_hash(k) % n
        if keys[w] is None:
            keys[w] = k
        k += 1
    return keys


def _check_tiled(params: CorrelationParams):
    bad = [c for c in params.components if c not in ENZ_PAIRS]
    if bad:
        raise ValueError(f"the tiled correlation supports ENZ component pairs only, got {bad}; "
                         "use CrossCorrelatePE for RTZ rotation")


def _channels(params) -> set:
    return {c for comp in params.components for c in comp}


class TileRoutePE(GenericPE):
    """Compute a station's in-band spectral factors once and send them to its tiles' workers.

    Parameters
    ----------
    params : CorrelationParams
    stations : list of str
        ``NET.STA.LOC`` keys (or seed ids) of every station; sorted internally, so pairs are
        oriented as in :class:`pes.correlate.CrossCorrelatePE` (source < receiver).
    plan : TilePlan
        :func:`noisecorr.tiles.plan_tiles` for ``len(stations)`` stations.

    Inputs ``input`` (spectra) and ``absent`` (optional: channel-chunks without data, see
    the module docstring); output ``output``.
    """

    def __init__(self, params: CorrelationParams, stations, plan: TilePlan, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        _check_tiled(params)
        self._add_input("input")
        self._add_input("absent", optional=True)
        self._add_output("output")
        self.params = params
        self.stations = sorted({station_key(s) if s.count(".") == 3 else s for s in stations})
        if plan.n_stations != len(self.stations):
            raise ValueError(f"plan is for {plan.n_stations} stations, got {len(self.stations)}")
        self.plan = plan
        self.index = {s: i for i, s in enumerate(self.stations)}
        self.keys = slot_keys(plan.workers)
        self.block_workers = [plan.workers_of_block(b) for b in range(plan.n_blocks)]
        self.wanted = _channels(params)

    def _station(self, sid):
        try:
            return self.index[station_key(sid)]
        except KeyError:
            raise ValueError(f"{sid}: station {station_key(sid)} is not in the tile plan's "
                             f"station list ({len(self.stations)} stations)") from None

    def process(self, inputs):
        if "absent" in inputs:
            self._absent(inputs["absent"])
        if "input" in inputs:
            self._spectra(inputs["input"])

    def _absent(self, item):
        sid = item["seed_id"]
        channel = sid[-1].upper()
        if channel not in self.wanted:
            return
        st = self._station(sid)
        out = {"chunk": item["chunk"], "station": st, "channel": channel, "seed_id": sid,
               "absent": True, "reason": item.get("reason")}
        for w in self.block_workers[self.plan.block_of(st)]:
            self.write("output", dict(out, slot=self.keys[w], worker=w))

    def _spectra(self, item):
        sid = item["seed_id"]
        channel = sid[-1].upper()
        if channel not in self.wanted:
            return
        st = self._station(sid)
        if "rcv" in item:  # already factored (e.g. read back from a spectra store)
            rcv, src, band = item["rcv"], item.get("src"), slice(*item["band"])
        else:
            rcv, src, band = station_factors(item["spectra"], self.params, item["nfft"])
        # frequency-major, the layout of the tile blocks: transposed once here, not per tile
        rcv = np.ascontiguousarray(np.asarray(rcv, dtype=np.complex64).T)
        if src is not None:
            src = np.ascontiguousarray(np.asarray(src, dtype=np.complex64).T)
        out = {"chunk": item["chunk"], "station": st, "channel": channel, "seed_id": sid,
               "starttimes": np.asarray(item["starttimes"], dtype=np.float64), "rcv": rcv,
               "src": src, "band": (band.start, band.stop), "nfft": int(item["nfft"]),
               "sampling_rate": float(item["sampling_rate"])}
        for w in self.block_workers[self.plan.block_of(st)]:
            self.write("output", dict(out, slot=self.keys[w], worker=w))


class TileCorrelatePE(GenericPE):
    """Correlate the station pairs of the tiles of its worker slot(s), tile by tile.

    ``concurrent_inputs``: spectra are stored while a tile is being computed.

    A tile is computed as soon as every station of its two blocks has sent its channels
    for the chunk or been reported absent for them (``absent`` items, see the module
    docstring), or else when the upstream has finished (stations that never sent anything
    are left out, as in :class:`pes.correlate.CrossCorrelatePE`; counted in the
    ``tiles_at_end`` statistic and logged, since those tiles held their chunk's spectra
    until the end of the run), as the source block
    times receiver panels of ``plan.panel_size`` stations (one output item per panel). A
    station's factors are kept in a :class:`noisecorr.tiles.store.FactorStore`
    (``plan.store``: memory or an unlinked scratch file) and dropped once the worker's last
    tile that needs them is done.

    Parameters
    ----------
    params : CorrelationParams
    stations : list of str
        As for :class:`TileRoutePE`.
    plan : TilePlan
    blas_threads : int, optional
        Limit BLAS threads in this instance (threadpoolctl), e.g. 1 when every core runs a
        worker process.
    coordinates : dict, optional
        ``{"NET.STA.LOC" or "NET.STA": (lat, lon)}`` for the per-pair items of the per-window
        path (distance, azimuths).
    fft_workers : int, optional
        Threads of the batched inverse FFT (``scipy.fft`` ``workers``).
    scratch : path, optional
        Folder of the scratch files of a disk store (default: the system's temporary folder).
    channels : dict, optional
        ``{station key: channel letters}`` that exist in the run (e.g. from its seed ids);
        a station is waited for only on those of the wanted channels (a station with no
        ``N`` channel does not hold an ``NN`` tile). Default: every wanted channel of every
        station.

    Output ``stats`` (one item per instance at the end, for benchmarks and logs):
    ``{"instance", "tiles", "panels", "pairs", "seconds": {"allocate", "assemble",
    "cross_spectra", "inverse_fft"}, "flops", "store", "spilled_bytes", "read_bytes",
    "tiles_at_end", "peak_chunks"}`` (``tiles_at_end``: tile-chunks computed only when the
    upstream finished, because a station neither sent spectra nor was reported absent;
    ``peak_chunks``: most chunk states, each with its spectra, held at once)
    (``flops``: 8 real operations per complex multiply-add of the products; ``allocate``:
    faulting in the cross-spectra buffer, once; ``assemble`` includes reading factors back
    from a disk store).
    """

    concurrent_inputs = True

    def __init__(self, params: CorrelationParams, stations, plan: TilePlan,
                 blas_threads: int | None = None, coordinates=None, fft_workers: int | None = None,
                 scratch=None, channels=None, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        _check_tiled(params)
        self._add_input("input", grouping=["slot"])
        self._add_output("output")
        self._add_output("stats")
        self.fft_workers = fft_workers
        self.scratch = None if scratch is None else str(scratch)
        self.stats = {"tiles": 0, "panels": 0, "pairs": 0, "flops": 0, "store": plan.store,
                      "spilled_bytes": 0, "read_bytes": 0, "tiles_at_end": 0, "peak_chunks": 0,
                      "seconds": {"allocate": 0.0, "assemble": 0.0, "cross_spectra": 0.0,
                                  "inverse_fft": 0.0}}
        self.params = params
        self.stations = sorted({station_key(s) if s.count(".") == 3 else s for s in stations})
        self.plan = plan
        self.numprocesses = plan.workers
        self.blas_threads = blas_threads
        self.coordinates = dict(coordinates or {})
        self.wanted = _channels(params)
        self.expected = self._expected_channels(channels)
        self.state = {}
        self._closed = set()  # (chunk, worker) whose tiles are all computed
        self._ready = []  # (chunk, worker, tile) waiting for the driver, in order
        self._cross = None  # the cross-spectra buffer (see _cross_buffer)
        self._driving = False
        self._limiter = None

    def _expected_channels(self, channels):
        """Wanted channels of each station index (tuples; all wanted ones by default)."""
        wanted = tuple(sorted(self.wanted))
        if channels is None:
            return [wanted] * len(self.stations)
        have = {}
        for k, v in dict(channels).items():
            key = station_key(k) if k.count(".") == 3 else k
            have.setdefault(key, set()).update(str(c).upper() for c in v)
        unknown = sorted(set(have) - set(self.stations))
        if unknown:
            raise ValueError(f"channels: station(s) {unknown[:5]} not in the station list "
                             f"({len(self.stations)} stations)")
        return [tuple(c for c in wanted if c in have.get(s, ())) for s in self.stations]

    #: True (``keep: chunks`` of a linear stack): the sub-stacks are the chunks, so the
    #: per-chunk tile sums serve them and no per-window correlation is needed.
    chunk_sums = False

    @property
    def per_window(self) -> bool:
        return self.params.stack_method != "linear" or (self.params.substack and not self.chunk_sums)

    def preprocess(self):
        if self.blas_threads is not None:
            from threadpoolctl import threadpool_limits

            self._limiter = threadpool_limits(self.blas_threads)
        if self.per_window:
            self.log("stack_method=%s%s: per-window correlations on the slower tiled path "
                     "(one inverse FFT per pair and window)", self.params.stack_method,
                     " with sub-stacks" if self.params.substack else "")

    def _chunk_state(self, chunk, worker):
        key = (chunk, worker)
        st = self.state.get(key)
        if st is None:
            mine = self.plan.worker_tiles(worker)
            refs = {}
            for t in mine:
                for b in set(t):
                    refs[b] = refs.get(b, 0) + 1
            store = FactorStore(self.plan.store, self.scratch,
                                label=f"{self.name} instance {self.instance} chunk {chunk}")
            st = self.state[key] = {"meta": {}, "absent": set(), "store": store, "done_blocks": {},
                                    "pending": set(mine), "queued": set(), "refs": refs}
            self.stats["peak_chunks"] = max(self.stats["peak_chunks"], len(self.state))
            # stations with none of the wanted channels count as arrived from the start
            for b in refs:
                n = sum(not self.expected[s]
                        for s in block_range(b, self.plan.block_size, self.plan.n_stations))
                if n:
                    st["done_blocks"][b] = n
            self._queue_ready(chunk, worker, st, refs)
        return st

    def _block_done(self, st, b) -> bool:
        return st["done_blocks"].get(b, 0) == len(block_range(b, self.plan.block_size,
                                                              self.plan.n_stations))

    def _queue_ready(self, chunk, worker, st, blocks):
        """Queue the pending tiles with a block of ``blocks`` whose blocks are all complete."""
        blocks = set(blocks)
        ready = sorted(t for t in st["pending"] - st["queued"]
                       if blocks & set(t) and all(self._block_done(st, x) for x in t))
        for t in ready:
            st["queued"].add(t)
            self._ready.append((chunk, worker, t))

    def process(self, inputs):
        """Store the station's factors; queue the tiles it completes.

        Tiles are computed by one generator (:meth:`_drive`) that the run loop resumes after
        each output item, so the stacks and the writer take each batch of pairs before the
        next is computed (a tile's lags are never all in memory), and, with
        ``concurrent_inputs``, arriving spectra keep going to the store meanwhile instead of
        waiting in memory for the tile to finish."""
        item = inputs["input"]
        chunk, worker, station = item["chunk"], item["worker"], item["station"]
        if (chunk, worker) in self._closed:
            raise ValueError(f"{item['seed_id']}: {'absence' if item.get('absent') else 'spectra'} "
                             f"of chunk {chunk} arrived after every tile of that chunk was "
                             "computed (sent twice?)")
        st = self._chunk_state(chunk, worker)
        k = (station, item["channel"])
        if item["channel"] not in self.expected[station]:
            raise ValueError(f"{item['seed_id']}: channel {item['channel']} of station "
                             f"{self.stations[station]} is not among its channels given to "
                             f"{self.name} ({list(self.expected[station])})")
        if item.get("absent"):
            if k in st["meta"]:
                raise ValueError(f"{item['seed_id']}: chunk {chunk} has spectra and is also "
                                 f"reported absent ({item.get('reason')})")
            if k in st["absent"]:
                raise ValueError(f"{item['seed_id']}: chunk {chunk} reported absent twice")
            st["absent"].add(k)
        else:
            if k in st["absent"]:
                raise ValueError(f"{item['seed_id']}: spectra of chunk {chunk} arrived after it "
                                 "was reported absent")
            if k in st["meta"]:
                raise ValueError(f"{item['seed_id']}: spectra of chunk {chunk} received twice")
            st["store"].put(k + ("rcv",), item["rcv"])
            if item.get("src") is not None:
                st["store"].put(k + ("src",), item["src"])
            st["meta"][k] = {x: item[x] for x in ("seed_id", "starttimes", "band", "nfft", "sampling_rate")}
            st["meta"][k]["src"] = item.get("src") is not None
        if all((station, c) in st["meta"] or (station, c) in st["absent"]
               for c in self.expected[station]):
            b = self.plan.block_of(station)
            st["done_blocks"][b] = st["done_blocks"].get(b, 0) + 1
            if self._block_done(st, b):
                self._queue_ready(chunk, worker, st, [b])
        if self._ready and not self._driving:
            return self._drive()
        return None

    def _drive(self):
        """Compute the queued tiles one after the other (the only generator of the PE)."""
        self._driving = True
        try:
            while self._ready:
                chunk, worker, t = self._ready.pop(0)
                st = self.state[(chunk, worker)]
                yield from self._run_tile(chunk, st, t)
                if not st["pending"]:
                    self._close_state(chunk, worker)
        finally:
            self._driving = False

    def _close_state(self, chunk, worker):
        st = self.state.pop((chunk, worker))
        self._closed.add((chunk, worker))
        store = st["store"]
        self.stats["spilled_bytes"] += store.bytes_written
        self.stats["read_bytes"] += store.bytes_read
        store.close()

    def _missing(self, st, tile) -> list:
        """Station keys of ``tile`` that neither sent nor were reported absent for a channel."""
        out = []
        for b in sorted(set(tile)):
            for s in block_range(b, self.plan.block_size, self.plan.n_stations):
                if any((s, c) not in st["meta"] and (s, c) not in st["absent"]
                       for c in self.expected[s]):
                    out.append(self.stations[s])
        return out

    def postprocess(self):
        # tiles whose stations never all arrived (nor were reported absent): computed with
        # what came; their chunk's spectra were held until now
        for (chunk, worker) in sorted(self.state, key=lambda k: (str(k[0]), k[1])):
            st = self.state[(chunk, worker)]
            late = sorted(st["pending"] - st["queued"])
            if late:
                missing = sorted({s for t in late for s in self._missing(st, t)})
                self.log("chunk %s: %d tile(s) computed only at the end of the run: no spectra "
                         "and no absence report from %d station(s) (%s%s)", chunk, len(late),
                         len(missing), ", ".join(missing[:5]), ", ..." if len(missing) > 5 else "")
            self.stats["tiles_at_end"] += len(late)
            for t in late:
                st["queued"].add(t)
                self._ready.append((chunk, worker, t))
        yield from self._drive()
        for key in sorted(self.state, key=lambda k: (str(k[0]), k[1])):
            self._close_state(*key)
        self._cross = None
        if self._limiter is not None:
            self._limiter.unregister()
        self.write("stats", dict(self.stats, instance=self.instance))

    # ------------------------------------------------------------------ one tile
    def _release(self, st, tile):
        st["pending"].discard(tile)
        for b in set(tile):
            st["refs"][b] -= 1
            if st["refs"][b] == 0:
                for s in block_range(b, self.plan.block_size, self.plan.n_stations):
                    for c in self.wanted:
                        st["meta"].pop((s, c), None)
                        st["store"].drop((s, c, "rcv"))
                        st["store"].drop((s, c, "src"))

    def _run_tile(self, chunk, st, tile):
        self.stats["tiles"] += 1
        try:
            for comp in self.params.components:
                yield from self._correlate(chunk, st, tile, comp)
        finally:
            self._release(st, tile)

    def _block(self, st, stations, channel, grid, fs, n_band, source, stations_last=False):
        """Assembled factors (n_band, len(stations), n_grid), or (n_band, n_grid,
        len(stations)) with ``stations_last``, and the window mask of ``stations``."""
        metas = [st["meta"].get((s, channel)) for s in stations]
        deconv_src = source and any(m is not None and m["src"] for m in metas)
        which = "src" if deconv_src else "rcv"
        t0 = time.perf_counter()
        f = [None if m is None else st["store"].get((s, channel, which)) for s, m in zip(stations, metas)]
        out = assemble_block(f, [() if m is None else m["starttimes"] for m in metas], grid, fs,
                             n_band, conjugate=source and not deconv_src, stations_last=stations_last)
        self.stats["seconds"]["assemble"] += time.perf_counter() - t0
        return out

    def _correlate(self, chunk, st, tile, comp):
        p = self.params
        bi, bj = tile
        rows_i = list(block_range(bi, self.plan.block_size, self.plan.n_stations))
        rows_j = list(block_range(bj, self.plan.block_size, self.plan.n_stations))
        meta_i = [st["meta"].get((s, comp[0])) for s in rows_i]
        meta_j = [st["meta"].get((s, comp[1])) for s in rows_j]
        diagonal = bi == bj
        have_i = np.array([m is not None for m in meta_i], bool)
        P = self.plan.panel_size
        panels = []  # (first column, columns, source rows used, pair rows, pair columns)
        for p0 in range(0, len(rows_j), P):
            cols = rows_j[p0:p0 + P]
            have_j = np.array([m is not None for m in meta_j[p0:p0 + P]], bool)
            # a diagonal tile needs source rows i < j only
            n_src = min(len(rows_i), p0 + len(cols)) if diagonal else len(rows_i)
            ii, jj = np.divmod(np.arange(n_src * len(cols)), len(cols))
            keep = have_i[ii] & have_j[jj]
            if diagonal:
                keep &= ii < p0 + jj
            if keep.any():
                panels.append((p0, cols, n_src, ii[keep], jj[keep]))
        n_pairs = sum(len(x[3]) for x in panels)
        L = p.maxlag_samples
        if not n_pairs:
            if not self.per_window:  # the stack learns that this tile-chunk is complete
                self.write("output", {
                    "tile": (bi, bj), "panel": (0, 0), "chunk": chunk, "component": comp,
                    "chunk_pairs": 0, "keys": [], "source": [], "receiver": [], "source_id": [],
                    "receiver_id": [], "ccf_sum": np.zeros((0, 2 * L + 1), np.float32),
                    "n_windows": np.zeros(0, np.int64), "lags": lag_axis(L, p.sampling_rate),
                    "sampling_rate": float(p.sampling_rate)})
                yield
            return
        present = [m for m in meta_i + meta_j if m is not None]
        ref = present[0]
        fs, nfft, band = ref["sampling_rate"], ref["nfft"], slice(*ref["band"])
        nb = band.stop - band.start
        grid = window_grid([m["starttimes"] for m in present], fs)
        a, ma = self._block(st, rows_i, comp[0], grid, fs, nb, source=True)
        lags = lag_axis(L, fs)
        sec = self.stats["seconds"]
        step = self.plan.out_pairs
        for p0, cols, n_src, ii, jj in panels:
            b, mb = self._block(st, cols, comp[1], grid, fs, nb, source=False,
                                stations_last=not self.per_window)
            self.stats["panels"] += 1
            if self.per_window:
                yield from self._per_window(chunk, comp, meta_i, meta_j[p0:p0 + P], rows_i, cols, a,
                                            b, ma, mb, ii, jj, grid, band, nfft, L, lags, fs)
                continue
            out = self._cross_buffer(a.shape[0], n_src, b.shape[2])
            t0 = time.perf_counter()
            cross = tile_cross_spectra(a[:, :n_src], b, out=out)
            t1 = time.perf_counter()
            self.stats["flops"] += 8 * a.shape[0] * n_src * b.shape[2] * a.shape[2]
            del b
            counts = (ma[:n_src] @ mb.T)[ii, jj].round().astype(np.int64)
            sec["cross_spectra"] += t1 - t0
            # one output item per out_pairs pairs: the lags of a whole panel are not held at once
            for part, q0 in enumerate(range(0, len(ii), step)):
                pi, pj = ii[q0:q0 + step], jj[q0:q0 + step]
                t1 = time.perf_counter()
                ccf = pairs_to_lags(cross, pi, pj, band, nfft, L, workers=self.fft_workers)
                sec["inverse_fft"] += time.perf_counter() - t1
                self.stats["pairs"] += len(pi)
                src = [self.stations[rows_i[i]] for i in pi]
                rcv = [self.stations[cols[j]] for j in pj]
                self.write("output", {
                    "tile": (bi, bj), "panel": (p0 // P, part), "chunk": chunk, "component": comp,
                    "chunk_pairs": n_pairs,
                    "keys": [f"{s}|{r}|{comp}" for s, r in zip(src, rcv)], "source": src,
                    "receiver": rcv, "source_id": [meta_i[i]["seed_id"] for i in pi],
                    "receiver_id": [meta_j[p0 + j]["seed_id"] for j in pj],
                    "ccf_sum": ccf, "n_windows": counts[q0:q0 + step], "lags": lags,
                    "sampling_rate": fs,
                })
                del ccf
                yield  # the stack and the writer take this item before the next is made
            del cross

    def _cross_buffer(self, n_band, n_i, n_j):
        """A ``(n_band, n_i, n_j)`` complex64 view of one buffer kept for the whole run: a
        fresh 1.4 GB array per panel spent a third of the product's time in page faults."""
        need = n_band * n_i * n_j
        if self._cross is None or self._cross.size < need:
            self._cross = None
            cap = n_band * self.plan.block_size * self.plan.panel_size
            t0 = time.perf_counter()
            self._cross = np.empty(max(need, cap), dtype=np.complex64)
            # fault the pages in here, once, not inside the first product: on a VM whose
            # memory the host backs lazily that took 3 s for 1.35 GB (the product: 0.45 s)
            self._cross.fill(0)
            self.stats["seconds"]["allocate"] += time.perf_counter() - t0
        return self._cross[:need].reshape(n_band, n_i, n_j)

    def _coords(self, key):
        for k in (key, key.rsplit(".", 1)[0]):
            if k in self.coordinates:
                return self.coordinates[k]
        return None

    def _per_window(self, chunk, comp, meta_i, meta_j, rows_i, rows_j, a, b, ma, mb, ii, jj, grid,
                    band, nfft, L, lags, fs):
        for i, j in zip(ii, jj):
            common = np.flatnonzero((ma[i] > 0) & (mb[j] > 0))
            ccfs = tile_window_ccfs(a, b, i, j, common, band, nfft, L)
            s, r = self.stations[rows_i[i]], self.stations[rows_j[j]]
            ca, cb = self._coords(s), self._coords(r)
            geom = None if ca is None or cb is None else pair_geometry(ca[0], ca[1], cb[0], cb[1])
            self.write("output", {
                "key": f"{s}|{r}|{comp}", "source": s, "receiver": r, "component": comp,
                "source_id": meta_i[i]["seed_id"], "receiver_id": meta_j[j]["seed_id"],
                "chunk": chunk, "ccfs": ccfs, "starttimes": grid[common] / fs, "lags": lags,
                "sampling_rate": fs,
                "distance_km": None if geom is None else geom.distance_km,
                "azimuth": None if geom is None else geom.azimuth,
                "back_azimuth": None if geom is None else geom.back_azimuth,
            })
            yield


class TileStackPE(GenericPE):
    """Linear stacks of the tile sums over chunks: ``sum(ccf_sum) / sum(n_windows)`` per pair.

    The running sums are kept by pair key (``"NET.STA.LOC|NET.STA.LOC|COMP"``), never by
    the item or part a pair arrived in: with a station missing from one chunk, the pairs of
    a panel fill its items differently from chunk to chunk, and every chunk's windows of a
    pair must add into the one sum.

    Parameters
    ----------
    params : CorrelationParams
    n_chunks : int, optional
        Chunks per tile; a tile is stacked and written as soon as all its chunks are
        complete (an item's ``chunk_pairs`` says how many pairs the tile-chunk has in all;
        ``n_chunks=1`` and ``batched``: no state at all). Otherwise, and for tiles of a
        chunk that never came, at the end. Holds one float64 sum per pair of the tiles in
        progress (``n_pairs * n_lags * 8`` bytes).
    batched : bool
        Output items of at most ``out_pairs`` pairs of one tile and component (default)
        or one :class:`pes.stack.StackPE`-style item per pair.
    out_pairs : int
        Most pairs per batched output item (:attr:`noisecorr.tiles.plan.TilePlan.out_pairs`).
    span_starts : list of float, optional
        ``keep: chunks`` (linear): the start (POSIX s) of every chunk of the run. Each pair
        then also keeps its chunks' sums (``n_chunks * n_lags * 8`` bytes a pair, only for
        pairs ``selection`` keeps) and is output per pair with one sub-stack per chunk,
        a chunk without windows as a gap (count 0, zero row), as :class:`pes.stack.StackPE`.
    selection : noisecorr.results.series.ChunkSelection, optional
    coordinates : dict, optional
        ``{station: (lat, lon)}`` for a ``selection`` by distance.

    Raises
    ------
    ValueError
        A tile-chunk brings more pairs than its ``chunk_pairs``, or a pair twice (naming
        the pair), or an item after its tile-chunk was complete.
    """

    def __init__(self, params: CorrelationParams, n_chunks: int | None = None, batched: bool = True,
                 out_pairs: int = OUT_PAIRS, name: str | None = None, span_starts=None,
                 selection=None, coordinates=None):
        super().__init__()
        if name:
            self.name = name
        self.span_starts = None if span_starts is None else [float(t) for t in span_starts]
        if self.span_starts is not None:
            if not params.substack or params.stack_method != "linear":
                raise ValueError("TileStackPE: span_starts (keep: chunks) needs a linear stack with "
                                 "substack on the chunk grid")
            batched = False  # per-pair items carry the chunk rows
        self.selection = selection
        self.coordinates = dict(coordinates or {})
        self._add_input("input", grouping=["tile"])
        self._add_output("output")
        self.params = params
        self.n_chunks = n_chunks
        self.batched = batched
        if int(out_pairs) < 1:
            raise ValueError(f"out_pairs must be >= 1, got {out_pairs}")
        self.out_pairs = int(out_pairs)
        self.state = {}  # (tile, component) -> running sums and chunk bookkeeping

    def process(self, inputs):
        item = inputs["input"]
        tile, comp, chunk = tuple(item["tile"]), item["component"], item["chunk"]
        if self.n_chunks == 1 and self.batched and self.span_starts is None:  # no state, no copies
            if len(item["keys"]):
                self._emit_one(item)
            return
        key = (tile, comp)
        st = self.state.get(key)
        if st is None:
            st = self.state[key] = {"ref": None, "pairs": {}, "got": {}, "done": set(),
                                    "seen": {}}
        if chunk in st["done"]:
            raise ValueError(f"tile {tile} {comp}: an item of chunk {chunk} arrived after that "
                             "chunk of the tile was complete")
        if len(item["keys"]) and st["ref"] is None:
            st["ref"] = item
        pairs, seen = st["pairs"], st["seen"].setdefault(chunk, set())
        for k, src, rcv, sid, rid, row, n in zip(item["keys"], item["source"], item["receiver"],
                                                 item["source_id"], item["receiver_id"],
                                                 item["ccf_sum"], item["n_windows"]):
            if k in seen:
                raise ValueError(f"pair {k}: chunk {chunk} of tile {tile} brought it twice")
            seen.add(k)
            acc = pairs.get(k)
            if self.span_starts is not None:
                if acc is None:
                    acc = pairs[k] = [src, rcv, sid, rid, np.zeros(len(row), np.float64), 0,
                                      {} if self._keeps(src, rcv, comp) else None]
                np.add(acc[4], row, out=acc[4])
                acc[5] += int(n)
                if acc[6] is not None and int(n):
                    acc[6][float(chunk)] = (np.asarray(row, np.float64) / int(n), int(n))
                continue
            if acc is None:
                pairs[k] = [src, rcv, sid, rid, row if self.n_chunks == 1 else row.astype(np.float64),
                            int(n)]
                continue
            if self.n_chunks != 1:  # our float64 copy
                np.add(acc[4], row, out=acc[4])
            else:  # the row as received: never add into it
                acc[4] = acc[4] + np.asarray(row, np.float64)
            acc[5] += int(n)
        got = st["got"][chunk] = st["got"].get(chunk, 0) + len(item["keys"])
        expect = item.get("chunk_pairs")
        if expect is None:  # no count: the tile waits for the end
            return
        if got > expect:
            raise ValueError(f"tile {tile} {comp}: chunk {chunk} brought {got} pairs, more than "
                             f"the {expect} announced")
        if got == expect:
            st["done"].add(chunk)
            del st["got"][chunk], st["seen"][chunk]
            if self.n_chunks is not None and len(st["done"]) >= self.n_chunks:
                self._flush(key)

    def postprocess(self):
        for key in sorted(self.state):
            self._flush(key)

    def _emit_one(self, item):
        n = np.asarray(item["n_windows"], dtype=np.int64)
        stack = np.zeros_like(item["ccf_sum"], dtype=np.float32)
        np.divide(item["ccf_sum"], n[:, None].astype(np.float32), out=stack, where=n[:, None] > 0)
        self.write("output", {
            "tile": tuple(item["tile"]), "component": item["component"], "keys": list(item["keys"]),
            "source": list(item["source"]), "receiver": list(item["receiver"]),
            "source_id": list(item["source_id"]), "receiver_id": list(item["receiver_id"]),
            "lags": item["lags"], "stack": stack, "n_windows": n,
            "stack_method": self.params.stack_method, "sampling_rate": item["sampling_rate"],
            "params": self.params.to_dict()})

    def _flush(self, key):
        st = self.state.pop(key)
        ref, p = st["ref"], self.params
        if ref is None:  # every chunk of the tile came without pairs
            return
        tile, comp = key
        keys = sorted(st["pairs"])
        for q0 in range(0, len(keys), self.out_pairs if self.batched else len(keys)):
            part = keys[q0:q0 + self.out_pairs] if self.batched else keys
            rows = [st["pairs"].pop(k) for k in part]
            n = np.array([r[5] for r in rows], dtype=np.int64)
            stack = np.zeros((len(rows), len(ref["lags"])), dtype=np.float32)
            for k, r in enumerate(rows):
                if r[5]:
                    stack[k] = r[4] / r[5]
            if self.batched:
                self.write("output", {
                    "tile": tile, "component": comp, "keys": part,
                    "source": [r[0] for r in rows], "receiver": [r[1] for r in rows],
                    "source_id": [r[2] for r in rows], "receiver_id": [r[3] for r in rows],
                    "lags": ref["lags"], "stack": stack, "n_windows": n,
                    "stack_method": p.stack_method, "sampling_rate": ref["sampling_rate"],
                    "params": p.to_dict()})
                continue
            for k, r, s, c in zip(part, rows, stack, n):
                if self.span_starts is not None:
                    self.write("output", self._with_chunks(k, r, s, int(c), comp, ref))
                    continue
                self.write("output", {
                    "key": k, "source": r[0], "receiver": r[1], "component": comp,
                    "source_id": r[2], "receiver_id": r[3], "lags": ref["lags"],
                    "sampling_rate": ref["sampling_rate"], "distance_km": None, "azimuth": None,
                    "back_azimuth": None, "stack": s, "n_windows": int(c),
                    "stack_method": p.stack_method, "params": p.to_dict(), "substacks": None,
                    "substack_starts": None, "substack_counts": None})


    def _keeps(self, src, rcv, comp) -> bool:
        sel = self.selection
        if sel is None or sel.everything:
            return True
        dist = None
        if sel.distance_km is not None:
            a, b = (self._coords(x) for x in (src, rcv))
            if a is not None and b is not None:
                from noisecorr.signal.geodesy import pair_geometry

                dist = pair_geometry(a[0], a[1], b[0], b[1]).distance_km
        return sel.keeps(src, rcv, comp, dist)

    def _coords(self, key):
        for k in (key, key.rstrip("."), ".".join(key.split(".")[:2])):
            if k in self.coordinates:
                return self.coordinates[k]
        return None

    def _with_chunks(self, k, r, stack, n, comp, ref) -> dict:
        """A :class:`pes.stack.StackPE`-style item of pair ``k`` with its chunk rows."""
        p = self.params
        out = {"key": k, "source": r[0], "receiver": r[1], "component": comp,
               "source_id": r[2], "receiver_id": r[3], "lags": ref["lags"],
               "sampling_rate": ref["sampling_rate"], "distance_km": None, "azimuth": None,
               "back_azimuth": None, "stack": stack, "n_windows": n,
               "stack_method": p.stack_method, "params": p.to_dict(), "substacks": None,
               "substack_starts": None, "substack_counts": None, "substack_len": None,
               "substack_origin": None, "substack_linear": None, "substack_phasor": None}
        chunks = r[6]
        if chunks is None:  # keep_chunks left this pair out: its full stack only
            return out
        extra = sorted(set(chunks) - set(self.span_starts))
        if extra:
            raise ValueError(f"{k}: chunks {extra} are not chunks of the run")
        nlag = len(ref["lags"])
        rows = np.zeros((len(self.span_starts), nlag), np.float32)
        counts = np.zeros(len(self.span_starts), np.int64)
        for i, t in enumerate(self.span_starts):
            if t in chunks:
                rows[i], counts[i] = chunks[t]
        out.update(substacks=rows, substack_starts=np.asarray(self.span_starts), substack_counts=counts,
                   substack_len=p.substack_len,
                   substack_origin=p.substack_origin or "1970-01-01T00:00:00.000000Z")
        return out


class TiledCorrelation(CompositePE):
    """``TileRoutePE -> TileCorrelatePE -> TileStackPE`` as one composite PE.

    Input ``input``: :class:`pes.normalise.WhitenPE` items; optional input ``absent``:
    channel-chunks without data (see :class:`TileRoutePE`); output ``output``:
    :class:`TileStackPE` items (linear stack) or :class:`pes.stack.StackPE` items
    (pws/robust/sub-stacks, through the per-window tiled path and ``StackPE``).

    Parameters
    ----------
    params : CorrelationParams
    stations : list of str
    plan : TilePlan
    n_chunks : int, optional
        See :class:`TileStackPE`.
    batched : bool
    blas_threads : int, optional
    coordinates : dict, optional
    scratch, channels : optional
        See :class:`TileCorrelatePE`.
    span_starts, selection : optional
        ``keep: chunks``: see :class:`pes.stack.StackPE`.
    """

    def __init__(self, params: CorrelationParams, stations, plan: TilePlan, n_chunks=None,
                 batched: bool = True, blas_threads=None, coordinates=None, scratch=None,
                 channels=None, name=None, span_starts=None, selection=None):
        super().__init__(name=name or "TiledCorrelation")
        route = TileRoutePE(params, stations, plan)
        corr = TileCorrelatePE(params, stations, plan, blas_threads=blas_threads,
                               coordinates=coordinates, scratch=scratch, channels=channels)
        if params.stack_method == "linear" and span_starts is not None:  # keep: chunks, fast path
            corr.chunk_sums = True
            stack = TileStackPE(params, n_chunks=n_chunks, batched=batched, out_pairs=plan.out_pairs,
                                span_starts=span_starts, selection=selection, coordinates=coordinates)
        elif params.stack_method == "linear" and not params.substack:
            stack = TileStackPE(params, n_chunks=n_chunks, batched=batched, out_pairs=plan.out_pairs)
        else:
            from pes.stack import StackPE

            stack = StackPE(params, span_starts=span_starts, selection=selection)
        self.connect(route, "output", corr, "input")
        self.connect(corr, "output", stack, "input")
        self._map_input("input", route, "input")
        self._map_input("absent", route, "absent")
        self._map_output("output", stack, "output")
        logging.getLogger(__name__).info(
            "tiled correlation: %d stations, block %d, panel %d, %d tiles over %d workers, "
            "factors in %s, predicted peak %s per worker", plan.n_stations, plan.block_size,
            plan.panel_size, len(plan.tiles), plan.workers, plan.store, format_bytes(plan.peak_bytes))
