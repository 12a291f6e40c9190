"""The mapping conformance suite.

Every mapping must pass every case here unchanged: ``sequential`` defines the correct
answer, and each case also checks its result against an expectation computed independently
of the engine (a ``Counter`` of words, a sum, a checksum), so a wrong sequential mapping
fails too. The suite lives in the package (not only in ``tests/``) so that the MPI runner,
the Storm harness and third-party mappings can run exactly the same cases::

    from noisecorr.testing.conformance import CASES, run_case
    for case in CASES:
        run_case(case, mapping="multiprocess", processes=3)

A case is a class with ``build() -> (graph, inputs)`` and ``check(result)``; ``run_case``
enacts it, runs ``check`` and compares the outputs with the sequential mapping's as
multisets. Every mapping enacts the same instances, so broadcasts compare exactly too;
cases whose per-instance outputs depend on how shuffle balanced the items (e.g. a count
per instance) say so with ``per_instance = True`` and are compared as sets.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections import Counter

from noisecorr.engine import (
    GenericPE,
    IterativePE,
    PEError,
    ProducerPE,
    WorkflowGraph,
    create_iterative_chain,
    run,
)

TEXT = (
    "the quick brown fox jumps over the lazy dog while the dog sleeps and the fox "
    "runs away from the quick hunter who follows the fox into the brown woods"
).split()


# -- PEs used by the cases ------------------------------------------------------------------
class Words(ProducerPE):
    """Writes one word of :data:`TEXT` per iteration (cycling)."""

    def __init__(self):
        super().__init__()
        self.i = 0

    def _process(self, inputs):
        word = TEXT[self.i % len(TEXT)]
        self.i += 1
        return (word, 1)


class Count(GenericPE):
    """Word count: group by the word, flush counts in postprocess."""

    def __init__(self, numprocesses=3):
        super().__init__()
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.counts = {}
        self.numprocesses = numprocesses

    def process(self, inputs):
        word = inputs["input"][0]
        self.counts[word] = self.counts.get(word, 0) + inputs["input"][1]

    def postprocess(self):
        for word, n in self.counts.items():
            self.write("output", (word, n))


class Range(ProducerPE):
    """Writes ``start .. start+n-1`` in one iteration."""

    def __init__(self, n, start=0, name=None):
        super().__init__()
        self.n, self.start = n, start
        if name:
            self.name = name

    def _process(self, inputs):
        for i in range(self.start, self.start + self.n):
            self.write("output", i)


class Square(IterativePE):
    def __init__(self, numprocesses=None, name=None):
        super().__init__()
        self.numprocesses = numprocesses
        if name:
            self.name = name

    def _process(self, x):
        return x * x


class Tag(IterativePE):
    def __init__(self, tag, numprocesses=2):
        super().__init__()
        self.tag = tag
        self.name = f"Tag_{tag}"
        self.numprocesses = numprocesses

    def _process(self, x):
        return (self.tag, x)


class Broadcast(GenericPE):
    """Every instance must see every item (grouping "all"); writes what it saw at the end."""

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="all")
        self._add_output("output")
        self.numprocesses = 3
        self.seen = []

    def process(self, inputs):
        self.seen.append(inputs["input"])

    def postprocess(self):
        self.write("output", tuple(sorted(self.seen)))


class GlobalCollect(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.numprocesses = 3
        self.items = []

    def process(self, inputs):
        self.items.append(inputs["input"])

    def postprocess(self):
        if self.items:
            self.write("output", tuple(sorted(self.items)))


class EvenOdd(GenericPE):
    """Two outputs; returns a dict from process."""

    def __init__(self):
        super().__init__()
        self._add_input("input")
        self._add_output("even")
        self._add_output("odd")
        self.numprocesses = 2

    def process(self, inputs):
        x = inputs["input"]
        return {"even" if x % 2 == 0 else "odd": x}


class SumByKey(GenericPE):
    """Stateful: sums values per key (group-by), flushes in postprocess."""

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.numprocesses = 3
        self.sums = {}

    def process(self, inputs):
        key, value = inputs["input"]
        self.sums[key] = self.sums.get(key, 0) + value

    def postprocess(self):
        for key in sorted(self.sums):
            self.write("output", (key, self.sums[key]))


class Total(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.total = 0
        self.n = 0

    def process(self, inputs):
        self.total += inputs["input"][1]
        self.n += 1

    def postprocess(self):
        self.write("output", (self.n, self.total))


class Explode(IterativePE):
    """Writes ``x`` copies of ``x`` (0 writes nothing): fan-out inside a PE."""

    def __init__(self):
        super().__init__()
        self.numprocesses = 2

    def _process(self, x):
        for _ in range(x % 4):
            self.write("output", x)


class FailOn(IterativePE):
    def __init__(self, bad):
        super().__init__()
        self.bad = bad
        self.numprocesses = 2

    def _process(self, x):
        if x == self.bad:
            raise ValueError(f"refusing item {x}")
        return x


class KillSelf(IterativePE):
    """Kills its own worker process with ``sig`` on item ``bad`` (a crash, not an exception),
    so a mapping must notice the dead process and name this PE and that item."""

    def __init__(self, bad, sig=signal.SIGKILL):
        super().__init__()
        self.bad, self.sig = bad, sig
        self.numprocesses = 2

    def _process(self, x):
        if x == self.bad:
            os.kill(os.getpid(), self.sig)
            time.sleep(30)
        return x


def chain(middle, n=50):
    """``Range(n) -> middle -> Square``: one PE under test between a source and a sink."""
    g = WorkflowGraph()
    src, sq = Range(n), Square(numprocesses=1)
    g.connect(src, "output", middle, "input")
    g.connect(middle, "output", sq, "input")
    return g


class Passthrough(IterativePE):
    def __init__(self, numprocesses=2):
        super().__init__()
        self.numprocesses = numprocesses

    def _process(self, x):
        return x


class Steps(GenericPE):
    """``process`` and ``postprocess`` are generators: three outputs per item, one per
    step, and two end markers per instance from ``postprocess``; raises inside a step
    (after its first yield) on item ``bad``."""

    def __init__(self, bad=None):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.numprocesses = 2
        self.bad = bad
        self.items = 0

    def process(self, inputs):
        x = inputs["input"]
        for k in range(3):
            if k == 1 and x == self.bad:
                raise ValueError(f"step 1 of item {x} fails")
            self.write("output", (x, k))
            yield
        self.items += 1

    def postprocess(self):
        for k in range(2):
            yield {"output": ("end", self.items, k)}


class Lifecycle(GenericPE):
    """Records the order of lifecycle calls per instance."""

    def __init__(self):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.numprocesses = 3
        self.calls = []

    def preprocess(self):
        self.calls.append("preprocess")

    def process(self, inputs):
        if self.calls[:1] != ["preprocess"]:
            raise AssertionError("process() called before preprocess()")
        self.calls.append("process")

    def postprocess(self):
        self.calls.append("postprocess")
        self.write("output", (self.calls[0], self.calls.count("process"), self.calls[-1]))


class ArraySource(ProducerPE):
    """Writes ``n`` float64 arrays of ``size`` elements, deterministic content."""

    def __init__(self, n, size):
        super().__init__()
        self.n, self.size = n, size

    def _process(self, inputs):
        import numpy as np

        for i in range(self.n):
            a = np.arange(self.size, dtype=np.float64) * (i + 1)
            self.write("output", (i, a))


class ArrayDigest(IterativePE):
    """Checks the array is intact, tries to modify it (must not affect anyone else)."""

    def __init__(self):
        super().__init__()
        self.numprocesses = 2

    def _process(self, item):
        i, a = item
        digest = hashlib.sha1(a.tobytes()).hexdigest()
        return (i, a.shape, str(a.dtype), digest, float(a.sum()))


class Scale(IterativePE):
    def __init__(self, k, numprocesses=2):
        super().__init__()
        self.k = k
        self.name = f"Scale{k}"
        self.numprocesses = numprocesses

    def _process(self, x):
        return x * self.k


class Keyed(IterativePE):
    """(station code, value) pairs with string keys, for group-by across senders."""

    def __init__(self, name):
        super().__init__()
        self.name = name
        self.numprocesses = 2

    def _process(self, x):
        return (f"XS.S{x % 7:03d}", 1)


class RankTag(IterativePE):
    """Tags each item with the worker (process, rank) that handled it."""

    def __init__(self, name, grouping=None):
        super().__init__()
        self.name = name
        self.numprocesses = 3
        if grouping is not None:
            self.inputconnections["input"]["grouping"] = grouping

    def _process(self, item):
        return (*item, self.rank) if isinstance(item, tuple) else (item, self.rank)


class KeyOwners(GenericPE):
    """Records which instance saw which key: each key must reach exactly one instance."""

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.numprocesses = 3
        self.keys = Counter()

    def process(self, inputs):
        self.keys[inputs["input"][0]] += 1

    def postprocess(self):
        for key, n in sorted(self.keys.items()):
            self.write("output", (key, self.instance, n))


def inc(x, k=1):
    return x + k


def double(x):
    return 2 * x


# -- helpers --------------------------------------------------------------------------------
def canonical(item):
    """A hashable, order-comparable stand-in for ``item`` (arrays by content digest)."""
    if isinstance(item, (list, tuple)):
        return ("seq", tuple(canonical(x) for x in item))
    if isinstance(item, dict):
        return ("dict", tuple(sorted((repr(k), canonical(v)) for k, v in item.items())))
    if type(item).__module__ == "numpy" and hasattr(item, "tobytes"):
        return ("ndarray", str(item.dtype), tuple(item.shape), hashlib.sha1(item.tobytes()).hexdigest())
    return ("obj", repr(item))


def multiset(items):
    return Counter(canonical(x) for x in items)


class KeyedRange(ProducerPE):
    """Writes ``(i % 7, i)`` for ``i = 0 .. n - 1``: a key for group-by and a value."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def _process(self, inputs):
        for i in range(self.n):
            self.write("output", (i % 7, i))


class SeenPerInstance(GenericPE):
    """Writes ``("item", x)`` for every item and ``("seen", n)`` once per instance at the end,
    so outputs depend on how many instances exist (a broadcast multiplies items, every
    instance flushes its own count)."""

    def __init__(self, name, grouping, hint):
        super().__init__()
        self.name = name
        self._add_input("input", grouping=grouping)
        self._add_output("output")
        self.numprocesses = hint
        self.balanced = grouping is None or grouping == "local"
        self.grouped = isinstance(grouping, list)
        self.seen = 0
        self.keys = set()

    def process(self, inputs):
        self.seen += 1
        self.keys.add(inputs["input"][0])
        self.write("output", ("item", inputs["input"]))

    def postprocess(self):
        if self.grouped:
            # which instance owns a key is the mapping's choice (Storm hashes fields itself);
            # that each key has exactly one owner is checked by GroupingMatrix.check
            self.write("output", ("keys", tuple(sorted(self.keys))))
        else:
            # shuffle and local may balance the same items differently over the same instances
            self.write("output", ("seen", "balanced" if self.balanced else self.seen))


#: (name, grouping) of every grouping, with the hints the grouping matrix gives each.
GROUPINGS = [("shuffle", None), ("groupby", [0]), ("all", "all"), ("global", "global"), ("local", "local")]
MATRIX_HINTS = (1, 3, 5)


# -- the cases ------------------------------------------------------------------------------
class Case:
    name = "case"
    per_instance = False
    raises = None

    def build(self):
        raise NotImplementedError

    def check(self, result):
        pass


class WordCount(Case):
    name = "word_count_group_by"
    iterations = 500

    def build(self):
        g = WorkflowGraph()
        words, count = Words(), Count()
        g.connect(words, "output", count, "input")
        return g, {words: self.iterations}

    def check(self, result):
        expected = Counter(TEXT[i % len(TEXT)] for i in range(self.iterations))
        got = result.outputs[("Count", "output")]
        assert len(got) == len(expected), f"{len(got)} counts for {len(expected)} words: a word reached two instances"
        assert dict(got) == dict(expected)
        assert result.counts["Count"]["in"]["input"] == self.iterations


class GroupByStringKeysManyProducers(Case):
    name = "group_by_string_keys_from_several_producers"

    def build(self):
        g = WorkflowGraph()
        owners = KeyOwners()
        for k in range(3):
            src, key = Range(100, start=k * 100, name=f"Src{k}"), Keyed(f"Keyed{k}")
            g.connect(src, "output", key, "input")
            g.connect(key, "output", owners, "input")
        return g, {}

    def check(self, result):
        rows = result.outputs[("KeyOwners", "output")]
        owners = {}
        totals = Counter()
        for key, instance, n in rows:
            owners.setdefault(key, set()).add(instance)
            totals[key] += n
        assert all(len(s) == 1 for s in owners.values()), f"keys seen by several instances: {owners}"
        assert totals == Counter(f"XS.S{x % 7:03d}" for x in range(300))

    def comparable(self, items):
        return [(k, n) for k, _, n in items]


class BroadcastAll(Case):
    name = "broadcast_all"

    def build(self):
        g = WorkflowGraph()
        src, b = Range(20), Broadcast()
        g.connect(src, "output", b, "input")
        return g, {}

    def check(self, result):
        rows = result.outputs[("Broadcast", "output")]
        assert len(rows) == result.plan["Broadcast"], "one output per instance expected"
        assert all(r == tuple(range(20)) for r in rows), "an instance missed broadcast items"


class Global(Case):
    name = "global_grouping"

    def build(self):
        g = WorkflowGraph()
        src, sq, col = Range(50), Square(numprocesses=3), GlobalCollect()
        g.connect(src, "output", sq, "input")
        g.connect(sq, "output", col, "input")
        return g, {}

    def check(self, result):
        assert result.outputs[("GlobalCollect", "output")] == [tuple(sorted(i * i for i in range(50)))]


class FanIn(Case):
    name = "fan_in"

    def build(self):
        g = WorkflowGraph()
        a, b, sq = Range(30, 0, "A"), Range(30, 100, "B"), Square(numprocesses=2)
        g.connect(a, "output", sq, "input")
        g.connect(b, "output", sq, "input")
        return g, {}

    def check(self, result):
        got = sorted(result.outputs[("Square", "output")])
        assert got == sorted([i * i for i in range(30)] + [i * i for i in range(100, 130)])


class FanOutTee(Case):
    name = "fan_out_tee"

    def build(self):
        g = WorkflowGraph()
        src, t1, t2 = Range(40), Tag("x"), Tag("y")
        g.connect(src, "output", t1, "input")
        g.connect(src, "output", t2, "input")
        return g, {}

    def check(self, result):
        assert sorted(result.outputs[("Tag_x", "output")]) == [("x", i) for i in range(40)]
        assert sorted(result.outputs[("Tag_y", "output")]) == [("y", i) for i in range(40)]
        assert result.counts["Range"]["out"]["output"] == 40


class MultipleOutputs(Case):
    name = "multiple_outputs_returned_dict"

    def build(self):
        g = WorkflowGraph()
        src, eo, s = Range(25), EvenOdd(), Square(numprocesses=2)
        g.connect(src, "output", eo, "input")
        g.connect(eo, "odd", s, "input")
        return g, {}

    def check(self, result):
        assert sorted(result.outputs[("EvenOdd", "even")]) == list(range(0, 25, 2))
        assert sorted(result.outputs[("Square", "output")]) == [i * i for i in range(1, 25, 2)]


class CompositeChain(Case):
    name = "composite_chain"

    def build(self):
        g = WorkflowGraph()
        src = Range(30)
        chain = create_iterative_chain([inc, (inc, {"k": 10}), double])
        g.connect(src, "output", chain, "input")
        return g, {}

    def check(self, result):
        assert sorted(result.outputs[("double", "output")]) == [2 * (i + 11) for i in range(30)]


class StatefulFlush(Case):
    name = "stateful_postprocess_flush"

    def build(self):
        g = WorkflowGraph()
        words, sums, total = Words(), SumByKey(), Total()
        g.connect(words, "output", sums, "input")
        g.connect(sums, "output", total, "input")
        return g, {words: 300}

    def check(self, result):
        n_words = len(set(TEXT[i % len(TEXT)] for i in range(300)))
        assert result.outputs[("Total", "output")] == [(n_words, 300)]


class FlatMapAndDrop(Case):
    name = "flat_map_and_drop"

    def build(self):
        g = WorkflowGraph()
        src, ex, sc = Range(60), Explode(), Scale(3)
        g.connect(src, "output", ex, "input")
        g.connect(ex, "output", sc, "input")
        return g, {}

    def check(self, result):
        expected = sorted(3 * x for x in range(60) for _ in range(x % 4))
        assert sorted(result.outputs[("Scale3", "output")]) == expected


class LongChain(Case):
    name = "long_chain_many_instances"

    def build(self):
        g = WorkflowGraph()
        prev, port = Range(2000), "output"
        g.add(prev)
        for k in range(2, 7):
            pe = Scale(k, numprocesses=2)
            g.connect(prev, port, pe, "input")
            prev = pe
        return g, {}

    def check(self, result):
        assert sorted(result.outputs[("Scale6", "output")]) == [x * 720 for x in range(2000)]


class FeedInputs(Case):
    name = "inputs_as_list_of_dicts"

    def build(self):
        g = WorkflowGraph()
        sq = Square(numprocesses=2)
        g.add(sq)
        return g, {sq: [{"input": i} for i in range(15)]}

    def check(self, result):
        assert sorted(result.outputs[("Square", "output")]) == [i * i for i in range(15)]


class EmptySource(Case):
    name = "empty_source_still_flushes"

    def build(self):
        g = WorkflowGraph()
        words, total = Words(), Total()
        g.connect(words, "output", total, "input")
        return g, {words: 0}

    def check(self, result):
        assert result.outputs[("Total", "output")] == [(0, 0)]


class LifecycleOrder(Case):
    name = "lifecycle_order"
    per_instance = True

    def build(self):
        g = WorkflowGraph()
        src, lc = Range(90), Lifecycle()
        g.connect(src, "output", lc, "input")
        return g, {}

    def check(self, result):
        rows = result.outputs[("Lifecycle", "output")]
        assert len(rows) == result.plan["Lifecycle"]
        assert all(first == "preprocess" and last == "postprocess" for first, _, last in rows)
        assert sum(n for _, n, _ in rows) == 90

    def comparable(self, items):
        return [(first, last) for first, _, last in items]


class NumpyArrays(Case):
    name = "numpy_arrays_large_and_small"

    def build(self):
        g = WorkflowGraph()
        src, dig = ArraySource(12, 200_000), ArrayDigest()  # 1.6 MB each
        small, dig2 = ArraySource(30, 3), ArrayDigest()
        small.name, dig2.name = "SmallArrays", "SmallDigest"
        g.connect(src, "output", dig, "input")
        g.connect(small, "output", dig2, "input")
        return g, {}

    def check(self, result):
        import numpy as np

        for key, n, size in ((("ArrayDigest", "output"), 12, 200_000), (("SmallDigest", "output"), 30, 3)):
            rows = sorted(result.outputs[key])
            assert [r[0] for r in rows] == list(range(n))
            for i, shape, dtype, digest, total in rows:
                a = np.arange(size, dtype=np.float64) * (i + 1)
                assert (shape, dtype) == ((size,), "float64")
                assert digest == hashlib.sha1(a.tobytes()).hexdigest()


class FailingPE(Case):
    name = "failing_pe_names_pe_and_item"
    raises = PEError

    def build(self):
        g = WorkflowGraph()
        src, bad, sq = Range(200), FailOn(137), Square(numprocesses=2)
        g.connect(src, "output", bad, "input")
        g.connect(bad, "output", sq, "input")
        return g, {}

    def check_error(self, err):
        assert err.pe == "FailOn", err
        assert err.item == "137", err
        assert "refusing item 137" in str(err)
        assert "raise ValueError" in err.remote_traceback


class LocalChain(Case):
    name = "local_grouping_chain"

    def build(self):
        g = WorkflowGraph()
        src, a, b = Range(120), RankTag("TagA"), RankTag("TagB", grouping="local")
        g.connect(src, "output", a, "input")
        g.connect(a, "output", b, "input")
        return g, {}

    def check(self, result):
        rows = result.outputs[("TagB", "output")]
        assert sorted(r[0] for r in rows) == list(range(120))

    def comparable(self, items):
        return [r[0] for r in items]


class GeneratorSteps(Case):
    name = "generator_process_and_postprocess"

    def build(self):
        g = WorkflowGraph()
        src, steps, out = Range(60), Steps(), Passthrough()
        g.connect(src, "output", steps, "input")
        g.connect(steps, "output", out, "input")
        return g, {}

    def check(self, result):
        rows = result.outputs[("Passthrough", "output")]
        body = sorted(r for r in rows if r[0] != "end")
        assert body == [(x, k) for x in range(60) for k in range(3)], "steps lost or repeated"
        ends = [r for r in rows if r[0] == "end"]
        assert len(ends) == 2 * result.plan["Steps"], ends
        assert sum(e[1] for e in ends) == 2 * 60, "an instance's postprocess ran before its last step"

    def comparable(self, items):
        return [r for r in items if r[0] != "end"]


class GeneratorFails(Case):
    name = "failing_generator_step_names_pe_and_item"
    raises = PEError

    def build(self):
        g = WorkflowGraph()
        src, steps = Range(80), Steps(bad=37)
        g.connect(src, "output", steps, "input")
        return g, {}

    def check_error(self, err):
        assert err.pe == "Steps", err
        assert err.item == "37", err
        assert "step 1 of item 37 fails" in str(err)


class GroupingMatrix(Case):
    """Every grouping with instance hints below and above the process counts used (2-4):
    a stateful PE per (grouping, hint) behind one source. Instance counts are the graph's,
    so every mapping gives the same outputs, item for item, as the sequential mapping."""

    name = "grouping_matrix_instance_hints"
    n = 30

    def build(self):
        g = WorkflowGraph()
        src = KeyedRange(self.n)
        for gname, grouping in GROUPINGS:
            for hint in MATRIX_HINTS:
                g.connect(src, "output", SeenPerInstance(f"{gname}_{hint}", grouping, hint), "input")
        return g, {}

    def check(self, result):
        items = Counter((i % 7, i) for i in range(self.n))
        for gname, _ in GROUPINGS:
            for hint in MATRIX_HINTS:
                pe = f"{gname}_{hint}"
                instances = 1 if gname == "global" else hint
                assert result.plan[pe] == instances, (pe, result.plan[pe])
                rows = result.outputs[(pe, "output")]
                got = Counter(x for tag, x in rows if tag == "item")
                ends = [x for tag, x in rows if tag in ("seen", "keys")]
                copies = instances if gname == "all" else 1
                assert got == Counter({k: v * copies for k, v in items.items()}), pe
                assert len(ends) == instances, (pe, ends)          # every instance flushed once
                if gname in ("all", "global"):
                    assert ends == [self.n] * instances, (pe, ends)
                elif gname == "groupby":
                    owned = [k for keys in ends for k in keys]
                    assert sorted(owned) == list(range(7)), f"{pe}: a key reached two instances: {ends}"

    def comparable(self, items):
        return [("keys", "partition") if tag == "keys" else (tag, x) for tag, x in items]


CASES = [
    WordCount(),
    GroupByStringKeysManyProducers(),
    BroadcastAll(),
    Global(),
    FanIn(),
    FanOutTee(),
    MultipleOutputs(),
    CompositeChain(),
    StatefulFlush(),
    FlatMapAndDrop(),
    LongChain(),
    FeedInputs(),
    EmptySource(),
    LifecycleOrder(),
    NumpyArrays(),
    LocalChain(),
    GeneratorSteps(),
    FailingPE(),
    GeneratorFails(),
    GroupingMatrix(),
]


def enact(case, mapping, processes=None, **options):
    graph, inputs = case.build()
    return run(graph, inputs=inputs, mapping=mapping, processes=processes, **options)


def compare_with_reference(case, result, reference):
    """Assert that ``result`` has the same outputs (as multisets) as ``reference``."""
    assert set(result.outputs) == set(reference.outputs)
    for key in reference.outputs:
        got, want = result.outputs[key], reference.outputs[key]
        if hasattr(case, "comparable"):
            got, want = case.comparable(got), case.comparable(want)
        if case.per_instance:
            assert set(multiset(got)) == set(multiset(want)), f"{case.name}: outputs of {key} differ"
        else:
            assert multiset(got) == multiset(want), f"{case.name}: outputs of {key} differ from sequential"


def run_case(case, mapping, processes=None, reference=None, **options):
    """Enact ``case`` with ``mapping`` and check it; returns the result (or the error).

    When ``reference`` (a sequential result) is omitted it is computed here.
    """
    if case.raises is not None:
        try:
            enact(case, mapping, processes, **options)
        except case.raises as err:
            case.check_error(err)
            return err
        raise AssertionError(f"{case.name}: expected {case.raises.__name__}, the run succeeded")
    result = enact(case, mapping, processes, **options)
    case.check(result)
    if reference is None and mapping != "sequential":
        reference = enact(case, "sequential")
    if reference is not None:
        compare_with_reference(case, result, reference)
    return result
