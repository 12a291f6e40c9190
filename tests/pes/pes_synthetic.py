"""A tiny synthetic network with known inter-station delays, as in-memory ObsPy objects."""

import numpy as np
from obspy import Stream, Trace, UTCDateTime
from obspy.core.inventory import Channel, Inventory, Network, Station
from obspy.core.inventory.response import Response

T0 = UTCDateTime(2022, 1, 1, 1, 0, 0)
FS_RAW = 50.0
#: station -> (latitude, longitude, delay in seconds relative to the common noise)
STATIONS = {"A": (45.0, 10.0, 0.0), "B": (45.2, 10.0, 1.5), "C": (45.0, 10.3, -2.0)}
SPAN = (T0 - 200, T0 + 3800)


def paz_response():
    w0 = 2 * np.pi / 60.0
    return Response.from_paz(zeros=[0j, 0j], poles=[w0 * (-0.707 + 0.707j), w0 * (-0.707 - 0.707j)],
                             stage_gain=1.0e4, stage_gain_frequency=1.0, input_units="M/S",
                             output_units="COUNTS")


def make_network(components="Z", seed=0, noise=0.3):
    """Stream (int32 counts) and Inventory: station X records the common noise delayed by its delay."""
    rng = np.random.default_rng(seed)
    n = int((SPAN[1] - SPAN[0]) * FS_RAW)
    pad = 500
    traces, stations = [], []
    base = {c: rng.standard_normal(n + 2 * pad) for c in components}
    for sta, (lat, lon, delay) in STATIONS.items():
        k = int(round(delay * FS_RAW))
        channels = []
        for c in components:
            x = base[c][pad - k:pad - k + n] + noise * rng.standard_normal(n)
            traces.append(Trace((x * 1e4).astype(np.int32),
                                header={"network": "XX", "station": sta, "location": "",
                                        "channel": "HH" + c, "sampling_rate": FS_RAW,
                                        "starttime": SPAN[0]}))
            channels.append(Channel("HH" + c, "", latitude=lat, longitude=lon, elevation=0.0,
                                    depth=0.0, sample_rate=FS_RAW, response=paz_response(),
                                    azimuth={"E": 90.0, "N": 0.0, "Z": 0.0}[c],
                                    dip={"E": 0.0, "N": 0.0, "Z": -90.0}[c],
                                    start_date=T0 - 86400))
        stations.append(Station(sta, latitude=lat, longitude=lon, elevation=0.0, channels=channels,
                                start_date=T0 - 86400))
    inv = Inventory(networks=[Network("XX", stations=stations)], source="noisecorr tests")
    return Stream(traces), inv


def expected_lag(src, rcv):
    """Receiver delay relative to the source, in seconds."""
    return STATIONS[rcv][2] - STATIONS[src][2]
