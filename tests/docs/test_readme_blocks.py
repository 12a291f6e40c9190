"""Every bash and python block of README.md runs as written (issue 24), each in a fresh folder:
bash blocks through ``bash -euo pipefail``, python blocks as a script in a subprocess (the
process-based mappings need a ``__main__`` file). No runnable block needs a file made by an
earlier one. The blocks that are not run are marked ``<!-- not-run: REASON -->`` in the README
and pinned in ``NOT_RUN`` below, so a new one must be added on purpose. Some blocks also have
their output checked (``CHECKS``); the dispersion block's is in
``tests/dispersion/test_readme_dispersion.py``."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blocks import ROOT, code_blocks

README = ROOT / "README.md"
BIN = str(Path(sys.executable).parent)

#: (first line of the block, reason) of every README block that is not run.
NOT_RUN = {
    ("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/noisecorr run",
     "it makes a virtual environment and runs the whole test suite; bash .ci/run runs it in CI"),
    ("noisecorr run                                         # bundled sample, sequential",
     "/archive/SDS and stations.xml stand for your own archive, and 1000 stations over MPI take many minutes"),
    ("noisecorr export results.h5 --format sac --out sac/ --component ZZ --min-distance 50 --symmetric",
     "results.h5, XS.A_XS.B and STACK/ stand for your own results file, pair and NoisePy stacks"),
    ("noisecorr dispersion out/results.h5 --periods 2,3,5,8,12,20   # table, CSV and plots",
     "out/results.h5 stands for your own run; the python block below runs the same analysis on synthetic stacks"),
    ("noisecorr enact MODULE[:ATTR] --mapping multiprocess -n 4 -i 10         # or FILE.py[:ATTR]",
     "MODULE[:ATTR] and my_workflow.py stand for your own workflow"),
    ('noisecorr registry keygen --name "Ada Lovelace"                     # once: your signing key',
     "my_pes.py and the lab workspace stand for your own PEs, and keygen writes your key into ~/.config"),
    ("noisecorr registry keygen                     # ~/.config/noisecorr/signing_key (mode 0600) + signing_key.pub",
     "colleague.pub and the lab entries stand for your own, and keygen writes your key into ~/.config"),
    ("noisecorr run --provenance                       # lineage into noisecorr_output/provenance.sqlite",
     "RUN stands for a run id, and prov serve runs until it is stopped"),
    ("noisecorr run --mapping dask -n 4                           # a LocalCluster of 4 worker processes",
     "tcp://host:8786 stands for a running dask scheduler, and my_workflow.py for your own workflow"),
    ("noisecorr slurm mpi --profile supermuc-ng --partition micro --nodes 4 --account pr12ab \\",
     "submitting to sbatch needs a SLURM controller, and /hppfs/.../SDS stands for your archive on the cluster"),
    ("python scripts/bench_engine.py --mapping sequential --items 200000",
     "benchmarks of 200,000 items and 200 to 300 stations, many minutes each on a shared machine"),
}


def readme_blocks():
    """``[(language, code, line, reason), ...]`` of the README's bash and python blocks."""
    return [b for b in code_blocks(README) if b[0] in ("bash", "python")]


def runnable():
    return [pytest.param(lang, code, id=f"README.md:{line + 1}")
            for lang, code, line, reason in readme_blocks() if reason is None]


def run_block(lang, code, folder):
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", ""), "MPLBACKEND": "Agg"}
    if lang == "bash":
        argv = ["bash", "-euo", "pipefail", "-c", code]
    else:
        (folder / "block.py").write_text(code)
        argv = [sys.executable, "block.py"]
    return subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def check_clip(stdout, folder):
    lines = [line.split() for line in stdout.strip().splitlines()]
    assert len(lines) == 6 and all(line[0].startswith("XS.S000") for line in lines)  # 4 stations: 6 pairs
    assert (folder / "clipped" / "results.h5").exists()


def check_count(stdout, folder):
    words = "the quick brown fox jumps over the lazy dog".split()
    assert str(sorted({w: words.count(w) for w in words}.items())) in stdout


def check_dvv(stdout, folder):
    # truth: dv/v = 0 on days 0 and 1, -0.2 % from day 2 on (step=(2, -0.002))
    dvv = np.array(re.findall(r"-?\d+\.?\d*", stdout.strip().splitlines()[-1]), dtype=float)
    np.testing.assert_allclose(dvv, [0, 0, -0.2, -0.2, -0.2], atol=0.02)


def check_survey(stdout, folder):
    # the synthetic network has no velocity change: the network dv/v of every window is ~0
    assert (folder / "survey" / "results.h5").exists()
    rows = list(csv.DictReader((folder / "survey" / "dvv" / "dvv_network.csv").open()))
    rows = [r for r in rows if int(r["n_pairs"]) > 0]  # a window with no pair has no estimate
    assert len(rows) >= 2
    assert all(abs(float(r["dvv_percent"])) < 0.05 for r in rows), rows


def check_storm(stdout, folder):
    assert "topo/topology.yaml: valid" in stdout
    assert (folder / "topo" / "topology.jar").exists()


#: a string that picks out one runnable block -> the check of its stdout and folder
CHECKS = {
    "class Clip(IterativePE)": check_clip,
    "class Count(GenericPE)": check_count,
    "dvv_model(5, step=(2, -0.002))": check_dvv,
    "noisecorr dvv survey --stored-reference": check_survey,
    "noisecorr storm validate topo/topology.yaml": check_storm,
}


@pytest.mark.parametrize("lang, code", runnable())
def test_readme_block_runs(lang, code, tmp_path):
    proc = run_block(lang, code, tmp_path)
    assert proc.returncode == 0, f"failed ({proc.returncode}):\n{code}\n{proc.stdout}\n{proc.stderr}"
    for marker, check in CHECKS.items():
        if marker in code:
            check(proc.stdout, tmp_path)


def test_not_run_list_is_what_the_readme_marks():
    marked = {(code.splitlines()[0], reason) for _, code, _, reason in readme_blocks() if reason}
    assert marked == NOT_RUN


def test_every_check_finds_one_runnable_block():
    codes = [code for _, code, _, reason in readme_blocks() if reason is None]
    for marker in CHECKS:
        assert sum(marker in code for code in codes) == 1, marker


def test_every_python_block_runs():
    # the README's python examples (the own PE, dispersion, dv/v, the engine) are never left out
    reasons = [reason for lang, _, _, reason in readme_blocks() if lang == "python"]
    assert len(reasons) >= 4 and reasons == [None] * len(reasons)
