"""Small graphs with known lineage, for the provenance tests of every mapping.

They live in the installed package (not under ``tests/``) so that the worker processes of
every mapping -- multiprocess, MPI ranks, Storm components started from a packaged topology
-- import them by name, as they would a user's PEs.

``graph()`` is Readings -> Scale -> Pair -> Stack: two stations, three chunks each; Scale
doubles each reading, Pair multiplies the two stations of a chunk (group-by chunk), Stack
sums per pair key, so the single stack is ``2*2 + 4*4 + 6*6 = 56`` and the lineage of each
stack is known exactly.
"""

from noisecorr.engine import GenericPE, IterativePE, ProducerPE, WorkflowGraph


class Readings(ProducerPE):
    """Writes station readings ``{"seed_id", "chunk", "value"}`` for each input dict."""

    def _process(self, inputs):
        for chunk in range(3):
            self.write("output", {"seed_id": inputs["seed_id"], "chunk": chunk, "value": chunk + 1.0})


class Scale(IterativePE):
    def _process(self, item):
        return {**item, "value": item["value"] * 2}


class Pair(GenericPE):
    """Pairs the two stations of each chunk as soon as both arrived (group-by chunk)."""

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping=["chunk"])
        self._add_output("output")
        self.pending = {}

    def process(self, inputs):
        item = inputs["input"]
        got = self.pending.setdefault(item["chunk"], {})
        got[item["seed_id"]] = item
        if len(got) == 2:
            a, b = sorted(got)
            self.write("output", {"key": f"{a}|{b}", "source": a, "receiver": b, "chunk": item["chunk"],
                                  "value": got[a]["value"] * got[b]["value"]})

    def provenance_input_keys(self, port, item):
        return ((item["chunk"], item["seed_id"]),)

    def provenance_output_keys(self, port, item):
        return ((item["chunk"], item["source"]), (item["chunk"], item["receiver"]))


class Stack(GenericPE):
    """Sums per key and writes in postprocess; its outputs derive from their own key only."""

    def __init__(self, fine=True):
        super().__init__()
        self._add_input("input", grouping=["key"])
        self._add_output("output")
        self.sums = {}
        if fine:
            self.provenance_input_keys = lambda port, item: (item["key"],)
            self.provenance_output_keys = lambda port, item: (item["key"],)

    def process(self, inputs):
        item = inputs["input"]
        self.sums[item["key"]] = self.sums.get(item["key"], 0.0) + item["value"]

    def postprocess(self):
        import numpy as np

        for key in sorted(self.sums):
            self.write("output", {"key": key, "stack": np.full(5, self.sums[key], dtype=np.float32)})


def graph(stations=("XX.A..Z", "XX.B..Z"), fine=True, parallel=1):
    """Readings -> Scale -> Pair -> Stack; returns (graph, inputs).

    ``fine``: Stack declares per-key lineage (else: the default, everything it consumed).
    ``parallel``: instances of Scale and Pair, so derivations cross workers.
    """
    g = WorkflowGraph()
    src, scale, pair, stack = Readings(), Scale(), Pair(), Stack(fine)
    src.name, scale.name, pair.name, stack.name = "Fetch", "Scale", "Pair", "Stack"
    scale.numprocesses = pair.numprocesses = parallel
    g.connect(src, "output", scale, "input")
    g.connect(scale, "output", pair, "input")
    g.connect(pair, "output", stack, "input")
    return g, {src: [{"seed_id": s} for s in stations]}
