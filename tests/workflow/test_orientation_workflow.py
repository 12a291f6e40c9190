"""``noisecorr run`` on a folder whose station B records on 1/2 channels: the run uses them
(rotated to E/N from the StationXML) and gives the E/N run's RTZ stacks, under the sequential
and the multiprocess mapping (a sensor's channels are fetched by different workers and must
meet in one Orient instance)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "signal"))
from rtz_synthetic import PARAMS, T0, polarised_network  # noqa: E402

from noisecorr.results import open_results  # noqa: E402
from noisecorr.workflow import load_config, run_workflow  # noqa: E402

COMPONENTS = ["RR", "RT", "TT", "ZZ"]


def write_folder(folder, stream, inv):
    folder.mkdir()
    for tr in stream:
        tr.data = tr.data.astype(np.float32)
        tr.write(str(folder / f"{tr.id}.mseed"), format="MSEED")
    inv.write(str(folder / "stations.xml"), format="STATIONXML")
    return folder


def settings(folder, out, components=COMPONENTS):
    return {"data": str(folder), "inventory": str(folder / "stations.xml"), "out": str(out),
            "start": str(T0 + 300), "end": str(T0 + 900), "chunk_length": 600.0,
            "processing": {**PARAMS, "components": list(components), "time_norm": "one_bit",
                           "freq_norm": "rma"}}


def read(out, components=COMPONENTS):
    with open_results(out / "results.h5") as res:
        stacks = {c: res.stack("XX.A", "XX.B", component=c)[1] for c in components if res.pairs(c)}
    return stacks, json.loads((out / "summary.json").read_text())


def run(tmp_path, name, stream, inv, components=COMPONENTS, **overrides):
    folder = write_folder(tmp_path / f"{name}_data", stream, inv)
    run_workflow(load_config(overrides={**settings(folder, tmp_path / name, components), **overrides}))
    return read(tmp_path / name, components)


@pytest.mark.parametrize("mapping,processes", [("sequential", None), ("multiprocess", 2)])
def test_run_with_one_two_channels_equals_the_east_north_run(tmp_path, mapping, processes):
    ref, _ = run(tmp_path, "en", *polarised_network(77.0, "R"), mapping=mapping, processes=processes)
    rotated = polarised_network(77.0, "R", orientations={"B": (("1", 30.0, 0.0), ("2", 120.0, 0.0))})
    got, summary = run(tmp_path, "12", *rotated, mapping=mapping, processes=processes)
    assert summary["channels"] == 6 and summary["pairs_written"] == len(COMPONENTS)
    peak = np.abs(ref["RR"]).max()
    for c in COMPONENTS:
        np.testing.assert_allclose(got[c], ref[c], atol=1e-4 * peak, err_msg=c)
    assert np.abs(got["TT"]).max() < 0.01 * peak and np.abs(got["RT"]).max() < 0.01 * peak


def test_missing_azimuth_is_in_the_summary(tmp_path):
    stream, inv = polarised_network(77.0, "R", orientations={"B": (("1", 30.0, 0.0), ("2", 120.0, 0.0))})
    inv.select(station="B", channel="HH2")[0][0][0].azimuth = None
    stacks, summary = run(tmp_path, "noaz", stream, inv, components=["ZZ", "RR"])
    assert sorted(stacks) == ["ZZ"]      # RR needs B's horizontals
    reasons = [why for what, why in summary["skipped"] if what.startswith("XX.B..HH")]
    assert len(reasons) == 2 and all("XX.B..HH2: the StationXML gives no azimuth" in r for r in reasons)


@pytest.mark.mpi
def test_one_two_channels_under_mpi(tmp_path):
    """The sensor's channels are fetched on different ranks and meet in one Orient instance."""
    import yaml

    ref, _ = run(tmp_path, "en", *polarised_network(77.0, "R"))
    folder = write_folder(tmp_path / "mpi_data", *polarised_network(
        77.0, "R", orientations={"B": (("1", 30.0, 0.0), ("2", 120.0, 0.0))}))
    cfg = tmp_path / "mpi.yaml"
    cfg.write_text(yaml.safe_dump(settings(folder, tmp_path / "mpi")))
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "-q", "run", "--config", str(cfg), "--mapping", "mpi",
                           "-n", "3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got, summary = read(tmp_path / "mpi")
    assert summary["channels"] == 6
    peak = np.abs(ref["RR"]).max()
    for c in COMPONENTS:
        np.testing.assert_allclose(got[c], ref[c], atol=1e-4 * peak, err_msg=c)
