"""Small in-memory networks of station spectra for the tile tests."""

import numpy as np

from noisecorr.signal.chain import station_spectra
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.preprocess import ProcessedTrace

FS = 10.0


def params(**kw):
    base = dict(sampling_rate=FS, cc_len=60.0, step=30.0, freqmin=0.2, freqmax=3.0, maxlag=8.0,
                max_over_std=np.inf, smoothspect_N=3)
    base.update(kw)
    return CorrelationParams(**base)


def delays(n):
    return np.arange(n) * 3 - n  # samples, station k records the common noise delayed


def make_spectra(p, n_stations=7, seconds=600.0, seed=0, gaps=True, components="Z"):
    """WhitenPE-style items ``{seed_id, chunk, spectra, starttimes, sampling_rate, nfft}``.

    Station k records a common noise delayed by ``delays(n)[k]`` samples plus local noise;
    with ``gaps``, station 1 loses its first 3 windows and station 4 every other window.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    pad = 200
    d = delays(n_stations)
    base = {c: rng.standard_normal(n + 2 * pad) for c in components}
    items = []
    for k in range(n_stations):
        for c in components:
            x = base[c][pad - d[k]:pad - d[k] + n] + 0.5 * rng.standard_normal(n)
            tr = ProcessedTrace(f"XX.S{k:02d}..HH{c}", 1000.0, FS, x.astype(np.float32),
                                np.zeros(n, bool))
            s = station_spectra(tr, p)
            rows = np.arange(s.n_windows)
            if gaps and k == 1:
                rows = rows[3:]
            if gaps and k == 4:
                rows = rows[::2]
            items.append({"seed_id": s.seed_id, "chunk": 1000.0, "spectra": s.spectra[rows],
                          "starttimes": s.starttimes[rows], "sampling_rate": FS, "nfft": s.nfft})
    return items
