"""The examples in the registry's docstrings run as written."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["noisecorr.registry", "noisecorr.registry.core", "noisecorr.registry.names",
                                    "noisecorr.registry.signing"])
def test_docstring_examples(module, tmp_path, monkeypatch):
    monkeypatch.setenv("NOISECORR_REGISTRY", str(tmp_path / "never-used.sqlite"))
    failures, tried = doctest.testmod(importlib.import_module(module))
    assert tried > 0 and failures == 0
