"""The conformance suite, unchanged, on the dask mapping: a real ``distributed.LocalCluster``
of worker processes talking TCP over 127.0.0.1, shared by the module (a cluster start costs
seconds), plus one run that starts and closes its own cluster."""

from __future__ import annotations

import multiprocessing

import pytest

from noisecorr.testing.conformance import CASES, WordCount, run_case

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster():
    from noisecorr.mappings.dask import local_cluster

    c = local_cluster(2, dashboard=False)
    yield c
    c.close()


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
