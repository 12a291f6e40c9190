"""Exclusive lock on an output folder, safe on Lustre, GPFS and NFS.

Two runs must never write the same ``results.h5``. ``flock``/``fcntl`` locks are not a safe
way to say so on cluster file systems: Lustre mounted without ``-o flock`` and NFS without a
lock manager raise ``ENOLCK`` or, worse, grant a lock that other nodes do not see. This lock
is a *file* whose existence is the lock:

* **Taking it** writes a JSON record (host, pid, start time, ...) to a private temporary file
  in the same folder, ``fsync``\\ s it and hard-links it to ``.noisecorr.lock``. ``link(2)``
  fails with ``EEXIST`` when the name exists, exactly like ``open(O_CREAT | O_EXCL)``, and is
  atomic on NFS (v2 onwards), Lustre and GPFS; a reader therefore never sees a half-written
  record. (On NFS a lost reply to a link that did succeed is recognised by the temporary
  file's link count, the classic NFS lock-file check.) File systems without hard links
  (vfat, some FUSE and SMB mounts) get ``O_CREAT | O_EXCL`` and a write; readers retry an
  incomplete record for a moment.
* **Heartbeat.** While the lock is held a background thread touches the file (``utime``)
  every ``heartbeat`` seconds (default ``stale_after / 10``, at most 60 s), so its
  modification time tells other hosts that the run is alive.
* **Stale locks** are taken over with a WARNING naming the old holder:

  - held *on this host* (same host name, kernel boot id and PID namespace): stale when the
    process is gone (or a zombie), or when its pid now belongs to a process that started at
    another time (pid reuse). A live process keeps its lock however long it runs;
  - held *on another host* (the pid cannot be checked from here): stale when the heartbeat is
    older than ``stale_after`` seconds (configuration ``lock_stale_after``, default 600 s;
    never less than three of the holder's own heartbeat intervals, which it records). Clock
    skew between hosts well under ``stale_after`` does not matter;
  - a lock left by versions before this one (text ``pid N``, an ``flock`` lock) is stale
    unless a live old-version run still holds its ``flock``.

  Taking over removes the stale file under a second, short-lived lock (``.break``), after
  checking that it is still the very record judged stale (same bytes, same modification
  time); the new lock is then created exclusively as above, so of two runs breaking the same
  stale lock at once exactly one gets it.
* **Errors** of the file system (``ENOLCK``, ``EACCES``, ``EROFS``, ``ENOSPC``, ...) raise
  :class:`OutputLockError` naming the lock file and the error; a lock held by a live run
  raises :class:`OutputLocked` naming its host, pid and start time.
* **Releasing** removes the file if it is still this run's record.

Examples
--------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with output_lock(folder) as lock:
...     sorted(read_lock(lock.path))[:4]
['boot_id', 'heartbeat_s', 'host', 'pid']
>>> (Path(folder) / LOCK).exists()
False
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

#: Name of the lock file inside the output folder.
LOCK = ".noisecorr.lock"
#: Seconds without heartbeat after which another host's lock is stale (``lock_stale_after``).
DEFAULT_STALE_AFTER = 600.0
#: Longest heartbeat interval (s).
MAX_HEARTBEAT = 60.0
#: Seconds a reader waits for an incomplete record (the ``O_EXCL`` fallback) to be completed.
READ_PATIENCE = 1.0
_LEGACY = re.compile(rb"^\s*pid (\d+)\s*$")
#: Seconds after which a break lock (held for a few system calls while a stale lock is
#: removed) is itself stale.
BREAK_STALE = 60.0
#: Seconds a run keeps trying while other runs take and break the lock at the same time.
CONTENTION_PATIENCE = 10.0
#: errno values by which ``link(2)`` says "no hard links here" (use ``O_EXCL`` instead).
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


class OutputLockError(RuntimeError):
    """The output folder's lock file cannot be created, read or removed (the message names the
    file and the operating system's error)."""


class OutputLocked(OutputLockError):
    """Another (live) run holds the output folder; the message names its host and pid."""


def _read_text(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def host_identity() -> dict:
    """This machine and PID namespace: ``{"host", "boot_id", "pid_ns"}``.

    ``boot_id`` (``/proc/sys/kernel/random/boot_id``) changes at every reboot and tells two
    machines of the same name apart; ``pid_ns`` (the inode of ``/proc/self/ns/pid``) tells
    containers on one kernel apart, whose pids cannot be checked from each other. Either is
    ``None`` where ``/proc`` does not say.
    """
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_ns = None
    return {"host": socket.gethostname(), "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
            "pid_ns": pid_ns}


def _proc_stat(pid: int):
    """``(state, start_ticks)`` of ``pid`` from ``/proc/<pid>/stat``, or ``None``."""
    text = _read_text(f"/proc/{int(pid)}/stat")
    if not text or ")" not in text:
        return None
    rest = text.rsplit(")", 1)[1].split()
    try:
        return rest[0], int(rest[19])  # fields 3 (state) and 22 (starttime, clock ticks after boot)
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to another user
        pass
    stat = _proc_stat(pid)
    return not (stat and stat[0] in ("Z", "X"))


def lock_record(heartbeat: float) -> dict:
    """The JSON record of this process (what :func:`read_lock` returns for its lock)."""
    now = time.time()
    stat = _proc_stat(os.getpid())
    return {
        **host_identity(),
        "pid": os.getpid(),
        "proc_start": stat[1] if stat else None,
        "started": datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "started_unix": round(now, 3),
        "heartbeat_s": float(heartbeat),
        "user": _user(),
    }


def _user():
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid()) if hasattr(os, "getuid") else None


def read_lock(path) -> dict | None:
    """The record of lock file ``path``; ``None`` if there is none.

    Raises
    ------
    OutputLockError
        The file exists but cannot be read, or is not a lock record.
    """
    raw = _read_raw(path)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise OutputLockError(f"lock file {path} is not a noisecorr lock record: {raw[:80]!r}") from None


def _read_raw(path):
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputLockError(_os_message("cannot read the lock file", path, exc)) from None


def _os_message(what, path, exc) -> str:
    name = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else type(exc).__name__
    hint = ""
    if exc.errno == errno.ENOLCK:
        hint = " (the file system offers no locks)"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = " (the output folder must be writable)"
    return (f"{what} {path}: {exc.strerror or exc} [{name}]{hint}; choose an --out on a writable file system "
            "(noisecorr locks with plain files, so NFS, Lustre and GPFS work)")


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _age(mtime):
    return max(0.0, time.time() - mtime)


class output_lock:
    """Exclusive lock on an output folder: two runs never write the same results.

    Parameters
    ----------
    folder : str or Path
        The output folder (created if missing); the lock is ``folder/.noisecorr.lock``.
    stale_after : float
        Seconds without heartbeat after which a lock held by another host is stale (see the
        module docstring). Locks of this host are judged by their process instead.
    heartbeat : float, optional
        Seconds between heartbeats (default ``min(stale_after / 10, 60)``).

    Raises
    ------
    OutputLocked
        A live run holds the folder (on entering).
    OutputLockError
        The lock file cannot be created or read (permissions, read-only or full file system).
    """

    def __init__(self, folder, stale_after: float = DEFAULT_STALE_AFTER, heartbeat: float | None = None):
        if not (isinstance(stale_after, (int, float)) and stale_after > 0):
            raise ValueError(f"stale_after must be a positive number of seconds, got {stale_after!r}")
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.stale_after = float(stale_after)
        self.heartbeat = float(heartbeat) if heartbeat else min(self.stale_after / 10.0, MAX_HEARTBEAT)
        self._raw = self._raw_pending = None
        self._stop = threading.Event()
        self._thread = None

    # -- taking -----------------------------------------------------------------------------
    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def acquire(self):
        """Take the lock (taking over a stale one); start the heartbeat."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputLockError(_os_message("cannot create the output folder of", self.path, exc)) from None
        raw = json.dumps(lock_record(self.heartbeat), sort_keys=True).encode() + b"\n"
        self._stop.clear()
        self._raw_pending = raw
        deadline = time.monotonic() + CONTENTION_PATIENCE
        while time.monotonic() < deadline:
            if self._create(raw):
                self._raw = raw
                self._thread = threading.Thread(target=self._beat_loop, name="noisecorr-lock-heartbeat", daemon=True)
                self._thread.start()
                return self
            seen = self._holder()
            if seen is None:  # released between our attempt and the read: try again
                continue
            stale, why, message = self._judge(*seen)
            if not stale:
                raise OutputLocked(message)
            if self._break(seen[0], seen[1]):
                log.warning("took over the stale lock %s: %s", self.path, why)
        raise OutputLocked(f"{self.path}: the lock kept changing hands while this run tried to take it; "
                           "another run is starting on the same --out")

    def _create(self, raw: bytes, target: Path | None = None) -> bool:
        """Create ``target`` (the lock file) with content ``raw``; False if it exists."""
        target = self.path if target is None else target
        me = host_identity()["host"]
        tmp = target.with_name(f"{target.name}.{me}.{os.getpid()}.tmp")
        try:
            try:
                tmp.unlink()  # a leftover of this very pid (a previous, killed process)
            except FileNotFoundError:
                pass
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                os.write(fd, raw)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise OutputLockError(_os_message("cannot write the lock file", tmp, exc)) from None
        try:
            try:
                os.link(tmp, target)
            except FileExistsError:
                # NFS: a retransmitted link whose first reply was lost says EEXIST though it worked
                return os.stat(tmp).st_nlink == 2
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise OutputLockError(_os_message("cannot create the lock file", target, exc)) from None
                log.debug("no hard links in %s (%s): O_EXCL lock file", self.folder, exc.strerror)
                return self._create_exclusive(raw, target)
            return True
        finally:
            try:
                tmp.unlink()
            except OSError as exc:
                log.warning("%s", _os_message("cannot remove the temporary lock file", tmp, exc))

    def _create_exclusive(self, raw, target):
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise OutputLockError(_os_message("cannot create the lock file", target, exc)) from None
        try:
            os.write(fd, raw)
            os.fsync(fd)
        except OSError as exc:
            raise OutputLockError(_os_message("cannot write the lock file", target, exc)) from None
        finally:
            os.close(fd)
        return True

    def _holder(self):
        """``(raw, mtime_ns, record or None)`` of the present lock file; None if it vanished.

        An incomplete JSON record (a holder without hard links still writing) is re-read for
        up to :data:`READ_PATIENCE` seconds."""
        deadline = time.monotonic() + READ_PATIENCE
        while True:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise OutputLockError(_os_message("cannot read the lock file", self.path, exc)) from None
            raw = _read_raw(self.path)
            if raw is None:
                return None
            try:
                record = json.loads(raw)
                if isinstance(record, dict):
                    return raw, st.st_mtime_ns, record
            except ValueError:
                pass
            if _LEGACY.match(raw) or time.monotonic() > deadline:
                return raw, st.st_mtime_ns, None
            time.sleep(0.05)

    def _judge(self, raw, mtime_ns, record):
        """``(stale, why, refusal message)`` for the lock file as read."""
        folder, age = self.path.parent, _age(mtime_ns / 1e9)
        if record is None:
            legacy = _LEGACY.match(raw)
            if legacy:
                return self._judge_legacy(int(legacy.group(1)))
            if age > self.stale_after:
                return True, f"unreadable record {raw[:60]!r} unchanged for {age:.0f} s", ""
            return False, "", (f"{folder} has a lock file {self.path} that is not a noisecorr lock record "
                               f"({raw[:60]!r}, modified {age:.0f} s ago); if no run uses this folder, remove it")
        host, pid = record.get("host", "?"), record.get("pid", "?")
        who = f"host {host}, pid {pid}, started {record.get('started', '?')}"
        if self._same_host(record) and isinstance(pid, int):
            if not pid_alive(pid):
                return True, f"it was held by {who}, and process {pid} is no longer running", ""
            stat = _proc_stat(pid)
            if stat and record.get("proc_start") is not None and stat[1] != record["proc_start"]:
                return True, f"it was held by {who}; pid {pid} now belongs to another process", ""
            return False, "", (f"{folder} is in use by another run ({who}; lock {self.path}); wait for it to "
                               "finish or choose another --out")
        limit = max(self.stale_after, 3.0 * float(record.get("heartbeat_s") or 0.0))
        if age > limit:
            return True, (f"it was held by {who}, whose last heartbeat is {age:.0f} s old "
                          f"(more than {limit:.0f} s, lock_stale_after)"), ""
        return False, "", (f"{folder} is in use by another run ({who}; lock {self.path}, last heartbeat "
                           f"{age:.0f} s ago); wait for it to finish or choose another --out. If that run is gone, "
                           f"the lock is taken over once its heartbeat is {limit:.0f} s old (lock_stale_after)")

    def _judge_legacy(self, pid):
        """A lock file of noisecorr before JSON locks: ``pid N`` under ``flock``. Stale unless a
        live old-version run still holds the flock (it could only do so where flock works)."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return True, "an old-style lock vanished", ""
        except OSError as exc:
            raise OutputLockError(_os_message("cannot read the lock file", self.path, exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            return False, "", (f"{self.path.parent} is in use by a run of an older noisecorr (pid {pid}, "
                               f"lock {self.path}); wait for it to finish or choose another --out")
        except OSError as exc:  # no flock on this mount: no old run can hold one here
            log.debug("flock probe of %s: %s", self.path, exc)
        finally:
            os.close(fd)
        return True, f"it is an old-style lock (pid {pid}) that no run holds", ""

    @staticmethod
    def _same_host(record) -> bool:
        me = host_identity()
        if record.get("host") != me["host"]:
            return False
        return all(record.get(k) is None or me[k] is None or record.get(k) == me[k] for k in ("boot_id", "pid_ns"))

    def _break(self, raw, mtime_ns):
        """Remove the stale lock read as ``(raw, mtime_ns)``, unless it changed meanwhile; True
        if this run removed it.

        Only the holder of the *break lock* ``.noisecorr.lock.break`` (created like the lock
        itself) removes a lock file, after checking under it that the file is still the very
        record judged stale; a run that finds the break lock taken returns and reads the lock
        again. So a fresh lock is never removed by a run that judged its predecessor stale.
        A break lock older than :data:`BREAK_STALE` seconds (its run died inside the few
        system calls it is held for) is removed.
        """
        brk = self.path.with_name(LOCK + ".break")
        if not self._create(self._raw_pending, brk):
            try:
                age = _age(os.stat(brk).st_mtime)
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise OutputLockError(_os_message("cannot read the lock file", brk, exc)) from None
            if age > BREAK_STALE:
                log.warning("removing the break lock %s, left %.0f s ago by a run that died", brk, age)
                _unlink(brk)
            else:
                time.sleep(0.05)  # another run is removing the stale lock: read the lock again
            return False
        try:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return False
            if st.st_mtime_ns == mtime_ns and _read_raw(self.path) == raw:
                _unlink(self.path)
                return True
            return False
        except OSError as exc:
            raise OutputLockError(_os_message("cannot remove the stale lock file", self.path, exc)) from None
        finally:
            _unlink(brk)

    # -- heartbeat and release --------------------------------------------------------------
    def beat(self) -> bool:
        """Touch the lock file if it is still this run's; False (logged) if it is not."""
        try:
            current = _read_raw(self.path)
        except OutputLockError as exc:
            log.warning("%s", exc)
            return True
        if current != self._raw:
            holder = "removed" if current is None else f"replaced by {current[:120]!r}"
            log.error("the lock %s of this run was %s: another run may write to the same folder", self.path, holder)
            return False
        try:
            os.utime(self.path)
        except OSError as exc:
            log.warning("%s", _os_message("heartbeat: cannot touch the lock file", self.path, exc))
        return True

    def _beat_loop(self):
        while not self._stop.wait(self.heartbeat):
            if not self.beat():
                return

    def release(self):
        """Stop the heartbeat and remove the lock file if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._raw is None:
            return
        raw, self._raw = self._raw, None
        try:
            current = _read_raw(self.path)
        except OutputLockError as exc:
            log.warning("%s", exc)
            return
        if current != raw:
            log.warning("not removing the lock %s: it is no longer this run's (%s)", self.path,
                        "gone" if current is None else current[:120])
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("%s", _os_message("cannot remove the lock file", self.path, exc))
