"""Build the ambient-noise workflow graph from a configuration.

The graph (each PE thin over :mod:`noisecorr.signal`)::

    Fetch -> Preprocess -> Normalise -> Spectra -> Whiten -> CrossCorrelate -> Stack -> Write
                 |                                   |
              rejected                             stats          (collected in the result)

Library users build it, swap or insert their own PEs, and enact it with any mapping::

    from noisecorr.workflow import load_config, build_workflow
    from noisecorr.engine import run

    wf = build_workflow(load_config(overrides={"out": "my_run"}))
    result = run(wf.graph, inputs=wf.inputs, mapping="multiprocess", processes=4)
    wf.finish(result)        # record-section plot and summary
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from noisecorr.engine import WorkflowGraph

from .config import WorkflowConfig
from .sources import Sources, resolve

log = logging.getLogger(__name__)

RESULTS_FILE = "results.h5"
#: Seconds of data fetched either side of each chunk so that filters settle outside it.
FETCH_PAD = 100.0


@dataclass
class Workflow:
    """A built workflow: the graph, its inputs and what is needed to finish the run."""

    config: WorkflowConfig
    sources: Sources
    graph: WorkflowGraph
    inputs: dict
    results_path: Path
    completed: set = field(default_factory=set)
    pes: dict = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        n = len(self.sources.stations)
        return n * (n - 1) // 2 * len(self.config.processing.components)


def completed_pairs(path: Path) -> set:
    """``{(source, receiver, component)}`` already complete in ``path`` (and its part files)."""
    import h5py

    from noisecorr.results.writer import list_parts, read_index

    done = set()
    for p in ([path] if path.exists() else []) + list_parts(path):
        with h5py.File(p, "r") as f:
            for src, rcv, comp, ok in read_index(f):
                (done.add if ok else done.discard)((src, rcv, comp))
    return done


def build_workflow(config: WorkflowConfig, sources: Sources | None = None) -> Workflow:
    """Resolve the data and build the graph for ``config`` (nothing runs yet)."""
    from pes import CrossCorrelatePE, FetchPE, NormalisePE, PreprocessPE, SpectraPE, StackPE, WhitenPE
    from pes.fetch import chunk_requests
    from pes.write import WriteResultsPE

    sources = sources or resolve(config)
    p = config.processing
    out = Path(config.out)
    results_path = out / RESULTS_FILE
    done = completed_pairs(results_path) if config.resume else set()
    if done:
        log.info("resuming: %d pair components already complete in %s", len(done), results_path)
    components = p.components
    codes = sorted(sources.stations)
    todo_stations = {c for i, a in enumerate(codes) for b in codes[i + 1:] for comp in components
                     if (a, b, comp) not in done for c in (a, b)}
    seed_ids = [s for s in sources.seed_ids if s.rsplit(".", 2)[0] in todo_stations]
    requests = chunk_requests(seed_ids, sources.start, sources.end, config.chunk_length)
    coordinates = {c: (s["latitude"], s["longitude"]) for c, s in sources.stations.items()}

    fetch = FetchPE(sources.client, pad=FETCH_PAD, name="Fetch")
    pre = PreprocessPE(p, inventory=sources.inventory, name="Preprocess")
    norm, spec, white = NormalisePE(p, name="Normalise"), SpectraPE(p, name="Spectra"), WhitenPE(p, name="Whiten")
    xcorr = CrossCorrelatePE(p, coordinates=coordinates, n_channels=len(seed_ids), name="CrossCorrelate")
    stack = StackPE(p, name="Stack")
    write = WriteResultsPE(
        results_path, {"processing": p.to_dict(), "chunk_length": config.chunk_length},
        sources.stations, sources.start, sources.end, compression=config.compression, skip=done,
        name="WriteResults",
    )
    graph = WorkflowGraph()
    chain = [fetch, pre, norm, spec, white, xcorr, stack, write]
    for a, b in zip(chain, chain[1:]):
        graph.connect(a, "output", b, "input")
    pes = {pe.name: pe for pe in chain}
    return Workflow(config, sources, graph, {fetch: [{"input": r} for r in requests]}, results_path, done, pes)


__all__ = ["Workflow", "build_workflow", "completed_pairs", "RESULTS_FILE"]
