"""Station-block tiling: blocks, tiles, their owners and the memory they need.

``N`` stations are cut into ``ceil(N / B)`` blocks of ``B`` consecutive stations (the last
block may be partial). A *tile* is a pair of blocks ``(I, J)`` with ``I <= J``; it holds
the station pairs ``(i, j)`` with ``i`` in block ``I``, ``j`` in block ``J`` and ``i < j``
(on a diagonal tile ``I == J`` only the upper triangle). Every pair ``i < j`` lies in
exactly one tile. Tiles are the unit of work: :func:`assign_tiles` deals them to workers
so that every worker gets about the same number of pairs.

Memory model of one worker (bytes, see :func:`predict_peak_bytes`):

* the factor store (:mod:`noisecorr.tiles.store`): with ``store="memory"`` the in-band
  spectral factors of every station of every block that one of the worker's tiles touches,
  ``n_st * n_windows * n_freq_band * 8 * n_factors`` (complex64), kept until the worker's
  last tile with that block is done (a single pass over the stations of a chunk needs them
  all). With ``store="disk"`` they go to an unlinked scratch file and only the tile being
  computed is in memory: memory no longer grows with the number of stations;
* the tile: the source block ``(n_freq_band, B, n_windows)`` complex64 and one receiver
  *panel* of ``P`` stations ``(n_freq_band, P, n_windows)``, the panel's window-summed
  cross-spectra ``(n_freq_band, B, P)`` complex64;
* the inverse FFT of a batch of ``pair_batch`` pairs (full one-sided spectra and
  ``nfft`` real samples) and one output item of at most ``out_pairs`` pairs
  (:data:`OUT_PAIRS` by default, :attr:`TilePlan.out_pairs`),
  ``n_lags`` float32 each, twice (the correlation sums and the stacks made from them);
* with several chunks and a linear stack, the running sums of the worker's pairs
  (``n_pairs * n_lags * 8``) if the stack is kept in memory (``n_chunks > 1``);
* a fixed ``overhead`` for the rest of the worker process: the interpreter and its
  libraries, one station-day through the per-station chain (waveforms to whitened spectra)
  and the transport's buffers (:data:`PROCESS_OVERHEAD`).

Block and panel sizes are chosen for BLAS efficiency first, then memory store before disk
store, then larger. A complex64 product ``(B x W) @ (W x P)`` with ``W`` about 48 windows
(one day of 30-minute windows) reaches, on one core of the 2-core development machine
(OpenBLAS SkylakeX kernels; a 2048^3 product is the reference): about 65 % at 250 x 128,
60 % at 128 x 250, 50 % at 250 x 64 and 48 % at 250 x 32. Hence tier 0 is block >= 96 and
panel >= 96, tier 1 panel >= 32. Each pair of a panel holds ``n_freq_band * 8`` bytes of
cross-spectra (56 kB at 7,021 bins), so the panel is the main use of memory per worker.

Examples
--------
>>> parse_memory("8GB"), parse_memory("1.5 GiB"), parse_memory(4096)
(8000000000, 1610612736, 4096)
>>> p = plan_tiles(1000, 48, 7021, 72000, 8001, "8GB", workers=2, overhead=PROCESS_OVERHEAD)
>>> p.block_size >= 128 and p.peak_bytes <= 4_000_000_000, p.store
(True, 'disk')
>>> plan_tiles(1000, 48, 7021, 72000, 8001, "2GB", workers=2, overhead=PROCESS_OVERHEAD)
Traceback (most recent call last):
...
MemoryError: 1000 stations x 48 windows x 7021 in-band bins need at least ...
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

__all__ = ["parse_memory", "format_bytes", "n_blocks", "block_range", "tiles", "tile_pairs",
           "tile_cost", "assign_tiles", "predict_peak_bytes", "TilePlan", "plan_tiles",
           "PAIR_BATCH", "OUT_PAIRS", "PROCESS_OVERHEAD", "STORES"]

#: Pairs per batched inverse FFT (bounds the irfft buffers, about 50 MB at nfft 72,000).
PAIR_BATCH = 64

#: Default most pairs per output item of a tile worker and of the tile stack (bounds the
#: lags held at once: 131 MB of float32 at 8,001 lags); :attr:`TilePlan.out_pairs`.
#: Nothing downstream may depend on which item a pair travels in: with stations missing
#: from a chunk, a pair's position among the items changes from chunk to chunk.
OUT_PAIRS = 4096

#: Bytes of a worker process besides the tiles: interpreter, numpy/scipy/h5py/obspy, one
#: station-day (24 h at 20 Hz) through preprocessing, windowing and whitening, transport
#: buffers. Measured on the 1,000-station run (about 0.8 GB per rank); see the run's notes.
PROCESS_OVERHEAD = 1_000_000_000

#: Where the worker keeps the station factors it holds (see :mod:`noisecorr.tiles.store`).
STORES = ("memory", "disk")

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}


def parse_memory(value) -> int:
    """Bytes from ``"8GB"``, ``"512 MiB"``, ``"2e9"`` or a number of bytes.

    KB/MB/GB/TB (and K/M/G/T) are powers of 1000, KiB/MiB/GiB/TiB powers of 1024.
    """
    if isinstance(value, bool):
        raise ValueError(f"memory must be a size such as '8GB', got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"memory must be a size such as '8GB' or '512MiB' "
                             f"(units {sorted(set(u.upper() for u in _UNITS if u))}), got {value!r}")
        number, unit = float(m.group(1)), m.group(2).lower()
    out = int(number * _UNITS[unit])
    if out <= 0:
        raise ValueError(f"memory must be positive, got {value!r}")
    return out


def format_bytes(n: float) -> str:
    """``'3.2 GB'`` (powers of 1000)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def n_blocks(n_stations: int, block_size: int) -> int:
    """Number of blocks of ``block_size`` stations (the last one may be partial)."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return -(-int(n_stations) // int(block_size))


def block_range(block: int, block_size: int, n_stations: int) -> range:
    """Station indices of ``block``."""
    return range(block * block_size, min((block + 1) * block_size, n_stations))


def tiles(nb: int) -> list:
    """All tiles ``(I, J)``, ``0 <= I <= J < nb``, row by row."""
    return [(i, j) for i in range(nb) for j in range(i, nb)]


def tile_pairs(tile, block_size: int, n_stations: int) -> list:
    """Station pairs ``(i, j)``, ``i < j``, of a tile, row-major."""
    bi, bj = tile
    ri, rj = block_range(bi, block_size, n_stations), block_range(bj, block_size, n_stations)
    return [(i, j) for i in ri for j in rj if i < j]


def tile_cost(tile, block_size: int, n_stations: int) -> int:
    """Number of station pairs of a tile (the work is proportional to it)."""
    ni = len(block_range(tile[0], block_size, n_stations))
    if tile[0] == tile[1]:
        return ni * (ni - 1) // 2
    return ni * len(block_range(tile[1], block_size, n_stations))


def assign_tiles(tile_list, costs, workers: int) -> list:
    """Owner (worker index) of each tile, balancing the summed cost.

    Longest-processing-time first: tiles by decreasing cost (ties in tile order), each to
    the least loaded worker (ties to the lowest index); deterministic.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    load = [0] * workers
    owner = [0] * len(tile_list)
    for k in sorted(range(len(tile_list)), key=lambda k: (-costs[k], k)):
        w = min(range(workers), key=lambda w: (load[w], w))
        owner[k] = w
        load[w] += costs[k]
    return owner


def predict_peak_bytes(n_resident: int, block_size: int, n_windows: int, n_freq_band: int,
                       nfft: int, n_lags: int, *, n_factors: int = 1, pair_batch: int = PAIR_BATCH,
                       stack_pairs: int = 0, store: str = "memory", panel: int | None = None,
                       overhead: int = 0, out_pairs: int = OUT_PAIRS) -> dict:
    """Bytes one worker needs, by item (see the module docstring); ``"total"`` sums them."""
    if store not in STORES:
        raise ValueError(f"store must be one of {STORES}, got {store!r}")
    b, w, f = int(block_size), int(n_windows), int(n_freq_band)
    p = b if panel is None else min(int(panel), b)
    pb = min(int(pair_batch), b * p)
    station = w * f * 8 * n_factors
    out = {
        # memory: every station the worker's tiles touch; disk: one station read back
        "resident_spectra": n_resident * station if store == "memory" else station,
        "tile_blocks": f * (b + p) * w * 8,  # source block + one receiver panel
        "tile_cross_spectra": f * b * p * 8,
        "inverse_fft": pb * ((nfft // 2 + 1) * 8 + nfft * 8),
        # correlation sums + the stacks made of them, out_pairs pairs at a time
        "tile_output": 2 * min(b * p, int(out_pairs)) * n_lags * 4,
        "stack_sums": stack_pairs * n_lags * 8,
        "overhead": int(overhead),
    }
    out["total"] = sum(out.values())
    return out


@dataclass(frozen=True)
class TilePlan:
    """Blocks, tiles and their owners for ``n_stations`` stations and ``workers`` workers.

    Attributes
    ----------
    n_stations, block_size, n_blocks, workers : int
    tiles : tuple of (I, J)
    owners : tuple of int
        Worker of each tile (:func:`assign_tiles`).
    peak_bytes : int
        Predicted peak of the busiest worker (:func:`predict_peak_bytes`).
    budget_bytes : int or None
    breakdown : dict
        The busiest worker's bytes by item.
    store : str
        ``"memory"`` or ``"disk"``: where a worker keeps the station factors it holds.
    panel_size : int
        Receiver stations per cross-spectral product and output item (``<= block_size``).
    out_pairs : int
        Most pairs per output item of the tile workers and of the tile stack
        (:data:`OUT_PAIRS` by default).
    """

    n_stations: int
    block_size: int
    n_blocks: int
    workers: int
    tiles: tuple
    owners: tuple
    peak_bytes: int
    budget_bytes: int | None = None
    breakdown: dict = field(default_factory=dict)
    store: str = "memory"
    panel_size: int = 0
    out_pairs: int = OUT_PAIRS

    def __post_init__(self):
        if not self.panel_size:
            object.__setattr__(self, "panel_size", self.block_size)
        if int(self.out_pairs) < 1:
            raise ValueError(f"out_pairs must be >= 1, got {self.out_pairs}")

    def block_of(self, station: int) -> int:
        return int(station) // self.block_size

    def worker_tiles(self, worker: int) -> list:
        """Tiles owned by ``worker``, in tile order."""
        return [t for t, o in zip(self.tiles, self.owners) if o == worker]

    def workers_of_block(self, block: int) -> list:
        """Workers owning at least one tile that contains ``block`` (sorted)."""
        return sorted({o for t, o in zip(self.tiles, self.owners) if block in t})

    def worker_pairs(self, worker: int) -> int:
        return sum(tile_cost(t, self.block_size, self.n_stations) for t in self.worker_tiles(worker))


def _resident_stations(nst, bs, tile_list, owners, workers):
    touched = [set() for _ in range(workers)]
    for (i, j), o in zip(tile_list, owners):
        touched[o].update((i, j))
    return [sum(len(block_range(b, bs, nst)) for b in t) for t in touched]


@functools.lru_cache(maxsize=256)
def _layout(nst, bs, workers):
    nb = n_blocks(nst, bs)
    tl = tiles(nb)
    costs = [tile_cost(t, bs, nst) for t in tl]
    owners = assign_tiles(tl, costs, workers)
    return nb, tl, owners, costs


def _tier(n_stations, bs, panel):
    """0: near the BLAS peak (block >= 96 and panel >= 96, or all there are); 1: block >= 96
    and panel >= 32; 2: smaller products."""
    if bs >= min(96, n_stations):
        if panel >= min(96, bs):
            return 0
        if panel >= min(32, bs):
            return 1
    return 2


def _balanced(n_stations, bs, workers):
    nb, tl, owners, costs = _layout(n_stations, bs, workers)
    load = [0] * workers
    for c, o in zip(costs, owners):
        load[o] += c
    return min(load) > 0 and max(load) <= 1.1 * sum(load) / workers


def plan_tiles(n_stations: int, n_windows: int, n_freq_band: int, nfft: int, n_lags: int,
               memory_budget=None, workers: int = 1, *, n_factors: int = 1,
               block_size: int | None = None, n_chunks: int = 1,
               max_block: int = 256, store: str | None = None, panel_size: int | None = None,
               overhead: int = 0, out_pairs: int = OUT_PAIRS) -> TilePlan:
    """Choose block size, panel size and factor store, and deal the tiles to workers within
    a memory budget.

    Parameters
    ----------
    n_stations : int
        Channels to correlate (one component: stations).
    n_windows : int
        Windows per station and chunk (``n_windows`` of a full chunk).
    n_freq_band : int
        Spectral bins that travel (in-band bins, see :func:`noisecorr.tiles.kernel.carried_band`).
    nfft : int
        FFT length.
    n_lags : int
        ``2 * maxlag_samples + 1``.
    memory_budget : str or int, optional
        Total for all workers (``"8GB"``); each worker gets ``budget / workers``.
        None: no limit (block size ``max_block``, factors in memory).
    workers : int
        Tile workers (``TileCorrelatePE.numprocesses``).
    n_factors : int
        Spectral arrays per station (2 for ``cc_method="deconv"``, else 1).
    block_size : int, optional
        Force a block size (checked against the budget).
    n_chunks : int
        Chunks stacked in memory by a linear stack (``> 1`` adds the running sums).
    max_block : int
        Largest block size considered (panels are at most 128 stations: larger products
        gain little speed for much memory).
    store : {"memory", "disk"}, optional
        Force where workers keep station factors (default: memory when it fits with
        efficient blocks, else disk).
    panel_size : int, optional
        Force the receiver panel size.
    overhead : int
        Bytes per worker outside the tiles (:data:`PROCESS_OVERHEAD` for a workflow run;
        0 counts the correlation stage alone).
    out_pairs : int
        Most pairs per output item (:data:`OUT_PAIRS`; smaller bounds memory further,
        tests use a few to make pairs of one panel travel in several items).

    Returns
    -------
    TilePlan

    Raises
    ------
    MemoryError
        Nothing fits; the message says how much the smallest plan needs.
    """
    nst = int(n_stations)
    if nst < 2:
        raise ValueError(f"need at least 2 stations, got {nst}")
    if store is not None and store not in STORES:
        raise ValueError(f"store must be one of {STORES}, got {store!r}")
    if int(out_pairs) < 1:
        raise ValueError(f"out_pairs must be >= 1, got {out_pairs}")
    budget = None if memory_budget is None else parse_memory(memory_budget)
    per_worker = None if budget is None else budget // workers
    if block_size is not None:
        blocks = [int(block_size)]
    else:
        # blocks that cut the stations evenly (N / 1, N / 2, ...), then small fallbacks
        top = min(nst, int(max_block))
        # (at most 256 blocks: the plan itself stays quick)
        blocks = sorted({b for b in {-(-nst // k) for k in range(1, 65)} | {32, 24, 16, 8, 4, 2, 1}
                         if b <= top and n_blocks(nst, b) <= 256}, reverse=True) or [-(-nst // 256)]
    if block_size is None and workers > 1:
        # every worker gets work, and the busiest at most 10 % more pairs than the mean
        enough = [b for b in blocks if _balanced(nst, b, workers)]
        blocks = enough or blocks[-1:]
    stores = [store] if store else list(STORES)
    options = []
    for bs in blocks:
        panels = ([min(int(panel_size), bs)] if panel_size else
                  sorted({min(bs, 128), *[q for q in (96, 64, 32, 16, 8, 4, 2, 1) if q < bs]}, reverse=True))
        for pn in panels:
            for where in stores:
                tier = _tier(nst, bs, pn)
                if tier < 2:
                    key = (tier, 0, STORES.index(where), -bs, -pn)
                else:  # small products: the larger the product, the better BLAS does
                    key = (tier, -min(bs * pn, 96 * 32), STORES.index(where), -bs, -pn)
                options.append((key, where, bs, pn))
    options.sort()
    layouts = {}
    best = None
    for _, where, bs, pn in options:
        if bs not in layouts:
            nb, tl, owners, costs = _layout(nst, bs, workers)
            layouts[bs] = (nb, tl, owners, costs, _resident_stations(nst, bs, tl, owners, workers))
        nb, tl, owners, costs, resident = layouts[bs]
        worst = None
        for w in range(workers):
            pairs = sum(c for c, o in zip(costs, owners) if o == w) if n_chunks > 1 else 0
            d = predict_peak_bytes(resident[w], bs, n_windows, n_freq_band, nfft, n_lags,
                                   n_factors=n_factors, stack_pairs=pairs, store=where, panel=pn,
                                   overhead=overhead, out_pairs=out_pairs)
            if worst is None or d["total"] > worst["total"]:
                worst = d
        plan = TilePlan(nst, bs, nb, workers, tuple(tl), tuple(owners), worst["total"], budget,
                        worst, where, pn, int(out_pairs))
        if per_worker is None or worst["total"] <= per_worker:
            return plan
        best = plan if best is None or plan.peak_bytes < best.peak_bytes else best
    d = best.breakdown
    raise MemoryError(
        f"{nst} stations x {n_windows} windows x {n_freq_band} in-band bins need at least "
        f"{format_bytes(best.peak_bytes)} per worker (block size {best.block_size}, panel "
        f"{best.panel_size}, factors on {best.store}: resident spectra "
        f"{format_bytes(d['resident_spectra'])}, tile "
        f"{format_bytes(d['tile_blocks'] + d['tile_cross_spectra'] + d['tile_output'])}, "
        f"inverse FFT {format_bytes(d['inverse_fft'])}, stack sums {format_bytes(d['stack_sums'])}, "
        f"process {format_bytes(d['overhead'])})"
        f", i.e. about {format_bytes(best.peak_bytes * workers)} for {workers} worker(s); the "
        f"budget is {format_bytes(budget)}. Give more memory, shorter chunks (fewer windows "
        f"per chunk), a narrower band or fewer stations per run.")
