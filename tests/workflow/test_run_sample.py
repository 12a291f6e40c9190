"""End-to-end regression on the bundled sample stations, in every mapping.

Reference: tests/data/sample_reference.npz, made by scripts/make_sample_reference.py from a
sequential run (regenerate it only after a deliberate change of the science).
Tolerance: every stack within 1e-4 of its reference's peak amplitude (float32 arithmetic
whose order of summation may differ between mappings).
Ground truth: the pi/4-corrected travel time of every pair with SNR > 5 lies within one
sample of distance / velocity from station_data/truth.csv.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from noisecorr import open_results
from noisecorr.signal.traveltime import pick_travel_time, snr
from noisecorr.workflow import load_config, run_workflow

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "sample_reference.npz"
TRUTH = {(r["source"], r["receiver"]): float(r["travel_time_s"])
         for r in csv.DictReader(open(ROOT / "station_data" / "truth.csv"))}
RTOL = 1e-4


def check_against_reference(results_path):
    ref = np.load(REFERENCE)
    with open_results(results_path) as res:
        pairs = res.pairs("ZZ")
        assert len(pairs) == 15
        for a, b in pairs:
            lags, ccf = res.stack(a, b, "ZZ")
            want = ref[f"{a}|{b}|ZZ"]
            np.testing.assert_array_equal(lags, ref["__lags__"])
            assert np.max(np.abs(ccf - want)) <= RTOL * np.max(np.abs(want)), f"{a}-{b} differs from reference"


def check_travel_times(results_path):
    checked = 0
    with open_results(results_path) as res:
        for a, b in res.pairs("ZZ"):
            lags, ccf = res.stack(a, b, "ZZ")
            fs = res.meta(a, b, "ZZ")["sampling_rate"]
            truth = TRUTH[(a, b)]
            if snr(ccf, fs, truth) < 5:
                continue
            picked = pick_travel_time(ccf, fs, max_lag=3 * truth + 5)
            assert abs(picked - truth) <= 1.0 / fs, f"{a}-{b}: picked {picked:.3f} s, truth {truth:.3f} s"
            checked += 1
    assert checked >= 12, f"only {checked} pairs had enough signal"


@pytest.mark.parametrize("mapping, processes", [("sequential", None), ("multiprocess", 2), ("multiprocess", 3)])
def test_sample_run_matches_reference_and_truth(tmp_path, mapping, processes):
    config = load_config(overrides={"out": str(tmp_path / "out"), "mapping": mapping, "processes": processes})
    report = run_workflow(config)
    assert report.pairs_written == 15 and report.stations == 6
    assert report.windows_rejected.get("gap", 0) > 0, "S0003's gap must reject windows"
    assert not report.skipped
    check_against_reference(report.results)
    check_travel_times(report.results)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["pairs_written"] == 15
    assert summary["idle"]["workers"] == (processes or 1)   # every worker reported its timings
    # the tiled stage's own figures: 15 pairs x windows x in-band bins of products were timed
    assert summary["timings"]["tiles.cross_spectra_gflops"] > 0
    assert summary["timings"]["tiles.inverse_fft"] > 0 and summary["timings"]["tiles.spilled_bytes"] == 0
    assert (tmp_path / "out" / "record_section.png").stat().st_size > 10_000


@pytest.mark.mpi
def test_sample_run_under_mpi_matches_reference(tmp_path):
    """`noisecorr run --mapping mpi -n 3` re-launches itself under the venv's mpiexec."""
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "-q", "run", "--mapping", "mpi", "-n", "3",
                           "--out", str(tmp_path / "mpi")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("pairs written") == 1, "only rank 0 reports"
    check_against_reference(tmp_path / "mpi" / "results.h5")
    check_travel_times(tmp_path / "mpi" / "results.h5")
    # long MPI runs show progress too (rank 0 gathers the ranks' counters)
    assert "channel-chunks" in proc.stderr, proc.stderr


def test_sample_run_as_a_storm_topology_matches_reference(tmp_path):
    """The generated Storm topology, every component a multilang subprocess driven by the
    harness that plays Storm's side."""
    config = load_config(overrides={"out": str(tmp_path / "storm"), "mapping": "storm", "processes": 2})
    report = run_workflow(config, mapping_options={"harness": True})
    assert report.pairs_written == 15
    check_against_reference(report.results)


def test_cli_run_defaults_in_working_directory(tmp_path):
    """`noisecorr run` with no arguments: bundled sample, ./noisecorr_output, path printed."""
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "-q", "run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "noisecorr_output"
    assert "pairs written         15 of 15" in proc.stdout
    check_against_reference(tmp_path / "noisecorr_output" / "results.h5")
    # a second run refuses to overwrite, --resume finishes at once
    again = subprocess.run([sys.executable, "-m", "noisecorr", "-q", "run"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "use --resume" in again.stderr


def test_resume_completes_only_missing_pairs(tmp_path):
    import h5py

    out = tmp_path / "out"
    config = load_config(overrides={"out": str(out), "stations": 4})
    first = run_workflow(config)
    assert first.pairs_written == 6
    # simulate a run that stopped before two pairs were complete
    with h5py.File(first.results, "a") as f:
        complete = f["index/complete"][...]
        complete[:2] = False
        f["index/complete"][...] = complete
    resumed = run_workflow(config.replace(resume=True))
    assert resumed.pairs_resumed == 4 and resumed.pairs_written == 2
    ref = np.load(REFERENCE)
    with open_results(resumed.results) as res:
        assert len(res.pairs("ZZ")) == 6
        for a, b in res.pairs("ZZ"):
            want = ref[f"{a}|{b}|ZZ"]
            assert np.max(np.abs(res.stack(a, b)[1] - want)) <= RTOL * np.max(np.abs(want))


def test_library_use_swapping_a_pe(tmp_path):
    """Build the graph from a config, insert an own PE, enact it with another mapping."""
    from noisecorr.engine import IterativePE, run
    from noisecorr.workflow import build_workflow
    from noisecorr.workflow.runner import finish

    class Invert(IterativePE):
        """Flips the polarity of every preprocessed trace (a stand-in for a user's own step)."""

        def _process(self, item):
            tr = item["trace"]
            return {**item, "trace": type(tr)(tr.seed_id, tr.starttime, tr.sampling_rate, -tr.data, tr.gap_mask)}

    config = load_config(overrides={"out": str(tmp_path / "lib"), "stations": 3})
    wf = build_workflow(config)
    wf.graph.insert_after(wf.pes["Preprocess"], "output", Invert())
    result = run(wf.graph, inputs=wf.inputs, mapping="multiprocess", processes=2)
    report = finish(wf, result, 0.0)
    assert report.pairs_written == 3
    ref = np.load(REFERENCE)
    with open_results(report.results) as res:
        for a, b in res.pairs():
            # both traces flipped: the correlation is unchanged
            want = ref[f"{a}|{b}|ZZ"]
            assert np.max(np.abs(res.stack(a, b)[1] - want)) <= RTOL * np.max(np.abs(want))


def test_per_pair_path_equals_tiled_path(tmp_path):
    """`tiled: false` (CrossCorrelate -> Stack) gives the tiled stage's stacks."""
    report = run_workflow(load_config(overrides={"out": str(tmp_path / "pp"), "tiled": False}))
    assert report.pairs_written == 15
    check_against_reference(report.results)


def test_memory_budget_too_small_fails_before_running(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "run", "--memory", "1MB", "--out", str(tmp_path / "m")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "memory:" in proc.stderr and "the budget is 1.0 MB" in proc.stderr
    assert not (tmp_path / "m" / "results.h5").exists()


@pytest.mark.parametrize("stack_method", ["pws", "robust"])
def test_nonlinear_stacks_tiled_equal_per_pair(tmp_path, stack_method):
    """pws/robust take the per-window tiled path; it matches the per-pair path."""
    tiled = run_workflow(load_config(overrides={"out": str(tmp_path / "t"), "stations": 4,
                                                "stack_method": stack_method}))
    pair = run_workflow(load_config(overrides={"out": str(tmp_path / "p"), "stations": 4,
                                               "stack_method": stack_method, "tiled": False}))
    with open_results(tiled.results) as a, open_results(pair.results) as b:
        assert a.pairs() == b.pairs() and len(a.pairs()) == 6
        for s, r in a.pairs():
            want = b.stack(s, r)[1]
            assert np.max(np.abs(a.stack(s, r)[1] - want)) <= 1e-4 * np.max(np.abs(want))


def test_resume_of_a_complete_run_does_nothing(tmp_path):
    config = load_config(overrides={"out": str(tmp_path / "done"), "stations": 3})
    first = run_workflow(config)
    assert first.pairs_written == 3
    again = run_workflow(config.replace(resume=True))
    assert again.pairs_written == 0 and again.pairs_resumed == 3
    with open_results(again.results) as res:
        assert len(res.pairs()) == 3


@pytest.mark.parametrize("processes", [2, 3])
def test_every_worker_writes_its_own_stacks(tmp_path, processes):
    """The writer is placed once per worker (local streams), so no stack crosses processes."""
    from noisecorr.engine.plan import make_plan
    from noisecorr.workflow import build_workflow

    config = load_config(overrides={"out": str(tmp_path / "o"), "mapping": "multiprocess",
                                    "processes": processes})
    wf = build_workflow(config)
    plan = make_plan(wf.graph.describe(wf.inputs), processes)
    for pe in ("WriteResults", "TileStackPE", "TileCorrelatePE", "Preprocess"):
        assert plan.instances[pe] == processes, (pe, plan.instances)
        assert sorted(w for (name, _), w in plan.placement.items() if name == pe) == list(range(processes))
