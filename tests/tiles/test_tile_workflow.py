"""The workflow wires the preprocessing's rejections into the tiled stage: a rejected
station-day is reported absent, so no tile waits for the end of the run, and every pair
is written once with the windows of every chunk it has."""

import numpy as np

from noisecorr import open_results
from noisecorr.engine import IterativePE, run
from noisecorr.workflow import build_workflow, load_config
from noisecorr.workflow.runner import finish


class DropOne(IterativePE):
    """Empties the stream of one channel in its second chunk (Preprocess rejects "no data")."""

    def __init__(self, seed_id, chunk):
        super().__init__()
        self.seed_id, self.chunk = seed_id, chunk

    def _process(self, item):
        if item["seed_id"] == self.seed_id and item["starttime"] == self.chunk:
            return {**item, "stream": item["stream"].__class__()}
        return item


def test_rejected_station_day_is_reported_to_the_tiles(tmp_path):
    config = load_config(overrides={"out": str(tmp_path / "o"), "stations": 4, "chunk_length": 3600})
    wf = build_workflow(config)
    starts = sorted({r["input"]["starttime"] for r in wf.inputs[wf.pes["Fetch"]]})
    assert len(starts) >= 2
    sid = sorted(wf.sources.seed_ids)[1]
    wf.graph.insert_after(wf.pes["Fetch"], "output", DropOne(sid, starts[1]))
    result = run(wf.graph, inputs=wf.inputs)
    (absent,) = [a for a in result.outputs.get(("Preprocess", "rejected"), [])]
    assert absent["seed_id"] == sid and absent["chunk"] == starts[1]
    stats = result.outputs[("TileCorrelatePE", "stats")]
    assert sum(s["tiles_at_end"] for s in stats) == 0
    assert sum(s["tiles"] for s in stats) >= len(starts)
    report = finish(wf, result, 0.0)
    assert report.pairs_written == 6
    with open_results(report.results) as res:
        n = {(a, b): res.meta(a, b)["n_windows"] for a, b in res.pairs()}
    sta = ".".join(sid.split(".")[:2])
    with_it = [v for k, v in n.items() if sta in k]
    without = [v for k, v in n.items() if sta not in k]
    assert len(with_it) == 3 and max(with_it) < min(without) and np.all(np.array(with_it) > 0)
