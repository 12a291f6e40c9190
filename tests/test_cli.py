"""The command line: `noisecorr enact` loads graphs from modules and files, parses inputs,
and returns the documented exit codes."""

import json
import subprocess
import sys

import pytest

from noisecorr.cli import main

WORKFLOW = """
from noisecorr.engine import WorkflowGraph, IterativePE, ProducerPE

class Numbers(ProducerPE):
    def _process(self, inputs):
        return inputs.get("n", 1)

class Square(IterativePE):
    def _process(self, x):
        return x * x

graph = WorkflowGraph()
graph.connect(Numbers(), "output", Square(), "input")
"""


@pytest.fixture
def workflow(tmp_path):
    path = tmp_path / "my_workflow.py"
    path.write_text(WORKFLOW)
    return path


def test_enact_file_with_iterations(workflow, capsys):
    assert main(["enact", str(workflow), "-i", "3"]) == 0
    out = capsys.readouterr().out
    assert "Square.output: 3 item(s)" in out


def test_enact_file_with_json_data_multiprocess(workflow, capsys):
    data = json.dumps({"Numbers": [{"n": 3}, {"n": 4}]})
    assert main(["enact", str(workflow), "-d", data, "-m", "multi", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "Square.output: 2 item(s)" in out and "9" in out and "16" in out


def test_enact_data_file_feeding_a_pe_with_inputs(workflow, tmp_path, capsys):
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"Square": [{"input": 5}]}))
    assert main(["enact", f"{workflow}:graph", "-f", str(data)]) == 0
    assert "  25" in capsys.readouterr().out


def test_enact_module_attr_and_plan(capsys):
    assert main(["enact", "noisecorr.engine.examples:chain_graph", "-m", "multiprocess", "-n", "2", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "worker 0: NumberSource[0], Sink[0]" in out and "worker 1: Doubler[0]" in out
    assert "(200000, 39999800000)" in out


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["enact", "noisecorr.engine.examples", "-m", "threads"], 2, "valid mappings: sequential"),
        (["enact", "no.such.module"], 2, "cannot import module 'no.such.module'"),
        (["enact", "noisecorr.engine.examples:nothing"], 2, "has no attribute 'nothing'"),
        (["enact", "noisecorr.engine.examples", "-d", "{not json"], 2, "not valid JSON"),
        (["enact", "noisecorr.engine.examples", "-d", '{"Nope": 1}'], 2, "not in the graph"),
        (["enact", "noisecorr.engine.examples", "-i", "1", "-d", "{}"], 2, "at most one of"),
    ],
)
def test_enact_usage_errors(args, code, message, capsys):
    assert main(args) == code
    captured = capsys.readouterr()
    assert message in captured.err + captured.out


def test_console_entry_points():
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "noisecorr, version" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "enact", "--help"], capture_output=True, text=True, timeout=60)
    assert "--mapping" in proc.stdout
