"""Lineage under the dask mapping: the same rows as under the sequential mapping.

Runs on a real ``distributed.LocalCluster`` of 2 worker processes (TCP on 127.0.0.1) with 3
engine workers, so that derivations cross Dask worker processes and two engine workers share
one process. The sequential run is the reference (the multiprocess and MPI cases are in
``test_lineage.py`` and ``test_workflow.py``).
"""

import sqlite3

import pytest

pytest.importorskip("distributed")

from test_lineage import RUN_ID, assert_same_lineage, record, recorded_workers  # noqa: E402

from noisecorr.engine import run  # noqa: E402
from noisecorr.testing import lineage_graphs as graphs  # noqa: E402
from noisecorr.workflow import build_workflow, load_config  # noqa: E402


def test_lineage_identical_under_dask(tmp_path, cluster):
    _, seq = record(tmp_path, "sequential")
    g, inputs = graphs.graph(fine=True)
    db = tmp_path / "dask.sqlite"
    result = run(g, inputs=inputs, mapping="dask", processes=3, scheduler=cluster.scheduler_address,
                 provenance={"store": str(db), "run_id": RUN_ID})
    assert result.provenance_run_id == RUN_ID
    assert_same_lineage(seq, db)
    assert recorded_workers(db) == {0, 1, 2}  # every engine worker recorded its own instances, two share a process
    with sqlite3.connect(db) as c:
        runs = c.execute("SELECT status, mapping, processes FROM runs WHERE run_id = ?", (RUN_ID,)).fetchall()
    assert runs == [("completed", "dask", 3)]


def workflow_rows(tmp_path, mapping, **options):
    config = load_config(overrides={"out": str(tmp_path / mapping), "provenance": True})
    wf = build_workflow(config)
    db = tmp_path / f"{mapping}.sqlite"
    run(wf.graph, inputs=wf.inputs, mapping=mapping, processes=3,
        provenance={"store": str(db), "run_id": "feedfacefeedface", "config": config.to_dict()}, **options)
    with sqlite3.connect(db) as c:
        return (sorted(c.execute("SELECT entity_id, pe, port, label, meta, stored FROM entities")),
                sorted(c.execute("SELECT entity_id, source_id FROM derived")))


def test_sample_workflow_lineage_identical_under_dask(tmp_path, cluster):
    seq = workflow_rows(tmp_path, "sequential")
    dk = workflow_rows(tmp_path, "dask", scheduler=cluster.scheduler_address)
    assert dk == seq
    entities, derived = dk
    assert sum(1 for e in entities if e[1] == "Stack") == 15
    assert any(e[1] == "CrossCorrelate" for e in entities) and derived
