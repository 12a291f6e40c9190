"""Block-tiled cross-correlation of thousands of stations with bounded memory.

Station spectra are computed once per chunk, cut to the in-band bins and sent only to the
workers whose tiles need them; each tile (block I x block J) computes the window-summed
cross-spectra of all its pairs as one batched matrix product per frequency (BLAS-3) and one
inverse FFT per pair (see :mod:`noisecorr.tiles.kernel`). :mod:`noisecorr.tiles.plan`
chooses the block size from a memory budget and deals tiles to workers. The engine PEs are
in :mod:`pes.tiles`.
"""

from .kernel import (assemble_block, carried_band, pairs_to_lags, station_factors,
                     tile_cross_spectra, tile_pair_index, tile_window_ccfs, window_grid)
from .plan import (TilePlan, assign_tiles, block_range, format_bytes, n_blocks, parse_memory,
                   plan_tiles, predict_peak_bytes, tile_cost, tile_pairs, tiles)

__all__ = ["TilePlan", "assign_tiles", "block_range", "format_bytes", "n_blocks", "parse_memory",
           "plan_tiles", "predict_peak_bytes", "tile_cost", "tile_pairs", "tiles",
           "assemble_block", "carried_band", "pairs_to_lags", "station_factors",
           "tile_cross_spectra", "tile_pair_index", "tile_window_ccfs", "window_grid"]
