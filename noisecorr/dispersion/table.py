"""Dispersion curves and SNR of many pairs: measurement over a results file, HDF5 and
CSV storage.

One :class:`DispersionTable` holds every pair of one component: arrays ``(pairs,)`` and
``(pairs, periods)``. It is stored in the results file itself, group
``/dispersion/<COMPONENT>`` (one dataset per column, the parameters as the JSON attribute
``params``), so it travels with the stacks and the reader finds it
(:meth:`noisecorr.results.reader.Results.dispersion`); :meth:`DispersionTable.to_csv`
writes the long form (one row per pair and period) that spreadsheets and tomography
codes read.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from noisecorr.signal.ftan import flag_names, ftan
from noisecorr.signal.symmetric import SIDES, sides, snr

log = logging.getLogger(__name__)

__all__ = ["DispersionTable", "measure", "measure_block", "default_periods", "read_table",
           "write_table", "has_table", "GROUP"]

#: HDF5 group of the tables in a results file.
GROUP = "dispersion"

_PAIR_COLS = ("source", "receiver", "distance_km", "snr_causal", "snr_acausal", "snr_symmetric")
_GRID_COLS = ("group_velocity", "phase_velocity", "snr", "flags", "instantaneous_period",
              "band_snr_causal", "band_snr_acausal", "band_snr_symmetric")

#: Width of the narrow SNR bands at each period (Gaussian ``exp(-alpha ((f - fc) / fc)^2)``,
#: relative half-width at 1/e ``1 / sqrt(alpha)``, about 22 %), the same for every distance.
SNR_BAND_ALPHA = 20.0


@dataclass
class DispersionTable:
    """Curves of ``n`` pairs of one component at ``m`` periods.

    Attributes
    ----------
    component : str
    periods : ndarray (m,)
        s.
    source, receiver : ndarray (n,) of str
    distance_km : ndarray (n,)
    snr_causal, snr_acausal, snr_symmetric : ndarray (n,)
        Broadband SNR of each side (:func:`noisecorr.signal.symmetric.snr`).
    group_velocity, phase_velocity : ndarray (n, m)
        km/s (NaN: not measured).
    snr : ndarray (n, m)
        Narrow-band SNR of the analysed side at each period.
    flags : ndarray (n, m) uint8
        :mod:`noisecorr.signal.ftan` flag bits; 0 is trusted.
    instantaneous_period : ndarray (n, m)
    band_snr_causal, band_snr_acausal, band_snr_symmetric : ndarray (n, m)
        SNR of each side in a narrow band at each period (Gaussian filter of
        ``alpha = SNR_BAND_ALPHA`` for every distance, unlike FTAN's): peak of the filtered
        side in the signal window over its RMS in the noise window
        (:func:`noisecorr.signal.symmetric.snr`). NaN in tables written before they existed.
    params : dict
        How the table was made (side, FTAN and SNR parameters).
    """

    component: str
    periods: np.ndarray
    source: np.ndarray
    receiver: np.ndarray
    distance_km: np.ndarray
    snr_causal: np.ndarray
    snr_acausal: np.ndarray
    snr_symmetric: np.ndarray
    group_velocity: np.ndarray
    phase_velocity: np.ndarray
    snr: np.ndarray
    flags: np.ndarray
    instantaneous_period: np.ndarray
    band_snr_causal: np.ndarray
    band_snr_acausal: np.ndarray
    band_snr_symmetric: np.ndarray
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.source)

    @property
    def trusted(self) -> np.ndarray:
        """``flags == 0``, bool ``(n, m)``."""
        return self.flags == 0

    def index(self, source: str, receiver: str) -> int:
        """Row of a pair; ``KeyError`` naming it if absent."""
        hit = np.flatnonzero((self.source == source) & (self.receiver == receiver))
        if hit.size == 0:
            raise KeyError(f"no dispersion curve for {source} -> {receiver} {self.component}")
        return int(hit[0])

    def select(self, min_snr: float | None = None, min_distance_km: float | None = None,
               max_distance_km: float | None = None, min_band_snr: float | None = None,
               side: str = "symmetric") -> "DispersionTable":
        """Pairs whose broadband SNR of ``side`` is at least ``min_snr``, whose narrow-band
        SNR of ``side`` reaches ``min_band_snr`` at one period or more (and within the
        distance range): SNR as a selection criterion."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
        keep = np.ones(len(self), dtype=bool)
        if min_snr is not None:
            keep &= getattr(self, "snr_" + side) >= min_snr
        if min_band_snr is not None:
            with np.errstate(invalid="ignore"):
                keep &= np.any(getattr(self, "band_snr_" + side) >= min_band_snr, axis=1)
        if min_distance_km is not None:
            keep &= self.distance_km >= min_distance_km
        if max_distance_km is not None:
            keep &= self.distance_km <= max_distance_km
        out = {}
        for name in (*_PAIR_COLS, *_GRID_COLS):
            out[name] = getattr(self, name)[keep]
        return DispersionTable(self.component, self.periods, params=dict(self.params), **out)

    def to_csv(self, path) -> Path:
        """One row per pair and period: source, receiver, component, distance_km,
        period_s, group_velocity_km_s, phase_velocity_km_s, snr, snr_symmetric, flags
        (the bit value), flag_names (``;``-separated), trusted (0/1), band_snr_causal,
        band_snr_acausal, band_snr_symmetric."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["source", "receiver", "component", "distance_km", "period_s",
                        "group_velocity_km_s", "phase_velocity_km_s", "snr", "snr_symmetric",
                        "flags", "flag_names", "trusted", "band_snr_causal", "band_snr_acausal",
                        "band_snr_symmetric"])
            names = {}
            for i in range(len(self)):
                for j, t in enumerate(self.periods):
                    fl = int(self.flags[i, j])
                    if fl not in names:
                        names[fl] = ";".join(flag_names(fl))
                    w.writerow([self.source[i], self.receiver[i], self.component,
                                f"{self.distance_km[i]:.4f}", f"{t:g}",
                                _fmt(self.group_velocity[i, j]), _fmt(self.phase_velocity[i, j]),
                                _fmt(self.snr[i, j]), _fmt(self.snr_symmetric[i]),
                                fl, names[fl], int(fl == 0), _fmt(self.band_snr_causal[i, j]),
                                _fmt(self.band_snr_acausal[i, j]), _fmt(self.band_snr_symmetric[i, j])])
        return path


def _fmt(x):
    return "" if not np.isfinite(x) else f"{x:.5f}"


def default_periods(sampling_rate: float, maxlag: float, distances, params: dict | None = None,
                    n: int = 16) -> np.ndarray:
    """Log-spaced periods a results file can support.

    From ``max(1 s, 4 / fs, 1 / freqmax)`` (processing band, if known) to
    ``min(maxlag / 4, max(d) / (3 x 2.5 km/s), 1 / freqmin)``: the longest period at
    which the farthest pair holds three wavelengths of a slow (2.5 km/s) wave and at
    least four periods fit in the lags.
    """
    p = (params or {}).get("processing", params or {}) or {}
    tmin = max(1.0, 4.0 / sampling_rate)
    if p.get("freqmax"):
        tmin = max(tmin, 1.0 / float(p["freqmax"]))
    tmax = min(maxlag / 4.0, float(np.max(distances)) / (3 * 2.5))
    if p.get("freqmin"):
        tmax = min(tmax, 1.0 / float(p["freqmin"]))
    tmax = max(tmax, 4 * tmin)
    return np.geomspace(tmin, tmax, n)


def measure_block(ccf, sampling_rate: float, distance_km, periods, *, side: str = "symmetric",
                  vmin: float = 1.5, vmax: float = 5.0, noise_length: float = 100.0,
                  **ftan_kwargs) -> dict:
    """SNR of each side and FTAN curves of one block of correlations ``(n, 2 h + 1)``:
    a dict of arrays (``snr_causal``, ``snr_acausal``, ``snr_symmetric`` ``(n,)``;
    ``group_velocity``, ``phase_velocity``, ``snr``, ``flags``, ``instantaneous_period``
    ``(n, m)``) and ``params`` (the FTAN parameters)."""
    ccf = np.asarray(ccf, dtype=np.float32)
    s = snr(ccf, sampling_rate, distance_km, vmin=vmin, vmax=vmax, noise_length=noise_length,
            periods=periods, alpha=SNR_BAND_ALPHA)
    c, a = sides(ccf)
    one = {"causal": c, "acausal": a, "symmetric": 0.5 * (c + a)}[side]
    r = ftan(one, 1.0 / sampling_rate, distance_km, periods, vmin=vmin, vmax=vmax,
             noise_length=noise_length, **ftan_kwargs)
    return {**{"snr_" + name: s[name] for name in SIDES},
            **{"band_snr_" + name: s["band_" + name] for name in SIDES},
            "group_velocity": r.group_velocity, "phase_velocity": r.phase_velocity,
            "snr": r.snr, "flags": r.flags, "instantaneous_period": r.instantaneous_period,
            "params": r.params}


def measure(results, component: str = "ZZ", periods=None, *, side: str = "symmetric",
            vmin: float = 1.5, vmax: float = 5.0, noise_length: float | None = None,
            block: int = 2048, mapping: str | None = None, processes: int | None = None,
            **ftan_kwargs) -> DispersionTable:
    """SNR and FTAN curves of every pair of ``component`` in a results file.

    Parameters
    ----------
    results : Results or path
        An open :class:`noisecorr.results.reader.Results` or a path to one.
    component : str
    periods : array, optional
        Periods, s (default :func:`default_periods`).
    side : {"symmetric", "causal", "acausal"}
        The one-sided signal FTAN analyses.
    vmin, vmax : float
        Group velocity window, km/s (SNR signal window and FTAN search).
    noise_length : float, optional
        Trailing noise window, s (default 5 x the longest period).
    block : int
        Pairs read and processed together.
    mapping : str, optional
        ``None``: blocks are measured here, one after the other, reading one block of
        stacks at a time. A mapping name (``"sequential"``, ``"multiprocess"``, ``"mpi"``):
        the blocks travel to :class:`pes.dispersion.DispersionPE` instances (``processes``
        of them) through the engine; every stack is read first. The table does not depend
        on the mapping or the block size. Under ``"mpi"`` only rank 0 gets the table; the
        other ranks get None.
    processes : int, optional
    **ftan_kwargs
        Passed to :func:`noisecorr.signal.ftan.ftan` (``alpha0``, ``reference``,
        ``n_wavelengths``, ``min_snr``, ``phase_matched``, ...).
    """
    from noisecorr.results.reader import open_results

    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    own = not hasattr(results, "stacks")
    res = open_results(results) if own else results
    try:
        pairs = res.pairs(component)
        if not pairs:
            raise ValueError(f"{res.path}: no pairs of component {component} "
                             f"(components: {', '.join(res.components())})")
        dist = res.column("distance_km", component)
        fs_col = res.column("sampling_rate", component)
        missing = np.flatnonzero(~np.isfinite(dist) | (dist <= 0))
        if missing.size:
            s, r = pairs[int(missing[0])]
            raise ValueError(f"{res.path}: {missing.size} pair(s) of {component} have no usable "
                             f"distance_km (first: {s} -> {r}); dispersion needs station coordinates")
        if np.unique(fs_col).size != 1:
            raise ValueError(f"{res.path}: pairs of {component} have different sampling rates "
                             f"{np.unique(fs_col).tolist()}; measure them separately")
        fs = float(fs_col[0])
        maxlag = float(np.nanmax(res.column("maxlag", component)))
        if periods is None:
            periods = default_periods(fs, maxlag, dist, res.params)
        periods = np.asarray(periods, dtype=float)
        if noise_length is None:
            noise_length = 5.0 * float(periods[-1])
        n, m = len(pairs), periods.size
        cols = {name: np.full(n, np.nan) for name in _PAIR_COLS[2:]}
        grid = {name: np.full((n, m), np.nan) for name in _GRID_COLS}
        grid["flags"] = np.zeros((n, m), dtype=np.uint8)
        cols["distance_km"] = dist.astype(float)
        kw = dict(side=side, vmin=vmin, vmax=vmax, noise_length=noise_length, **ftan_kwargs)

        def read(b0):
            idx = np.arange(b0, min(n, b0 + block))
            stacks = [data for _, data in res.stacks(component, idx)]
            lengths = {s.shape[-1] for s in stacks}
            if len(lengths) != 1:
                raise ValueError(f"{res.path}: stacks of {component} have different lengths "
                                 f"{sorted(lengths)}; measure them separately")
            return np.stack(stacks).astype(np.float32)

        if mapping is None:
            outs = ({"block": b0, **measure_block(read(b0), fs, dist[b0:b0 + block], periods, **kw)}
                    for b0 in range(0, n, block))
        else:
            outs = _through_engine([{"block": b0, "ccf": read(b0), "distance_km": dist[b0:b0 + block],
                                     "sampling_rate": fs} for b0 in range(0, n, block)],
                                   periods, kw, mapping, processes)
            if outs is None:
                return None       # an MPI rank other than 0: rank 0 gathers every block
        fparams = {}
        for o in outs:
            sl = slice(o["block"], o["block"] + len(o["snr_symmetric"]))
            for name in SIDES:
                cols["snr_" + name][sl] = o["snr_" + name]
            for name in _GRID_COLS:
                grid[name][sl] = o[name]
            fparams = o["params"]
        params = {"side": side, "sampling_rate": fs, "results": str(res.path), **fparams,
                  "reference": _describe_reference(ftan_kwargs.get("reference"))}
        src = np.array([p[0] for p in pairs])
        rcv = np.array([p[1] for p in pairs])
        log.info("dispersion of %d pairs (%s) at %d periods %.3g-%.3g s: %d of %d values trusted",
                 n, component, m, periods[0], periods[-1], int((grid["flags"] == 0).sum()), n * m)
        return DispersionTable(component, periods, src, rcv, params=params, **cols, **grid)
    finally:
        if own:
            res.close()


def _through_engine(items, periods, kw, mapping, processes):
    """Measure the blocks ``items`` with :class:`pes.dispersion.DispersionPE` under
    ``mapping``; yields the output items (any order)."""
    from noisecorr.engine import WorkflowGraph, run
    from pes.dispersion import DispersionPE

    pe = DispersionPE(periods, **kw)
    if mapping != "sequential":
        pe.numprocesses = max(1, processes or 1)
    g = WorkflowGraph()
    g.add(pe)
    result = run(g, inputs={pe: [{"input": it} for it in items]}, mapping=mapping,
                 **({} if processes is None else {"processes": processes}))
    return None if result is None else result.outputs[(pe.name, "output")]


def _describe_reference(ref):
    if ref is None:
        return "default continental Rayleigh (noisecorr/dispersion/data/rayleigh_continental.csv)"
    if callable(ref):
        return getattr(ref, "__name__", "callable")
    return {"periods": list(map(float, ref[0])), "velocities": list(map(float, ref[1]))}


def write_table(path, table: DispersionTable) -> None:
    """Store ``table`` in the results file ``path`` as ``/dispersion/<COMPONENT>``
    (replacing an older one of that component)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results file at {path} (merge checkpoint parts first)")
    with h5py.File(path, "a") as f:
        g = f.require_group(GROUP)
        if table.component in g:
            del g[table.component]
        t = g.create_group(table.component)
        t.attrs["params"] = json.dumps(table.params, sort_keys=True, default=str)
        t.create_dataset("periods", data=table.periods)
        t.create_dataset("source", data=np.array(table.source, dtype="S"))
        t.create_dataset("receiver", data=np.array(table.receiver, dtype="S"))
        for name in _PAIR_COLS[2:]:
            t.create_dataset(name, data=np.asarray(getattr(table, name), dtype=np.float64))
        for name in _GRID_COLS:
            data = getattr(table, name)
            t.create_dataset(name, data=data, dtype=data.dtype, compression="gzip",
                             chunks=(min(len(data), 4096) or 1, data.shape[1]) if len(data) else None)


def has_table(h5: h5py.File, component: str) -> bool:
    """Whether an open results file holds a dispersion table of ``component``."""
    return GROUP in h5 and component in h5[GROUP]


def read_table(h5: h5py.File, component: str = "ZZ") -> DispersionTable:
    """The table of ``component`` from an open results file (``KeyError`` naming the
    file and the command that makes it, if absent)."""
    if not has_table(h5, component):
        raise KeyError(f"{h5.filename} has no dispersion table for {component}: "
                       f"run `noisecorr dispersion {h5.filename} --component {component}`")
    t = h5[GROUP][component]
    shape = t["group_velocity"].shape
    kw = {name: t[name][()] if name in t else np.full(shape, np.nan)   # older tables: no band SNR
          for name in (*_PAIR_COLS[2:], *_GRID_COLS)}
    return DispersionTable(component, t["periods"][()],
                           t["source"][()].astype(str), t["receiver"][()].astype(str),
                           params=json.loads(t.attrs["params"]), **kw)


def info_lines(res) -> list:
    """Lines for ``noisecorr info``: per component with a table, the symmetric SNR and
    how many pair-periods are trusted."""
    lines = []
    for comp in res.components():
        h5 = res._files[0]
        if not has_table(h5, comp):
            continue
        t = read_table(h5, comp)
        s = t.snr_symmetric[np.isfinite(t.snr_symmetric)]
        snr_text = (f"median {np.median(s):.1f} (min {s.min():.1f}, max {s.max():.1f})"
                    if s.size else "undefined")
        lines.append(f"SNR {comp:<11}{snr_text}; dispersion {t.periods[0]:.3g}-{t.periods[-1]:.3g} s, "
                     f"{int(t.trusted.sum())} of {t.trusted.size} pair-periods trusted")
        b = t.band_snr_symmetric
        if np.isfinite(b).any():
            with np.errstate(all="ignore"):
                med = [np.nanmedian(b[:, j]) if np.isfinite(b[:, j]).any() else np.nan
                       for j in range(b.shape[1])]
            lines.append(f"band SNR {comp:<6}symmetric, median per period: "
                         + ", ".join(f"{p:g} s {m:.1f}" for p, m in zip(t.periods, med)))
    return lines
