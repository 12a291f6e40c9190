"""Faults during `noisecorr run` end promptly with a clear error and no hang; what was
complete stays readable, and --resume finishes with results equal to an uninterrupted run."""

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from noisecorr import open_results

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "sample_reference.npz"

pytestmark = pytest.mark.timeout(300)


def cli(*args, **kwargs):
    return [sys.executable, "-m", "noisecorr", *args]


def assert_equals_reference(results):
    ref = np.load(REFERENCE)
    with open_results(results) as res:
        assert len(res.pairs("ZZ")) == 15
        for a, b in res.pairs("ZZ"):
            want = ref[f"{a}|{b}|ZZ"]
            assert np.max(np.abs(res.stack(a, b)[1] - want)) <= 1e-4 * np.max(np.abs(want))


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:  # the process ended between pgrep and the read
        return ""


def wait_for_workers(proc, n, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = [p for p in children(proc.pid)
                   if "multiprocessing" in _cmdline(p) and "resource_tracker" not in _cmdline(p)]
        if len(workers) >= n:
            return workers
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before its workers started: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("workers did not start")


def resume_and_check(out):
    proc = subprocess.run(cli("-q", "run", "--out", str(out), "--resume"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_equals_reference(out / "results.h5")


def test_worker_killed_mid_run_then_resume(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(cli("-q", "run", "-m", "multiprocess", "-n", "2", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = wait_for_workers(proc, 2)
    time.sleep(0.5)
    os.kill(workers[-1], signal.SIGKILL)
    _, err = proc.communicate(timeout=240)  # hang guard: the run must end by itself, failed
    assert proc.returncode == 1, err
    assert "killed by SIGKILL" in err and "PE '" in err
    resume_and_check(out)


def test_sigterm_mid_run_then_resume(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(cli("-q", "run", "-m", "multiprocess", "-n", "2", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_workers(proc, 2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err
    deadline = time.monotonic() + 60  # a bound on waiting for the workers to be reaped
    while children(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert children(proc.pid) == []
    resume_and_check(out)


def _small_files():
    # a "full disk": writes past 64 KB fail with EFBIG instead of killing the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_write_error_is_reported_then_resume(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(cli("-q", "run", "--out", str(out)), capture_output=True, text=True, timeout=300,
                          preexec_fn=_small_files)
    assert proc.returncode == 1, proc.stderr
    assert "PE 'WriteResults'" in proc.stderr and "File too large" in proc.stderr
    assert not (out / "results.h5").exists(), "no half-written results file may appear"
    resume_and_check(out)


def test_two_runs_on_one_output_folder_are_refused(tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(cli("-q", "run", "-m", "multiprocess", "-n", "2", "--out", str(out)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_workers(first, 1)
    second = subprocess.run(cli("-q", "run", "--out", str(out), "--resume"), capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 2
    assert "in use by another run" in second.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert_equals_reference(out / "results.h5")
