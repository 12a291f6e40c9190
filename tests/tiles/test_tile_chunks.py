"""Tiled stacks over several chunks with station-days missing (issue 18).

Ground truth: the per-pair path (``CrossCorrelatePE -> StackPE``) on the same items. The
tiled path must give every pair once, with the stack of all its windows over all chunks
(same ``n_windows``, stacks within 1e-4 of the peak, see ``test_tile_equivalence``),
however the pairs of a panel fall into output items from chunk to chunk: the part size
(``out_pairs``) is set to a few pairs so that pairs change items when a station is missing.
A station-day reported absent must not hold its chunk's tiles (and spectra) until the end.
"""

import numpy as np
import pytest

from noisecorr.engine import WorkflowGraph, run
from noisecorr.results import merge_parts, open_results
from noisecorr.tiles import carried_band, plan_tiles
from pes import CrossCorrelatePE, StackPE
from pes.tiles import TileCorrelatePE, TiledCorrelation, TileRoutePE, TileStackPE
from pes.write import WriteResultsPE
from test_tile_equivalence import assert_same
from tile_data import make_spectra, params

TOL = 1e-4
N_STATIONS = 9
DAY = 10_000.0
#: station-days rejected upstream: (chunk index, station)
MISSING = {(1, "XX.S02."), (2, "XX.S05."), (2, "XX.S07."), (2, "XX.S00.")}


def sta(item):
    return item["seed_id"].rsplit(".", 1)[0]


def days(p, n_days=3, n_stations=N_STATIONS, components="Z", missing=MISSING):
    """Items of ``n_days`` chunks (independent noise each day) without the ``missing``
    station-days, and the rejection records of those (as ``PreprocessPE`` writes them)."""
    items, absent = [], []
    for d in range(n_days):
        for it in make_spectra(p, n_stations=n_stations, seconds=400.0, seed=10 + d,
                               components=components):
            it = dict(it, chunk=it["chunk"] + d * DAY, starttimes=it["starttimes"] + d * DAY)
            if (d, sta(it)) in missing:
                absent.append({"seed_id": it["seed_id"], "chunk": it["chunk"], "reason": "no data"})
            else:
                items.append(it)
    return items, absent


def per_pair(p, items):
    g = WorkflowGraph()
    cc, st = CrossCorrelatePE(p), StackPE(p)
    g.connect(cc, "output", st, "input")
    out = run(g, inputs={cc: [{"input": it} for it in items]}).outputs[("StackPE", "output")]
    return {o["key"]: (o["stack"], o["n_windows"]) for o in out}


def tile_plan(p, nfft, workers=2, block=5, panel=3, out_pairs=2, n_stations=N_STATIONS):
    band = carried_band(p, nfft)
    return plan_tiles(n_stations, 20, band.stop - band.start, nfft, 2 * p.maxlag_samples + 1,
                      workers=workers, block_size=block, panel_size=panel, out_pairs=out_pairs)


def stations(n=N_STATIONS):
    return [f"XX.S{k:02d}." for k in range(n)]


def tiled_graph(p, items, absent, plan, n_chunks, report, channels=None):
    tc = TiledCorrelation(p, stations(plan.n_stations), plan, n_chunks=n_chunks,
                          channels=channels)
    g = WorkflowGraph()
    g.add(tc)
    route = tc._resolve_input("input")[0]
    feed = [{"input": it} for it in items]
    if report:
        # the rejections arrive mixed in with the spectra, as they do from the preprocessing
        for k, rec in enumerate(absent):
            feed.insert(min(len(feed), 7 * k + 3), {"absent": rec})
    return g, tc, {route: feed}


def collect(outs):
    got = {}
    for it in outs:
        for k, s, n in zip(it["keys"], it["stack"], it["n_windows"]):
            assert k not in got, f"pair {k} emitted twice"
            got[k] = (s, int(n))
    return got


@pytest.fixture(scope="module")
def three_days():
    p = params()
    items, absent = days(p)
    return p, items, absent, per_pair(p, items)


@pytest.mark.parametrize("mapping", ["sequential", "multiprocess"])
@pytest.mark.parametrize("report", [True, False])
def test_missing_station_days_match_per_pair_path(three_days, mapping, report):
    p, items, absent, ref = three_days
    plan = tile_plan(p, items[0]["nfft"])
    g, _, inputs = tiled_graph(p, items, absent, plan, n_chunks=3, report=report)
    res = run(g, inputs=inputs, mapping=mapping, **({"processes": 2} if mapping != "sequential" else {}))
    got = collect(res.outputs[("TileStackPE", "output")])
    assert len(got) == N_STATIONS * (N_STATIONS - 1) // 2
    assert_same(ref, got)
    # a pair whose station missed a day has that day's windows only from the other days
    assert got["XX.S00.|XX.S02.|ZZ"][1] < got["XX.S01.|XX.S03.|ZZ"][1]
    stats = res.outputs[("TileCorrelatePE", "stats")]
    assert sum(s["tiles"] for s in stats) == 3 * len(plan.tiles)
    late = sum(s["tiles_at_end"] for s in stats)
    if report:
        assert late == 0  # no tile waited for the end of the run
    else:  # the tiles with a missing station of days 1 and 2 could only wait
        assert late > 0


def test_stack_kept_until_the_end_without_n_chunks(three_days):
    p, items, absent, ref = three_days
    plan = tile_plan(p, items[0]["nfft"], out_pairs=3)
    g, _, inputs = tiled_graph(p, items, absent, plan, n_chunks=None, report=True)
    got = collect(run(g, inputs=inputs).outputs[("TileStackPE", "output")])
    assert_same(ref, got)


@pytest.mark.parametrize("mapping, parallel", [("sequential", False), ("multiprocess", True)])
def test_results_file_has_every_window_of_every_pair(three_days, tmp_path, mapping, parallel):
    """The reported failure: the results file kept one of two partial stacks of a pair."""
    p, items, absent, ref = three_days
    plan = tile_plan(p, items[0]["nfft"])
    g, tc, inputs = tiled_graph(p, items, absent, plan, n_chunks=3, report=True)
    path = tmp_path / "r.h5"
    coords = {s[:-1]: {"latitude": 45.0, "longitude": 7.0 + 0.1 * k, "elevation": 0.0}
              for k, s in enumerate(stations())}
    writer = WriteResultsPE(path, p.to_dict(), coords, "2024-01-01", "2024-01-04", name="WriteResults")
    if parallel:
        writer.parallel, writer.numprocesses = True, 2
    g.connect(tc, "output", writer, "input", grouping="local" if parallel else None)
    res = run(g, inputs=inputs, mapping=mapping, **({"processes": 2} if parallel else {}))
    if parallel:
        merge_parts(path)
    assert sum(n for what, n in res.outputs[("WriteResults", "output")] if what == "written") == len(ref)
    with open_results(path) as r:
        assert len(r.pairs()) == len(ref)
        for key, (stack, n) in ref.items():
            a, b, _ = key.split("|")
            assert r.meta(a[:-1], b[:-1])["n_windows"] == n, key
            _, ccf = r.stack(a[:-1], b[:-1])
            assert np.abs(ccf - stack).max() <= TOL * np.abs(stack).max(), key


def test_missing_channel_does_not_hold_tiles():
    """A station without an N channel (``channels``) is not waited for on NN / ZN."""
    p = params(components=("ZZ", "ZN", "NN"))
    items, absent = days(p, n_days=2, n_stations=6, components="ZN", missing={(1, "XX.S01.")})
    items = [it for it in items if not it["seed_id"].startswith("XX.S03..HHN")]
    absent = [a for a in absent if not a["seed_id"].startswith("XX.S03..HHN")]
    channels = {s: ("Z" if s == "XX.S03." else "ZN") for s in stations(6)}
    plan = tile_plan(p, items[0]["nfft"], block=3, panel=2, out_pairs=2, n_stations=6)
    g, _, inputs = tiled_graph(p, items, absent, plan, n_chunks=2, report=True, channels=channels)
    res = run(g, inputs=inputs)
    assert sum(s["tiles_at_end"] for s in res.outputs[("TileCorrelatePE", "stats")]) == 0
    got = collect(res.outputs[("TileStackPE", "output")])
    assert_same(per_pair(p, items), got)
    assert "XX.S03.|XX.S04.|NN" not in got and "XX.S03.|XX.S04.|ZN" in got


class _Capture:
    """Keep what a PE writes, for driving one PE by hand (its process calls as the run
    loop makes them, generators run to the end)."""

    def write(self, name, data):
        self.sent.append((name, data))


class Router(_Capture, TileRoutePE):
    pass


class Correlator(_Capture, TileCorrelatePE):
    pass


class Stacker(_Capture, TileStackPE):
    pass


def drive(pe, port, item):
    out = pe.process({port: item})
    if out is not None:
        for _ in out:
            pass


def test_chunk_released_once_the_absent_station_is_reported():
    p = params()
    items, absent = days(p, n_days=2, missing={(0, "XX.S04.")})
    plan = tile_plan(p, items[0]["nfft"], workers=1)
    router = Router(p, stations(), plan)
    router.sent = []
    for it in items:
        drive(router, "input", it)
    routed = [d for _, d in router.sent]
    router.sent = []
    drive(router, "absent", absent[0])
    (marker,) = [d for _, d in router.sent]
    assert marker["absent"] and marker["station"] == 4 and "rcv" not in marker

    def day(d):
        return [r for r in routed if r["chunk"] == 1000.0 + d * DAY]

    for reported in (False, True):
        corr = Correlator(p, stations(), plan)
        corr.sent = []
        corr.preprocess()
        for r in day(0)[:5] + ([marker] if reported else []) + day(0)[5:]:
            drive(corr, "input", r)
        held = {k[0] for k in corr.state}
        out0 = [d for name, d in corr.sent if name == "output" and d["chunk"] == 1000.0]
        if reported:
            # every tile of day 0 computed, its store closed, before day 1 began
            assert held == set() and len(out0) >= len(plan.tiles)
            assert sum(len(d["keys"]) for d in out0) == 8 * 7 // 2
        else:  # the tiles with station 4's block wait, with all the day's spectra
            assert held == {1000.0} and {d["tile"] for d in out0} == {(1, 1)}
            assert len(corr.state[(1000.0, 0)]["store"]) == 8
        for r in day(1):
            drive(corr, "input", r)
        assert {k[0] for k in corr.state} == held  # day 1 was complete: released at once
        if reported:  # a second report of a computed chunk would compute its tiles again
            with pytest.raises(ValueError, match=r"XX\.S04\.\.HHZ: absence of chunk 1000\.0 "
                                                 r"arrived after every tile"):
                drive(corr, "input", dict(marker))
        for _ in corr.postprocess():
            pass
        (stats,) = [d for name, d in corr.sent if name == "stats"]
        assert stats["tiles_at_end"] == (0 if reported else 2)  # (0, 0) and (0, 1)
        assert stats["tiles"] == 2 * len(plan.tiles)


def test_absent_and_spectra_for_one_channel_chunk_refused():
    p = params()
    items, absent = days(p, n_days=1, missing={(0, "XX.S04.")})
    plan = tile_plan(p, items[0]["nfft"], workers=1)
    router = Router(p, stations(), plan)
    router.sent = []
    drive(router, "input", items[0])
    drive(router, "absent", {"seed_id": items[0]["seed_id"], "chunk": items[0]["chunk"],
                             "reason": "no data"})
    corr = Correlator(p, stations(), plan)
    corr.sent = []
    with pytest.raises(ValueError, match=r"XX\.S00\.\.HHZ: chunk 1000\.0 has spectra and is also "
                                         r"reported absent \(no data\)"):
        for _, d in router.sent:
            drive(corr, "input", d)


def _tile_item(chunk, keys, chunk_pairs, value, n=3):
    return {"tile": (0, 0), "panel": (0, 0), "chunk": chunk, "component": "ZZ",
            "chunk_pairs": chunk_pairs, "keys": keys, "source": [k.split("|")[0] for k in keys],
            "receiver": [k.split("|")[1] for k in keys], "source_id": keys, "receiver_id": keys,
            "ccf_sum": np.full((len(keys), 5), value, np.float32),
            "n_windows": np.full(len(keys), n, np.int64), "lags": np.arange(-2, 3) * 0.1,
            "sampling_rate": 10.0}


def test_stack_sums_by_pair_not_by_item():
    """Day 1 has its pairs in other items than day 0 (a station missing shifts them): each
    pair's sums still add up, and the tile is written as soon as its 2 chunks are complete."""
    p = params()
    stack = Stacker(p, n_chunks=2, out_pairs=2)
    stack.sent = []
    ab, ac, bc = "A|B|ZZ", "A|C|ZZ", "B|C|ZZ"
    drive(stack, "input", _tile_item(0.0, [ab, ac], 3, 1.0))
    drive(stack, "input", _tile_item(1.0, [ac], 2, 4.0, n=1))  # day 1: B absent... then
    drive(stack, "input", _tile_item(0.0, [bc], 3, 2.0))
    assert stack.sent == []  # day 1 is not complete yet
    drive(stack, "input", _tile_item(1.0, [ab], 2, 10.0, n=7))
    got = {k: (s, n) for _, it in stack.sent for k, s, n in zip(it["keys"], it["stack"], it["n_windows"])}
    assert all(len(it["keys"]) <= 2 for _, it in stack.sent)
    assert got[ab][1] == 10 and np.allclose(got[ab][0], 11.0 / 10)
    assert got[ac][1] == 4 and np.allclose(got[ac][0], 5.0 / 4)
    assert got[bc][1] == 3 and np.allclose(got[bc][0], 2.0 / 3)
    assert stack.state == {}  # nothing left for the end


def test_stack_refuses_a_pair_twice_in_one_chunk():
    p = params()
    stack = Stacker(p, n_chunks=2)
    stack.sent = []
    drive(stack, "input", _tile_item(0.0, ["A|B|ZZ"], 3, 1.0))
    with pytest.raises(ValueError, match=r"pair A\|B\|ZZ: chunk 0.0 of tile \(0, 0\) brought it twice"):
        drive(stack, "input", _tile_item(0.0, ["A|B|ZZ"], 3, 1.0))
    with pytest.raises(ValueError, match="more than the 1 announced"):
        drive(stack, "input", _tile_item(1.0, ["A|B|ZZ", "A|C|ZZ"], 1, 1.0))


def test_empty_tile_chunk_completes_the_chunk():
    """A tile-chunk without any pair sends one empty item; the stack counts that chunk."""
    p = params()
    stack = Stacker(p, n_chunks=2)
    stack.sent = []
    drive(stack, "input", _tile_item(0.0, [], 0, 0.0))
    drive(stack, "input", _tile_item(1.0, ["A|B|ZZ"], 1, 2.0, n=4))
    ((_, it),) = stack.sent
    assert it["keys"] == ["A|B|ZZ"] and it["n_windows"].tolist() == [4]


@pytest.mark.mpi
def test_missing_station_days_under_mpi():
    """The same multi-day run with missing station-days under ``mpiexec -n 2`` (this file
    run as a script, below): every pair once, as the per-pair path, no tile at the end."""
    import subprocess
    import sys
    from pathlib import Path

    mpiexec = Path(sys.executable).parent / "mpiexec"
    assert mpiexec.exists(), f"no mpiexec next to {sys.executable}: pip install -e '.[mpi]'"
    proc = subprocess.run([str(mpiexec), "-n", "2", sys.executable, __file__], capture_output=True,
                          text=True, timeout=240, cwd=Path(__file__).parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"pairs {N_STATIONS * (N_STATIONS - 1) // 2} tiles_at_end 0" in proc.stdout


if __name__ == "__main__":  # one rank of test_missing_station_days_under_mpi
    from noisecorr.mappings import load

    p = params()
    items, absent = days(p)
    plan = tile_plan(p, items[0]["nfft"])
    g, _, inputs = tiled_graph(p, items, absent, plan, n_chunks=3, report=True)
    res = run(g, inputs=inputs, mapping="mpi")
    if load("mpi").is_root():
        got = collect(res.outputs[("TileStackPE", "output")])
        assert_same(per_pair(p, items), got)
        late = sum(s["tiles_at_end"] for s in res.outputs[("TileCorrelatePE", "stats")])
        print(f"pairs {len(got)} tiles_at_end {late}")
