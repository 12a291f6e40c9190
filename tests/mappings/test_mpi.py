"""The MPI mapping under the virtual environment's own ``mpiexec``.

These tests never skip: without mpi4py or ``mpiexec`` they fail, saying to install the
``mpi`` extra. Each launches a short MPI job with a bounded timeout, so a hang fails the test
instead of blocking CI. The file doubles as the program the scenario test runs on every rank
(``mpiexec -n 3 python tests/mappings/test_mpi.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from noisecorr.engine import EngineError, GenericPE, IterativePE, MappingError, PEError, ProducerPE, WorkflowGraph, run
from noisecorr.engine.examples import Doubler, NumberSource, chain_graph
from noisecorr.testing.conformance import CASES, FailingPE

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120
INSTALL = "install the mpi extra: pip install 'noisecorr[mpi]' (mpi4py and the mpich wheel)"


def mpiexec():
    """The venv's own mpiexec (next to this Python); fail, never skip, when it is missing."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.fail(f"mpi4py is not installed; {INSTALL}")
    path = Path(sys.executable).parent / "mpiexec"
    if not path.is_file():
        pytest.fail(f"no mpiexec next to {sys.executable}; {INSTALL}")
    return str(path)


def clean_env():
    """This environment without the variables of an MPI launch (the tests start their own)."""
    from noisecorr.mappings.mpi import LAUNCHER_VARIABLES, RELAUNCHED

    drop = set(LAUNCHER_VARIABLES) | {RELAUNCHED, "SLURM_STEP_ID", "SLURM_STEPID"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def launch(args, timeout=TIMEOUT):
    """``(completed process, None)``; ``timeout`` only guards against a hang (a run that fails
    is checked by what it reports, never by how long it took on a loaded machine)."""
    proc = subprocess.run(args, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    return proc, None


# -- the conformance suite, every case on every rank -----------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 3, 5])
def test_conformance_suite_on_every_rank(ranks):
    proc, _ = launch([mpiexec(), "-n", str(ranks), sys.executable, "-m", "noisecorr.testing.mpi_conformance"])
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert f"mpi conformance: {ranks} ranks, {len(CASES)} passed, 0 failed" in proc.stdout, report
    for case in CASES:
        assert f"PASS {case.name} " in proc.stdout, report


# -- scenarios beyond the suite (this file is the program) ----------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 3, 5])
def test_scenarios_under_mpiexec(ranks):
    """Read-only arrays across ranks, user MPI traffic, recovery after a failure, bad processes."""
    proc, _ = launch([mpiexec(), "-n", str(ranks), sys.executable, __file__])
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    for name in SCENARIOS:
        assert f"scenario {name}: ok on {ranks} ranks" in proc.stdout, report


# -- failures end the job --------------------------------------------------------------------
FAILING_WORKFLOW = """
from noisecorr.testing.conformance import FailingPE

graph, _ = FailingPE().build()
"""

FAILING_SCRIPT = """
import sys
from mpi4py import MPI
from noisecorr.engine import run
from noisecorr.testing.conformance import FailingPE

graph, inputs = FailingPE().build()
try:
    run(graph, inputs=inputs, mapping="mpi")
except Exception as exc:  # what this rank raised, in a file of its own, then the traceback
    with open(f"{sys.argv[1]}/rank{MPI.COMM_WORLD.rank}.err", "w") as f:
        f.write(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    raise
print("not reached")
"""


def assert_reports_failure(proc):
    """The run ended by itself (no hang: ``launch``'s timeout did not fire) and says which PE
    failed on which item, with the remote traceback, and nothing ran after the failure."""
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "PE 'FailOn'" in out and "item 137" in out, out
    assert "Traceback" in out and 'raise ValueError(f"refusing item {x}")' in out, out
    assert "not reached" not in out


@pytest.mark.mpi
def test_pe_failure_under_enact_exits_nonzero_promptly(tmp_path):
    workflow = tmp_path / "failing_workflow.py"
    workflow.write_text(FAILING_WORKFLOW)
    cmd = [mpiexec(), "-n", "3", sys.executable, "-m", "noisecorr", "enact", str(workflow), "--mapping", "mpi"]
    proc, _ = launch(cmd)
    assert_reports_failure(proc)
    assert proc.returncode == 1  # every rank exits with the CLI's "run failed" status
    assert proc.stderr.count("--- traceback from the failing PE ---") == 1, "only rank 0 should print the error"


@pytest.mark.mpi
def test_pe_failure_in_a_script_raises_on_every_rank(tmp_path):
    script = tmp_path / "failing_script.py"
    script.write_text(FAILING_SCRIPT)
    proc, _ = launch([mpiexec(), "-n", "3", sys.executable, str(script), str(tmp_path)])
    assert_reports_failure(proc)
    # every rank raised the PEError (read from each rank's own file: the three tracebacks on
    # the shared stderr interleave, so counting them there fails for the wrong reason)
    raised = sorted(tmp_path.glob("rank*.err"))
    assert [p.name for p in raised] == ["rank0.err", "rank1.err", "rank2.err"], proc.stderr
    for p in raised:
        assert p.read_text().startswith("noisecorr.engine.errors.PEError: PE 'FailOn'"), p.read_text()


# -- the command line re-launches itself ----------------------------------------------------
@pytest.mark.mpi
def test_enact_relaunches_itself_under_mpiexec_and_prints_the_plan_once():
    mpiexec()
    cmd = [sys.executable, "-m", "noisecorr", "enact", "noisecorr.engine.examples:chain_graph",
           "--mapping", "mpi", "-n", "3", "--plan"]
    proc, _ = launch(cmd)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert out.count("3 worker(s)") == 1, out
    assert "worker 0: NumberSource[0]" in out and "worker 1: Doubler[0]" in out and "worker 2: Sink[0]" in out, out
    assert out.count("mapping mpi, wall time") == 1, out
    assert "(200000, 39999800000)" in out, out
    assert "re-launching under MPI" in proc.stderr and "mpiexec -n 3" in proc.stderr


@pytest.mark.mpi
def test_enact_under_mpiexec_rejects_a_different_process_count():
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "noisecorr", "enact",
           "noisecorr.engine.examples:chain_graph", "--mapping", "mpi", "-n", "3"]
    proc, _ = launch(cmd)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "processes=3" in proc.stderr and "2 rank(s)" in proc.stderr
    assert "re-launching" not in proc.stderr


# -- no MPI needed: import, launch detection ---------------------------------------------------
@pytest.mark.mpi
def test_import_does_not_initialise_mpi():
    code = "import sys, noisecorr.mappings.mpi; assert 'mpi4py.MPI' not in sys.modules, 'MPI was imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.mpi
@pytest.mark.parametrize(
    "environ, launched, srun",
    [
        ({}, False, False),
        ({"PMI_RANK": "0", "PMI_SIZE": "2"}, True, False),
        ({"PMIX_RANK": "1"}, True, False),
        ({"OMPI_COMM_WORLD_SIZE": "4"}, True, False),
        ({"MPI_LOCALRANKID": "0"}, True, False),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, False, False),  # the batch script itself
        ({"SLURM_STEP_ID": "0", "SLURM_NTASKS": "4"}, True, True),
        ({"SLURM_STEP_ID": "0", "SLURM_NTASKS": "1"}, False, True),  # srun -n 1: no mpiexec either
        ({"SLURM_STEP_ID": "batch", "SLURM_NTASKS": "4"}, False, False),
    ],
)
def test_launch_detection(environ, launched, srun):
    from noisecorr.mappings import mpi

    assert mpi.launched_by_mpi(environ) is launched
    assert mpi.in_srun_step(environ) is srun


@pytest.mark.mpi
def test_no_relaunch_inside_an_srun_step_or_a_launch(monkeypatch):
    from noisecorr.mappings import mpi

    for var, value in (("SLURM_STEP_ID", "3"), ("PMI_RANK", "0"), (mpi.RELAUNCHED, "1")):
        with monkeypatch.context() as m:
            for name in mpi.LAUNCHER_VARIABLES + ("SLURM_STEP_ID", "SLURM_STEPID", mpi.RELAUNCHED):
                m.delenv(name, raising=False)
            m.setenv(var, value)
            m.setattr(mpi.subprocess, "call", lambda *a, **k: pytest.fail("mpiexec must not be called"))
            assert mpi.inside_mpi()
            assert mpi.relaunch_if_needed(4, argv=["enact", "x"]) is None
    assert mpi.relaunch_if_needed(None) is None


@pytest.mark.mpi
def test_relaunch_command_uses_the_venv_mpiexec(monkeypatch):
    from noisecorr.mappings import mpi

    for name in mpi.LAUNCHER_VARIABLES + ("SLURM_STEP_ID", "SLURM_STEPID", mpi.RELAUNCHED):
        monkeypatch.delenv(name, raising=False)
    assert not mpi.inside_mpi()
    calls = []
    monkeypatch.setattr(mpi.subprocess, "call", lambda cmd, env: calls.append((cmd, env)) or 7)
    assert mpi.relaunch_if_needed(4, argv=["enact", "mod:graph", "-m", "mpi", "-n", "4"]) == 7
    cmd, env = calls[0]
    assert cmd == [mpiexec(), "-n", "4", sys.executable, "-m", "noisecorr", "enact", "mod:graph", "-m", "mpi", "-n", "4"]
    assert env[mpi.RELAUNCHED] == "1"


# =============================================================================================
# The scenario program: ``mpiexec -n N python tests/mappings/test_mpi.py``
# =============================================================================================
N_ARRAYS, ARRAY_SIZE = 8, 100_000  # 800 kB each: out of band


class Arrays(ProducerPE):
    def _process(self, inputs):
        import numpy as np

        for i in range(N_ARRAYS):
            a = np.arange(ARRAY_SIZE, dtype=np.float64) * (i + 1)
            self.write("output", {"i": i, "a": a, "small": np.full(4, i)})


class Inspect(GenericPE):
    """Reports, per array, the rank it reached, whether it is writeable and its digest."""

    def __init__(self):
        super().__init__()
        self._add_input("input")
        self._add_output("seen")
        self._add_output("arrays")
        self.numprocesses = 2

    def process(self, inputs):
        item = inputs["input"]
        a = item["a"]
        digest = hashlib.sha1(a.tobytes()).hexdigest()
        refused = None  # an array from this rank is the producer's own: leave it alone
        if not a.flags.writeable:
            try:
                a[0] = -1.0
                refused = False
            except ValueError:
                refused = True
        self.write("seen", (item["i"], self.rank, a.flags.writeable, refused, digest))
        self.write("arrays", (item["i"], a))


class Boom(IterativePE):
    def _process(self, x):
        raise RuntimeError(f"boom on {x}")


class FailingSource(ProducerPE):
    def _process(self, inputs):
        self.write("output", 1)
        raise KeyError("source broke")


def scenario_arrays(rank, size):
    import numpy as np

    g = WorkflowGraph()
    src, inspect = Arrays(), Inspect()
    g.connect(src, "output", inspect, "input")
    result = run(g, mapping="mpi")
    if rank != 0:
        assert result is None
        return
    seen = sorted(result.outputs[("Inspect", "seen")])
    assert [s[0] for s in seen] == list(range(N_ARRAYS)), seen
    for i, where, writeable, refused, digest in seen:
        expected = np.arange(ARRAY_SIZE, dtype=np.float64) * (i + 1)
        assert digest == hashlib.sha1(expected.tobytes()).hexdigest(), f"array {i} changed in transit"
        if where != 0:  # it crossed ranks: the receiver must not be able to change it
            assert not writeable and refused is True, f"array {i} on rank {where} is writeable"
    assert {s[1] for s in seen} - {0}, "no array crossed ranks"
    for i, a in result.outputs[("Inspect", "arrays")]:  # gathered to rank 0 intact
        assert np.array_equal(a, np.arange(ARRAY_SIZE, dtype=np.float64) * (i + 1))


def sink_total(result):
    """(count, sum) over the Sink instances of chain_graph."""
    rows = result.outputs[("Sink", "output")]
    return sum(c for c, _ in rows), sum(t for _, t in rows)


def scenario_user_traffic(rank, size):
    """The user's own messages on COMM_WORLD (even with our tags) do not meet ours."""
    from mpi4py import MPI

    from noisecorr.mappings.mpi import TAG_BUF, TAG_MSG

    world = MPI.COMM_WORLD
    reqs = [world.isend(("user", rank, tag), dest=(rank + 1) % size, tag=tag) for tag in (TAG_MSG, TAG_BUF)]
    result = run(chain_graph(20_000), mapping="mpi")
    got = [world.recv(source=(rank - 1) % size, tag=tag) for tag in (TAG_MSG, TAG_BUF)]
    MPI.Request.waitall(reqs)
    assert got == [("user", (rank - 1) % size, TAG_MSG), ("user", (rank - 1) % size, TAG_BUF)], got
    if rank == 0:
        assert sink_total(result) == (20_000, 20_000 * 19_999)


def scenario_recover_after_failures(rank, size):
    """Failures on a non-root rank, on rank 0 and on several ranks; then a clean run."""
    graphs = []
    graph, inputs = FailingPE().build()
    graphs.append((graph, inputs, "FailOn", "137"))
    g = WorkflowGraph()
    g.connect(FailingSource(), "output", Doubler(), "input")  # the source sits on rank 0
    graphs.append((g, {}, "FailingSource", None))
    g = WorkflowGraph()
    boom = Boom()
    boom.numprocesses = size  # an instance on every rank: several ranks fail at once
    g.connect(Arrays(), "output", boom, "input")
    graphs.append((g, {}, "Boom", None))
    for graph, inputs, pe, item in graphs:
        try:
            run(graph, inputs=inputs, mapping="mpi")
        except PEError as err:
            assert err.pe == pe, err
            assert item is None or err.item == item, err
            assert "Traceback" in err.remote_traceback
        else:
            raise AssertionError(f"{pe}: no PEError on rank {rank}")
    result = run(chain_graph(5_000), mapping="mpi")
    if rank == 0:
        assert sink_total(result) == (5_000, 5_000 * 4_999)


def scenario_processes_must_match(rank, size):
    try:
        run(chain_graph(10), mapping="mpi", processes=size + 1)
    except MappingError as err:
        assert f"processes={size + 1}" in str(err) and f"{size} rank(s)" in str(err), err
    else:
        raise AssertionError("processes != world size was accepted")
    result = run(chain_graph(10), mapping="mpi", processes=size)
    assert (result is None) == (rank != 0)


def scenario_ranks_must_agree_on_the_graph(rank, size):
    g = WorkflowGraph()
    src = Arrays() if rank == 1 else FailingSource()
    g.connect(src, "output", Doubler(), "input")
    try:
        run(g, mapping="mpi")
    except MappingError as err:
        assert "different graphs" in str(err) and "[1]" in str(err), err
    else:
        raise AssertionError("ranks with different graphs were not detected")


class Exits(IterativePE):
    def _process(self, x):
        if x == 3:
            sys.exit(0)
        return x


def scenario_sys_exit_in_a_pe_is_a_failure(rank, size):
    g = WorkflowGraph()
    exits = Exits()
    exits.numprocesses = size
    g.connect(NumberSource(10), "output", exits, "input")
    try:
        run(g, mapping="mpi")
    except EngineError as err:
        assert "SystemExit" in str(err), err
    else:
        raise AssertionError("sys.exit() in a PE was not reported")


class Unpicklable(IterativePE):
    """Writes a lambda (cloudpickle can send it) or a lock (nothing can) from rank ``rank``."""

    def __init__(self, what):
        super().__init__()
        self.what = what
        self.numprocesses = 3

    def _process(self, x):
        if self.rank == 0:
            return x
        import threading

        return threading.Lock() if self.what == "lock" else (lambda: x)


class Drop(IterativePE):
    def _process(self, x):
        return None


def scenario_items_that_cannot_travel(rank, size):
    """A lock written on another rank cannot reach rank 0: a PEError naming the PE, everywhere."""
    for what, downstream in (("lock", True), ("lock", False), ("lambda", False)):
        g = WorkflowGraph()
        src, pe = NumberSource(30), Unpicklable(what)
        g.connect(src, "output", pe, "input")
        if downstream:
            sink = Drop()  # the lock cannot be sent to it
            g.connect(pe, "output", sink, "input")
        try:
            result = run(g, mapping="mpi")
        except PEError as err:
            # (the PE is named once per instance on the rank that could not send)
            assert what == "lock" and err.pe.startswith("Unpicklable") and "pickle" in str(err), err
        else:
            assert what == "lambda", f"a {what} crossed ranks"
            if rank == 0:
                got = result.outputs[("Unpicklable", "output")]
                assert sorted(x if isinstance(x, int) else x() for x in got) == list(range(30))


def scenario_progress_reaches_rank_0(rank, size):
    calls = []
    result = run(chain_graph(30_000), mapping="mpi", progress=calls.append)
    if rank != 0:
        assert result is None and calls == [], "progress is reported on rank 0 only"
        return
    assert calls, "no progress reported"
    last = calls[-1]  # every rank's final counters have reached rank 0 before its DONE
    assert last["NumberSource"]["out"] == 30_000 and last["Doubler"]["in"] == 30_000, last
    assert last["Sink"]["in"] == 30_000, last


SCENARIOS = {
    "arrays": scenario_arrays,
    "user_traffic": scenario_user_traffic,
    "recover_after_failures": scenario_recover_after_failures,
    "processes_must_match": scenario_processes_must_match,
    "ranks_must_agree_on_the_graph": scenario_ranks_must_agree_on_the_graph,
    "sys_exit_in_a_pe_is_a_failure": scenario_sys_exit_in_a_pe_is_a_failure,
    "items_that_cannot_travel": scenario_items_that_cannot_travel,
    "progress_reaches_rank_0": scenario_progress_reaches_rank_0,
}


def _main():
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    status = 0
    for name, scenario in SCENARIOS.items():
        try:
            scenario(rank, size)
            ok = True
        except Exception as exc:  # reported below, per rank
            ok = False
            print(f"rank {rank}: scenario {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        oks = world.gather(ok, root=0)
        if rank == 0 and all(oks):
            print(f"scenario {name}: ok on {size} ranks", flush=True)
        status |= not ok
    return status


if __name__ == "__main__":
    sys.exit(_main())
