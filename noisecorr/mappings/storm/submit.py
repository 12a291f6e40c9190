"""Run a packaged topology with a local Storm installation (``storm local``).

The topology runs in Storm's in-process local cluster for at most ``--local-ttl`` seconds;
this module watches ``noisecorr.output.dir`` meanwhile and stops Storm as soon as every task
has written its result (the workflow has ended) or one has written an error.
"""

from __future__ import annotations

import glob
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from noisecorr.engine.errors import EngineError, MappingError

from . import results
from .package import FLUX_MAIN

log = logging.getLogger("noisecorr.engine.storm")


def find_flux_jars(storm, flux_jars=None):
    """The ``flux-core`` and ``flux-wrappers`` jars to pass with ``--jars``.

    Looked up in ``flux_jars``, then ``NOISECORR_FLUX_JARS`` (comma-separated), then the Storm
    installation (``<STORM_HOME>/external/flux``, ``<STORM_HOME>/extlib``); raises
    :class:`MappingError` naming what to provide when none is found.
    """
    if flux_jars:
        jars = list(flux_jars)
    elif os.environ.get("NOISECORR_FLUX_JARS"):
        jars = [j for j in os.environ["NOISECORR_FLUX_JARS"].split(",") if j]
    else:
        home = Path(os.environ.get("STORM_HOME") or Path(os.path.realpath(storm)).parent.parent)
        jars = sorted(glob.glob(str(home / "external" / "flux" / "flux-*.jar")) +
                      glob.glob(str(home / "extlib" / "flux-*.jar")))
        jars = [j for j in jars if "examples" not in os.path.basename(j)]
    missing = [j for j in jars if not os.path.isfile(j)]
    if missing or not any("flux-core" in os.path.basename(j) for j in jars):
        raise MappingError(
            "Storm was found but not the Flux jars (flux-core and flux-wrappers of your Storm "
            f"version{'; missing: ' + ', '.join(missing) if missing else ''}); pass "
            "flux_jars=[...] or set NOISECORR_FLUX_JARS=/path/flux-core-X.jar,/path/flux-wrappers-X.jar"
        )
    return jars


def local_command(storm, pkg, jars, ttl):
    """``storm local --local-ttl TTL --jars ... topology.jar org.apache.storm.flux.Flux topology.yaml``."""
    return [storm, "local", "--local-ttl", str(int(ttl)), "--jars", ",".join(jars), str(pkg.jar), FLUX_MAIN,
            str(pkg.yaml)]


def run_local(spec, pkg, storm, flux_jars=None, ttl=600, timeout=600, mapping_name="storm", poll=0.2):
    """Run ``pkg`` with ``storm local``; return the ``RunResult`` once every task has finished."""
    jars = find_flux_jars(storm, flux_jars)
    command = local_command(storm, pkg, jars, ttl)
    log_path = pkg.root / "storm-local.log"
    log.info("running %s", " ".join(command))
    t0 = time.perf_counter()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(command, cwd=pkg.root, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            offset = 0
            while True:
                err = results.first_error(pkg.output_dir, pkg.layout)
                if err is not None:
                    raise err
                if not results.missing_results(pkg.output_dir, pkg.layout):
                    break
                if proc.poll() is not None:
                    raise EngineError(
                        f"'storm local' exited with status {proc.returncode} before the workflow finished "
                        f"(unfinished tasks: {', '.join(results.missing_results(pkg.output_dir, pkg.layout))})"
                        f"{_tail(log_path)}")
                offset, died = _scan_log(log_path, offset)
                if died:
                    raise EngineError(f"a shell component died in Storm ({died.strip()}); the workflow cannot "
                                      f"finish{_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise EngineError(
                        f"the topology did not finish within {timeout} s (unfinished tasks: "
                        f"{', '.join(results.missing_results(pkg.output_dir, pkg.layout))}){_tail(log_path)}")
                time.sleep(poll)
        finally:
            _stop(proc)
    return results.load_result(spec, pkg.layout, pkg.output_dir, mapping_name, time.perf_counter() - t0)


#: Lines ShellBolt/ShellSpout log when their subprocess died or stopped answering heartbeats
#: (in local mode Storm logs them and goes on, so the run would otherwise wait for its TTL).
DEATH_MARKERS = (b"Halting process: ShellBolt died", b"Halting process: ShellSpout died")


def _scan_log(path, offset):
    """Look at the log written since ``offset``; return ``(new offset, matching line or None)``."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset, None
    end = data.rfind(b"\n") + 1  # only whole lines
    for line in data[:end].splitlines():
        if any(m in line for m in DEATH_MARKERS):
            return offset + end, line.decode("utf-8", "replace")
    return offset + end, None


def _stop(proc):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _tail(path, n=3000):
    try:
        text = Path(path).read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""
    return f"\n--- end of {path} ---\n{text}" if text.strip() else ""
