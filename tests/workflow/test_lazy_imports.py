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
#: What no command's own help needs: plotting, HDF5, ObsPy (whose ``obspy.signal`` imports
#: matplotlib), SciPy's signal package and the MPI, Dask and web extras.
NOT_FOR_HELP = ("matplotlib", "h5py", "obspy", "scipy.signal", "mpi4py", "distributed", "dask", "flask")

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


def _modules_after_main(argv) -> set:
    return _modules_after("from noisecorr.cli import main\n"
                          f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass")


def _command_modules() -> set:
    from noisecorr.cli import LAZY_COMMANDS

    return {module for module, _, _ in LAZY_COMMANDS.values()}


def test_cli_help_imports_no_command_module_and_no_heavy_package():
    modules = _modules_after_main(["--help"])
    assert "noisecorr.cli" in modules
    assert _top_level(modules).isdisjoint(HEAVY), sorted(_top_level(modules) & set(HEAVY))
    assert modules.isdisjoint(_command_modules()), sorted(modules & _command_modules())
    assert "noisecorr.workflow" not in modules


def _first_command_of_each_module():
    from noisecorr.cli import LAZY_COMMANDS

    firsts = {}
    for name, (module, _, _) in sorted(LAZY_COMMANDS.items()):
        firsts.setdefault(module, name)
    return sorted(firsts.items())


@pytest.mark.parametrize("module, name", _first_command_of_each_module())
def test_command_help_imports_only_that_commands_module(module, name):
    modules = _modules_after_main([name, "--help"])
    assert module in modules
    assert modules & _command_modules() == {module}
    heavy = {m for m in modules if any(m == p or m.startswith(p + ".") for p in NOT_FOR_HELP)}
    assert not heavy, sorted(heavy)[:10]


def test_the_probe_sees_a_heavy_import():
    """Control: the same probe reports matplotlib once something imports it."""
    modules = _modules_after("import noisecorr.cli\nimport matplotlib")
    assert "matplotlib" in _top_level(modules)
