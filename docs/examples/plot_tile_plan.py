"""
The tile plan of 1,000 stations
===============================

The tiled correlation stage cuts the stations into blocks of ``B`` consecutive stations; a
tile is a pair of blocks ``(I, J)``, ``I <= J``, and holds the station pairs ``i < j`` with
``i`` in ``I`` and ``j`` in ``J``, so every one of the ``N (N - 1) / 2`` pairs lies in exactly
one tile. :func:`noisecorr.tiles.plan.plan_tiles` chooses the block size, the receiver panel
and where the station factors live (memory or disk) for a memory budget, and deals the tiles
to the workers (longest first, to the least loaded), so that each gets about the same number
of pairs.

Here: 1,000 stations, one day of 30-minute windows every 30 minutes (48 windows), 20 Hz,
0.05-2 Hz whitened band (7,021 bins of the zero-padded FFT of 72,000 points), maxlag 200 s
(8,001 lags), 4 workers with 64 GB. Each cell of the pair matrix is coloured by the worker
that computes it; the lines are the block boundaries.
"""

import matplotlib.pyplot as plt
import numpy as np

from noisecorr.tiles.plan import PROCESS_OVERHEAD, block_range, format_bytes, plan_tiles

N, WINDOWS, BAND, NFFT, LAGS, WORKERS = 1000, 48, 7021, 72000, 8001, 4
plan = plan_tiles(N, WINDOWS, BAND, NFFT, LAGS, "64GB", workers=WORKERS, overhead=PROCESS_OVERHEAD)
print(f"block {plan.block_size}, panel {plan.panel_size}, {plan.n_blocks} blocks, "
      f"{len(plan.tiles)} tiles, factors in {plan.store}, peak {format_bytes(plan.peak_bytes)} per worker")
print("pairs per worker:", [plan.worker_pairs(w) for w in range(WORKERS)], "of", N * (N - 1) // 2)

owner = np.full((N, N), np.nan)
for (bi, bj), worker in zip(plan.tiles, plan.owners):
    ri, rj = block_range(bi, plan.block_size, N), block_range(bj, plan.block_size, N)
    owner[ri.start:ri.stop, rj.start:rj.stop] = worker
owner[np.tril_indices(N)] = np.nan                 # only pairs i < j exist
assert np.count_nonzero(~np.isnan(owner)) == N * (N - 1) // 2

fig, ax = plt.subplots(figsize=(6, 5.2), layout="constrained")
cmap = plt.get_cmap("tab10", WORKERS)
image = ax.imshow(owner, cmap=cmap, vmin=-0.5, vmax=WORKERS - 0.5, interpolation="nearest")
for edge in range(plan.block_size, N, plan.block_size):
    ax.axhline(edge - 0.5, color="k", lw=0.6)
    ax.axvline(edge - 0.5, color="k", lw=0.6)
for (bi, bj), worker in zip(plan.tiles, plan.owners):
    ax.text((bj + 0.5) * plan.block_size, (bi + 0.5) * plan.block_size, f"({bi},{bj})",
            ha="center", va="center", fontsize=8)
ax.set_xlabel("receiver station j")
ax.set_ylabel("source station i")
ax.set_title(f"{N} stations, block {plan.block_size}: tiles and their workers")
fig.colorbar(image, ax=ax, ticks=range(WORKERS), label="worker")

# %%
# What a worker's memory goes to
# ------------------------------
# The planner's prediction for the busiest worker, by item, with 64 GB and with 16 GB for the
# four workers. With 16 GB the station factors no longer fit in memory next to efficient
# blocks: they go to a scratch file and only the tile being computed is resident, and the
# panel shrinks to keep the cross-spectra of one panel within the budget.
tight = plan_tiles(N, WINDOWS, BAND, NFFT, LAGS, "16GB", workers=WORKERS, overhead=PROCESS_OVERHEAD)
items = [k for k in plan.breakdown if k != "total"]
fig2, ax2 = plt.subplots(figsize=(7, 3.2), layout="constrained")
y = np.arange(len(items))
for offset, p, label in ((-0.2, plan, "64 GB"), (0.2, tight, "16 GB")):
    ax2.barh(y + offset, [p.breakdown[k] / 1e9 for k in items], height=0.38,
             label=f"{label}: block {p.block_size}, panel {p.panel_size}, {p.store}, "
                   f"peak {format_bytes(p.peak_bytes)}")
ax2.set_yticks(y)
ax2.set_yticklabels([k.replace("_", " ") for k in items])
ax2.invert_yaxis()
ax2.set_xlabel("GB per worker")
ax2.legend(fontsize=8, loc="lower right")
print(f"16 GB: block {tight.block_size}, panel {tight.panel_size}, factors on {tight.store}, "
      f"peak {format_bytes(tight.peak_bytes)} <= {format_bytes(tight.budget_bytes / WORKERS)}")
