"""The dataflow engine: PEs, workflow graphs and :func:`run`.

>>> from noisecorr.engine import WorkflowGraph, run
>>> from noisecorr.engine.examples import NumberSource, Doubler, Collect
>>> graph = WorkflowGraph()
>>> src, dbl, out = NumberSource(4), Doubler(), Collect()
>>> graph.connect(src, "output", dbl, "input")
>>> graph.connect(dbl, "output", out, "input")
>>> result = run(graph, inputs={src: 1}, mapping="sequential")
>>> sorted(result.outputs[("Collect", "output")])
[[0, 2, 4, 6]]
"""

from __future__ import annotations

from .errors import EngineError, GraphError, MappingError, PEError, TransportError
from .graph import CompositePE, GraphSpec, WorkflowGraph, create_iterative_chain
from .pe import ConsumerPE, GenericPE, IterativePE, ProducerPE, SimpleFunctionPE
from .result import RunResult


def run(graph, inputs=None, mapping="sequential", processes=None, provenance=None, **options) -> RunResult:
    """Enact ``graph`` with the mapping chosen by name.

    Parameters
    ----------
    graph : WorkflowGraph or GraphSpec
    inputs : dict, optional
        ``{pe or pe name: number of iterations | list of input dicts}`` (dispel4py style).
        Sources not named run once.
    mapping : str
        ``"sequential"``, ``"multiprocess"``, ``"mpi"`` or ``"storm"`` (``"simple"`` and
        ``"multi"`` are accepted as dispel4py aliases).
    processes : int, optional
        Number of worker processes for ``multiprocess`` (default: CPU count); ignored by
        ``sequential``; under MPI the world size is used.
    provenance : bool, str or dict, optional
        Record W3C-PROV lineage of the run (see :mod:`noisecorr.provenance`): ``True`` for
        the default store, a database URL or path, or a dict of options (``store``,
        ``rules``, ``run_id``, ``config``). The result then has ``provenance_run_id``.
    **options
        Mapping-specific options.

    Returns
    -------
    RunResult

    Raises
    ------
    MappingError
        Unknown mapping, or its optional dependency is missing (raised before anything runs).
    GraphError
        Invalid graph or inputs (raised before anything runs).
    PEError
        A PE failed; the message names the PE, instance and item, with the traceback.
    """
    from noisecorr.mappings import canonical_name, load

    module = load(mapping)
    spec = graph if isinstance(graph, GraphSpec) else graph.describe(inputs)
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 1):
        raise GraphError(f"processes must be a positive integer, got {processes!r}")
    name = canonical_name(mapping)
    if provenance is None or provenance is False:
        return module.enact(spec, processes=processes, mapping_name=name, **options)
    from noisecorr.provenance import finish_session, start_session

    session = start_session(provenance, spec, name, processes)
    try:
        result = module.enact(spec, processes=processes, mapping_name=name, provenance=session, **options)
    except BaseException:
        if _reports(module):
            finish_session(session, "failed")
        raise
    if result is not None:  # None: an MPI rank other than 0
        finish_session(session, "completed")
        result.provenance_run_id = session.run_id
    return result


def _reports(module) -> bool:
    """Whether this process reports the run (MPI: rank 0; other mappings: always)."""
    is_root = getattr(module, "is_root", None)
    return True if is_root is None else bool(is_root())


__all__ = [
    "CompositePE",
    "ConsumerPE",
    "EngineError",
    "GenericPE",
    "GraphError",
    "GraphSpec",
    "IterativePE",
    "MappingError",
    "PEError",
    "ProducerPE",
    "RunResult",
    "SimpleFunctionPE",
    "TransportError",
    "WorkflowGraph",
    "create_iterative_chain",
    "run",
]
