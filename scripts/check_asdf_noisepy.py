"""Open noisecorr's ASDF export with NoisePy's own reader (``ASDFStackStore``).

Writes a small results file (synthetic stacks, known stations), exports it with
``noisecorr export --format asdf``, then, in NoisePy's Python 3.10 environment
(``/opt/noisepy-venv``, or ``--noisepy-python``), lists the station pairs and time spans
and reads every stack with ``noisepy.seis.io.asdfstore.ASDFStackStore`` and prints what
it read, checking data and parameters against our file. Exits 0 if everything matches,
1 if not, 2 if there is no NoisePy environment.

    python scripts/check_asdf_noisepy.py [--out DIR] [--noisepy-python PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

NOISEPY_SIDE = r"""
import json, sys
import numpy as np
from noisepy.seis.io.asdfstore import ASDFStackStore
store = ASDFStackStore(sys.argv[1], mode="r")
out = []
for src, rcv in sorted(store.get_station_pairs(), key=str):
    for ts in store.get_timespans(src, rcv):
        for st in store.read(ts, src, rcv):
            p = st.parameters
            out.append(dict(pair=f"{src}_{rcv}", timespan=str(ts), name=st.name,
                            component=st.component, npts=int(st.data.shape[0]),
                            dtype=str(st.data.dtype), data=st.data.astype(float).tolist(),
                            params={k: (v.item() if hasattr(v, "item") else v)
                                    for k, v in p.items()}))
print(json.dumps(out))
"""


NOISEPY_WRITES = r"""
import sys
import numpy as np
import obspy
from datetime import datetime, timezone
from datetimerange import DateTimeRange
from noisepy.seis.io.asdfstore import ASDFStackStore
from noisepy.seis.io.datatypes import Stack, Station
store = ASDFStackStore(sys.argv[1], mode="a")
src, rcv = Station("XS", "A", 45.0, 7.0, 120.0), Station("YY", "C", 44.2, 6.1, 15.0)
ts = DateTimeRange(datetime(2021, 3, 1, tzinfo=timezone.utc), datetime(2021, 3, 2, tzinfo=timezone.utc))
dist, azi, baz = obspy.geodetics.base.gps2dist_azimuth(src.lat, src.lon, rcv.lat, rcv.lon)
stacks = []
for k, comp in enumerate(("ZZ", "ZN")):
    # the parameters of noise_module.cc_parameters, as the stacking step updates them
    params = {"dt": 0.1, "maxlag": 20, "dist": np.float32(dist / 1000), "azi": np.float32(azi),
              "baz": np.float32(baz), "lonS": np.float32(src.lon), "latS": np.float32(src.lat),
              "lonR": np.float32(rcv.lon), "latR": np.float32(rcv.lat), "ngood": 48 + k,
              "cc_method": "xcorr_only", "time": ts.start_datetime.timestamp(),
              "substack": False, "comp": comp}
    data = np.sin(np.arange(401) * 0.05 * (k + 1)).astype(np.float32)
    stacks += [Stack(comp, "Allstack_linear", params, data), Stack(comp, "Allstack_pws", params, 2 * data)]
store.append(ts, src, rcv, stacks)
"""


def noisepy_writes(python, stack_dir) -> int:
    """NoisePy writes a stack file with its own ASDFStackStore; we import it."""
    from noisecorr.interop import import_results
    from noisecorr.results.reader import open_results

    run = subprocess.run([python, "-c", NOISEPY_WRITES, str(stack_dir)], capture_output=True,
                         text=True, check=False)
    if run.returncode != 0:
        print(run.stderr)
        print("NoisePy could not write its stack file")
        return 1
    bad = 0
    for data_type, scale in (("Allstack_linear", 1.0), ("Allstack_pws", 2.0)):
        out = Path(stack_dir).parent / f"imported_{data_type}.h5"
        if out.exists():
            out.unlink()
        n = import_results(stack_dir, out, "asdf", data_type=data_type)
        with open_results(out) as res:
            for comp, k in (("ZZ", 0), ("ZN", 1)):
                lags, x = res.stack("XS.A", "YY.C", comp)
                meta = res.meta("XS.A", "YY.C", comp)
                want = scale * np.sin(np.arange(401) * 0.05 * (k + 1)).astype(np.float32)
                ok = (np.array_equal(x, want) and lags[0] == -20.0 and meta["n_windows"] == 48 + k
                      and abs(meta["distance_km"] - 114.054) < 1e-2)
                bad += not ok
                print(f"{'ok ' if ok else 'BAD'} imported NoisePy's {data_type}/{comp} "
                      f"({n} stacks): lags {lags[0]}..{lags[-1]} s, ngood "
                      f"{meta['n_windows']}, dist {meta['distance_km']:.3f} km, "
                      f"stations {[s['code'] for s in res.stations()]}")
    return 0 if bad == 0 else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="Folder for the files (default: temporary).")
    ap.add_argument("--noisepy-python", default="/opt/noisepy-venv/bin/python")
    args = ap.parse_args(argv)
    if not Path(args.noisepy_python).exists():
        print(f"no NoisePy environment at {args.noisepy_python}: nothing checked")
        return 2
    from noisecorr.interop import export
    from noisecorr.results.reader import open_results
    from noisecorr.results.writer import ResultsWriter

    work = Path(args.out or tempfile.mkdtemp(prefix="check_asdf_"))
    work.mkdir(parents=True, exist_ok=True)
    stations = [dict(code="XS.A", latitude=45.0, longitude=7.0, elevation=120.0),
                dict(code="XS.B", latitude=45.5, longitude=7.8, elevation=340.0),
                dict(code="YY.C", latitude=44.2, longitude=6.1, elevation=15.0)]
    path = work / "results.h5"
    rng = np.random.default_rng(1)
    with ResultsWriter(path, {"processing": {"stack_method": "pws", "cc_method": "xcorr"}},
                       stations=stations, starttime="2021-03-01T00:00:00",
                       endtime="2021-03-02T00:00:00", sampling_rate=10.0, resume=False) as w:
        for comp in ("ZZ", "EN"):
            w.write_block(["XS.A", "XS.A", "XS.B"], ["XS.B", "YY.C", "YY.C"], comp, 20.0,
                          rng.standard_normal((3, 401)), {"n_windows": [40, 41, 42]})
    stack_dir = work / "STACK"
    export(path, stack_dir, "asdf")
    run = subprocess.run([args.noisepy_python, "-c", NOISEPY_SIDE, str(stack_dir)],
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        print(run.stderr)
        print("NoisePy could not read the export")
        return 1
    got = json.loads(run.stdout)
    bad = 0
    with open_results(path) as res:
        for item in got:
            src, rcv = item["pair"].split("_")
            _, stack = res.stack(src, rcv, item["component"])
            meta = res.meta(src, rcv, item["component"])
            p = item["params"]
            ok = (np.array_equal(np.float32(item["data"]), stack) and item["dtype"] == "float32"
                  and abs(p["dist"] - meta["distance_km"]) < 1e-3
                  and p["ngood"] == meta["n_windows"]
                  and int(round(2 * p["maxlag"] / p["dt"])) + 1 == item["npts"])
            bad += not ok
            print(f"{'ok ' if ok else 'BAD'} {item['pair']} {item['timespan']} {item['name']}/"
                  f"{item['component']}: npts {item['npts']} {item['dtype']}, dt {p['dt']}, "
                  f"maxlag {p['maxlag']}, dist {p['dist']:.3f} km, azi {p['azi']:.2f}, "
                  f"baz {p['baz']:.2f}, ngood {p['ngood']}, time {p['time']}")
    expected = 6
    print(f"NoisePy read {len(got)} stacks (expected {expected}); {bad} differ from noisecorr's")
    status = 0 if bad == 0 and len(got) == expected else 1
    return max(status, noisepy_writes(args.noisepy_python, work / "NOISEPY_STACK"))


if __name__ == "__main__":
    sys.exit(main())
