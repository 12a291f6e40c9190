"""How a workflow graph becomes a Storm topology: components, streams, fields, groupings.

Pure functions of the :class:`~noisecorr.engine.graph.GraphSpec` and the instance counts of
:func:`~noisecorr.engine.plan.make_plan`; the packager writes the result into the Flux YAML
and into the bundle the components read, so both sides agree by construction.

* One component per PE: a spout (``FluxShellSpout``) for a PE without inputs, a bolt
  (``FluxShellBolt``) for the others, with the PE's instance count as parallelism.
  Component ids are the PE names with characters outside ``[A-Za-z0-9_-]`` replaced by
  ``_`` and never starting with ``_`` (Storm reserves ``__`` ids for system components).
* Two streams per output port: the data stream (the port name, sanitised) with fields
  ``["key", "payload"]`` (plus ``key_1, key_2 ...`` when consumers group by different keys)
  and the end-of-stream stream ``<stream>__eos`` with the single field ``["instance"]``.
* Groupings: shuffle -> ``SHUFFLE``; local -> ``LOCAL_OR_SHUFFLE``; group-by ``keys`` -> ``FIELDS`` on the key field whose
  value is ``stable_hash(group_key(item, keys))`` (the engine's stable key, so equal keys
  reach one task in Storm too); ``"all"`` -> ``ALL``; ``"global"`` -> ``GLOBAL``. Every
  consumer also subscribes to the producer's end-of-stream stream with ``ALL``.
"""

from __future__ import annotations

import re

from noisecorr.engine.errors import GraphError

SPOUT_CLASS = "org.apache.storm.flux.wrappers.spouts.FluxShellSpout"
BOLT_CLASS = "org.apache.storm.flux.wrappers.bolts.FluxShellBolt"
EOS_SUFFIX = "__eos"
DATA_FIELDS = ("key", "payload")
EOS_FIELDS = ("instance",)
LAYOUT_FORMAT = 1

_BAD = re.compile(r"[^A-Za-z0-9_-]")


def sanitize(name, prefix):
    """A Storm-safe id for ``name`` (never empty, never starting with ``_``)."""
    text = _BAD.sub("_", str(name))
    if not text or text.startswith("_"):
        text = prefix + text
    return text


def _unique(base, used):
    text, k = base, 2
    while text in used:
        text = f"{base}-{k}"
        k += 1
    used.add(text)
    return text


def storm_grouping(grouping, key_field):
    """The Flux grouping (``{"type": ..., "args": [...]}``) of an engine grouping."""
    kind = grouping[0]
    if kind == "shuffle":
        return {"type": "SHUFFLE"}
    if kind == "local":
        return {"type": "LOCAL_OR_SHUFFLE"}
    if kind == "all":
        return {"type": "ALL"}
    if kind == "global":
        return {"type": "GLOBAL"}
    if kind == "group":
        return {"type": "FIELDS", "args": [key_field]}
    raise GraphError(f"grouping {grouping!r} has no Storm equivalent")


def make_layout(spec, instances, topology_name):
    """Describe the topology of ``spec`` as plain data (lists, dicts, strings, ints).

    Parameters
    ----------
    spec : GraphSpec
    instances : dict
        ``{pe name: instance count}`` (``Plan.instances``).
    topology_name : str

    Returns
    -------
    dict
        ``{"format", "topology", "pes": {pe: {...}}}``; each PE entry holds ``component``,
        ``kind``, ``parallelism``, ``outputs`` ({port: stream, eos, fields, keys}) and
        ``inputs`` (subscriptions: source PE and port, streams, destination ports and the
        Flux grouping).

    Raises
    ------
    GraphError
        A PE with inputs but no connected stream (Flux only creates bolts that receive a
        stream), or one PE subscribing twice to the same port with different groupings (Storm
        allows one subscription per component and stream).
    """
    used_components = set()
    pes = {}
    for pe in spec.pes:
        component = _unique(sanitize(pe.name, "pe"), used_components)
        used_streams = {"default"}
        outputs = {}
        for port in pe.outputs:
            stream = _unique(sanitize(port, "port"), used_streams)
            eos = _unique(stream + EOS_SUFFIX, used_streams)
            outputs[port] = {"stream": stream, "eos": eos, "fields": list(DATA_FIELDS), "keys": []}
        pes[pe.name] = {
            "component": component,
            "kind": "spout" if pe.is_source else "bolt",
            "parallelism": int(instances[pe.name]),
            "outputs": outputs,
            "inputs": [],
        }
    # Key fields: one per distinct group-by key list among the consumers of a port.
    for edge in spec.edges:
        if edge.grouping[0] != "group":
            continue
        out = pes[edge.source]["outputs"][edge.source_port]
        keys = list(edge.grouping[1])
        if all(k != keys for k, _ in out["keys"]):
            name = "key" if not out["keys"] else f"key_{len(out['keys'])}"
            out["keys"].append([keys, name])
            if name not in out["fields"]:
                out["fields"].append(name)
    for edge in spec.edges:
        out = pes[edge.source]["outputs"][edge.source_port]
        key_field = None
        if edge.grouping[0] == "group":
            key_field = next(f for k, f in out["keys"] if k == list(edge.grouping[1]))
        grouping = storm_grouping(edge.grouping, key_field)
        inputs = pes[edge.dest]["inputs"]
        same = [s for s in inputs if (s["source"], s["port"]) == (edge.source, edge.source_port)]
        if same:
            if same[0]["grouping"] != grouping:
                raise GraphError(
                    f"PE '{edge.dest}' reads output '{edge.source_port}' of PE '{edge.source}' twice with "
                    f"different groupings ({same[0]['grouping']['type']} and {grouping['type']}); a Storm "
                    "component subscribes to a stream once: use one grouping"
                )
            if edge.dest_port not in same[0]["dest_ports"]:
                same[0]["dest_ports"].append(edge.dest_port)
            continue
        inputs.append({
            "source": edge.source,
            "port": edge.source_port,
            "component": pes[edge.source]["component"],
            "stream": out["stream"],
            "eos": out["eos"],
            "dest_ports": [edge.dest_port],
            "grouping": grouping,
        })
    for pe in spec.pes:
        if not pe.is_source and not pes[pe.name]["inputs"]:
            raise GraphError(
                f"PE '{pe.name}' declares inputs {sorted(pe.inputs)} but none is connected; Flux only "
                "creates bolts that receive a stream, so it cannot run under Storm"
            )
    return {"format": LAYOUT_FORMAT, "topology": topology_name, "pes": pes}


def topology_name(spec, name=None):
    """A Storm topology name: ``name`` or ``noisecorr-<first PEs>``, without ``/ . : \\``."""
    if name is None:
        name = "noisecorr-" + "-".join(p.name for p in spec.pes[:3])
    text = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:100]
    return text or "noisecorr"
