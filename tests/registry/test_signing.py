"""Signed entries: who may have their code run from a shared registry (both backends).

Every test signs with its own trusted key (fixture ``keys`` in conftest); tampering is done
with SQL on the database, around noisecorr, as someone with write access to it would.
"""

import json
import logging
import os
import stat
import textwrap

import pytest

from noisecorr.cli import main
from noisecorr.engine import run
from noisecorr.registry import (IntegrityError, Registry, RegistryError, SignatureError, TrustedKeys,
                                UntrustedError, generate_key)
from noisecorr.registry.loader import sha256_text
from noisecorr.registry.signing import PublicKey, load_signing_key, signed_payload, verify_signature

from conftest import WORKFLOW_SOURCE, downgrade_to_unsigned_schema, raw_execute, run_cli


@pytest.fixture
def other_author(tmp_path):
    """A second key, not in the trusted keys of the test."""
    return generate_key(tmp_path / "other" / "signing_key", name="Other Lab")


def unsigned_registry(url, tmp_path):
    """A registry handle with no signing key (so what it adds is unsigned)."""
    return Registry(url, signing_key=tmp_path / "no-such-key")


def test_signed_entry_loads_and_records_its_author(registry, workflow_file, keys):
    added = registry.add(workflow_file, workspace="lab")
    for a in added:
        e = a.entry
        assert e.signer_key == keys.key.public.b64 and e.signer_name == "Test Author"
        assert e.signer_id == keys.key.public.key_id and len(e.signer_id) == 16
        assert verify_signature(e.signer_key, e.signature, signed_payload(e.to_dict(), WORKFLOW_SOURCE))
    assert registry.trust_of("lab.Square").state == "trusted"
    assert registry.load_pe("lab.Square")()._process(6) == 36
    result = run(registry.load_workflow("lab.squares", n=4), mapping="sequential")
    assert result.outputs[("Total", "total")] == [("sum", 14)]


def test_show_prints_the_signer(registry_url, workflow_file, keys, other_author, capsys):
    Registry(registry_url).add(workflow_file, workspace="lab")
    Registry(registry_url, signing_key=other_author).add("noisecorr.engine.examples", workspace="ex")
    unsigned_registry(registry_url, keys.folder).add(workflow_file, workspace="old")
    reg = ["--registry", registry_url]
    assert main(["registry", "show", "lab.Square", *reg]) == 0
    kid = keys.key.public.key_id
    assert f"signature:    signed by Test Author (key {kid}), trusted as 'Test Author'" in capsys.readouterr().out
    assert main(["registry", "show", "ex.Doubler", *reg]) == 0
    assert (f"signed by Other Lab (key {other_author.public.key_id}), NOT a trusted key"
            in capsys.readouterr().out)
    assert main(["registry", "show", "old.Square", *reg]) == 0
    assert "signature:    unsigned" in capsys.readouterr().out
    assert main(["registry", "show", "lab.Total", "--json", *reg]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["signer_name"], shown["signer_id"], shown["trust"]) == ("Test Author", kid, "trusted")


def test_source_changed_with_its_hash_in_the_database_is_refused(registry_url, workflow_file, tmp_path):
    """The attack the hash alone cannot stop: new source, its correct sha256, written with SQL."""
    Registry(registry_url).add(workflow_file, workspace="lab")
    marker = tmp_path / "code-was-run"
    evil = WORKFLOW_SOURCE + f"\nopen({str(marker)!r}, 'w').write('ran')\n"
    raw_execute(registry_url, "INSERT INTO sources (sha256, source) VALUES (?, ?)", (sha256_text(evil), evil))
    assert raw_execute(registry_url, "UPDATE entries SET sha256 = ? WHERE workspace = 'lab'",
                       (sha256_text(evil),)) == 5
    registry = Registry(registry_url)
    assert registry.source("lab.Square")[1] == evil  # the hash check alone is satisfied
    with pytest.raises(SignatureError, match=r"lab\.Square@1: its signature \(key [0-9a-f]{16} \('Test Author'\)\) "
                                             r"does not match its source and metadata"):
        registry.load_pe("lab.Square")
    with pytest.raises(SignatureError):  # no flag overrides a signature that does not match
        registry.load_workflow("lab.squares", allow_unsigned=True)
    assert registry.trust_of("lab.Square").state == "bad"
    proc = run_cli("enact", "registry:lab.squares", "--registry", registry_url, "--trust-unsigned")
    assert proc.returncode == 2 and "does not match its source and metadata" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("sql", [
    "UPDATE entries SET qualname = 'Total' WHERE name = 'Square'",  # another class under this name
    "UPDATE entries SET version = 9 WHERE name = 'Square'",  # an old version passed off as new
    "UPDATE entries SET requirements = '[]' WHERE name = 'Square'",
    "UPDATE entries SET signer_name = 'Someone Famous' WHERE name = 'Square'",
    "UPDATE entries SET workspace = 'prod' WHERE name = 'Square'",
])
def test_changed_metadata_breaks_the_signature(registry_url, workflow_file, sql):
    registry = Registry(registry_url)
    registry.add(workflow_file, workspace="lab")
    assert raw_execute(registry_url, sql) == 1
    (square,) = [e for e in registry.list(all_versions=True) if e.name == "Square"]
    with pytest.raises(SignatureError, match="changed after it was signed"):
        registry.load_pe(square.ref)
    assert registry.load_pe("lab.Numbers")(2).n == 2  # the untouched entries still load


def test_untrusted_key_refused_then_accepted_after_trust(registry_url, tmp_path, other_author, keys, capsys):
    Registry(registry_url, signing_key=other_author).add("noisecorr.engine.examples", workspace="ex")
    registry = Registry(registry_url)
    with pytest.raises(UntrustedError, match=rf"ex\.Doubler@1 is signed by key {other_author.public.key_id} "
                                             r"\('Other Lab'\), which is not in your trusted keys .*registry trust"):
        registry.load_pe("ex.Doubler")

    pub = f"{other_author.path}.pub"
    assert main(["registry", "trust", pub, "--name", "Other Lab (met at the workshop)"]) == 0
    assert capsys.readouterr().out.split() == ["trusted", other_author.public.key_id, "Other", "Lab", "(met",
                                               "at", "the", "workshop)"]
    assert registry.load_pe("ex.Doubler")()._process(4) == 8
    assert registry.trust_of("ex.Doubler").trusted_name == "Other Lab (met at the workshop)"
    assert main(["registry", "trusted"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == [keys.key.public.key_id, other_author.public.key_id]
    assert main(["registry", "trust", pub]) == 0 and "already trusted" in capsys.readouterr().out

    assert main(["registry", "untrust", other_author.public.key_id]) == 0
    with pytest.raises(UntrustedError):
        registry.load_pe("ex.Doubler@1")
    assert main(["registry", "untrust", "0123456789abcdef"]) == 1
    assert "no key '0123456789abcdef' in the trusted keys file" in capsys.readouterr().err


def test_unsigned_refused_unless_that_load_allows_it(registry_url, workflow_file, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="noisecorr.registry"):
        added = unsigned_registry(registry_url, tmp_path).add(workflow_file, workspace="lab")
    assert {a.entry.signature for a in added} == {None}
    assert "no signing key" in caplog.text and "stored unsigned" in caplog.text
    registry = Registry(registry_url)
    with pytest.raises(UntrustedError, match=r"lab\.Square@1 is not signed .*noisecorr registry sign lab\.Square@1"
                                             r".*--trust-unsigned \(Python: allow_unsigned=True\)"):
        registry.load_pe("lab.Square")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="noisecorr.registry"):
        assert registry.load_pe("lab.Square", allow_unsigned=True)()._process(3) == 9
    assert "lab.Square@1 is unsigned; running it anyway because this load allows it" in caplog.text
    with pytest.raises(UntrustedError):  # the flag was for that call only
        registry.load_pe("lab.Square")
    with pytest.raises(UntrustedError, match=r"lab\.small@1 is not signed"):
        registry.load_workflow("lab.small")

    proc = run_cli("enact", "registry:lab.squares", "--registry", registry_url)
    assert proc.returncode == 2 and "is not signed" in proc.stderr
    proc = run_cli("enact", "registry:lab.squares", "--registry", registry_url, "--trust-unsigned",
                   "-m", "multiprocess", "-n", "2")
    assert proc.returncode == 0, proc.stderr
    assert "('sum', 285)" in proc.stdout and "running it anyway" in proc.stderr


def test_old_registry_entries_are_migrated_unsigned_and_can_be_signed(registry_url, workflow_file, capsys):
    Registry(registry_url).add(workflow_file, workspace="lab")
    downgrade_to_unsigned_schema(registry_url)  # as a registry made before signatures
    registry = Registry(registry_url)
    assert registry.info()["schema_version"] == 3
    assert {e.signature for e in registry.list(all_versions=True)} == {None}
    with pytest.raises(UntrustedError, match=r"not signed \(an old entry, or added without a signing key\).*"
                                             r"`noisecorr registry sign lab\.squares@1`.*--trust-unsigned"):
        registry.load_workflow("lab.squares")
    assert main(["registry", "sign", "lab.squares", "lab.Numbers@1", "--registry", registry_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [["signed", "lab.squares@1"], ["signed", "lab.Numbers@1"]]
    assert run(registry.load_workflow("lab.squares", n=3)).outputs[("Total", "total")] == [("sum", 5)]
    assert main(["registry", "sign", "lab.squares", "--registry", registry_url]) == 0
    assert capsys.readouterr().out.startswith("unchanged ")
    with pytest.raises(UntrustedError):
        registry.load_pe("lab.Total")  # not signed yet


def test_adding_the_same_module_again_signs_unsigned_entries(registry_url, workflow_file, tmp_path):
    unsigned_registry(registry_url, tmp_path).add(workflow_file, workspace="lab")
    registry = Registry(registry_url)
    assert {a.status for a in registry.add(workflow_file, workspace="lab")} == {"signed"}
    assert registry.get("lab.Square").version == 1 and registry.load_pe("lab.Square")()._process(2) == 4
    assert {a.status for a in registry.add(workflow_file, workspace="lab")} == {"unchanged"}


def test_an_entry_tampered_before_signing_is_not_signed_by_adding_again(registry_url, workflow_file, tmp_path):
    unsigned_registry(registry_url, tmp_path).add(workflow_file, workspace="lab")
    raw_execute(registry_url, "UPDATE entries SET qualname = 'Numbers' WHERE name = 'Square'")
    statuses = {a.entry.name: a.status for a in Registry(registry_url).add(workflow_file, workspace="lab")}
    assert statuses["Square"] == "unchanged" and statuses["Total"] == "signed"
    with pytest.raises(UntrustedError):
        Registry(registry_url).load_pe("lab.Square")


def test_sign_keeps_another_signature_unless_replaced(registry_url, other_author):
    Registry(registry_url, signing_key=other_author).add("noisecorr.engine.examples", workspace="ex")
    registry = Registry(registry_url)
    with pytest.raises(RegistryError, match=r"ex\.Doubler@1 already has a valid signature by key .*'Other Lab'"
                                            r".*pass --replace"):
        registry.sign("ex.Doubler")
    signed = registry.sign("ex.Doubler", replace=True).entry
    assert signed.signer_name == "Test Author" and registry.load_pe("ex.Doubler")()._process(1) == 2
    with pytest.raises(RegistryError, match="no signing key at .*registry keygen"):
        Registry(registry_url, signing_key="/nonexistent/key").sign("ex.Sink")


def test_builtins_are_trusted_as_the_installed_package(registry_url, tmp_path, caplog):
    """Built-ins come from the installed noisecorr: unsigned, they still load, but only unchanged."""
    with caplog.at_level(logging.WARNING, logger="noisecorr.registry"):
        unsigned_registry(registry_url, tmp_path).add_builtin()
    registry = Registry(registry_url, trusted_keys=tmp_path / "empty_trusted_keys")
    assert registry.get("noisecorr.StackPE").signature is None
    assert registry.trust_of("noisecorr.StackPE").state == "builtin"
    assert registry.load_pe("noisecorr.StackPE").__name__ == "StackPE"
    graph = registry.load_workflow("noisecorr.ambient_noise")
    assert [p.name for p in graph.describe().pes if p.is_source] == ["Requests"]
    # changed, even with a correct hash, it is an unsigned entry like any other
    entry = registry.get("noisecorr.StackPE")
    stored = registry.source("noisecorr.StackPE")[1]
    evil = stored + "\nraise SystemExit('changed')\n"
    raw_execute(registry_url, "INSERT INTO sources (sha256, source) VALUES (?, ?)", (sha256_text(evil), evil))
    raw_execute(registry_url, "UPDATE entries SET sha256 = ? WHERE id = ?", (sha256_text(evil), entry.id))
    with pytest.raises(UntrustedError, match=r"noisecorr\.StackPE@1 is not signed"):
        registry.load_pe("noisecorr.StackPE")
    # the installed source under another workspace, or pointing at another class, is not a built-in
    raw_execute(registry_url, "UPDATE entries SET workspace = 'lab' WHERE name = 'CrossCorrelatePE'")
    with pytest.raises(UntrustedError, match=r"lab\.CrossCorrelatePE@1 is not signed"):
        registry.load_pe("lab.CrossCorrelatePE")
    fetch = registry.get("noisecorr.FetchPE")
    assert registry.trust_of(fetch).state == "builtin"
    raw_execute(registry_url, "UPDATE entries SET name = 'SomethingElse' WHERE id = ?", (fetch.id,))
    with pytest.raises(UntrustedError, match=r"noisecorr\.SomethingElse@1 is not signed"):
        registry.load_pe("noisecorr.SomethingElse")


def test_builtins_added_with_a_key_are_signed(registry, keys):
    added = registry.add_builtin()
    assert {a.entry.signer_name for a in added} == {"Test Author"}
    assert registry.trust_of("noisecorr.StackPE").state == "trusted"


def test_bundles_carry_signatures_and_refuse_changed_ones(registry, tmp_path, workflow_file, other_author):
    source = Registry(tmp_path / "src.sqlite", signing_key=other_author)
    source.add(workflow_file, workspace="lab")
    bundle = tmp_path / "b.json"
    source.export(bundle)
    doc = json.loads(bundle.read_text())
    assert doc["format_version"] == 2 and {e["signer_name"] for e in doc["entries"]} == {"Other Lab"}
    registry.import_bundle(bundle)
    with pytest.raises(UntrustedError, match="Other Lab"):
        registry.load_pe("lab.Square")
    TrustedKeys().add(other_author.public)
    assert registry.load_pe("lab.Square")()._process(5) == 25

    doc["entries"][0]["qualname"] = "Total"
    bundle.write_text(json.dumps(doc))
    fresh = Registry(tmp_path / "fresh.sqlite")
    with pytest.raises(SignatureError, match=r"bundle .*b\.json: the signature of entry lab\.\w+@1 .*nothing imported"):
        fresh.import_bundle(bundle)
    assert fresh.list(all_versions=True) == []
    # a bundle from before signatures (format 1) is read; its entries are unsigned
    doc = json.loads(source.export(bundle) and bundle.read_text())
    doc["format_version"] = 1
    for e in doc["entries"]:
        for f in ("signature", "signer_key", "signer_name"):
            del e[f]
    bundle.write_text(json.dumps(doc))
    assert {a.entry.signature for a in fresh.import_bundle(bundle)} == {None}
    with pytest.raises(UntrustedError, match="is not signed"):
        fresh.load_pe("lab.Square")


def test_allow_unsigned_does_not_extend_to_entries_loaded_in_turn(registry_url, workflow_file, tmp_path):
    unsigned_registry(registry_url, tmp_path).add(workflow_file, workspace="lab")
    combo = tmp_path / "combo.py"
    combo.write_text(textwrap.dedent('''
        from noisecorr.engine import WorkflowGraph
        from noisecorr.registry import export_workflow, load_pe

        Base = load_pe("lab.Square")
        Numbers = load_pe("lab.Numbers")


        class Fourth(Base):
            """Squares twice."""

            def _process(self, x):
                return super()._process(super()._process(x))


        @export_workflow
        def fourth():
            graph = WorkflowGraph()
            graph.connect(Numbers(3), "output", Fourth(), "input")
            return graph
    '''))
    registry = Registry(registry_url)
    with pytest.raises(RegistryError, match=r"lab\.Square@1 is not signed"):
        registry.add(combo, workspace="mix")  # adding runs the module, which loads an unsigned entry
    registry.sign("lab.Square")
    registry.sign("lab.Numbers")
    registry.add(combo, workspace="mix")
    assert registry.load_pe("mix.Fourth")()._process(2) == 16
    proc = run_cli("enact", "registry:mix.fourth", "--registry", registry_url)
    assert proc.returncode == 0, proc.stderr
    assert "Fourth.output: 3 item(s)" in proc.stdout and "16" in proc.stdout
    raw_execute(registry_url, "UPDATE entries SET signature = NULL, signer_key = NULL, signer_name = NULL "
                              "WHERE name = 'Square'")
    # a fresh process (modules loaded once are reused within one): the flag covers mix.fourth only
    proc = run_cli("enact", "registry:mix.fourth", "--registry", registry_url, "--trust-unsigned")
    assert proc.returncode == 2 and "lab.Square@1 is not signed" in proc.stderr


def test_keygen_trust_files_and_permissions(tmp_path, monkeypatch, capsys, registry_url, workflow_file):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("NOISECORR_SIGNING_KEY")
    monkeypatch.delenv("NOISECORR_TRUSTED_KEYS")
    assert main(["registry", "keygen", "--name", "Grace Hopper"]) == 0
    out = capsys.readouterr().out
    key_path = tmp_path / "cfg" / "noisecorr" / "signing_key"
    assert f"written to {key_path}" in out and "your own key is now in your trusted keys" in out
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = load_signing_key()
    assert key.public.name == "Grace Hopper" and key.public.line() in out
    assert [k.b64 for k in TrustedKeys().keys()] == [key.public.b64]
    assert TrustedKeys().path == tmp_path / "cfg" / "noisecorr" / "trusted_keys"
    assert main(["registry", "keygen"]) == 1
    assert "already exists" in capsys.readouterr().err
    # everything the user adds from now on is signed and loads
    registry = Registry(registry_url)
    registry.add(workflow_file, workspace="lab")
    assert registry.get("lab.Square").signer_name == "Grace Hopper"
    assert registry.load_pe("lab.Square")()._process(3) == 9

    os.chmod(key_path, 0o644)
    with pytest.raises(RegistryError, match=r"signing key .*signing_key has permissions 0644: .*chmod 600"):
        Registry(registry_url).add(workflow_file, workspace="lab2")
    os.chmod(key_path, 0o600)
    os.chmod(TrustedKeys().path, 0o666)
    with pytest.raises(RegistryError, match=r"trusted keys file .* permissions 0666: others could add keys"):
        Registry(registry_url).load_pe("lab.Square")
    os.chmod(TrustedKeys().path, 0o644)
    TrustedKeys().path.write_text("noisecorr-ed25519 not-base64!! someone\n")
    with pytest.raises(RegistryError, match=r"trusted keys file .*trusted_keys line 1: the key is not valid base64"):
        Registry(registry_url).load_pe("lab.Square")
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 AAAA user@host\n")
    assert main(["registry", "trust", str(bad)]) == 1
    assert "not a noisecorr public key line" in capsys.readouterr().err


def test_public_key_lines_round_trip():
    key = PublicKey("A" * 43 + "=", "Ada Lovelace")
    assert PublicKey.parse(key.line()) == key
    with pytest.raises(RegistryError, match="32 bytes"):
        PublicKey.parse("noisecorr-ed25519 AAAA short")


def test_hash_check_still_comes_first(registry_url, workflow_file):
    registry = Registry(registry_url)
    registry.add(workflow_file, workspace="lab")
    raw_execute(registry_url, "UPDATE sources SET source = ?", (WORKFLOW_SOURCE + "\n# edited\n",))
    with pytest.raises(IntegrityError, match="stored source does not match its content hash"):
        registry.load_pe("lab.Square", allow_unsigned=True)
    assert registry.trust_of("lab.Square").state == "bad"
