"""End to end: the tiled stage through run() in the sequential and multiprocess mappings,
written to a results file, and the known answer of a synthetic network."""

import numpy as np
import pytest

from noisecorr.engine import WorkflowGraph, run
from noisecorr.results import open_results
from noisecorr.signal.chain import station_spectra
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.preprocess import ProcessedTrace
from noisecorr.synth import SyntheticNetwork
from noisecorr.synth.geometry import destination
from noisecorr.tiles import carried_band, plan_tiles
from pes.tiles import TiledCorrelation
from pes.write import WriteResultsPE
from tile_data import make_spectra, params


def graph(p, items, block, workers, path=None, parallel=False):
    stations = sorted({i["seed_id"].rsplit(".", 1)[0] for i in items})
    band = carried_band(p, items[0]["nfft"])
    plan = plan_tiles(len(stations), 20, band.stop - band.start, items[0]["nfft"],
                      2 * p.maxlag_samples + 1, "1GB", workers=workers, block_size=block)
    tc = TiledCorrelation(p, stations, plan, n_chunks=1)
    g = WorkflowGraph()
    g.add(tc)
    if path is not None:
        coords = {s.rsplit(".", 1)[0]: {"latitude": 45.0, "longitude": 7.0 + 0.1 * k, "elevation": 0.0}
                  for k, s in enumerate(stations)}
        writer = WriteResultsPE(path, p.to_dict(), coords, "2024-01-01", "2024-01-02", name="WriteResults")
        if parallel:  # one writer per worker, where the stacks are made (as the workflow does)
            writer.parallel, writer.numprocesses = True, workers
        g.connect(tc, "output", writer, "input", grouping="local" if parallel else None)
    return g, {tc._resolve_input("input")[0]: [{"input": it} for it in items]}


def stacks(result):
    out = {}
    for it in result.outputs[("TileStackPE", "output")]:
        for k, s, n in zip(it["keys"], it["stack"], it["n_windows"]):
            out[k] = (s, int(n))
    return out


def test_sequential_and_multiprocess_identical(tmp_path):
    p = params()
    items = make_spectra(p, n_stations=8)
    g, inputs = graph(p, items, block=3, workers=2)
    seq = stacks(run(g, inputs=inputs, mapping="sequential"))
    mp = stacks(run(g, inputs=inputs, mapping="multiprocess", processes=2))
    assert len(seq) == 28 and set(seq) == set(mp)
    for k in seq:
        assert seq[k][1] == mp[k][1]
        np.testing.assert_array_equal(seq[k][0], mp[k][0])


@pytest.mark.parametrize("mapping, parallel", [("sequential", False), ("multiprocess", True)])
def test_writes_results_file(tmp_path, mapping, parallel):
    from noisecorr.results import merge_parts

    p = params()
    items = make_spectra(p, n_stations=5)
    path = tmp_path / "r.h5"
    g, inputs = graph(p, items, block=2, workers=2, path=path, parallel=parallel)
    res = run(g, inputs=inputs, mapping=mapping, **({"processes": 2} if parallel else {}))
    assert sum(n for what, n in res.outputs[("WriteResults", "output")] if what == "written") == 10
    if parallel:
        merge_parts(path)
    g_ref, in_ref = graph(p, items, block=2, workers=2)
    ref = stacks(run(g_ref, inputs=in_ref))
    with open_results(path) as r:
        assert len(r.pairs()) == 10
        lags, ccf = r.stack("XX.S00", "XX.S03")
        assert len(lags) == 2 * p.maxlag_samples + 1
        np.testing.assert_array_equal(ccf, ref["XX.S00.|XX.S03.|ZZ"][0])
        assert r.meta("XX.S00", "XX.S03")["n_windows"] == ref["XX.S00.|XX.S03.|ZZ"][1]


def test_recovers_truth_table():
    """Sources in a western sector, stations on an east-west line (codes west to east):
    every pair's stack peaks at +distance/velocity, within one sample of the truth table's
    travel time rounded to the sample grid (a finite sector biases peaks slightly inwards)."""
    center = (47.0, 10.0)
    offsets = [-40.0, -25.0, -5.0, 10.0, 32.0]
    pts = [destination(*center, 270.0 if x < 0 else 90.0, abs(x)) for x in offsets]
    net = SyntheticNetwork(layout=[(float(a), float(b)) for a, b in pts], seed=3, n_sources=150,
                           source_azimuths=(265.0, 275.0), snr=4.0, radius_km=50.0)
    fs = net.sampling_rate
    data = net.generate(0, 2 * 3600, output="VEL")[:, 0]
    p = CorrelationParams(sampling_rate=fs, cc_len=600.0, step=600.0, freqmin=0.2, freqmax=4.0,
                          maxlag=40.0, max_over_std=np.inf)
    items = []
    for code, x in zip(net.codes, data):
        s = station_spectra(ProcessedTrace(code + "..BHZ", 0.0, fs, x, np.zeros(x.size, bool)), p)
        items.append({"seed_id": s.seed_id, "chunk": 0.0, "spectra": s.spectra,
                      "starttimes": s.starttimes, "sampling_rate": fs, "nfft": s.nfft})
    g, inputs = graph(p, items, block=2, workers=2)
    got = stacks(run(g, inputs=inputs))
    L = p.maxlag_samples
    truth = net.truth()
    assert len(truth) == len(got) == 10
    for src, rcv, _dist, tt in truth:
        stack, n = got[f"{src}.|{rcv}.|ZZ"]
        assert n == 12
        assert abs((np.argmax(stack) - L) - round(tt * fs)) <= 1, (src, rcv, tt)
