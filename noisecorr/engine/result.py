"""The result of an enactment."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunResult:
    """What :func:`noisecorr.engine.run` returns.

    Attributes
    ----------
    outputs : dict
        ``{(pe name, output name): [items]}`` for every output that is not connected.
    counts : dict
        ``{pe name: {"in": {input: n}, "out": {output: n}, "instances": k}}``.
    timings : dict
        ``{pe name: seconds}`` spent in the PE's own code, summed over its instances,
        plus ``"wall"``: seconds for the whole enactment.
    mapping : str
        Name of the mapping that ran.
    plan : dict
        ``{pe name: number of instances}``.
    workers : list of dict
        One per worker (process, MPI rank, task) that reported, in worker order:
        ``{"worker", "start", "end", "busy", "waits"}``. ``start`` and ``end`` are seconds
        from the start of the enactment to when the worker began (after its process started
        and imported what it needs) and when its loop finished; ``busy`` the seconds in
        its PE instances' own code; ``waits`` ``{reason: seconds}`` blocked on the transport
        with nothing to do (``"input:PE"``: ``PE`` waited for upstream items from other
        workers; ``"downstream"``: its sources waited for other workers to take their
        batches). Empty when no worker reported timings.
    """

    outputs: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    mapping: str = "sequential"
    plan: dict = field(default_factory=dict)
    workers: list = field(default_factory=list)

    def __getitem__(self, key):
        return self.outputs[key]

    def summary(self) -> str:
        """A small table of items in and out per PE, and time spent."""
        lines = [f"mapping {self.mapping}, wall time {self.timings.get('wall', 0.0):.3f} s"]
        width = max([len(n) for n in self.counts] + [2])
        for name, c in self.counts.items():
            ins = sum(c["in"].values())
            outs = sum(c["out"].values())
            lines.append(
                f"  {name:<{width}}  x{c['instances']:<3} in {ins:>10}  out {outs:>10}  "
                f"{self.timings.get(name, 0.0):8.3f} s"
            )
        return "\n".join(lines)


def merge_summaries(spec, plan, summaries, mapping, wall):
    """Combine per-worker summaries (in worker order) into one :class:`RunResult`.

    Called when the enactment ends, so its start is ``wall`` seconds before now; worker
    times (``time.time()`` stamps, see :attr:`RunResult.workers`) are made relative to it.
    """
    import time

    begin = time.time() - wall
    outputs = {key: [] for key in spec.unconnected_outputs()}
    counts = {
        p.name: {"in": {i: 0 for i in p.inputs}, "out": {o: 0 for o in p.outputs}, "instances": plan.instances[p.name]}
        for p in spec.pes
    }
    timings = {p.name: 0.0 for p in spec.pes}
    workers = []
    for s in sorted(summaries, key=lambda s: s["worker"]):
        for key, items in s["outputs"].items():
            outputs[key].extend(items)
        for (name, _), st in s["stats"].items():
            for port, n in st["in"].items():
                counts[name]["in"][port] += n
            for port, n in st["out"].items():
                counts[name]["out"][port] += n
            timings[name] += st["seconds"]
        t = s.get("timing")
        if t is not None:
            finished = t["finished"] if t["finished"] is not None else begin + wall
            workers.append({"worker": s["worker"],
                            "start": min(wall, max(0.0, t["started"] - begin)),
                            "end": min(wall, max(0.0, finished - begin)),
                            "busy": sum(st["seconds"] for st in s["stats"].values()),
                            "waits": dict(t["waits"])})
    timings["wall"] = wall
    return RunResult(outputs=outputs, counts=counts, timings=timings, mapping=mapping, plan=dict(plan.instances),
                     workers=workers)


class ProgressAggregator:
    """Combines per-worker snapshots into ``{pe: {"in": n, "out": n}}`` for a callback."""

    def __init__(self, callback):
        self.callback = callback
        self.latest = {}

    def __call__(self, snapshot, worker=0):
        self.latest[worker] = snapshot
        totals = {}
        for snap in self.latest.values():
            for (pe, _), (n_in, n_out) in snap.items():
                t = totals.setdefault(pe, {"in": 0, "out": 0})
                t["in"] += n_in
                t["out"] += n_out
        self.callback(totals)
