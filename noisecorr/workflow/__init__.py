"""The ambient-noise cross-correlation workflow: configuration, graph, run, report.

>>> from noisecorr.workflow import load_config
>>> load_config(overrides={"mapping": "multiprocess", "cc_len": 900, "step": 450}).processing.cc_len
900.0
"""

from .build import Workflow, build_workflow
from .config import ConfigError, WorkflowConfig, load_config
from .runner import Report, run_workflow

__all__ = ["ConfigError", "Report", "Workflow", "WorkflowConfig", "build_workflow", "load_config", "run_workflow"]
