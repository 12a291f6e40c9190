"""Faults under the multiprocess mapping end the run promptly, name the PE and item, and clean up."""

import glob
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from noisecorr.engine import ConsumerPE, IterativePE, PEError, ProducerPE, WorkflowGraph, run
from noisecorr.testing.conformance import KillSelf, Range, Square, chain

pytestmark = pytest.mark.timeout(120)


def _no_leftovers():
    assert multiprocessing.active_children() == []
    assert glob.glob(f"/dev/shm/noisecorr-{os.getpid()}-*") == []


def test_worker_killed_by_sigkill_names_pe_and_item():
    with pytest.raises(PEError) as info:
        run(chain(KillSelf(bad=23)), mapping="multiprocess", processes=3)
    err = info.value
    assert err.pe == "KillSelf" and err.phase == "worker"
    assert "killed by SIGKILL" in str(err)
    assert "23" in err.item, err.item
    _no_leftovers()


def test_worker_killed_by_sigterm():
    with pytest.raises(PEError, match="killed by SIGTERM"):
        run(chain(KillSelf(bad=5, sig=signal.SIGTERM)), mapping="multiprocess", processes=2)
    _no_leftovers()


def _memory_cgroup(limit_bytes):
    """Create a memory cgroup (v1 or v2) with a hard limit; return (procs file, cleanup)."""
    v1 = "/sys/fs/cgroup/memory"
    if os.path.isdir(v1) and os.access(v1, os.W_OK):
        path = f"{v1}/noisecorr-test-{os.getpid()}"
        os.makedirs(path, exist_ok=True)
        with open(f"{path}/memory.limit_in_bytes", "w") as f:
            f.write(str(limit_bytes))
        return path
    for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.exists(f"{root}/cgroup.controllers") and os.access(root, os.W_OK):
            path = f"{root}/noisecorr-test-{os.getpid()}"
            os.makedirs(path, exist_ok=True)
            with open(f"{path}/memory.max", "w") as f:
                f.write(str(limit_bytes))
            return path
    pytest.fail("no writable memory cgroup: this test needs root with cgroup v1 memory or cgroup v2")


class Hog(IterativePE):
    """Moves its own process into a small memory cgroup, then allocates far beyond it."""

    def __init__(self, cgroup, bad):
        super().__init__()
        self.cgroup, self.bad = cgroup, bad

    def _process(self, x):
        if x == self.bad:
            with open(f"{self.cgroup}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
            hog = np.ones(800 * 2**20 // 8)  # 800 MB against a 120 MB limit
            return float(hog.sum())
        return x


def test_worker_killed_by_the_oom_killer():
    cgroup = _memory_cgroup(120 * 2**20)
    try:
        with pytest.raises(PEError) as info:
            run(chain(Hog(cgroup, bad=11)), mapping="multiprocess", processes=2)
        err = info.value
        assert err.pe == "Hog" and "SIGKILL" in str(err) and "out-of-memory" in str(err)
        assert "11" in err.item
    finally:
        os.rmdir(cgroup)
    _no_leftovers()


class WriteLock(IterativePE):
    def _process(self, x):
        return (x, threading.Lock()) if x == 3 else (x, None)


def test_unpicklable_item_names_pe_and_item():
    g = WorkflowGraph()
    src, bad = Range(10), WriteLock()

    class Take(ConsumerPE):
        def _process(self, x):
            pass

    g.connect(src, "output", bad, "input")
    g.connect(bad, "output", Take(), "input")
    with pytest.raises(PEError) as info:
        run(g, mapping="multiprocess", processes=2)
    err = info.value
    assert err.pe == "WriteLock"
    assert "lock" in str(err).lower() and "cannot be pickled" in str(err)
    _no_leftovers()


def test_unpicklable_final_output_names_pe():
    g = WorkflowGraph()
    g.connect(Range(5), "output", WriteLock(), "input")
    with pytest.raises(PEError, match=r"PE 'WriteLock'.*cannot be pickled"):
        run(g, mapping="multiprocess", processes=2)
    _no_leftovers()


class SlowArrays(ConsumerPE):
    """Measures how far the producer runs ahead of it while it works slowly."""

    def __init__(self, progress_file):
        super().__init__()
        self._add_output("output")
        self.progress_file = progress_file
        self.max_lead = 0
        self.n = 0

    def _process(self, a):
        assert not a.flags.writeable, "arrays from another process must be read-only"
        with pytest.raises(ValueError):
            a[0] = 1.0
        produced = int(open(self.progress_file).read() or 0)
        self.max_lead = max(self.max_lead, produced - int(a[0]))
        self.n += 1
        time.sleep(0.004)

    def postprocess(self):
        self.write("output", (self.n, self.max_lead))


class FastArrays(ProducerPE):
    def __init__(self, progress_file):
        super().__init__()
        self.progress_file = progress_file

    def _process(self, inputs):
        with open(self.progress_file, "w") as f:
            f.write(str(inputs["i"]))
        self.write("output", np.full(131072, float(inputs["i"])))  # 1 MB


def test_back_pressure_bounds_arrays_in_flight_and_arrays_are_read_only(tmp_path):
    progress = tmp_path / "produced"
    progress.write_text("0")
    g = WorkflowGraph()
    src, sink = FastArrays(str(progress)), SlowArrays(str(progress))
    g.connect(src, "output", sink, "input")
    n = 300
    result = run(g, inputs={src: [{"i": i} for i in range(n)]}, mapping="multiprocess", processes=2, window=8)
    got, max_lead = result.outputs[("SlowArrays", "output")][0]
    assert got == n
    # without back-pressure the producer finishes all 300 (300 MB) while the consumer has
    # done a few; with a window of 8 batches it stays a few dozen arrays ahead at most
    assert 0 < max_lead <= 60, f"the producer ran {max_lead} arrays ahead: it was not held back"
    _no_leftovers()


def test_fewer_processes_than_pes_colocates():
    g = WorkflowGraph()
    prev = Range(100)
    g.add(prev)
    for k in range(5):
        sq = Square(numprocesses=None, name=f"Sq{k}")
        g.connect(prev, "output", sq, "input")
        prev = sq
    result = run(g, mapping="multiprocess", processes=2)
    assert sorted(result.outputs[("Sq4", "output")]) == sorted(x ** 32 for x in range(100))
    assert result.plan == {"Range": 1, **{f"Sq{k}": 1 for k in range(5)}}


def test_cli_exit_code_nonzero_on_pe_failure(tmp_path):
    script = tmp_path / "wf.py"
    script.write_text(
        "from noisecorr.engine import WorkflowGraph, IterativePE\n"
        "from noisecorr.testing.conformance import Range\n"
        "class Boom(IterativePE):\n"
        "    def _process(self, x):\n"
        "        if x == 4:\n"
        "            raise KeyError('station XS.S004 missing')\n"
        "        return x\n"
        "graph = WorkflowGraph()\n"
        "graph.connect(Range(10), 'output', Boom(), 'input')\n"
    )
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "enact", str(script), "-m", "multiprocess", "-n", "2"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "PE 'Boom' instance 0 failed while processing item 4" in proc.stderr
    assert "station XS.S004 missing" in proc.stderr and "Traceback" in proc.stderr


def test_interrupt_stops_all_workers(tmp_path):
    script, started = tmp_path / "slow.py", tmp_path / "started"
    script.write_text(
        "import time\n"
        "from noisecorr.engine import WorkflowGraph, IterativePE\n"
        "from noisecorr.testing.conformance import Range\n"
        "class Slow(IterativePE):\n"
        "    def _process(self, x):\n"
        f"        open({str(started)!r}, 'a').close()  # the workers are running\n"
        "        time.sleep(1)\n"
        "        return x\n"
        "graph = WorkflowGraph()\n"
        "graph.connect(Range(1000), 'output', Slow(), 'input')\n"
    )
    proc = subprocess.Popen([sys.executable, "-m", "noisecorr", "enact", str(script), "-m", "multiprocess", "-n", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    # interrupt once the enactment runs (a state, not a number of seconds: on a loaded
    # machine the imports alone can take longer than any fixed sleep)
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists(), f"the enactment never started: {proc.poll()}"
    os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C in a terminal: the whole process group
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    # multiprocessing's resource tracker exits when it reads EOF from the dead driver
    deadline = time.monotonic() + 120  # (a bound on waiting, generous on a loaded machine)
    while True:
        leftover = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert leftover == [], f"processes left behind: {leftover}"


def test_local_grouping_keeps_a_chain_in_each_process():
    """With as many instances as workers, 'local' sends every item to the next PE in the
    same process (no hop between processes); shuffle would spread them."""
    from noisecorr.testing.conformance import RankTag

    for grouping, expect_local in (("local", True), (None, False)):
        g = WorkflowGraph()
        src, a, b = Range(300), RankTag("TagA"), RankTag("TagB", grouping=grouping)
        g.connect(src, "output", a, "input")
        g.connect(a, "output", b, "input")
        rows = run(g, mapping="multiprocess", processes=3).outputs[("TagB", "output")]
        same = sum(1 for _, ra, rb in rows if ra == rb)
        assert len(rows) == 300
        assert (same == 300) == expect_local, (grouping, same)
