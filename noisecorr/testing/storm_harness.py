"""Run a generated Storm topology without Storm: the Java side of multilang, in Python.

:class:`LocalStormHarness` reads a package written by ``noisecorr storm package`` (or
``run(graph, mapping="storm", harness=True)``) and does what a Storm 2.x cluster does with
it, as far as the components can tell:

* validates ``topology.yaml`` against Flux's schema (:func:`~noisecorr.mappings.storm.flux.validate_flux`);
* numbers tasks like Storm (components sorted by id, task ids from 1, an ``__acker`` task
  included in ``task->component``) and launches one subprocess per task with the command
  from the Flux definition, in the ``resources/`` directory;
* performs the handshake (``conf``, ``context`` with ``taskid``, ``componentid``,
  ``task->component`` and the 0.10+ grouping maps, ``pidDir``) and checks the pid file;
* drives spouts synchronously (``next``, ``ack``, ``fail``, each answered up to ``sync``)
  while fewer than ``topology.max.spout.pending`` of their tuple trees are open;
* routes emits by the Flux groupings: ``SHUFFLE`` round robin from a seeded random start,
  ``FIELDS`` by Storm's ``floorMod(Arrays.deepHashCode(values), n)`` on the named integer
  fields, ``ALL`` to every task, ``GLOBAL`` to the lowest task id; checks that the stream is
  declared and the tuple has as many values as fields; answers ``need_task_ids``;
* tracks tuple trees through ``anchors`` and acks or fails the spout tuple when its tree
  completes or fails, as the acker does; sends heartbeats to bolts and expects ``sync``;
* stops when every task has written its result file and returns a ``RunResult``; a PE
  failure (error file, error log, ``fail``), a dead component, a protocol violation or a
  stall raises, never hangs.

Tuples between one pair of tasks are delivered in the order they were emitted, as in Storm.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import queue
import random
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import yaml

from noisecorr.engine.errors import EngineError
from noisecorr.mappings.storm import results
from noisecorr.mappings.storm.flux import declared_streams, validate_flux
from noisecorr.mappings.storm.multilang import frame, java_list_hash, read_message

HEARTBEAT_STREAM = "__heartbeat"


class ProtocolError(EngineError):
    """A component broke the multilang protocol (or the harness's model of Storm)."""


class ComponentProcess:
    """One shell component subprocess, seen from the Java side (``ShellProcess``).

    Messages read from its stdout go to ``inbox`` as ``(taskid, message)``; ``None`` as
    message means its stdout closed.
    """

    def __init__(self, command, cwd, taskid=1, inbox=None, stderr_path=None, env=None):
        self.command = list(command)
        self.taskid = taskid
        self.inbox = inbox if inbox is not None else queue.Queue()
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=env)
        self.out = []
        self.reader = threading.Thread(target=self._read, daemon=True, name=f"storm-task-{taskid}")
        self.reader.start()

    def _read(self):
        stream = self.proc.stdout
        try:
            while True:
                msg = read_message(stream)
                self.inbox.put((self.taskid, msg))
                if msg is None:
                    return
        except Exception as exc:  # garbage on stdout: report it as a message
            self.inbox.put((self.taskid, {"command": "__garbage__", "msg": f"{type(exc).__name__}: {exc}"}))
            self.inbox.put((self.taskid, None))

    def queue_msg(self, msg):
        self.out.append(frame(msg))

    def flush(self):
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def send(self, msg):
        self.queue_msg(msg)
        self.flush()

    def recv(self, timeout=10.0):
        """Next message (only for a process with its own inbox)."""
        try:
            _, msg = self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message from {self.command} within {timeout} s") from None
        return msg

    def handshake(self, conf, context, pid_dir, timeout=30.0):
        """Send the setup message; return the pid the component answered (checked)."""
        self.send({"conf": conf, "context": context, "pidDir": str(pid_dir)})
        msg = self.recv(timeout)
        self.check_pid(msg, pid_dir)
        return msg["pid"]

    def check_pid(self, msg, pid_dir):
        if not isinstance(msg, dict) or not isinstance(msg.get("pid"), int):
            raise ProtocolError(f"task {self.taskid}: expected {{'pid': <int>}} after the handshake, got {msg!r}{self.stderr_tail()}")
        if msg["pid"] != self.proc.pid:
            raise ProtocolError(f"task {self.taskid}: answered pid {msg['pid']}, the process is {self.proc.pid}")
        if not (Path(pid_dir) / str(msg["pid"])).is_file():
            raise ProtocolError(f"task {self.taskid}: no pid file {pid_dir}/{msg['pid']} after the handshake")

    def stderr_tail(self, n=4000):
        if not self.stderr_path:
            return ""
        try:
            text = Path(self.stderr_path).read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""
        return f"\n--- stderr of task {self.taskid} ---\n{text}" if text.strip() else ""

    def close(self, timeout=5.0):
        """Close stdin (the component exits at EOF), wait, kill if it will not go."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._stderr is not subprocess.DEVNULL:
            self._stderr.close()
        self.proc.stdout.close()


class LocalStormHarness:
    """Run the topology in ``package_dir`` as a Storm cluster would (see module doc).

    Parameters
    ----------
    package_dir : path
        Holds ``topology.yaml`` and ``resources/``.
    timeout : float
        Seconds before the run is declared stalled.
    seed : int
        Seed of the shuffle start positions.
    heartbeat_interval : float
        Seconds between heartbeat tuples to each bolt (Storm: 1 s). A heartbeat is sent
        whether or not the bolt is busy with a tuple, as Storm's ``ShellBolt`` timer does.
    subprocess_timeout : float, optional
        Seconds a bolt may take to answer a heartbeat before the harness declares it dead,
        as Storm kills it (default: the topology's ``topology.subprocess.timeout.secs``).

    Attributes
    ----------
    heartbeat_answers : list of (int, int)
        ``(task id, data tuples that bolt held unacked)`` for every heartbeat answered, so
        tests can see answers given while a PE call was running.
    """

    def __init__(self, package_dir, timeout=120.0, seed=0, heartbeat_interval=1.0, subprocess_timeout=None):
        self.root = Path(package_dir)
        self.timeout = timeout
        self.rng = random.Random(seed)
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_answers = []
        with open(self.root / "topology.yaml", encoding="utf-8") as f:
            self.topology = yaml.safe_load(f)
        validate_flux(self.topology)
        self.resources = self.root / "resources"
        with open(self.resources / "layout.json", encoding="utf-8") as f:
            self.layout = json.load(f)
        with open(self.resources / "graph.pkl", "rb") as f:
            self.spec = pickle.load(f)
        self.conf = dict(self.topology.get("config") or {})
        self.conf.setdefault("topology.name", self.topology["name"])
        self.output_dir = self.conf.get("noisecorr.output.dir")
        if not self.output_dir:
            raise EngineError("the topology config has no 'noisecorr.output.dir'; outputs could not be collected")
        self.max_pending = self.conf.get("topology.max.spout.pending")
        self.subprocess_timeout = float(subprocess_timeout if subprocess_timeout is not None
                                        else self.conf.get("topology.subprocess.timeout.secs", 30))
        self._assign_tasks()

    # -- the topology as Storm sees it -------------------------------------------------------
    def _assign_tasks(self):
        self.vertices = {}
        for section in ("spouts", "bolts"):
            for v in self.topology.get(section) or []:
                self.vertices[v["id"]] = (section[:-1], v)
        self.fields = {cid: declared_streams(v) for cid, (_, v) in self.vertices.items()}
        components = sorted(list(self.vertices) + ["__acker"])
        self.task_component, self.component_tasks = {}, {}
        next_id = 1
        for cid in components:
            n = 1 if cid == "__acker" else int(self.vertices[cid][1].get("parallelism", 1))
            self.component_tasks[cid] = list(range(next_id, next_id + n))
            for t in self.component_tasks[cid]:
                self.task_component[t] = cid
            next_id += n
        # (source component, stream) -> [(target component, grouping dict)]
        self.subscribers = collections.defaultdict(list)
        for s in self.topology["streams"]:
            g = s["grouping"]
            self.subscribers[(s["from"], g.get("streamId", "default"))].append((s["to"], g))

    def context(self, taskid):
        """The ``context`` of the handshake for ``taskid`` (Storm 0.10+ keys included)."""
        cid = self.task_component[taskid]
        target_grouping = {}
        for (src, stream), subs in self.subscribers.items():
            if src == cid:
                target_grouping[stream] = {to: _grouping_json(g) for to, g in subs}
        source_grouping, source_fields = {}, {}
        for (src, stream), subs in self.subscribers.items():
            for to, g in subs:
                if to == cid:
                    source_grouping.setdefault(src, {})[stream] = _grouping_json(g)
                    source_fields.setdefault(src, {})[stream] = self.fields[src].get(stream, [])
        return {
            "task->component": {str(t): c for t, c in sorted(self.task_component.items())},
            "taskid": taskid,
            "componentid": cid,
            "stream->target->grouping": target_grouping,
            "streams": sorted(self.fields.get(cid, {})),
            "stream->outputfields": self.fields.get(cid, {}),
            "source->stream->grouping": source_grouping,
            "source->stream->fields": source_fields,
        }

    def _targets(self, task, stream, values):
        cid = task.component
        declared = self.fields[cid]
        if stream not in declared:
            raise ProtocolError(f"{cid} task {task.taskid} emitted to undeclared stream {stream!r} (declared: {sorted(declared)})")
        fields = declared[stream]
        if not isinstance(values, list) or len(values) != len(fields):
            raise ProtocolError(f"{cid} task {task.taskid}: tuple of {len(values) if isinstance(values, list) else '?'} "
                                f"values on stream {stream!r}, which declares fields {fields}")
        targets = []
        for to, g in self.subscribers.get((cid, stream), ()):
            tasks = self.component_tasks[to]
            kind = g["type"]
            if kind in ("SHUFFLE", "LOCAL_OR_SHUFFLE", "NONE"):
                key = (task.taskid, stream, to)
                i = self.shuffle.get(key)
                if i is None:
                    i = self.rng.randrange(len(tasks))
                self.shuffle[key] = (i + 1) % len(tasks)
                targets.append(tasks[i])
            elif kind == "FIELDS":
                selected = [values[fields.index(f)] for f in g["args"]]
                targets.append(tasks[java_list_hash(selected) % len(tasks)])
            elif kind == "ALL":
                targets.extend(tasks)
            elif kind == "GLOBAL":
                targets.append(min(tasks))
            else:
                raise ProtocolError(f"grouping {kind} is not modelled by the harness")
        return targets

    # -- running ------------------------------------------------------------------------------
    def run(self, mapping_name="storm"):
        """Run to completion; return the :class:`~noisecorr.engine.result.RunResult`."""
        t0 = time.perf_counter()
        os.makedirs(self.output_dir, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="noisecorr-storm-harness-"))
        self.inbox = queue.Queue()
        self.tasks = {}
        try:
            self._launch()
            self._loop()
            return results.load_result(self.spec, self.layout, self.output_dir, mapping_name,
                                       time.perf_counter() - t0)
        finally:
            for task in self.tasks.values():
                task.closing = True
            for task in self.tasks.values():
                task.proc_close()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _launch(self):
        for taskid, cid in sorted(self.task_component.items()):
            if cid == "__acker":
                continue
            kind, vertex = self.vertices[cid]
            command = vertex["constructorArgs"][0]
            pid_dir = self.workdir / f"pids-{taskid}"
            pid_dir.mkdir()
            proc = ComponentProcess(command, self.resources, taskid, self.inbox,
                                    stderr_path=self.workdir / f"stderr-{taskid}")
            self.tasks[taskid] = _Task(taskid, cid, kind, self.component_tasks[cid].index(taskid), proc, pid_dir)
        for taskid, task in self.tasks.items():
            task.proc.send({"conf": self.conf, "context": self.context(taskid), "pidDir": str(task.pid_dir)})
        waiting = set(self.tasks)
        deadline = time.monotonic() + max(30.0, self.timeout / 4)
        early = []
        while waiting:
            try:
                taskid, msg = self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise EngineError(f"no handshake answer from tasks {sorted(waiting)}") from None
            task = self.tasks[taskid]
            if taskid in waiting:
                if msg is None:
                    raise self._death(task)
                task.proc.check_pid(msg, task.pid_dir)
                waiting.discard(taskid)
            else:
                early.append((taskid, msg))
        for item in early:
            self.inbox.put(item)

    def _loop(self):
        self.shuffle = {}
        self.inflight = {}  # tuple id -> (task id it went to, roots)
        self.roots = {}  # (spout task, message id) -> open tuples in its tree
        self.seq = 0
        deadline = time.monotonic() + self.timeout
        last_beat = time.monotonic()
        spouts = [t for t in self.tasks.values() if t.kind == "spout"]
        bolts = [t for t in self.tasks.values() if t.kind == "bolt"]
        self._heartbeat(bolts)
        while True:
            for s in spouts:
                if s.busy:
                    continue
                if s.commands:
                    s.proc.queue_msg(s.commands.popleft())
                    s.busy = True
                elif not s.finished and (not self.max_pending or s.open_roots < self.max_pending):
                    s.proc.queue_msg({"command": "next"})
                    s.busy = True
            self._flush()
            try:
                taskid, msg = self.inbox.get(timeout=min(0.5, self.heartbeat_interval))
            except queue.Empty:
                msg = taskid = None
            if taskid is not None:
                self._handle(self.tasks[taskid], msg)
                for _ in range(1000):  # drain what is there before writing
                    try:
                        taskid, msg = self.inbox.get_nowait()
                    except queue.Empty:
                        break
                    self._handle(self.tasks[taskid], msg)
            # heartbeats go out, and are checked, busy or not (Storm's timer does not wait)
            now = time.monotonic()
            for b in bolts:
                if b.heartbeat_sent is not None and now - b.heartbeat_sent > self.subprocess_timeout:
                    raise EngineError(f"bolt {b.component}[{b.index}] (task {b.taskid}) did not answer a heartbeat "
                                      f"within {self.subprocess_timeout} s{b.proc.stderr_tail()}")
            if now - last_beat >= self.heartbeat_interval:
                self._heartbeat(bolts)
                last_beat = now
            if taskid is not None and (not self.inbox.empty() or not self._quiet(spouts)):
                continue
            # nothing to read: finished?
            if not results.missing_results(self.output_dir, self.layout):
                return
            if now > deadline:
                missing = results.missing_results(self.output_dir, self.layout)
                raise EngineError(f"the topology did not finish within {self.timeout} s; unfinished tasks: "
                                  f"{', '.join(missing)}")

    @staticmethod
    def _quiet(spouts):
        """No spout is about to be asked for more (so the run may have ended)."""
        return all(s.finished and not s.commands for s in spouts)

    def _heartbeat(self, bolts):
        now = time.monotonic()
        for b in bolts:
            if b.heartbeat_sent is None:
                self.seq += 1
                b.proc.queue_msg({"id": f"hb{self.seq}", "comp": None, "stream": HEARTBEAT_STREAM, "task": -1,
                                  "tuple": []})
                b.heartbeat_sent = now

    def _flush(self):
        for task in self.tasks.values():
            try:
                task.proc.flush()
            except (BrokenPipeError, OSError):
                raise self._death(task) from None

    def _handle(self, task, msg):
        if msg is None:
            raise self._death(task)
        if isinstance(msg, list):
            raise ProtocolError(f"{task.component} task {task.taskid} sent a list {msg!r}")
        command = msg.get("command")
        if command == "emit":
            self._emit(task, msg)
        elif command == "sync":
            if task.kind == "spout":
                if not task.busy:
                    raise ProtocolError(f"spout task {task.taskid} sent sync without a command")
                task.busy = False
                if not task.finished:
                    task.finished = os.path.exists(os.path.join(
                        self.output_dir, f"{task.component}.{task.index}.result"))
            else:
                if task.heartbeat_sent is None:
                    raise ProtocolError(f"bolt task {task.taskid} sent sync without a heartbeat to answer")
                task.heartbeat_sent = None
                held = sum(1 for target, _ in self.inflight.values() if target == task.taskid)
                self.heartbeat_answers.append((task.taskid, held))
        elif command == "ack" or command == "fail":
            if task.kind != "bolt":
                raise ProtocolError(f"spout task {task.taskid} sent {command}")
            entry = self.inflight.pop(msg.get("id"), None)
            if entry is None or entry[0] != task.taskid:
                raise ProtocolError(f"{task.component} task {task.taskid} {command}ed tuple {msg.get('id')!r}, "
                                    "which it does not hold (unknown, or already acked/failed)")
            for root in entry[1]:
                if command == "ack":
                    self._release(root)
                else:
                    self._fail_root(root)
            if command == "fail":
                raise self._failure(task, f"failed tuple {msg.get('id')}")
        elif command == "log":
            task.logs.append(str(msg.get("msg")))
            if msg.get("level") == 4:
                err = self._error_file(task)
                if err is not None:
                    raise err
        elif command == "error":
            raise self._failure(task, f"reported an error: {msg.get('msg')}")
        elif command == "metrics":
            pass
        else:
            raise ProtocolError(f"{task.component} task {task.taskid}: unknown command in {msg!r}")

    def _emit(self, task, msg):
        stream = msg.get("stream") or "default"
        values = msg.get("tuple")
        if msg.get("task"):
            raise ProtocolError(f"task {task.taskid}: direct emits are not used by noisecorr components")
        targets = self._targets(task, stream, values)
        if task.kind == "spout":
            if not task.busy:
                raise ProtocolError(f"spout task {task.taskid} emitted outside next/ack/fail")
            mid = msg.get("id")
            roots = frozenset() if mid is None else frozenset([(task.taskid, mid)])
            if mid is not None:
                task.open_roots += 1
                self.roots[(task.taskid, mid)] = 0
        else:
            roots = set()
            for anchor in msg.get("anchors") or []:
                entry = self.inflight.get(anchor)
                if entry is None or entry[0] != task.taskid:
                    raise ProtocolError(f"{task.component} task {task.taskid} anchored onto {anchor!r} after ack/fail "
                                        "or onto a tuple it does not hold")
                roots |= entry[1]
            roots = frozenset(roots)
        for target in targets:
            self.seq += 1
            tid = str(self.seq)
            self.inflight[tid] = (target, roots)
            for root in roots:
                self.roots[root] += 1
            self.tasks[target].proc.queue_msg({"id": tid, "comp": task.component, "stream": stream,
                                               "task": task.taskid, "tuple": values})
        if msg.get("need_task_ids", True):
            task.proc.queue_msg(targets)
        if task.kind == "spout" and roots:
            for root in roots:
                if self.roots[root] == 0:  # no subscriber: the tree is complete at once
                    self._complete(root, "ack")

    def _release(self, root):
        n = self.roots.get(root)
        if n is None:
            return
        n -= 1
        self.roots[root] = n
        if n == 0:
            self._complete(root, "ack")

    def _fail_root(self, root):
        if root in self.roots:
            self._complete(root, "fail")

    def _complete(self, root, command):
        del self.roots[root]
        spout = self.tasks[root[0]]
        spout.open_roots -= 1
        spout.commands.append({"command": command, "id": root[1]})

    def _error_file(self, task):
        path = os.path.join(self.output_dir, f"{task.component}.{task.index}.error")
        if os.path.exists(path):
            with open(path, "rb") as f:
                return pickle.load(f)
        return None

    def _failure(self, task, what):
        err = self._error_file(task)
        if err is not None:
            return err
        logs = "\n".join(task.logs[-5:])
        return EngineError(f"{task.component}[{task.index}] (task {task.taskid}) {what}; last log lines:\n{logs}"
                           f"{task.proc.stderr_tail()}")

    def _death(self, task):
        if task.closing:
            return EngineError("closing")
        err = self._error_file(task)
        if err is not None:
            return err
        try:
            code = task.proc.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        return EngineError(f"the component process of {task.component}[{task.index}] (task {task.taskid}, "
                           f"command {' '.join(task.proc.command)}) exited with status {code}{task.proc.stderr_tail()}")


class _Task:
    def __init__(self, taskid, component, kind, index, proc, pid_dir):
        self.taskid = taskid
        self.component = component
        self.kind = kind
        self.index = index
        self.proc = proc
        self.pid_dir = pid_dir
        self.busy = False
        self.finished = False
        self.commands = collections.deque()
        self.open_roots = 0
        self.heartbeat_sent = None
        self.logs = []
        self.closing = False

    def proc_close(self):
        self.proc.close()


def _grouping_json(g):
    out = {"type": g["type"]}
    if g["type"] == "FIELDS":
        out["fields"] = list(g["args"])
    return out


def run_package(package_dir, mapping_name="storm", **options):
    """Run a package directory with :class:`LocalStormHarness`; return the ``RunResult``."""
    return LocalStormHarness(package_dir, **options).run(mapping_name)


__all__ = ["ComponentProcess", "LocalStormHarness", "ProtocolError", "run_package"]

