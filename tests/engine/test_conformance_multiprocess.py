"""The conformance suite, unchanged, on the multiprocess mapping."""

import pytest

from noisecorr.testing.conformance import CASES, run_case


@pytest.mark.parametrize("processes", [1, 2, 3, 5])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_multiprocess(case, processes):
    run_case(case, "multiprocess", processes=processes)
