"""Dispersion PE: SNR and FTAN curves of one block of pairs (thin over
:func:`noisecorr.dispersion.table.measure_block`).

Input items ``{"block", "ccf" (n, 2 h + 1), "distance_km" (n,), "sampling_rate"}``; output
``{"block", "snr_causal", "snr_acausal", "snr_symmetric" (n,), "group_velocity",
"phase_velocity", "snr", "flags", "instantaneous_period" (n, m), "params"}``.
"""

from __future__ import annotations

import numpy as np

from noisecorr.dispersion.table import measure_block
from noisecorr.engine import IterativePE

__all__ = ["DispersionPE"]


class DispersionPE(IterativePE):
    """Measure SNR and dispersion of a block of pairs at ``periods`` (s); keyword
    arguments as :func:`noisecorr.dispersion.table.measure_block` (a ``reference``
    must be picklable under parallel mappings: a ``(periods, velocities)`` pair)."""

    def __init__(self, periods, name: str | None = None, **kwargs):
        super().__init__()
        if name:
            self.name = name
        self.periods = np.asarray(periods, dtype=float)
        self.kwargs = kwargs

    def _process(self, item):
        out = measure_block(item["ccf"], float(item["sampling_rate"]), item["distance_km"],
                            self.periods, **self.kwargs)
        return {"block": item["block"], **out}
