"""TileStackPE with ``keep: chunks`` (linear): hand-computed chunk rows from tile sums.

Each tile item brings, per pair, the sum of its windows' correlations in one chunk and their
count: the chunk row must be sum / count, a chunk a pair lacks a gap (count 0, zero row),
the full stack the sum over chunks / total count, and a pair that ``keep_chunks`` leaves
out its full stack only.
"""

import numpy as np
import pytest

from noisecorr.results.series import ChunkSelection
from noisecorr.signal.params import CorrelationParams
from test_tile_chunks import Stacker, _tile_item, drive

CHUNKS = [0.0, 3600.0, 7200.0]


def params():
    return CorrelationParams(sampling_rate=10.0, cc_len=600.0, step=600.0, maxlag=0.2, freqmin=0.1,
                             freqmax=2.0, substack=True, substack_len=3600.0)


def test_chunk_rows_are_the_tile_sums_per_chunk_with_gaps():
    stack = Stacker(params(), n_chunks=3, span_starts=CHUNKS)
    stack.sent = []
    ab, ac = "A|B|ZZ", "A|C|ZZ"
    drive(stack, "input", _tile_item(0.0, [ab, ac], 2, 6.0, n=3))
    drive(stack, "input", _tile_item(3600.0, [ab], 1, 10.0, n=5))    # A-C absent in chunk 1
    drive(stack, "input", _tile_item(7200.0, [ab, ac], 2, 4.0, n=2))
    got = {it["key"]: it for _, it in stack.sent}
    assert set(got) == {ab, ac} and stack.state == {}
    a = got[ab]
    np.testing.assert_array_equal(a["substack_starts"], CHUNKS)
    np.testing.assert_array_equal(a["substack_counts"], [3, 5, 2])
    np.testing.assert_allclose(a["substacks"][:, 0], [2.0, 2.0, 2.0])
    assert a["n_windows"] == 10 and np.allclose(a["stack"], 20.0 / 10)
    c = got[ac]
    np.testing.assert_array_equal(c["substack_counts"], [3, 0, 2])
    np.testing.assert_allclose(c["substacks"][:, 0], [2.0, 0.0, 2.0])
    assert c["n_windows"] == 5 and np.allclose(c["stack"], 10.0 / 5)
    assert c["substack_len"] == 3600.0


def test_selection_keeps_the_full_stack_of_every_pair():
    sel = ChunkSelection.from_config({"pairs": ["B-A"]})
    stack = Stacker(params(), n_chunks=1, span_starts=CHUNKS[:1], selection=sel)
    stack.sent = []
    drive(stack, "input", _tile_item(0.0, ["A|B|ZZ", "A|C|ZZ"], 2, 6.0, n=3))
    got = {it["key"]: it for _, it in stack.sent}
    assert got["A|B|ZZ"]["substacks"].shape == (1, 5)
    assert got["A|C|ZZ"]["substacks"] is None and np.allclose(got["A|C|ZZ"]["stack"], 2.0)


def test_span_starts_need_a_linear_chunk_grid():
    with pytest.raises(ValueError, match="needs a linear stack"):
        Stacker(CorrelationParams.from_dict({**params().to_dict(), "stack_method": "pws"}),
                span_starts=CHUNKS)
    with pytest.raises(ValueError, match="not chunks of the run"):
        stack = Stacker(params(), n_chunks=1, span_starts=CHUNKS)
        stack.sent = []
        drive(stack, "input", _tile_item(1800.0, ["A|B|ZZ"], 1, 6.0))
