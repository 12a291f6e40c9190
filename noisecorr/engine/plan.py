"""Deterministic placement of PE instances on workers (processes or MPI ranks).

The plan depends only on the graph description and the number of workers, so every
process and every rank computes the same plan without talking to the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import GraphError


@dataclass(frozen=True)
class Plan:
    """How many instances each PE has and which worker hosts each instance.

    ``instances[pe]`` is the instance count; ``placement[(pe, i)]`` the worker index.
    """

    workers: int
    instances: dict
    placement: dict

    def hosted_by(self, worker):
        return [key for key, w in self.placement.items() if w == worker]

    def describe(self) -> str:
        """Human-readable table of the plan (printed by ``--plan``)."""
        lines = [f"{self.workers} worker(s)"]
        for w in range(self.workers):
            hosted = ", ".join(f"{pe}[{i}]" for pe, i in self.hosted_by(w)) or "(idle)"
            lines.append(f"  worker {w}: {hosted}")
        return "\n".join(lines)


def instance_counts(spec) -> dict:
    """How many instances each PE has: a property of the graph, not of the run.

    Rules: a source (no inputs) has one instance, so iterations are not multiplied; a PE
    whose input streams are all ``global`` (the grouping given to ``connect``, else the
    port's) has one instance (the others would idle); a PE with a ``numprocesses`` hint
    has exactly that many; any other PE has one. The counts never depend on the number of
    processes or ranks, so every mapping (sequential included) enacts the same instances
    and a broadcast (``"all"``) or a stateful PE gives the same outputs everywhere. To run
    a PE in parallel, give it a hint (the seismology workflow sets them from ``-n``).
    """
    into = {}
    for e in spec.edges:
        into.setdefault(e.dest, []).append(e.grouping)
    counts = {}
    for pe in spec.pes:
        groupings = into.get(pe.name) or list(pe.inputs.values())
        if pe.is_source or all(g[0] == "global" for g in groupings):
            counts[pe.name] = 1
        else:
            counts[pe.name] = pe.numprocesses or 1
    return counts


def make_plan(spec, workers):
    """Instance counts (:func:`instance_counts`) and their placement on ``workers``.

    Instances are dealt to workers round robin in topological order, so several instances
    share a worker when there are more instances than workers, and some workers idle when
    there are fewer. The sequential mapping is ``workers=1``: all instances in one process.

    Parameters
    ----------
    spec : GraphSpec
    workers : int
        Number of worker processes or ranks (>= 1).
    """
    if not isinstance(workers, int) or workers < 1:
        raise GraphError(f"the number of processes must be a positive integer, got {workers!r}")
    counts = instance_counts(spec)
    placement = {}
    slot = 0
    for pe in spec.pes:
        for i in range(counts[pe.name]):
            placement[(pe.name, i)] = slot % workers
            slot += 1
    return Plan(workers=workers, instances=counts, placement=placement)
