"""The run summary says why workers idled (issue 26): the idle share of workers x engine
wall, its seconds by cause, and one sentence naming the largest cause when the share is
large (printed in the table and stored in summary.json)."""

import doctest
import json

import pytest

from noisecorr.workflow import idle as idle_module
from noisecorr.workflow import load_config, run_workflow
from noisecorr.workflow.idle import IDLE_NOTE, explain_idle
from noisecorr.workflow.runner import Report


def _worker(start=0.0, end=10.0, busy=10.0, **waits):
    return {"start": start, "end": end, "busy": busy,
            "waits": {k.replace("__", ":"): v for k, v in waits.items()}}


def test_docstring_examples():
    failures, tried = doctest.testmod(idle_module)
    assert tried > 0 and failures == 0


def test_more_workers_than_tiles_is_named():
    # worker 1 computed its one tile and stopped at 3 s; worker 2 had none
    workers = [_worker(0.5, 10.0, 9.0), _worker(0.5, 3.0, 2.4), _worker(0.5, 1.0, 0.4)]
    r = explain_idle(workers, 10.0, tiles_per_instance=[3, 1, 0])
    assert r["main"] == "finished early"
    assert r["seconds"]["finished early"] == pytest.approx(16.0)
    assert "too few tiles for 3 workers (4 tiles, 3, 1, 0 per worker)" in r["reason"]
    assert r["share"] == pytest.approx(1 - 11.8 / 30, abs=1e-4)


def test_input_bound_and_downstream_are_named():
    workers = [_worker(0.2, 10.0, 5.0, input__TileCorrelatePE=4.0), _worker(0.2, 10.0, 6.0, downstream=3.0)]
    r = explain_idle(workers, 10.0)
    assert r["main"] == "input:TileCorrelatePE"
    assert r["reason"].startswith("workers idle 45 %: waiting for input of TileCorrelatePE")
    assert r["reason"].endswith("(input bound)")
    r = explain_idle([_worker(0.2, 10.0, 5.0, downstream=4.5)], 10.0)
    assert r["main"] == "downstream" and "take their batches" in r["reason"]


def test_worker_start_up_is_named_with_its_seconds_per_worker():
    r = explain_idle([_worker(3.0, 10.0, 6.5), _worker(2.0, 10.0, 7.5)], 10.0)
    assert r["main"] == "start-up"
    assert r["reason"] == ("workers idle 30 %: starting the workers (process start, imports, "
                           "unpickling the graph: 2.5 s per worker)")


def test_causes_add_up_to_the_idle_time():
    workers = [_worker(1.0, 9.0, 5.0, input__A=1.0), _worker(2.0, 10.0, 7.0)]
    r = explain_idle(workers, 10.0)
    assert sum(r["seconds"].values()) == pytest.approx(20.0 - 12.0)
    assert r["seconds"]["engine loop"] == pytest.approx(8.0 - 3.0 - 1.0 - 1.0)


def test_no_timings_no_idle_entry():
    assert explain_idle([], 5.0) == {}


def _report(idle):
    return Report(out="o", results="o/results.h5", plot=None, mapping="multiprocess", stations=2, channels=2,
                  chunks=1, pairs_expected=1, pairs_written=1, pairs_resumed=0, windows_used=3,
                  windows_rejected={}, idle=idle)


def test_table_says_why_only_when_the_share_is_large():
    busy = explain_idle([_worker(0.0, 10.0, 9.9), _worker(0.0, 10.0, 9.8)], 10.0)
    assert busy["share"] < IDLE_NOTE
    assert "idle" not in _report(busy).table()
    idle = explain_idle([_worker(0.0, 10.0, 9.9), _worker(0.0, 2.0, 1.9)], 10.0, tiles_per_instance=[1, 0])
    line = [x for x in _report(idle).table().splitlines() if x.startswith("idle")]
    assert line == [f"{'idle':<22}{idle['reason']}"]
    assert "too few tiles for 2 workers" in line[0]


def test_sequential_sample_run_records_one_busy_worker(tmp_path):
    config = load_config(overrides={"out": str(tmp_path / "out")})
    report = run_workflow(config, plot=False)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["idle"] == report.idle
    assert report.idle["workers"] == 1
    # one process does everything: it never waits on a transport
    assert set(report.idle["seconds"]) == {"start-up", "finished early", "engine loop"}
    assert report.idle["share"] < IDLE_NOTE and "idle" not in report.table()
    # the runner's phases: the fixed cost outside the engine, by phase
    assert set(summary["phases"]) == {"build", "engine", "merge", "record_section"}
    assert summary["phases"]["engine"] == pytest.approx(summary["timings"]["wall"], abs=1e-3)
    assert all(v >= 0 for v in summary["phases"].values())
