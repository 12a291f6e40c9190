"""The tiled path gives the stacks of the per-window path (CrossCorrelatePE + StackPE).

Tolerance: max |tiled - per-window| / max |per-window| < 1e-4 per pair (float32
accumulation in the BLAS product against complex128 sums; observed about 2e-7), and the
same window counts. Covered: tiles of 1 station, a partial last block, a single diagonal
tile, stations with gaps (missing windows), a station absent from the chunk, two chunks,
every cc_method, freq_norm "rma" (in-band bins only) and "none" (full band carried), and
the per-window tiled path for phase-weighted and robust stacks.
"""

import numpy as np
import pytest

from noisecorr.engine import WorkflowGraph, run
from noisecorr.tiles import carried_band, plan_tiles
from pes import CrossCorrelatePE, StackPE
from pes.tiles import TiledCorrelation
from tile_data import make_spectra, params

TOL = 1e-4


def stations_of(items):
    return sorted({i["seed_id"].rsplit(".", 1)[0] for i in items})


def per_window(p, items):
    g = WorkflowGraph()
    cc, st = CrossCorrelatePE(p), StackPE(p)
    g.connect(cc, "output", st, "input")
    out = run(g, inputs={cc: [{"input": it} for it in items]}).outputs[("StackPE", "output")]
    return {o["key"]: (o["stack"], o["n_windows"]) for o in out}


def tiled(p, items, block, workers=1, n_chunks=None, stations=None, mapping="sequential",
          store=None, panel=None, scratch=None, out_pairs=4096, **kw):
    stations = stations or stations_of(items)
    band = carried_band(p, items[0]["nfft"])
    plan = plan_tiles(len(stations), 20, band.stop - band.start, items[0]["nfft"],
                      2 * p.maxlag_samples + 1, workers=workers, block_size=block, store=store,
                      panel_size=panel, out_pairs=out_pairs)
    tc = TiledCorrelation(p, stations, plan, n_chunks=n_chunks, scratch=scratch)
    g = WorkflowGraph()
    g.add(tc)
    route = tc._resolve_input("input")[0]
    res = run(g, inputs={route: [{"input": it} for it in items]}, mapping=mapping, **kw)
    (outs,) = [v for (pe, port), v in res.outputs.items()
               if pe in ("TileStackPE", "StackPE") and port == "output"]
    # one stats item per TileCorrelatePE instance: the plan's workers, in every mapping
    stats = res.outputs[("TileCorrelatePE", "stats")]
    assert sorted(s["instance"] for s in stats) == list(range(plan.workers))
    n_chunks_seen = len({it["chunk"] for it in items})
    assert sum(s["tiles"] for s in stats) == n_chunks_seen * len(plan.tiles)
    got = {}
    for it in outs:
        if "keys" in it:
            for k, s, n in zip(it["keys"], it["stack"], it["n_windows"]):
                assert k not in got
                got[k] = (s, int(n))
        else:
            got[it["key"]] = (it["stack"], it["n_windows"])
    return got


def assert_same(ref, got):
    assert set(ref) == set(got)
    for k in ref:
        assert ref[k][1] == got[k][1], k
        scale = np.abs(ref[k][0]).max()
        assert np.abs(ref[k][0] - got[k][0]).max() <= TOL * scale, k


@pytest.fixture(scope="module")
def rma_items():
    return make_spectra(params())


@pytest.mark.parametrize("block", [1, 2, 3, 7, 50])
def test_block_sizes_with_gaps(rma_items, block):
    p = params()
    assert_same(per_window(p, rma_items), tiled(p, rma_items, block, workers=2))


@pytest.mark.parametrize("block, panel", [(3, 1), (3, 2), (7, 3), (50, 4)])
def test_disk_store_and_panels(rma_items, block, panel, tmp_path):
    """Factors spilled to a scratch file and tiles cut into receiver panels: same stacks,
    and the scratch file is gone afterwards (unlinked)."""
    p = params()
    got = tiled(p, rma_items, block, workers=2, store="disk", panel=panel, scratch=tmp_path)
    assert_same(per_window(p, rma_items), got)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n_chunks", [1, None])
@pytest.mark.parametrize("mapping", ["sequential", "multiprocess"])
def test_output_items_split_within_a_panel(rma_items, n_chunks, mapping):
    """A panel's pairs leave in items of at most ``out_pairs`` pairs (the plan's, so it
    reaches worker processes too); the stacks are the same."""
    p = params()
    kw = {"processes": 2, "workers": 2} if mapping == "multiprocess" else {}
    got = tiled(p, rma_items, 50, panel=7, n_chunks=n_chunks, out_pairs=4, mapping=mapping, **kw)
    assert_same(per_window(p, rma_items), got)


def test_disk_store_two_chunks_absent_station_deconv(rma_items, tmp_path):
    p = params(cc_method="deconv")
    items = make_spectra(p, n_stations=6, seconds=400.0)
    second = [dict(it, chunk=2000.0, starttimes=it["starttimes"] + 1000.0) for it in items]
    both = [it for it in items if not it["seed_id"].startswith("XX.S02.")] + second
    got = tiled(p, both, 4, workers=2, n_chunks=2, store="disk", panel=3, scratch=tmp_path,
                stations=stations_of(items))
    assert_same(per_window(p, both), got)


@pytest.mark.parametrize("stack_method", ["pws", "robust"])
def test_per_window_path_with_disk_store_and_panels(rma_items, stack_method, tmp_path):
    p = params(stack_method=stack_method)
    items = rma_items[:5]
    assert_same(per_window(p, items), tiled(p, items, 3, store="disk", panel=2, scratch=tmp_path))


@pytest.mark.parametrize("cc_method", ["xcorr", "coherency", "deconv"])
@pytest.mark.parametrize("freq_norm", ["rma", "phase_only", "none"])
def test_cc_methods_and_band(cc_method, freq_norm):
    p = params(cc_method=cc_method, freq_norm=freq_norm)
    items = make_spectra(p, n_stations=5, seconds=400.0)
    assert_same(per_window(p, items), tiled(p, items, 2))


def test_whitened_band_is_what_travels():
    p = params()
    band = carried_band(p, p.nfft)
    assert band.stop - band.start < 0.6 * (p.nfft // 2 + 1)
    assert carried_band(params(freq_norm="none"), p.nfft) == slice(0, p.nfft // 2 + 1)


def test_absent_station_and_two_chunks(rma_items):
    p = params()
    second = [dict(it, chunk=2000.0, starttimes=it["starttimes"] + 1000.0) for it in rma_items]
    items = [it for it in rma_items if not it["seed_id"].startswith("XX.S05.")] + second
    ref = per_window(p, items)
    got = tiled(p, items, 3, workers=2, stations=stations_of(rma_items))
    assert_same(ref, got)


def test_components():
    p = params(components=("ZZ", "ZN", "NE"))
    items = make_spectra(p, n_stations=4, seconds=300.0, components="ZNE")
    assert_same(per_window(p, items), tiled(p, items, 3))


@pytest.mark.parametrize("stack_method", ["pws", "robust"])
def test_per_window_tiled_path(rma_items, stack_method, caplog):
    p = params(stack_method=stack_method)
    items = rma_items[:5]
    with caplog.at_level("INFO"):
        got = tiled(p, items, 2)
    assert_same(per_window(p, items), got)
    assert "slower tiled path" in caplog.text


def test_rtz_refused():
    with pytest.raises(ValueError, match="ENZ component pairs only"):
        tiled(params(components=("RR",)), make_spectra(params(), n_stations=2, seconds=200.0), 1)
