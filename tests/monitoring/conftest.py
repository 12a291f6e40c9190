"""A sample run with half-hour sub-stacks, shared by the monitoring command tests."""

import pytest

from noisecorr.cli import main


@pytest.fixture(scope="session")
def substack_run(tmp_path_factory):
    """Results folder of ``noisecorr run --stations 4`` with 1800 s sub-stacks (the series)."""
    out = tmp_path_factory.mktemp("dvvrun") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOISECORR_SUBSTACK", "true")
        mp.setenv("NOISECORR_SUBSTACK_LEN", "1800")
        assert main(["run", "--out", str(out), "--stations", "4"]) in (0, 3)
    return out
