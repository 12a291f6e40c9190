"""Monitoring: dv/v from the sub-stack (per-chunk) series of a results file.

:func:`measure` reads every pair's series (``substack: true`` runs: one correlation per
span of the calendar grid), takes a reference (the full stack or a period of it), measures
dv/v per pair and span with :func:`noisecorr.signal.dvv.stretching` or
:func:`~noisecorr.signal.dvv.mwcs` through the engine (``DvvPE``, any mapping), and
aggregates per station and over the network with inverse-variance weights
(:func:`noisecorr.signal.dvv.combine`). :func:`write` stores the result as HDF5 and CSV,
:mod:`noisecorr.monitoring.plot` draws it. The command is ``noisecorr dvv RESULTS``.

Sign: dv/v > 0 is a velocity increase (see :mod:`noisecorr.signal.dvv`).
"""

from .measure import DvvConfig, DvvResult, load_series, measure
from .io import read, write

__all__ = ["DvvConfig", "DvvResult", "load_series", "measure", "write", "read"]
