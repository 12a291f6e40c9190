"""The multilang components, driven as Storm's ShellSpout/ShellBolt would drive them.

Each test packages a small graph, starts one component as a subprocess in the package's
``resources/`` directory (the command from the Flux file) and plays the Java side of
https://storm.apache.org/releases/2.x/Multilang-protocol.html by hand.
"""

import os
import pickle
import sys

import pytest

from noisecorr.engine import SimpleFunctionPE, WorkflowGraph
from noisecorr.engine.errors import PEError
from noisecorr.engine.routing import stable_hash
from noisecorr.mappings.storm.component import OUTPUT_DIR_KEY
from noisecorr.mappings.storm.flux import component_command
from noisecorr.mappings.storm.multilang import decode_item, encode_item
from noisecorr.mappings.storm.package import package
from noisecorr.testing.conformance import TEXT, Count, FailOn, Range, Square, Words
from noisecorr.testing.storm_harness import ComponentProcess

pytestmark = pytest.mark.storm


def make_package(tmp_path, graph, inputs=None, processes=2):
    return package(graph.describe(inputs), tmp_path / "pkg", processes=processes, python=sys.executable)


def context(task_components, taskid):
    """A handshake context: ``task_components`` is ``{taskid: component}`` (an acker added)."""
    tasks = {str(t): c for t, c in task_components.items()}
    tasks[str(max(task_components) + 1)] = "__acker"
    return {"task->component": tasks, "taskid": taskid, "componentid": task_components[taskid]}


class Shell:
    """One component process plus the conf/pidDir the Java side would give it."""

    def __init__(self, pkg, pe, tmp_path, tasks, taskid):
        self.pkg = pkg
        self.out = tmp_path / "out"
        self.pid_dir = tmp_path / f"pids-{taskid}"
        self.pid_dir.mkdir()
        self.proc = ComponentProcess(component_command(sys.executable, pe), pkg.resources, taskid,
                                     stderr_path=tmp_path / f"stderr-{taskid}")
        self.conf = {"topology.message.timeout.secs": 30, OUTPUT_DIR_KEY: str(self.out)}
        self.pid = self.proc.handshake(self.conf, context(tasks, taskid), self.pid_dir)

    def until(self, command, limit=10000):
        """Messages up to and including the first whose command is ``command``."""
        msgs = []
        for _ in range(limit):
            msg = self.proc.recv(timeout=20)
            assert msg is not None, "the component closed stdout" + self.proc.stderr_tail()
            msgs.append(msg)
            if isinstance(msg, dict) and msg.get("command") == command:
                return msgs
        raise AssertionError(f"no {command} in {limit} messages")

    def tuple(self, tid, comp, stream, values, task=1):
        self.proc.send({"id": tid, "comp": comp, "stream": stream, "task": task, "tuple": values})

    def close(self):
        self.proc.close()


@pytest.fixture
def shells():
    opened = []
    yield opened
    for s in opened:
        s.close()


def chain(tmp_path, n=5, middle=None, processes=2, tail=True):
    """Range(n) -> middle (default Square) [-> Tail, so that middle's output is a stream]."""
    g = WorkflowGraph()
    src = Range(n)
    mid = middle or Square(numprocesses=2)
    g.connect(src, "output", mid, "input")
    if tail:
        g.connect(mid, "output", Square(name="Tail"), "input")
    return make_package(tmp_path, g, processes=processes), mid.name


def test_handshake_writes_pid_file_and_answers_pid(tmp_path, shells):
    pkg, _ = chain(tmp_path)
    for taskid, pe in ((1, "Range"), (3, "Square")):
        tasks = {1: "Range", 2: "Square", 3: "Square"}
        shell = Shell(pkg, pe, tmp_path, tasks, taskid)
        shells.append(shell)
        assert shell.pid == shell.proc.proc.pid
        assert os.listdir(shell.pid_dir) == [str(shell.pid)]
        assert os.path.getsize(shell.pid_dir / str(shell.pid)) == 0


def test_spout_next_emits_items_then_end_of_stream_and_syncs(tmp_path, shells):
    pkg, _ = chain(tmp_path, n=5)
    spout = Shell(pkg, "Range", tmp_path, {1: "Range", 2: "Square", 3: "Square"}, 1)
    shells.append(spout)
    spout.proc.send({"command": "next"})
    msgs = spout.until("sync")
    emits = [m for m in msgs if m["command"] == "emit"]
    data = [m for m in emits if m["stream"] == "output"]
    assert [decode_item(m["tuple"][1]) for m in data] == [0, 1, 2, 3, 4]
    assert all(m["need_task_ids"] is False and "id" in m and m["tuple"][0] == 0 for m in data)
    assert len({m["id"] for m in emits}) == len(emits), "message ids must be unique"
    eos = [m for m in emits if m["stream"] == "output__eos"]
    assert len(eos) == 1 and eos[0]["tuple"] == [0] and emits[-1] is eos[0], "end of stream comes last"
    # ack and fail are answered with sync; fail is logged, not replayed
    spout.proc.send({"command": "ack", "id": data[0]["id"]})
    assert spout.until("sync") == [{"command": "sync"}]
    spout.proc.send({"command": "fail", "id": data[1]["id"]})
    msgs = spout.until("sync")
    assert msgs[0]["command"] == "log" and data[1]["id"] in msgs[0]["msg"]
    # a finished spout emits nothing more, and still syncs
    spout.proc.send({"command": "next"})
    assert spout.until("sync") == [{"command": "sync"}]
    for cmd in ("activate", "deactivate"):
        spout.proc.send({"command": cmd})
        assert spout.until("sync") == [{"command": "sync"}]
    with open(spout.out / "Range.0.result", "rb") as f:
        summary = pickle.load(f)
    assert summary["stats"][("Range", 0)]["out"] == {"output": 5}


def test_spout_with_many_iterations_answers_each_next_in_chunks(tmp_path, shells):
    g = WorkflowGraph()
    words, count = Words(), Count(numprocesses=2)
    g.connect(words, "output", count, "input")
    pkg = make_package(tmp_path, g, {words: 600})
    spout = Shell(pkg, "Words", tmp_path, {1: "Count", 2: "Count", 3: "Words"}, 3)
    shells.append(spout)
    items, nexts = [], 0
    while True:
        spout.proc.send({"command": "next"})
        nexts += 1
        msgs = spout.until("sync")
        items += [m for m in msgs if m["command"] == "emit" and m["stream"] == "output"]
        if any(m["command"] == "emit" and m["stream"] == "output__eos" for m in msgs):
            break
    assert nexts >= 3, "600 iterations are spread over several next commands"
    words_out = [decode_item(m["tuple"][1]) for m in items]
    assert words_out == [(TEXT[i % len(TEXT)], 1) for i in range(600)]
    # group-by: the key field is the engine's stable hash of the word
    assert all(m["tuple"][0] == stable_hash(w) for m, (w, _) in zip(items, words_out))


def test_bolt_processes_tuple_emits_anchored_and_acks(tmp_path, shells):
    pkg, _ = chain(tmp_path)
    bolt = Shell(pkg, "Square", tmp_path, {1: "Range", 2: "Square", 3: "Square"}, 2)
    shells.append(bolt)
    bolt.tuple("-6955786537413359385", "Range", "output", [0, encode_item(7)])
    emit, ack = bolt.until("ack")
    assert emit == {"command": "emit", "anchors": ["-6955786537413359385"], "stream": "output",
                    "tuple": [0, encode_item(49)], "need_task_ids": False}
    assert ack == {"command": "ack", "id": "-6955786537413359385"}


def test_bolt_answers_heartbeat_with_sync(tmp_path, shells):
    pkg, _ = chain(tmp_path)
    bolt = Shell(pkg, "Square", tmp_path, {1: "Range", 2: "Square", 3: "Square"}, 3)
    shells.append(bolt)
    bolt.tuple("123", None, "__heartbeat", [], task=-1)
    assert bolt.until("sync") == [{"command": "sync"}]
    bolt.tuple("124", "Range", "output", [0, encode_item(3)])
    assert bolt.until("ack")[-1] == {"command": "ack", "id": "124"}
    bolt.tuple("125", None, "__heartbeat", [], task=-1)
    assert bolt.until("sync") == [{"command": "sync"}]


def test_bolt_finishes_after_end_of_stream_from_every_upstream_task(tmp_path, shells):
    pkg, _ = chain(tmp_path)
    # two Range tasks upstream (as the context says), this bolt is the second Square task
    tasks = {1: "Range", 2: "Range", 5: "Square", 7: "Square"}
    bolt = Shell(pkg, "Square", tmp_path, tasks, 7)
    shells.append(bolt)
    bolt.tuple("1", "Range", "output", [0, encode_item(2)], task=1)
    bolt.tuple("2", "Range", "output__eos", [0], task=1)
    msgs = bolt.until("ack") + bolt.until("ack")
    assert [m["command"] for m in msgs] == ["emit", "ack", "ack"]
    assert not (bolt.out / "Square.1.result").exists(), "one upstream task is still running"
    bolt.tuple("3", "Range", "output__eos", [1], task=2)
    emit, ack = bolt.until("ack")
    assert emit == {"command": "emit", "anchors": ["3"], "stream": "output__eos", "tuple": [1],
                    "need_task_ids": False}, "its own marker, anchored, carrying its instance (task index 1)"
    assert ack == {"command": "ack", "id": "3"}
    with open(bolt.out / "Square.1.result", "rb") as f:
        summary = pickle.load(f)
    assert summary["stats"][("Square", 1)] == {"in": {"input": 1}, "out": {"output": 1},
                                               "seconds": summary["stats"][("Square", 1)]["seconds"]}


def test_bolt_writes_unconnected_outputs_and_postprocess_items(tmp_path, shells):
    pkg, _ = chain(tmp_path, tail=False)
    bolt = Shell(pkg, "Square", tmp_path, {1: "Range", 2: "Square"}, 2)
    shells.append(bolt)
    bolt.tuple("1", "Range", "output", [0, encode_item(3)], task=1)
    assert bolt.until("ack") == [{"command": "ack", "id": "1"}], "an unconnected output emits nothing"
    bolt.tuple("2", "Range", "output__eos", [0], task=1)
    assert bolt.until("ack") == [{"command": "ack", "id": "2"}], "no stream, so no end-of-stream marker either"
    with open(bolt.out / "Square.0.result", "rb") as f:
        summary = pickle.load(f)
    assert summary["outputs"] == {("Square", "output"): [9]}


def test_failing_pe_is_logged_with_traceback_and_failed(tmp_path, shells):
    pkg, _ = chain(tmp_path, middle=FailOn(3))
    bolt = Shell(pkg, "FailOn", tmp_path, {1: "FailOn", 2: "FailOn", 3: "Range"}, 2)
    shells.append(bolt)
    bolt.tuple("10", "Range", "output", [0, encode_item(1)], task=3)
    assert bolt.until("ack")[-1]["id"] == "10"
    bolt.tuple("11", "Range", "output", [0, encode_item(3)], task=3)
    log, fail = bolt.until("fail")
    assert log["command"] == "log" and log["level"] == 4
    assert "PE 'FailOn' instance 1 failed while processing item 3" in log["msg"]
    assert "raise ValueError" in log["msg"] and "refusing item 3" in log["msg"]
    assert fail == {"command": "fail", "id": "11"}
    with open(bolt.out / "FailOn.1.error", "rb") as f:
        err = pickle.load(f)
    assert isinstance(err, PEError) and (err.pe, err.instance, err.item) == ("FailOn", 1, "3")
    # a failed instance fails what follows and never reports end of stream
    bolt.tuple("12", "Range", "output", [0, encode_item(5)], task=3)
    assert bolt.until("fail") == [{"command": "fail", "id": "12"}]
    bolt.tuple("13", "Range", "output__eos", [0], task=3)
    assert bolt.until("fail") == [{"command": "fail", "id": "13"}]
    assert not (bolt.out / "FailOn.1.result").exists()


def test_failing_source_is_logged_and_never_ends(tmp_path, shells):
    g = WorkflowGraph()
    bad, sq = Range(3), Square()
    bad.n = "not a number"  # range(start, start + n) raises TypeError in process()
    g.connect(bad, "output", sq, "input")
    pkg = make_package(tmp_path, g)
    spout = Shell(pkg, "Range", tmp_path, {1: "Range", 2: "Square"}, 1)
    shells.append(spout)
    spout.proc.send({"command": "next"})
    msgs = spout.until("sync")
    assert [m["command"] for m in msgs] == ["log", "sync"]
    assert "PE 'Range' instance 0 failed while processing item iteration 1" in msgs[0]["msg"]
    assert "TypeError" in msgs[0]["msg"]
    spout.proc.send({"command": "next"})
    assert spout.until("sync") == [{"command": "sync"}]
    assert (spout.out / "Range.0.error").exists() and not (spout.out / "Range.0.result").exists()


def test_printing_pe_does_not_corrupt_the_protocol(tmp_path, shells):
    pkg, name = chain(tmp_path, middle=SimpleFunctionPE(print, name="Printer"))
    bolt = Shell(pkg, name, tmp_path, {1: "Printer", 2: "Range", 3: "Tail"}, 1)
    shells.append(bolt)
    bolt.tuple("1", "Range", "output", [0, encode_item("hello from a PE")], task=2)
    assert bolt.until("ack") == [{"command": "ack", "id": "1"}]
    bolt.proc.close()
    assert "hello from a PE" in bolt.proc.stderr_tail()


def test_group_by_bolt_receives_key_and_payload(tmp_path, shells):
    g = WorkflowGraph()
    words, count = Words(), Count(numprocesses=2)
    g.connect(words, "output", count, "input")
    g.connect(count, "output", Square(name="Tail"), "input")
    pkg = make_package(tmp_path, g, {words: 3})
    bolt = Shell(pkg, "Count", tmp_path, {1: "Count", 2: "Count", 3: "Words", 4: "Tail"}, 1)
    shells.append(bolt)
    for i, word in enumerate(["fox", "dog", "fox"]):
        bolt.tuple(str(i), "Words", "output", [stable_hash(word), encode_item((word, 1))], task=3)
        assert bolt.until("ack")[-1]["id"] == str(i)
    bolt.tuple("9", "Words", "output__eos", [0], task=3)
    msgs = bolt.until("ack")
    items = sorted(decode_item(m["tuple"][1]) for m in msgs if m.get("stream") == "output")
    assert items == [("dog", 1), ("fox", 2)]
    assert all(m["anchors"] == ["9"] for m in msgs if m["command"] == "emit")
