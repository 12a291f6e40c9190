"""Tile planning under memory budgets, and the refuse-to-start message."""

import pytest

from noisecorr.tiles import (assign_tiles, format_bytes, parse_memory, plan_tiles,
                             predict_peak_bytes, tile_cost, tiles)
from noisecorr.tiles.plan import OUT_PAIRS, PROCESS_OVERHEAD

# 1,000 stations x 24 h at 20 Hz, cc_len = step = 1800 s, 0.05-2 Hz, maxlag 200 s
BIG = dict(n_stations=1000, n_windows=48, n_freq_band=7021, nfft=72000, n_lags=8001)


@pytest.mark.parametrize("text, expected", [("8GB", 8 * 10**9), ("8 gb", 8 * 10**9),
                                            ("1.5GiB", int(1.5 * 2**30)), ("512MiB", 512 * 2**20),
                                            ("2e9", 2 * 10**9), (4096, 4096), ("10k", 10**4)])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["", "8 parsecs", "-1GB", "0", True, "GB"])
def test_parse_memory_rejects(bad):
    with pytest.raises(ValueError, match="memory"):
        parse_memory(bad)


@pytest.mark.parametrize("budget, workers", [("8GB", 1), ("8GB", 2), ("16GB", 2), ("64GB", 8)])
def test_plan_fits_budget_per_worker(budget, workers):
    plan = plan_tiles(**BIG, memory_budget=budget, workers=workers)
    assert plan.peak_bytes <= parse_memory(budget) // workers
    assert plan.n_blocks == -(-1000 // plan.block_size)
    assert len(plan.tiles) == plan.n_blocks * (plan.n_blocks + 1) // 2
    assert sum(plan.worker_pairs(w) for w in range(workers)) == 1000 * 999 // 2


def test_larger_budget_never_gives_a_worse_plan():
    """More memory: the factors move from disk to memory, or the blocks grow."""
    plans = [plan_tiles(**BIG, memory_budget=m, workers=2, overhead=PROCESS_OVERHEAD)
             for m in ("4GB", "6GB", "8GB", "12GB", "24GB")]
    for a, b in zip(plans, plans[1:]):
        assert (a.store, b.store) == ("disk", "memory") or (
            a.store == b.store and (b.block_size, b.panel_size) >= (a.block_size, a.panel_size))
    assert plans[0].store == "disk" and plans[-1].store == "memory"


def test_thousand_stations_in_6GB_spill_to_disk_with_efficient_blocks():
    """Keeping 1,000 stations' factors in memory (2.7 GB per worker) leaves too little for
    efficient tiles in 3 GB per worker: the plan puts the factors on disk and keeps blocks
    of >= 96 stations and panels of >= 32, so the products stay near the BLAS peak; with
    8 GB, panels of >= 96."""
    plan = plan_tiles(**BIG, memory_budget="6GB", workers=2, overhead=PROCESS_OVERHEAD)
    assert plan.store == "disk" and plan.block_size >= 96 and plan.panel_size >= 32
    more = plan_tiles(**BIG, memory_budget="8GB", workers=2, overhead=PROCESS_OVERHEAD)
    assert more.store == "disk" and more.block_size >= 96 and more.panel_size >= 96
    assert plan.breakdown["resident_spectra"] == 48 * 7021 * 8  # one station read back
    assert plan.peak_bytes <= 3 * 10**9
    with pytest.raises(MemoryError, match="factors on memory: resident spectra 2.7 GB"):
        plan_tiles(**BIG, memory_budget="6GB", workers=2, overhead=PROCESS_OVERHEAD, store="memory")


def test_memory_store_when_it_fits():
    plan = plan_tiles(200, 48, 7021, 72000, 8001, "8GB", workers=2)
    assert plan.store == "memory" and plan.block_size == 100


def test_panel_bounds_cross_spectra():
    whole = predict_peak_bytes(10, 200, 48, 7021, 72000, 8001)
    panel = predict_peak_bytes(10, 200, 48, 7021, 72000, 8001, panel=25)
    assert whole["tile_cross_spectra"] == 8 * panel["tile_cross_spectra"] == 7021 * 200 * 200 * 8
    # the lags leave in items of at most OUT_PAIRS pairs, whatever the panel
    assert whole["tile_output"] == panel["tile_output"] == 2 * OUT_PAIRS * 8001 * 4
    small = predict_peak_bytes(10, 20, 48, 7021, 72000, 8001, panel=5)
    assert small["tile_output"] == 2 * 100 * 8001 * 4


def test_out_pairs_is_a_plan_parameter():
    """The part size travels with the plan (to every worker process) and bounds the
    output items in the prediction."""
    assert plan_tiles(50, 4, 10, 64, 9, block_size=10).out_pairs == OUT_PAIRS
    plan = plan_tiles(50, 4, 10, 64, 9, block_size=10, out_pairs=7)
    assert plan.out_pairs == 7
    assert plan.breakdown["tile_output"] == 2 * 7 * 9 * 4
    with pytest.raises(ValueError, match="out_pairs must be >= 1, got 0"):
        plan_tiles(50, 4, 10, 64, 9, block_size=10, out_pairs=0)


def test_refuses_to_start_with_what_it_needs():
    with pytest.raises(MemoryError) as err:
        plan_tiles(**BIG, memory_budget="2GB", workers=2, overhead=PROCESS_OVERHEAD)
    msg = str(err.value)
    assert "1000 stations x 48 windows x 7021 in-band bins need at least" in msg
    assert "per worker" in msg and "budget is 2.0 GB" in msg and "resident spectra" in msg


def test_forced_block_size_checked_against_budget():
    plan = plan_tiles(**BIG, memory_budget="8GB", workers=2, block_size=32)
    assert plan.block_size == 32
    with pytest.raises(MemoryError):
        plan_tiles(**BIG, memory_budget="8GB", workers=2, block_size=512, store="memory")
    assert plan_tiles(**BIG, memory_budget="8GB", workers=2, block_size=512).store == "disk"


def test_stack_sums_count_for_several_chunks():
    one = plan_tiles(100, 48, 7021, 72000, 8001, "8GB", workers=2)
    many = plan_tiles(100, 48, 7021, 72000, 8001, "8GB", workers=2, n_chunks=30)
    assert many.breakdown["stack_sums"] > 0 == one.breakdown["stack_sums"]


def test_deconv_carries_two_factor_arrays():
    a = predict_peak_bytes(100, 50, 48, 7021, 72000, 8001)
    b = predict_peak_bytes(100, 50, 48, 7021, 72000, 8001, n_factors=2)
    assert b["resident_spectra"] == 2 * a["resident_spectra"]


@pytest.mark.parametrize("nb, workers", [(1, 2), (5, 2), (16, 2), (20, 7), (45, 64)])
def test_assignment_is_balanced(nb, workers):
    tl = tiles(nb)
    costs = [tile_cost(t, 10, nb * 10 - 3) for t in tl]
    owners = assign_tiles(tl, costs, workers)
    load = [sum(c for c, o in zip(costs, owners) if o == w) for w in range(workers)]
    assert max(load) - min(load) <= max(costs)


def test_format_bytes():
    assert format_bytes(3.2e9) == "3.2 GB" and format_bytes(12) == "12 B"
