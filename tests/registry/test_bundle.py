"""Export to a bundle file and import it elsewhere (across backends), hash-checked."""

import json

import pytest

from noisecorr.engine import run
from noisecorr.registry import ConflictError, IntegrityError, Registry, RegistryError, UntrustedError

from conftest import WORKFLOW_SOURCE


@pytest.fixture
def source_registry(tmp_path, workflow_file):
    reg = Registry(tmp_path / "source.sqlite")
    reg.add(workflow_file, workspace="lab", tags=["demo"])
    workflow_file.write_text(WORKFLOW_SOURCE.replace("OFFSET = 0", "OFFSET = 1"))
    reg.add(workflow_file, workspace="lab")
    reg.add("noisecorr.engine.examples", workspace="ex")
    return reg


def test_round_trip_keeps_versions_sources_and_metadata(source_registry, registry, tmp_path):
    bundle = tmp_path / "lab.json"
    exported = source_registry.export(bundle, workspace="lab")
    assert len(exported) == 10 and {e.workspace for e in exported} == {"lab"}
    doc = json.loads(bundle.read_text())
    assert doc["format"] == "noisecorr-registry-bundle" and len(doc["sources"]) == 2
    imported = registry.import_bundle(bundle)
    assert {a.status for a in imported} == {"added"}
    assert registry.list(all_versions=True) == source_registry.list(workspace="lab", all_versions=True)
    assert registry.source("lab.Square@1")[1] == WORKFLOW_SOURCE
    assert registry.get("lab.Square@1").tags == ("demo",)
    assert run(registry.load_workflow("lab.squares@2")).outputs[("Total", "total")] == \
        [("sum", sum((i + 1) ** 2 for i in range(10)))]
    # importing again changes nothing; into another workspace copies
    assert {a.status for a in registry.import_bundle(bundle)} == {"unchanged"}
    assert {e.signer_name for e in registry.list(all_versions=True)} == {"Test Author"}  # signatures kept
    # a signature covers the workspace: copies elsewhere arrive unsigned until someone signs them
    copies = registry.import_bundle(bundle, workspace="copy")
    assert {a.entry.workspace for a in copies} == {"copy"} and {a.entry.signature for a in copies} == {None}
    with pytest.raises(UntrustedError, match=r"copy\.Numbers@1 is not signed"):
        registry.load_pe("copy.Numbers@1")
    assert registry.sign("copy.Numbers@1").status == "signed"
    assert registry.load_pe("copy.Numbers@1")(2).n == 2


def test_export_chosen_entries(source_registry, tmp_path):
    bundle = tmp_path / "some.json"
    exported = source_registry.export(bundle, refs=["lab.Square", "ex.Doubler@1"])
    assert [e.ref for e in exported] == ["lab.Square@1", "lab.Square@2", "ex.Doubler@1"]
    latest = source_registry.export(bundle, refs=["lab.Square"], all_versions=False)
    assert [e.ref for e in latest] == ["lab.Square@2"]


def test_tampered_bundle_is_refused_and_nothing_imported(source_registry, registry, tmp_path):
    bundle = tmp_path / "b.json"
    source_registry.export(bundle, workspace="lab")
    doc = json.loads(bundle.read_text())
    sha = next(iter(doc["sources"]))
    doc["sources"][sha] += "\nimport os\n"
    bundle.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match=rf"sha256 {sha} \(used by lab\.\w+@\d.*does not match its hash"):
        registry.import_bundle(bundle)
    assert registry.list(all_versions=True) == []
    del doc["sources"][sha]
    bundle.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="is missing"):
        registry.import_bundle(bundle)
    bundle.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(RegistryError, match="not a noisecorr registry bundle"):
        registry.import_bundle(bundle)


def test_import_conflict_is_all_or_nothing(source_registry, registry, tmp_path, workflow_file):
    bundle = tmp_path / "b.json"
    source_registry.export(bundle, workspace="lab")
    workflow_file.write_text(WORKFLOW_SOURCE + "\n# another lab's version 1\n")
    registry.add(workflow_file, workspace="lab")
    before = registry.list(all_versions=True)
    with pytest.raises(ConflictError, match=r"lab\.\w+@1 already exists with different source"):
        registry.import_bundle(bundle)
    assert registry.list(all_versions=True) == before
