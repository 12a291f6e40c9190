"""The command line: `noisecorr enact` loads graphs from modules and files, parses inputs,
and returns the documented exit codes."""

import json
import os
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


# -- the lazily mounted commands ------------------------------------------------------------------
def _table_modules():
    from noisecorr.cli import LAZY_COMMANDS

    return sorted({module for module, _, _ in LAZY_COMMANDS.values()})


@pytest.mark.parametrize("module_name", _table_modules())
def test_lazy_table_lists_exactly_each_modules_commands(module_name):
    """Every command a module mounts (its ``commands()``) has a row naming that very object,
    its name and its short help; a row without a command, or a command without a row, fails."""
    import importlib

    import click

    from noisecorr.cli import LAZY_COMMANDS

    module = importlib.import_module(module_name)
    mounted = {command.name: command for command in module.commands()}
    rows = {name: (attr, text) for name, (mod, attr, text) in LAZY_COMMANDS.items() if mod == module_name}
    assert set(rows) == set(mounted)
    for name, (attr, text) in rows.items():
        command = getattr(module, attr)
        assert command is mounted[name] and isinstance(command, click.Command)
        assert command.get_short_help_str(limit=10**6) == text, name


def test_every_command_of_the_group_loads_under_its_table_name():
    import click

    from noisecorr.cli import LAZY_COMMANDS, cli

    ctx = click.Context(cli)
    names = cli.list_commands(ctx)
    assert names == sorted(names) and {"enact", "stack", *LAZY_COMMANDS} == set(names)
    for name in names:
        assert cli.get_command(ctx, name).name == name
    assert cli.get_command(ctx, "no-such-command") is None


def test_group_help_from_the_table_equals_the_help_of_the_loaded_commands():
    """``noisecorr --help`` lists the table's short help (nothing imported); once every command
    is imported it lists their own: the two listings are the same text, at two widths."""
    probe = ("import click, os, sys\n"
             "from noisecorr.cli import cli, main\n"
             "def show():\n"
             "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
             "show()\n"
             "assert 'noisecorr.workflow.cli' not in sys.modules\n"
             "print('=====')\n"
             "ctx = click.Context(cli)\n"
             "[cli.get_command(ctx, name) for name in cli.list_commands(ctx)]\n"
             "show()\n")
    for columns in ("80", "120"):
        env = {**os.environ, "COLUMNS": columns}
        out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                             env=env, timeout=120).stdout
        lazy, loaded = out.split("=====\n")
        assert "Commands:" in lazy and "  run " in lazy and "  storm " in lazy
        assert lazy == loaded
