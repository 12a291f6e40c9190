"""How much memory this run was given: the cgroup limit, SLURM's allocation, the machine.

A SLURM job on a shared node may use what it asked for (``--mem``, ``--mem-per-cpu``), not
what the node has; beyond it the job's cgroup is killed by the out-of-memory killer. So the
default memory budget of a run (the ``memory`` of :class:`~noisecorr.workflow.config.WorkflowConfig`
when none is configured) comes from the smallest limit known on this node:

* the **cgroup limit** of this process: cgroup v1 ``memory.limit_in_bytes`` of the ``memory``
  hierarchy, cgroup v2 ``memory.max``, read for the process's own cgroup (from
  ``/proc/self/cgroup``) *and every ancestor up to the mount point*, since a parent's limit
  binds its children too (SLURM puts the limit on ``job_<id>``, the process sits in
  ``job_<id>/step_<n>/...``). "No limit" (v1's huge number, v2's ``max``) counts as unknown;
* **SLURM's allocation** on this node: ``SLURM_MEM_PER_NODE`` (MB), or ``SLURM_MEM_PER_CPU``
  (MB) times the CPUs allocated on this node (``SLURM_CPUS_ON_NODE``; else
  ``SLURM_JOB_CPUS_PER_NODE``; else ``SLURM_CPUS_PER_TASK`` times the tasks of the node);
* the machine's **physical memory**.

Of that node limit a run plans with :data:`JOB_FRACTION` (80 %) inside a SLURM job (the rest
covers the mapping's driver process, allocator fragmentation and HDF5 caches, which the
planner does not count) and, outside a job, with the smaller of 80 % of a cgroup limit and
:data:`MACHINE_FRACTION` (40 %) of the physical memory (a workstation is shared with other
programs and the page cache), as before.

The budget of the tile planner is the total of all workers
(:func:`noisecorr.tiles.plan.plan_tiles` gives each ``budget / workers``). The processes that
share a node's limit are its MPI ranks (``mpi`` mapping) or all workers (every other mapping
runs on one node). MPI ranks per node come from ``SLURM_STEP_TASKS_PER_NODE`` (inside
``srun``), ``SLURM_NTASKS_PER_NODE`` or ``SLURM_TASKS_PER_NODE`` (``2(x3),1``: the largest
count, so every rank of the job computes the same budget and the same tile plan); outside
SLURM all ranks are on this machine.

Every function takes ``root`` (the file-system root, ``/``; tests give a folder holding a
``proc/self/cgroup`` and ``sys/fs/cgroup`` tree) and ``environ`` (``os.environ``).

Examples
--------
>>> b = default_memory_budget(2, environ={"SLURM_JOB_ID": "7", "SLURM_MEM_PER_NODE": "4000"},
...                           root="/nonexistent", physical=64 * 2**30)
>>> b.total_bytes == int(0.8 * 4000 * 2**20), b.source
(True, 'SLURM_MEM_PER_NODE=4000 MB')
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: Share of a job's memory limit (cgroup or SLURM allocation) that a run plans with.
JOB_FRACTION = 0.8
#: Share of the physical memory a run plans with outside a job when nothing else limits it.
MACHINE_FRACTION = 0.4
#: cgroup v1 writes "no limit" as a number near 2**63; anything at least this large is no limit.
_UNLIMITED = 2**60
_MB = 2**20


def _read(path: Path):
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cgroup_paths(root: Path) -> list:
    """``[(version, controllers, path)]`` from ``<root>/proc/self/cgroup``."""
    text = _read(root / "proc" / "self" / "cgroup")
    out = []
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            out.append((2, "", path))
        elif "memory" in controllers.split(","):
            out.append((1, controllers, path))
    return out


def _limits_up(base: Path, rel: str, filename: str) -> list:
    """``[(bytes, file)]`` of ``filename`` in ``base/rel`` and each ancestor up to ``base``."""
    found = []
    parts = [p for p in rel.strip("/").split("/") if p and p != ".."]
    for n in range(len(parts), -1, -1):
        f = base.joinpath(*parts[:n], filename)
        text = _read(f)
        if text is None:
            continue
        if text == "max":
            continue
        try:
            value = int(text)
        except ValueError:
            log.warning("cgroup file %s holds %r, not a number of bytes: ignored", f, text[:40])
            continue
        if 0 < value < _UNLIMITED:
            found.append((value, f))
    return found


def cgroup_memory_limit(root="/"):
    """``(bytes, file)`` of the tightest cgroup memory limit of this process, or ``None``.

    cgroup v1: ``<root>/sys/fs/cgroup/memory/<path>/memory.limit_in_bytes``; v2:
    ``<root>/sys/fs/cgroup/<path>/memory.max`` (or under ``unified/`` on hybrid systems),
    ``<path>`` from ``<root>/proc/self/cgroup``; the process's cgroup and its ancestors.
    Where ``/proc/self/cgroup`` is missing the hierarchies' top files are still read.

    >>> cgroup_memory_limit("/nonexistent") is None
    True
    """
    root = Path(root)
    fs = root / "sys" / "fs" / "cgroup"
    entries = _cgroup_paths(root) or [(1, "memory", "/"), (2, "", "/")]
    found = []
    for version, _, rel in entries:
        if version == 1:
            found += _limits_up(fs / "memory", rel, "memory.limit_in_bytes")
        else:
            for base in (fs, fs / "unified"):
                if (base / "cgroup.controllers").exists() or (base / "memory.max").exists():
                    found += _limits_up(base, rel, "memory.max")
    return min(found) if found else None


def _counts(text):
    """Counts of a SLURM per-node list such as ``2(x3),1`` -> ``[2, 2, 2, 1]``."""
    out = []
    for item in (text or "").split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", item)
        if not m:
            return []
        out += [int(m.group(1))] * int(m.group(2) or 1)
    return out


def _int(environ, name):
    value = environ.get(name)
    if value is None or value == "":
        return None
    m = re.match(r"^\s*(\d+)", str(value))
    if not m:
        log.warning("%s=%r is not a number: ignored", name, value)
        return None
    return int(m.group(1))


def ranks_per_node(environ=None):
    """Most tasks (MPI ranks) of this job step on any one node, or ``None`` outside SLURM.

    >>> ranks_per_node({"SLURM_TASKS_PER_NODE": "3(x2),1"})
    3
    """
    environ = os.environ if environ is None else environ
    for name in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        counts = _counts(environ.get(name)) if environ.get(name) else []
        if counts:
            return max(counts)
    return None


def slurm_memory_limit(environ=None):
    """``(bytes, description)`` of SLURM's memory allocation on this node, or ``None``.

    >>> slurm_memory_limit({"SLURM_MEM_PER_CPU": "1000", "SLURM_CPUS_ON_NODE": "4"})
    (4194304000, 'SLURM_MEM_PER_CPU=1000 MB x 4 CPU(s) on the node')
    """
    environ = os.environ if environ is None else environ
    per_node = _int(environ, "SLURM_MEM_PER_NODE")
    if per_node:
        return per_node * _MB, f"SLURM_MEM_PER_NODE={per_node} MB"
    per_cpu = _int(environ, "SLURM_MEM_PER_CPU")
    if per_cpu:
        cpus = _int(environ, "SLURM_CPUS_ON_NODE")
        if not cpus:
            listed = _counts(environ.get("SLURM_JOB_CPUS_PER_NODE"))
            cpus = max(listed) if listed else None
        if not cpus:
            cpus = (_int(environ, "SLURM_CPUS_PER_TASK") or 1) * (ranks_per_node(environ) or 1)
        return per_cpu * cpus * _MB, f"SLURM_MEM_PER_CPU={per_cpu} MB x {cpus} CPU(s) on the node"
    return None


def physical_memory() -> int:
    """Bytes of physical memory of this machine."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


@dataclass(frozen=True)
class MemoryBudget:
    """The default memory budget of a run and where it comes from.

    Attributes
    ----------
    total_bytes : int
        Budget of all workers together (what :func:`noisecorr.tiles.plan.plan_tiles` takes).
    per_worker_bytes : int
    node_bytes : int
        The limit of this node that the budget is a share of.
    source : str
        Which limit that is, e.g. ``"cgroup /sys/fs/cgroup/.../memory.max"``,
        ``"SLURM_MEM_PER_NODE=4000 MB"`` or ``"physical memory"``.
    fraction : float
        Share of ``node_bytes`` planned with (:data:`JOB_FRACTION` or :data:`MACHINE_FRACTION`).
    processes_on_node : int
        Workers sharing ``node_bytes``.
    limits : dict
        Every limit known, by source, in bytes.
    """

    total_bytes: int
    per_worker_bytes: int
    node_bytes: int
    source: str
    fraction: float
    processes_on_node: int
    limits: dict = field(default_factory=dict)

    def describe(self) -> str:
        from noisecorr.tiles.plan import format_bytes

        return (f"{format_bytes(self.total_bytes)} for {self.processes_on_node} process(es) on this node: "
                f"{self.fraction:.0%} of {format_bytes(self.node_bytes)} ({self.source})")


def default_memory_budget(workers: int = 1, *, mpi: bool = False, root="/", environ=None,
                          physical: int | None = None) -> MemoryBudget:
    """The memory budget of a run that configures none (see the module docstring).

    Parameters
    ----------
    workers : int
        Workers (processes or MPI ranks) of the whole run.
    mpi : bool
        Whether the workers are MPI ranks, possibly spread over nodes (else all share this node).
    root, environ
        File-system root and environment (tests); default ``/`` and ``os.environ``.
    physical : int, optional
        Physical memory in bytes (default: this machine's).

    Returns
    -------
    MemoryBudget
    """
    environ = os.environ if environ is None else environ
    workers = max(1, int(workers))
    physical = int(physical) if physical else physical_memory()
    limits = {"physical memory": physical}
    hard = []
    cg = cgroup_memory_limit(root)
    if cg is not None:
        limits[f"cgroup {cg[1]}"] = cg[0]
        hard.append((cg[0], f"cgroup {cg[1]}"))
    sl = slurm_memory_limit(environ)
    if sl is not None:
        limits[sl[1]] = sl[0]
        hard.append(sl)
    in_job = bool(environ.get("SLURM_JOB_ID"))
    options = [(int(JOB_FRACTION * b), b, JOB_FRACTION, src) for b, src in hard]
    if in_job:
        options.append((int(JOB_FRACTION * physical), physical, JOB_FRACTION, "physical memory"))
    else:
        options.append((int(MACHINE_FRACTION * physical), physical, MACHINE_FRACTION, "physical memory"))
    usable, node, fraction, source = min(options)
    on_node = workers
    if mpi:
        per_node = ranks_per_node(environ)
        on_node = min(workers, per_node) if per_node else workers
    per_worker = usable // on_node
    return MemoryBudget(per_worker * workers, per_worker, node, source, fraction, on_node, limits)
