"""The sequential mapping: every PE instance in this process.

It runs the very same loop as the parallel mappings (:class:`~noisecorr.engine.runtime.Worker`)
with a transport that has no remote workers, so debugging a workflow here debugs the real
thing, and its outputs define the correct answer the other mappings must reproduce.
"""

from __future__ import annotations

import time

from noisecorr.engine.plan import make_plan
from noisecorr.engine.result import ProgressAggregator, merge_summaries
from noisecorr.engine.runtime import Worker

NAME = "sequential"


def enact(spec, processes=None, mapping_name=NAME, progress=None, provenance=None, **options):
    """Run ``spec`` in this process and return a :class:`~noisecorr.engine.result.RunResult`.

    ``progress``, if given, is called about twice a second with ``{pe: {"in": n, "out": n}}``;
    ``provenance`` (a :class:`noisecorr.provenance.Session`) records lineage.
    """
    if options:
        raise TypeError(f"unknown option(s) for the sequential mapping: {sorted(options)}")
    t0 = time.perf_counter()
    plan = make_plan(spec, 1)
    hook = ProgressAggregator(progress) if progress is not None else None
    summary = Worker(spec, plan, 0, progress=hook, provenance=provenance).run()
    return merge_summaries(spec, plan, [summary], NAME, time.perf_counter() - t0)
