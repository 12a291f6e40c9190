"""Storm components run the shared run loop: heartbeats during long calls, provenance, imports.

Each test packages a graph and runs it under the protocol harness
(:class:`noisecorr.testing.storm_harness.LocalStormHarness`), which plays the Java side of
Storm's multilang protocol and kills a bolt that leaves a heartbeat unanswered for longer
than its subprocess timeout, as Storm's ``ShellBolt`` does.
"""

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
import time

import cloudpickle
import numpy as np
import pytest
import yaml

from noisecorr.engine import EngineError, GenericPE, IterativePE, PEError, ProducerPE, WorkflowGraph, run
from noisecorr.mappings.storm.package import package
from noisecorr.testing import lineage_graphs
from noisecorr.testing.conformance import Range
from noisecorr.testing.storm_harness import LocalStormHarness

pytestmark = pytest.mark.storm

#: Seconds one PE call lasts in the heartbeat test: four times the harness's timeout.
SLOW_SECONDS = 2.0
HEARTBEAT_TIMEOUT = 0.5
HEARTBEAT_INTERVAL = 0.1
RUN_ID = "fedcba9876543210"


@contextlib.contextmanager
def by_value():
    """Pickle this module's PE classes by value, so the components need not import it."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


class Slow(IterativePE):
    """One call lasts SLOW_SECONDS (a large tile, as far as Storm can tell)."""

    def _process(self, x):
        time.sleep(SLOW_SECONDS)
        return x + 100


class HarnessLoaded(IterativePE):
    """Writes whether the harness module is loaded in the process running this PE."""

    def _process(self, x):
        return "noisecorr.testing.storm_harness" in sys.modules


def named(pe, name):
    pe.name = name
    return pe


def slow_package(tmp_path):
    g = WorkflowGraph()
    src, slow = Range(1), named(Slow(), "Slow")
    g.connect(src, "output", slow, "input")
    with by_value():
        return package(g.describe(), tmp_path / "pkg", python=sys.executable)


def test_bolt_answers_heartbeats_while_a_long_pe_call_runs(tmp_path):
    pkg = slow_package(tmp_path)
    harness = LocalStormHarness(pkg.root, timeout=120, heartbeat_interval=HEARTBEAT_INTERVAL,
                                subprocess_timeout=HEARTBEAT_TIMEOUT)
    result = harness.run()
    assert result.outputs[("Slow", "output")] == [100]
    (task,) = harness.component_tasks[pkg.layout["pes"]["Slow"]["component"]]
    during = [held for t, held in harness.heartbeat_answers if t == task and held]
    # the one data tuple was held (unacked) for a 2 s call: heartbeats were answered meanwhile
    assert len(during) >= 3, harness.heartbeat_answers


FAKE_BOLT = """
import json, os, sys
def read():
    lines = []
    for line in sys.stdin.buffer:
        if line.strip() == b"end":
            return json.loads(b"".join(lines))
        lines.append(line)
    sys.exit(0)
setup = read()
open(os.path.join(setup["pidDir"], str(os.getpid())), "w").close()
sys.stdout.write(json.dumps({"pid": os.getpid()}) + "\\nend\\n")
sys.stdout.flush()
while True:  # takes tuples and heartbeats, answers nothing (a component stuck in a call)
    read()
"""


def test_harness_kills_a_bolt_that_leaves_heartbeats_unanswered(tmp_path):
    """The control of the test above: the harness's timeout does fire."""
    pkg = slow_package(tmp_path)
    fake = tmp_path / "fake_bolt.py"
    fake.write_text(FAKE_BOLT)
    topology = yaml.safe_load(pkg.yaml.read_text())
    component = pkg.layout["pes"]["Slow"]["component"]
    (bolt,) = [b for b in topology["bolts"] if b["id"] == component]
    bolt["constructorArgs"][0] = [sys.executable, str(fake)]
    pkg.yaml.write_text(yaml.safe_dump(topology, sort_keys=False))
    harness = LocalStormHarness(pkg.root, timeout=120, heartbeat_interval=HEARTBEAT_INTERVAL,
                                subprocess_timeout=HEARTBEAT_TIMEOUT)
    with pytest.raises(EngineError, match=rf"did not answer a heartbeat within {HEARTBEAT_TIMEOUT} s"):
        harness.run()


def test_production_imports_do_not_load_the_harness():
    code = textwrap.dedent("""
        import sys
        import noisecorr.engine, noisecorr.mappings, noisecorr.cli
        import noisecorr.mappings.storm
        from noisecorr.mappings.storm import cli, component, flux, layout, multilang, package, results, submit
        from noisecorr.mappings import load
        load("storm")
        print("noisecorr.testing.storm_harness" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_components_do_not_load_the_harness():
    g = WorkflowGraph()
    src, probe = Range(3), named(HarnessLoaded(), "Probe")
    g.connect(src, "output", probe, "input")
    with by_value():
        result = run(g, mapping="storm", harness=True)
    assert result.outputs[("Probe", "output")] == [False, False, False]


# -- provenance ------------------------------------------------------------------------------
def record(tmp_path, mapping, **options):
    # the lineage graphs live in the installed package: Storm's components import them by name
    g, inputs = lineage_graphs.graph(fine=False, parallel=2)
    db = tmp_path / f"{mapping}.sqlite"
    result = run(g, inputs=inputs, mapping=mapping, processes=3,
                 provenance={"store": str(db), "run_id": RUN_ID}, **options)
    return result, db


def tables(db):
    with contextlib.closing(sqlite3.connect(db)) as c:
        return {
            "entities": sorted(c.execute("SELECT entity_id, pe, port, label, meta, stored FROM entities")),
            "derived": sorted(c.execute("SELECT entity_id, source_id FROM derived")),
            "used": sorted(c.execute("SELECT a.pe, u.entity_id FROM used u JOIN activities a USING (activity_id)")),
            "generated": sorted(c.execute("SELECT e.entity_id, a.pe, a.kind FROM entities e "
                                          "LEFT JOIN activities a USING (activity_id)")),
            "activities": sorted(c.execute("SELECT pe, kind, COUNT(*) FROM activities GROUP BY pe, kind")),
            "workers": {w for (w,) in c.execute("SELECT DISTINCT worker FROM activities")},
            "runs": list(c.execute("SELECT run_id, mapping, status FROM runs")),
        }


def test_provenance_under_storm_equals_multiprocess(tmp_path):
    storm_result, storm_db = record(tmp_path, "storm", harness=True)
    mp_result, mp_db = record(tmp_path, "multiprocess")
    assert storm_result.provenance_run_id == RUN_ID
    # scaled readings 2, 4, 6 per chunk; a pair multiplies its two stations; the stack sums
    for out in (storm_result.outputs[("Stack", "output")], mp_result.outputs[("Stack", "output")]):
        assert [o["key"] for o in out] == ["XX.A..Z|XX.B..Z"]
        np.testing.assert_array_equal(out[0]["stack"], np.full(5, 4.0 + 16.0 + 36.0, dtype=np.float32))
    a, b = tables(storm_db), tables(mp_db)
    # 2 input dicts, 6 readings, 6 scaled, 3 pairs (one per chunk), 1 stack
    counts = {}
    for _, pe, port, *_ in a["entities"]:
        counts[(pe, port)] = counts.get((pe, port), 0) + 1
    assert counts == {("Fetch", "<input>"): 2, ("Fetch", "output"): 6, ("Scale", "output"): 6,
                      ("Pair", "output"): 3, ("Stack", "output"): 1}
    for name in ("entities", "derived", "used", "generated", "activities"):
        assert a[name] == b[name], name
    assert len(a["workers"]) > 1, "the derivations crossed Storm tasks"
    assert a["runs"] == [(RUN_ID, "storm", "completed")]


def test_pe_failure_in_a_resumed_generator_names_pe_item_and_traceback():
    """The failure comes from a later step of a generator process() (the shared loop's
    suspension), not from the call that started it."""
    g = WorkflowGraph()
    src, bad = Range(5), named(Stepper(), "Stepper")
    g.connect(src, "output", bad, "input")
    with by_value(), pytest.raises(PEError) as info:
        run(g, mapping="storm", harness=True)
    err = info.value
    assert (err.pe, err.instance, err.item, err.phase) == ("Stepper", 0, "3", "process")
    assert "Storm task" in str(err)
    assert "second step refuses 3" in err.remote_traceback and "in _steps" in err.remote_traceback


class Stepper(GenericPE):
    """A generator process(): writes, yields, and fails at its second step on item 3."""

    def __init__(self):
        super().__init__()
        self._add_input("input")
        self._add_output("output")

    def process(self, inputs):
        return self._steps(inputs["input"])

    def _steps(self, x):
        yield {"output": x}
        if x == 3:
            raise ValueError(f"second step refuses {x}")
        yield {"output": -x}


class Gather(GenericPE):
    """``concurrent_inputs``: its generator, started by the first item, waits for three
    items, which can only arrive while it is suspended (as a tile worker takes spectra)."""

    concurrent_inputs = True

    def __init__(self):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.items = []
        self.running = False

    def process(self, inputs):
        self.items.append(inputs["input"])
        if self.running:
            return None
        self.running = True
        return self._wait()

    def _wait(self):
        while len(self.items) < 3:
            yield
        yield {"output": sorted(self.items)}


def test_concurrent_inputs_arrive_while_the_generator_runs():
    g = WorkflowGraph()
    src, gather = Range(3), named(Gather(), "Gather")
    g.connect(src, "output", gather, "input")
    with by_value():
        result = run(g, mapping="storm", harness=True, timeout=120)
    assert result.outputs[("Gather", "output")] == [[0, 1, 2]]
    assert result.counts["Gather"]["in"] == {"input": 3}
