"""A synthetic line network and noisecorr's side of the step-by-step NoisePy comparison.

Used by ``scripts/compare_noisepy.py`` (which runs NoisePy 0.9.93 itself, in its own
environment, through ``scripts/noisepy_side.py``) and by
``tests/signal/test_noisepy_reference.py`` (which compares against NoisePy's stacks
stored in ``tests/data/noisepy_reference.npz`` by that script).

The synthetic (:func:`line_network`): stations on a line at unequal spacing; two
band-limited noise wavefields cross the line in opposite directions at ``velocity``
km/s (so every pair's Green's function has a causal and an acausal arrival at
``distance / velocity``), plus independent local noise per station, in counts with a DC
offset and a linear drift, and one loud transient (an "earthquake") that the window
rejection must catch. No instrument response (``response_output: NONE``).

Coefficients: the Pearson correlation coefficient of two series. NoisePy's stacks are
compared after undoing its one-sample lag shift (its sample ``k`` is at lag
``(k - L - 1) / fs``, see :mod:`noisecorr.signal.correlate`): noisecorr's samples
``0 .. 2L - 1`` against NoisePy's ``1 .. 2L``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import scipy.signal

from noisecorr.signal.chain import (StationSpectra, correlate_and_stack, whiten_spectra,
                                    window_and_normalise)
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.preprocess import preprocess_stream
from noisecorr.signal.spectra import rfft_windows

__all__ = ["LineNetwork", "line_network", "coefficient", "noisecorr_stages", "compare_stages",
           "PARAMS", "params_for_noisepy", "pair_keys"]

logger = logging.getLogger(__name__)

#: The processing parameters of the comparison (NoisePy's names): those of the issue that
#: reported the difference (cc_len, step, band, rma whitening, no time normalisation).
PARAMS = dict(sampling_rate=20.0, cc_len=1800.0, step=450.0, freqmin=0.05, freqmax=2.0,
              time_norm="none", freq_norm="rma", smooth_N=10, smoothspect_N=10,
              cc_method="xcorr", maxlag=200.0, max_over_std=10.0, response_output="NONE")


@dataclass(frozen=True)
class LineNetwork:
    """Records of :func:`line_network`.

    Attributes
    ----------
    data : ndarray, float32, (n_stations, npts)
        Counts.
    names : list of str
    positions_km : ndarray
    sampling_rate : float
        Hz.
    starttime : float
        POSIX seconds of ``data[:, 0]``.
    pad : float
        Seconds of data before and after the chunk ``[starttime + pad, end - pad)``.
    """

    data: np.ndarray
    names: list
    positions_km: np.ndarray
    sampling_rate: float
    starttime: float
    pad: float

    @property
    def chunk(self) -> tuple[float, float]:
        """``(start, end)`` POSIX seconds of the span correlated (without the pad)."""
        n = self.data.shape[1] / self.sampling_rate
        return self.starttime + self.pad, self.starttime + n - self.pad

    def checksum(self) -> float:
        """Sum of the samples in float64: identifies a realisation (same seed, same numpy)."""
        return float(np.sum(self.data, dtype=np.float64))


def line_network(n_stations: int = 5, hours: float = 2.0, sampling_rate: float = 20.0,
                 seed: int = 42, velocity: float = 3.0, pad: float = 0.0,
                 starttime: float = 1609459200.0) -> LineNetwork:
    """The synthetic line network (see the module notes).

    Parameters
    ----------
    n_stations : int
    hours : float
        Length of the chunk in hours (a whole number of ``step`` past ``cc_len``).
    sampling_rate : float
        Hz.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    velocity : float
        km/s.
    pad : float
        Seconds of extra data either side of the chunk.
    starttime : float
        POSIX seconds of the first sample (2021-01-01 by default).
    """
    fs = float(sampling_rate)
    rng = np.random.default_rng(seed)
    gaps = 6.0 + 4.0 * rng.random(n_stations - 1)            # 6-10 km, unequal
    xs = np.concatenate(([0.0], np.cumsum(gaps)))
    n = int(round((hours * 3600.0 + 2 * pad) * fs))
    delay_max = int(np.ceil(xs[-1] / velocity * fs)) + 1
    sos = scipy.signal.butter(2, [0.03, 3.0], btype="bandpass", fs=fs, output="sos")

    def band(m):
        return scipy.signal.sosfilt(sos, rng.standard_normal(m))

    left = band(n + 2 * delay_max)
    right = band(n + 2 * delay_max)
    data = np.empty((n_stations, n), dtype=np.float32)
    for i, x in enumerate(xs):
        k = int(round(x / velocity * fs))
        u = (left[delay_max - k:delay_max - k + n] + 0.7 * right[delay_max + k:delay_max + k + n]
             + 0.8 * band(n))
        data[i] = 1000.0 * u + 500.0 + np.linspace(0.0, 300.0, n)
    i0 = int(round((pad + 3000.0) * fs))
    data[:, i0:i0 + int(60 * fs)] *= 30.0
    return LineNetwork(data, [f"S{i:02d}" for i in range(n_stations)], xs, fs, float(starttime),
                       float(pad))


def params_for_noisepy(params: CorrelationParams) -> dict:
    """The NoisePy parameters (``scripts/noisepy_side.py``'s ``params_json``) of ``params``."""
    tn = {"none": "no", "one_bit": "one_bit", "rma": "rma"}[params.time_norm]
    fn = {"none": "no", "phase_only": "phase_only", "rma": "rma"}[params.freq_norm]
    return dict(cc_len=params.cc_len, step=params.step, freqmin=params.freqmin,
                freqmax=params.freqmax, freq_norm=fn, time_norm=tn, cc_method=params.cc_method,
                smooth_N=params.smooth_N, smoothspect_N=params.smoothspect_N,
                maxlag=params.maxlag, max_over_std=params.max_over_std)


def coefficient(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation coefficient of two equally long series (float64)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 else float("nan")


def pair_keys(n: int) -> list[tuple[int, int]]:
    """Station index pairs ``(i, j)``, ``i < j``, in NoisePy's order."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _stream(net: LineNetwork, i: int):
    import obspy

    tr = obspy.Trace(np.asarray(net.data[i]).copy())
    tr.stats.network, tr.stats.station, tr.stats.channel = "XX", net.names[i], "HHZ"
    tr.stats.sampling_rate = net.sampling_rate
    tr.stats.starttime = obspy.UTCDateTime(net.starttime)
    return obspy.Stream([tr])


def noisecorr_stages(net: LineNetwork, params: CorrelationParams) -> dict:
    """noisecorr's result at every step, for :func:`compare_stages`.

    Returns ``{"pre": [float32 (npts_chunk,)], "windows": [(starttimes, float32
    (n_windows, n))], "spectra": [StationSpectra], "stacks": {(i, j): PairResult}}``.
    """
    t1, t2 = net.chunk
    pre, windows, spectra = [], [], []
    for i in range(len(net.names)):
        tr = preprocess_stream(_stream(net, i), t1, t2, sampling_rate=params.sampling_rate,
                               freqmin=params.freqmin, freqmax=params.freqmax,
                               response_output=params.response_output,
                               max_gap_fill=params.max_gap_fill,
                               rate_tolerance=params.rate_tolerance)
        pre.append(tr.data)
        win, x = window_and_normalise(tr, params)
        windows.append((win.starttimes, x))
        spec = whiten_spectra(rfft_windows(x, params.nfft), params, params.nfft)
        spectra.append(StationSpectra(tr.seed_id, win.starttimes, spec, params.sampling_rate,
                                      params.nfft, win.n_candidates, dict(win.rejected)))
    stacks = {(i, j): correlate_and_stack(spectra[i], spectra[j], params)
              for i, j in pair_keys(len(net.names))}
    return {"pre": pre, "windows": windows, "spectra": spectra, "stacks": stacks}


def _whitened_time(spec: np.ndarray, nfft: int, n: int) -> np.ndarray:
    return np.fft.irfft(spec, nfft, axis=-1)[..., :n]


def stack_coefficients(stacks: dict, noisepy: dict) -> dict:
    """Per pair: coefficient of noisecorr's stack with NoisePy's, its lag shift undone."""
    return {k: coefficient(r.stack[:-1], np.asarray(noisepy[f"ccf_{k[0]}_{k[1]}"])[1:])
            for k, r in stacks.items()}


def compare_stages(ours: dict, noisepy: dict, params: CorrelationParams) -> dict:
    """Step-by-step agreement of :func:`noisecorr_stages` with NoisePy's (``noisepy_side``).

    Returns medians over stations (``pre``), over windows both accept (``windows``,
    ``whitened``: whitened windows back in the time domain, first ``cc_len`` samples) and
    over pairs (``stack``, plus ``stack_min``), and the accepted window counts
    (``n_windows`` noisecorr, ``n_windows_noisepy``; NoisePy's exclude the windows any
    station rejects only per pair, these are per station, summed).
    """
    fs = params.sampling_rate
    n = params.cc_len_samples
    nfft_np = int(noisepy["nfft"])
    pre, win, white = [], [], []
    n_ours = n_np = 0
    for i, x in enumerate(ours["pre"]):
        ref = np.asarray(noisepy[f"pre_{i}"])[: x.size]
        pre.append(coefficient(x, ref))
        t_ours, w_ours = ours["windows"][i]
        t_np = np.asarray(noisepy[f"t_{i}"])
        std = np.asarray(noisepy[f"std_{i}"])
        good = np.nonzero((std < params.max_over_std) & (std > 0))[0]
        n_ours += t_ours.size
        n_np += good.size
        a = np.round(t_ours * fs).astype(np.int64)
        b = np.round(t_np[good] * fs).astype(np.int64)
        _, ia, ib = np.intersect1d(a, b, return_indices=True)
        w_np = np.asarray(noisepy[f"win_{i}"])[good[ib]]
        win += [coefficient(u, v) for u, v in zip(w_ours[ia], w_np)]
        sp = ours["spectra"][i]
        h = np.asarray(noisepy[f"white_{i}"])[good[ib]]
        full = np.zeros((h.shape[0], nfft_np // 2 + 1), dtype=np.complex128)
        full[:, : h.shape[1]] = h
        ta = _whitened_time(sp.spectra[ia], sp.nfft, n)
        tb = _whitened_time(full, nfft_np, n)
        white += [coefficient(u, v) for u, v in zip(ta, tb)]
    st = stack_coefficients(ours["stacks"], noisepy)
    med = (lambda v: float(np.median(v)) if len(v) else float("nan"))
    return {"pre": med(pre), "windows": med(win), "whitened": med(white),
            "stack": med(list(st.values())), "stack_min": min(st.values()),
            "n_windows": n_ours, "n_windows_noisepy": n_np, "pairs": st}


def write_input(path, net: LineNetwork, params: CorrelationParams) -> None:
    """The input file of ``scripts/noisepy_side.py`` (NoisePy gets the whole record)."""
    np.savez(path, data=net.data, names=np.array(net.names), sampling_rate=net.sampling_rate,
             starttime=net.starttime, pad=net.pad,
             params_json=json.dumps(params_for_noisepy(params)))
