"""``noisecorr registry ...`` and ``noisecorr enact registry:ws.workflow`` from the command line."""

import json

import pytest

from noisecorr.cli import main

from conftest import WORKFLOW_SOURCE, run_cli


def test_enact_registry_workflow_with_multiprocess(registry_url, workflow_file):
    proc = run_cli("registry", "add", workflow_file, "-w", "ws", "--registry", registry_url)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("enact", "registry:ws.squares", "--registry", registry_url, "-m", "multiprocess", "-n", "2")
    assert proc.returncode == 0, proc.stderr
    assert "Total.total: 1 item(s)" in proc.stdout and "('sum', 285)" in proc.stdout
    # the location from the environment, a pinned version, and a graph object
    proc = run_cli("enact", "registry:ws.small@1", "-m", "multiprocess", "-n", "2",
                   env={"NOISECORR_REGISTRY": registry_url})
    assert proc.returncode == 0, proc.stderr
    assert "('sum', 14)" in proc.stdout


@pytest.mark.mpi
def test_enact_registry_workflow_with_mpi(tmp_path, workflow_file):
    url = str(tmp_path / "registry.sqlite")
    assert main(["registry", "add", str(workflow_file), "-w", "ws", "--registry", url]) == 0
    proc = run_cli("enact", "registry:ws.squares", "--registry", url, "-m", "mpi", "-n", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "('sum', 285)" in proc.stdout


def test_add_list_show_remove(registry_url, workflow_file, capsys):
    reg = ["--registry", registry_url]
    assert main(["registry", "add", str(workflow_file), "-w", "lab", "-t", "demo", "-t", "x", *reg]) == 0
    out = capsys.readouterr().out
    assert "added     lab.Square@1" in out and "Squares each number. [demo, x]" in out
    workflow_file.write_text(WORKFLOW_SOURCE.replace("OFFSET = 0", "OFFSET = 3"))
    assert main(["registry", "add", str(workflow_file), "-w", "lab", *reg]) == 0
    assert "added     lab.Square@2" in capsys.readouterr().out

    assert main(["registry", "list", "squ", *reg]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["lab.Square@2", "lab.squares@2"]
    assert main(["registry", "list", "--tag", "demo", "--kind", "pe", "--all-versions", "--json", *reg]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["name"], e["version"]) for e in listed] == [("Numbers", 1), ("Square", 1), ("Total", 1)]
    assert main(["registry", "list", "--text", "nothing-matches-this", *reg]) == 0
    assert "no entries match" in capsys.readouterr().err

    assert main(["registry", "show", "lab.Total@1", *reg]) == 0
    out = capsys.readouterr().out
    assert "lab.Total@1  (pe)" in out and "versions:     1, 2" in out
    assert "input  input  grouping='global'" in out and "output total" in out
    assert "requirements: numpy>=1.0" in out
    assert main(["registry", "show", "lab.squares", "--source", *reg]) == 0
    out = capsys.readouterr().out
    assert "Numbers.output -> Square.input" in out and "OFFSET = 3" in out

    assert main(["registry", "remove", "lab.Square@1", *reg]) == 0
    assert capsys.readouterr().out.strip() == "removed   lab.Square@1"
    assert main(["registry", "remove", "lab.Square@1", *reg]) == 1
    assert "no entry lab.Square@1" in capsys.readouterr().err
    assert main(["registry", "show", "nope.Thing", *reg]) == 1
    assert main(["registry", "add", "no.such.module", *reg]) == 1
    assert "cannot import module 'no.such.module'" in capsys.readouterr().err


def test_export_import_and_add_builtin(registry_url, tmp_path, workflow_file, capsys):
    src = ["--registry", str(tmp_path / "src.sqlite")]
    assert main(["registry", "add-builtin", *src]) == 0
    assert "added     noisecorr.StackPE@1" in capsys.readouterr().out
    assert main(["registry", "add", str(workflow_file), "-w", "lab", *src]) == 0
    assert main(["registry", "list", "-w", "noisecorr", *src]) == 0
    out = capsys.readouterr().out
    assert "noisecorr.CrossCorrelatePE@1" in out and "Per-window correlations of all station pairs" in out
    bundle = tmp_path / "bundle.json"
    assert main(["registry", "export", str(bundle), "-w", "noisecorr", *src]) == 0
    assert "exported" in capsys.readouterr().out
    assert main(["registry", "import", str(bundle), "--registry", registry_url]) == 0
    assert "added     noisecorr.CrossCorrelatePE@1" in capsys.readouterr().out
    assert main(["registry", "info", "--registry", registry_url]) == 0
    out = capsys.readouterr().out
    assert "schema version: 3 (latest 3)" in out and "workspaces:     noisecorr" in out
