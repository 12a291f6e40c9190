"""``noisecorr prov`` finds the store of a real ``noisecorr run --provenance`` and says which it opened.

One real run with no ``--out`` from a fresh directory (so it writes ``./noisecorr_output``,
the default), then every ``prov`` subcommand from that directory without a store, with the
folder as argument and as ``--store``; the environment is emptied of the variables that
would point elsewhere ($NOISECORR_PROVENANCE_STORE, $NOISECORR_OUT, $XDG_DATA_HOME).
"""

import contextlib
import json
import os
import sqlite3

import pytest

from noisecorr.cli import main
from noisecorr.provenance.locate import StoreNotFound, locate
from noisecorr.provenance.store import FILENAME, Store

ISOLATE = ("NOISECORR_PROVENANCE_STORE", "NOISECORR_OUT")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    for var in ISOLATE:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``(cwd, run id)``: ``noisecorr run --provenance`` run in ``cwd`` without ``--out``."""
    cwd = tmp_path_factory.mktemp("cwd")
    saved = {v: os.environ.pop(v, None) for v in ISOLATE}
    try:
        with contextlib.chdir(cwd):
            assert main(["-q", "run", "--provenance"]) == 0
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    with Store(cwd / "noisecorr_output" / FILENAME, create=False) as s:
        (run,), total = s.runs()
    assert total == 1
    return cwd, run["run_id"]


def prov(capsys, *args):
    code = main(["prov", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_without_store_finds_default_output_folder(default_run, capsys, monkeypatch):
    cwd, run_id = default_run
    monkeypatch.chdir(cwd)
    code, out, err = prov(capsys, "runs")
    assert code == 0
    store = (cwd / "noisecorr_output" / FILENAME).resolve()
    assert f"provenance store: {store} (the default output folder of `noisecorr run`, noisecorr_output)" in err
    assert out.splitlines()[0].startswith(f"{run_id}  ") and "completed" in out and out.endswith("1 run(s)\n")
    assert "provenance store" not in out  # standard output is only the listing


@pytest.mark.parametrize("form", [["REL"], ["--store", "REL"], ["ABS"], ["--store", f"ABS/{FILENAME}"]])
def test_runs_with_output_folder_or_store(default_run, capsys, monkeypatch, form):
    cwd, run_id = default_run
    monkeypatch.chdir(cwd.parent)  # elsewhere: only the argument finds it (relative or absolute)
    form = [f.replace("REL", f"{cwd.name}/noisecorr_output").replace("ABS", str(cwd / "noisecorr_output"))
            for f in form]
    code, out, err = prov(capsys, "runs", *form)
    assert code == 0, err
    assert f"provenance store: {(cwd / 'noisecorr_output' / FILENAME).resolve()}" in err
    assert out.startswith(f"{run_id}  ")


def test_export_and_serve_take_the_folder(default_run, capsys, monkeypatch, tmp_path):
    cwd, run_id = default_run
    monkeypatch.chdir(cwd)
    code, out, err = prov(capsys, "export", run_id, "--format", "json")  # found from the cwd
    assert code == 0 and "provenance store:" in err and "noisecorr_output" in err
    doc = json.loads(out)  # stdout is the PROV-JSON alone
    assert f"nc:run-{run_id}" in doc["bundle"]
    dest = tmp_path / "run.provn"
    code, out, err = prov(capsys, "export", run_id, "noisecorr_output", "--format", "provn", "-o", str(dest))
    assert code == 0 and f"bundle nc:run-{run_id}" in dest.read_text()
    # serve checks the store before binding: a wrong folder fails, naming it, and never serves
    code, out, err = prov(capsys, "serve", str(tmp_path / "missing"), "--port", "0")
    assert code == 2 and f"no provenance store at {tmp_path / 'missing'}" in err and "serving" not in err


def test_nothing_found_lists_where_it_looked(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, err = prov(capsys, "runs")
    assert code == 2 and out == ""
    assert str(tmp_path / "noisecorr_output" / FILENAME) in err
    assert str(tmp_path / "xdg" / "noisecorr" / FILENAME) in err
    assert "noisecorr run --provenance" in err and "--store" in err and "NOISECORR_PROVENANCE_STORE" in err
    for cmd in (["export", "0123456789abcdef"], ["serve", "--port", "0"]):
        code, out, err = prov(capsys, *cmd)
        assert code == 2 and "no provenance store found; looked at:" in err


def test_environment_and_user_store(default_run, capsys, monkeypatch, tmp_path):
    cwd, run_id = default_run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOISECORR_OUT", str(cwd / "noisecorr_output"))  # the run's default folder moved
    code, out, err = prov(capsys, "runs")
    assert code == 0 and out.startswith(run_id) and "the default output folder" in err
    monkeypatch.delenv("NOISECORR_OUT")
    monkeypatch.setenv("NOISECORR_PROVENANCE_STORE", str(cwd / "noisecorr_output"))
    code, out, err = prov(capsys, "runs")
    assert code == 0 and out.startswith(run_id) and "from $NOISECORR_PROVENANCE_STORE" in err
    # a named store that is not there is an error, not a fall through to the defaults
    monkeypatch.setenv("NOISECORR_PROVENANCE_STORE", str(tmp_path / "gone.sqlite"))
    code, out, err = prov(capsys, "runs")
    assert code == 2 and f"no provenance store at {tmp_path / 'gone.sqlite'} ($NOISECORR_PROVENANCE_STORE)" in err
    monkeypatch.delenv("NOISECORR_PROVENANCE_STORE")
    user = tmp_path / "xdg" / "noisecorr" / FILENAME
    Store(user).close()  # an empty store where run(graph, provenance=True) records
    code, out, err = prov(capsys, "runs")
    assert code == 0 and out == "0 run(s)\n" and f"provenance store: {user} (the user store" in err


def test_folder_whose_summary_names_the_store(capsys, monkeypatch, tmp_path):
    """``noisecorr run --provenance-store X --out OUT``: ``prov runs OUT`` follows OUT/summary.json to X."""
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "elsewhere.sqlite"
    assert main(["-q", "run", "--out", "out", "--provenance-store", str(elsewhere)]) == 0
    capsys.readouterr()
    code, out, err = prov(capsys, "runs", "out")
    assert code == 0 and f"provenance store: {elsewhere} (recorded in out/summary.json)" in err
    assert out.endswith("1 run(s)\n")
    # an output folder of a run without provenance says so
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "summary.json").write_text(json.dumps({"provenance": None}))
    code, out, err = prov(capsys, "runs", "plain")
    assert code == 2 and "plain is a folder without a provenance store" in err and "did not record provenance" in err


def test_not_a_store(capsys, tmp_path):
    h5 = tmp_path / "results.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    code, out, err = prov(capsys, "runs", str(h5))
    assert code == 2 and f"{h5} is not a provenance store: not a SQLite database" in err
    other = tmp_path / "registry.sqlite"
    with contextlib.closing(sqlite3.connect(other)) as c:
        c.execute("CREATE TABLE pes (name TEXT)")
    code, out, err = prov(capsys, "runs", "--store", str(other))
    assert code == 2 and f"{other} is not a provenance store: no table runs" in err
    code, out, err = prov(capsys, "runs", str(h5), "--store", str(other))
    assert code == 2 and "two stores given" in err


def test_locate_order(tmp_path):
    """Named beats the environment, which beats the default folder, which beats the user store."""
    folder, env_store, user = tmp_path / "a", tmp_path / "env.sqlite", tmp_path / "xdg" / "noisecorr" / FILENAME
    for path in (folder / FILENAME, env_store, user):
        Store(path).close()
    environ = {"NOISECORR_PROVENANCE_STORE": str(env_store), "NOISECORR_OUT": str(folder),
               "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert locate(str(user), environ).url == str(user)
    assert locate(None, environ).url == str(env_store)
    del environ["NOISECORR_PROVENANCE_STORE"]
    assert locate(None, environ).url == str(folder / FILENAME)
    environ["NOISECORR_OUT"] = str(tmp_path / "none")
    assert locate(None, environ).url == str(user)
    assert locate("postgresql://u:secret@h/db", environ).describe() == "postgresql://u:***@h/db (given)"
    user.unlink()
    with pytest.raises(StoreNotFound, match="no provenance store found"):
        locate(None, environ)
