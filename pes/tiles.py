"""Block-tiled correlation PEs: route station spectra to tiles, correlate tiles, stack.

Thin over :mod:`noisecorr.tiles` (planning and the BLAS-3 kernel). The stage replaces
``CrossCorrelatePE -> StackPE`` for many stations::

    ... -> WhitenPE -> TileRoutePE -> TileCorrelatePE -> TileStackPE -> WriteResultsPE

Items
-----
TileRoutePE input : dict
    :class:`pes.normalise.WhitenPE` output (``seed_id``, ``chunk``, ``spectra``,
    ``starttimes``, ``sampling_rate``, ``nfft``). A station without windows in a chunk
    should still send an item (``spectra`` of shape ``(0, n_freq)``) so its tiles complete
    early; otherwise they complete when the upstream finishes.
    An item may instead carry the factors already (``"rcv"`` ``(n_windows, n_band)``,
    ``"src"``, ``"band"``), e.g. read back from a spectra store.
TileRoutePE output / TileCorrelatePE input : dict (grouped by ``"slot"``)
    ``{"slot", "worker", "chunk", "station" (index in the sorted station list), "channel"
    (last letter of the seed id), "seed_id", "starttimes", "rcv" (n_band, n_windows)
    complex64 frequency-major, "src" (deconv only, else None), "band" (start, stop), "nfft",
    "sampling_rate"}``: one copy per *worker* owning a tile with the station's block (not
    one per pair, nor per tile), in-band bins only.
TileCorrelatePE output : dict, one per tile, receiver panel, chunk and component, at most
    :data:`noisecorr.tiles.plan.OUT_PAIRS` pairs each (linear stack)
    ``{"tile": (I, J), "panel": (panel, part), "chunk", "component", "keys", "source", "receiver", "source_id",
    "receiver_id" (lists, one entry per pair), "ccf_sum" (n_pairs, 2L+1) float32 (sum over
    the pair's common windows of the per-window correlations), "n_windows" (n_pairs,) int64,
    "lags" (s), "sampling_rate"}``. For ``stack_method`` pws/robust or sub-stacks it emits
    instead :class:`pes.correlate.CrossCorrelatePE` items (per pair, per-window ``ccfs``)
    for :class:`pes.stack.StackPE`.
TileStackPE output : dict
    ``batched=True``: per tile, receiver panel and component ``{"tile", "component", "keys", "source",
    "receiver", "source_id", "receiver_id", "lags", "stack" (n_pairs, 2L+1) float32 (mean),
    "n_windows" (n_pairs,), "stack_method", "sampling_rate", "params"}``;
    ``batched=False``: one :class:`pes.stack.StackPE`-style dict per pair.

Memory: a ``TileCorrelatePE`` instance keeps the factors it receives in a
:class:`noisecorr.tiles.store.FactorStore`, in memory or (``plan.store == "disk"``) in an
unlinked scratch file, and computes a tile as its source block times receiver panels of
``plan.panel_size`` stations, so its memory is what :func:`noisecorr.tiles.plan_tiles`
predicted.

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
    """

    def __init__(self, params: CorrelationParams, stations, plan: TilePlan, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        _check_tiled(params)
        self._add_input("input")
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

    def process(self, inputs):
        item = inputs["input"]
        sid = item["seed_id"]
        channel = sid[-1].upper()
        if channel not in self.wanted:
            return
        try:
            st = self.index[station_key(sid)]
        except KeyError:
            raise ValueError(f"{sid}: station {station_key(sid)} is not in the tile plan's "
                             f"station list ({len(self.stations)} stations)") from None
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
    for the chunk (or when the upstream has finished: stations that never sent anything
    are left out, as in :class:`pes.correlate.CrossCorrelatePE`), as the source block
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

    Output ``stats`` (one item per instance at the end, for benchmarks and logs):
    ``{"instance", "tiles", "panels", "pairs", "seconds": {"allocate", "assemble",
    "cross_spectra", "inverse_fft"}, "flops", "store", "spilled_bytes", "read_bytes"}``
    (``flops``: 8 real operations per complex multiply-add of the products; ``allocate``:
    faulting in the cross-spectra buffer, once; ``assemble`` includes reading factors back
    from a disk store).
    """

    concurrent_inputs = True

    def __init__(self, params: CorrelationParams, stations, plan: TilePlan,
                 blas_threads: int | None = None, coordinates=None, fft_workers: int | None = None,
                 scratch=None, name: str | None = None):
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
                      "spilled_bytes": 0, "read_bytes": 0,
                      "seconds": {"allocate": 0.0, "assemble": 0.0, "cross_spectra": 0.0,
                                  "inverse_fft": 0.0}}
        self.params = params
        self.stations = sorted({station_key(s) if s.count(".") == 3 else s for s in stations})
        self.plan = plan
        self.numprocesses = plan.workers
        self.blas_threads = blas_threads
        self.coordinates = dict(coordinates or {})
        self.wanted = _channels(params)
        self.state = {}
        self._ready = []  # (chunk, worker, tile) waiting for the driver, in order
        self._cross = None  # the cross-spectra buffer (see _cross_buffer)
        self._driving = False
        self._limiter = None

    @property
    def per_window(self) -> bool:
        return self.params.stack_method != "linear" or self.params.substack

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
            st = self.state[key] = {"meta": {}, "store": store, "done_blocks": {},
                                    "pending": set(mine), "queued": set(), "refs": refs}
        return st

    def process(self, inputs):
        """Store the station's factors; queue the tiles it completes.

        Tiles are computed by one generator (:meth:`_drive`) that the run loop resumes after
        each output item, so the stacks and the writer take each batch of pairs before the
        next is computed (a tile's lags are never all in memory), and, with
        ``concurrent_inputs``, arriving spectra keep going to the store meanwhile instead of
        waiting in memory for the tile to finish."""
        item = inputs["input"]
        st = self._chunk_state(item["chunk"], item["worker"])
        k = (item["station"], item["channel"])
        if k in st["meta"]:
            raise ValueError(f"{item['seed_id']}: spectra of chunk {item['chunk']} received twice")
        st["store"].put(k + ("rcv",), item["rcv"])
        if item.get("src") is not None:
            st["store"].put(k + ("src",), item["src"])
        st["meta"][k] = {x: item[x] for x in ("seed_id", "starttimes", "band", "nfft", "sampling_rate")}
        st["meta"][k]["src"] = item.get("src") is not None
        if not all((item["station"], c) in st["meta"] for c in self.wanted):
            return None
        b = self.plan.block_of(item["station"])
        st["done_blocks"][b] = st["done_blocks"].get(b, 0) + 1
        size = len(block_range(b, self.plan.block_size, self.plan.n_stations))
        if st["done_blocks"][b] < size:
            return None
        ready = sorted(t for t in st["pending"] - st["queued"] if b in t and all(
            st["done_blocks"].get(x, 0) == len(block_range(x, self.plan.block_size,
                                                           self.plan.n_stations)) for x in t))
        for t in ready:
            st["queued"].add(t)
            self._ready.append((item["chunk"], item["worker"], t))
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
        store = st["store"]
        self.stats["spilled_bytes"] += store.bytes_written
        self.stats["read_bytes"] += store.bytes_read
        store.close()

    def postprocess(self):
        # tiles whose stations never all arrived: computed with what came
        for (chunk, worker) in sorted(self.state, key=lambda k: (str(k[0]), k[1])):
            st = self.state[(chunk, worker)]
            for t in sorted(st["pending"] - st["queued"]):
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
        present = [m for m in meta_i + meta_j if m is not None]
        if not any(m is not None for m in meta_i) or not any(m is not None for m in meta_j):
            return
        ref = present[0]
        fs, nfft, band = ref["sampling_rate"], ref["nfft"], slice(*ref["band"])
        nb = band.stop - band.start
        grid = window_grid([m["starttimes"] for m in present], fs)
        diagonal = bi == bj
        a, ma = self._block(st, rows_i, comp[0], grid, fs, nb, source=True)
        have_i = np.array([m is not None for m in meta_i], bool)
        L = p.maxlag_samples
        lags = lag_axis(L, fs)
        sec = self.stats["seconds"]
        P = self.plan.panel_size
        for p0 in range(0, len(rows_j), P):
            cols = rows_j[p0:p0 + P]
            have_j = np.array([m is not None for m in meta_j[p0:p0 + P]], bool)
            # a diagonal tile needs source rows i < j only
            n_src = min(len(rows_i), p0 + len(cols)) if diagonal else len(rows_i)
            ii, jj = np.divmod(np.arange(n_src * len(cols)), len(cols))
            keep = have_i[ii] & have_j[jj]
            if diagonal:
                keep &= ii < p0 + jj
            ii, jj = ii[keep], jj[keep]
            if len(ii) == 0:
                continue
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
            # one output item per OUT_PAIRS pairs: the lags of a whole panel are not held at once
            for part, q0 in enumerate(range(0, len(ii), OUT_PAIRS)):
                pi, pj = ii[q0:q0 + OUT_PAIRS], jj[q0:q0 + OUT_PAIRS]
                t1 = time.perf_counter()
                ccf = pairs_to_lags(cross, pi, pj, band, nfft, L, workers=self.fft_workers)
                sec["inverse_fft"] += time.perf_counter() - t1
                self.stats["pairs"] += len(pi)
                src = [self.stations[rows_i[i]] for i in pi]
                rcv = [self.stations[cols[j]] for j in pj]
                self.write("output", {
                    "tile": (bi, bj), "panel": (p0 // P, part), "chunk": chunk, "component": comp,
                    "keys": [f"{s}|{r}|{comp}" for s, r in zip(src, rcv)], "source": src,
                    "receiver": rcv, "source_id": [meta_i[i]["seed_id"] for i in pi],
                    "receiver_id": [meta_j[p0 + j]["seed_id"] for j in pj],
                    "ccf_sum": ccf, "n_windows": counts[q0:q0 + OUT_PAIRS], "lags": lags,
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
    """Linear stacks of the tile sums over chunks: ``sum(ccf_sum) / sum(n_windows)``.

    Parameters
    ----------
    params : CorrelationParams
    n_chunks : int, optional
        Chunks per tile; a tile is stacked and written as soon as all have arrived
        (``n_chunks=1``: no state at all). Otherwise at the end, holding one float64 sum per
        pair (``n_pairs * n_lags * 8`` bytes).
    batched : bool
        One output item per tile and component (default) or one
        :class:`pes.stack.StackPE`-style item per pair.
    """

    def __init__(self, params: CorrelationParams, n_chunks: int | None = None, batched: bool = True,
                 name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self._add_input("input", grouping=["tile"])
        self._add_output("output")
        self.params = params
        self.n_chunks = n_chunks
        self.batched = batched
        self.state = {}

    def process(self, inputs):
        item = inputs["input"]
        if self.n_chunks == 1 and self.batched:  # the whole stack is here: no state, no copies
            self._emit_one(item)
            return
        key = (tuple(item["tile"]), tuple(item.get("panel", (0, 0))), item["component"])
        st = self.state.get(key)
        if st is None:
            st = self.state[key] = {"item": item, "pairs": {}, "chunks": 0}
        st["chunks"] += 1
        pairs = st["pairs"]
        for k, src, rcv, sid, rid, row, n in zip(item["keys"], item["source"], item["receiver"],
                                                 item["source_id"], item["receiver_id"],
                                                 item["ccf_sum"], item["n_windows"]):
            if self.n_chunks == 1:
                pairs[k] = [src, rcv, sid, rid, row, int(n)]
            elif k in pairs:
                pairs[k][4] = pairs[k][4] + row
                pairs[k][5] += int(n)
            else:
                pairs[k] = [src, rcv, sid, rid, row.astype(np.float64), int(n)]
        if self.n_chunks is not None and st["chunks"] >= self.n_chunks:
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
        ref, p = st["item"], self.params
        keys = sorted(st["pairs"])
        rows = [st["pairs"][k] for k in keys]
        n = np.array([r[5] for r in rows], dtype=np.int64)
        stack = np.zeros((len(rows), len(ref["lags"])), dtype=np.float32)
        for k, r in enumerate(rows):
            if r[5]:
                stack[k] = r[4] / r[5]
        if self.batched:
            self.write("output", {
                "tile": key[0], "component": key[2], "keys": keys,
                "source": [r[0] for r in rows], "receiver": [r[1] for r in rows],
                "source_id": [r[2] for r in rows], "receiver_id": [r[3] for r in rows],
                "lags": ref["lags"], "stack": stack, "n_windows": n, "stack_method": p.stack_method,
                "sampling_rate": ref["sampling_rate"], "params": p.to_dict()})
            return
        for k, r, s, c in zip(keys, rows, stack, n):
            self.write("output", {
                "key": k, "source": r[0], "receiver": r[1], "component": key[2],
                "source_id": r[2], "receiver_id": r[3], "lags": ref["lags"],
                "sampling_rate": ref["sampling_rate"], "distance_km": None, "azimuth": None,
                "back_azimuth": None, "stack": s, "n_windows": int(c),
                "stack_method": p.stack_method, "params": p.to_dict(), "substacks": None,
                "substack_starts": None, "substack_counts": None})


class TiledCorrelation(CompositePE):
    """``TileRoutePE -> TileCorrelatePE -> TileStackPE`` as one composite PE.

    Input ``input``: :class:`pes.normalise.WhitenPE` items; output ``output``:
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
    scratch : path, optional
        See :class:`TileCorrelatePE`.
    """

    def __init__(self, params: CorrelationParams, stations, plan: TilePlan, n_chunks=None,
                 batched: bool = True, blas_threads=None, coordinates=None, scratch=None, name=None):
        super().__init__(name=name or "TiledCorrelation")
        route = TileRoutePE(params, stations, plan)
        corr = TileCorrelatePE(params, stations, plan, blas_threads=blas_threads,
                               coordinates=coordinates, scratch=scratch)
        if params.stack_method == "linear" and not params.substack:
            stack = TileStackPE(params, n_chunks=n_chunks, batched=batched)
        else:
            from pes.stack import StackPE

            stack = StackPE(params)
        self.connect(route, "output", corr, "input")
        self.connect(corr, "output", stack, "input")
        self._map_input("input", route, "input")
        self._map_output("output", stack, "output")
        logging.getLogger(__name__).info(
            "tiled correlation: %d stations, block %d, panel %d, %d tiles over %d workers, "
            "factors in %s, predicted peak %s per worker", plan.n_stations, plan.block_size,
            plan.panel_size, len(plan.tiles), plan.workers, plan.store, format_bytes(plan.peak_bytes))
