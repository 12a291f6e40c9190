"""Reading correlation series and measuring dv/v for every pair (see the package notes)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from noisecorr.signal.dvv import coda_mask, combine, station_average

__all__ = ["DvvConfig", "Series", "DvvResult", "load_series", "measure", "METHODS"]

logger = logging.getLogger(__name__)

#: Allowed ``method`` values.
METHODS = ("stretching", "mwcs", "wavelet")


@dataclass(frozen=True)
class DvvConfig:
    """What to measure and how.

    Parameters
    ----------
    method : {"stretching", "mwcs", "wavelet"}
        ``wavelet``: the wavelet cross-spectrum (:mod:`noisecorr.signal.dvv_wavelet`) over the
        band ``freqmin..freqmax``.
    component : str
        Component pair, e.g. "ZZ".
    freqmin, freqmax : float or None
        Band (Hz) of the measurement (MWCS phase regression) and of the stretching error;
        None: the processing band stored in the results file.
    velocity : float
        km/s for the ballistic time ``distance / velocity``.
    coda_factor : float or None
        The coda starts at ``coda_factor`` times the ballistic time; None: at
        ``coda_start``.
    coda_start : float
        Seconds, used when ``coda_factor`` is None.
    coda_length : float
        Seconds.
    side : {"both", "causal", "acausal"}
    reference : (start, end), "stored" or None
        POSIX seconds: the reference is the window-weighted stack of the spans starting in
        ``[start, end)``; ``"stored"``: the reference stack that ``noisecorr stack`` stored
        (:meth:`noisecorr.results.Results.reference`); None: the full stack (every window
        of the run).
    max_dvv, n_eps : float, int
        Stretching grid.
    mwcs_window, mwcs_step : float
        Seconds.
    mwcs_smoothing : int
    min_coherence, max_delay_error : float
        MWCS window quality limits.
    wavelet_omega0, wavelet_smoothing : float
        Morlet non-dimensional frequency; time smoothing of the cross-spectrum in periods.
    min_coefficient : float
        Stretching results with a lower correlation coefficient are left out of the
        station and network averages.
    max_error : float or None
        Results with a larger error are left out of the averages.
    min_windows : int
        Spans with fewer correlation windows are not measured.
    min_snr : float or None
        Pairs whose reference has a lower SNR (symmetric component, peak in the
        ``snr_vmin..snr_vmax`` km/s window over the RMS of the following
        ``snr_noise_length`` s; :func:`noisecorr.signal.symmetric.snr`) are left out of the
        station and network averages (their dv/v is still reported, ``valid`` False).
    snr_vmin, snr_vmax, snr_noise_length : float
        km/s, km/s, s.
    """

    method: str = "stretching"
    component: str = "ZZ"
    freqmin: float | None = None
    freqmax: float | None = None
    velocity: float = 3.0
    coda_factor: float | None = 2.0
    coda_start: float = 10.0
    coda_length: float = 40.0
    side: str = "both"
    reference: tuple | None = None
    max_dvv: float = 0.01
    n_eps: int = 201
    mwcs_window: float = 10.0
    mwcs_step: float = 5.0
    mwcs_smoothing: int = 2
    min_coherence: float = 0.5
    max_delay_error: float = 0.1
    wavelet_omega0: float = 6.0
    wavelet_smoothing: float = 1.0
    min_coefficient: float = 0.5
    max_error: float | None = None
    min_windows: int = 1
    min_snr: float | None = None
    snr_vmin: float = 1.5
    snr_vmax: float = 5.0
    snr_noise_length: float = 50.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is not one of {list(METHODS)}")
        if self.side not in ("both", "causal", "acausal"):
            raise ValueError(f"side={self.side!r} is not one of ['both', 'causal', 'acausal']")
        if not self.velocity > 0 or not self.coda_length > 0:
            raise ValueError("velocity and coda_length must be > 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Series:
    """Correlation series of many pairs on one time grid (:func:`load_series`).

    Attributes
    ----------
    pairs : list of (source, receiver)
    times : ndarray (n_times,)
        Span starts, POSIX s, shared by every pair.
    lags : ndarray (n_lags,)
    data : ndarray float32 (n_pairs, n_times, n_lags)
        Zeros where a pair has no span (``counts == 0``).
    counts : ndarray int (n_pairs, n_times)
        Windows per span.
    reference : ndarray float32 (n_pairs, n_lags)
    distance_km : ndarray (n_pairs,)
        NaN where coordinates are unknown.
    span : float or None
        Span length, s.
    band : (freqmin, freqmax)
        Processing band of the results file (Hz).
    """

    pairs: list
    times: np.ndarray
    lags: np.ndarray
    data: np.ndarray
    counts: np.ndarray
    reference: np.ndarray
    distance_km: np.ndarray
    span: float | None
    band: tuple


def load_series(results, component: str = "ZZ", reference=None) -> Series:
    """Read every pair's sub-stack series of ``component`` onto one time grid.

    ``results`` is a path or an open :class:`noisecorr.results.Results`. Pairs stored
    without sub-stacks are left out with a warning naming them (rerun with
    ``substack: true``); ``reference`` as in :class:`DvvConfig`.

    Raises
    ------
    ValueError
        No pair of the component has sub-stacks.
    """
    from noisecorr.results import open_results

    own = not hasattr(results, "substacks")
    res = open_results(results) if own else results
    try:
        pairs, subs, dist, missing, stored = [], [], [], [], []
        for src, rcv in res.pairs(component):
            try:
                sub = res.substacks(src, rcv, component)
            except ValueError:
                missing.append(f"{src}-{rcv}")
                continue
            if sub.starts is None or sub.counts is None:
                missing.append(f"{src}-{rcv}")
                continue
            pairs.append((src, rcv))
            subs.append(sub)
            if reference == "stored":
                try:
                    stored.append(res.reference(src, rcv, component)[1])
                except KeyError:
                    raise ValueError(f"{src}-{rcv} {component}: no stored reference stack in "
                                     f"{res.path}: run noisecorr stack again") from None
            d = res.meta(src, rcv, component).get("distance_km")
            dist.append(np.nan if d is None else float(d))
        if missing:
            logger.warning("%d pair(s) of %s have no sub-stack series and are left out (run with "
                           "substack: true): %s%s", len(missing), component, ", ".join(missing[:10]),
                           " ..." if len(missing) > 10 else "")
        if not subs:
            raise ValueError(f"no pair of component {component} has sub-stacks: run with substack: true")
        proc = (res.params or {}).get("processing") or {}
        band = (proc.get("freqmin"), proc.get("freqmax"))
    finally:
        if own:
            res.close()
    from noisecorr.results.substacks import combine as combine_spans

    lags = np.asarray(subs[0].lags)
    times = np.unique(np.concatenate([s.starts for s in subs]))
    data = np.zeros((len(subs), times.size, lags.size), dtype=np.float32)
    counts = np.zeros((len(subs), times.size), dtype=np.int64)
    ref = np.zeros((len(subs), lags.size), dtype=np.float32)
    for i, s in enumerate(subs):
        k = np.searchsorted(times, s.starts)
        data[i, k] = s.stacks
        counts[i, k] = s.counts
        if reference == "stored":
            ref[i] = stored[i]
        elif reference is None and s.stack is not None:
            ref[i] = s.stack
        else:
            lo, hi = (None, None) if reference is None else reference
            ref[i] = combine_spans(s, start=lo, end=hi)[0]
    return Series(pairs, times, lags, data, counts, ref, np.asarray(dist), subs[0].substack_len, band)


@dataclass
class DvvResult:
    """dv/v of every pair and span, and the station and network averages.

    Attributes
    ----------
    config : DvvConfig
    pairs : list of (source, receiver)
    times : ndarray (n_times,)
        Span starts, POSIX s.
    dvv, error, coefficient : ndarray (n_pairs, n_times)
        Fractions (dv/v > 0: faster); ``coefficient`` is the stretching correlation
        coefficient or the MWCS mean coherence of the windows used; NaN: not measured.
    valid : ndarray of bool (n_pairs, n_times)
        Passed the quality limits (used in the averages).
    fits : ndarray of bool (n_pairs,)
        The coda window fitted the lags (pairs that do not are reported and NaN).
    distance_km : ndarray (n_pairs,)
    snr : ndarray (n_pairs,) or None
        SNR of each pair's reference (with ``min_snr``).
    stations : dict
        ``{station: (dvv, error, n_pairs)}`` arrays over times.
    network : tuple
        ``(dvv, error, n_pairs)`` arrays over times.
    """

    config: DvvConfig
    pairs: list
    times: np.ndarray
    dvv: np.ndarray
    error: np.ndarray
    coefficient: np.ndarray
    valid: np.ndarray
    fits: np.ndarray
    distance_km: np.ndarray
    stations: dict = field(default_factory=dict)
    network: tuple = ()
    snr: np.ndarray | None = None

    @property
    def skipped(self) -> list:
        """Pairs whose coda window does not fit the lags (or whose distance is unknown)."""
        return [p for p, ok in zip(self.pairs, self.fits) if not ok]


def _mask(series: Series, cfg: DvvConfig):
    if cfg.coda_factor is not None:
        unknown = ~np.isfinite(series.distance_km)
        if unknown.any():
            logger.warning("%d pair(s) have no distance (no station coordinates): left out of dv/v",
                           int(unknown.sum()))
        d = np.where(unknown, 0.0, series.distance_km)
        mask, fits = coda_mask(series.lags, d, velocity=cfg.velocity, ballistic_factor=cfg.coda_factor,
                               length=cfg.coda_length, side=cfg.side)
        fits = fits & ~unknown
        mask &= fits[:, None]
    else:
        m, f = coda_mask(series.lags, None, start=cfg.coda_start, length=cfg.coda_length, side=cfg.side)
        mask = np.repeat(m, len(series.pairs), axis=0)
        fits = np.repeat(f, len(series.pairs))
    return mask, fits


def measure(results, config: DvvConfig | None = None, *, mapping: str = "sequential",
            processes: int | None = None, block: int = 64) -> DvvResult:
    """dv/v of every pair of a results file (or a :class:`Series`), through the engine.

    Pairs travel in blocks of ``block`` to :class:`pes.dvv.DvvPE` instances (``processes``
    of them under a parallel ``mapping``); each block is one vectorised call. The result
    does not depend on the mapping or the block size. Under the ``mpi`` mapping only rank 0
    gets the result; the other ranks get None.
    """
    from noisecorr.engine import WorkflowGraph, run
    from pes.dvv import DvvPE

    cfg = config or DvvConfig()
    series = results if isinstance(results, Series) else load_series(results, cfg.component, cfg.reference)
    freqmin = cfg.freqmin if cfg.freqmin is not None else series.band[0]
    freqmax = cfg.freqmax if cfg.freqmax is not None else series.band[1]
    if freqmin is None or freqmax is None:
        raise ValueError("the band of the measurement is unknown: give freqmin and freqmax")
    cfg = dataclasses.replace(cfg, freqmin=float(freqmin), freqmax=float(freqmax))
    mask, fits = _mask(series, cfg)
    if (~fits).any():
        logger.warning("%d of %d pairs: the coda window (%s) does not fit within +-%g s; left out: %s",
                       int((~fits).sum()), fits.size,
                       f"{cfg.coda_factor} x ballistic + {cfg.coda_length} s" if cfg.coda_factor
                       else f"{cfg.coda_start}-{cfg.coda_start + cfg.coda_length} s",
                       float(series.lags.max()),
                       ", ".join(f"{a}-{b}" for (a, b), ok in zip(series.pairs, fits) if not ok)[:500])
    n = len(series.pairs)
    items = [{"block": b0, "series": series.data[b0:b0 + block], "reference": series.reference[b0:b0 + block],
              "mask": mask[b0:b0 + block], "fits": fits[b0:b0 + block], "lags": series.lags}
             for b0 in range(0, n, block)]
    pe = DvvPE(cfg)
    if mapping != "sequential":
        pe.numprocesses = max(1, processes or 1)
    g = WorkflowGraph()
    g.add(pe)
    result = run(g, inputs={pe: [{"input": it} for it in items]}, mapping=mapping,
                 **({} if processes is None else {"processes": processes}))
    if result is None:
        return None               # an MPI rank other than 0: rank 0 gathers every output
    out = result.outputs[(pe.name, "output")]
    dvv = np.full((n, series.times.size), np.nan)
    err, coef = dvv.copy(), dvv.copy()
    for o in out:
        b0 = o["block"]
        b1 = b0 + o["dvv"].shape[0]
        dvv[b0:b1], err[b0:b1], coef[b0:b1] = o["dvv"], o["error"], o["coefficient"]
    empty = series.counts < cfg.min_windows
    for a in (dvv, err, coef):
        a[empty] = np.nan
    valid = np.isfinite(dvv) & np.isfinite(err)
    if cfg.method == "stretching":
        valid &= coef >= cfg.min_coefficient
    if cfg.max_error is not None:
        valid &= err <= cfg.max_error
    pair_snr = None
    if cfg.min_snr is not None:
        from noisecorr.signal.symmetric import snr

        fs = round(1.0 / float(series.lags[1] - series.lags[0]), 6)   # lags are k / fs
        d = np.where(np.isfinite(series.distance_km), series.distance_km, 0.0)
        pair_snr = snr(series.reference, fs, d, vmin=cfg.snr_vmin, vmax=cfg.snr_vmax,
                       noise_length=cfg.snr_noise_length)["symmetric"]
        low = ~(pair_snr >= cfg.min_snr)
        if low.any():
            logger.warning("%d of %d pairs have a reference SNR below %g (or undefined): left out "
                           "of the averages: %s", int(low.sum()), low.size, cfg.min_snr,
                           ", ".join(f"{a}-{b}" for (a, b), lo in zip(series.pairs, low) if lo)[:500])
        valid &= ~low[:, None]
    network = combine(dvv, err, axis=0, valid=valid)
    stations = station_average(series.pairs, dvv, err, valid)
    return DvvResult(cfg, series.pairs, series.times, dvv, err, coef, valid, fits, series.distance_km,
                     stations, network, pair_snr)
