"""Workflow graphs and their plain-data description.

A :class:`WorkflowGraph` holds live PE objects and the streams between their ports. Before
enactment it is validated and turned into a :class:`GraphSpec`: plain, picklable data (names,
ports, groupings and a pickled prototype of each PE). Mappings only ever see the spec, never
the live wiring, so a graph can be shipped to worker processes, MPI ranks or a Storm
topology unchanged.
"""

from __future__ import annotations

import logging

from dataclasses import dataclass, field

import cloudpickle

from .errors import GraphError
from .pe import GenericPE, SimpleFunctionPE
from .routing import normalize_grouping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PESpec:
    """Plain-data description of one PE.

    ``inputs`` maps each input name to its normalised grouping; ``prototype`` is the
    cloudpickled PE object every instance is created from.
    """

    name: str
    cls: str
    inputs: dict
    outputs: tuple
    numprocesses: int | None
    prototype: bytes
    doc: str = ""

    @property
    def is_source(self) -> bool:
        return not self.inputs

    def instantiate(self) -> GenericPE:
        """A fresh, independent PE object (never the prototype itself)."""
        return cloudpickle.loads(self.prototype)


@dataclass(frozen=True)
class EdgeSpec:
    """A stream from ``source.source_port`` to ``dest.dest_port`` with its grouping."""

    source: str
    source_port: str
    dest: str
    dest_port: str
    grouping: tuple


@dataclass(frozen=True)
class GraphSpec:
    """What a mapping receives: PEs in topological order, edges and the run's inputs.

    ``iterations`` maps source PE names to either a number of iterations or a list of input
    dicts (one ``process`` call each).
    """

    pes: tuple
    edges: tuple
    iterations: dict = field(default_factory=dict)

    def pe(self, name) -> PESpec:
        for p in self.pes:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self):
        return [p.name for p in self.pes]

    def edges_from(self, name, port=None):
        return [e for e in self.edges if e.source == name and (port is None or e.source_port == port)]

    def edges_to(self, name):
        return [e for e in self.edges if e.dest == name]

    def unconnected_outputs(self):
        """``(pe, port)`` pairs whose items are collected into the run's result."""
        connected = {(e.source, e.source_port) for e in self.edges}
        return [(p.name, o) for p in self.pes for o in p.outputs if (p.name, o) not in connected]


class WorkflowGraph:
    """A directed acyclic graph of PEs connected by streams.

    Examples
    --------
    >>> from noisecorr.engine import WorkflowGraph, run, create_iterative_chain
    >>> from noisecorr.engine.examples import NumberSource
    >>> graph = WorkflowGraph()
    >>> src = NumberSource(5)
    >>> double = create_iterative_chain([lambda x: 2 * x])
    >>> graph.connect(src, "output", double, "input")
    >>> sorted(run(graph, inputs={src: 1}).outputs[("lambda", "output")])
    [0, 2, 4, 6, 8]
    """

    def __init__(self):
        self._pes: list[GenericPE] = []
        self._edges: list[tuple] = []  # (src_pe, src_port, dst_pe, dst_port, grouping or None)

    # -- building ----------------------------------------------------------------------
    def _name_default_named(self):
        """Give unique names to PEs that kept their class's default name (dispel4py names
        every instance uniquely, so graphs that use one class twice are normal there).

        Deterministic: in the order the PEs were added, the first keeps the class name and
        the next get ``Class1``, ``Class2``, ... (skipping names already taken). PEs whose
        name was set explicitly are never renamed, so two equal explicit names stay an error.
        """
        defaulted = [pe for pe in self._pes if getattr(pe, "_default_name", None) is not None
                     and pe.name == pe._default_name]
        renamable = {id(pe) for pe in defaulted}
        taken = {pe.name for pe in self._pes if id(pe) not in renamable}
        for pe in defaulted:
            base, k, name = pe._default_name, 0, pe._default_name
            while name in taken:
                k += 1
                name = f"{base}{k}"
            if name != pe.name:
                log.info("PE %s used more than once: this one is named '%s'", base, name)
                pe.name = name
                pe._default_name = name   # still a default name: describe() is idempotent
            taken.add(name)

    def add(self, pe):
        """Add a PE (or every PE of a composite) that may have no connections."""
        if isinstance(pe, CompositePE):
            for inner in pe._pes:
                self.add(inner)
            for edge in pe._edges:
                if edge not in self._edges:
                    self._edges.append(edge)
            return
        if not isinstance(pe, GenericPE):
            raise GraphError(f"cannot add {pe!r} to a graph: not a PE (subclass GenericPE)")
        if not any(p is pe for p in self._pes):
            self._pes.append(pe)

    def connect(self, from_pe, from_port, to_pe, to_port, grouping=None):
        """Connect output ``from_port`` of ``from_pe`` to input ``to_port`` of ``to_pe``.

        ``grouping`` (optional) overrides the grouping declared by the input port.
        """
        if isinstance(from_pe, CompositePE):
            self.add(from_pe)
            from_pe, from_port = from_pe._resolve_output(from_port)
        if isinstance(to_pe, CompositePE):
            self.add(to_pe)
            to_pe, to_port = to_pe._resolve_input(to_port)
        self.add(from_pe)
        self.add(to_pe)
        if from_port not in from_pe.outputconnections:
            raise GraphError(
                f"PE '{from_pe.name}' has no output port {from_port!r}; "
                f"declared outputs: {sorted(from_pe.outputconnections)}"
            )
        if to_port not in to_pe.inputconnections:
            raise GraphError(
                f"PE '{to_pe.name}' has no input port {to_port!r}; "
                f"declared inputs: {sorted(to_pe.inputconnections)}"
            )
        if grouping is not None:
            normalize_grouping(grouping, where=f"connect to '{to_pe.name}.{to_port}': ")
        self._edges.append((from_pe, from_port, to_pe, to_port, grouping))

    def disconnect(self, from_pe, from_port, to_pe, to_port):
        """Remove the stream(s) from ``from_pe.from_port`` to ``to_pe.to_port``."""
        before = len(self._edges)
        self._edges = [e for e in self._edges
                       if not (e[0] is from_pe and e[1] == from_port and e[2] is to_pe and e[3] == to_port)]
        if len(self._edges) == before:
            raise GraphError(f"no stream from '{from_pe.name}.{from_port}' to '{to_pe.name}.{to_port}'")

    def consumers(self, pe, port):
        """``[(pe, input, grouping override)]`` connected to output ``port`` of ``pe``."""
        return [(e[2], e[3], e[4]) for e in self._edges if e[0] is pe and e[1] == port]

    def insert_after(self, pe, port, new_pe, new_input="input", new_output="output"):
        """Put ``new_pe`` between output ``port`` of ``pe`` and everything it fed."""
        targets = self.consumers(pe, port)
        for dst, dport, _ in targets:
            self.disconnect(pe, port, dst, dport)
        self.connect(pe, port, new_pe, new_input)
        for dst, dport, grouping in targets:
            self.connect(new_pe, new_output, dst, dport, grouping=grouping)

    @property
    def pes(self):
        return list(self._pes)

    # -- validation and description ----------------------------------------------------
    def _topological_order(self):
        index = {id(p): i for i, p in enumerate(self._pes)}
        indeg = [0] * len(self._pes)
        succ = [[] for _ in self._pes]
        for src, _, dst, _, _ in self._edges:
            succ[index[id(src)]].append(index[id(dst)])
            indeg[index[id(dst)]] += 1
        ready = [i for i, d in enumerate(indeg) if d == 0]
        order = []
        while ready:
            i = ready.pop(0)
            order.append(i)
            for j in succ[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    ready.append(j)
        if len(order) != len(self._pes):
            cyclic = sorted(self._pes[i].name for i, d in enumerate(indeg) if d > 0)
            raise GraphError(f"the workflow graph has a cycle through PEs {cyclic}")
        return [self._pes[i] for i in order]

    def describe(self, inputs=None) -> GraphSpec:
        """Validate the graph and return its plain-data :class:`GraphSpec`.

        Parameters
        ----------
        inputs : dict, optional
            ``{pe or pe name: number of iterations | list of input dicts}``. A PE with
            inputs may be given a list of dicts ``{input name: item}``; each entry is fed to
            that input as if it came from upstream.

        Raises
        ------
        GraphError
            Duplicate names, cycles, unknown ports, unconnected required inputs, bad inputs.
        """
        if not self._pes:
            raise GraphError("the workflow graph is empty")
        self._name_default_named()
        names = {}
        for pe in self._pes:
            if not isinstance(pe.name, str) or not pe.name:
                raise GraphError(f"PE {pe!r} has no name")
            if pe.name in names:
                raise GraphError(
                    f"two PEs are named '{pe.name}' ({type(names[pe.name]).__name__} and "
                    f"{type(pe).__name__}); PE names must be unique in a graph: set pe.name"
                )
            names[pe.name] = pe
        order = self._topological_order()
        feeds, iterations = self._resolve_inputs(inputs or {}, names)

        connected = {(dst.name, port) for _, _, dst, port, _ in self._edges}
        connected |= {(name, port) for name, ports in feeds.items() for port in ports}
        for pe in order:
            for port, decl in pe.inputconnections.items():
                if (pe.name, port) not in connected and not decl.get("optional"):
                    raise GraphError(
                        f"input '{port}' of PE '{pe.name}' is not connected and receives no "
                        "data; connect it or pass data with inputs={pe: [{...}]}"
                    )
        for pe in order:
            if not pe.inputconnections and pe.name not in iterations:
                iterations[pe.name] = 1  # dispel4py: a source runs once unless told otherwise

        pe_specs = []
        for pe in order:
            where = f"PE '{pe.name}': "
            ins = {p: normalize_grouping(d.get("grouping"), where) for p, d in pe.inputconnections.items()}
            try:
                proto = cloudpickle.dumps(pe)
            except Exception as exc:
                raise GraphError(f"PE '{pe.name}' cannot be pickled, so it cannot be enacted: {exc}") from exc
            hint = pe.numprocesses
            if hint is not None and (not isinstance(hint, int) or hint < 1):
                raise GraphError(f"PE '{pe.name}': numprocesses must be a positive int or None, got {hint!r}")
            pe_specs.append(
                PESpec(
                    name=pe.name,
                    cls=f"{type(pe).__module__}.{type(pe).__qualname__}",
                    inputs=ins,
                    outputs=tuple(pe.outputconnections),
                    numprocesses=hint,
                    prototype=proto,
                    doc=(type(pe).__doc__ or "").strip(),
                )
            )
        edges = []
        for src, sport, dst, dport, grouping in self._edges:
            g = grouping if grouping is not None else dst.inputconnections[dport].get("grouping")
            edges.append(EdgeSpec(src.name, sport, dst.name, dport, normalize_grouping(g, f"PE '{dst.name}': ")))
        # Data given to PEs with inputs enters through a feeder source per PE.
        for name, ports in feeds.items():
            feeder = _Feeder(name, sorted(ports))
            target = self._pe_by_name(name)
            pe_specs.insert(
                0,
                PESpec(feeder.name, "noisecorr.engine.graph._Feeder", {}, tuple(sorted(ports)), 1,
                       cloudpickle.dumps(feeder), _Feeder.__doc__.strip()),
            )
            iterations[feeder.name] = iterations.pop(name)
            for port in sorted(ports):
                g = normalize_grouping(target.inputconnections[port].get("grouping"))
                edges.append(EdgeSpec(feeder.name, port, name, port, g))
        return GraphSpec(pes=tuple(pe_specs), edges=tuple(edges), iterations=iterations)

    def _pe_by_name(self, name):
        for pe in self._pes:
            if pe.name == name:
                return pe
        raise KeyError(name)

    def _resolve_inputs(self, inputs, names):
        if not isinstance(inputs, dict):
            raise GraphError(f"inputs must be a dict {{pe: iterations or list of dicts}}, got {type(inputs).__name__}")
        feeds, iterations = {}, {}
        for key, value in inputs.items():
            if isinstance(key, CompositePE):
                raise GraphError("give inputs to a PE inside the composite, not to the composite itself")
            name = key.name if isinstance(key, GenericPE) else key
            if name not in names or (isinstance(key, GenericPE) and names[name] is not key):
                raise GraphError(f"inputs name PE {name!r}, which is not in the graph; PEs: {sorted(names)}")
            pe = names[name]
            if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
                raise GraphError(f"inputs for PE '{name}' must be an int or a list of dicts, got {value!r}")
            if isinstance(value, int):
                if value < 0:
                    raise GraphError(f"inputs for PE '{name}': iterations must be >= 0, got {value}")
                if pe.inputconnections:
                    raise GraphError(
                        f"PE '{name}' has inputs {sorted(pe.inputconnections)}; give it a list of "
                        "dicts {input name: item}, not a number of iterations"
                    )
                iterations[name] = value
                continue
            data = list(value)
            for i, d in enumerate(data):
                if not isinstance(d, dict):
                    raise GraphError(f"inputs for PE '{name}': element {i} must be a dict, got {type(d).__name__}")
                if pe.inputconnections:
                    unknown = set(d) - set(pe.inputconnections)
                    if unknown:
                        raise GraphError(
                            f"inputs for PE '{name}': unknown input(s) {sorted(unknown)}; "
                            f"declared inputs: {sorted(pe.inputconnections)}"
                        )
            if pe.inputconnections:
                feeds[name] = {port for d in data for port in d}
                iterations[name] = data
            else:
                iterations[name] = data
        return feeds, iterations


class _Feeder(GenericPE):
    """Feeds data given in ``run(inputs={pe: [{input: item}, ...]})`` to a PE's inputs."""

    def __init__(self, target, ports):
        super().__init__()
        self.name = f"{target}.inputs"
        for p in ports:
            self._add_output(p)

    def process(self, inputs):
        for port, item in inputs.items():
            self.write(port, item)


class CompositePE(WorkflowGraph):
    """A subgraph that is connected like a single PE.

    Map the composite's port names to ports of PEs inside it with :meth:`_map_input` and
    :meth:`_map_output`; connecting the composite adds its PEs to the enclosing graph.
    """

    def __init__(self, name=None):
        super().__init__()
        self.name = name or type(self).__name__
        self.inputmappings: dict[str, tuple] = {}
        self.outputmappings: dict[str, tuple] = {}

    def _map_input(self, name, pe, port):
        self.add(pe)
        self.inputmappings[name] = (pe, port)

    def _map_output(self, name, pe, port):
        self.add(pe)
        self.outputmappings[name] = (pe, port)

    def _resolve_input(self, name):
        try:
            pe, port = self.inputmappings[name]
        except KeyError:
            raise GraphError(f"composite '{self.name}' has no input {name!r}; inputs: {sorted(self.inputmappings)}") from None
        return pe._resolve_input(port) if isinstance(pe, CompositePE) else (pe, port)

    def _resolve_output(self, name):
        try:
            pe, port = self.outputmappings[name]
        except KeyError:
            raise GraphError(f"composite '{self.name}' has no output {name!r}; outputs: {sorted(self.outputmappings)}") from None
        return pe._resolve_output(port) if isinstance(pe, CompositePE) else (pe, port)


def create_iterative_chain(functions, name_prefix="", name=None):
    """Chain functions into a composite PE with input ``input`` and output ``output``.

    Parameters
    ----------
    functions : list
        Each element is ``fn`` or ``(fn, kwargs)``; item ``x`` becomes ``fn(x, **kwargs)``.
        A ``None`` result is dropped (not passed on).
    name_prefix : str
        Prefix for the generated PE names (``prefix + fn.__name__``), to keep names unique
        when a graph holds two chains of the same functions.
    """
    if not functions:
        raise GraphError("create_iterative_chain needs at least one function")
    chain = CompositePE(name=name or "chain")
    prev = None
    used = {}
    for entry in functions:
        fn, params = (entry if isinstance(entry, tuple) else (entry, {}))
        base = name_prefix + getattr(fn, "__name__", "function").strip("<>")
        used[base] = used.get(base, 0) + 1
        pe = SimpleFunctionPE(fn, params, name=base if used[base] == 1 else f"{base}_{used[base]}")
        if prev is None:
            chain._map_input("input", pe, "input")
        else:
            chain.connect(prev, "output", pe, "input")
        prev = pe
    chain._map_output("output", prev, "output")
    return chain


__all__ = [
    "CompositePE",
    "EdgeSpec",
    "GraphSpec",
    "PESpec",
    "WorkflowGraph",
    "create_iterative_chain",
]
