"""A Storm multilang shell component: one PE instance on the shared run loop.

Run by Storm's ``ShellSpout``/``ShellBolt`` (through Flux's ``FluxShellSpout`` and
``FluxShellBolt``) in the topology's extracted ``resources/`` directory::

    python3 -m noisecorr.mappings.storm.component --spec graph.pkl --pe NAME

The component is a *transport* (:class:`StormTransport`) under the same
:class:`~noisecorr.engine.runtime.Worker` as every other mapping: the worker hosts the one
PE instance of this task and runs its lifecycle (``preprocess``, batches, generator
``process``/``postprocess``, end-of-stream counting, counters, provenance); the transport
turns multilang messages into the worker's events and what the PE writes into ``emit``
commands. It speaks the multilang protocol
(https://storm.apache.org/releases/2.x/Multilang-protocol.html) on stdin/stdout: JSON
messages, each followed by a line ``end``; everything a PE prints goes to stderr, which
Storm logs.

1. Handshake: read ``{"conf", "context", "pidDir"}``, create the empty file
   ``pidDir/<pid>``, answer ``{"pid": <pid>}``. The instance number is the position of
   ``context["taskid"]`` among the sorted task ids of ``context["componentid"]`` in
   ``context["task->component"]`` (Storm's ``getThisTaskIndex``); the instance count of
   every PE (so the number of end-of-stream markers to expect) is read from the same map.
2. A reader thread then owns stdin: it answers every heartbeat tuple (stream
   ``__heartbeat``, task -1) with ``sync`` at once, even while the PE is inside a long call
   (a tile of correlations) in the main thread, and queues every other message for the run
   loop. Writes to stdout are serialised by one lock, so a ``sync`` never splits a message.
3. Spout (PE without inputs): each ``next`` lets the worker run one chunk of the source
   (at most :data:`SPOUT_CHUNK` iterations or written items), then what it wrote is
   emitted with a message id and ``"need_task_ids": false``, then ``sync``. ``ack``,
   ``fail`` and any other command are answered with ``sync`` (a ``fail`` is logged: PEs are
   stateful, so nothing is replayed). After the last iteration ``postprocess()`` runs and
   one end-of-stream tuple is emitted on every connected ``<port>__eos`` stream; ``next``
   after that sleeps :data:`IDLE_SLEEP` seconds and syncs (as the protocol asks).
   A spout answers Storm between chunks, so one source iteration must stay shorter than
   ``topology.subprocess.timeout.secs`` (sources fetch; the long work is in bolts).
4. Bolt: each tuple is decoded (see :mod:`.multilang`) and given to every input port the
   subscription feeds; what the PE writes while the tuple is held is emitted anchored to
   it; the tuple is acked once the worker has no more work for it (its items processed,
   and the generator they started finished, unless the PE takes ``concurrent_inputs``:
   then as soon as its items are taken, so inputs keep arriving during its long
   generator). One tuple is held at a time otherwise, so every emit has exactly one
   anchor. An end-of-stream tuple is counted (once per destination port the
   subscription feeds, as the worker counts one marker per upstream instance and edge);
   when one has arrived from every upstream task on every subscription (they are
   ALL-grouped, so each task gets each), ``postprocess()`` runs and its writes and this
   task's own end-of-stream tuples are emitted anchored to the last marker. The protocol
   relies on Storm delivering the tuples one task sends another in the order they were
   emitted, whatever their stream: there is one FIFO path per pair of tasks (the
   executor's send queue, the worker's transfer queue, one connection per pair of
   workers, the receiving task's queue; Storm's "Message passing implementation" notes),
   so every data tuple of a task precedes its marker.
5. Outputs: items written to unconnected ports, and the instance's counters (the worker's
   summary), are pickled to ``<noisecorr.output.dir>/<component>.<index>.result`` (written
   to a temporary name, then renamed) when the instance finishes. A PE failure writes
   ``<component>.<index>.error`` (the :class:`~noisecorr.engine.errors.PEError` pickled,
   naming PE, instance and item, with the traceback), sends a ``log`` at error level with
   the same text and fails the tuple (``fail``); the instance then fails every later tuple and
   never reports end of stream, so the run cannot finish as if nothing happened.
6. Provenance: when the topology config holds ``noisecorr.provenance`` (run id, store URL,
   rules; written by ``run(..., mapping="storm", provenance=...)``), the worker records
   lineage into that store exactly as under the other mappings (same ids).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import pickle
import queue
import sys
import threading
import time
import traceback

from noisecorr.engine.runtime import Transport

from .multilang import decode_item, encode_item, frame, read_message

#: Source iterations (or written items) per ``next`` command.
SPOUT_CHUNK = 256
#: Seconds a finished spout sleeps on ``next`` before ``sync``.
IDLE_SLEEP = 0.05
#: Storm multilang log levels.
LOG_LEVELS = {logging.DEBUG: 1, logging.INFO: 2, logging.WARNING: 3, logging.ERROR: 4, logging.CRITICAL: 4}
OUTPUT_DIR_KEY = "noisecorr.output.dir"
#: Topology config key holding the provenance session (see :func:`session_config`).
PROVENANCE_KEY = "noisecorr.provenance"
HEARTBEAT_STREAM = "__heartbeat"

log = logging.getLogger("noisecorr.mappings.storm")


class InputClosed(Exception):
    """Storm closed the component's stdin (the topology is being shut down)."""


class Connection:
    """Framed JSON messages over the component's stdin/stdout.

    Every write to stdout holds :attr:`lock`, so messages from the run loop, the heartbeat
    reader and log records of PE threads never interleave. :meth:`push` queues a message
    of the run loop, :meth:`flush` writes the queue in one system call; :meth:`send_now`
    writes one message at once, past the queue (heartbeat answers, logs).
    """

    def __init__(self, stdin, stdout):
        self.stdin = stdin
        self.stdout = stdout
        self.lock = threading.Lock()
        self.queue = []

    def read(self):
        return read_message(self.stdin)

    def push(self, msg):
        """Queue a message of the run loop (written by the next :meth:`flush`)."""
        self.queue.append(frame(msg))

    def discard(self):
        """Drop queued messages (what a failing PE wrote for the tuple that failed)."""
        self.queue.clear()

    def flush(self):
        if self.queue:
            data = b"".join(self.queue)
            self.queue.clear()
            self._write(data)

    def send(self, msg):
        """Queue ``msg`` behind what is queued and write everything now."""
        self.push(msg)
        self.flush()

    def send_now(self, msg):
        """Write ``msg`` at once, from any thread, without the run loop's queue."""
        self._write(frame(msg))

    def _write(self, data):
        with self.lock:
            self.stdout.write(data)
            self.stdout.flush()

    def log(self, text, level=2):
        self.send_now({"command": "log", "msg": text, "level": level})


class MultilangLogHandler(logging.Handler):
    """Forwards Python log records (PE ``log()`` calls) to Storm's worker log."""

    def __init__(self, conn):
        super().__init__(logging.INFO)
        self.conn = conn

    def emit(self, record):
        try:
            self.conn.log(self.format(record), LOG_LEVELS.get(record.levelno, 2))
        except Exception:  # a broken pipe while logging must not kill the PE
            self.handleError(record)


class Reader(threading.Thread):
    """Owns stdin: answers heartbeats with ``sync`` at once, queues everything else.

    ``None`` in :attr:`messages` means stdin closed; an exception instance means a message
    could not be read (it is raised in the run loop).
    """

    def __init__(self, conn):
        super().__init__(name="storm-multilang-reader", daemon=True)
        self.conn = conn
        self.messages = queue.Queue()
        #: Heartbeats answered so far (for tests and logs).
        self.heartbeats = 0

    def run(self):
        try:
            while True:
                msg = self.conn.read()
                if isinstance(msg, dict) and msg.get("stream") == HEARTBEAT_STREAM:
                    self.conn.send_now({"command": "sync"})
                    self.heartbeats += 1
                    continue
                self.messages.put(msg)
                if msg is None:
                    return
        except Exception as exc:  # a truncated or garbled message: the run loop reports it
            self.messages.put(exc)

    def get(self, block):
        """The next queued message; ``queue.Empty`` when ``block`` is false and none waits."""
        msg = self.messages.get(block=block)
        if isinstance(msg, Exception):
            raise msg
        return msg


def session_config(session):
    """The JSON-able topology config entry that carries a provenance ``Session``."""
    return {"run_id": session.run_id, "url": session.url, "rules": session.rules.to_dict(),
            "flush_every": session.flush_every}


def session_from_config(entry):
    """Inverse of :func:`session_config` (``None`` when the run records no provenance)."""
    if not entry:
        return None
    from noisecorr.provenance.recorder import Session
    from noisecorr.provenance.rules import Rules

    return Session(run_id=entry["run_id"], url=entry["url"], rules=Rules.from_dict(entry.get("rules")),
                   flush_every=int(entry.get("flush_every", 5000)))


class StormTransport(Transport):
    """The multilang side of one task: events for the worker in, emits/acks/syncs out.

    The worker hosts exactly one PE instance (:attr:`runner`, set by :class:`Host`). For a
    spout, :meth:`may_iterate` grants one source chunk per ``next``; for a bolt,
    :meth:`recv` holds one tuple at a time (see the module docstring) and acks it when the
    worker has no more work for it.
    """

    remote = True
    routes_streams = True

    def __init__(self, conn, reader, layout_info, name, index, taskid, component, kind, connected):
        super().__init__()
        self.conn = conn
        self.reader = reader
        self.info = layout_info
        self.name = name
        self.index = index
        self.taskid = taskid
        self.component = component
        self.kind = kind
        self.connected = connected
        self.where = f"Storm task {taskid} of component '{component}'"
        self.limits = {}
        self.runner = None
        # bolt: (source component, stream) -> destination ports; end-of-stream subscriptions
        self.routes, self.eos_ports = {}, {}
        for sub in layout_info["inputs"]:
            self.routes[(sub["component"], sub["stream"])] = sub["dest_ports"]
            self.eos_ports[(sub["component"], sub["eos"])] = len(sub["dest_ports"])
        self.held = []  # ids of the tuples this bolt holds (emits are anchored to them)
        # spout: a command is owed its sync; a next not yet used by the worker
        self.owed = False
        self.credit = False
        self.msg_seq = 0
        self.acked = self.failed_msgs = 0
        self.emitted = 0

    # -- out: emits ---------------------------------------------------------------------
    def stream_writer(self, runner, port):
        from noisecorr.engine.routing import group_key, stable_hash

        out = self.info["outputs"][port]
        stream = out["stream"]
        keyspecs = [tuple(keys) for keys, _ in out["keys"]]
        emit = self._emit

        def write(item):
            keys = [stable_hash(group_key(item, k)) for k in keyspecs] or [0]
            emit(stream, [keys[0], encode_item(item)] + keys[1:])
        return write

    def end_of_stream(self, runner):
        for port, out in self.info["outputs"].items():
            if port in self.connected:  # nobody subscribes to the others
                self._emit(out["eos"], [self.index])

    def _emit(self, stream, values):
        self.emitted += 1
        if self.kind == "spout":
            self.msg_seq += 1
            self.conn.push({"command": "emit", "id": f"{self.taskid}:{self.msg_seq}", "stream": stream,
                            "tuple": values, "need_task_ids": False})
        else:
            self.conn.push({"command": "emit", "anchors": list(self.held), "stream": stream, "tuple": values,
                            "need_task_ids": False})

    # -- the worker's side --------------------------------------------------------------
    def may_iterate(self):
        if self.kind != "spout" or not self.credit:
            return False
        self.credit = False
        return True

    def recv(self, block):
        if self.kind == "spout":
            return self._recv_spout(block)
        return self._recv_bolt(block)

    def _recv_spout(self, block):
        # the chunk this command allowed has run (or there is nothing left to iterate: a
        # generator postprocess() is stepping, and each command carries one step's emits)
        if self.owed and (not self.credit or self.runner.remaining() <= 0):
            self.answer()
        while True:
            try:
                msg = self.reader.get(block)
            except queue.Empty:
                return []
            if self.serve_spout_command(msg, running=True):
                return []  # a next: the worker's next pass runs a chunk
            self.answer()

    def serve_spout_command(self, msg, running):
        """Take one spout command; True for a ``next`` the worker should run a chunk for."""
        if msg is None:
            raise InputClosed()
        if isinstance(msg, list):  # task ids: only sent when asked for, never here
            return False
        self.owed = True
        command = msg.get("command")
        if command == "next":
            if running:
                self.credit = True
                return True
            time.sleep(IDLE_SLEEP)
        elif command == "ack":
            self.acked += 1
        elif command == "fail":
            self.failed_msgs += 1
            self.conn.push({"command": "log", "level": 3,
                            "msg": f"noisecorr: tuple tree {msg.get('id')} of {self.component}[{self.index}] "
                                   "failed or timed out downstream (not replayed: PEs are stateful)"})
        return False

    def answer(self):
        """Write what was emitted, then the ``sync`` the current spout command is owed."""
        self.credit = False
        if self.owed:
            self.owed = False
            self.conn.push({"command": "sync"})
            self.conn.flush()

    def _recv_bolt(self, block):
        runner = self.runner
        if any(buf for _, buf in runner.buffer_items) or (runner.suspended is not None and not runner.concurrent):
            self.conn.flush()  # the held tuple's work goes on; its emits so far go out
            return []
        self.complete()
        try:
            msg = self.reader.get(block and runner.suspended is None)
        except queue.Empty:
            return []
        return self._event(msg)

    def complete(self, command="ack"):
        """Write the pending emits, then ack (or fail) every held tuple."""
        for tid in self.held:
            self.conn.push({"command": command, "id": tid})
        self.held.clear()
        self.conn.flush()

    def _event(self, msg):
        if msg is None:
            raise InputClosed()
        if isinstance(msg, list):
            return []
        tid, stream, comp = msg["id"], msg["stream"], msg.get("comp")
        source = (comp, stream)
        sender = msg.get("task")
        eos = self.eos_ports.get(source)
        if eos is not None:
            self.held.append(tid)
            return [("batch", sender, [], [(self.name, self.index)] * eos)]
        ports = self.routes.get(source)
        if ports is None:
            self.conn.log(f"noisecorr: {self.component}[{self.index}] got a tuple from component {comp!r} "
                          f"stream {stream!r}, which it does not subscribe to", 4)
            self.conn.send({"command": "fail", "id": tid})
            return []
        self.held.append(tid)
        item = self.decode(msg)
        return [("batch", sender, [((self.name, self.index, port), [item]) for port in ports], [])]

    def decode(self, msg):
        from noisecorr.engine.errors import PEError

        try:
            return decode_item(msg["tuple"][1])
        except Exception:
            raise PEError(self.name, self.index, f"tuple {msg['id']} from {msg.get('comp')} task {msg.get('task')}",
                          "process", traceback.format_exc(), where=self.where,
                          reason="the tuple's payload cannot be decoded") from None


class Host:
    """One PE instance behind the multilang protocol: a worker and its Storm transport."""

    def __init__(self, spec_path, layout_path, pe_name, setup, conn, reader):
        from noisecorr.engine.errors import GraphError
        from noisecorr.engine.plan import Plan

        self.conn = conn
        self.reader = reader
        with open(spec_path, "rb") as f:
            self.spec = pickle.load(f)
        with open(layout_path, encoding="utf-8") as f:
            self.layout = json.load(f)
        if pe_name not in self.layout["pes"]:
            raise GraphError(f"PE {pe_name!r} is not in this topology; PEs: {sorted(self.layout['pes'])}")
        self.info = self.layout["pes"][pe_name]
        self.name = pe_name
        conf, context = setup.get("conf") or {}, setup["context"]
        tasks = {int(t): c for t, c in context["task->component"].items()}
        self.taskid = int(context["taskid"])
        self.component = context.get("componentid") or tasks[self.taskid]
        if self.component != self.info["component"]:
            raise GraphError(
                f"component {self.component!r} runs PE {pe_name!r}, which belongs to component "
                f"{self.info['component']!r}: the topology and the bundle disagree"
            )
        by_component = collections.defaultdict(list)
        for t in sorted(tasks):
            by_component[tasks[t]].append(t)
        self.index = by_component[self.component].index(self.taskid)
        # The plan as Storm runs it: one instance per task, instance i on the i-th task id.
        instances, placement = {}, {}
        for pe, info in self.layout["pes"].items():
            ids = by_component.get(info["component"], [])
            instances[pe] = len(ids)
            for i, t in enumerate(ids):
                placement[(pe, i)] = t
        self.plan = Plan(workers=len(tasks), instances=instances, placement=placement)
        self.output_dir = conf.get(OUTPUT_DIR_KEY)
        self.session = session_from_config(conf.get(PROVENANCE_KEY))
        connected = {e.source_port for e in self.spec.edges if e.source == pe_name}
        self.transport = StormTransport(conn, reader, self.info, pe_name, self.index, self.taskid,
                                        self.component, self.info["kind"], connected)
        self.failed = False

    def run(self):
        """Run the worker to the end of stream, then keep answering Storm until stdin closes."""
        from noisecorr.engine.errors import PEError
        from noisecorr.engine.runtime import Worker

        transport = self.transport
        try:
            try:
                worker = Worker(self.spec, self.plan, self.taskid, transport, provenance=self.session,
                                source_chunk=SPOUT_CHUNK)
                (transport.runner,) = worker.runners
                summary = worker.run()
            except PEError as err:
                self._fail(err)
            else:
                self._finished(summary)
            self._serve()
        except InputClosed:
            log.info("%s: Storm closed the input before the end of stream", transport.where)

    def _finished(self, summary):
        transport = self.transport
        if transport.kind == "spout":
            while not transport.owed:  # emits go out only in answer to a command
                transport.serve_spout_command(self.reader.get(True), running=True)
            transport.conn.flush()
            self._write_result(summary)
            transport.answer()
        else:
            transport.conn.flush()
            self._write_result(summary)
            transport.complete("fail" if self.failed else "ack")

    def _fail(self, err):
        transport = self.transport
        self.failed = True
        transport.conn.discard()
        self._write_file("error", err)
        self.conn.log(f"noisecorr: {err}", 4)
        if transport.kind == "spout":
            transport.answer()
        else:
            transport.complete("fail")

    def _serve(self):
        """After the end of stream (or a failure): sync spout commands, fail stray tuples."""
        transport = self.transport
        while True:
            msg = self.reader.get(True)
            if msg is None:
                return
            if transport.kind == "spout":
                transport.serve_spout_command(msg, running=False)
                transport.answer()
            elif isinstance(msg, dict):
                if not self.failed:
                    self.conn.log(f"noisecorr: {transport.component}[{transport.index}] got tuple {msg.get('id')} "
                                  f"on stream {msg.get('stream')!r} after its end of stream", 4)
                self.conn.send({"command": "fail", "id": msg["id"]})

    def _write_result(self, summary):
        self._write_file("result", summary)

    def _write_file(self, kind, obj):
        if not self.output_dir:
            self.conn.log(f"noisecorr: no '{OUTPUT_DIR_KEY}' in the topology config; the {kind} of "
                          f"{self.component}[{self.index}] is not saved", 4)
            return
        from noisecorr.engine.errors import PEError
        from noisecorr.engine.runtime import unpicklable_output_error
        from noisecorr.engine.serialize import dumps

        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, f"{self.component}.{self.index}.{kind}")
        try:
            data, _ = dumps(obj, threshold=float("inf"))
        except Exception as exc:  # an unpicklable output item: report it instead
            if kind != "result":
                raise
            err = unpicklable_output_error(obj, self.transport.where, "the driver") or PEError(
                self.name, self.index, None, "write", traceback.format_exc(), where=self.transport.where,
                reason=f"an output item cannot be pickled: {exc}")
            self.failed = True
            self._write_file("error", err)
            self.conn.log(f"noisecorr: {err}", 4)
            return
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m noisecorr.mappings.storm.component",
                                     description="Storm multilang component hosting one noisecorr PE.")
    parser.add_argument("--spec", required=True, help="the pickled GraphSpec (graph.pkl)")
    parser.add_argument("--layout", default=None, help="the topology layout (default: layout.json beside --spec)")
    parser.add_argument("--pe", required=True, help="name of the PE this component hosts")
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point: handshake, then serve as spout or bolt until stdin closes."""
    args = _parse_args(argv)
    layout = args.layout or os.path.join(os.path.dirname(os.path.abspath(args.spec)), "layout.json")
    # The protocol owns the real stdout; anything else printed (by PEs, by C code) goes to stderr.
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    conn = Connection(sys.stdin.buffer, proto_out)
    setup = conn.read()
    if setup is None:
        return 1
    pid = os.getpid()
    open(os.path.join(setup["pidDir"], str(pid)), "w").close()
    conn.send({"pid": pid})
    # From here on heartbeats are answered, also while the graph loads and while a PE runs.
    reader = Reader(conn)
    reader.start()
    logger = logging.getLogger("noisecorr")
    logger.setLevel(logging.INFO)
    logger.addHandler(MultilangLogHandler(conn))
    try:
        host = Host(args.spec, layout, args.pe, setup, conn, reader)
    except Exception:
        conn.log(f"noisecorr: cannot start PE {args.pe!r}:\n{traceback.format_exc()}", 4)
        raise
    try:
        host.run()
    except Exception:
        conn.log(f"noisecorr: component {host.component}[{host.index}] failed outside its PE:\n"
                 f"{traceback.format_exc()}", 4)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
