"""Graph building and validation: errors name the PE and the port, before anything runs."""

import pytest

from noisecorr.engine import (
    CompositePE,
    ConsumerPE,
    GenericPE,
    GraphError,
    IterativePE,
    MappingError,
    ProducerPE,
    WorkflowGraph,
    create_iterative_chain,
    run,
)
from noisecorr.engine.examples import Doubler, NumberSource
from noisecorr.testing.conformance import Count, Range, Square


class Two(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("a")
        self._add_input("b")
        self._add_output("output")

    def process(self, inputs):
        return {"output": inputs}


def test_unknown_output_port_is_named():
    g = WorkflowGraph()
    with pytest.raises(GraphError, match=r"PE 'NumberSource' has no output port 'out'.*\['output'\]"):
        g.connect(NumberSource(), "out", Doubler(), "input")


def test_unknown_input_port_is_named():
    g = WorkflowGraph()
    with pytest.raises(GraphError, match=r"PE 'Doubler' has no input port 'data'"):
        g.connect(NumberSource(), "output", Doubler(), "data")


def test_one_class_twice_gets_unique_names_but_explicit_duplicates_are_rejected():
    g = WorkflowGraph()
    d1, d2, d3 = Doubler(), Doubler(), Doubler()
    g.connect(NumberSource(), "output", d1, "input")
    g.connect(d1, "output", d2, "input")
    g.connect(d2, "output", d3, "input")
    spec = g.describe()
    assert [d1.name, d2.name, d3.name] == ["Doubler", "Doubler1", "Doubler2"]
    assert g.describe().pes == spec.pes           # naming is idempotent
    # an explicit name is kept and a default name steps around it
    g2 = WorkflowGraph()
    e1, e2, e3 = Doubler(), Doubler(), Doubler()
    e1.name = "Doubler1"
    g2.connect(NumberSource(), "output", e1, "input")
    g2.connect(e1, "output", e2, "input")
    g2.connect(e2, "output", e3, "input")
    g2.describe()
    assert [e1.name, e2.name, e3.name] == ["Doubler1", "Doubler", "Doubler2"]
    # two equal explicit names stay an error
    g3 = WorkflowGraph()
    f1, f2 = Doubler(), Doubler()
    f1.name = f2.name = "Twice"
    g3.connect(NumberSource(), "output", f1, "input")
    g3.connect(f1, "output", f2, "input")
    with pytest.raises(GraphError, match="two PEs are named 'Twice'"):
        g3.describe()


def test_cycle_is_rejected_naming_pes():
    g = WorkflowGraph()
    a, b = Doubler(), Square()
    g.connect(NumberSource(), "output", a, "input")
    g.connect(a, "output", b, "input")
    g.connect(b, "output", a, "input")
    with pytest.raises(GraphError, match=r"cycle through PEs \['Doubler', 'Square'\]"):
        g.describe()


def test_unconnected_required_input_is_named():
    g = WorkflowGraph()
    two = Two()
    g.connect(NumberSource(), "output", two, "a")
    with pytest.raises(GraphError, match="input 'b' of PE 'Two' is not connected"):
        run(g)


def test_optional_input_may_stay_unconnected():
    class Opt(IterativePE):
        def __init__(self):
            super().__init__()
            self._add_input("config", optional=True)

        def _process(self, x):
            return x + 1

    g = WorkflowGraph()
    src, opt = Range(3), Opt()
    g.connect(src, "output", opt, "input")
    assert sorted(run(g).outputs[("Opt", "output")]) == [1, 2, 3]


def test_bad_grouping_is_rejected():
    g = WorkflowGraph()
    with pytest.raises(GraphError, match="unknown grouping 'everyone'"):
        g.connect(NumberSource(), "output", Doubler(), "input", grouping="everyone")


def test_connect_grouping_overrides_declared():
    g = WorkflowGraph()
    src, cnt = Range(4), Count()
    g.connect(src, "output", cnt, "input", grouping="global")
    spec = g.describe()
    assert spec.edges[0].grouping == ("global",)
    assert spec.pe("Count").inputs["input"] == ("group", (0,))


def test_inputs_errors():
    g = WorkflowGraph()
    src, sq = Range(3), Square()
    g.connect(src, "output", sq, "input")
    with pytest.raises(GraphError, match="not in the graph"):
        g.describe({"Nope": 3})
    with pytest.raises(GraphError, match="give it a list of dicts"):
        g.describe({sq: 3})
    with pytest.raises(GraphError, match=r"unknown input\(s\) \['x'\]"):
        g.describe({sq: [{"x": 1}]})
    with pytest.raises(GraphError, match="iterations must be >= 0"):
        g.describe({src: -1})


def test_unknown_mapping_lists_valid_names():
    g = WorkflowGraph()
    g.add(Range(1))
    with pytest.raises(MappingError, match="valid mappings: sequential, multiprocess, mpi, storm"):
        run(g, mapping="threads")


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    from noisecorr import mappings

    monkeypatch.setitem(mappings.MAPPINGS, "fancy", ("noisecorr.mappings.sequential", "no_such_module_xyz", "fancy"))
    g = WorkflowGraph()
    g.add(Range(1))
    with pytest.raises(MappingError, match=r"pip install 'noisecorr\[fancy\]'"):
        run(g, mapping="fancy")


def test_dispel4py_aliases():
    g = WorkflowGraph()
    src, sq = Range(5), Square()
    g.connect(src, "output", sq, "input")
    assert run(g, mapping="simple").mapping == "sequential"


def test_spec_is_plain_picklable_data():
    import pickle

    g = WorkflowGraph()
    g.connect(Range(3), "output", Square(), "input")
    spec = g.describe()
    again = pickle.loads(pickle.dumps(spec))
    assert again.names == ["Range", "Square"]
    assert isinstance(again.pe("Square").instantiate(), Square)
    assert again.pe("Square").instantiate() is not again.pe("Square").instantiate()


def test_instances_are_copies_not_the_prototype():
    g = WorkflowGraph()
    src, cnt = Range(0), Count()
    g.connect(src, "output", cnt, "input")
    run(g, inputs={})
    assert cnt.counts == {}


def test_nested_composite_and_chain_names():
    inner = create_iterative_chain([abs, (pow, {"exp": 2})], name_prefix="in_")
    outer = CompositePE("outer")
    outer._map_input("input", inner, "input")
    outer._map_output("output", inner, "output")
    g = WorkflowGraph()
    g.connect(Range(4, start=-2), "output", outer, "input")
    assert sorted(run(g).outputs[("in_pow", "output")]) == [0, 1, 1, 4]


def test_pe_failure_in_sequential_carries_traceback_and_item():
    from noisecorr.engine import PEError
    from noisecorr.testing.conformance import FailOn

    g = WorkflowGraph()
    g.connect(Range(10), "output", FailOn(7), "input")
    with pytest.raises(PEError) as info:
        run(g)
    err = info.value
    # FailOn's hint gives it 2 instances in every mapping, sequential included; shuffle deals
    # items 0..9 round robin, so item 7 reaches instance 1
    assert (err.pe, err.instance, err.item, err.phase) == ("FailOn", 1, "7", "process")
    assert "refusing item 7" in err.remote_traceback and "conformance.py" in err.remote_traceback


def test_failure_in_postprocess_and_preprocess():
    from noisecorr.engine import PEError

    class BadPost(IterativePE):
        def _process(self, x):
            return x

        def postprocess(self):
            raise RuntimeError("flush failed")

    class BadPre(ProducerPE):
        def preprocess(self):
            raise OSError("no archive")

        def _process(self, inputs):
            return 1

    g = WorkflowGraph()
    g.connect(Range(2), "output", BadPost(), "input")
    with pytest.raises(PEError, match=r"PE 'BadPost' instance 0 failed in postprocess\(\)"):
        run(g)
    g2 = WorkflowGraph()
    g2.add(BadPre())
    with pytest.raises(PEError, match=r"PE 'BadPre' instance 0 failed in preprocess\(\)(.|\n)*no archive"):
        run(g2)


def test_write_to_undeclared_port_is_named():
    from noisecorr.engine import PEError

    class Wrong(IterativePE):
        def _process(self, x):
            self.write("outptu", x)

    g = WorkflowGraph()
    g.connect(Range(1), "output", Wrong(), "input")
    with pytest.raises(PEError, match="undeclared output 'outptu'"):
        run(g)


@pytest.mark.parametrize("mapping, processes", [("sequential", None), ("multiprocess", 2)])
def test_progress_callback_reports_counts(mapping, processes):
    seen = []
    g = WorkflowGraph()
    g.connect(Range(500), "output", Square(), "input")
    run(g, mapping=mapping, processes=processes, progress=seen.append)
    assert seen, "no progress reported"
    assert seen[-1]["Square"] == {"in": 500, "out": 500}
    assert all(s.get("Square", {"in": 0})["in"] <= 500 for s in seen)


def test_insert_after_and_disconnect():
    g = WorkflowGraph()
    src, sq = Range(4), Square()
    g.connect(src, "output", sq, "input")
    g.insert_after(src, "output", create_iterative_chain([abs], name_prefix="x_")._resolve_input("input")[0])
    assert sorted(run(g).outputs[("Square", "output")]) == [0, 1, 4, 9]
    assert [pe.name for pe, _, _ in g.consumers(src, "output")] == ["x_abs"]
    with pytest.raises(GraphError, match="no stream from 'Range.output' to 'Square.input'"):
        g.disconnect(src, "output", sq, "input")


def test_expensive_items_flow_through_instead_of_piling_up():
    """Slow items are processed a few per pass, so the next PE runs before the next ones
    are made: at most a few large items wait between two PEs at any time."""
    import time as _time

    from noisecorr.engine.plan import make_plan
    from noisecorr.engine.runtime import Worker

    class Big(IterativePE):
        def _process(self, i):
            _time.sleep(0.02)  # an expensive step that makes a large item
            return (i, bytearray(1 << 20))

    waiting = []

    class Watch(ConsumerPE):
        def _process(self, item):
            waiting.append(len(buffers["input"]))  # items still queued behind this one

    g = WorkflowGraph()
    g.connect(Range(30), "output", Big(), "input")
    g.connect(g.pes[1], "output", Watch(), "input")
    spec = g.describe()
    worker = Worker(spec, make_plan(spec, 1))
    buffers = next(r for r in worker.runners if r.name == "Watch").buffers
    watch = next(r for r in worker.runners if r.name == "Watch")
    watch.fast_fn = lambda item: waiting.append(len(buffers["input"]))
    worker.run()
    assert len(waiting) == 30
    assert max(waiting) <= 3, f"up to {max(waiting)} large items waited for the next PE"


def test_instance_counts_come_from_the_graph_not_the_workers():
    """Hints give exactly their count, unhinted PEs one, sources and all-global PEs one,
    for 1, 2 or 7 workers alike; only the placement changes."""
    from noisecorr.engine.plan import make_plan
    from noisecorr.testing.conformance import Broadcast, GlobalCollect

    g = WorkflowGraph()
    src, sq, free, bc, col = Range(10), Square(numprocesses=5), Square(name="Free"), Broadcast(), GlobalCollect()
    g.connect(src, "output", sq, "input")
    g.connect(sq, "output", free, "input")
    g.connect(free, "output", bc, "input")
    g.connect(bc, "output", col, "input")
    spec = g.describe({})
    want = {"Range": 1, "Square": 5, "Free": 1, "Broadcast": 3, "GlobalCollect": 1}
    for workers in (1, 2, 7):
        plan = make_plan(spec, workers)
        assert plan.instances == want
        assert sorted(plan.placement) == sorted((pe, i) for pe, n in want.items() for i in range(n))
        assert set(plan.placement.values()) == set(range(min(workers, sum(want.values()))))


def test_connect_grouping_overrides_a_global_port_in_the_plan():
    """A writer declares a global input; connected with ``local`` and given
    ``numprocesses`` it runs once per worker (the workflow's parallel writers), while
    connected without a grouping it keeps a single instance."""
    from noisecorr.engine.plan import make_plan

    class Sink(GenericPE):
        def __init__(self, name):
            super().__init__()
            self.name = name
            self._add_input("input", grouping="global")
            self._add_output("output")

        def process(self, inputs):
            pass

    def plan(grouping):
        g = WorkflowGraph()
        src, sq, sink = Range(10), Square(numprocesses=3), Sink("Sink")
        sink.numprocesses = 3
        g.connect(src, "output", sq, "input")
        g.connect(sq, "output", sink, "input", grouping=grouping)
        return make_plan(g.describe({}), 3)

    local = plan("local")
    assert local.instances["Sink"] == 3
    assert sorted(w for (pe, _), w in local.placement.items() if pe == "Sink") == [0, 1, 2]
    assert plan(None).instances["Sink"] == 1
