"""Benchmarks of the whole workflow and of the per-station preprocessing (issue 26).

Two commands, each printing medians of ``--repeats`` runs (>= 3) measured in the same
invocation, so before/after figures on a loaded machine are comparable:

``run``
    ``noisecorr run`` end to end on a synthetic network of ``--stations`` x ``--hours``
    (generated once under ``--cache`` and reused by later invocations), for each ``--step``.
    Prints, per step: wall time of the process; CPU use (user + system seconds of the whole
    process tree: the larger of ``resource.getrusage(RUSAGE_CHILDREN)`` and the summed
    ``/proc/PID/stat`` samples of every process seen in the tree, in % of wall: 200 % is both
    cores of a 2-core machine busy); peak memory of all processes (summed PSS, sampled by
    ``scripts/peak_memory.py``'s functions); every PE's seconds per worker (the engine's
    per-PE timings in ``summary.json``, summed over instances, divided by the workers) and the
    tile stages' seconds; the idle share of the workers (1 - busy PE seconds / (workers x
    engine wall)) and the run's own account of it (``summary.json`` ``idle``: the main cause
    and the seconds by cause, e.g. start-up, input waits, finished early); the fixed costs
    (interpreter start + imports of the run path, measured on its own; the runner's phases
    from ``summary.json`` ``phases``: building the workflow, i.e. sources, inventory and plan,
    the merge of the writers' parts and the record section; the rest of the process wall
    outside the engine: interpreter start, imports, configuration, summary, output); and pair-windows
    per second (pairs x mean accepted windows per channel-chunk, an estimate exact for a
    network without gaps, divided by the process wall time).

``preprocess``
    Seconds per station-day of fetch + preprocessing (detrend, taper, response removal,
    decimation when the data rate is above the target, bandpass) + windowing and time
    normalisation + spectra + whitening, for the working tree ("after") and for reference
    revisions ("before", ``--baseline`` repeatable, default the commit before issue 26's
    second round), each exported with ``git archive`` into the cache and run in a subprocess
    with ``PYTHONPATH`` pointing at it, alternately, in the same invocation. Prints each
    stage's median per tree and the speed-up of the working tree against each reference, in
    wall seconds and in CPU seconds of the (single-threaded) harness process, which a busy
    machine disturbs less than the wall time.

Examples::

    .venv/bin/python scripts/bench_workflow.py preprocess --stations 20 --hours 24
    .venv/bin/python scripts/bench_workflow.py preprocess --baseline 5b39ca5 --baseline HEAD~3
    .venv/bin/python scripts/bench_workflow.py run --stations 200 --hours 4 -m multiprocess -n 2
    .venv/bin/python scripts/bench_workflow.py run --stations 1000 --hours 24 -m mpi -n 2 \\
        --memory 8GB --step 1800 --step 450
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from peak_memory import memory, tree  # noqa: E402  (a sibling script, not a package)

#: The reference revision of ``preprocess``: the tree before issue 26's second round.
BASELINE_REV = "5b39ca5"


def _median(values):
    return statistics.median(values) if values else float("nan")


# ------------------------------------------------------------------------------- run
def _cpu_seconds(pid: int):
    """User + system CPU seconds of process ``pid`` itself (``/proc/PID/stat`` fields 14-15),
    or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakSampler(threading.Thread):
    """Summed PSS of a process tree, sampled every ``interval`` seconds; ``peak`` in bytes.

    Also ``cpu``: the CPU seconds of every process seen in the tree (the last sample of each),
    summed. ``RUSAGE_CHILDREN`` misses workers that their parent never waits for (a
    forkserver's children, MPI ranks under a process manager); the samples miss at most the
    last ``interval`` of each process. The benchmark reports the larger of the two."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._cpu = {}
        self._halt = threading.Event()

    @property
    def cpu(self) -> float:
        return sum(self._cpu.values())

    def run(self):
        while not self._halt.is_set():
            total = 0
            for p in tree(self.pid):
                total += memory(p)[0]
                c = _cpu_seconds(p)
                if c is not None:
                    self._cpu[p] = max(c, self._cpu.get(p, 0.0))
            self.peak = max(self.peak, total)
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()


def _config_file(folder: Path, args, step: float) -> Path:
    path = folder / f"bench_step{step:g}.yaml"
    lines = [f"synthetic_hours: {args.hours}", "processing:", f"  step: {step}", f"  cc_len: {args.cc_len}",
             f"  maxlag: {args.maxlag}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _noisecorr_argv(args, cfg: Path, out: Path) -> list:
    exe = Path(sys.executable).with_name("noisecorr")
    argv = [str(exe), "run", "--config", str(cfg), "--stations", str(args.stations), "-m", args.mapping,
            "--out", str(out)]
    if args.processes:
        argv += ["-n", str(args.processes)]
    if args.memory:
        argv += ["--memory", args.memory]
    return argv


def _prepare_data(args, cfg: Path):
    """Generate (or find in the cache) the synthetic network, outside any timing."""
    from noisecorr.workflow.config import load_config
    from noisecorr.workflow.sources import synthetic_network

    t = time.perf_counter()
    folder = synthetic_network(load_config(str(cfg), overrides={"stations": args.stations}))
    print(f"data: {folder} ({time.perf_counter() - t:.1f} s to generate or find)")


#: What ``noisecorr run`` imports before it starts: the CLI (lazy: no NumPy) and the run path
#: (workflow runner and builder, which bring NumPy, SciPy, ObsPy and the PEs).
RUN_IMPORTS = "import noisecorr.cli, noisecorr.workflow.runner, noisecorr.workflow.build"


def _import_seconds(repeats: int) -> float:
    """Median seconds of ``python -c RUN_IMPORTS`` (interpreter start + the run path's
    imports; ``import noisecorr.cli`` alone is lazy and stands for little of it)."""
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", RUN_IMPORTS], check=True)
        out.append(time.perf_counter() - t)
    return _median(out)


def _one_run(argv, cwd: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = PeakSampler(proc.pid)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(argv)} failed with exit {proc.returncode}:\n{err[-4000:]}")
    summary = json.loads((out / "summary.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": max(cpu, sampler.cpu), "cpu_rusage": cpu, "cpu_sampled": sampler.cpu, "peak": sampler.peak, "summary": summary}


def bench_run(args) -> int:
    cache = Path(args.cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    print(f"# noisecorr run: {args.stations} stations x {args.hours:g} h, mapping {args.mapping}, "
          f"-n {args.processes or 'default'}, memory {args.memory or 'default'}, cc_len {args.cc_len:g} s, "
          f"maxlag {args.maxlag:g} s; medians of {args.repeats} runs")
    t_import = _import_seconds(args.repeats)
    print(f"interpreter start + imports of the run path ({RUN_IMPORTS}): {t_import:.2f} s (median)")
    for step in args.step:
        cfg = _config_file(cache, args, step)
        old = os.getcwd()
        os.chdir(cache)
        try:
            _prepare_data(args, cfg)
        finally:
            os.chdir(old)
        out = cache / "runs" / f"n{args.stations}_h{args.hours:g}_step{step:g}"
        runs = [_one_run(_noisecorr_argv(args, cfg, out), cache, out) for _ in range(args.repeats)]
        _report(args, step, runs, t_import)
    return 0


def _report(args, step, runs, t_import):
    s = runs[-1]["summary"]
    workers = max(1, int(args.processes or s.get("config", {}).get("processes") or os.cpu_count() or 1))
    wall = _median([r["wall"] for r in runs])
    cpu = _median([100.0 * r["cpu"] / r["wall"] for r in runs])
    peak = _median([r["peak"] for r in runs])
    engine = _median([r["summary"]["timings"].get("wall", 0.0) for r in runs])
    inner = _median([r["summary"]["wall_seconds"] for r in runs])
    pe_names = [k for k in s["timings"] if k != "wall" and not k.startswith("tiles.")]
    tile_names = [k for k in s["timings"] if k.startswith("tiles.") and not k.endswith("gflops")]
    busy = _median([sum(r["summary"]["timings"].get(k, 0.0) for k in pe_names) for r in runs])
    idle = 1.0 - busy / (workers * engine) if engine > 0 else float("nan")
    channels = max(1, s["channels"] * max(1, s["chunks"]))
    pair_windows = s["pairs_written"] * s["windows_used"] / channels
    print(f"\n## step {step:g} s: {s['pairs_written']} pairs, {s['windows_used']} windows, "
          f"{workers} worker(s)")
    print(f"wall (process)           {wall:8.2f} s")
    ru = _median([100.0 * r["cpu_rusage"] / r["wall"] for r in runs])
    sampled = _median([100.0 * r["cpu_sampled"] / r["wall"] for r in runs])
    print(f"CPU use                  {cpu:8.0f} % of wall (waited children {ru:.0f} %, "
          f"sampled process tree {sampled:.0f} %)")
    print(f"peak memory (all procs)  {peak / 1e9:8.2f} GB PSS")
    print(f"engine wall              {engine:8.2f} s; workers idle {100 * idle:5.1f} % of workers x engine wall")
    why = s.get("idle") or {}
    if why:  # the run's own account (summary.json "idle"): seconds by cause, all workers
        causes = {k: _median([r["summary"].get("idle", {}).get("seconds", {}).get(k, 0.0) for r in runs])
                  for k in why["seconds"]}
        print(f"idle, by the run         {why['reason']} (last run)")
        print("  seconds by cause, all workers (median): "
              + ", ".join(f"{k} {v:.2f}" for k, v in sorted(causes.items(), key=lambda kv: -kv[1]) if v >= 0.005))
    print(f"fixed: start + imports   {t_import:8.2f} s")
    phases = {k: _median([r["summary"].get("phases", {}).get(k, 0.0) for r in runs])
              for k in (s.get("phases") or {}) if k != "engine"}
    if phases:  # the runner's own timing of its phases (summary.json "phases")
        print("fixed: in the run         " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
        print(f"fixed: the rest (interpreter, imports, configuration, summary, output) "
              f"{wall - engine - sum(phases.values()):6.2f} s")
    else:  # a tree from before the phases were recorded
        print(f"fixed: building the workflow (sources, inventory, plan) {inner - engine:6.2f} s")
        print(f"fixed: the rest (start, imports, config, merge of parts, record section, summary, output) "
              f"{wall - inner:6.2f} s")
    print(f"fixed share of wall      {100 * (wall - engine) / wall:8.1f} %")
    print(f"pair-windows per second  {pair_windows / wall:10.4g} (est. {pair_windows:.4g} pair-windows)")
    print("seconds per worker, by stage (PE own time summed over instances / workers):")
    for k in pe_names:
        v = _median([r["summary"]["timings"].get(k, 0.0) for r in runs])
        print(f"  {k:<28}{v / workers:9.3f}")
    for k in tile_names:
        v = _median([r["summary"]["timings"].get(k, 0.0) for r in runs])
        print(f"  {k:<28}{v / workers:9.3f}")
    print("runs (wall s / CPU %): " + ", ".join(f"{r['wall']:.1f}/{100 * r['cpu'] / r['wall']:.0f}" for r in runs))


# ------------------------------------------------------------------------------- preprocess
#: The per-station chain, run by ``python -c`` in the tree under test (its modules on PYTHONPATH).
STAGES_CODE = r"""
import json, sys, time
import numpy as np
from obspy import UTCDateTime, read_inventory
from obspy.clients.filesystem.sds import Client
import noisecorr
from noisecorr.signal.chain import whiten_spectra, window_and_normalise
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.preprocess import fetch_pad, preprocess_chunk
from noisecorr.signal.spectra import rfft_windows
from pes.fetch import FetchPE

root, start, hours = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
p = CorrelationParams()
inv = read_inventory(root + "/stations.xml")
fetch = FetchPE(Client(root + "/SDS"), pad=max(100.0, fetch_pad(p)))
fetch.write = lambda *a, **k: None   # the harness has no engine to route to
fetch.log = lambda *a, **k: None
sids = sorted({f"{n.code}.{s.code}.{c.location_code}.{c.code}" for n in inv for s in n for c in s})
t1, t2 = start, start + hours * 3600.0
seconds = dict.fromkeys(("fetch", "preprocess", "windows+time_norm", "spectra", "whitening"), 0.0)
cpu = dict.fromkeys(seconds, 0.0)
clock = {}


def tic():
    clock["wall"], clock["cpu"] = time.perf_counter(), time.process_time()


def toc(stage):
    seconds[stage] += time.perf_counter() - clock["wall"]
    cpu[stage] += time.process_time() - clock["cpu"]


check = 0.0
for sid in sids:
    tic(); item = fetch._process({"seed_id": sid, "starttime": t1, "endtime": t2}); toc("fetch")
    tic(); tr = preprocess_chunk(item["stream"], t1, t2, p, inventory=inv, seed_id=sid); toc("preprocess")
    tic(); win, x = window_and_normalise(tr, p); toc("windows+time_norm")
    tic(); spec = rfft_windows(x, p.nfft); toc("spectra")
    tic(); white = whiten_spectra(spec, p, p.nfft); toc("whitening")
    check += float(np.abs(white).sum())
days = len(sids) * (hours / 24.0)
print(json.dumps({"per_station_day": {k: v / days for k, v in seconds.items()},
                  "cpu_per_station_day": {k: v / days for k, v in cpu.items()},
                  "stations": len(sids), "check": check, "module": noisecorr.__file__}))
"""


def _reference_tree(rev: str, cache: Path) -> Path:
    sha = subprocess.run(["git", "rev-parse", rev], cwd=REPO, check=True, capture_output=True,
                         text=True).stdout.strip()
    folder = cache / f"tree_{sha[:12]}"
    if not (folder / "noisecorr").is_dir():
        tmp = Path(tempfile.mkdtemp(dir=cache))
        archive = subprocess.run(["git", "archive", sha, "noisecorr", "pes"], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        tmp.rename(folder)
    return folder


def _stages(tree_root: Path, data: Path, start: float, hours: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree_root), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", STAGES_CODE, str(data), str(start), str(hours)], env=env,
                         check=True, capture_output=True, text=True, cwd=tree_root).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not result["module"].startswith(str(tree_root)):
        raise SystemExit(f"the harness imported {result['module']}, not the tree under test {tree_root}")
    return result


def bench_preprocess(args) -> int:
    from noisecorr.synth import write_network

    cache = Path(args.cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    data = cache / f"pre_n{args.stations}_h{args.hours:g}"
    archive = write_network(data, n_stations=args.stations, hours=args.hours, seed=0)
    start = float(__import__("obspy").UTCDateTime(archive.manifest["starttime"]).timestamp)
    trees = {rev: _reference_tree(rev, cache) for rev in args.baseline}
    trees["after"] = REPO
    results = {k: [] for k in trees}
    for _ in range(args.repeats):          # alternate, so all trees see the same load
        for name, root in trees.items():
            results[name].append(_stages(root, data, start, args.hours))
    print(f"# preprocessing per station-day: {args.stations} stations x {args.hours:g} h at "
          f"{archive.manifest['parameters']['sampling_rate']:g} Hz, default parameters; before = "
          f"{', '.join(args.baseline)}, after = working tree; medians of {args.repeats} alternated runs, "
          f"seconds; speed-up of after against each before")
    stages = list(results["after"][0]["per_station_day"])

    def row(label, values):
        a = values["after"]
        print(f"{label:<22}" + "".join(f"{values[name]:11.4f}" for name in trees)
              + "".join(f"{values[rev] / a if a > 0 else float('nan'):11.2f}x" for rev in args.baseline))

    for field, title in (("per_station_day", "wall seconds"), ("cpu_per_station_day", "CPU seconds (process)")):
        print(f"{title:<22}" + "".join(f"{name[:10]:>11}" for name in trees)
              + "".join(f"{'x ' + rev[:8]:>12}" for rev in args.baseline))
        for st in stages:
            row(st, {name: _median([r[field][st] for r in results[name]]) for name in trees})
        row("total", {name: _median([sum(r[field].values()) for r in results[name]]) for name in trees})
    ca = results["after"][0]["check"]
    for rev in args.baseline:
        cb = results[rev][0]["check"]
        print(f"check sum of |whitened spectra|: {rev} {cb:.8g}, after {ca:.8g} (relative difference "
              f"{abs(cb - ca) / abs(cb):.2g})")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="noisecorr run end to end")
    r.add_argument("--stations", type=int, default=200)
    r.add_argument("--hours", type=float, default=4.0)
    r.add_argument("-m", "--mapping", default="multiprocess")
    r.add_argument("-n", "--processes", type=int, default=2)
    r.add_argument("--memory", default=None)
    r.add_argument("--step", type=float, action="append", help="seconds, repeatable (default 450)")
    r.add_argument("--cc-len", type=float, default=1800.0)
    r.add_argument("--maxlag", type=float, default=200.0)
    r.add_argument("--repeats", type=int, default=3)
    r.add_argument("--cache", default="bench_cache", help="folder for the synthetic input and the runs")
    p = sub.add_parser("preprocess", help="per-station preprocessing, before vs after")
    p.add_argument("--stations", type=int, default=20)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--baseline", action="append",
                   help=f"git revision of a 'before' tree, repeatable (default {BASELINE_REV})")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cache", default="bench_cache")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.command == "preprocess":
        args.baseline = args.baseline or [BASELINE_REV]
    if args.command == "run":
        args.step = args.step or [450.0]
        return bench_run(args)
    return bench_preprocess(args)


if __name__ == "__main__":
    sys.exit(main())
