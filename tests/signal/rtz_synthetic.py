"""Two stations recording a linearly polarised wave, and the real PE chain that correlates them.

Station A (source of the pair) and station B lie ``DISTANCE_KM`` apart, B at a chosen
azimuth from A. One white-noise signal ``s(t)`` (the same realisation for every
geometry) arrives at A and, ``DELAY`` seconds later, at B, polarised along the pair's
radial direction (R at A: azimuth ``theta``; at B: ``psi + 180``) or transverse
direction (T = R + 90 degrees), as in
:func:`noisecorr.signal.components.rotation_matrices`. Z records an independent noise
(identical at both stations, delayed), so ZZ is non-zero and ZR, RZ are zero. The known
answer: RR (or TT) peaks at +``DELAY``; the other horizontal pairs are zero.
"""

import numpy as np
from obspy import Stream, Trace, UTCDateTime
from obspy.core.inventory import Channel, Inventory, Network, Station
from obspy.geodetics import gps2dist_azimuth
from obspy.geodetics.base import kilometers2degrees

from noisecorr.engine import WorkflowGraph, run
from noisecorr.signal.params import CorrelationParams
from pes import CrossCorrelatePE, FetchPE, NormalisePE, PreprocessPE, SpectraPE, StackPE, WhitenPE, chunk_requests
from pes.preprocess import OrientPE

T0 = UTCDateTime(2022, 3, 1)
FS = 5.0
SPAN = 1200.0          # seconds of data (the chunk is T0 + 100 .. T0 + 1100)
DELAY = 4.0            # seconds, B after A
DISTANCE_KM = 12.0
LAT_A, LON_A = 45.0, 10.0
PARAMS = dict(sampling_rate=FS, cc_len=200.0, step=100.0, freqmin=0.1, freqmax=1.5, maxlag=20.0,
              smooth_N=5, smoothspect_N=5, max_over_std=np.inf, response_output="NONE")


def receiver_position(azimuth_deg):
    """Latitude, longitude of B at ``DISTANCE_KM`` and ``azimuth_deg`` from A (flat-earth step, then the
    true geometry is measured by the chain itself)."""
    d = kilometers2degrees(DISTANCE_KM)
    a = np.radians(azimuth_deg)
    return LAT_A + d * np.cos(a), LON_A + d * np.sin(a) / np.cos(np.radians(LAT_A))


def _signal(seed, n):
    return np.random.default_rng(seed).standard_normal(n)


def polarised_network(azimuth_deg, polarisation="R", orientations=None, z_dips=None):
    """Stream and inventory of A and B; ``orientations`` maps station -> ((code, azimuth, dip), ...)
    for its horizontal channels (default E at 90, N at 0); ``z_dips`` station -> dip of HHZ (-90)."""
    lat_b, lon_b = receiver_position(azimuth_deg)
    _, theta, psi = gps2dist_azimuth(LAT_A, LON_A, lat_b, lon_b)   # az A->B, back-azimuth
    direction = {"A": theta, "B": psi + 180.0}
    if polarisation == "T":
        direction = {k: v + 90.0 for k, v in direction.items()}
    n = int(SPAN * FS)
    k = int(round(DELAY * FS))
    pad = 50
    s = _signal(1, n + pad)
    z = _signal(2, n + pad)
    shift = {"A": 0, "B": k}
    coords = {"A": (LAT_A, LON_A), "B": (lat_b, lon_b)}
    orientations = orientations or {}
    z_dips = z_dips or {}
    traces, stations = [], []
    for sta in "AB":
        sl = slice(pad - shift[sta], pad - shift[sta] + n)
        a = np.radians(direction[sta])
        ground = {"E": np.sin(a) * s[sl], "N": np.cos(a) * s[sl], "Z": z[sl]}
        chans = []
        for code, az, dip in orientations.get(sta, (("E", 90.0, 0.0), ("N", 0.0, 0.0))):
            v = (np.cos(np.radians(dip)) * np.sin(np.radians(az)), np.cos(np.radians(dip)) * np.cos(np.radians(az)))
            data = v[0] * ground["E"] + v[1] * ground["N"]
            traces.append(_trace(sta, "HH" + code, data))
            chans.append(_channel("HH" + code, coords[sta], az, dip))
        zdip = z_dips.get(sta, -90.0)
        traces.append(_trace(sta, "HHZ", -np.sin(np.radians(zdip)) * ground["Z"]))
        chans.append(_channel("HHZ", coords[sta], 0.0, zdip))
        stations.append(Station(sta, latitude=coords[sta][0], longitude=coords[sta][1], elevation=0.0,
                                channels=chans, start_date=T0 - 86400))
    inv = Inventory(networks=[Network("XX", stations=stations)], source="noisecorr tests")
    return Stream(traces), inv


def _trace(sta, cha, data):
    return Trace(np.asarray(data, dtype=np.float64),
                 header={"network": "XX", "station": sta, "location": "", "channel": cha,
                         "sampling_rate": FS, "starttime": T0})


def _channel(code, coords, azimuth, dip):
    return Channel(code, "", latitude=coords[0], longitude=coords[1], elevation=0.0, depth=0.0,
                   sample_rate=FS, azimuth=azimuth, dip=dip, start_date=T0 - 86400)


class MemoryClient:
    """In-memory client with the ObsPy get_waveforms signature."""

    def __init__(self, stream):
        self.stream = stream

    def get_waveforms(self, network, station, location, channel, starttime, endtime):
        return self.stream.select(network=network, station=station, location=location,
                                  channel=channel).slice(starttime, endtime).copy()


def correlate_network(stream, inv, **overrides):
    """Run Fetch -> Preprocess -> Orient -> Normalise -> Spectra -> Whiten -> CrossCorrelate -> Stack
    (sequential mapping) on every channel of ``stream``; returns ``({key: stack item}, result)``."""
    params = CorrelationParams(**{**PARAMS, **overrides})
    seed_ids = sorted({tr.id for tr in stream})
    pes = [FetchPE(MemoryClient(stream), inventory=inv, pad=100.0), PreprocessPE(params),
           OrientPE(params, channels=seed_ids), NormalisePE(params), SpectraPE(params), WhitenPE(params),
           CrossCorrelatePE(params, inventory=inv), StackPE(params)]
    graph = WorkflowGraph()
    for a, b in zip(pes, pes[1:]):
        graph.connect(a, "output", b, "input")
    reqs = chunk_requests(seed_ids, T0 + 100, T0 + SPAN - 100, SPAN)
    result = run(graph, inputs={pes[0]: [{"input": r} for r in reqs]}, mapping="sequential")
    return {s["component"]: s for s in result.outputs[("StackPE", "output")]}, result
