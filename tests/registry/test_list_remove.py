"""Listing with filters, and removing versions or names, on both backends."""

import textwrap

import pytest

from noisecorr.registry import NotFoundError, RegistryError

from conftest import WORKFLOW_SOURCE, raw_execute


@pytest.fixture
def filled(registry, workflow_file, tmp_path):
    registry.add(workflow_file, workspace="lab", tags=["demo"])
    workflow_file.write_text(WORKFLOW_SOURCE.replace("OFFSET = 0", "OFFSET = 2"))
    registry.add(workflow_file, workspace="lab", tags=["v2"])
    other = tmp_path / "filters_mod.py"
    other.write_text(textwrap.dedent('''
        from noisecorr.engine import IterativePE


        class Bandpass_Filter(IterativePE):
            """Butterworth band-pass of each TRACE between two corner frequencies (100% pure)."""

            def _process(self, x):
                return x
    '''))
    registry.add(other, workspace="seis", tags=["demo", "signal"])
    return registry


def names(entries):
    return [e.ref for e in entries]


def test_list_latest_and_all_versions(filled):
    assert names(filled.list(workspace="lab")) == [
        "lab.Numbers@2", "lab.Square@2", "lab.Total@2", "lab.small@2", "lab.squares@2"]
    assert "lab.Square@1" in names(filled.list(all_versions=True))
    assert len(filled.list(all_versions=True)) == 5 + 5 + 1


def test_list_filters(filled):
    assert names(filled.list("square")) == ["lab.Square@2", "lab.squares@2"]  # substring, any case
    assert names(filled.list("lab.S*")) == ["lab.Square@2", "lab.small@2", "lab.squares@2"]  # any case
    assert names(filled.list("*_filter")) == ["seis.Bandpass_Filter@1"]
    assert names(filled.list("lab.Squar?")) == ["lab.Square@2"]
    assert names(filled.list("%")) == [] and names(filled.list("_")) == ["seis.Bandpass_Filter@1"]
    assert names(filled.list(kind="workflow")) == ["lab.small@2", "lab.squares@2"]
    # a tag filter finds the latest version that carries the tag
    assert names(filled.list(tag="demo")) == ["lab.Numbers@1", "lab.Square@1", "lab.Total@1", "lab.small@1",
                                              "lab.squares@1", "seis.Bandpass_Filter@1"]
    assert names(filled.list(tag="signal")) == ["seis.Bandpass_Filter@1"]
    # free text: every word, case-insensitive, in the name or the documentation
    assert names(filled.list(text="butterworth trace")) == ["seis.Bandpass_Filter@1"]
    assert names(filled.list(text="100%")) == ["seis.Bandpass_Filter@1"]
    assert names(filled.list(text="travel")) == ["lab.Numbers@2"]
    assert names(filled.list(text="butterworth sum")) == []
    assert names(filled.list(text="sum", kind="pe", workspace="lab")) == ["lab.Total@2"]
    with pytest.raises(RegistryError, match="kind must be"):
        filled.list(kind="graph")


def test_remove_one_version_then_the_name(filled, registry_url):
    removed = filled.remove("lab.Square@2")
    assert names(removed) == ["lab.Square@2"]
    assert filled.get("lab.Square").version == 1
    assert filled.load_pe("lab.Square")()._process(3) == 9
    with pytest.raises(NotFoundError, match=r"versions of that name: \[1\]"):
        filled.remove("lab.Square@2")
    assert names(filled.remove("lab.Square")) == ["lab.Square@1"]
    with pytest.raises(NotFoundError):
        filled.get("lab.Square")
    # tags of removed entries go too, and sources once nothing uses them
    for name in ("Numbers", "Total", "small", "squares"):
        filled.remove(f"lab.{name}")
    assert filled.list(workspace="lab", all_versions=True) == []
    assert raw_execute(registry_url, "SELECT COUNT(*) FROM sources") == [(1,)]  # seis only
    assert sorted(raw_execute(registry_url, "SELECT tag FROM tags")) == [("demo",), ("signal",)]
