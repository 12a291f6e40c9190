"""The conformance suite, every case unchanged, on generated Storm topologies.

Each case is packaged (Flux YAML, resources/, jar) and run by the Storm harness, which
launches every task's component with the command from the Flux file and routes tuples by
its groupings; outputs are compared with the sequential mapping's.
"""

import pytest

from noisecorr.testing.conformance import CASES, run_case

pytestmark = pytest.mark.storm


@pytest.mark.parametrize("processes", [None, 5])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_storm_harness(case, processes):
    run_case(case, "storm", processes=processes, harness=True)
