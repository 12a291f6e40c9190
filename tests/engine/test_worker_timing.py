"""Worker timings (issue 26): every worker reports when it was ready and finished, its PE
seconds and the seconds it waited on its transport, by reason, so a run can say why its
workers idled. Built to idle: a source that is slow on purpose (the worker of its consumer
waits for input) and a consumer that is slow on purpose (the source's worker waits for
acknowledgements); the lower bounds below hold by construction (the sleeps), not by timing."""

import os
import time

from noisecorr.engine import GenericPE, ProducerPE, WorkflowGraph, run
from noisecorr.workflow.idle import explain_idle


class SlowAfterReady(ProducerPE):
    """Waits until the consumer's worker is ready (its ``flag`` file), then writes ``n``
    items ``seconds`` apart: that worker has nothing to do for ``n * seconds``."""

    def __init__(self, flag, n=4, seconds=0.5):
        super().__init__()
        self.flag, self.n, self.seconds = flag, n, seconds

    def _process(self, inputs):
        while not os.path.exists(self.flag):
            time.sleep(0.01)
        for i in range(self.n):
            time.sleep(self.seconds)
            self.write("output", i)


class Consume(GenericPE):
    """Touches ``flag`` when its worker starts; sleeps ``seconds`` per item."""

    def __init__(self, flag=None, seconds=0.0):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.flag, self.seconds, self.n = flag, seconds, 0

    def preprocess(self):
        if self.flag:
            open(self.flag, "w").close()

    def process(self, inputs):
        time.sleep(self.seconds)
        self.n += 1

    def postprocess(self):
        self.write("output", self.n)


class Tick(ProducerPE):
    """One item per iteration, ``seconds`` each (longer than a pass, so one per batch)."""

    def __init__(self, seconds=0.06):
        super().__init__()
        self.seconds = seconds

    def _process(self, inputs):
        time.sleep(self.seconds)
        return 1


def test_worker_of_a_consumer_waits_for_its_slow_source(tmp_path):
    flag = str(tmp_path / "ready")
    graph = WorkflowGraph()
    src, dst = SlowAfterReady(flag, n=4, seconds=0.5), Consume(flag=flag)
    graph.connect(src, "output", dst, "input")
    result = run(graph, mapping="multiprocess", processes=2)
    assert result.outputs[("Consume", "output")] == [4]
    by_id = {w["worker"]: w for w in result.workers}
    assert set(by_id) == {0, 1}                       # source on worker 0, consumer on 1
    wall = result.timings["wall"]
    for w in by_id.values():
        assert 0.0 <= w["start"] <= w["end"] <= wall
    # the consumer's worker was ready before the source began its 2 s of writing
    assert by_id[1]["waits"].get("input:Consume", 0.0) >= 1.5, by_id[1]
    assert by_id[0]["busy"] >= 2.0 and by_id[1]["busy"] < 0.5
    idle = explain_idle(result.workers, wall)
    assert idle["seconds"]["input:Consume"] >= 1.5
    # the causes add up to the idle capacity (workers x wall - PE seconds)
    capacity = 2 * wall
    busy = sum(w["busy"] for w in result.workers)
    assert abs(sum(idle["seconds"].values()) - (capacity - busy)) < 0.01 + 1e-3 * capacity


def test_worker_of_a_source_waits_for_its_slow_consumer():
    graph = WorkflowGraph()
    src, dst = Tick(0.06), Consume(seconds=0.2)
    graph.connect(src, "output", dst, "input")
    result = run(graph, inputs={src: 8}, mapping="multiprocess", processes=2, window=1)
    assert result.outputs[("Consume", "output")] == [8]
    source_worker = next(w for w in result.workers if w["worker"] == 0)
    # each item takes the consumer 0.2 s and the source 0.06 s: with one batch in flight
    # the source's worker waits for the acknowledgement of every batch
    assert source_worker["waits"].get("downstream", 0.0) > 0.5, source_worker


def test_sequential_worker_never_waits():
    graph = WorkflowGraph()
    src, dst = Tick(0.0), Consume()
    graph.connect(src, "output", dst, "input")
    result = run(graph, inputs={src: 5}, mapping="sequential")
    (w,) = result.workers
    assert w["waits"] == {} and w["start"] >= 0.0 and w["end"] <= result.timings["wall"]
