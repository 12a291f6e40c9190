"""The memory a run was given (noisecorr.slurm.allocation): cgroup limits read from real file
trees laid out as /proc/self/cgroup and /sys/fs/cgroup are (v1 as under SLURM's
task/cgroup, v2, the hybrid layout of this machine), SLURM's environment, and the budget
made of them."""

import logging

import pytest

from noisecorr.slurm.allocation import (JOB_FRACTION, MACHINE_FRACTION, cgroup_memory_limit, default_memory_budget,
                                        ranks_per_node, slurm_memory_limit)

GIB = 2**30
V1_NO_LIMIT = "9223372036854771712"


def _tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def _v1(tmp_path, job_limit=2 * GIB):
    job = "sys/fs/cgroup/memory/slurm/uid_0/job_5"
    return _tree(tmp_path, {
        "proc/self/cgroup": "9:pids:/slurm/uid_0/job_5/step_0\n4:memory:/slurm/uid_0/job_5/step_0\n1:cpu:/",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": V1_NO_LIMIT,
        f"{job}/memory.limit_in_bytes": str(job_limit),
        f"{job}/step_0/memory.limit_in_bytes": V1_NO_LIMIT,
    })


def test_cgroup_v1_limit_is_the_jobs_above_the_step(tmp_path):
    limit, path = cgroup_memory_limit(_v1(tmp_path))
    assert limit == 2 * GIB
    assert path == tmp_path / "sys/fs/cgroup/memory/slurm/uid_0/job_5/memory.limit_in_bytes"


def test_cgroup_v2_takes_the_tightest_limit_on_the_path(tmp_path):
    base = "sys/fs/cgroup/system.slice/slurmstepd.scope/job_9"
    root = _tree(tmp_path, {
        "proc/self/cgroup": "0::/system.slice/slurmstepd.scope/job_9/step_batch/user/task_0",
        "sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids",
        f"{base}/memory.max": str(3 * GIB),
        f"{base}/step_batch/memory.max": str(GIB),
        f"{base}/step_batch/user/task_0/memory.max": "max",
        "sys/fs/cgroup/system.slice/other_job/memory.max": str(GIB // 4),   # not on our path
    })
    assert cgroup_memory_limit(root) == (GIB, tmp_path / base / "step_batch/memory.max")


def test_hybrid_layout_reads_the_v1_memory_hierarchy(tmp_path):
    # as on this development machine: v1 controllers, the memory one in a nested cgroup, plus cgroup2 "unified"
    root = _tree(tmp_path, {
        "proc/self/cgroup": "4:memory:/process_api/74ac\n1:cpu:/\n0::/",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": V1_NO_LIMIT,
        "sys/fs/cgroup/memory/process_api/memory.limit_in_bytes": str(5 * GIB),
        "sys/fs/cgroup/memory/process_api/74ac/memory.limit_in_bytes": V1_NO_LIMIT,
        "sys/fs/cgroup/unified/cgroup.controllers": "",
    })
    assert cgroup_memory_limit(root)[0] == 5 * GIB


def test_no_limit_and_unreadable_values(tmp_path, caplog):
    root = _tree(tmp_path / "a", {"proc/self/cgroup": "0::/user", "sys/fs/cgroup/cgroup.controllers": "memory",
                                  "sys/fs/cgroup/user/memory.max": "max"})
    assert cgroup_memory_limit(root) is None
    root = _tree(tmp_path / "b", {"proc/self/cgroup": "4:memory:/x",
                                  "sys/fs/cgroup/memory/x/memory.limit_in_bytes": "lots"})
    with caplog.at_level(logging.WARNING, logger="noisecorr.slurm.allocation"):
        assert cgroup_memory_limit(root) is None
    assert "memory.limit_in_bytes holds 'lots'" in caplog.text
    assert cgroup_memory_limit(tmp_path / "nothing-here") is None


def test_a_container_without_proc_self_cgroup_still_reads_its_top_limit(tmp_path):
    root = _tree(tmp_path, {"sys/fs/cgroup/memory/memory.limit_in_bytes": str(GIB)})
    assert cgroup_memory_limit(root)[0] == GIB


@pytest.mark.parametrize("env,expected", [
    ({"SLURM_MEM_PER_NODE": "4000"}, (4000 * 2**20, "SLURM_MEM_PER_NODE=4000 MB")),
    ({"SLURM_MEM_PER_CPU": "1500", "SLURM_CPUS_ON_NODE": "8"},
     (12000 * 2**20, "SLURM_MEM_PER_CPU=1500 MB x 8 CPU(s) on the node")),
    ({"SLURM_MEM_PER_CPU": "1000", "SLURM_JOB_CPUS_PER_NODE": "4(x2),2"},
     (4000 * 2**20, "SLURM_MEM_PER_CPU=1000 MB x 4 CPU(s) on the node")),
    ({"SLURM_MEM_PER_CPU": "1000", "SLURM_CPUS_PER_TASK": "3", "SLURM_NTASKS_PER_NODE": "2"},
     (6000 * 2**20, "SLURM_MEM_PER_CPU=1000 MB x 6 CPU(s) on the node")),
    ({}, None),
])
def test_slurm_allocation_of_the_node(env, expected):
    assert slurm_memory_limit(env) == expected


def test_ranks_per_node_from_slurm_lists():
    assert ranks_per_node({"SLURM_TASKS_PER_NODE": "2(x3),1"}) == 2
    assert ranks_per_node({"SLURM_TASKS_PER_NODE": "4", "SLURM_STEP_TASKS_PER_NODE": "3(x2)"}) == 3
    assert ranks_per_node({"SLURM_NTASKS_PER_NODE": "6", "SLURM_TASKS_PER_NODE": "6(x2)"}) == 6
    assert ranks_per_node({}) is None


def test_the_budget_is_the_smallest_limit_known_shared_by_the_ranks_of_a_node(tmp_path):
    root = _v1(tmp_path, job_limit=3 * GIB)
    env = {"SLURM_JOB_ID": "5", "SLURM_MEM_PER_NODE": "4096", "SLURM_TASKS_PER_NODE": "2(x2)"}
    b = default_memory_budget(4, mpi=True, root=root, environ=env, physical=64 * GIB)
    # cgroup 3 GiB < SLURM 4 GiB < 64 GiB: 80 % of 3 GiB for the 2 ranks of a node, 4 ranks in all
    assert b.node_bytes == 3 * GIB and b.source.startswith("cgroup ") and b.processes_on_node == 2
    assert b.per_worker_bytes == int(JOB_FRACTION * 3 * GIB) // 2 and b.total_bytes == 4 * b.per_worker_bytes
    assert set(b.limits) == {"physical memory", "SLURM_MEM_PER_NODE=4096 MB", f"cgroup {b.source[7:]}"}
    # a tighter SLURM allocation wins; multiprocess workers all share the one node
    env["SLURM_MEM_PER_NODE"] = "2048"
    b = default_memory_budget(3, root=root, environ=env, physical=64 * GIB)
    assert b.source == "SLURM_MEM_PER_NODE=2048 MB" and b.processes_on_node == 3
    assert b.total_bytes == 3 * (int(JOB_FRACTION * 2 * GIB) // 3)


def test_outside_a_job_the_machine_share_stays_unless_a_cgroup_is_tighter(tmp_path):
    b = default_memory_budget(2, root=tmp_path / "none", environ={}, physical=32 * GIB)
    assert b.source == "physical memory" and b.fraction == MACHINE_FRACTION
    assert b.total_bytes == 2 * (int(MACHINE_FRACTION * 32 * GIB) // 2)
    b = default_memory_budget(2, root=_v1(tmp_path, job_limit=8 * GIB), environ={}, physical=32 * GIB)
    assert b.source.startswith("cgroup") and b.total_bytes == 2 * (int(JOB_FRACTION * 8 * GIB) // 2)
    # inside a job without any limit (a whole node): 80 % of the node
    b = default_memory_budget(1, root=tmp_path / "none", environ={"SLURM_JOB_ID": "1"}, physical=32 * GIB)
    assert b.fraction == JOB_FRACTION and b.total_bytes == int(JOB_FRACTION * 32 * GIB)


def test_the_run_uses_the_allocation_as_its_default_budget(tmp_path, monkeypatch):
    """build_workflow without `memory`: the budget comes from SLURM_MEM_PER_NODE, and a plan
    that fits the whole machine but not the job is refused before the run starts."""
    from noisecorr.workflow.build import build_workflow
    from noisecorr.workflow.config import ConfigError, load_config

    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "3000")
    config = load_config(overrides={"out": str(tmp_path / "o"), "mapping": "multiprocess", "processes": 2})
    memory = build_workflow(config).memory
    assert memory["budget_source"].endswith("(SLURM_MEM_PER_NODE=3000 MB)")
    assert memory["budget_bytes"] <= int(JOB_FRACTION * 3000 * 2**20)
    assert memory["peak_bytes_per_worker"] <= memory["per_worker_budget_bytes"]
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "1000")   # 1 GB cannot hold one worker's overhead
    with pytest.raises(ConfigError, match="memory: .* the budget is"):
        build_workflow(config)
