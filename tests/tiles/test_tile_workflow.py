"""The workflow wires the preprocessing's rejections into the tiled stage: a rejected
station-day is reported absent, so no tile waits for the end of the run, and every pair
is written once with the windows of every chunk it has."""

import numpy as np
from obspy import UTCDateTime

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


class FailingOnce:
    """A client (no files: one request, one answer) whose server fails for one channel-chunk."""

    def __init__(self, client, seed_id, starttime):
        self.client, self.seed_id, self.starttime = client, seed_id, starttime

    def get_waveforms(self, network, station, location, channel, starttime, endtime, **kw):
        t0 = float(UTCDateTime(self.starttime))  # requests start a pad before their chunk
        if ".".join((network, station, location, channel)) == self.seed_id and \
                t0 - 1800 < float(UTCDateTime(starttime)) <= t0:
            raise ConnectionError("service unavailable")
        return self.client.get_waveforms(network, station, location, channel, starttime, endtime)


def test_channel_chunk_the_fetch_loses_is_reported_to_the_tiles(tmp_path):
    config = load_config(overrides={"out": str(tmp_path / "o"), "stations": 4, "chunk_length": 3600})
    wf = build_workflow(config)
    starts = sorted({r["input"]["starttime"] for r in wf.inputs[wf.pes["Fetch"]]})
    sid = sorted(wf.sources.seed_ids)[2]
    fetch = wf.pes["Fetch"]
    fetch.client = FailingOnce(fetch.client, sid, starts[1])
    result = run(wf.graph, inputs=wf.inputs)
    (rec,) = result.outputs[("Fetch", "rejected")]
    assert rec["seed_id"] == sid and "service unavailable" in rec["reason"]
    assert sum(s["tiles_at_end"] for s in result.outputs[("TileCorrelatePE", "stats")]) == 0
    assert finish(wf, result, 0.0).pairs_written == 6
