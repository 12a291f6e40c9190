"""Fetch through ObsPy's real FDSN client against a local fdsnws server built from sample data."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from obspy import UTCDateTime
from obspy.clients.fdsn import Client

from noisecorr.engine import WorkflowGraph, run
from noisecorr.signal.params import CorrelationParams
from pes import (CrossCorrelatePE, FetchPE, NormalisePE, PreprocessPE, SpectraPE, StackPE, WhitenPE,
                 chunk_requests)
from pes_synthetic import STATIONS, T0, expected_lag, make_network


def make_handler(stream, inventory, log):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):          # keep test output quiet
            pass

        def _send(self, code, body=b"", ctype="text/plain"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            log.append(url.path)
            if url.path.endswith("/version"):
                return self._send(200, b"1.1.0")
            sel = {k: q[k] for k in ("network", "station", "channel") if k in q}
            if "location" in q:
                sel["location"] = "" if q["location"] == "--" else q["location"]
            t1, t2 = UTCDateTime(q.get("starttime", "1970-01-01")), UTCDateTime(q.get("endtime", "2100-01-01"))
            if url.path == "/fdsnws/dataselect/1/query":
                st = stream.select(**sel).slice(t1, t2)
                if not len(st):
                    return self._send(204)
                buf = io.BytesIO()
                st.write(buf, format="MSEED")
                return self._send(200, buf.getvalue(), "application/vnd.fdsn.mseed")
            if url.path == "/fdsnws/station/1/query":
                inv = inventory.select(**sel, starttime=t1, endtime=t2)
                if not inv.networks:
                    return self._send(204)
                buf = io.BytesIO()
                inv.write(buf, format="STATIONXML")
                return self._send(200, buf.getvalue(), "application/xml")
            return self._send(404, b"not found")
    return Handler


@pytest.fixture
def fdsn_server():
    stream, inv = make_network(seed=3)
    log = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(stream, inv, log))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_fdsn_client_roundtrip(fdsn_server):
    url, log = fdsn_server
    client = Client(url, _discover_services=False, timeout=10)
    st = client.get_waveforms("XX", "A", "", "HHZ", T0, T0 + 60)
    assert len(st) == 1 and st[0].stats.sampling_rate == 50.0
    assert abs(st[0].stats.starttime - T0) < 0.05
    inv = client.get_stations(network="XX", station="B", level="response")
    assert inv.get_response("XX.B..HHZ", T0).instrument_sensitivity.value == pytest.approx(1e4)
    assert "/fdsnws/dataselect/1/query" in log and "/fdsnws/station/1/query" in log


def test_graph_through_fdsn(fdsn_server):
    url, log = fdsn_server
    params = CorrelationParams(sampling_rate=10.0, cc_len=300.0, step=150.0, freqmin=0.1, freqmax=2.0,
                               maxlag=20.0, time_norm="one_bit", max_over_std=np.inf,
                               response_output="VEL", pre_filt=(0.02, 0.05, 3.0, 4.0))
    g = WorkflowGraph()
    fetch = FetchPE(Client(url, _discover_services=False, timeout=10), fetch_inventory=True, pad=100.0)
    pes = [fetch, PreprocessPE(params), NormalisePE(params), SpectraPE(params), WhitenPE(params),
           CrossCorrelatePE(params), StackPE(params)]
    for a, b in zip(pes, pes[1:]):
        g.connect(a, "output", b, "input")
    reqs = chunk_requests([f"XX.{s}..HHZ" for s in STATIONS], T0, T0 + 1800, 1800.0)
    result = run(g, inputs={fetch: [{"input": r} for r in reqs]}, mapping="sequential")
    stacks = result.outputs[("StackPE", "output")]
    assert len(stacks) == 3
    for s in stacks:
        src, rcv = s["source"].split(".")[1], s["receiver"].split(".")[1]
        assert s["lags"][np.argmax(s["stack"])] == pytest.approx(expected_lag(src, rcv))
        assert s["n_windows"] == 11
    assert log.count("/fdsnws/station/1/query") == 3
