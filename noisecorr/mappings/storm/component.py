"""A Storm multilang shell component that hosts one PE instance.

Run by Storm's ``ShellSpout``/``ShellBolt`` (through Flux's ``FluxShellSpout`` and
``FluxShellBolt``) in the topology's extracted ``resources/`` directory::

    python3 -m noisecorr.mappings.storm.component --spec graph.pkl --pe NAME

It speaks the multilang protocol (https://storm.apache.org/releases/2.x/Multilang-protocol.html)
on stdin/stdout; everything a PE prints goes to stderr, which Storm logs.

1. Handshake: read ``{"conf", "context", "pidDir"}``, create the empty file
   ``pidDir/<pid>``, answer ``{"pid": <pid>}``. The instance number is the position of
   ``context["taskid"]`` among the sorted task ids of ``context["componentid"]`` in
   ``context["task->component"]`` (Storm's ``getThisTaskIndex``); the number of upstream
   tasks, which the end-of-stream protocol needs, is read from the same map.
2. ``preprocess()`` runs once, before any item.
3. Spout (PE without inputs): each ``next`` runs up to :data:`SPOUT_CHUNK` iterations of the
   PE (only instance 0 iterates, so a source runs exactly as often as in the sequential
   mapping), emits what it wrote with a message id and ``"need_task_ids": false``, then
   ``sync``. ``ack``/``fail`` are answered with ``sync``; after the last iteration it runs
   ``postprocess()`` and emits one end-of-stream tuple on every ``<port>__eos`` stream;
   ``next`` after that sleeps :data:`IDLE_SLEEP` seconds and syncs (as the protocol asks).
4. Bolt: each tuple is decoded (see :mod:`.multilang`), given to every input port the
   subscription feeds, what the PE wrote is emitted anchored to the tuple, then the tuple is
   acked. A heartbeat (stream ``__heartbeat``, task -1) is answered with ``sync``. An
   end-of-stream tuple is counted; when one has arrived from every upstream task on every
   subscription (they are ALL-grouped, so each task gets each), ``postprocess()`` runs, its
   writes and this task's own end-of-stream tuples are emitted anchored to the last marker.
   The protocol relies on Storm delivering the tuples one task sends another in the order
   they were emitted, whatever their stream: there is one FIFO path per pair of tasks (the
   executor's send queue, the worker's transfer queue, one connection per pair of workers,
   the receiving task's queue; Storm's "Message passing implementation" notes), so every data
   tuple of a task precedes its marker.
5. Outputs: items written to unconnected ports, and the instance's counters, are pickled to
   ``<noisecorr.output.dir>/<component>.<index>.result`` (written to a temporary name, then
   renamed) when the instance finishes. A PE failure writes ``<component>.<index>.error``
   (the :class:`~noisecorr.engine.errors.PEError` pickled, naming PE, instance and item, with
   the traceback), sends a ``log`` at error level with the same text and ``fail``s the tuple;
   the instance then fails every later tuple and never reports end of stream, so the run
   cannot finish as if nothing happened.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
import threading
import time
import traceback

from noisecorr.engine.pe import write_returned

from .multilang import decode_item, encode_item, frame, read_message

#: Source iterations (or written items) per ``next`` command.
SPOUT_CHUNK = 256
#: Seconds a finished spout sleeps on ``next`` before ``sync``.
IDLE_SLEEP = 0.05
#: Storm multilang log levels.
LOG_LEVELS = {logging.DEBUG: 1, logging.INFO: 2, logging.WARNING: 3, logging.ERROR: 4, logging.CRITICAL: 4}
OUTPUT_DIR_KEY = "noisecorr.output.dir"


class Connection:
    """Framed JSON messages over the component's stdin/stdout (thread-safe sends)."""

    def __init__(self, stdin, stdout):
        self.stdin = stdin
        self.stdout = stdout
        self.lock = threading.Lock()
        self.queue = []

    def read(self):
        return read_message(self.stdin)

    def send(self, msg):
        self.push(msg)
        self.flush()

    def push(self, msg):
        """Queue a message; :meth:`flush` writes queued messages in one system call."""
        data = frame(msg)
        with self.lock:  # a PE may log from its own threads
            self.queue.append(data)

    def flush(self):
        with self.lock:
            if self.queue:
                data = b"".join(self.queue)
                self.queue.clear()
                self.stdout.write(data)
                self.stdout.flush()

    def log(self, text, level=2):
        self.send({"command": "log", "msg": text, "level": level})


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


class Host:
    """One PE instance behind the multilang protocol."""

    def __init__(self, spec_path, layout_path, pe_name, setup, conn):
        from noisecorr.engine.errors import GraphError

        self.conn = conn
        with open(spec_path, "rb") as f:
            self.spec = pickle.load(f)
        with open(layout_path, encoding="utf-8") as f:
            self.layout = json.load(f)
        if pe_name not in self.layout["pes"]:
            raise GraphError(f"PE {pe_name!r} is not in this topology; PEs: {sorted(self.layout['pes'])}")
        self.pe_spec = self.spec.pe(pe_name)
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
        mine = sorted(t for t, c in tasks.items() if c == self.component)
        self.index = mine.index(self.taskid)
        self.ntasks = len(mine)
        self.output_dir = conf.get(OUTPUT_DIR_KEY)
        # Subscriptions: (source component, stream) -> destination ports; end-of-stream streams.
        self.routes, self.eos_streams, self.expected_eos = {}, set(), 0
        for sub in self.info["inputs"]:
            self.routes[(sub["component"], sub["stream"])] = sub["dest_ports"]
            self.eos_streams.add((sub["component"], sub["eos"]))
            self.expected_eos += sum(1 for c in tasks.values() if c == sub["component"])
        self.eos = 0
        self.failed = False
        self.finished = False
        self.pending = []  # (stream, values) written by the PE, not yet emitted
        self.outputs = {}
        self.counts_in = {p: 0 for p in self.pe_spec.inputs}
        self.out_cells = {p: [0] for p in self.pe_spec.outputs}
        self.seconds = 0.0
        self.pe = self.pe_spec.instantiate()
        self.pe.instance = self.index
        self.pe.rank = self.taskid
        self.connected = {e.source_port for e in self.spec.edges if e.source == pe_name}
        self.pe._writers = {port: self._make_writer(port) for port in self.pe_spec.outputs}

    # -- writing ---------------------------------------------------------------------------
    def _make_writer(self, port):
        from noisecorr.engine.routing import group_key, stable_hash

        cell = self.out_cells[port]
        if port not in self.connected:
            items = self.outputs.setdefault((self.name, port), [])

            def collect(item, _append=items.append, _cell=cell):
                _cell[0] += 1
                _append(item)
            return collect
        out = self.info["outputs"][port]
        stream = out["stream"]
        keyspecs = [tuple(keys) for keys, _ in out["keys"]]
        pending = self.pending

        def emit(item, _append=pending.append, _cell=cell):
            _cell[0] += 1
            keys = [stable_hash(group_key(item, k)) for k in keyspecs] or [0]
            _append((stream, [keys[0], encode_item(item)] + keys[1:]))
        return emit

    def _flush_bolt(self, anchor):
        anchors = [anchor] if anchor is not None else []
        for stream, values in self.pending:
            self.conn.push({"command": "emit", "anchors": anchors, "stream": stream, "tuple": values,
                            "need_task_ids": False})
        self.pending.clear()

    def _flush_spout(self):
        for stream, values in self.pending:
            self.msg_seq += 1
            self.conn.push({"command": "emit", "id": f"{self.taskid}:{self.msg_seq}", "stream": stream,
                            "tuple": values, "need_task_ids": False})
        self.pending.clear()

    def _eos_tuples(self):
        for port, out in self.info["outputs"].items():
            if port in self.connected:  # nobody subscribes to the others
                self.pending.append((out["eos"], [self.index]))

    # -- lifecycle -------------------------------------------------------------------------
    def _call(self, phase, fn, item=None):
        """Run ``fn``; on an exception report it and return False."""
        t0 = time.perf_counter()
        try:
            result = fn()
            if result is not None:  # a generator postprocess(): Storm runs it to the end
                write_returned(self.pe, result)
            return True
        except Exception:
            self._report(phase, item)
            return False
        finally:
            self.seconds += time.perf_counter() - t0

    def _report(self, phase, item):
        from noisecorr.engine.errors import PEError

        err = PEError(self.name, self.index, item, phase, traceback.format_exc(),
                      where=f"Storm task {self.taskid} of component '{self.component}'")
        self.failed = True
        self.pending.clear()
        self._write_file("error", err)
        self.conn.log(f"noisecorr: {err}", 4)

    def _finish(self):
        ok = self._call("postprocess", self.pe.postprocess)
        if not ok:
            return False
        self._eos_tuples()
        self.finished = True
        return True

    def _write_result(self):
        summary = {
            "worker": self.taskid,
            "outputs": self.outputs,
            "stats": {(self.name, self.index): {
                "in": dict(self.counts_in),
                "out": {p: c[0] for p, c in self.out_cells.items()},
                "seconds": self.seconds,
            }},
        }
        self._write_file("result", summary)

    def _write_file(self, kind, obj):
        if not self.output_dir:
            self.conn.log(f"noisecorr: no '{OUTPUT_DIR_KEY}' in the topology config; the {kind} of "
                          f"{self.component}[{self.index}] is not saved", 4)
            return
        from noisecorr.engine.serialize import dumps

        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, f"{self.component}.{self.index}.{kind}")
        try:
            data, _ = dumps(obj, threshold=float("inf"))
        except Exception as exc:  # an unpicklable output item: report it instead
            if kind != "result":
                raise
            from noisecorr.engine.errors import PEError

            err = PEError(self.name, self.index, None, "write", traceback.format_exc(),
                          where=f"Storm task {self.taskid}", reason=f"an output item cannot be pickled: {exc}")
            self.failed = True
            self._write_file("error", err)
            self.conn.log(f"noisecorr: {err}", 4)
            return
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    # -- spout -----------------------------------------------------------------------------
    def run_spout(self):
        self.msg_seq = 0
        iterations = self.spec.iterations.get(self.name, 0) if self.index == 0 else 0
        self.data = None if isinstance(iterations, int) else list(iterations)
        self.total = iterations if isinstance(iterations, int) else len(iterations)
        self.position = 0
        self.acked = self.failed_msgs = 0
        self._call("preprocess", self.pe.preprocess)
        conn = self.conn
        while True:
            msg = conn.read()
            if msg is None:
                return
            if isinstance(msg, list):  # task ids: only sent when asked for, never here
                continue
            command = msg.get("command")
            if command == "next":
                if not self.failed and not self.finished:
                    self._spout_step()
                    if self.failed:
                        self.pending.clear()
                    self._flush_spout()
                    if self.finished:
                        conn.flush()
                        self._write_result()
                else:
                    time.sleep(IDLE_SLEEP)
            elif command == "ack":
                self.acked += 1
            elif command == "fail":
                self.failed_msgs += 1
                conn.push({"command": "log", "level": 3,
                           "msg": f"noisecorr: tuple tree {msg.get('id')} of {self.component}[{self.index}] "
                                  "failed or timed out downstream (not replayed: PEs are stateful)"})
            conn.push({"command": "sync"})
            conn.flush()

    def _spout_step(self):
        process = self.pe.process
        written = lambda: sum(c[0] for c in self.out_cells.values())  # noqa: E731
        start = written()
        t0 = time.perf_counter()
        inputs = {}
        try:
            for _ in range(SPOUT_CHUNK):
                if self.position >= self.total:
                    break
                inputs = self.data[self.position] if self.data is not None else {}
                self.position += 1
                result = process(inputs)
                if result is not None:
                    write_returned(self.pe, result)
                if written() - start >= SPOUT_CHUNK:
                    break
        except Exception:
            from noisecorr.engine.errors import short_repr

            what = f"input {short_repr(inputs)}" if self.data is not None else f"iteration {self.position}"
            self.seconds += time.perf_counter() - t0
            self._report("process", what)
            return
        self.seconds += time.perf_counter() - t0
        if self.position >= self.total:
            self._finish()

    # -- bolt ------------------------------------------------------------------------------
    def run_bolt(self):
        from noisecorr.engine.errors import short_repr

        conn = self.conn
        if self._call("preprocess", self.pe.preprocess):
            self._flush_bolt(None)
        conn.flush()
        routes, eos_streams, process = self.routes, self.eos_streams, self.pe.process
        while True:
            msg = conn.read()
            if msg is None:
                return
            if isinstance(msg, list):
                continue
            tid, stream = msg["id"], msg["stream"]
            if stream == "__heartbeat":
                conn.send({"command": "sync"})
                continue
            source = (msg["comp"], stream)
            if self.failed:
                conn.send({"command": "fail", "id": tid})
                continue
            if source in eos_streams:
                self.eos += 1
                if self.eos == self.expected_eos:
                    if self._finish():
                        self._flush_bolt(tid)
                        conn.flush()
                        self._write_result()
                conn.send({"command": "fail" if self.failed else "ack", "id": tid})
                continue
            ports = routes.get(source)
            if ports is None:
                conn.log(f"noisecorr: {self.component}[{self.index}] got a tuple from component "
                         f"{msg['comp']!r} stream {stream!r}, which it does not subscribe to", 4)
                conn.send({"command": "fail", "id": tid})
                continue
            item = decode_item(msg["tuple"][1])
            t0 = time.perf_counter()
            try:
                for port in ports:
                    self.counts_in[port] += 1
                    result = process({port: item})
                    if result is not None:
                        write_returned(self.pe, result)
            except Exception:
                self.seconds += time.perf_counter() - t0
                self._report("process", short_repr(item))
                conn.send({"command": "fail", "id": tid})
                continue
            self.seconds += time.perf_counter() - t0
            self._flush_bolt(tid)
            conn.send({"command": "ack", "id": tid})


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
    logger = logging.getLogger("noisecorr")
    logger.setLevel(logging.INFO)
    logger.addHandler(MultilangLogHandler(conn))
    try:
        host = Host(args.spec, layout, args.pe, setup, conn)
    except Exception:
        conn.log(f"noisecorr: cannot start PE {args.pe!r}:\n{traceback.format_exc()}", 4)
        raise
    if host.info["kind"] == "spout":
        host.run_spout()
    else:
        host.run_bolt()
    return 0


if __name__ == "__main__":
    sys.exit(main())
