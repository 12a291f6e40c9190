"""Small PEs and graphs used by the documentation, the benchmarks and ``noisecorr enact``.

``python -m noisecorr.engine.examples`` is not needed: enact the graphs with
``noisecorr enact noisecorr.engine.examples:chain_graph -i 1``.
"""

from __future__ import annotations

from .graph import WorkflowGraph
from .pe import ConsumerPE, GenericPE, IterativePE, ProducerPE


class NumberSource(ProducerPE):
    """Writes the integers ``0 .. n-1`` to ``output`` in one iteration."""

    def __init__(self, n=10):
        super().__init__()
        self.n = n

    def _process(self, inputs):
        write = self.write
        for i in range(self.n):
            write("output", i)


class Doubler(IterativePE):
    """Doubles each item."""

    def _process(self, data):
        return 2 * data


class Sink(ConsumerPE):
    """Counts and sums what it receives; writes nothing until ``postprocess``."""

    def __init__(self):
        super().__init__()
        self._add_output("output")
        self.count = 0
        self.total = 0

    def _process(self, data):
        self.count += 1
        self.total += data

    def postprocess(self):
        self.write("output", (self.count, self.total))


class Collect(GenericPE):
    """Collects every item into one list written at the end (a ``global`` grouping)."""

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.items = []

    def process(self, inputs):
        self.items.append(inputs["input"])

    def postprocess(self):
        self.write("output", sorted(self.items))


def chain_graph(n=200_000):
    """NumberSource(n) -> Doubler -> Sink: the 3-PE chain of the engine benchmark."""
    graph = WorkflowGraph()
    src, dbl, sink = NumberSource(n), Doubler(), Sink()
    graph.connect(src, "output", dbl, "input")
    graph.connect(dbl, "output", sink, "input")
    return graph


graph = chain_graph(1000)
