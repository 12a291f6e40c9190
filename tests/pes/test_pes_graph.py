"""The PE chain as a workflow graph: known delays come out at the right lags."""

import numpy as np
import pytest
from obspy.clients.filesystem.sds import Client as SDSClient

from noisecorr.engine import WorkflowGraph, run
from noisecorr.signal.components import rotate_to_rtz
from noisecorr.signal.params import CorrelationParams
from pes import (CrossCorrelatePE, FetchPE, FileClient, NormalisePE, PreprocessPE, SpectraPE, StackPE,
                 WhitenPE, chunk_requests)
from pes_synthetic import STATIONS, T0, expected_lag, make_network

PARAMS = dict(sampling_rate=10.0, cc_len=300.0, step=150.0, freqmin=0.1, freqmax=2.0, maxlag=20.0,
              time_norm="one_bit", freq_norm="rma", smoothspect_N=5, max_over_std=np.inf)


class MemoryClient:
    """In-memory client with the ObsPy get_waveforms signature."""

    def __init__(self, stream):
        self.stream = stream

    def get_waveforms(self, network, station, location, channel, starttime, endtime):
        return self.stream.select(network=network, station=station, location=location,
                                  channel=channel).slice(starttime, endtime)


def build_graph(client, params, inventory=None, coordinates=None, fetch_inventory=False):
    g = WorkflowGraph()
    pes = [FetchPE(client, inventory=inventory, fetch_inventory=fetch_inventory, pad=100.0),
           PreprocessPE(params), NormalisePE(params), SpectraPE(params), WhitenPE(params),
           CrossCorrelatePE(params, inventory=inventory, coordinates=coordinates), StackPE(params)]
    for a, b in zip(pes, pes[1:]):
        g.connect(a, "output", b, "input")
    return g, pes[0]


def seed_ids(components="Z"):
    return [f"XX.{s}..HH{c}" for s in STATIONS for c in components]


def check_delays(stacks, n_windows):
    keys = {s["key"] for s in stacks}
    assert keys == {"XX.A.|XX.B.|ZZ", "XX.A.|XX.C.|ZZ", "XX.B.|XX.C.|ZZ"}
    for s in stacks:
        src, rcv = s["source"].split(".")[1], s["receiver"].split(".")[1]
        assert s["lags"][np.argmax(s["stack"])] == pytest.approx(expected_lag(src, rcv)), s["key"]
        assert s["n_windows"] == n_windows
        assert np.all(np.isfinite(s["stack"]))


@pytest.mark.parametrize("stack_method,substack", [("linear", False), ("pws", True), ("robust", False)])
def test_graph_recovers_known_delays(stack_method, substack):
    stream, inv = make_network()
    params = CorrelationParams(**PARAMS, stack_method=stack_method, substack=substack,
                               substack_len=900.0, response_output="NONE")
    graph, fetch = build_graph(MemoryClient(stream), params, inventory=inv)
    reqs = chunk_requests(seed_ids(), T0, T0 + 3600, 1800.0)
    result = run(graph, inputs={fetch: [{"input": r} for r in reqs]}, mapping="sequential")
    stacks = result.outputs[("StackPE", "output")]
    # 2 chunks x ((1800 - 300) / 150 + 1) = 2 x 11 windows
    check_delays(stacks, 22)
    assert not result.outputs.get(("PreprocessPE", "rejected"))
    if substack:
        for s in stacks:
            assert s["substack_counts"].tolist() == [6, 5, 6, 5]
    ab = next(s for s in stacks if s["key"] == "XX.A.|XX.B.|ZZ")
    assert ab["distance_km"] == pytest.approx(22.2, abs=0.2) and ab["azimuth"] == pytest.approx(0.0, abs=0.01)


def test_file_and_sds_clients_with_response_removal(tmp_path):
    stream, inv = make_network()
    folder = tmp_path / "files"
    folder.mkdir()
    sac = tmp_path / "sac"
    sac.mkdir()
    for tr in stream:
        tr.write(str(folder / f"{tr.id}.mseed"), format="MSEED")
        tr.write(str(sac / f"{tr.id}.sac"), format="SAC")
    (folder / "README.txt").write_text("not a waveform file")
    sds = tmp_path / "sds"
    for tr in stream:
        d = sds / str(T0.year) / tr.stats.network / tr.stats.station / f"{tr.stats.channel}.D"
        d.mkdir(parents=True, exist_ok=True)
        tr.write(str(d / f"{tr.id}.D.{T0.year}.{T0.julday:03d}"), format="MSEED")
    params = CorrelationParams(**PARAMS, response_output="VEL", pre_filt=(0.02, 0.05, 3.0, 4.0))
    reqs = chunk_requests(seed_ids(), T0, T0 + 1800, 1800.0)
    for client in (FileClient(folder), FileClient(sac), SDSClient(str(sds))):
        graph, fetch = build_graph(client, params, inventory=inv)
        result = run(graph, inputs={fetch: [{"input": r} for r in reqs]}, mapping="sequential")
        check_delays(result.outputs[("StackPE", "output")], 11)


def test_missing_station_is_reported_not_dropped():
    stream, inv = make_network()
    params = CorrelationParams(**PARAMS, response_output="NONE")
    graph, fetch = build_graph(MemoryClient(stream), params)
    reqs = chunk_requests(seed_ids() + ["XX.D..HHZ"], T0, T0 + 1800, 1800.0)
    result = run(graph, inputs={fetch: [{"input": r} for r in reqs]}, mapping="sequential")
    rejected = result.outputs[("PreprocessPE", "rejected")]
    assert [r["seed_id"] for r in rejected] == ["XX.D..HHZ"]
    assert "no data" in rejected[0]["reason"]
    check_delays(result.outputs[("StackPE", "output")], 11)


def test_rtz_components_are_the_rotated_enz_tensor():
    stream, inv = make_network(components="ENZ")
    comps = tuple(a + b for a in "ENZ" for b in "ENZ") + ("RR", "RT", "TR", "TT", "ZR")
    params = CorrelationParams(**{**PARAMS, "maxlag": 10.0}, components=comps, response_output="NONE")
    graph, fetch = build_graph(MemoryClient(stream), params, inventory=inv)
    reqs = chunk_requests(seed_ids("ENZ"), T0, T0 + 1800, 1800.0)
    result = run(graph, inputs={fetch: [{"input": r} for r in reqs]}, mapping="sequential")
    stacks = {s["key"]: s for s in result.outputs[("StackPE", "output")]}
    assert len(stacks) == 3 * len(comps)
    for a, b in (("XX.A.", "XX.B."), ("XX.A.", "XX.C."), ("XX.B.", "XX.C.")):
        enz = np.stack([np.stack([stacks[f"{a}|{b}|{x}{y}"]["stack"] for y in "ENZ"]) for x in "ENZ"])
        s = stacks[f"{a}|{b}|RR"]
        rtz = rotate_to_rtz(enz, s["azimuth"], s["back_azimuth"])
        for name in ("RR", "RT", "TR", "TT", "ZR"):
            i, j = "RTZ".index(name[0]), "RTZ".index(name[1])
            np.testing.assert_allclose(stacks[f"{a}|{b}|{name}"]["stack"], rtz[i, j], rtol=1e-4,
                                       atol=1e-5 * np.abs(rtz[i, j]).max())
    # B is due north of A: radial is north at both stations, so RR == NN and TT == EE
    ab = "XX.A.|XX.B."
    np.testing.assert_allclose(stacks[f"{ab}|RR"]["stack"], stacks[f"{ab}|NN"]["stack"], atol=1e-4)
    np.testing.assert_allclose(stacks[f"{ab}|TT"]["stack"], stacks[f"{ab}|EE"]["stack"], atol=1e-4)


def test_pes_do_not_mutate_read_only_inputs():
    """Arrays from other processes arrive read-only: every PE must cope."""
    stream, inv = make_network()
    params = CorrelationParams(**PARAMS, response_output="NONE", stack_method="pws")
    item = FetchPE(MemoryClient(stream), pad=100.0)._process(chunk_requests(["XX.A..HHZ"], T0, T0 + 1800)[0])
    for tr in item["stream"]:
        tr.data.flags.writeable = False
    pre = PreprocessPE(params)
    out = []
    pre.write = lambda port, x: out.append(x)
    pre.process({"input": item})
    for x in (out[0]["trace"].data, out[0]["trace"].gap_mask):
        x.flags.writeable = False
    w = NormalisePE(params)._process(out[0])
    w["windows"].flags.writeable = False
    s = SpectraPE(params)._process(w)
    s["spectra"].flags.writeable = False
    whiten, stats = WhitenPE(params), []
    whiten.write = lambda port, x: stats.append((port, x))
    wh = whiten._process(s)
    assert wh["spectra"].shape == s["spectra"].shape
    assert [port for port, _ in stats] == ["stats"] and stats[0][1]["n_windows"] == s["spectra"].shape[0]


def test_multiprocess_mapping_gives_the_sequential_stacks():
    """PEs are picklable and cope with read-only arrays arriving from other processes."""
    stream, inv = make_network()
    params = CorrelationParams(**PARAMS, response_output="NONE", stack_method="pws")
    graph, fetch = build_graph(MemoryClient(stream), params, inventory=inv)
    inputs = {fetch: [{"input": r} for r in chunk_requests(seed_ids(), T0, T0 + 3600, 1800.0)]}
    par = sorted(run(graph, inputs=inputs, mapping="multiprocess", processes=2)
                 .outputs[("StackPE", "output")], key=lambda s: s["key"])
    seq = sorted(run(graph, inputs=inputs, mapping="sequential").outputs[("StackPE", "output")],
                 key=lambda s: s["key"])
    assert [s["key"] for s in par] == [s["key"] for s in seq] and len(seq) == 3
    for a, b in zip(par, seq):
        np.testing.assert_allclose(a["stack"], b["stack"], rtol=1e-6)
        assert a["n_windows"] == b["n_windows"] == 22
