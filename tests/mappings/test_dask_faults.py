"""Faults under the dask mapping, on a real LocalCluster of worker processes: a worker
process killed for real, PE errors that stop every worker, and the cluster staying usable."""

from __future__ import annotations

import signal
import time

import pytest

from noisecorr.engine import IterativePE, MappingError, PEError, WorkflowGraph, run
from noisecorr.testing.conformance import FailingPE, KillSelf, Range, WordCount, chain, run_case

pytestmark = pytest.mark.timeout(300)


class Slow(IterativePE):
    """Slow enough that the other workers are still busy when one fails; appends every item
    it processes to ``log`` (if given), so a test can see whether it still runs."""

    def __init__(self, delay=0.01, log=None):
        super().__init__()
        self.numprocesses = 2
        self.delay, self.log = delay, log

    def _process(self, x):
        time.sleep(self.delay)
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{x}\n")
        return x


class FailLate(IterativePE):
    def _process(self, x):
        if x == 5:
            time.sleep(1.5)
            raise RuntimeError("late failure on item 5")
        return x


def workers_of(cluster):
    from distributed import Client

    with Client(cluster.scheduler_address) as client:
        return set(client.scheduler_info(n_workers=-1)["workers"])


def wait_for_workers(cluster, n, timeout=150):
    """Wait (bounded, well inside the test timeout) until ``n`` workers are connected; return
    how many are. A nanny restart is Dask's doing and is slow on a loaded machine, so this
    waits for state rather than asserting a time."""
    from distributed import Client

    with Client(cluster.scheduler_address) as client:
        try:
            client.wait_for_workers(n, timeout=timeout)
        except TimeoutError:
            pass
        return len(client.scheduler_info(n_workers=-1)["workers"])


def test_pe_error_on_a_shared_cluster_then_the_cluster_still_runs(cluster):
    err = run_case(FailingPE(), "dask", processes=3, scheduler=cluster.scheduler_address)
    assert "dask worker" in str(err) and "Traceback" in err.remote_traceback
    # the other workers were stopped, not left running: a new run gets the whole cluster
    run_case(WordCount(), "dask", processes=2, scheduler=cluster.scheduler_address)


def test_a_failure_stops_the_busy_workers_of_a_shared_cluster(cluster, tmp_path):
    log = tmp_path / "slow.log"
    g = WorkflowGraph()
    g.connect(Range(10, name="Few"), "output", FailLate(), "input")
    g.connect(Range(400, name="Many"), "output", Slow(delay=0.1, log=str(log)), "input")  # 20 s of work
    with pytest.raises(PEError, match="late failure on item 5"):
        run(g, mapping="dask", processes=3, scheduler=cluster.scheduler_address)
    time.sleep(1.0)  # a stopped worker finishes the item in hand
    done = log.read_text().count("\n")
    time.sleep(1.5)
    assert log.read_text().count("\n") == done < 400, "the slow PE kept running after the run failed"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_worker_process_names_pe_and_item(cluster, sig):
    before = workers_of(cluster)
    with pytest.raises(PEError) as info:
        # the run's own timeout is far above the time a dead worker takes to be noticed, and
        # the test's timeout catches a hang
        run(chain(KillSelf(bad=23, sig=sig)), mapping="dask", processes=3, scheduler=cluster.scheduler_address)
    err = info.value
    assert err.pe == "KillSelf" and err.phase == "worker", err
    assert "left the cluster" in str(err) and "killed" in str(err)
    assert "23" in err.item, err.item
    # the killed worker is gone from the cluster (the nanny restarts it under a new address,
    # in its own time); the next run on the same cluster succeeds on the workers there are
    n = wait_for_workers(cluster, 2)
    assert n >= 1 and workers_of(cluster) != before
    run_case(WordCount(), "dask", processes=2, scheduler=cluster.scheduler_address)


def test_progress_reports_counts_from_every_worker(cluster):
    seen = []
    result = run(chain(Slow(), n=120), mapping="dask", processes=2, scheduler=cluster.scheduler_address,
                 progress=lambda totals: seen.append(totals))
    assert sorted(result.outputs[("Square", "output")]) == [x * x for x in range(120)]
    assert seen, "no progress report"
    last = seen[-1]
    assert last["Slow"]["in"] == 120 and last["Square"]["out"] == 120, last


def test_bad_options_and_addresses_fail_before_running():
    with pytest.raises(TypeError, match="unknown option"):
        run(chain(Slow()), mapping="dask", processes=1, scheduler="tcp://127.0.0.1:1", colour="red")
    with pytest.raises(OSError):
        run(chain(Slow()), mapping="dask", processes=1, scheduler="tcp://127.0.0.1:9", timeout=2)


def test_unknown_mapping_lists_dask():
    with pytest.raises(MappingError, match="dask"):
        run(chain(Slow()), mapping="daskk")
