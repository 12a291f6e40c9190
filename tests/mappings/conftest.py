"""Fixtures of the mapping tests."""

import pytest


@pytest.fixture(scope="module")
def cluster():
    """A real ``distributed.LocalCluster`` of 2 worker processes (TCP on 127.0.0.1), shared by
    the tests of one module (a cluster start costs seconds) and closed after them."""
    from noisecorr.mappings.dask import local_cluster

    c = local_cluster(2, dashboard=False)
    yield c
    c.close()
