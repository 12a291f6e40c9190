"""Where the registry lives, URLs, the schema and its migrations."""

import sys

import pytest

from noisecorr.registry import Registry, RegistryError, default_path, default_url
from noisecorr.registry.store import latest_schema_version, migrations, open_backend

from conftest import downgrade_to_unsigned_schema, raw_execute


def test_default_location(monkeypatch, tmp_path):
    monkeypatch.delenv("NOISECORR_REGISTRY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "noisecorr" / "registry.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local" / "share" / "noisecorr" / "registry.sqlite"
    reg = Registry()
    assert reg.info()["entries"] == 0 and default_path().is_file()
    monkeypatch.setenv("NOISECORR_REGISTRY", str(tmp_path / "env.sqlite"))
    assert default_url() == str(tmp_path / "env.sqlite") and Registry().url == str(tmp_path / "env.sqlite")


def test_urls(tmp_path):
    assert open_backend(f"sqlite://{tmp_path}/a.sqlite").path == tmp_path / "a.sqlite"
    assert open_backend("postgresql://u@127.0.0.1:1/db").dialect == "postgresql"
    with pytest.raises(RegistryError, match="unsupported registry URL 'mysql://u:\\*\\*\\*@h/db'"):
        open_backend("mysql://u:secret@h/db")
    with pytest.raises(RegistryError, match="use sqlite:///absolute/path"):
        open_backend("sqlite://relative.db")


def test_postgresql_without_psycopg_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    with pytest.raises(RegistryError, match=r"needs psycopg; install it with: pip install 'noisecorr\[registry\]'"):
        Registry("postgresql://someone:pw@127.0.0.1:1/db").info()


def test_schema_created_and_migrated_in_order(registry_url):
    Registry(registry_url).info()
    rows = raw_execute(registry_url, "SELECT version, description FROM schema_version ORDER BY version")
    assert [tuple(r) for r in rows] == [(v, d) for v, d, _ in migrations("sqlite")]
    # a registry left at version 1 is brought up to date when next opened
    downgrade_to_unsigned_schema(registry_url)
    raw_execute(registry_url, "DROP INDEX tags_by_tag")
    raw_execute(registry_url, "DROP INDEX entries_by_sha256")
    raw_execute(registry_url, "DELETE FROM schema_version WHERE version > 1")
    assert Registry(registry_url).info()["schema_version"] == latest_schema_version()
    # a newer schema than this noisecorr knows is refused rather than misread
    raw_execute(registry_url, "INSERT INTO schema_version (version, description, applied_at) VALUES (99, 'x', 'x')")
    with pytest.raises(RegistryError, match="schema version 99, newer than this noisecorr knows"):
        Registry(registry_url).info()


def test_unique_version_constraint_backs_up_the_lock(registry, workflow_file, registry_url):
    registry.add(workflow_file, workspace="lab")
    columns = "workspace, name, version, kind, module, qualname, sha256, summary, doc, ports, requirements, uses, created_at"
    with pytest.raises(Exception, match="(?i)unique"):
        raw_execute(registry_url, f"INSERT INTO entries ({columns}) SELECT {columns} FROM entries WHERE name = 'Square'")
