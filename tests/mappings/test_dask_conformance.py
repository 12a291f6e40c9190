"""The conformance suite, unchanged, on the dask mapping: a real ``distributed.LocalCluster``
of worker processes talking TCP over 127.0.0.1, shared by the module (a cluster start costs
seconds), plus one run that starts and closes its own cluster."""

from __future__ import annotations

import multiprocessing

import pytest

from noisecorr.testing.conformance import CASES, WordCount, run_case

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("processes", [1, 2, 3, 5])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_dask(case, processes, cluster):
    # 3 and 5 engine workers on 2 Dask workers: several engine workers share a process
    run_case(case, "dask", processes=processes, scheduler=cluster.scheduler_address)


def test_default_processes_are_the_cluster_workers(cluster):
    result = run_case(WordCount(), "dask", scheduler=cluster.scheduler_address)
    assert result.mapping == "dask"
    # one engine worker per Dask worker: the plan placed the 3 Count instances on 2 workers
    from noisecorr.mappings.dask import cluster_workers

    assert cluster_workers(cluster.scheduler_address) == 2


def test_a_run_without_address_starts_and_closes_its_own_cluster():
    before = set(multiprocessing.active_children())
    result = run_case(WordCount(), "dask", processes=2)
    assert result.mapping == "dask"
    assert set(multiprocessing.active_children()) - before == set(), "the run left worker processes behind"


def test_dask_scheduler_address_setting_is_used(cluster, caplog):
    """Dask's own ``scheduler-address`` (DASK_SCHEDULER_ADDRESS) points runs at a cluster."""
    import dask

    caplog.set_level("INFO", logger="noisecorr.engine.dask")
    with dask.config.set({"scheduler-address": cluster.scheduler_address}):
        result = run_case(WordCount(), "dask", processes=2)
    assert result.mapping == "dask"
    assert "started a local cluster" not in caplog.text


def test_enact_command_on_a_cluster_from_the_environment(cluster):
    import os
    import subprocess
    import sys

    env = dict(os.environ, DASK_SCHEDULER_ADDRESS=cluster.scheduler_address)
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "enact", "noisecorr.engine.examples:chain_graph",
                           "--mapping", "dask", "-n", "2"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "mapping dask" in proc.stdout and "(200000, 39999800000)" in proc.stdout, proc.stdout
    assert "started a local cluster" not in proc.stderr
