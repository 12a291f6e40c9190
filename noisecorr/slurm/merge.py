"""Combine the per-task results of a job array into the final stacks.

Each array task ran ``noisecorr run`` over its own time span and wrote ``results.h5``: per pair
the linear stack ``s_k = (sum of the task's window CCFs) / n_k`` (float32) and ``n_windows``
``n_k``. The stack of the whole span is the window-weighted mean::

    s = (sum_k n_k * s_k) / (sum_k n_k)          (float64 accumulation, stored as float32)

which is what one run over the whole span computes when the tasks see the same windows: the
task spans are whole multiples of the workflow's ``chunk_length`` and start on the run's chunk
grid (``noisecorr slurm array`` refuses anything else), so every chunk is preprocessed and
windowed exactly as in the single run. The only difference is rounding: the task stacks are
stored as float32, so the merged stack matches a single run's to a few float32 ulps
(relative 1e-6 of the pair's peak is a safe bound); ``n_windows`` matches exactly.

Phase-weighted and robust stacks (and substacks) are not linear in the windows and are
refused.

Examples
--------
>>> import numpy as np
>>> weighted_mean([np.array([1.0, 2.0], "f4"), np.array([4.0, 8.0], "f4")], [1, 2])
(array([3., 6.], dtype=float32), 3)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import MergeError

log = logging.getLogger(__name__)

RESULTS = "results.h5"
SUMMARY = "summary.json"
#: Pair attributes recomputed by the writer (coordinates and geometry from the station table)
#: or set from the merged values.
_RECOMPUTED = {"source", "receiver", "component", "source_coordinates", "receiver_coordinates", "distance_km",
               "azimuth", "back_azimuth", "n_windows", "starttime", "endtime", "complete", "maxlag",
               "sampling_rate", "reversed_from"}


def weighted_mean(stacks, counts):
    """``(sum_k n_k s_k / sum_k n_k, sum_k n_k)`` in float64, returned as float32.

    A total of zero windows gives zeros (as a run's stack of zero windows does).
    """
    total = int(sum(int(n) for n in counts))
    acc = np.zeros(np.shape(stacks[0]), dtype=np.float64)
    for s, n in zip(stacks, counts):
        if n:
            acc += float(n) * np.asarray(s, dtype=np.float64)
    if total:
        acc /= total
    return acc.astype(np.float32), total


@dataclass
class MergeReport:
    out: str
    results: str
    tasks: int
    pairs: int
    windows: int
    start: str
    end: str
    wall_seconds: float
    task_folders: list = field(default_factory=list)

    def table(self) -> str:
        return "\n".join([
            f"{'tasks merged':<22}{self.tasks}",
            f"{'span':<22}{self.start} to {self.end}",
            f"{'pairs':<22}{self.pairs}",
            f"{'windows used':<22}{self.windows}",
            f"{'wall time':<22}{self.wall_seconds:.1f} s",
            f"{'results':<22}{self.results}",
        ])


def find_tasks(folders, expected: int | None = None) -> list:
    """The task result files: each folder is a task folder (with ``results.h5``) or a folder
    of ``task-NNNN`` task folders. With ``expected``, exactly ``task-0000..task-(expected-1)``
    must be there."""
    found = []
    for folder in folders:
        folder = Path(folder)
        if (folder / RESULTS).exists() or Path(str(folder / RESULTS) + ".parts").exists():
            found.append(folder)
        elif folder.is_dir():
            found.extend(sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("task-")))
        else:
            raise MergeError(f"{folder}: no such folder")
    if expected is not None:
        names = {p.name for p in found}
        missing = [f"task-{i:04d}" for i in range(expected) if f"task-{i:04d}" not in names]
        if missing:
            raise MergeError(f"{len(missing)} of {expected} task folder(s) missing: {', '.join(missing[:10])}"
                             f"{' ...' if len(missing) > 10 else ''} (did those array tasks fail? see the logs)")
        if len(found) != expected:
            raise MergeError(f"expected {expected} task folders, found {len(found)}: "
                             f"{', '.join(p.name for p in found)}")
    if not found:
        raise MergeError(f"no task results in {', '.join(map(str, folders))}")
    return found


def _check_task(folder: Path):
    path = folder / RESULTS
    if Path(str(path) + ".parts").exists():
        raise MergeError(f"{folder}: the task did not finish (checkpoint parts left in {path}.parts); "
                         "run its array task again (it resumes)")
    if not path.exists():
        raise MergeError(f"{folder}: no {RESULTS}; the task did not finish")
    return path


def merge_tasks(folders, out, start=None, end=None, expected: int | None = None, plot: bool = True) -> MergeReport:
    """Merge the results of array tasks into ``out/results.h5`` (atomically; rerun-safe).

    Parameters
    ----------
    folders : list of paths
        Task folders, or folders holding ``task-NNNN`` folders.
    out : path
        Folder of the final ``results.h5`` (and ``summary.json``, ``record_section.png``).
    start, end : str, optional
        The span the tasks must cover, back to back, with no gap or overlap.
    expected : int, optional
        Number of tasks (``task-0000`` .. ``task-<expected-1>``).

    Raises
    ------
    MergeError
        A task is missing or unfinished, spans overlap or leave gaps, parameters differ, a
        pair is incomplete, or the stacks are not linear.
    """
    from obspy import UTCDateTime

    from noisecorr.results import ResultsWriter, open_results
    from noisecorr.workflow.runner import output_lock

    t0 = time.perf_counter()
    tasks = find_tasks(folders, expected)
    paths = [_check_task(f) for f in tasks]
    opened = [open_results(p) for p in paths]
    try:
        params = opened[0].params
        for res, p in zip(opened, paths):
            if json.dumps(res.params, sort_keys=True) != json.dumps(params, sort_keys=True):
                raise MergeError(f"{p} was computed with different parameters from {paths[0]}; refusing to mix runs")
        proc = params.get("processing", {})
        if proc.get("stack_method", "linear") != "linear" or proc.get("substack"):
            raise MergeError(f"stack_method {proc.get('stack_method')!r}"
                             f"{' with substacks' if proc.get('substack') else ''}: only linear stacks without "
                             "substacks can be merged from per-task results")
        order = sorted(range(len(opened)), key=lambda i: UTCDateTime(opened[i].starttime))
        opened = [opened[i] for i in order]
        paths = [paths[i] for i in order]
        for a, b, pa, pb in zip(opened, opened[1:], paths, paths[1:]):
            if UTCDateTime(a.endtime) != UTCDateTime(b.starttime):
                what = "overlap" if UTCDateTime(a.endtime) > UTCDateTime(b.starttime) else "leave a gap"
                raise MergeError(f"{pa.parent} ({a.starttime} to {a.endtime}) and {pb.parent} ({b.starttime} to "
                                 f"{b.endtime}) {what}; the tasks must tile the span back to back")
        first, last = UTCDateTime(opened[0].starttime), UTCDateTime(opened[-1].endtime)
        if start is not None and UTCDateTime(start) != first:
            raise MergeError(f"the tasks start at {first}, not at --start {UTCDateTime(start)} (first task missing?)")
        if end is not None and UTCDateTime(end) != last:
            raise MergeError(f"the tasks end at {last}, not at --end {UTCDateTime(end)} (last task missing?)")

        stations = {}
        for res in opened:
            for st in res.stations():
                stations[st["code"]] = st
        have = [{(s, r, c) for c in res.components() for s, r in res.pairs(c)} for res in opened]
        keys = sorted(set().union(*have))
        compression = _compression(paths[0])

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        final = out / RESULTS
        tmp = out / (RESULTS + ".merging")
        with output_lock(out):
            for leftover in (tmp, Path(str(tmp) + ".parts"), Path(str(tmp) + ".tmp")):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                elif leftover.exists():
                    leftover.unlink()
            windows = 0
            with ResultsWriter(tmp, params, stations=list(stations.values()), starttime=str(first), endtime=str(last),
                               compression=compression, resume=False) as writer:
                for s, r, c in keys:
                    stacks, counts, metas = [], [], []
                    for res, p, held in zip(opened, paths, have):
                        if (s, r, c) not in held:
                            continue
                        meta = res.meta(s, r, c)
                        if not meta.get("complete", True):
                            raise MergeError(f"{p}: pair {s}-{r} {c} is incomplete; rerun that array task")
                        stacks.append(res.stack(s, r, c)[1])
                        counts.append(int(meta.get("n_windows", 0) or 0))
                        metas.append(meta)
                    stack, n = weighted_mean(stacks, counts)
                    windows += n
                    meta = {k: v for k, v in metas[0].items() if k not in _RECOMPUTED}
                    meta.update(n_windows=n, sampling_rate=metas[0]["sampling_rate"])
                    t1 = [m["starttime"] for m in metas if m.get("starttime")]
                    t2 = [m["endtime"] for m in metas if m.get("endtime")]
                    if t1:
                        meta["starttime"] = str(min(UTCDateTime(t) for t in t1))
                    if t2:
                        meta["endtime"] = str(max(UTCDateTime(t) for t in t2))
                    writer.write_pair(s, r, c, float(metas[0]["maxlag"]), stack, meta)
            os.replace(tmp, final)
    finally:
        for res in opened:
            res.close()
    report = MergeReport(out=str(out), results=str(final), tasks=len(paths), pairs=len(keys), windows=windows,
                         start=str(first), end=str(last), wall_seconds=time.perf_counter() - t0,
                         task_folders=[str(p.parent) for p in paths])
    if plot and keys:
        _plot(final, out)
    summary = out / (SUMMARY + ".tmp")
    summary.write_text(json.dumps({"merged": report.__dict__, "params": params}, indent=1, default=str))
    os.replace(summary, out / SUMMARY)
    log.info("merged %d tasks, %d pairs, %d windows into %s", report.tasks, report.pairs, windows, final)
    return report


def _compression(path: Path):
    import h5py

    with h5py.File(path, "r") as f:
        found = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                found.append(obj.compression)
                return True
            return None

        if "pairs" in f:
            f["pairs"].visititems(visit)
        return found[0] if found else None


def _plot(results: Path, out: Path) -> None:
    from noisecorr.results import open_results
    from noisecorr.results.plot import record_section

    with open_results(results) as res:
        comp = res.components()[0]
        far = max((res.meta(a, b, comp).get("distance_km") or 0.0) for a, b in res.pairs(comp))
        maxlag = float(res.params.get("processing", {}).get("maxlag", 200.0))
        record_section(res, component=comp, path=str(out / "record_section.png"),
                       maxlag=min(maxlag, max(10.0, 1.3 * far / 2.0)),
                       title=f"Record section {comp}, {len(res.pairs(comp))} pairs (merged)")
