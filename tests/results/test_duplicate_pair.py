"""A pair written twice in one run is refused, naming the pair (issue 18: two partial
stacks of one pair reached the writer, and the file silently kept the last one)."""

import numpy as np
import pytest

from noisecorr.engine import PEError, WorkflowGraph, run
from noisecorr.results import ResultsWriter, open_results
from pes.write import WriteResultsPE

PARAMS = {"cc_len": 60.0}
N = 2 * 10 + 1  # maxlag 1 s at 10 Hz


def meta(n=3, **kw):
    return {"sampling_rate": 10.0, "n_windows": n, **kw}


def test_write_pair_twice_refused(tmp_path):
    w = ResultsWriter(tmp_path / "r.h5", PARAMS)
    w.write_pair("XS.A", "XS.B", "ZZ", 1.0, np.zeros(N), meta())
    with pytest.raises(ValueError, match=r"pair XS\.A-XS\.B ZZ written twice to .*r\.h5"):
        w.write_pair("XS.A", "XS.B", "ZZ", 1.0, np.ones(N), meta(5))
    w.write_pair("XS.A", "XS.B", "ZN", 1.0, np.ones(N), meta())  # another component is another pair
    w.close()
    with open_results(tmp_path / "r.h5") as r:
        assert r.meta("XS.A", "XS.B")["n_windows"] == 3  # the first stack, not the refused one
        np.testing.assert_array_equal(r.stack("XS.A", "XS.B")[1], np.zeros(N))


def test_refused_after_a_checkpoint_and_within_one_block(tmp_path):
    w = ResultsWriter(tmp_path / "r.h5", PARAMS, checkpoint_pairs=1)
    w.write_pair("XS.A", "XS.B", "ZZ", 1.0, np.zeros(N), meta())  # checkpointed to a part
    with pytest.raises(ValueError, match=r"pair XS\.A-XS\.B ZZ written twice"):
        w.write_block(["XS.A"], ["XS.B"], "ZZ", 1.0, np.zeros((1, N)), meta())
    with pytest.raises(ValueError, match=r"pair XS\.A-XS\.C ZZ written twice"):
        w.write_block(["XS.A", "XS.B", "XS.A"], ["XS.C", "XS.C", "XS.C"], "ZZ", 1.0,
                      np.zeros((3, N)), meta())
    # a refused block leaves nothing behind: its other pairs can still be written once
    assert w.completed() == {("XS.A", "XS.B", "ZZ")}
    w.write_block(["XS.A", "XS.B"], ["XS.C", "XS.C"], "ZZ", 1.0, np.zeros((2, N)), meta())
    w.close()


def test_incomplete_pair_and_earlier_session_may_be_rewritten(tmp_path):
    path = tmp_path / "r.h5"
    w = ResultsWriter(path, PARAMS)
    w.write_pair("XS.A", "XS.B", "ZZ", 1.0, np.zeros(N), meta(complete=False))
    w.write_pair("XS.A", "XS.B", "ZZ", 1.0, np.ones(N), meta(4))  # completes it
    w.close()
    again = ResultsWriter(path, PARAMS)  # resume: a new session may redo a pair
    again.write_pair("XS.A", "XS.B", "ZZ", 1.0, np.full(N, 2.0), meta(6))
    with pytest.raises(ValueError, match="written twice"):
        again.write_pair("XS.A", "XS.B", "ZZ", 1.0, np.full(N, 3.0), meta(7))
    again.close()
    with open_results(path) as r:
        assert r.meta("XS.A", "XS.B")["n_windows"] == 6


def test_writer_pe_fails_the_run_naming_the_pair(tmp_path):
    """Two batched tile stacks carrying one pair (what the part-keyed tile stack did with a
    station missing from one chunk) end the run with the pair's name."""
    def batch(keys, n):
        src = [k.split("|")[0] for k in keys]
        rcv = [k.split("|")[1] for k in keys]
        return {"tile": (0, 0), "component": "ZZ", "keys": keys, "source": src,
                "receiver": rcv, "source_id": src, "receiver_id": rcv,
                "lags": np.arange(-10, 11) * 0.1, "stack": np.zeros((len(keys), N), np.float32),
                "n_windows": np.full(len(keys), n), "stack_method": "linear",
                "sampling_rate": 10.0}

    coords = {c: {"latitude": 45.0, "longitude": 7.0 + k, "elevation": 0.0}
              for k, c in enumerate(("XS.A", "XS.B", "XS.C"))}
    writer = WriteResultsPE(tmp_path / "r.h5", PARAMS, coords, "2024-01-01", "2024-01-02",
                            name="WriteResults")
    g = WorkflowGraph()
    g.add(writer)
    items = [batch(["XS.A.|XS.B.|ZZ", "XS.A.|XS.C.|ZZ"], 19), batch(["XS.A.|XS.B.|ZZ"], 19)]
    with pytest.raises(PEError, match=r"pair XS\.A-XS\.B ZZ written twice"):
        run(g, inputs={writer: [{"input": it} for it in items]})
