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
