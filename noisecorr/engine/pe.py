"""Processing Elements: the nodes of a workflow graph.

The API follows dispel4py so that existing PEs port by changing their imports::

    from noisecorr.engine import GenericPE

    class Count(GenericPE):
        def __init__(self):
            super().__init__()
            self._add_input("input", grouping=[0])   # group by item[0]
            self._add_output("output")
            self.counts = {}

        def process(self, inputs):
            word = inputs["input"][0]
            self.counts[word] = self.counts.get(word, 0) + 1

        def postprocess(self):
            for word, n in self.counts.items():
                self.write("output", (word, n))

Element lifecycle (enforced by every mapping, see ``tests/engine/test_lifecycle.py``):

1. the PE object in the graph is a *prototype*: each instance is an independent copy
   (made by pickling), so state never leaks between instances or back to the prototype;
2. ``preprocess()`` runs once per instance before any item;
3. ``process(inputs)`` runs once per item (``inputs`` maps one input name to the item) or,
   for a PE without inputs, once per iteration;
4. ``postprocess()`` runs once per instance after every upstream instance has finished and
   every item has been processed: stateful PEs flush here;
5. after ``postprocess`` the instance's outputs are closed and downstream PEs are told.

PEs must never mutate what they receive: under one mapping a value written to two consumers
is the same object, under another it is a copy; numpy arrays that crossed a process
boundary arrive read-only.
"""

from __future__ import annotations

import logging
import types

from .errors import GraphError

log = logging.getLogger("noisecorr.engine")

#: Grouping names accepted by :meth:`GenericPE._add_input` and ``WorkflowGraph.connect``.
GROUPING_NAMES = ("shuffle", "all", "global")


class GenericPE:
    """Base class of all Processing Elements.

    Subclasses declare ports in ``__init__`` with :meth:`_add_input` and :meth:`_add_output`
    and override :meth:`process` (and optionally :meth:`preprocess`, :meth:`postprocess`).

    Attributes
    ----------
    name : str
        Unique name in a graph; defaults to the class name. When several PEs in a graph
        kept the default name of one class (dispel4py graphs use a class twice), the graph
        names them ``Class``, ``Class1``, ``Class2``, ... in the order they were added, the
        same in every process; explicitly given names are kept, and two equal explicit
        names are an error.
    numprocesses : int or None
        Hint for the number of parallel instances (``None``: the mapping decides).
    instance : int
        Index of this instance, set by the mapping before ``preprocess`` (0-based).
    rank : int
        Index of the worker process or MPI rank hosting this instance (dispel4py name).
    concurrent_inputs : bool
        Class attribute. ``process()`` may be a generator (the run loop resumes it once per
        pass, see :mod:`noisecorr.engine.runtime`); by default the next input waits until it
        is done. True: inputs keep being processed between its steps, and the PE runs at
        most one generator at a time.
    """

    concurrent_inputs = False

    def __init__(self):
        self.name = type(self).__name__
        # the default name; a graph renames PEs that kept it when one class is used twice
        self._default_name = self.name
        self.inputconnections: dict[str, dict] = {}
        self.outputconnections: dict[str, dict] = {}
        self.numprocesses = None
        self.instance = 0
        self.rank = 0
        self._writers = None

    # -- declaration -------------------------------------------------------------------
    def _add_input(self, name, grouping=None, tuple_type=None, optional=False):
        """Declare an input port.

        Parameters
        ----------
        name : str
            Port name.
        grouping : None, list of int/str, "all", "global" or "local"
            ``None`` (shuffle: balanced round robin), a list of item indices or keys
            (group-by: items with equal ``item[k]`` values reach the same instance),
            ``"all"`` (every instance receives every item), ``"global"`` (all items go to
            one instance) or ``"local"`` (any instance, preferring those in the sender's
            process: chains of PEs with equal instance counts then stay in one process).
        tuple_type : list of str, optional
            Names of the item fields (documentation and Storm output fields only).
        optional : bool
            An optional input may stay unconnected.
        """
        if not isinstance(name, str) or not name:
            raise GraphError(f"PE '{self.name}': input name must be a non-empty string, got {name!r}")
        self.inputconnections[name] = {
            "name": name,
            "grouping": grouping,
            "type": tuple_type,
            "optional": bool(optional),
        }

    def _add_output(self, name, tuple_type=None):
        """Declare an output port ``name``."""
        if not isinstance(name, str) or not name:
            raise GraphError(f"PE '{self.name}': output name must be a non-empty string, got {name!r}")
        self.outputconnections[name] = {"name": name, "type": tuple_type}

    # -- lifecycle ---------------------------------------------------------------------
    def preprocess(self):
        """Called once per instance before the first item (default: ``_preprocess()``)."""
        hook = getattr(self, "_preprocess", None)
        if hook is not None:
            hook()

    def process(self, inputs):
        """Process one item.

        Parameters
        ----------
        inputs : dict
            ``{input name: item}`` (empty for a PE without inputs).

        Returns
        -------
        dict or None
            Optionally ``{output name: item}``; each entry is written.

        Notes
        -----
        As in dispel4py, the default calls ``self._process(inputs)`` when the subclass
        defines ``_process``, so PEs written for dispel4py that define only ``_process``
        port unchanged.
        """
        hook = getattr(self, "_process", None)
        if hook is None:
            raise NotImplementedError(
                f"PE '{self.name}' does not implement process() or _process(inputs)")
        return hook(inputs)

    def postprocess(self):
        """Called once per instance after all upstream instances finished (default: ``_postprocess()``)."""
        hook = getattr(self, "_postprocess", None)
        if hook is not None:
            hook()

    # -- output ------------------------------------------------------------------------
    def write(self, name, data):
        """Write ``data`` to output port ``name``; it is routed to the connected inputs."""
        try:
            writer = self._writers[name]
        except KeyError:
            raise GraphError(
                f"PE '{self.name}' wrote to undeclared output {name!r}; "
                f"declared outputs: {sorted(self.outputconnections)}"
            ) from None
        except TypeError:
            raise RuntimeError(
                f"PE '{self.name}'.write() called outside an enactment; use run(graph, ...)"
            ) from None
        writer(data)

    def log(self, msg, *args, level=logging.INFO):
        """Log a message tagged with the PE name and instance (library code logs, never prints)."""
        log.log(level, "%s[%d]: " + str(msg), self.name, self.instance, *args)

    def __repr__(self):
        return f"<{type(self).__name__} '{self.name}'>"


class IterativePE(GenericPE):
    """A PE with one input ``input`` and one output ``output``.

    Override :meth:`_process`; a returned value other than ``None`` is written to ``output``.
    """

    INPUT_NAME = "input"
    OUTPUT_NAME = "output"

    def __init__(self):
        super().__init__()
        self._add_input(self.INPUT_NAME)
        self._add_output(self.OUTPUT_NAME)

    def process(self, inputs):
        result = self._process(inputs[self.INPUT_NAME])
        if result is not None:
            self.write(self.OUTPUT_NAME, result)

    def _process(self, data):
        raise NotImplementedError(f"PE '{self.name}' does not implement _process(data)")


class ProducerPE(GenericPE):
    """A PE without inputs and with one output ``output``.

    :meth:`_process` is called once per iteration with the iteration's input dict (empty
    unless the run gave a list of dicts); a returned value other than ``None`` is written.
    """

    OUTPUT_NAME = "output"

    def __init__(self):
        super().__init__()
        self._add_output(self.OUTPUT_NAME)

    def process(self, inputs):
        result = self._process(inputs)
        if result is not None:
            self.write(self.OUTPUT_NAME, result)

    def _process(self, inputs):
        raise NotImplementedError(f"PE '{self.name}' does not implement _process(inputs)")


class ConsumerPE(GenericPE):
    """A PE with one input ``input`` and no outputs; override :meth:`_process`."""

    INPUT_NAME = "input"

    def __init__(self):
        super().__init__()
        self._add_input(self.INPUT_NAME)

    def process(self, inputs):
        self._process(inputs[self.INPUT_NAME])

    def _process(self, data):
        raise NotImplementedError(f"PE '{self.name}' does not implement _process(data)")


class SimpleFunctionPE(IterativePE):
    """An :class:`IterativePE` that applies ``fn(data, **params)`` to each item."""

    def __init__(self, fn, params=None, name=None):
        super().__init__()
        if not callable(fn):
            raise GraphError(f"SimpleFunctionPE needs a callable, got {fn!r}")
        self.fn = fn
        self.params = dict(params or {})
        self.name = name or getattr(fn, "__name__", type(self).__name__)

    def _process(self, data):
        return self.fn(data, **self.params)


def write_returned(pe, result):
    """Write the ``{output name: item}`` dict that ``pe.process`` returned (every mapping).

    A generator (``process`` or ``postprocess`` written with ``yield``) is run to its end
    here, writing every dict it yields; the shared run loop instead resumes it once per pass
    (see :mod:`noisecorr.engine.runtime`)."""
    if type(result) is types.GeneratorType:
        for out in result:
            if isinstance(out, dict):
                write_returned(pe, out)
        return
    if not isinstance(result, dict):
        raise TypeError(
            f"process() of PE '{pe.name}' returned {type(result).__name__}; "
            "return None or a dict {output name: item}"
        )
    for port, item in result.items():
        pe.write(port, item)


def fast_item_function(pe):
    """Return ``pe._process`` when calling it is equivalent to ``pe.process({"input": x})``.

    The run loop uses this to skip building one dict per item for the common
    :class:`IterativePE` / :class:`ConsumerPE` case; a subclass that overrides ``process``
    keeps the general path.
    """
    cls = type(pe)
    if isinstance(pe, IterativePE) and cls.process is IterativePE.process:
        return "iterative", pe._process
    if isinstance(pe, ConsumerPE) and cls.process is ConsumerPE.process:
        return "consumer", pe._process
    return None, None
