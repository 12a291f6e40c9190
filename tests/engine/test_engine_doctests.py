"""The examples in the engine's docstrings run as written."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["noisecorr.engine", "noisecorr.engine.graph"])
def test_docstring_examples(module):
    failures, tried = doctest.testmod(importlib.import_module(module))
    assert tried > 0 and failures == 0
