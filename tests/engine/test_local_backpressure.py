"""Sources pause while their own worker has work waiting: a cheap source feeding an
expensive PE in the same process (the workflow's Fetch -> Preprocess) must not fill memory
with items the worker cannot process yet."""

import os
import time

import numpy as np
import pytest

from noisecorr.engine import GenericPE, ProducerPE, WorkflowGraph, run
from noisecorr.engine.runtime import SOURCE_AHEAD_SECONDS


class CheapDays(ProducerPE):
    """1 MB per item, made in microseconds; records how many it has made."""

    def __init__(self, counter):
        super().__init__()
        self.counter = counter

    def _process(self, inputs):
        with open(self.counter + ".tmp", "w") as f:  # atomic: another process may read it
            f.write(str(inputs["i"] + 1))
        os.replace(self.counter + ".tmp", self.counter)
        return np.full(131072, float(inputs["i"]))


class SlowDays(GenericPE):
    """``seconds`` per item (in ``steps`` generator steps if given, the loop running between
    them); notes how far ahead the producer was each time, from item ``warmup`` on."""

    def __init__(self, counter, seconds=0.02, steps=0, warmup=0, name=None):
        super().__init__()
        if name:
            self.name = name
        self._add_input("input")
        self._add_output("output")
        self.counter = counter
        self.seconds, self.steps, self.warmup = seconds, steps, warmup
        self.n = 0
        self.max_lead = 0

    def process(self, inputs):
        if self.n >= self.warmup:
            with open(self.counter) as f:
                self.max_lead = max(self.max_lead, int(f.read()) - self.n)
        if self.steps:
            return self._in_steps()
        self.n += 1
        time.sleep(self.seconds)
        return None

    def _in_steps(self):
        for _ in range(self.steps):
            time.sleep(self.seconds / self.steps)
            yield
        self.n += 1

    def postprocess(self):
        self.write("output", (self.n, self.max_lead))


def run_local_pair(first, second, inputs, mapping):
    """``first -> second`` on one worker (one instance each, the stream local); the
    outputs of ``second``."""
    g = WorkflowGraph()
    g.connect(first, "output", second, "input", grouping="local")
    first.numprocesses = second.numprocesses = 1
    kw = {"processes": 1} if mapping == "multiprocess" else {}
    res = run(g, inputs={first: inputs}, mapping=mapping, **kw)
    return res.outputs[(second.name, "output")]


@pytest.mark.parametrize("mapping", ["sequential", "multiprocess"])
def test_source_waits_for_local_backlog(tmp_path, mapping):
    counter = tmp_path / "made"
    counter.write_text("0")
    n = 80
    ((got, lead),) = run_local_pair(CheapDays(str(counter)), SlowDays(str(counter)),
                                    [{"i": i} for i in range(n)], mapping)
    assert got == n
    # 0.5 s of work at 20 ms per item is 25 items; before the consumer is measured an item
    # counts as 50 ms. Without the pause the source makes all 80 in its first turn.
    assert SOURCE_AHEAD_SECONDS == 0.5
    bound = 40  # 25 waiting, a batch being processed, the turn in which the source stops
    assert 1 <= lead <= bound, f"the source ran {lead} items ahead of its own worker"


class TileLike(GenericPE):
    """One input, twelve large outputs, a ``yield`` after each (as TileCorrelatePE does)."""

    def __init__(self, counter):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.counter = counter
        self.lags = []

    def process(self, inputs):
        for k in range(12):
            with open(self.counter) as f:
                self.lags.append(k - int(f.read()))  # written minus consumed so far
            self.write("output", np.full(131072, float(k)))
            yield

    def postprocess(self):
        self.write("output", ("lags", self.lags))


class Consume(GenericPE):
    def __init__(self, counter):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.counter = counter
        self.n = 0
        self.lags = None

    def process(self, inputs):
        x = inputs["input"]
        if isinstance(x, tuple):
            self.lags = x[1]
            return
        self.n += 1
        with open(self.counter, "w") as f:
            f.write(str(self.n))

    def postprocess(self):
        self.write("output", (self.n, self.lags))


@pytest.mark.parametrize("mapping", ["sequential", "multiprocess"])
def test_generator_process_lets_the_next_pe_run_between_steps(tmp_path, mapping):
    """Each step's output is consumed before the next step: one 1 MB item in flight, not 12."""
    counter = tmp_path / "consumed"
    counter.write_text("0")
    ((n, lags),) = run_local_pair(TileLike(str(counter)), Consume(str(counter)),
                                  [{"input": 0}], mapping)
    assert n == 12
    assert max(lags) <= 1, f"outputs waited for the whole process() call: {lags}"


def test_busy_worker_holds_back_a_remote_source(tmp_path):
    """A worker resuming a generator keeps receiving between steps; it acknowledges only
    while its own backlog is small, so the feeding worker's source pauses (window 8)."""
    counter = tmp_path / "made"
    counter.write_text("0")
    g = WorkflowGraph()
    # 8 ms per item in 4 steps, the lead counted in the steady state (the first batches
    # are sent in a burst)
    src = CheapDays(str(counter))
    slow = SlowDays(str(counter), seconds=0.008, steps=4, warmup=300, name="SlowSteps")
    g.connect(src, "output", slow, "input")
    slow.numprocesses = 1
    n = 600
    res = run(g, inputs={src: [{"i": i} for i in range(n)]}, mapping="multiprocess", processes=2,
              window=8)
    ((got, lead),) = res.outputs[("SlowSteps", "output")]
    assert got == n
    # 0.5 s of waiting work is about 62 items of 8 ms, plus 8 unacknowledged batches of one
    # item; acknowledged on receipt, the source makes all 600 MB in its first seconds
    assert 1 <= lead <= 100, f"the remote source ran {lead} items ahead"


class Driver(GenericPE):
    """concurrent_inputs: the first item starts a 30-step generator; the others are taken
    while it runs (as TileCorrelatePE stores spectra while computing a tile)."""

    concurrent_inputs = True

    def __init__(self, greedy=False):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.seen, self.during, self.greedy = [], [], greedy

    def process(self, inputs):
        self.seen.append(inputs["input"])
        if len(self.seen) == 1 or self.greedy:
            return self._drive()
        return None

    def _drive(self):
        for _ in range(30):
            self.during.append(len(self.seen))
            yield

    def postprocess(self):
        self.write("output", (sorted(self.seen), self.during))


def test_concurrent_inputs_are_taken_between_steps():
    from noisecorr.testing.conformance import Range

    g = WorkflowGraph()
    src, drv = Range(20), Driver()
    g.connect(src, "output", drv, "input")
    ((seen, during),) = run(g, inputs={src: 1}).outputs[("Driver", "output")]
    assert seen == list(range(20))
    assert during[0] == 1 and during[-1] == 20, "inputs waited for the generator to finish"


def test_concurrent_inputs_allow_one_generator_at_a_time():
    from noisecorr.engine.errors import PEError
    from noisecorr.testing.conformance import Range

    g = WorkflowGraph()
    src, drv = Range(5), Driver(greedy=True)
    g.connect(src, "output", drv, "input")
    with pytest.raises(PEError, match="one generator at a time"):
        run(g, inputs={src: 1})


class CheapStep(GenericPE):
    """Not a source: turns each request into a 1 MB item in 2 ms (a fetch; the slow PE
    after it takes 20 ms, as preprocessing a station-day takes 30 times a fetch)."""

    def __init__(self, counter):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.counter = counter
        self.made = 0

    def process(self, inputs):
        time.sleep(0.002)
        self.made += 1
        with open(self.counter, "w") as f:
            f.write(str(self.made))
        self.write("output", np.full(131072, float(inputs["input"])))


def test_cheap_pe_waits_for_its_successors():
    """All requests arrive at once (a source of small items); the PE that turns them into
    large items waits while the slow PE after it has 0.5 s of work waiting."""
    from noisecorr.testing.conformance import Range

    import tempfile

    counter = os.path.join(tempfile.mkdtemp(), "made")
    with open(counter, "w") as f:
        f.write("0")
    g = WorkflowGraph()
    src, cheap, slow = Range(80), CheapStep(counter), SlowDays(counter)
    g.connect(src, "output", cheap, "input")
    g.connect(cheap, "output", slow, "input")
    ((got, lead),) = run(g, inputs={src: 1}).outputs[("SlowDays", "output")]
    assert got == 80
    # a batch of the cheap PE is 50 ms (25 items); it then waits while 0.5 s is queued
    assert 1 <= lead <= 60, f"the cheap PE ran {lead} items ahead of the slow one"
