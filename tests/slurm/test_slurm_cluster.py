"""The generated job scripts on a real single-node SLURM cluster (scripts/services/slurm.sh).

On the bundled sample (6 stations, 3 hours) with cc_len 900 s and chunk_length 3600 s:
- the MPI job (2 ranks, srun --mpi=pmi2, noisecorr run --mapping mpi) gives the sequential
  run's stacks exactly (same windows, same float64 sums) and the same n_windows;
- running the same MPI script again skips the completed work (--resume) and leaves
  results.h5 untouched;
- the job array (3 one-hour tasks) plus the dependent merge job gives the sequential stacks to
  1e-6 of each pair's peak (the per-task stacks are stored as float32 before the weighted
  mean) and exactly the same n_windows: the task spans are whole chunks, so every window
  is the same;
- the multiprocess job gives the sequential stacks to 1e-6 of the peak (summation order).
- a job with a small --mem tells its run 80 % of it (noisecorr run --memory) and the run
  takes the tile plan `noisecorr slurm` predicted, within that budget (summary.json memory);
- a run started inside a job without --memory takes 80 % of SLURM_MEM_PER_NODE as its
  default budget (this cluster, task/none, sets no cgroup limit).

Jobs are waited for with a bounded timeout (scontrol show job); a failed or late job prints
its logs. Without NOISECORR_TEST_SLURM these tests FAIL, saying how to run them.
"""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from noisecorr.results import open_results

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
JOB_TIMEOUT = 240
STACK_RTOL = 1e-6

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def cluster():
    if not os.environ.get("NOISECORR_TEST_SLURM"):
        pytest.fail("NOISECORR_TEST_SLURM is not set: these tests need the single-node SLURM cluster that "
                    "scripts/services/slurm.sh starts; run them through `bash scripts/test.sh tests/slurm`")
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.split(), f"sinfo: {proc.stdout} {proc.stderr}"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    config = root / "hourly.yaml"
    config.write_text("chunk_length: 3600\nprocessing: {cc_len: 900.0, step: 450.0, maxlag: 60.0}\n")
    return root, config


@pytest.fixture(scope="module")
def reference(work):
    root, config = work
    out = root / "sequential"
    proc = _noisecorr("run", "--config", str(config), "--out", str(out), "--mapping", "sequential")
    assert proc.returncode == 0, proc.stderr
    return out / "results.h5"


def _noisecorr(*args, **kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOISECORR_") or k == "NOISECORR_TEST_SLURM"}
    return subprocess.run([PYTHON, "-m", "noisecorr", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120, **kw)


def _submit(kind, out, config, *extra):
    proc = _noisecorr("slurm", kind, "--submit", "--out", str(out), "--config", str(config), "--python", PYTHON,
                      "--time", "00:10:00", "--partition", "debug", *extra)
    assert proc.returncode == 0, f"noisecorr slurm {kind} --submit failed:\n{proc.stdout}\n{proc.stderr}"
    return dict(re.findall(r"^(\w+) job (\d+)", proc.stdout, re.M))


def _logs(out):
    text = []
    for p in sorted((Path(out) / "logs").glob("*.out")):
        text.append(f"==== {p.name}\n{p.read_text()[-4000:]}")
    return "\n".join(text) or f"(no logs in {out}/logs)"


def _wait(job_ids, out):
    from noisecorr.slurm.submit import wait

    try:
        states = wait(job_ids, timeout=JOB_TIMEOUT)
    except TimeoutError as exc:
        subprocess.run(["scancel", *job_ids])
        print(_logs(out))
        pytest.fail(f"{exc}\n{_logs(out)}")
    bad = {k: v for k, v in states.items() if v != "COMPLETED"}
    if bad:
        print(_logs(out))
        pytest.fail(f"jobs did not complete: {bad}\n{_logs(out)}")
    return states


def _job_field(job_id, name):
    proc = subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True)
    return re.findall(rf"\b{name}=(\S+)", proc.stdout)


def _assert_same_stacks(reference, results, exact):
    with open_results(reference) as want, open_results(results) as got:
        assert got.pairs() == want.pairs() and len(want.pairs()) == 15
        assert got.components() == want.components()
        for c in want.components():
            for s, r in want.pairs(c):
                lags_w, a = want.stack(s, r, c)
                lags_g, b = got.stack(s, r, c)
                np.testing.assert_array_equal(lags_g, lags_w)
                assert got.meta(s, r, c)["n_windows"] == want.meta(s, r, c)["n_windows"], (s, r, c)
                if exact:
                    np.testing.assert_array_equal(b, a, err_msg=f"{s}-{r} {c}")
                else:
                    assert np.max(np.abs(b - a)) <= STACK_RTOL * np.max(np.abs(a)), f"{s}-{r} {c}"


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_mpi_job_with_srun_pmi2_matches_sequential_then_resumes(work, reference):
    root, config = work
    out = root / "mpi"
    ids = _submit("mpi", out, config, "--tasks-per-node", "2", "--launcher", "srun")
    _wait([ids["mpi"]], out)
    log = _logs(out)
    assert "pairs written         15 of 15" in log, log
    assert "mapping               mpi" in log
    _assert_same_stacks(reference, out / "results.h5", exact=True)
    # the estimated --mem, 80 % of it passed on as the budget of the 2 ranks of the node
    from noisecorr.slurm.options import parse_memory

    (mem,) = _job_field(ids["mpi"], "MinMemoryNode")   # as scontrol writes it, e.g. 2.50G
    memory = _summary_memory(out)
    assert memory["workers"] == 2
    assert memory["budget_bytes"] == 2 * (int(0.8 * parse_memory(mem) * 2**20) // 2)
    assert memory["peak_bytes_per_worker"] <= memory["per_worker_budget_bytes"]

    # the same script again: nothing left to do, results untouched
    before = _sha(out / "results.h5")
    script = out / "jobs" / "noisecorr-mpi.sbatch"
    proc = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    again = proc.stdout.strip().split(";")[0]
    _wait([again], out)
    rerun = (out / "logs" / f"noisecorr-mpi-{again}.out").read_text()
    assert "(15 already complete)" in rerun and "pairs written         0 of 15" in rerun, rerun
    assert _sha(out / "results.h5") == before


def test_array_and_dependent_merge_match_sequential(work, reference):
    root, config = work
    out = root / "array"
    ids = _submit("array", out, config, "--chunk", "1h")
    assert set(ids) == {"array", "merge"}
    assert f"afterok:{ids['array']}" in "".join(_job_field(ids["merge"], "Dependency")) \
        or _job_field(ids["merge"], "JobState") != ["PENDING"], "the merge job must wait for the array"
    states = _wait([ids["array"], ids["merge"]], out)
    assert sorted(k for k in states if k.startswith(ids["array"] + "_")) == [f"{ids['array']}_{i}" for i in range(3)]
    # the merge started only after every array task had ended
    ends = [t for t in _job_field(ids["array"], "EndTime")]
    assert len(ends) == 3 and _job_field(ids["merge"], "StartTime")[0] >= max(ends)
    for i, (a, b) in enumerate([("22:30", "23:30"), ("23:30", "00:30"), ("00:30", "01:30")]):
        with open_results(out / "tasks" / f"task-{i:04d}" / "results.h5") as res:
            assert res.starttime[11:16] == a and res.endtime[11:16] == b
    _assert_same_stacks(reference, out / "results.h5", exact=False)
    with open_results(out / "results.h5") as res:
        assert res.starttime == "2024-01-01T22:30:00.000000Z" and res.endtime == "2024-01-02T01:30:00.000000Z"


def test_multiprocess_job_matches_sequential(work, reference):
    root, config = work
    out = root / "multiprocess"
    ids = _submit("multiprocess", out, config, "--cpus-per-task", "2")
    _wait([ids["multiprocess"]], out)
    _assert_same_stacks(reference, out / "results.h5", exact=False)


def _summary_memory(out):
    import json

    path = Path(out) / "summary.json"
    assert path.exists(), f"no {path}\n{_logs(out)}"
    return json.loads(path.read_text())["memory"]


def test_job_with_a_small_mem_plans_within_it(work):
    """--mem=2600M for 2 workers: the job tells its run 80 % of it, the run plans within that
    (the plan noisecorr slurm predicted) and finishes."""
    from noisecorr.slurm.memory import run_budget_bytes
    from noisecorr.slurm.options import JobOptions
    from noisecorr.slurm.profiles import load_profile
    from noisecorr.slurm.render import RunSpec, render_job

    root, config = work
    out = root / "small-mem"
    ids = _submit("multiprocess", out, config, "--cpus-per-task", "2", "--mem", "2600M")
    assert _job_field(ids["multiprocess"], "MinMemoryNode") == ["2600M"]
    _wait([ids["multiprocess"]], out)
    assert "pairs written         15 of 15" in _logs(out)
    memory = _summary_memory(out)
    assert memory["budget_bytes"] == run_budget_bytes(2600, 2, 2) == 2 * (int(0.8 * 2600 * 2**20) // 2)
    assert memory["budget_source"].startswith("memory (configuration")   # passed as --memory
    assert memory["workers"] == 2 and memory["peak_bytes_per_worker"] <= memory["per_worker_budget_bytes"]
    (job,) = render_job(JobOptions(kind="multiprocess", out=str(out), cpus_per_task=2, mem="2600M"),
                        load_profile("generic"), RunSpec(config=str(config)))
    assert (memory["block_size"], memory["panel_size"], memory["store"], memory["peak_bytes_per_worker"]) == \
        (job.plan.block_size, job.plan.panel_size, job.plan.store, job.plan.peak_bytes)
    assert f"budget {memory['budget_bytes'] / 1e9:.1f} GB" in _logs(out)


def test_a_run_inside_a_job_takes_its_default_budget_from_the_allocation(work):
    """No --memory at all: inside the job the run's default budget is 80 % of
    SLURM_MEM_PER_NODE (this test cluster sets no cgroup limit), not 40 % of the node."""
    root, config = work
    out = root / "default-budget"
    (out / "logs").mkdir(parents=True)
    run = (f"{PYTHON} -m noisecorr run --mapping multiprocess --processes 2 --config {config} "
           f"--out {out}")
    proc = subprocess.run(["sbatch", "--parsable", "--partition", "debug", "--time", "00:10:00", "--mem", "2500M",
                           "--cpus-per-task", "2", f"--output={out}/logs/%x-%j.out", f"--chdir={ROOT}",
                           "--wrap", run], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    _wait([proc.stdout.strip().split(";")[0]], out)
    memory = _summary_memory(out)
    assert memory["budget_source"].endswith("(SLURM_MEM_PER_NODE=2500 MB)"), memory
    assert memory["budget_bytes"] == 2 * (int(0.8 * 2500 * 2**20) // 2)
    assert memory["peak_bytes_per_worker"] <= memory["per_worker_budget_bytes"]
