#!/usr/bin/env python
"""NoisePy's side of ``scripts/compare_noisepy.py``: run in NoisePy's own environment.

Run by ``compare_noisepy.py`` with NoisePy's interpreter (noisepy-seis 0.9.93 needs
Python 3.10; keep it in a virtual environment of its own, never in the project's)::

    /opt/noisepy-venv/bin/python scripts/noisepy_side.py IN.npz OUT.npz

Imports numpy, obspy and NoisePy only (never noisecorr). ``IN.npz`` holds the synthetic
records (``data`` (n_stations, npts) float32, ``names``, ``sampling_rate``, ``starttime``
POSIX seconds of the first sample, ``pad`` seconds of record either side of the chunk
correlated) and the processing parameters (``params_json``). ``OUT.npz`` receives
NoisePy's intermediate result at every step, called the way
``noisepy/seis/correlate.py`` calls them (see ``../shared/peers/noisepy/ccf_peer.py``):

* ``pre_<i>``: ``noise_module.preprocess_raw`` (demean, detrend, taper, bandpass,
  trim), float32 (npts,);
* ``win_<i>``, ``std_<i>``, ``t_<i>``: ``cut_trace_make_stat`` (windows after
  demean/detrend/taper, their max/std ratio against the whole chunk, start times);
* ``white_<i>``: ``noise_processing`` (time normalisation, whitening), the positive
  half ``[:, :Nfft // 2]`` of the spectra;
* ``ccf_<i>_<j>``, ``ngood_<i>_<j>``: ``noise_module.correlate`` + linear stack of the
  windows both stations accept, lags ``-maxlag..maxlag`` *as NoisePy labels them*
  (sample k is really at lag ``(k - L - 1) / fs``: one sample earlier; the caller
  corrects it).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

import numpy as np
import obspy


def main(inp: str, out: str) -> None:
    from noisepy.seis import noise_module
    from noisepy.seis.io.datatypes import (CCMethod, ChannelData, ConfigParameters, FreqNorm,
                                           RmResp, StackMethod, TimeNorm)

    d = np.load(inp, allow_pickle=False)
    kw = json.loads(str(d["params_json"]))
    fs = float(d["sampling_rate"])
    t0 = float(d["starttime"])
    data = d["data"]
    names = [str(n) for n in d["names"]]
    pad = float(d["pad"]) if "pad" in d else 0.0
    dur = data.shape[1] / fs - 2 * pad            # the chunk: the record less its pads
    T0 = datetime.fromtimestamp(t0 + pad, tz=timezone.utc)
    T1 = datetime.fromtimestamp(t0 + pad + dur, tz=timezone.utc)
    params = ConfigParameters(
        start_date=T0, end_date=T1, sampling_rate=fs, cc_len=kw["cc_len"], step=kw["step"],
        inc_hours=int(round(dur / 3600.0)), freqmin=kw["freqmin"], freqmax=kw["freqmax"],
        freq_norm=FreqNorm(kw["freq_norm"]), time_norm=TimeNorm(kw["time_norm"]),
        cc_method=CCMethod(kw["cc_method"]), smooth_N=kw["smooth_N"],
        smoothspect_N=kw["smoothspect_N"], maxlag=kw["maxlag"], substack=False,
        substack_windows=1, max_over_std=kw["max_over_std"], ncomp=1, rm_resp=RmResp.NO,
        rotation=False, networks=["*"], stack_method=StackMethod.LINEAR)
    res: dict[str, np.ndarray] = {}
    spectra = []
    for i, (x, name) in enumerate(zip(data, names)):
        tr = obspy.Trace(data=np.asarray(x, dtype=np.float32).copy())
        tr.stats.network, tr.stats.station, tr.stats.channel = "XX", name, "HHZ"
        tr.stats.sampling_rate = fs
        tr.stats.starttime = obspy.UTCDateTime(t0)
        st = noise_module.preprocess_raw(obspy.Stream([tr]), None, params,
                                         obspy.UTCDateTime(T0), obspy.UTCDateTime(T1))
        res[f"pre_{i}"] = np.asarray(st[0].data, dtype=np.float32)
        std, dataS_t, dataS = noise_module.cut_trace_make_stat(params, ChannelData(st))
        res[f"win_{i}"] = np.asarray(dataS, dtype=np.float32)
        res[f"std_{i}"] = np.asarray(std, dtype=np.float64)
        res[f"t_{i}"] = np.asarray(dataS_t, dtype=np.float64)
        white = noise_module.noise_processing(params, np.array(dataS))
        nfft = white.shape[1]
        half = white[:, : nfft // 2]
        res[f"white_{i}"] = half.astype(np.complex64)
        spectra.append((half, np.asarray(std), np.asarray(dataS_t), nfft))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            (s_fft, s_std, s_t, nfft), (r_fft, r_std, _r_t, _) = spectra[i], spectra[j]
            nwin = s_fft.shape[0]
            if params.cc_method == CCMethod.XCORR:
                sfft1 = np.conj(s_fft)
            else:
                sfft1 = noise_module.smooth_source_spect(
                    params, s_fft.reshape(s_fft.size)).reshape(nwin, nfft // 2)
            sou = np.where((s_std < params.max_over_std) & (s_std > 0))[0]
            rec = np.where((r_std < params.max_over_std) & (r_std > 0))[0]
            bb = np.intersect1d(sou, rec)
            s_corr, _t, n_corr = noise_module.correlate(sfft1[bb], r_fft[bb], params, nfft, s_t[bb])
            res[f"ccf_{i}_{j}"] = np.asarray(s_corr[0], dtype=np.float32)
            res[f"ngood_{i}_{j}"] = np.asarray(len(bb))
    res["nfft"] = np.asarray(spectra[0][3])
    np.savez(out, **res)


def functions(out: str) -> None:
    """NoisePy's taper, moving average and whitening on small fixed inputs (``--functions``).

    For the unit tests of :mod:`noisecorr.signal.noisepy_compat`: ``x`` (4, 600) float64
    windows at 20 Hz, ``taper`` (NoisePy's ``taper`` of ``x``), ``amp`` and
    ``mave_<N>`` (``moving_ave_2D`` for N = 1, 4, 5, 10), ``white_<N>`` (``whiten`` of
    ``x`` with ``smoothspect_N = N``, N = 1, 10; freqmin 0.3, freqmax 4 Hz; two-sided
    spectra as NoisePy returns them).
    """
    from noisepy.seis import noise_module
    from noisepy.seis.io.datatypes import ConfigParameters

    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 600))
    res = {"x": x, "taper": noise_module.taper(x.copy())}
    amp = np.abs(rng.standard_normal((3, 50))) + 0.1
    res["amp"] = amp
    for n in (1, 4, 5, 10):
        res[f"mave_{n}"] = noise_module.moving_ave_2D(amp, n) if n > 1 else amp
    for n in (1, 10):
        params = ConfigParameters(sampling_rate=20.0, freqmin=0.3, freqmax=4.0, smoothspect_N=n)
        res[f"white_{n}"] = noise_module.whiten(x.copy(), params)
    np.savez_compressed(out, **res)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    if len(sys.argv) == 3 and sys.argv[1] == "--functions":
        functions(sys.argv[2])
    elif len(sys.argv) == 3:
        main(sys.argv[1], sys.argv[2])
    else:
        sys.exit("usage: noisepy_side.py IN.npz OUT.npz | noisepy_side.py --functions OUT.npz")
