"""Fixed cost of the command line (issue 26): importing ``noisecorr.cli``, and asking it for
help, must not pull in the heavy or optional packages a given command may never use.

Behaviour, not time: each check runs a fresh interpreter and reads its ``sys.modules``.
"""

import json
import subprocess
import sys

import pytest

#: Packages the CLI's import must leave alone: plotting, the MPI/Dask/web extras, and the
#: numerical stack (each costs tenths of a second to import; commands import what they use).
HEAVY = ("matplotlib", "mpi4py", "distributed", "dask", "flask", "obspy", "scipy", "h5py", "numpy")
#: What no command's help needs (``main`` imports ``noisecorr.workflow.build`` today, and with it
#: NumPy, ObsPy and SciPy; the plotting, MPI, Dask and web extras stay out).
EXTRAS = ("matplotlib", "mpi4py", "distributed", "dask", "flask")

_PROBE = r"""
import json, sys
{body}
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(body: str) -> set:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(body=body)], check=True,
                         capture_output=True, text=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def _top_level(modules: set) -> set:
    return {m.split(".")[0] for m in modules}


def test_importing_the_cli_does_not_import_heavy_packages():
    modules = _modules_after("import noisecorr.cli")
    assert "noisecorr.cli" in modules            # the probe really imported it
    assert _top_level(modules).isdisjoint(HEAVY), sorted(_top_level(modules) & set(HEAVY))


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_cli_help_does_not_import_heavy_packages(argv):
    body = ("from noisecorr.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass")
    modules = _modules_after(body)
    assert "noisecorr.cli" in modules
    assert _top_level(modules).isdisjoint(EXTRAS), sorted(_top_level(modules) & set(EXTRAS))


def test_the_probe_sees_a_heavy_import():
    """Control: the same probe reports matplotlib once something imports it."""
    modules = _modules_after("import noisecorr.cli\nimport matplotlib")
    assert "matplotlib" in _top_level(modules)
