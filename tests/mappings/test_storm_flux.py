"""The generated Flux topology: schema, groupings, streams, package contents, encoding."""

import copy
import json
import pickle
import sys
import zipfile

import numpy as np
import pytest
import yaml

from noisecorr.engine import GraphError, GraphSpec, WorkflowGraph
from noisecorr.engine.routing import stable_hash
from noisecorr.mappings.storm.flux import check_flux, declared_streams, validate_flux
from noisecorr.mappings.storm.layout import BOLT_CLASS, SPOUT_CLASS, make_layout, sanitize
from noisecorr.mappings.storm.multilang import decode_item, encode_item, java_list_hash
from noisecorr.mappings.storm.package import package
from noisecorr.testing.conformance import CASES, Broadcast, Count, GlobalCollect, Range, Square, Words

pytestmark = pytest.mark.storm


def packaged(tmp_path, graph, inputs=None, processes=4, **kw):
    pkg = package(graph.describe(inputs), tmp_path / "pkg", processes=processes, python=sys.executable, **kw)
    return pkg, yaml.safe_load(pkg.yaml.read_text())


def streams_to(doc, bolt):
    return [s for s in doc["streams"] if s["to"] == bolt]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_conformance_topology_is_valid_flux(case, tmp_path):
    graph, inputs = case.build()
    pkg, doc = packaged(tmp_path, graph, inputs)
    assert check_flux(doc) == []
    spec = pickle.loads((pkg.resources / "graph.pkl").read_bytes())
    assert isinstance(spec, GraphSpec)
    kinds = {v["id"]: v["className"] for v in doc["spouts"] + doc["bolts"]}
    for pe in spec.pes:
        info = pkg.layout["pes"][pe.name]
        assert kinds[info["component"]] == (SPOUT_CLASS if pe.is_source else BOLT_CLASS)
        declared = declared_streams(next(v for v in doc["spouts"] + doc["bolts"] if v["id"] == info["component"]))
        for port in pe.outputs:  # one data stream and one end-of-stream stream per port
            assert declared[info["outputs"][port]["stream"]][:2] == ["key", "payload"]
            assert declared[info["outputs"][port]["eos"]] == ["instance"]
    for edge in spec.edges:  # every edge: a data subscription and an ALL end-of-stream one
        src, dst = pkg.layout["pes"][edge.source], pkg.layout["pes"][edge.dest]
        subs = {s["grouping"]["streamId"]: s["grouping"]["type"] for s in streams_to(doc, dst["component"])
                if s["from"] == src["component"]}
        assert subs[src["outputs"][edge.source_port]["eos"]] == "ALL"
        expected = {"shuffle": "SHUFFLE", "local": "LOCAL_OR_SHUFFLE", "group": "FIELDS", "all": "ALL",
                    "global": "GLOBAL"}[edge.grouping[0]]
        assert subs[src["outputs"][edge.source_port]["stream"]] == expected


def test_groupings_map_exactly(tmp_path):
    g = WorkflowGraph()
    words, count, bc, glob = Words(), Count(), Broadcast(), GlobalCollect()
    g.connect(words, "output", count, "input")
    g.connect(words, "output", bc, "input")
    g.connect(count, "output", glob, "input")
    pkg, doc = packaged(tmp_path, g, {words: 3}, processes=8)
    data = {(s["from"], s["to"]): s["grouping"] for s in doc["streams"] if not s["grouping"]["streamId"].endswith("__eos")}
    assert data[("Words", "Count")] == {"type": "FIELDS", "args": ["key"], "streamId": "output"}
    assert data[("Words", "Broadcast")] == {"type": "ALL", "streamId": "output"}
    assert data[("Count", "GlobalCollect")] == {"type": "GLOBAL", "streamId": "output"}
    par = {v["id"]: v["parallelism"] for v in doc["spouts"] + doc["bolts"]}
    assert par == {"Words": 1, "Count": 3, "Broadcast": 3, "GlobalCollect": 1}, "PE hints and make_plan"


def test_consumers_grouping_by_different_keys_get_their_own_key_field(tmp_path):
    class ByFirst(Square):
        def __init__(self, name, keys):
            super().__init__(name=name)
            self.inputconnections["input"]["grouping"] = keys

    g = WorkflowGraph()
    src = Range(4)
    g.connect(src, "output", ByFirst("A", [0]), "input")
    g.connect(src, "output", ByFirst("B", [1]), "input")
    g.connect(src, "output", ByFirst("C", [0]), "input")
    spec = g.describe()
    layout = make_layout(spec, {p.name: 2 for p in spec.pes}, "t")
    out = layout["pes"]["Range"]["outputs"]["output"]
    assert out["fields"] == ["key", "payload", "key_1"]
    assert out["keys"] == [[[0], "key"], [[1], "key_1"]]
    assert [layout["pes"][pe]["inputs"][0]["grouping"]["args"] for pe in "ABC"] == [["key"], ["key_1"], ["key"]]


def test_one_pe_reading_a_port_twice_with_different_groupings_is_refused():
    class Two(Square):
        def __init__(self):
            super().__init__()
            self._add_input("other", grouping="all")

    g = WorkflowGraph()
    src, two = Range(3), Two()
    g.connect(src, "output", two, "input")
    g.connect(src, "output", two, "other")
    spec = g.describe()
    with pytest.raises(GraphError, match="subscribes to a stream once"):
        make_layout(spec, {"Range": 1, "Two": 2}, "t")


def test_component_and_stream_ids_are_storm_safe():
    assert sanitize("Square.inputs", "pe") == "Square_inputs"
    assert sanitize("__acker", "pe") == "pe__acker"
    assert sanitize("", "port") == "port"


def test_package_contents_readme_and_jar(tmp_path):
    g = WorkflowGraph()
    src, sq = Range(5), Square()
    g.connect(src, "output", sq, "input")
    pkg, doc = packaged(tmp_path, g, name="my.topology")
    assert doc["name"] == "my_topology", "Storm refuses . in topology names"
    assert doc["config"]["noisecorr.output.dir"] == str(tmp_path / "pkg" / "outputs")
    command = doc["spouts"][0]["constructorArgs"][0]
    assert command == [sys.executable, "-m", "noisecorr.mappings.storm.component", "--spec", "graph.pkl", "--pe", "Range"]
    summary = json.loads((pkg.root / "graph.json").read_text())
    assert [p["name"] for p in summary["pes"]] == ["Range", "Square"]
    assert summary["unconnected_outputs"] == [["Square", "output"]]
    readme = (pkg.root / "README.md").read_text()
    assert "topology.jar org.apache.storm.flux.Flux --remote topology.yaml" in readme
    assert "org.apache.storm.flux.Flux --local" in readme and "storm local --local-ttl" in readme
    assert "flux-core" in readme and "mvn" in readme
    assert "<artifactId>flux-core</artifactId>" in (pkg.root / "pom.xml").read_text()
    with zipfile.ZipFile(pkg.jar) as z:
        names = set(z.namelist())
    assert {"META-INF/MANIFEST.MF", "resources/graph.pkl", "resources/layout.json",
            "resources/noisecorr/mappings/storm/component.py"} <= names
    # a second package into the same directory replaces the first
    package(g.describe(), tmp_path / "pkg", python=sys.executable, vendor=False)
    assert not (tmp_path / "pkg" / "resources" / "noisecorr").exists()


def valid_doc(tmp_path):
    g = WorkflowGraph()
    words, count = Words(), Count()
    g.connect(words, "output", count, "input")
    g.connect(count, "output", Square(), "input")
    return packaged(tmp_path, g, {words: 2})[1]


def mutate(doc, fn):
    doc = copy.deepcopy(doc)
    fn(doc)
    return doc


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("name"), "'name' must be a non-empty string"),
    (lambda d: d.update(name="a/b"), "contains one of"),
    (lambda d: d.update(extra=1), "unknown top-level key 'extra'"),
    (lambda d: d.update(spouts=[]), "'spouts' must be a non-empty list"),
    (lambda d: d["bolts"][0].update(className="org.example.Bolt"), "className must be"),
    (lambda d: d["bolts"][0].update(id="Words"), "duplicate id"),
    (lambda d: d["bolts"][0].update(parallelism=0), "positive integer"),
    (lambda d: d["bolts"][0].update(constructorArgs=[]), "constructorArgs must be"),
    (lambda d: d["bolts"][0].update(constructorArgs=[["python3", 3]]), "non-empty list of strings"),
    (lambda d: d["bolts"][0]["configMethods"][0].update(args=["output"]), "setNamedStream takes"),
    (lambda d: d["bolts"][0]["configMethods"][0].update(name="prepare"), "configMethods[0] must name"),
    (lambda d: d["streams"][0].update(to="Nowhere"), "'to' 'Nowhere' is not a spout or bolt id"),
    (lambda d: d["streams"][0].update(to="Words"), "is a spout"),
    (lambda d: d["streams"][0]["grouping"].update(type="RANDOM"), "grouping type 'RANDOM'"),
    (lambda d: d["streams"][0]["grouping"].update(args=["word"]), "does not declare"),
    (lambda d: d["streams"][0]["grouping"].pop("args"), "needs args"),
    (lambda d: d["streams"][0]["grouping"].update(streamId="missing"), "declares no stream 'missing'"),
    (lambda d: d["streams"].append(copy.deepcopy(d["streams"][0])), "already subscribes"),
    (lambda d: d.update(streams=[s for s in d["streams"] if s["to"] != "Square"]), "receives no stream"),
    (lambda d: d["bolts"][0].update(id="__system"), "reserved"),
])
def test_schema_check_reports_each_problem(tmp_path, change, message):
    doc = valid_doc(tmp_path)
    assert doc["streams"][0]["grouping"]["type"] == "FIELDS"
    problems = check_flux(mutate(doc, change))
    assert any(message in p for p in problems), problems
    with pytest.raises(GraphError, match="invalid Flux topology"):
        validate_flux(mutate(doc, change))


def test_item_encoding_round_trips_any_picklable_item():
    a = np.arange(10.0).reshape(2, 5)
    for item in (3, "XS.S001", (1, a), {"k": [None, 1.5]}, lambda x: x + 1):
        got = decode_item(encode_item(item))
        if callable(item):
            assert got(1) == 2
        elif isinstance(item, tuple):
            assert got[0] == 1 and np.array_equal(got[1], a) and got[1].dtype == a.dtype
        else:
            assert got == item
    assert encode_item(7).isascii()


def test_java_list_hash_matches_storm_fields_grouping():
    # Arrays.deepHashCode(new Object[]{Long}) = 31 + Long.hashCode(v)
    assert java_list_hash([1]) == 32
    assert java_list_hash([-1]) == 31  # Long.hashCode(-1L) == 0
    assert java_list_hash([2 ** 32]) == 32  # (int)(v ^ v >>> 32) == 1
    assert java_list_hash([stable_hash("XS.S001"), 0]) == (31 * (31 + stable_hash("XS.S001")) + 0 + 2 ** 31) % 2 ** 32 - 2 ** 31
