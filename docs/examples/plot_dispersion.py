"""
Group velocity by FTAN
======================

Expected stacks of a dispersive medium, ``c(T) = 3.0 + 0.03 (T - 1)`` km/s, at three
distances (:func:`noisecorr.synth.dispersion.diffuse_ccf`), and their group velocities
measured by FTAN (:func:`noisecorr.signal.ftan.ftan`) against the exact
``U = c / (1 - (f / c) dc/df)``. Periods with fewer than three wavelengths between the
stations are flagged untrusted (open markers), not dropped.
"""

import matplotlib.pyplot as plt
import numpy as np

from noisecorr.signal.ftan import ftan
from noisecorr.signal.symmetric import symmetric
from noisecorr.synth.dispersion import DispersionModel, diffuse_ccf

model = DispersionModel.linear_period(3.0, 0.03)
distances = np.array([50.0, 150.0, 300.0])
ccf = diffuse_ccf(distances, model, 2.0, 300.0, band=(0.02, 0.04, 0.4, 0.8))
periods = np.array([4.0, 5.0, 7.0, 10.0, 14.0, 20.0])
curves = ftan(symmetric(ccf), 0.5, distances, periods,
              reference=lambda t: model.phase_velocity(1 / np.asarray(t)))

fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
fine = np.linspace(3.0, 22.0, 200)
ax.plot(fine, model.group_velocity(1 / fine), "k--", label="exact U")
for i, d in enumerate(distances):
    ok = curves.trusted[i]
    line, = ax.plot(periods[ok], curves.group_velocity[i, ok], "o", label=f"{d:.0f} km")
    ax.plot(periods[~ok], curves.group_velocity[i, ~ok], "o", mfc="none", color=line.get_color())
ax.set_xlabel("period (s)")
ax.set_ylabel("group velocity (km/s)")
ax.legend()
