"""Submit rendered job scripts with ``sbatch`` and wait for jobs (tests, scripts)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

#: Job states after which a job will not change any more.
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE"}


class SubmitError(RuntimeError):
    """sbatch is missing or refused a script (its message is included)."""


def sbatch(script: Path, dependency: str | None = None, extra=()) -> str:
    """Submit ``script``; return the job id. ``dependency`` e.g. ``"afterok:123"``."""
    exe = shutil.which("sbatch")
    if exe is None:
        raise SubmitError("sbatch was not found on PATH: submit from a SLURM login node, or use --dry-run")
    cmd = [exe, "--parsable"]
    if dependency:
        cmd.append(f"--dependency={dependency}")
    cmd += [*extra, str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SubmitError(f"sbatch {script} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip().split(";")[0]


def job_states(job_id: str) -> dict:
    """``{job_id or job_id_task: state}`` from ``scontrol show job`` (array tasks each listed).

    ``scontrol`` is used rather than ``sacct``: it needs no accounting database (which test
    clusters and some sites, SuperMUC-NG among them, do not offer to users).
    """
    proc = subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {}
    states = {}
    for line in proc.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        key = fields.get("JobId", "")
        if fields.get("ArrayTaskId") and fields.get("ArrayJobId"):
            key = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
        states[key] = fields.get("JobState", "UNKNOWN")
    return states


def wait(job_ids, timeout: float = 300.0, poll: float = 1.0) -> dict:
    """Wait until every job (and array task) of ``job_ids`` is in a final state.

    Returns ``{id: state}``; raises ``TimeoutError`` (with the states) after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    states = {}
    while True:
        states = {}
        for jid in job_ids:
            states.update(job_states(jid))
        pending = {k: v for k, v in states.items() if v not in FINAL_STATES}
        if states and not pending and all(any(k == j or k.startswith(f"{j}_") for k in states) for j in job_ids):
            return states
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs {', '.join(map(str, job_ids))} not finished after {timeout:.0f} s: {states}")
        time.sleep(poll)
