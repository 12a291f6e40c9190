"""The output-folder lock (noisecorr.workflow.lock): plain lock files, no flock.

Holders are real processes: a child that takes the lock and waits, a child killed with
SIGKILL while holding it (a crash leaves the file behind), a child holding an old-style
flock. Locks of other hosts are lock files written as such a host writes them (its name,
pid and heartbeat age), since no second host is at hand.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from noisecorr.workflow.lock import (LOCK, OutputLocked, OutputLockError, host_identity, lock_record, output_lock,
                                     read_lock)

HOLD = """
import sys
from noisecorr.workflow.lock import output_lock, OutputLocked
try:
    with output_lock(sys.argv[1], stale_after=float(sys.argv[2])):
        print("locked", flush=True)
        sys.stdin.read()
except OutputLocked as exc:
    print("refused", exc, flush=True)
"""


def _holder(folder, stale_after=600.0):
    """A child process holding the lock of ``folder`` until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(stale_after)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("locked"), line
    return proc


def _write_lock(folder, age=0.0, **record):
    """A lock file as another holder writes it, its heartbeat ``age`` seconds old."""
    path = Path(folder) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    base = {"host": "node0042.other-cluster", "boot_id": "0b1e5e0c-0000-4000-8000-000000000042",
            "pid_ns": "pid:[4026531836]", "pid": 4242, "proc_start": 123456, "started": "2026-01-01T00:00:00Z",
            "started_unix": 1767225600.0, "heartbeat_s": 60.0, "user": "someone"}
    path.write_text(json.dumps({**base, **record}))
    t = time.time() - age
    os.utime(path, (t, t))
    return path


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_lock_is_a_json_record_of_this_process_and_goes_on_release(tmp_path):
    with output_lock(tmp_path / "out") as lock:
        record = read_lock(lock.path)
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert record["boot_id"] == host_identity()["boot_id"] and record["heartbeat_s"] == 60.0
        assert abs(record["started_unix"] - time.time()) < 60 and record["started"].endswith("Z")
        assert [p.name for p in (tmp_path / "out").iterdir()] == [LOCK]   # no temporary file left
    assert list((tmp_path / "out").iterdir()) == []


def test_a_live_holder_refuses_naming_host_and_pid(tmp_path):
    child = _holder(tmp_path)
    try:
        with pytest.raises(OutputLocked) as err:
            with output_lock(tmp_path):
                pass
        assert f"host {socket.gethostname()}, pid {child.pid}," in str(err.value)
        assert str(tmp_path / LOCK) in str(err.value)
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    with output_lock(tmp_path):  # released by the child: free again
        assert read_lock(tmp_path / LOCK)["pid"] == os.getpid()


def test_a_crashed_holder_on_this_host_is_taken_over_with_a_warning(tmp_path, caplog):
    child = _holder(tmp_path)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert read_lock(tmp_path / LOCK)["pid"] == child.pid   # the crash left its lock behind
    with caplog.at_level(logging.WARNING, logger="noisecorr.workflow.lock"):
        with output_lock(tmp_path):
            assert read_lock(tmp_path / LOCK)["pid"] == os.getpid()
    msg = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert f"pid {child.pid}" in msg and "no longer running" in msg, msg
    assert not (tmp_path / LOCK).exists()


def test_a_reused_pid_does_not_keep_a_lock(tmp_path, caplog):
    # this host, a live pid (ours), but the process that took the lock started at another time
    me = lock_record(60.0)
    _write_lock(tmp_path, **{**me, "proc_start": me["proc_start"] + 1000})
    with caplog.at_level(logging.WARNING, logger="noisecorr.workflow.lock"):
        with output_lock(tmp_path):
            pass
    assert "now belongs to another process" in caplog.text


def test_another_hosts_lock_with_a_recent_heartbeat_refuses(tmp_path):
    _write_lock(tmp_path, age=30)
    with pytest.raises(OutputLocked) as err:
        with output_lock(tmp_path):
            pass
    text = str(err.value)
    assert "host node0042.other-cluster, pid 4242, started 2026-01-01T00:00:00Z" in text
    assert "last heartbeat 30 s ago" in text and "600 s" in text
    assert read_lock(tmp_path / LOCK)["host"] == "node0042.other-cluster"   # left alone


def test_another_hosts_lock_without_heartbeat_for_long_is_taken_over(tmp_path, caplog):
    _write_lock(tmp_path, age=700)
    with caplog.at_level(logging.WARNING, logger="noisecorr.workflow.lock"):
        with output_lock(tmp_path) as lock:
            assert read_lock(lock.path)["host"] == socket.gethostname()
    assert "node0042.other-cluster, pid 4242" in caplog.text and "700 s old" in caplog.text


def test_stale_after_is_configurable_but_respects_the_holders_heartbeat(tmp_path):
    _write_lock(tmp_path, age=100, heartbeat_s=10.0)
    with output_lock(tmp_path, stale_after=60):     # 100 s > 60 s and > 3 x 10 s: stale
        pass
    _write_lock(tmp_path, age=100, heartbeat_s=60.0)
    with pytest.raises(OutputLocked, match="180 s"):  # the holder beats every 60 s: wait 3 beats
        with output_lock(tmp_path, stale_after=60):
            pass


def test_same_host_name_on_another_machine_is_judged_by_heartbeat(tmp_path):
    # our host name, but another kernel boot (another machine of that name): its pid means nothing here
    _write_lock(tmp_path, age=5, host=socket.gethostname(), pid=_dead_pid(), boot_id="another-boot")
    with pytest.raises(OutputLocked, match="last heartbeat 5 s ago"):
        with output_lock(tmp_path):
            pass


def test_two_runs_breaking_one_stale_lock_at_once_cannot_both_win(tmp_path):
    _write_lock(tmp_path, age=3600)
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "600"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(4)]
    lines = [p.stdout.readline() for p in procs]
    try:
        winners = [p for p, line in zip(procs, lines) if line.startswith("locked")]
        assert len(winners) == 1, lines
        assert all("in use by another run" in line for line in lines if line.startswith("refused")), lines
        assert read_lock(tmp_path / LOCK)["pid"] == winners[0].pid
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=30)


def test_an_old_style_lock_is_taken_over_unless_its_flock_is_held(tmp_path, caplog):
    (tmp_path / LOCK).write_text(f"pid {_dead_pid()}")
    with caplog.at_level(logging.WARNING, logger="noisecorr.workflow.lock"):
        with output_lock(tmp_path):
            assert read_lock(tmp_path / LOCK)["pid"] == os.getpid()
    assert "old-style lock" in caplog.text
    old = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR); "
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'pid %d' % os.getpid()); print('held', flush=True); "
        "sys.stdin.read()"), str(tmp_path / LOCK)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert old.stdout.readline().strip() == "held"
        with pytest.raises(OutputLocked, match=f"older noisecorr \\(pid {old.pid}"):
            with output_lock(tmp_path):
                pass
    finally:
        old.stdin.close()
        old.wait(timeout=30)


def test_a_file_that_is_no_lock_record_refuses_until_old(tmp_path):
    (tmp_path / LOCK).write_text("not json")
    with pytest.raises(OutputLocked, match="not a noisecorr lock record"):
        with output_lock(tmp_path):
            pass
    t = time.time() - 3600
    os.utime(tmp_path / LOCK, (t, t))
    with output_lock(tmp_path):
        pass


def test_the_heartbeat_touches_the_file_and_notices_a_takeover(tmp_path, caplog):
    with output_lock(tmp_path, stale_after=3600) as lock:
        t = time.time() - 1000
        os.utime(lock.path, (t, t))
        assert lock.beat()
        assert time.time() - lock.path.stat().st_mtime < 60
        mine = lock.path.read_bytes()
        lock.path.write_text(json.dumps({"host": "intruder", "pid": 1}))
        with caplog.at_level(logging.WARNING, logger="noisecorr.workflow.lock"):
            assert not lock.beat()
        assert "intruder" in caplog.text and "another run may write" in caplog.text
    # on release the intruder's record is left, not removed
    assert read_lock(tmp_path / LOCK)["host"] == "intruder" and mine != (tmp_path / LOCK).read_bytes()
    assert "not removing the lock" in caplog.text


def test_a_file_system_error_names_the_lock_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OutputLockError) as err:
        with output_lock(blocker / "out"):
            pass
    assert str(blocker / "out" / LOCK) in str(err.value) and "ENOTDIR" in str(err.value)
    assert not isinstance(err.value, OutputLocked)


def test_noisecorr_run_refuses_a_locked_output_naming_the_holder(tmp_path, capsys):
    from noisecorr.cli import main

    _write_lock(tmp_path / "out", age=10)
    assert main(["run", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "node0042.other-cluster, pid 4242" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", "--out", str(blocker / "out")]) == 2
    assert f"{blocker / 'out' / LOCK}" in capsys.readouterr().err


def test_the_stale_age_comes_from_the_configuration():
    from noisecorr.workflow.config import ConfigError, load_config

    assert load_config().lock_stale_after == 600.0
    assert load_config(environ={"NOISECORR_LOCK_STALE_AFTER": "120"}).lock_stale_after == 120.0
    with pytest.raises(ConfigError, match="lock_stale_after"):
        load_config(overrides={"lock_stale_after": -1})
