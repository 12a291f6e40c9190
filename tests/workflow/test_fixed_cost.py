"""Fixed cost of ``noisecorr run`` (issue 26), as behaviour: what the run path imports and
when, how often it parses StationXML, and the phases it reports. Benchmarks measure the
seconds (``scripts/bench_workflow.py run``); these tests never time anything."""

import json
import subprocess
import sys

from noisecorr.workflow.sources import _count_stations, bundled_station_data


def _probe(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_run_path_leaves_plotting_and_the_response_library_to_their_use():
    """Importing the runner and the builder does not import matplotlib (only the record
    section needs it) nor run ObsPy's signal package's ``__init__`` (its PPSD imports
    matplotlib's pyplot): ``obspy.signal`` is at most the deferred package of
    :mod:`noisecorr.signal.obspy_light`, its own names not loaded."""
    found = _probe("import json, sys\nimport noisecorr.workflow.runner, noisecorr.workflow.build\n"
                   "sig = sys.modules.get('obspy.signal')\n"
                   "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} | set(sys.modules)"
                   " | ({'obspy.signal:PPSD'} if sig is not None and 'PPSD' in vars(sig) else set()))))")
    assert "noisecorr.workflow.build" in found
    assert "matplotlib" not in found
    assert "obspy.signal.spectral_estimation" not in found and "obspy.signal:PPSD" not in found
    assert not {"mpi4py", "dask", "distributed", "flask"} & set(found)


def test_record_section_imports_are_warmed_while_worker_processes_run():
    code = ("import json, sys\nfrom noisecorr.workflow.runner import _warm_imports, PLOT_MODULES\n"
            "none = _warm_imports('sequential', PLOT_MODULES)\n"
            "before = 'matplotlib.figure' in sys.modules\n"
            "t = _warm_imports('multiprocess', PLOT_MODULES)\nt.join()\n"
            "print(json.dumps([none is None, before, 'matplotlib.figure' in sys.modules,"
            " 'matplotlib.pyplot' in sys.modules, 'noisecorr.mappings.multiprocess' in sys.modules]))")
    sequential_none, before, after, pyplot, mapping = _probe(code)
    assert sequential_none and not before        # the sequential driver computes: nothing warmed
    assert after and mapping                     # the driver that waits imported them
    assert not pyplot                            # Figure and the Agg canvas, never pyplot


def test_station_count_of_the_sample_without_parsing_the_inventory():
    from obspy import read_inventory

    folder = bundled_station_data()
    assert _count_stations(folder) == sum(len(net) for net in read_inventory(str(folder / "stations.xml"))) == 6


def test_stationxml_is_parsed_once_when_stations_exceed_the_sample(tmp_path, monkeypatch):
    """``--stations`` beyond the sample: the sample's StationXML is only counted, and the
    synthetic network's is read once."""
    import obspy

    from noisecorr.workflow import load_config
    from noisecorr.workflow import sources

    calls = []
    real = obspy.read_inventory

    def counting(path, *a, **k):
        calls.append(str(path))
        return real(path, *a, **k)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(obspy, "read_inventory", counting)
    config = load_config(overrides={"stations": 7, "synthetic_hours": 0.5})
    resolved = sources.resolve(config)
    assert len(resolved.stations) == 7
    assert len(calls) == 1 and "synth_n7" in calls[0], calls
