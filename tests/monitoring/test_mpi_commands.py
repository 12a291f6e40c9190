"""`noisecorr dvv` and `noisecorr dispersion` under ``--mapping mpi``: the command re-launches
itself under the venv's own mpiexec (as `noisecorr run` does) and gives the same numbers as
the sequential mapping; only rank 0 writes and prints."""

import os
import subprocess
import sys

import numpy as np
import pytest

from noisecorr.cli import main
from noisecorr.monitoring import read
from noisecorr.results import ResultsWriter
from noisecorr.results.reader import open_results
from noisecorr.synth.dispersion import DispersionModel, diffuse_ccf

pytestmark = pytest.mark.mpi


def _noisecorr(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI_", "PMIX", "NOISECORR_MPI"))}
    proc = subprocess.run([sys.executable, "-m", "noisecorr", *args], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("method", ["stretching", "mwcs", "wavelet"])
def test_dvv_under_mpi_equals_sequential(substack_run, method):
    args = ["dvv", str(substack_run), "--method", method, "--coda-factor", "0", "--coda-start", "5",
            "--coda-length", "20"]
    assert main([*args, "--out", str(substack_run / f"seq_{method}")]) == 0
    text = _noisecorr(*args, "--mapping", "mpi", "-n", "3", "--out", str(substack_run / f"mpi_{method}"))
    assert text.count("network mean") == 1, "only rank 0 reports"
    seq = read(substack_run / f"seq_{method}" / "dvv.h5")
    par = read(substack_run / f"mpi_{method}" / "dvv.h5")
    assert par["pairs"] == seq["pairs"] and np.isfinite(seq["dvv"]).any()
    np.testing.assert_allclose(par["dvv"], seq["dvv"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(par["error"], seq["error"], rtol=1e-10)
    np.testing.assert_allclose(par["network"][0], seq["network"][0], rtol=0, atol=1e-12)


def test_dispersion_under_mpi_equals_sequential(tmp_path):
    fs = 2.0
    model = DispersionModel.linear_period(3.0, 0.03, 1.0)
    d = np.array([40.0, 150.0, 250.0, 350.0, 200.0])
    ccf = diffuse_ccf(d, model, fs, 300.0, band=(0.02, 0.04, 0.4, 0.8))
    ccf = ccf + 0.002 * np.random.default_rng(1).normal(size=ccf.shape).astype(np.float32)
    tables = {}
    for name, extra in (("seq", ["--mapping", "sequential"]), ("mpi", ["--mapping", "mpi", "-n", "2"])):
        path = tmp_path / name / "results.h5"
        path.parent.mkdir()
        with ResultsWriter(path, {}, sampling_rate=fs) as w:
            w.write_block(["XS.A"] * 5, ["XS.B", "XS.C", "XS.D", "XS.E", "XS.F"], "ZZ", 300.0, ccf,
                          {"n_windows": 10, "distance_km": d.tolist(), "sampling_rate": fs})
        args = ["dispersion", str(path), "--periods", "4,5,7,10,14,20", "--no-plots", *extra]
        if name == "seq":
            assert main(args) == 0
        else:
            assert _noisecorr(*args).count("trusted ") == 1, "only rank 0 reports"
        with open_results(path) as res:
            tables[name] = res.dispersion("ZZ")
    a, b = tables["seq"], tables["mpi"]
    assert a.trusted.sum() >= 10
    assert a.source.tolist() == b.source.tolist() and a.receiver.tolist() == b.receiver.tolist()
    for col in ("group_velocity", "phase_velocity", "snr", "snr_symmetric"):
        np.testing.assert_array_equal(getattr(b, col), getattr(a, col), err_msg=col)
    np.testing.assert_array_equal(b.flags, a.flags)
