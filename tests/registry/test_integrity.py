"""Stored code is run only if it still hashes to its recorded sha256 (rows tampered directly)."""

import pytest

from noisecorr.registry import IntegrityError, Registry

from conftest import WORKFLOW_SOURCE, raw_execute, run_cli


@pytest.fixture
def tampered(registry_url, workflow_file, tmp_path):
    """A registry whose stored source was changed to create a marker file when run."""
    Registry(registry_url).add(workflow_file, workspace="lab")
    marker = tmp_path / "code-was-run"
    evil = WORKFLOW_SOURCE + f"\nopen({str(marker)!r}, 'w').write('ran')\n"
    assert raw_execute(registry_url, "UPDATE sources SET source = ?", (evil,)) == 1
    return registry_url, marker


def test_tampered_source_is_refused_before_it_runs(tampered):
    url, marker = tampered
    registry = Registry(url)
    with pytest.raises(IntegrityError, match=r"registry entry lab\.Square@1: stored source does not match its "
                                             r"content hash .* it was changed outside noisecorr"):
        registry.load_pe("lab.Square")
    with pytest.raises(IntegrityError, match=r"lab\.squares@1"):
        registry.load_workflow("lab.squares")
    with pytest.raises(IntegrityError):
        registry.source("lab.Square")
    with pytest.raises(IntegrityError):
        registry.export(marker.parent / "bundle.json")
    assert not marker.exists()
    proc = run_cli("enact", "registry:lab.squares", "--registry", url)
    assert proc.returncode == 2 and "stored source does not match its content hash" in proc.stderr
    assert not marker.exists()


def test_tampered_hash_column_is_refused(registry_url, workflow_file):
    registry = Registry(registry_url)
    registry.add(workflow_file, workspace="lab")
    if registry_url.startswith("postgresql://"):  # the foreign key refuses it; SQLite's is off outside noisecorr
        raw_execute(registry_url, "ALTER TABLE entries DROP CONSTRAINT entries_sha256_fkey")
    raw_execute(registry_url, "UPDATE entries SET sha256 = ? WHERE name = 'Square'", ("0" * 64,))
    with pytest.raises(IntegrityError, match=r"lab\.Square@1: its source \(sha256 0{64}\) is missing"):
        registry.load_pe("lab.Square")
    assert registry.load_pe("lab.Numbers").__name__ == "Numbers"  # the untouched entries still load


def test_show_source_through_cli_reports_tampering(tampered):
    url, marker = tampered
    proc = run_cli("registry", "show", "lab.Total", "--source", "--registry", url)
    assert proc.returncode == 1 and "lab.Total@1: stored source does not match" in proc.stderr
    proc = run_cli("registry", "show", "lab.Total", "--registry", url)  # metadata only: still shown
    assert proc.returncode == 0 and "input  input  grouping='global'" in proc.stdout
