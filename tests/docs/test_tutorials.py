"""The tutorials run as written: every bash and python block of each page, in order, in one
fresh folder per page (bash blocks through ``bash -euo pipefail``, python blocks in this
process with the page's blocks sharing one namespace). A block fails the test with its page
and line; the only blocks left out are those marked ``<!-- not-run: REASON -->``, and that
list is pinned below so it stays tiny."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from blocks import code_blocks, tutorial_files

BIN = str(Path(sys.executable).parent)

#: (page, reason) of every block that is not run; a new one must be added here on purpose.
NOT_RUN = {
    ("cluster.md", "sbatch needs a SLURM controller; tests/slurm runs these scripts on a real one"),
}


def run_page(path, workdir):
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
           "NOISECORR_REPO": str(path.parents[2]), "MPLBACKEND": "Agg"}
    namespace = {"__name__": "__main__"}
    ran = 0
    for lang, code, line, reason in code_blocks(path):
        where = f"{path.name}:{line + 1}"
        if reason is not None:
            assert (path.name, reason) in NOT_RUN, f"{where}: unlisted not-run block ({reason})"
            continue
        if lang == "bash":
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=workdir, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{where} failed ({proc.returncode}):\n{code}\n{proc.stdout}\n{proc.stderr}"
            ran += 1
        elif lang == "python":
            old, old_env = os.getcwd(), dict(os.environ)
            os.chdir(workdir)
            os.environ.update(env)
            try:
                exec(compile(code, where, "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"{where} failed: {exc!r}\n{code}") from exc
            finally:
                os.chdir(old)
                os.environ.clear()
                os.environ.update(old_env)
            ran += 1
    return ran


@pytest.mark.parametrize("path", tutorial_files(), ids=lambda p: p.name)
def test_tutorial_runs(path, tmp_path):
    assert run_page(path, tmp_path) > 0, f"{path.name} has no runnable block"


def test_not_run_list_is_what_the_pages_mark():
    marked = {(p.name, reason) for p in tutorial_files() for _, _, _, reason in code_blocks(p) if reason}
    assert marked <= NOT_RUN
