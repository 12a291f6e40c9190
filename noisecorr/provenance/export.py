"""Export a recorded run as a W3C PROV document (PROV-JSON, PROV-N, PROV-XML).

The document is built with the ``prov`` package (the reference Python implementation of the
PROV data model), so what we write is what that library reads back and serializes::

    document
      agents: the user, the software (noisecorr, with its version), the mapping
      bundle nc:run-<run id>
        entity nc:config-<run id>      the run's configuration and graph (JSON attributes)
        activity nc:a-<id>              one per PE invocation (nc:pe, nc:kind, nc:instance)
        entity nc:e-<id>                one per item written (nc:pe, nc:port, metadata nc:<key>)
        wasGeneratedBy, used, wasDerivedFrom, wasAssociatedWith, actedOnBehalfOf
"""

from __future__ import annotations

import datetime as _dt
import json

FORMATS = {"json": "json", "provn": "provn", "xml": "xml"}
NAMESPACE = ("nc", "https://noisecorr.readthedocs.io/prov#")


class ExportError(LookupError):
    """The run does not exist."""


def _time(value):
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return _dt.datetime.fromtimestamp(value, _dt.timezone.utc)
    try:
        return _dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _attr(value):
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    return json.dumps(value, sort_keys=True)


def document(store, run_id):
    """The run as a :class:`prov.model.ProvDocument` (one bundle per run)."""
    from prov.identifier import Namespace
    from prov.model import PROV, PROV_TYPE, ProvDocument

    nc = Namespace(*NAMESPACE)

    run = store.run(run_id)
    if run is None:
        raise ExportError(f"no run {run_id!r} in the store")
    acts, ents, used, derived = store.dump(run_id)
    doc = ProvDocument()
    doc.add_namespace("prov", "http://www.w3.org/ns/prov#")
    doc.add_namespace(nc)
    user = doc.agent(f"nc:user-{run['user_name']}", {PROV_TYPE: PROV["Person"], "nc:name": run["user_name"] or ""})
    software = doc.agent(f"nc:software-{run['software']}-{run['version']}",
                         {PROV_TYPE: PROV["SoftwareAgent"], "nc:name": run["software"], "nc:version": run["version"]})
    mapping = doc.agent(f"nc:mapping-{run['mapping']}-{run_id}",
                        {PROV_TYPE: PROV["SoftwareAgent"], "nc:mapping": run["mapping"],
                         "nc:processes": run["processes"] if run["processes"] is not None else "default",
                         "nc:host": run["host"] or ""})
    doc.actedOnBehalfOf(mapping, user)
    doc.actedOnBehalfOf(software, user)
    b = doc.bundle(f"nc:run-{run_id}")
    b.add_namespace(nc)
    for agent in (user, software, mapping):
        b.agent(agent.identifier, dict(agent.attributes))
    config_attrs = {PROV_TYPE: nc["RunConfiguration"], "nc:run_id": run_id, "nc:status": run["status"] or "",
                    "nc:started": run["started"] or "", "nc:finished": run["finished"] or "",
                    "nc:graph": _attr(run["graph"]), "nc:rules": _attr(run["rules"])}
    if run["config"] is not None:
        config_attrs["nc:config"] = _attr(run["config"])
    config = b.entity(f"nc:config-{run_id}", config_attrs)
    b.wasAttributedTo(config, user)
    for aid, pe, kind, instance, worker, started, ended in acts:
        a = b.activity(f"nc:a-{aid}", _time(started), _time(ended),
                       {PROV_TYPE: nc["PEInvocation"], "nc:pe": pe, "nc:kind": kind,
                        "nc:instance": instance, "nc:worker": worker})
        b.wasAssociatedWith(a, f"nc:mapping-{run['mapping']}-{run_id}")
        b.wasAssociatedWith(a, software.identifier)
        b.used(a, config)
    for e in ents:
        attrs = {PROV_TYPE: nc["Item"], "nc:pe": e["pe"], "nc:port": e["port"], "nc:label": e["label"] or "",
                 "nc:summary": e["summary"] or "", "nc:stored": int(bool(e["stored"]))}
        for k, v in sorted(e["meta"].items()):
            attrs[f"nc:{k}"] = _attr(v)
        b.entity(f"nc:e-{e['entity_id']}", attrs)
        if e["activity_id"]:
            b.wasGeneratedBy(f"nc:e-{e['entity_id']}", f"nc:a-{e['activity_id']}")
    for aid, eid in used:
        b.used(f"nc:a-{aid}", f"nc:e-{eid}")
    for eid, src in derived:
        b.wasDerivedFrom(f"nc:e-{eid}", f"nc:e-{src}")
    return doc


def export(store, run_id, fmt="json") -> str:
    """Serialize a run: ``fmt`` is ``json`` (PROV-JSON), ``provn`` (PROV-N) or ``xml`` (PROV-XML)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    doc = document(store, run_id)
    if fmt == "provn":
        return doc.get_provn()
    return doc.serialize(format=FORMATS[fmt], **({"indent": 1} if fmt == "json" else {}))
