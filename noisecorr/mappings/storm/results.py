"""Reading what the components leave in the output directory.

Each task writes ``<component>.<index>.result`` when its instance has finished (items of
unconnected outputs and counters, in the per-worker summary format of
:func:`~noisecorr.engine.result.merge_summaries`) or ``<component>.<index>.error`` (a pickled
:class:`~noisecorr.engine.errors.PEError`) when its PE failed.
"""

from __future__ import annotations

import os
import pickle

from noisecorr.engine.plan import Plan
from noisecorr.engine.result import merge_summaries


def expected_files(layout):
    """``[(pe, component, index)]`` of every task of the topology."""
    return [
        (pe, info["component"], i)
        for pe, info in layout["pes"].items()
        for i in range(info["parallelism"])
    ]


def first_error(output_dir, layout):
    """The :class:`PEError` of the first task (in topology order) that reported one, or ``None``."""
    for _, component, i in expected_files(layout):
        path = os.path.join(output_dir, f"{component}.{i}.error")
        if os.path.exists(path):
            with open(path, "rb") as f:
                return pickle.load(f)
    return None


def missing_results(output_dir, layout):
    """Tasks (``"component[index]"``) whose result file is not there yet."""
    return [
        f"{component}[{i}]"
        for _, component, i in expected_files(layout)
        if not os.path.exists(os.path.join(output_dir, f"{component}.{i}.result"))
    ]


def load_result(spec, layout, output_dir, mapping, wall):
    """Merge every task's result file into a :class:`~noisecorr.engine.result.RunResult`."""
    summaries = []
    for _, component, i in expected_files(layout):
        with open(os.path.join(output_dir, f"{component}.{i}.result"), "rb") as f:
            summaries.append(pickle.load(f))
    instances = {pe: info["parallelism"] for pe, info in layout["pes"].items()}
    plan = Plan(workers=sum(instances.values()), instances=instances, placement={})
    return merge_summaries(spec, plan, summaries, mapping, wall)
