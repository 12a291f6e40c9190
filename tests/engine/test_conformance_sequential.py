"""The conformance suite on the sequential mapping (the reference answer)."""

import pytest

from noisecorr.testing.conformance import CASES, run_case


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_sequential(case):
    run_case(case, "sequential")
