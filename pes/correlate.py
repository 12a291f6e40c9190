"""Cross-correlate every station pair of each time chunk.

Thin over :func:`noisecorr.signal.chain.correlate_pair` and
:func:`noisecorr.signal.components.rotate_to_rtz`.

Items
-----
input : dict (grouped by ``"chunk"``)
    :class:`pes.normalise.WhitenPE` output: ``seed_id``, ``chunk``, ``spectra``,
    ``starttimes``, ``sampling_rate``, ``nfft``.
output : dict
    ``{"key": "NETA.STAA.LOCA|NETB.STAB.LOCB|ZZ", "source", "receiver", "component",
    "source_id", "receiver_id", "chunk", "ccfs" (n_windows, 2L+1) float32,
    "starttimes", "lags" (s), "sampling_rate", "distance_km", "azimuth",
    "back_azimuth"}`` (geometry None when no coordinates are known).

This PE holds all spectra of a chunk until the chunk is complete (``n_channels``
items) or the upstream has finished; the block-tiled BLAS-3 path is the scalable
alternative for thousands of stations.
"""

from __future__ import annotations

import logging
from functools import reduce

import numpy as np
from obspy import UTCDateTime

from noisecorr.engine import GenericPE
from noisecorr.signal.chain import StationSpectra, cc_band_weights, correlate_pair, whitened_band
from noisecorr.signal.correlate import correlate_block
from noisecorr.signal.components import ENZ, ENZ_PAIRS, RTZ, rotate_to_rtz
from noisecorr.signal.geodesy import pair_geometry
from noisecorr.signal.params import CorrelationParams

__all__ = ["CrossCorrelatePE", "net_sta", "station_key"]


def station_key(seed_id: str) -> str:
    """``NET.STA.LOC`` of a seed id."""
    return seed_id.rsplit(".", 1)[0]


def net_sta(key: str) -> str:
    """``NET.STA`` of a ``NET.STA.LOC`` key or seed id (the results file's station code)."""
    return ".".join(key.split(".")[:2])


def _spectra(item, rows=None) -> StationSpectra:
    spec, t = item["spectra"], item["starttimes"]
    if rows is not None:
        spec, t = spec[rows], t[rows]
    return StationSpectra(item["seed_id"], t, spec, item["sampling_rate"], item["nfft"])


class CrossCorrelatePE(GenericPE):
    """Per-window correlations of all station pairs (source < receiver by station key).

    Parameters
    ----------
    params : CorrelationParams
        ``components``, ``cc_method``, ``maxlag``, ``smoothspect_N``,
        ``spectral_water_level`` are used.
    inventory : obspy.Inventory, optional
        Station coordinates for distance/azimuth (needed for RTZ components).
    coordinates : dict, optional
        ``{"NET.STA.LOC" or "NET.STA": (latitude, longitude)}``; overrides ``inventory``.
    n_channels : int, optional
        Number of channels per chunk; a chunk is correlated as soon as it is complete
        (otherwise when the upstream has finished).
    include_autocorrelation : bool
        Also correlate each station with itself.
    """

    def __init__(self, params: CorrelationParams, inventory=None, coordinates=None,
                 n_channels: int | None = None, include_autocorrelation: bool = False,
                 name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self._add_input("input", grouping=["chunk"])
        self._add_output("output")
        self.params = params
        self.inventory = inventory
        self.coordinates = dict(coordinates or {})
        self.n_channels = n_channels
        self.include_autocorrelation = include_autocorrelation
        self.pending = {}

    def process(self, inputs):
        item = inputs["input"]
        chunk = self.pending.setdefault(item["chunk"], {})
        if item["seed_id"] in chunk:
            raise ValueError(f"{item['seed_id']}: spectra of chunk {item['chunk']} received twice")
        chunk[item["seed_id"]] = item
        if self.n_channels is not None and len(chunk) >= self.n_channels:
            self._flush(item["chunk"])

    # Provenance: a pair's correlations derive from the two channels' spectra of that chunk
    # (RTZ components, rotated from all three channels, from both stations' channels).
    def provenance_input_keys(self, port, item):
        return ((item["chunk"], item["seed_id"]), (item["chunk"], station_key(item["seed_id"])))

    def provenance_output_keys(self, port, item):
        if item["component"] in ENZ_PAIRS:
            return ((item["chunk"], item["source_id"]), (item["chunk"], item["receiver_id"]))
        return ((item["chunk"], item["source"]), (item["chunk"], item["receiver"]))

    def postprocess(self):
        for chunk in sorted(self.pending):
            self._flush(chunk)

    # ------------------------------------------------------------------ helpers
    def _coords(self, key: str, seed_id: str, chunk: float):
        for k in (key, key.rsplit(".", 1)[0]):
            if k in self.coordinates:
                return self.coordinates[k]
        if self.inventory is not None:
            try:
                c = self.inventory.get_coordinates(seed_id, UTCDateTime(chunk))
            except Exception as err:  # ObsPy raises a bare Exception when nothing matches
                # a channel rotated to E/N (from 1/2, pes.preprocess.OrientPE) is not in the
                # StationXML under its new name: its station's coordinates are
                net, sta = seed_id.split(".")[:2]
                stations = [s for n in self.inventory.select(network=net, station=sta, time=UTCDateTime(chunk))
                            for s in n]
                if stations:
                    return stations[0].latitude, stations[0].longitude
                self.log("no coordinates for %s: %s", seed_id, err, level=logging.DEBUG)
                return None
            return c["latitude"], c["longitude"]
        return None

    def _geometry(self, a, b, sid_a, sid_b, chunk):
        ca, cb = self._coords(a, sid_a, chunk), self._coords(b, sid_b, chunk)
        if ca is None or cb is None:
            return None
        return pair_geometry(ca[0], ca[1], cb[0], cb[1])

    #: Station pairs whose ENZ components are correlated together (one batched multiply +
    #: inverse FFT over all their windows, :func:`noisecorr.signal.correlate.correlate_block`).
    pair_block = 16

    def _flush(self, chunk):
        items = self.pending.pop(chunk)
        stations = {}
        for sid, item in items.items():
            stations.setdefault(station_key(sid), {})[sid[-1].upper()] = item
        keys = sorted(stations)
        pairs = [(a, b) for i, a in enumerate(keys)
                 for b in keys[i if self.include_autocorrelation else i + 1:]]
        for q0 in range(0, len(pairs), self.pair_block):
            block = pairs[q0:q0 + self.pair_block]
            done = self._correlate_block(block, stations)
            for a, b in block:
                self._correlate_station_pair(chunk, a, b, stations[a], stations[b], done)

    def _correlate_block(self, block, stations) -> dict:
        """``{(a, b, comp): (ccfs, starttimes, lags)}`` of the ENZ components of the pairs of
        ``block`` whose two channels have the same windows (the usual case), correlated
        together; the others are left to :func:`correlate_pair` (windows in common only)."""
        p = self.params
        out = {}
        for comp in p.components:
            if comp not in ENZ_PAIRS:
                continue
            todo, grid = [], None
            for a, b in block:
                src, rcv = stations[a].get(comp[0]), stations[b].get(comp[1])
                if src is None or rcv is None or len(src["starttimes"]) == 0:
                    continue
                t = np.asarray(src["starttimes"])
                if grid is None:
                    grid = t
                if (src["nfft"], src["sampling_rate"]) != (rcv["nfft"], rcv["sampling_rate"]) \
                        or not (np.array_equal(t, grid) and np.array_equal(rcv["starttimes"], grid)):
                    continue
                todo.append((a, b, src, rcv))
            if not todo:
                continue
            nfft = int(todo[0][2]["nfft"])
            specs, index = [], {}
            for _, _, src, rcv in todo:
                for it in (src, rcv):
                    if it["seed_id"] not in index:
                        index[it["seed_id"]] = len(specs)
                        specs.append(it["spectra"])
            ii = [index[src["seed_id"]] for _, _, src, _ in todo]
            jj = [index[rcv["seed_id"]] for _, _, _, rcv in todo]
            ccfs, lags = correlate_block(specs, specs, nfft, p.sampling_rate, p.maxlag, p.cc_method,
                                         band=whitened_band(p, nfft), smoothspect_N=p.smoothspect_N,
                                         water_level=p.spectral_water_level,
                                         band_weights=cc_band_weights(p, nfft), pairs=(ii, jj))
            for k, (a, b, _, _) in enumerate(todo):
                out[(a, b, comp)] = (ccfs[k], grid, lags)
        return out

    def _emit(self, chunk, a, b, comp, src_id, rcv_id, ccfs, t, lags, geom):
        self.write("output", {
            "key": f"{a}|{b}|{comp}", "source": a, "receiver": b, "component": comp,
            "source_id": src_id, "receiver_id": rcv_id, "chunk": chunk, "ccfs": ccfs,
            "starttimes": t, "lags": lags, "sampling_rate": self.params.sampling_rate,
            "distance_km": None if geom is None else geom.distance_km,
            "azimuth": None if geom is None else geom.azimuth,
            "back_azimuth": None if geom is None else geom.back_azimuth,
        })

    def _correlate_station_pair(self, chunk, a, b, chans_a, chans_b, done=None):
        p = self.params
        any_a, any_b = next(iter(chans_a.values())), next(iter(chans_b.values()))
        geom = self._geometry(a, b, any_a["seed_id"], any_b["seed_id"], chunk)
        rtz_wanted = [c for c in p.components if c not in ENZ_PAIRS]
        for comp in p.components:
            if comp not in ENZ_PAIRS:
                continue
            src, rcv = chans_a.get(comp[0]), chans_b.get(comp[1])
            if src is None or rcv is None:
                self.log("chunk %s: %s-%s has no %s channels; pair component skipped", chunk, a, b,
                         comp, level=logging.INFO)
                continue
            got = (done or {}).get((a, b, comp))
            ccfs, t, lags = got if got is not None else correlate_pair(_spectra(src), _spectra(rcv), p)
            self._emit(chunk, a, b, comp, src["seed_id"], rcv["seed_id"], ccfs, t, lags, geom)
        if not rtz_wanted:
            return
        missing = [f"{s}:{c}" for s, chans in ((a, chans_a), (b, chans_b)) for c in ENZ if c not in chans]
        if missing:
            self.log("chunk %s: %s-%s lacks %s; RTZ components skipped", chunk, a, b, missing,
                     level=logging.INFO)
            return
        if geom is None:
            raise ValueError(f"{a}-{b}: RTZ components need station coordinates (inventory or coordinates)")
        fs = p.sampling_rate
        grids = [np.round(chans[c]["starttimes"] * fs).astype(np.int64)
                 for chans in (chans_a, chans_b) for c in ENZ]
        shared = reduce(np.intersect1d, grids)
        rows = {(side, c): np.searchsorted(g, shared)
                for (side, c), g in zip([(s, c) for s in "ab" for c in ENZ], grids)}
        # the nine ENZ x ENZ correlations on the shared windows as one block, then rotated
        src = [_spectra(chans_a[c], rows[("a", c)]).spectra for c in ENZ]
        rcv = [_spectra(chans_b[c], rows[("b", c)]).spectra for c in ENZ]
        nfft = int(chans_a["Z"]["nfft"])
        ii, jj = np.divmod(np.arange(9), 3)
        ccfs, lags = correlate_block(src + rcv, src + rcv, nfft, p.sampling_rate, p.maxlag, p.cc_method,
                                     band=whitened_band(p, nfft), smoothspect_N=p.smoothspect_N,
                                     water_level=p.spectral_water_level,
                                     band_weights=cc_band_weights(p, nfft), pairs=(ii, jj + 3))
        t = chans_a["Z"]["starttimes"][rows[("a", "Z")]]
        tensor = ccfs.reshape((3, 3) + ccfs.shape[1:]).astype(np.float32, copy=False)
        rtz = rotate_to_rtz(tensor, geom.azimuth, geom.back_azimuth)
        for comp in rtz_wanted:
            i, j = RTZ.index(comp[0]), RTZ.index(comp[1])
            self._emit(chunk, a, b, comp, chans_a["Z"]["seed_id"][:-1] + comp[0],
                       chans_b["Z"]["seed_id"][:-1] + comp[1], rtz[i, j].astype(np.float32), t, lags, geom)
