"""npz export: one ``COMP.npz`` per component with every selected pair.

Arrays: ``source``, ``receiver`` (str, ``(n,)``), ``lags`` (s, ``(n_lags,)``, positive
lag = wave from source to receiver), ``stacks`` (float32 ``(n, n_lags)``),
``distance_km``, ``azimuth``, ``back_azimuth`` (degrees), ``n_windows``,
``sampling_rate`` (Hz, scalar), and the station table ``station_code``,
``station_latitude``, ``station_longitude``, ``station_elevation`` (m).
Readable with ``numpy.load`` alone (no pickles).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .select import one_stack

log = logging.getLogger(__name__)

__all__ = ["write_npz", "read_npz"]


def write_npz(res, selection, out_dir) -> list:
    """Write ``out_dir/COMP.npz`` for each component of ``selection``; returns the paths.

    Raises
    ------
    ValueError
        Pairs of one component with different lag axes (named).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stations = res.stations()
    paths = []
    for comp in dict.fromkeys(s.component for s in selection):
        sels = [s for s in selection if s.component == comp]
        lags, stacks = None, []
        for s in sels:
            lg, data = one_stack(res, s)
            if lags is None:
                lags = lg
            elif len(lg) != len(lags) or not np.allclose(lg, lags):
                raise ValueError(f"{s.source}_{s.receiver} {comp}: lag axis differs from "
                                 f"{sels[0].source}_{sels[0].receiver}'s; export them apart")
            stacks.append(data)
        p = out / f"{comp}.npz"
        np.savez(p, source=np.array([s.source for s in sels]),
                 receiver=np.array([s.receiver for s in sels]), component=np.array(comp),
                 lags=lags, stacks=np.array(stacks, dtype=np.float32),
                 distance_km=np.array([s.distance_km for s in sels]),
                 azimuth=np.array([s.azimuth for s in sels]),
                 back_azimuth=np.array([s.back_azimuth for s in sels]),
                 n_windows=np.array([s.n_windows for s in sels], dtype=np.int64),
                 sampling_rate=np.array(sels[0].sampling_rate),
                 station_code=np.array([st["code"] for st in stations]),
                 station_latitude=np.array([st["latitude"] for st in stations], dtype=float),
                 station_longitude=np.array([st["longitude"] for st in stations], dtype=float),
                 station_elevation=np.array([st["elevation"] for st in stations], dtype=float))
        paths.append(p)
    log.info("wrote %d npz files under %s", len(paths), out)
    return paths


def read_npz(path) -> dict:
    """The arrays of one npz export (see the module docstring) as a dict of arrays."""
    with np.load(path, allow_pickle=False) as z:
        missing = {"source", "receiver", "component", "lags", "stacks", "sampling_rate"} \
            - set(z.files)
        if missing:
            raise ValueError(f"{path}: not a noisecorr npz export, lacks {', '.join(sorted(missing))}")
        return {k: z[k] for k in z.files}
