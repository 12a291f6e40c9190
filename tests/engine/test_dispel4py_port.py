"""dispel4py-style graphs ported by changing only their imports.

Expected outputs are what dispel4py 1.2.1's simple mapping yields for the same graph
(hand-computed here).
"""

import pytest

from noisecorr.engine import GenericPE, WorkflowGraph, run


class NumberProducer(GenericPE):
    """dispel4py style: defines only ``_process``, writes with ``self.write``."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_output("output")
        self.counter = 0

    def _process(self, inputs):
        self.counter += 1
        self.write("output", self.counter)


class Square(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")

    def _process(self, inputs):
        x = inputs["input"]
        self.write("output", x * x)


@pytest.mark.parametrize("mapping", ["sequential", "multiprocess"])
def test_pipeline_with_only_underscore_process(mapping):
    prod, sq = NumberProducer(), Square()
    graph = WorkflowGraph()
    graph.connect(prod, "output", sq, "input")
    result = run(graph, inputs={prod: 5}, mapping=mapping, processes=3)
    assert sorted(result[(sq.name, "output")]) == [1, 4, 9, 16, 25]


def test_pe_without_process_or_underscore_process_names_itself():
    class Empty(GenericPE):
        def __init__(self):
            GenericPE.__init__(self)
            self._add_output("output")

    with pytest.raises(NotImplementedError, match="Empty"):
        Empty().process({})


# -- dispel4py graph_testing-style graphs: one class used several times, tee, group-by,
# -- one-to-all, split-merge and a composite, with only the imports rewritten
from collections import Counter  # noqa: E402

from noisecorr.engine import ConsumerPE, IterativePE, ProducerPE, create_iterative_chain  # noqa: E402

WORDS = "to be or not to be that is the question".split()


class CountingProducer(ProducerPE):
    """Writes 1, 2, 3, ... one per iteration (dispel4py's testing_PEs.CountingProducer)."""

    def __init__(self):
        ProducerPE.__init__(self)
        self.counter = 0

    def _process(self, inputs):
        self.counter += 1
        return self.counter


class Increment(IterativePE):
    def _process(self, data):
        return data + 1


class WordProducer(ProducerPE):
    def __init__(self):
        ProducerPE.__init__(self)
        self.i = 0

    def _process(self, inputs):
        word = WORDS[self.i % len(WORDS)]
        self.i += 1
        return [word, 1]


class CountWord(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.count = Counter()
        self.numprocesses = 3

    def _process(self, inputs):
        word, n = inputs["input"]
        self.count[word] += n

    def postprocess(self):
        for word, n in self.count.items():
            self.write("output", (word, n))


class SeeAll(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping="all")
        self._add_output("output")
        self.numprocesses = 2
        self.seen = []

    def _process(self, inputs):
        self.seen.append(inputs["input"])

    def postprocess(self):
        self.write("output", tuple(sorted(self.seen)))


class EvenOdd(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("even")
        self._add_output("odd")

    def _process(self, inputs):
        x = inputs["input"]
        self.write("even" if x % 2 == 0 else "odd", x)


class Merge(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("left")
        self._add_input("right")
        self._add_output("output")

    def _process(self, inputs):
        for port, x in inputs.items():
            self.write("output", (port, x))


class Printer(ConsumerPE):
    def _process(self, data):
        self.log(f"got {data}")


def _double(x):
    return 2 * x


def _minus_one(x):
    return x - 1


MAPPINGS = [("sequential", None), ("multiprocess", 3)]


@pytest.mark.parametrize("mapping,processes", MAPPINGS)
def test_one_class_three_times_in_a_pipeline(mapping, processes):
    prod, a, b, c = CountingProducer(), Increment(), Increment(), Increment()
    graph = WorkflowGraph()
    graph.connect(prod, "output", a, "input")
    graph.connect(a, "output", b, "input")
    graph.connect(b, "output", c, "input")
    result = run(graph, inputs={prod: 5}, mapping=mapping, processes=processes)
    assert (a.name, b.name, c.name) == ("Increment", "Increment1", "Increment2")
    assert sorted(result[("Increment2", "output")]) == [4, 5, 6, 7, 8]


@pytest.mark.parametrize("mapping,processes", MAPPINGS)
def test_tee_to_two_copies_of_one_class(mapping, processes):
    prod, left, right = CountingProducer(), Increment(), Increment()
    graph = WorkflowGraph()
    graph.connect(prod, "output", left, "input")
    graph.connect(prod, "output", right, "input")
    result = run(graph, inputs={prod: 4}, mapping=mapping, processes=processes)
    assert sorted(result[("Increment", "output")]) == sorted(result[("Increment1", "output")]) == [2, 3, 4, 5]


@pytest.mark.parametrize("mapping,processes", MAPPINGS)
def test_word_count_group_by(mapping, processes):
    words, count = WordProducer(), CountWord()
    graph = WorkflowGraph()
    graph.connect(words, "output", count, "input")
    result = run(graph, inputs={words: 25}, mapping=mapping, processes=processes)
    got = result[("CountWord", "output")]
    assert len(got) == len(set(WORDS)), "a word was counted by two instances"
    assert dict(got) == dict(Counter(WORDS[i % len(WORDS)] for i in range(25)))


@pytest.mark.parametrize("mapping,processes", MAPPINGS)
def test_one_to_all(mapping, processes):
    prod, see = CountingProducer(), SeeAll()
    graph = WorkflowGraph()
    graph.connect(prod, "output", see, "input")
    result = run(graph, inputs={prod: 6}, mapping=mapping, processes=processes)
    # dispel4py's simple mapping gives the same: 2 instances, each saw every item
    assert result[("SeeAll", "output")] == [(1, 2, 3, 4, 5, 6)] * 2


@pytest.mark.parametrize("mapping,processes", MAPPINGS)
def test_split_merge_with_a_class_on_both_branches(mapping, processes):
    prod, split, inc_even, inc_odd, merge = CountingProducer(), EvenOdd(), Increment(), Increment(), Merge()
    graph = WorkflowGraph()
    graph.connect(prod, "output", split, "input")
    graph.connect(split, "even", inc_even, "input")
    graph.connect(split, "odd", inc_odd, "input")
    graph.connect(inc_even, "output", merge, "left")
    graph.connect(inc_odd, "output", merge, "right")
    graph.connect(merge, "output", Printer(), "input")
    result = run(graph, inputs={prod: 6}, mapping=mapping, processes=processes)
    assert result.counts["Printer"]["in"]["input"] == 6
    assert result.counts["Merge"]["in"] == {"left": 3, "right": 3}


@pytest.mark.parametrize("mapping,processes", MAPPINGS)
def test_composite_chain_between_copies_of_one_class(mapping, processes):
    prod, first, last = CountingProducer(), Increment(), Increment()
    chain = create_iterative_chain([_double, _minus_one])
    graph = WorkflowGraph()
    graph.connect(prod, "output", first, "input")
    graph.connect(first, "output", chain, "input")
    graph.connect(chain, "output", last, "input")
    result = run(graph, inputs={prod: 3}, mapping=mapping, processes=processes)
    # (x + 1) * 2 - 1 + 1 for x = 1, 2, 3
    assert sorted(result[("Increment1", "output")]) == [4, 6, 8]
