"""Lineage is complete and means the same under every mapping; rules select what is recorded."""

import json
import sqlite3

import numpy as np
import pytest

from noisecorr.engine import GraphError, run
from noisecorr.provenance.store import Store

from noisecorr.testing import lineage_graphs as graphs

RUN_ID = "0123456789abcdef"


def record(tmp_path, mapping, rules=None, fine=True, name="prov.sqlite", processes=3):
    g, inputs = graphs.graph(fine=fine)
    db = tmp_path / f"{mapping}-{name}"
    result = run(g, inputs=inputs, mapping=mapping, processes=processes,
                 provenance={"store": str(db), "run_id": RUN_ID, "rules": rules})
    return result, db


def tables(db):
    c = sqlite3.connect(db)
    out = {
        "entities": sorted(c.execute("SELECT entity_id, pe, port, label, meta, stored FROM entities")),
        "derived": sorted(c.execute("SELECT entity_id, source_id FROM derived")),
        "used": sorted(c.execute("SELECT a.pe, u.entity_id FROM used u JOIN activities a USING (activity_id)")),
        "generated": sorted(c.execute("SELECT e.entity_id, a.pe, a.kind FROM entities e "
                                      "LEFT JOIN activities a USING (activity_id)")),
    }
    c.close()
    return out


def assert_same_lineage(reference, db, generated=True):
    """The lineage rows of store ``db`` equal those of ``reference`` (entities, derivations,
    uses; and, with ``generated``, which PE generated each entity)."""
    a, b = tables(reference), tables(db)
    for name in ("entities", "derived", "used"):
        assert a[name] == b[name], name
    if generated:
        assert [g[:2] for g in a["generated"]] == [g[:2] for g in b["generated"]]


def recorded_workers(db):
    """The engine workers that recorded activities in store ``db``."""
    with sqlite3.connect(db) as c:
        return {w for (w,) in c.execute("SELECT DISTINCT worker FROM activities")}


def ancestors_by_pe(db, entity_id):
    with Store(db, create=False) as s:
        nodes, edges, truncated = s.lineage(entity_id, "ancestors", depth=10)
    assert not truncated
    return {n["entity_id"]: n for n in nodes}, edges


def test_outputs_unchanged_and_unwrapped(tmp_path):
    plain = run(*graphs.graph(), mapping="sequential")
    result, _ = record(tmp_path, "sequential")
    assert result.provenance_run_id == RUN_ID
    got = result.outputs[("Stack", "output")]
    want = plain.outputs[("Stack", "output")]
    assert [g["key"] for g in got] == [w["key"] for w in want]
    assert all(np.array_equal(g["stack"], w["stack"]) for g, w in zip(got, want))


def test_lineage_complete_sequential(tmp_path):
    _, db = record(tmp_path, "sequential")
    t = tables(db)
    by_pe = {}
    for eid, pe, port, *_ in t["entities"]:
        by_pe.setdefault((pe, port), []).append(eid)
    # 2 input dicts, 6 readings, 6 scaled, 3 pairs, 1 stack
    assert {k: len(v) for k, v in by_pe.items()} == {
        ("Fetch", "<input>"): 2, ("Fetch", "output"): 6,
        ("Scale", "output"): 6, ("Pair", "output"): 3, ("Stack", "output"): 1}
    derived = {}
    for e, s in t["derived"]:
        derived.setdefault(e, set()).add(s)
    # every item except the run's inputs derives from something; every id referenced exists
    ids = {e[0] for e in t["entities"]}
    assert set(derived) == ids - set(by_pe[("Fetch", "<input>")])
    assert all(s in ids for srcs in derived.values() for s in srcs)
    # a pair derives from exactly the two stations' scaled readings of its chunk
    for pid in by_pe[("Pair", "output")]:
        assert len(derived[pid]) == 2
    # the stack derives from its own pair's items (all three chunks), back to both raw stations
    (stack,) = by_pe[("Stack", "output")]
    assert derived[stack] == set(by_pe[("Pair", "output")])
    nodes, _ = ancestors_by_pe(db, stack)
    raw = sorted(n["meta"]["seed_id"] for n in nodes.values() if (n["pe"], n["port"]) == ("Fetch", "output"))
    assert raw == ["XX.A..Z"] * 3 + ["XX.B..Z"] * 3
    # each invocation used what it consumed; generation by the right activity kind
    gen = {e: (pe, kind) for e, pe, kind in t["generated"]}
    assert gen[stack] == ("Stack", "postprocess")
    assert all(gen[p] == ("Pair", "process") for p in by_pe[("Pair", "output")])
    assert {e for pe, e in t["used"] if pe == "Stack"} == set(by_pe[("Pair", "output")])


@pytest.mark.parametrize("processes", [2, 4])
def test_identical_across_mappings(tmp_path, processes):
    _, seq = record(tmp_path, "sequential")
    _, mp = record(tmp_path, "multiprocess", processes=processes)
    assert_same_lineage(seq, mp)
    assert len(recorded_workers(mp)) > 1  # the derivations did cross processes


def test_postprocess_default_lineage(tmp_path):
    """Without lineage keys a postprocess output derives from everything the instance consumed."""
    _, db = record(tmp_path, "sequential", fine=False)
    t = tables(db)
    pairs = {e for e, pe, port, *_ in t["entities"] if pe == "Pair"}
    stack = next(e for e, pe, *_ in t["entities"] if pe == "Stack")
    assert {s for e, s in t["derived"] if e == stack} == pairs


def test_rules_select_pes_metadata_and_products(tmp_path):
    rules = {"record": ["Fetch", "Pair", "Stack"], "metadata": ["seed_id"], "store": ["Pair.output"]}
    _, db = record(tmp_path, "multiprocess", rules=rules)
    t = tables(db)
    pes = {pe for _, pe, *_ in t["entities"]}
    fetch_inputs = {e for e, pe, port, *_ in t["entities"] if port == "<input>"}
    assert pes == {"Fetch", "Pair", "Stack"}
    # Scale is not recorded, yet a pair still derives from the raw readings it came from
    fetch = {e: json.loads(m) for e, pe, port, label, m, s in t["entities"] if (pe, port) == ("Fetch", "output")}
    for e, pe, port, label, meta, stored in t["entities"]:
        if pe == "Pair":
            srcs = {s for d, s in t["derived"] if d == e}
            assert len(srcs) == 2 and srcs <= set(fetch)
            assert stored == 1 and json.loads(meta) == {}
        elif pe == "Stack":
            assert stored == 0
    assert all(set(m) == {"seed_id"} for m in fetch.values())


def test_bad_options_fail_before_running(tmp_path):
    g, inputs = graphs.graph()
    with pytest.raises(GraphError, match="provenance_rules.record"):
        run(g, inputs=inputs, provenance={"store": str(tmp_path / "x.sqlite"), "rules": {"record": [1]}})
    with pytest.raises(GraphError, match="run_id"):
        run(g, inputs=inputs, provenance={"store": str(tmp_path / "x.sqlite"), "run_id": "../etc"})
    with pytest.raises(GraphError, match="unknown option"):
        run(g, inputs=inputs, provenance={"sotre": "x"})


def test_failed_run_is_marked(tmp_path):
    from noisecorr.engine import PEError
    from noisecorr.engine.examples import Collect
    from noisecorr.engine import IterativePE, WorkflowGraph

    class Boom(IterativePE):
        def _process(self, x):
            raise ValueError("boom")

    g, inputs = graphs.graph()
    scale = next(pe for pe in g.pes if pe.name == "Scale")
    boom = Boom()
    g.connect(scale, "output", boom, "input")
    db = tmp_path / "f.sqlite"
    with pytest.raises(PEError, match="Boom"):
        run(g, inputs=inputs, provenance={"store": str(db), "run_id": RUN_ID})
    with Store(db, create=False) as s:
        assert s.run(RUN_ID)["status"] == "failed"


MPI_SCRIPT = """
from noisecorr.engine import run
from noisecorr.testing import lineage_graphs as graphs
g, inputs = graphs.graph(fine=True)
run(g, inputs=inputs, mapping="mpi", provenance={{"store": {db!r}, "run_id": {run_id!r}}})
"""


@pytest.mark.mpi
def test_identical_under_mpi(tmp_path):
    """Derivations that cross MPI ranks are recorded with the same rows as sequential."""
    import os
    import subprocess
    import sys

    _, seq = record(tmp_path, "sequential")
    db = tmp_path / "mpi.sqlite"
    script = tmp_path / "prov_mpi.py"
    script.write_text(MPI_SCRIPT.format(db=str(db), run_id=RUN_ID))
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    assert os.path.exists(mpiexec), "install the mpi extra: pip install 'noisecorr[mpi]'"
    proc = subprocess.run([mpiexec, "-n", "3", sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_lineage(seq, db, generated=False)
    assert len(recorded_workers(db)) > 1, "the derivations should cross ranks"
