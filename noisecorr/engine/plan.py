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


def make_plan(spec, workers, single_instance=False):
    """Decide instance counts and placement.

    Rules: a source (no inputs) has one instance, so iterations are not multiplied; a PE
    whose input streams are all ``global`` (the grouping given to ``connect``, else the
    port's) has one instance (the others would idle); a PE with a
    ``numprocesses`` hint gets that many; the remaining workers are shared evenly among the
    other PEs (at least one instance each, the remainder going to the earliest PEs in
    topological order). Instances are dealt to workers round robin in topological order,
    so several instances share a worker when there are more instances than workers and
    every worker is used when there are at least as many instances as workers.

    Parameters
    ----------
    spec : GraphSpec
    workers : int
        Number of worker processes or ranks (>= 1).
    single_instance : bool
        One instance per PE (the sequential mapping's reference semantics).
    """
    if not isinstance(workers, int) or workers < 1:
        raise GraphError(f"the number of processes must be a positive integer, got {workers!r}")
    counts = {}
    flexible = []
    # a stream's grouping is its edge's (connect(grouping=...) overrides the port's)
    into = {}
    for e in spec.edges:
        into.setdefault(e.dest, []).append(e.grouping)
    for pe in spec.pes:
        groupings = into.get(pe.name) or list(pe.inputs.values())
        if single_instance or pe.is_source or all(g[0] == "global" for g in groupings):
            counts[pe.name] = 1
        elif pe.numprocesses is not None:
            counts[pe.name] = pe.numprocesses
        else:
            flexible.append(pe.name)
    if flexible:
        free = max(0, workers - sum(counts.values()))
        share, extra = divmod(free, len(flexible))
        for i, name in enumerate(flexible):
            counts[name] = max(1, share + (1 if i < extra else 0))
    placement = {}
    slot = 0
    for pe in spec.pes:
        for i in range(counts[pe.name]):
            placement[(pe.name, i)] = slot % workers
            slot += 1
    return Plan(workers=workers, instances=counts, placement=placement)
