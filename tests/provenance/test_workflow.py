"""The ambient-noise workflow records the same lineage under sequential and multiprocess."""

import sqlite3

from noisecorr.engine import run
from noisecorr.workflow import build_workflow, load_config


def record(tmp_path, mapping):
    config = load_config(overrides={"out": str(tmp_path / mapping), "provenance": True})
    wf = build_workflow(config)
    db = tmp_path / f"{mapping}.sqlite"
    run(wf.graph, inputs=wf.inputs, mapping=mapping, processes=3,
        provenance={"store": str(db), "run_id": "feedfacefeedface", "config": config.to_dict()})
    with sqlite3.connect(db) as c:
        return (sorted(c.execute("SELECT entity_id, pe, port, label, meta, stored FROM entities")),
                sorted(c.execute("SELECT entity_id, source_id FROM derived")))


def test_sample_workflow_lineage_identical(tmp_path):
    seq, mp = record(tmp_path, "sequential"), record(tmp_path, "multiprocess")
    assert seq == mp
    entities, derived = seq
    assert sum(1 for e in entities if e[1] == "Stack") == 15
    sources = {}
    for e, s in derived:
        sources.setdefault(e, set()).add(s)
    pe = {e[0]: e[1] for e in entities}
    for e in entities:
        if e[1] == "CrossCorrelate":  # a pair's correlations: the two channels' whitened spectra
            assert sorted(pe[s] for s in sources[e[0]]) == ["Whiten", "Whiten"]
        if e[1] == "Stack":
            assert {pe[s] for s in sources[e[0]]} == {"CrossCorrelate"}
