"""The seismology workflow on the dask mapping gives the sequential mapping's results.

Mirrors tests/workflow/test_run_sample.py (the sample stations against the committed
reference within 1e-4 of each stack's peak, and the travel times against the synthetic
truth) and tests/tiles/test_tile_equivalence.py (the tiled stage against the per-window
path, within 1e-4), on a real LocalCluster of worker processes (TCP on 127.0.0.1) shared
by the module; one run starts its own cluster, as ``noisecorr run --mapping dask`` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for sub in ("workflow", "tiles"):
    if str(ROOT / "tests" / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / "tests" / sub))

from test_run_sample import check_against_reference, check_travel_times  # noqa: E402
from test_tile_equivalence import assert_same, per_window, tiled  # noqa: E402
from tile_data import make_spectra, params  # noqa: E402

from noisecorr.cli import main  # noqa: E402
from noisecorr.workflow import load_config, run_workflow  # noqa: E402

pytestmark = pytest.mark.timeout(600)


def test_sample_run_on_its_own_local_cluster_matches_reference_and_truth(tmp_path, caplog):
    caplog.set_level("INFO", logger="noisecorr.engine.dask")
    seen = []
    config = load_config(overrides={"out": str(tmp_path / "out"), "mapping": "dask", "processes": 2,
                                    "memory": "4GB"})
    report = run_workflow(config, progress=lambda totals: seen.append(totals))
    assert report.mapping == "dask"
    assert report.pairs_written == 15 and report.stations == 6 and not report.skipped
    check_against_reference(report.results)
    check_travel_times(report.results)
    # the planner divided --memory over the 2 workers, as for multiprocess
    from noisecorr.tiles.plan import parse_memory

    m = report.memory
    assert m["budget_bytes"] == parse_memory("4GB")
    assert m["workers"] == 2 and m["per_worker_budget_bytes"] == m["budget_bytes"] // 2
    assert seen and seen[-1]["WriteResults"]["in"] > 0, "no progress from the workers"
    assert "started a local cluster of 2 worker process(es)" in caplog.text
    # and Dask's workers got that same per-worker budget as their memory_limit (what the
    # scheduler reports for them, not Dask's "auto" share of the machine's memory)
    from dask.utils import format_bytes

    assert f"(memory limit {format_bytes(m['per_worker_budget_bytes'])} per worker)" in caplog.text


def test_station_spectra_reach_each_tile_worker_once(tmp_path, cluster):
    """Tiles are the unit of work: each station's factors reach every worker that owns one
    of its tiles exactly once (no copy per pair, none lost), and each of the 2 tile
    correlators (one per worker) reports its own tiles."""
    from noisecorr.engine import run
    from noisecorr.workflow import build_workflow

    wf = build_workflow(load_config(overrides={"out": str(tmp_path / "o"), "mapping": "dask", "processes": 2}))
    route = wf.pes["TileRoutePE"]
    plan = route.plan
    assert plan.workers == 2
    result = run(wf.graph, inputs=wf.inputs, mapping="dask", processes=2, scheduler=cluster.scheduler_address)
    # the sample: 6 stations, one Z channel each, one chunk
    expected = sum(len(route.block_workers[plan.block_of(st)]) for st in range(len(route.stations)))
    assert result.counts["Whiten"]["out"]["output"] == 6
    assert result.counts["TileCorrelatePE"]["in"]["input"] == expected
    stats = result.outputs[("TileCorrelatePE", "stats")]
    assert sorted(s["instance"] for s in stats) == [0, 1]
    assert sum(s["tiles"] for s in stats) == len(plan.tiles)


@pytest.mark.parametrize("store", [None, "disk"])
def test_tile_kernel_graph_on_dask_equals_per_window(cluster, store, tmp_path):
    p = params()
    items = make_spectra(p)
    kw = dict(store="disk", panel=2, scratch=tmp_path) if store else {}
    got = tiled(p, items, 3, workers=2, mapping="dask", processes=2, scheduler=cluster.scheduler_address, **kw)
    assert_same(per_window(p, items), got)


def test_two_chunks_and_an_absent_station_on_dask(cluster):
    p = params(cc_method="deconv")
    items = make_spectra(p, n_stations=6, seconds=400.0)
    second = [dict(it, chunk=2000.0, starttimes=it["starttimes"] + 1000.0) for it in items]
    both = [it for it in items if not it["seed_id"].startswith("XX.S02.")] + second
    stations = sorted({i["seed_id"].rsplit(".", 1)[0] for i in items})
    got = tiled(p, both, 4, workers=2, n_chunks=2, stations=stations, mapping="dask", processes=2,
                scheduler=cluster.scheduler_address)
    assert_same(per_window(p, both), got)


def test_cli_run_on_a_scheduler_takes_its_workers(tmp_path, cluster, capsys):
    out = tmp_path / "cli"
    code = main(["-q", "run", "--mapping", "dask", "--scheduler", cluster.scheduler_address, "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "pairs written         15 of 15" in printed and "dask" in printed, printed
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["memory"]["workers"] == 2, "-n should default to the cluster's 2 workers"
    check_against_reference(out / "results.h5")


def test_cli_refuses_a_scheduler_without_the_dask_mapping(tmp_path, capsys):
    code = main(["run", "--mapping", "multiprocess", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path)])
    assert code == 2
    assert "--scheduler" in capsys.readouterr().err


def test_local_cluster_workers_hold_the_given_memory_limit():
    """A local cluster started with a per-worker budget: each worker's memory manager has that
    limit, nothing is spilled or paused, and the nanny kills only above the whole budget."""
    import dask
    import distributed

    from noisecorr.mappings.dask import local_cluster

    cluster = local_cluster(2, memory_limit="1.5GB", dashboard=False)
    try:
        with distributed.Client(cluster.scheduler_address) as client:
            limits = client.run(lambda dask_worker: dask_worker.memory_manager.memory_limit)
            fractions = client.run(lambda: [dask.config.get(f"distributed.worker.memory.{k}")
                                            for k in ("target", "spill", "pause", "terminate")])
            reported = {w["memory_limit"] for w in client.scheduler_info()["workers"].values()}
    finally:
        cluster.close()
    assert len(limits) == 2 and set(limits.values()) == {1_500_000_000} == reported
    assert all(f == [False, False, False, 1.0] for f in fractions.values())
