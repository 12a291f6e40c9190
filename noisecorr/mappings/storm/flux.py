"""The Flux topology definition (YAML) and a check of it against Flux's documented schema.

What we rely on from Flux (Storm 2.x, ``flux-core`` and ``flux-wrappers``):

* top-level keys ``name``, ``config``, ``spouts``, ``bolts``, ``streams``
  (``org.apache.storm.flux.model.TopologyDef``);
* a spout or bolt has ``id``, ``className``, ``constructorArgs``, ``configMethods`` and
  ``parallelism`` (``VertexDef``/``ObjectDef``);
* ``FluxShellSpout(String[] command)`` / ``FluxShellBolt(String[] command)`` and their config
  method ``setNamedStream(String name, String[] outputFields)``, which declares one named
  output stream per call (``flux-wrappers``; the class Javadoc shows exactly this YAML);
* a stream has ``from``, ``to`` and ``grouping`` with ``type`` in ``GroupingDef.Type``
  (``ALL, CUSTOM, DIRECT, SHUFFLE, LOCAL_OR_SHUFFLE, FIELDS, GLOBAL, NONE``), ``args`` (the
  field names of a ``FIELDS`` grouping) and ``streamId`` (``"default"`` when absent);
* ``FluxBuilder`` creates a bolt only when a stream targets it.
"""

from __future__ import annotations

import re

from noisecorr.engine.errors import GraphError

from .layout import BOLT_CLASS, EOS_FIELDS, SPOUT_CLASS

COMPONENT_MODULE = "noisecorr.mappings.storm.component"
GROUPING_TYPES = ("ALL", "CUSTOM", "DIRECT", "SHUFFLE", "LOCAL_OR_SHUFFLE", "FIELDS", "GLOBAL", "NONE")
TOPLEVEL_KEYS = {"name", "config", "components", "spouts", "bolts", "streams", "includes",
                 "topologySource", "workerHooks"}
VERTEX_KEYS = {"id", "className", "constructorArgs", "configMethods", "properties", "parallelism",
               "numTasks", "factory", "factoryArgs", "onHeapMemoryLoad", "offHeapMemoryLoad",
               "cpuLoad", "config"}
SHELL_CONFIG_METHODS = {"setNamedStream", "setDefaultStream", "addComponentConfig"}


def component_command(python, pe_name, spec_file="graph.pkl"):
    """The command a worker runs (in the extracted ``resources/`` directory) for one PE."""
    return [python, "-m", COMPONENT_MODULE, "--spec", spec_file, "--pe", pe_name]


def flux_definition(layout, config, python="python3"):
    """The Flux topology as a dict, ready for ``yaml.safe_dump``."""
    spouts, bolts, streams = [], [], []
    for pe, info in layout["pes"].items():
        methods = []
        for out in info["outputs"].values():
            methods.append({"name": "setNamedStream", "args": [out["stream"], list(out["fields"])]})
            methods.append({"name": "setNamedStream", "args": [out["eos"], list(EOS_FIELDS)]})
        vertex = {
            "id": info["component"],
            "className": SPOUT_CLASS if info["kind"] == "spout" else BOLT_CLASS,
            "constructorArgs": [component_command(python, pe)],
            "parallelism": info["parallelism"],
        }
        if methods:
            vertex["configMethods"] = methods
        (spouts if info["kind"] == "spout" else bolts).append(vertex)
        for sub in info["inputs"]:
            ports = ",".join(sub["dest_ports"])
            grouping = dict(sub["grouping"], streamId=sub["stream"])
            streams.append({"name": f"{sub['source']}.{sub['port']} --> {pe}.{ports}",
                            "from": sub["component"], "to": info["component"], "grouping": grouping})
            streams.append({"name": f"{sub['source']}.{sub['port']} end of stream --> {pe}",
                            "from": sub["component"], "to": info["component"],
                            "grouping": {"type": "ALL", "streamId": sub["eos"]}})
    return {"name": layout["topology"], "config": dict(config), "spouts": spouts, "bolts": bolts,
            "streams": streams}


def _is_str_list(value, allow_empty=False):
    return isinstance(value, list) and (allow_empty or value) and all(isinstance(v, str) and v for v in value)


def declared_streams(vertex):
    """``{stream id: [fields]}`` declared by a shell spout/bolt definition."""
    streams = {}
    args = vertex.get("constructorArgs") or []
    if len(args) >= 2 and isinstance(args[1], list):
        streams["default"] = list(args[1])
    for method in vertex.get("configMethods") or []:
        margs = method.get("args") or []
        if method.get("name") == "setNamedStream" and len(margs) == 2:
            streams[margs[0]] = list(margs[1]) if isinstance(margs[1], list) else margs[1]
        elif method.get("name") == "setDefaultStream" and len(margs) == 1:
            streams["default"] = margs[0]
    return streams


def check_flux(doc, shell_only=True):
    """Return the list of problems of a Flux topology definition (empty when valid).

    Checks required keys and their types, unique component ids (not ``__``-prefixed), the
    shell wrapper classes and their ``constructorArgs`` (a non-empty command list, optional
    output fields) and ``configMethods``, positive parallelism, and every stream: existing
    ``from``/``to`` ids, ``to`` being a bolt, a valid grouping type, a ``streamId`` the
    source declares, ``FIELDS`` args naming declared fields, no duplicate subscription, and
    every bolt receiving at least one stream.
    """
    problems = []
    if not isinstance(doc, dict):
        return [f"the topology must be a mapping, got {type(doc).__name__}"]
    for key in sorted(set(doc) - TOPLEVEL_KEYS):
        problems.append(f"unknown top-level key {key!r}")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        problems.append("'name' must be a non-empty string")
    elif re.search(r"[/.:\\]", name):
        problems.append(f"topology name {name!r} contains one of / . : \\ (Storm refuses those)")
    if "config" in doc and not isinstance(doc["config"], dict):
        problems.append("'config' must be a mapping")
    vertices = {}
    for section, cls in (("spouts", SPOUT_CLASS), ("bolts", BOLT_CLASS)):
        entries = doc.get(section)
        if not isinstance(entries, list) or (section == "spouts" and not entries):
            problems.append(f"'{section}' must be a {'non-empty ' if section == 'spouts' else ''}list")
            continue
        for i, v in enumerate(entries):
            where = f"{section}[{i}]"
            if not isinstance(v, dict):
                problems.append(f"{where} must be a mapping")
                continue
            for key in sorted(set(v) - VERTEX_KEYS):
                problems.append(f"{where}: unknown key {key!r}")
            vid = v.get("id")
            if not isinstance(vid, str) or not vid:
                problems.append(f"{where}: 'id' must be a non-empty string")
                continue
            where = f"{section[:-1]} '{vid}'"
            if vid.startswith("__"):
                problems.append(f"{where}: ids starting with '__' are reserved for Storm's system components")
            if vid in vertices:
                problems.append(f"{where}: duplicate id")
            vertices[vid] = (section, v)
            if not isinstance(v.get("className"), str):
                problems.append(f"{where}: 'className' is required")
            elif shell_only and v["className"] != cls:
                problems.append(f"{where}: className must be {cls}, got {v['className']}")
            par = v.get("parallelism", 1)
            if isinstance(par, bool) or not isinstance(par, int) or par < 1:
                problems.append(f"{where}: 'parallelism' must be a positive integer, got {par!r}")
            args = v.get("constructorArgs")
            if v.get("className") in (SPOUT_CLASS, BOLT_CLASS):
                if not isinstance(args, list) or len(args) not in (1, 2):
                    problems.append(f"{where}: constructorArgs must be [command] or [command, output fields]")
                else:
                    if not _is_str_list(args[0]):
                        problems.append(f"{where}: the command (constructorArgs[0]) must be a non-empty list of strings")
                    if len(args) == 2 and not _is_str_list(args[1], allow_empty=True):
                        problems.append(f"{where}: output fields (constructorArgs[1]) must be a list of strings")
                for j, m in enumerate(v.get("configMethods") or []):
                    if not isinstance(m, dict) or m.get("name") not in SHELL_CONFIG_METHODS:
                        problems.append(f"{where}: configMethods[{j}] must name one of {sorted(SHELL_CONFIG_METHODS)}")
                        continue
                    margs = m.get("args")
                    if m["name"] == "setNamedStream" and not (
                        isinstance(margs, list) and len(margs) == 2 and isinstance(margs[0], str) and margs[0]
                        and _is_str_list(margs[1], allow_empty=True)
                    ):
                        problems.append(f"{where}: setNamedStream takes [stream id, [fields]], got {margs!r}")
                    elif m["name"] == "setDefaultStream" and not (
                        isinstance(margs, list) and len(margs) == 1 and _is_str_list(margs[0], allow_empty=True)
                    ):
                        problems.append(f"{where}: setDefaultStream takes [[fields]], got {margs!r}")
                for stream, fields in declared_streams(v).items():
                    if isinstance(fields, list) and len(set(fields)) != len(fields):
                        problems.append(f"{where}: stream {stream!r} declares duplicate fields {fields}")
    streams = doc.get("streams")
    targeted = set()
    subscriptions = set()
    if not isinstance(streams, list):
        problems.append("'streams' must be a list")
        streams = []
    for i, s in enumerate(streams):
        where = f"streams[{i}]"
        if not isinstance(s, dict):
            problems.append(f"{where} must be a mapping")
            continue
        src, dst, grouping = s.get("from"), s.get("to"), s.get("grouping")
        if src not in vertices:
            problems.append(f"{where}: 'from' {src!r} is not a spout or bolt id")
        if dst not in vertices:
            problems.append(f"{where}: 'to' {dst!r} is not a spout or bolt id")
        elif vertices[dst][0] != "bolts":
            problems.append(f"{where}: 'to' {dst!r} is a spout; streams end at bolts")
        else:
            targeted.add(dst)
        if not isinstance(grouping, dict):
            problems.append(f"{where}: 'grouping' is required")
            continue
        gtype = grouping.get("type")
        if gtype not in GROUPING_TYPES:
            problems.append(f"{where}: grouping type {gtype!r} is not one of {', '.join(GROUPING_TYPES)}")
        stream_id = grouping.get("streamId", "default")
        if (dst, src, stream_id) in subscriptions:
            problems.append(f"{where}: '{dst}' already subscribes to stream {stream_id!r} of '{src}'")
        subscriptions.add((dst, src, stream_id))
        if src in vertices:
            declared = declared_streams(vertices[src][1])
            if vertices[src][1].get("className") in (SPOUT_CLASS, BOLT_CLASS) and stream_id not in declared:
                problems.append(f"{where}: '{src}' declares no stream {stream_id!r} (declared: {sorted(declared)})")
            elif gtype == "FIELDS":
                fields = grouping.get("args")
                if not _is_str_list(fields):
                    problems.append(f"{where}: a FIELDS grouping needs args: a non-empty list of field names")
                elif stream_id in declared:
                    unknown = [f for f in fields if f not in declared[stream_id]]
                    if unknown:
                        problems.append(f"{where}: FIELDS grouping on {unknown}, which stream {stream_id!r} "
                                        f"of '{src}' does not declare ({declared[stream_id]})")
    for vid, (section, _) in vertices.items():
        if section == "bolts" and vid not in targeted:
            problems.append(f"bolt '{vid}' receives no stream, so Flux would not create it")
    return problems


def validate_flux(doc, shell_only=True):
    """Raise :class:`GraphError` listing every problem of ``doc`` (see :func:`check_flux`)."""
    problems = check_flux(doc, shell_only=shell_only)
    if problems:
        raise GraphError("invalid Flux topology:\n  " + "\n  ".join(problems))
