"""Cluster profiles: node size, partitions and their limits, modules, launcher.

A profile is a YAML file in ``configs/clusters/`` (``generic.yaml``, ``supermuc-ng.yaml``)
or any path. Its keys::

    name, description
    default_partition   partition used when --partition is not given (null: SLURM's default)
    whole_nodes         true: nodes are allocated whole, no --mem line
    launcher            srun | mpiexec (how the MPI job starts its ranks)
    mpi                 srun --mpi=<mpi> (pmi2 for the MPICH wheel)
    modules             list of modules to load
    activate            shell line that activates the Python environment
    sbatch              extra #SBATCH options
    node                {cpus, memory_gb} of a node (null: unknown, not checked)
    partitions          name: {min_nodes, max_nodes, max_time, cpus, memory_gb}

Examples
--------
>>> p = load_profile("supermuc-ng")
>>> p.partition("test").max_nodes, p.partition("test").max_time
(16, '00:30:00')
>>> p.node_cpus("fat"), p.node_memory_gb("fat")
(48, 768)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import SlurmOptionError

LAUNCHERS = ("srun", "mpiexec")


def profiles_dir() -> Path:
    """``configs/clusters`` of the source tree."""
    return Path(__file__).resolve().parents[2] / "configs" / "clusters"


def available_profiles() -> list:
    """Names of the profiles in :func:`profiles_dir`."""
    d = profiles_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


@dataclass
class Partition:
    """Limits of one partition (``None``: not known, not checked)."""

    name: str
    min_nodes: int | None = None
    max_nodes: int | None = None
    max_time: str | None = None
    cpus: int | None = None
    memory_gb: float | None = None


@dataclass
class Profile:
    """A cluster profile (see the module docstring)."""

    name: str
    description: str = ""
    default_partition: str | None = None
    whole_nodes: bool = False
    launcher: str = "srun"
    mpi: str = "pmi2"
    modules: list = field(default_factory=list)
    activate: str | None = None
    sbatch: list = field(default_factory=list)
    cpus: int | None = None
    memory_gb: float | None = None
    partitions: dict = field(default_factory=dict)
    path: str | None = None

    def partition(self, name: str | None) -> Partition | None:
        """The limits of partition ``name``; ``None`` when the profile lists no partitions.

        Raises
        ------
        SlurmOptionError
            ``name`` is not one of the profile's partitions.
        """
        if not self.partitions or name is None:
            return None
        if name not in self.partitions:
            raise SlurmOptionError("--partition", f"{name!r} is not a partition of profile {self.name} "
                                   f"(one of: {', '.join(self.partitions)})")
        return self.partitions[name]

    def node_cpus(self, partition: str | None = None):
        part = self.partition(partition)
        return (part.cpus if part and part.cpus else None) or self.cpus

    def node_memory_gb(self, partition: str | None = None):
        part = self.partition(partition)
        return (part.memory_gb if part and part.memory_gb else None) or self.memory_gb


_KEYS = {"name", "description", "default_partition", "whole_nodes", "launcher", "mpi", "modules",
         "activate", "sbatch", "node", "partitions"}
_PART_KEYS = {"min_nodes", "max_nodes", "max_time", "cpus", "memory_gb"}


def load_profile(name_or_path) -> Profile:
    """Load a profile by name (``configs/clusters/<name>.yaml``) or by path.

    Unknown keys and malformed values fail naming the file and the key.
    """
    from .options import parse_time

    path = Path(str(name_or_path))
    if not path.suffix:
        path = profiles_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise SlurmOptionError("--profile", f"no profile {name_or_path!r} (file {path}); known: "
                               f"{', '.join(available_profiles()) or 'none'}")
    data = yaml.safe_load(path.read_text()) or {}
    where = f"profile {path}"
    if not isinstance(data, dict):
        raise SlurmOptionError("--profile", f"{where}: expected a mapping")
    unknown = set(data) - _KEYS
    if unknown:
        raise SlurmOptionError("--profile", f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_KEYS)}")
    launcher = data.get("launcher") or "srun"
    if launcher not in LAUNCHERS:
        raise SlurmOptionError("--profile", f"{where}: launcher {launcher!r} is not one of {', '.join(LAUNCHERS)}")
    node = data.get("node") or {}
    partitions = {}
    for pname, limits in (data.get("partitions") or {}).items():
        limits = limits or {}
        bad = set(limits) - _PART_KEYS
        if bad:
            raise SlurmOptionError("--profile", f"{where}: partition {pname}: unknown key(s) {sorted(bad)}; "
                                   f"known: {sorted(_PART_KEYS)}")
        if limits.get("max_time") is not None:
            parse_time(str(limits["max_time"]), option=f"{where}: partition {pname} max_time")
        partitions[str(pname)] = Partition(name=str(pname), **limits)
    return Profile(
        name=str(data.get("name") or path.stem), description=str(data.get("description") or ""),
        default_partition=data.get("default_partition"), whole_nodes=bool(data.get("whole_nodes", False)),
        launcher=launcher, mpi=str(data.get("mpi") or "pmi2"), modules=list(data.get("modules") or []),
        activate=data.get("activate"), sbatch=list(data.get("sbatch") or []),
        cpus=node.get("cpus"), memory_gb=node.get("memory_gb"), partitions=partitions, path=str(path),
    )
