"""Find what a module offers to the registry: its PE classes and exported workflows.

A PE is a subclass of :class:`noisecorr.engine.GenericPE` *defined* in the module (classes it
imports are not its own). A workflow is a :class:`~noisecorr.engine.WorkflowGraph` or a
function returning one, marked with :func:`export_workflow` or listed in the module's
``__workflows__``. For each the registry keeps the docstring, the declared requirements (a
``requirements`` class attribute and the module's ``__requires__``) and, for PEs, the ports:
read from an instance made with no arguments when that works, else from the
``_add_input``/``_add_output`` calls in the class source (parsed with :mod:`ast`, never run).
"""

from __future__ import annotations

import ast
import inspect
import logging
from dataclasses import dataclass, field

from .errors import RegistryError
from .names import check_identifier

log = logging.getLogger("noisecorr.registry")

#: Attribute set by :func:`export_workflow` on what it marks.
EXPORT_ATTR = "__noisecorr_export__"
#: Shown for a port argument that is not a literal in the source.
DYNAMIC = "<dynamic>"


def export_workflow(obj=None, *, name=None):
    """Mark a graph-building function for the registry (``noisecorr registry add``).

    The function must return a :class:`~noisecorr.engine.WorkflowGraph` when called with no
    arguments (``load_workflow`` may pass keyword arguments). Usable bare or with a name::

        @export_workflow
        def square_numbers():
            ...

        @export_workflow(name="squares")
        def build():
            ...

    A graph object (not a function) is exported by listing it, or its attribute name, in the
    module's ``__workflows__``.
    """

    def mark(fn):
        if not callable(fn):
            raise TypeError(f"export_workflow marks graph-building functions, not {type(fn).__name__}; "
                            "list graph objects in the module's __workflows__")
        setattr(fn, EXPORT_ATTR, {"name": name})
        return fn

    return mark if obj is None else mark(obj)


@dataclass
class Found:
    """One thing a module defines for the registry."""

    kind: str  # "pe" or "workflow"
    name: str  # entry name (class name, or workflow name)
    qualname: str  # attribute of the module that holds it
    summary: str
    doc: str
    ports: dict
    requirements: list
    obj: object = field(repr=False, default=None)


def docstring(obj):
    """The object's own docstring (not inherited), cleaned; ``""`` if none."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def summary_line(doc):
    """First paragraph of a docstring on one line (a sentence often spans two lines)."""
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(first.split())


def _requirement_list(value, where):
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RegistryError(f"{where} must be a list of requirement strings such as 'obspy>=1.4', got {value!r}")
    from packaging.requirements import InvalidRequirement, Requirement

    for v in value:
        try:
            Requirement(v)
        except InvalidRequirement as exc:
            raise RegistryError(f"{where}: invalid requirement {v!r}: {exc}") from exc
    return list(value)


def _merge(*lists):
    out = []
    for lst in lists:
        out.extend(x for x in lst if x not in out)
    return out


def discover(module, source):
    """Return the :class:`Found` PEs and workflows of ``module`` (whose text is ``source``).

    Raises
    ------
    RegistryError
        An invalid ``__workflows__`` or requirement, or the module defines nothing to register.
    """
    from noisecorr.engine import GenericPE

    mod_reqs = _requirement_list(getattr(module, "__requires__", None), f"{module.__name__}.__requires__")
    tree = ast.parse(source)
    found = []
    pe_reqs = []
    for attr, obj in vars(module).items():
        if (isinstance(obj, type) and issubclass(obj, GenericPE) and obj.__module__ == module.__name__
                and obj.__qualname__ == attr):
            reqs = _requirement_list(getattr(obj, "requirements", None), f"{obj.__qualname__}.requirements")
            pe_reqs.append(reqs)
            doc = docstring(obj)
            found.append(Found("pe", check_identifier(attr, "PE class name"), attr, summary_line(doc), doc,
                               pe_ports(obj, tree), _merge(reqs, mod_reqs), obj))
    for name, attr, obj in _exported_workflows(module):
        doc = docstring(obj) if callable(obj) else ""
        if not doc:
            doc = docstring(module)
        found.append(Found("workflow", check_identifier(name, "workflow name"), attr, summary_line(doc), doc,
                           workflow_shape(obj, name), _merge(mod_reqs, *pe_reqs), obj))
    names = [f.name for f in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RegistryError(f"module {module.__name__} defines several entries named {duplicates}; "
                            "give exported workflows another name")
    return found


def _exported_workflows(module):
    from noisecorr.engine import WorkflowGraph

    seen = {}
    by_id = {}
    for attr, obj in vars(module).items():
        by_id.setdefault(id(obj), attr)
        mark = getattr(obj, EXPORT_ATTR, None) if callable(obj) and not isinstance(obj, type) else None
        if isinstance(mark, dict) and getattr(obj, "__module__", None) == module.__name__:
            seen[attr] = (mark.get("name") or attr, attr, obj)
    listed = getattr(module, "__workflows__", None)
    if listed is not None:
        if not isinstance(listed, (list, tuple)):
            raise RegistryError(f"{module.__name__}.__workflows__ must be a list, got {type(listed).__name__}")
        for item in listed:
            if isinstance(item, str):
                if not hasattr(module, item):
                    raise RegistryError(f"{module.__name__}.__workflows__ names {item!r}, which the module does not define")
                attr, obj = item, getattr(module, item)
            else:
                attr, obj = by_id.get(id(item)), item
                if attr is None:
                    raise RegistryError(f"{module.__name__}.__workflows__ holds {item!r}, which is not a module-level "
                                        "attribute; list top-level graphs or functions (or their names)")
            if not (isinstance(obj, WorkflowGraph) or (callable(obj) and not isinstance(obj, type))):
                raise RegistryError(f"{module.__name__}.__workflows__: {attr!r} is neither a WorkflowGraph nor a "
                                    "function returning one")
            mark = getattr(obj, EXPORT_ATTR, None)
            name = (mark or {}).get("name") or attr
            seen.setdefault(attr, (name, attr, obj))
    return list(seen.values())


def workflow_shape(obj, name):
    """PEs and streams of a workflow (building it when it is a function without arguments)."""
    from noisecorr.engine import WorkflowGraph

    graph = obj
    if not isinstance(obj, WorkflowGraph):
        try:
            graph = obj()
        except Exception as exc:  # a builder that needs arguments is still registered
            log.info("workflow %s: not built at registration (%s: %s)", name, type(exc).__name__, exc)
            return {"built": False, "reason": f"{type(exc).__name__}: {exc}"}
        if not isinstance(graph, WorkflowGraph):
            raise RegistryError(f"workflow {name!r}: {obj.__name__}() returned {type(graph).__name__}, "
                                "not a WorkflowGraph")
    return {
        "built": True,
        "pes": [{"name": pe.name, "class": type(pe).__qualname__} for pe in graph.pes],
        "edges": [[s.name, sp, d.name, dp] for s, sp, d, dp, _ in graph._edges],
    }


# -- ports ------------------------------------------------------------------------------------
def pe_ports(cls, tree=None):
    """``{"inputs": {name: {"grouping", "optional"}}, "outputs": [...], "from": how}``."""
    try:
        pe = cls()
    except Exception as exc:
        log.debug("%s() failed (%s); reading its ports from the source", cls.__qualname__, exc)
    else:
        return {
            "inputs": {n: {"grouping": _jsonable(d.get("grouping")), "optional": bool(d.get("optional"))}
                       for n, d in pe.inputconnections.items()},
            "outputs": list(pe.outputconnections),
            "from": "instance",
        }
    return _ports_from_source(cls, tree)


def _jsonable(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def _ports_from_source(cls, tree):
    from noisecorr.engine import GenericPE

    inputs, outputs = {}, []
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, GenericPE)) or klass is GenericPE:
            continue
        node = _class_node(klass, tree if klass.__module__ == cls.__module__ else None)
        if node is None:
            continue
        for call in ast.walk(node):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr in ("_add_input", "_add_output")):
                continue
            args = {k.arg: k.value for k in call.keywords if k.arg}
            positional = ["name", "grouping"] if call.func.attr == "_add_input" else ["name"]
            args.update(zip(positional, call.args))
            if "name" not in args:
                continue
            port = _value(args["name"], cls)
            if call.func.attr == "_add_output":
                if port not in outputs:
                    outputs.append(port)
            else:
                inputs[port] = {"grouping": _value(args["grouping"], cls) if "grouping" in args else None,
                                "optional": _value(args["optional"], cls) if "optional" in args else False}
    return {"inputs": inputs, "outputs": outputs, "from": "source"}


def _class_node(klass, tree):
    if tree is None:
        try:
            tree = ast.parse(inspect.getsource(inspect.getmodule(klass)))
        except (OSError, TypeError, SyntaxError):
            return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == klass.__name__:
            return node
    return None


def _value(node, cls):
    """A literal, or ``self.NAME``/``cls.NAME`` resolved on the class; else :data:`DYNAMIC`."""
    try:
        return _jsonable(ast.literal_eval(node))
    except ValueError:
        pass
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls", cls.__name__)):
        value = getattr(cls, node.attr, DYNAMIC)
        if isinstance(value, (str, int, float, bool, list, tuple)) or value is None:
            return _jsonable(value)
    return DYNAMIC


def registry_uses(tree):
    """Literal references in ``load_pe("ws.Name")`` / ``load_workflow(...)`` calls of a module."""
    uses = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or not call.args:
            continue
        func = call.func
        fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        arg = call.args[0]
        if fname in ("load_pe", "load_workflow") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            if arg.value not in uses:
                uses.append(arg.value)
    return uses
