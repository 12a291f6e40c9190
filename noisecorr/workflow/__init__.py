"""The ambient-noise cross-correlation workflow: configuration, graph, run, report.

>>> from noisecorr.workflow import load_config
>>> load_config(overrides={"mapping": "multiprocess", "cc_len": 900, "step": 450}).processing.cc_len
900.0

The names below are imported from their submodules on first access (PEP 562), so that
importing a submodule (``noisecorr.workflow.cli`` for ``noisecorr info`` or ``--help``) does
not import the graph builder and with it SciPy and ObsPy's signal package.
"""

import importlib

#: Public name -> submodule that defines it.
_SUBMODULE = {
    "Workflow": "build", "build_workflow": "build",
    "ConfigError": "config", "WorkflowConfig": "config", "load_config": "config",
    "Report": "runner", "run_workflow": "runner",
}

__all__ = ["ConfigError", "Report", "Workflow", "WorkflowConfig", "build_workflow", "load_config", "run_workflow"]


def __getattr__(name):
    if name in _SUBMODULE:
        value = getattr(importlib.import_module(f"{__name__}.{_SUBMODULE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
