"""Reference phase-velocity curves that resolve the ``2 pi N`` ambiguity of FTAN phase
velocities.

The phase of a narrow-band arrival fixes ``k d`` only modulo ``2 pi``: neighbouring
branches of the phase velocity differ by ``dc / c ~ c T / d``, one over the number of
wavelengths between the stations (33 % at 3 wavelengths, 3 % at 30). FTAN takes the
branch nearest the reference at the longest far-field period of each pair and follows it
by continuity to the other periods (:func:`noisecorr.signal.ftan.ftan`, ``branch``), so
the reference must be better than half the spacing *at that period*, and elsewhere only
its shape matters. The default table (``data/rayleigh_continental.csv``, an
*approximation* of an average continental fundamental-mode Rayleigh curve, roughly 5 %
between 5 and 150 s) suffices where the longest period holds up to about 10 wavelengths;
for Love waves, oceans, basins or long paths at short periods, give your own curve
(``reference=`` in :func:`noisecorr.signal.ftan.ftan`, ``--reference FILE.csv`` on the
command line).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["default_reference", "read_reference", "reference_curve"]


def read_reference(path) -> tuple:
    """``(periods, velocities)`` from a CSV file of ``period,velocity`` rows (s, km/s;
    ``#`` comments and one header line allowed); periods strictly increasing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"reference curve {path} does not exist")
    return _parse(path.read_text(), str(path))


def _parse(text, name):
    rows = []
    header_seen = False
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except (ValueError, IndexError):
            if rows or header_seen:
                raise ValueError(f"{name}:{n}: expected 'period,velocity', got {line!r}") from None
            header_seen = True
    if len(rows) < 2:
        raise ValueError(f"{name}: need at least two rows 'period,velocity'")
    t, v = (np.array(x, dtype=float) for x in zip(*rows))
    if np.any(np.diff(t) <= 0) or np.any(t <= 0) or np.any(v <= 0):
        raise ValueError(f"{name}: periods must be positive and increasing, velocities positive")
    return t, v


@lru_cache(maxsize=1)
def _default_table():
    text = resources.files("noisecorr.dispersion").joinpath("data/rayleigh_continental.csv").read_text()
    return _parse(text, "rayleigh_continental.csv")


def reference_curve(periods, velocities):
    """A callable ``c_ref(T)``: linear in ``log T``, constant beyond the table."""
    lt, v = np.log(np.asarray(periods, float)), np.asarray(velocities, float)

    def c_ref(t):
        return np.interp(np.log(np.asarray(t, dtype=float)), lt, v)

    return c_ref


def default_reference():
    """The package's continental Rayleigh reference as a callable ``c_ref(T)`` (km/s).

    Examples
    --------
    >>> round(float(default_reference()(20.0)), 2)
    3.6
    """
    return reference_curve(*_default_table())
