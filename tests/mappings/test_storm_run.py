"""run(graph, mapping="storm") with and without a Storm installation, and the command line."""

import os
import stat
import sys
from pathlib import Path

import cloudpickle
import pytest

from noisecorr.cli import main
from noisecorr.engine import EngineError, MappingError, PEError, SimpleFunctionPE, WorkflowGraph, run
from noisecorr.testing.conformance import FailingPE, FailOn, Range, Square, WordCount, run_case

pytestmark = pytest.mark.storm


def small_graph():
    g = WorkflowGraph()
    src, sq = Range(20), Square(numprocesses=2)
    g.connect(src, "output", sq, "input")
    return g


@pytest.fixture
def no_storm(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_run_without_storm_fails_at_once_saying_how_to_package(no_storm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MappingError) as info:
        run(small_graph(), mapping="storm")
    assert list(tmp_path.iterdir()) == [tmp_path / "empty-bin"]  # nothing packaged or launched
    text = str(info.value)
    assert "no Storm installation found" in text
    assert "noisecorr storm package MODULE[:ATTR] --out DIR" in text


def test_cli_enact_with_storm_and_no_storm_is_a_usage_error(no_storm, capsys):
    assert main(["enact", "noisecorr.engine.examples", "-m", "storm"]) == 2
    assert "no Storm installation found" in capsys.readouterr().err


def test_cli_package_then_harness_then_collect(tmp_path, capsys):
    out = tmp_path / "topo"
    code = main(["storm", "package", "noisecorr.engine.examples", "-i", "1", "--out", str(out), "-n", "4",
                 "--python", sys.executable, "--name", "chain"])
    assert code == 0
    text = capsys.readouterr().out
    assert "topology 'chain' written" in text and "org.apache.storm.flux.Flux --remote" in text
    assert main(["storm", "validate", str(out / "topology.yaml")]) == 0
    assert main(["storm", "collect", str(out)]) == 1, "nothing ran yet"
    assert "not finished yet" in capsys.readouterr().err
    from noisecorr.testing.storm_harness import run_package

    result = run_package(out)
    assert result.outputs[("Sink", "output")] == [(1000, 999000)]
    capsys.readouterr()
    assert main(["storm", "collect", str(out)]) == 0
    assert "Sink.output: 1 item(s)" in capsys.readouterr().out
    (out / "bad.yaml").write_text("name: x\nspouts: []\nbolts: []\nstreams: []\n")
    assert main(["storm", "validate", str(out / "bad.yaml")]) == 1


class ByKey(Square):
    """Group-by on a configurable key list (pickled by value for the components)."""

    def __init__(self, name, keys):
        super().__init__(name=name, numprocesses=3)
        self.inputconnections["input"]["grouping"] = keys
        self.seen = set()

    def _process(self, x):
        self.seen.add(x[self.inputconnections["input"]["grouping"][0]])

    def postprocess(self):
        self.write("output", (self.instance, tuple(sorted(self.seen))))


class Pairs(Square):
    def _process(self, x):
        return (x % 5, x % 3)


def test_consumers_grouping_by_different_keys_through_the_harness():
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        g = WorkflowGraph()
        src, pairs = Range(60), Pairs(name="Pairs")
        g.connect(src, "output", pairs, "input")
        g.connect(pairs, "output", ByKey("ByFirst", [0]), "input")
        g.connect(pairs, "output", ByKey("BySecond", [1]), "input")
        result = run(g, mapping="storm", harness=True, processes=8)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    for name, n in (("ByFirst", 5), ("BySecond", 3)):
        rows = result.outputs[(name, "output")]
        keys = [k for _, seen in rows for k in seen]
        assert sorted(keys) == list(range(n)), f"{name}: every key at exactly one instance"


def fake_storm(bindir, body):
    """A ``storm`` launcher on PATH that emulates ``storm local`` with the harness."""
    bindir.mkdir(exist_ok=True)
    path = bindir / "storm"
    path.write_text(f"#!{sys.executable}\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


LOCAL = """
import os, shutil, sys, tempfile, time, zipfile
open(os.environ["FAKE_STORM_PID"], "w").write(str(os.getpid()))
args = sys.argv[1:]
assert args[0] == "local", args
i, opts = 1, {}
while args[i].startswith("--"):
    opts[args[i]] = args[i + 1]
    i += 2
jar, main, yaml_path = args[i:i + 3]
assert main == "org.apache.storm.flux.Flux", main
assert all(os.path.isfile(j) for j in opts["--jars"].split(","))
work = tempfile.mkdtemp()
with zipfile.ZipFile(jar) as z:  # the supervisor extracts resources/ from the topology jar
    z.extractall(work)
shutil.copy(yaml_path, os.path.join(work, "topology.yaml"))
from noisecorr.testing.storm_harness import LocalStormHarness
try:
    LocalStormHarness(work, timeout=float(opts["--local-ttl"])).run()
except Exception as exc:  # a topology keeps running after a failed tuple
    print("topology error:", exc)
time.sleep(float(opts["--local-ttl"]))  # the local cluster lives until its TTL
open(os.environ["FAKE_STORM_TTL_REACHED"], "w").close()
"""


@pytest.fixture
def with_fake_storm(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    fake_storm(bindir, LOCAL)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    jars = [tmp_path / "flux-core-2.6.4.jar", tmp_path / "flux-wrappers-2.6.4.jar"]
    for j in jars:
        j.write_bytes(b"")
    monkeypatch.setenv("NOISECORR_FLUX_JARS", ",".join(map(str, jars)))
    # the fake storm writes its pid, and a file if it lives to its TTL (if the run did not stop it)
    monkeypatch.setenv("FAKE_STORM_PID", str(tmp_path / "storm.pid"))
    monkeypatch.setenv("FAKE_STORM_TTL_REACHED", str(tmp_path / "ttl-reached"))
    return bindir


def stopped_before_ttl(bindir):
    """Whether the run stopped the fake storm: it is no longer running (or a zombie) and did
    not live to its TTL."""
    if (bindir.parent / "ttl-reached").exists():
        return False
    pid = int((bindir.parent / "storm.pid").read_text())
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True  # gone
    return state in ("Z", "X")


def test_run_with_storm_submits_and_stops_when_the_workflow_ends(with_fake_storm):
    run_case(WordCount(), "storm", ttl=120)
    assert stopped_before_ttl(with_fake_storm), "stopped when every task finished, not at the TTL"


def test_run_with_storm_surfaces_a_pe_failure(with_fake_storm):
    err = run_case(FailingPE(), "storm", ttl=120)
    assert isinstance(err, PEError) and err.instance in (0, 1)


def test_storm_that_exits_early_is_an_error(tmp_path, monkeypatch, with_fake_storm):
    fake_storm(with_fake_storm, "import sys\nprint('cannot start the local cluster')\nsys.exit(1)\n")
    with pytest.raises(EngineError, match="exited with status 1") as info:
        run(small_graph(), mapping="storm", ttl=60)
    assert "cannot start the local cluster" in str(info.value)


def test_storm_without_flux_jars_says_what_to_give(tmp_path, monkeypatch, with_fake_storm):
    monkeypatch.delenv("NOISECORR_FLUX_JARS")
    monkeypatch.setenv("STORM_HOME", str(tmp_path / "no-storm-home"))
    with pytest.raises(MappingError, match="Flux jars"):
        run(small_graph(), mapping="storm")


def test_storm_log_saying_a_shell_component_died_stops_the_run(monkeypatch, with_fake_storm):
    fake_storm(with_fake_storm, "import os, sys, time\nopen(os.environ['FAKE_STORM_PID'], 'w').write(str(os.getpid()))\n"
                                "print('ERROR Halting process: ShellBolt died. Command: [python3]', flush=True)\n"
                                "time.sleep(60)\nopen(os.environ['FAKE_STORM_TTL_REACHED'], 'w').close()\n")
    with pytest.raises(EngineError, match="a shell component died"):
        run(small_graph(), mapping="storm", ttl=60)
    assert stopped_before_ttl(with_fake_storm)  # stopped on the log line, not at the TTL


def test_harness_reports_a_component_process_that_dies():
    g = WorkflowGraph()
    src, die = Range(2, start=3), SimpleFunctionPE(os._exit, name="Exit")
    g.connect(src, "output", die, "input")
    with pytest.raises(EngineError, match=r"component process of Exit\[\d\] .* exited with status 3"):
        run(g, mapping="storm", harness=True)


def test_progress_is_reported_at_the_end():
    seen = []
    run(small_graph(), mapping="storm", harness=True, progress=seen.append)
    assert seen == [{"Range": {"in": 0, "out": 20}, "Square": {"in": 20, "out": 20}}]


def test_unknown_option_is_refused():
    with pytest.raises(TypeError, match="unknown option"):
        run(small_graph(), mapping="storm", harness=True, colour="blue")


def test_failing_pe_through_the_harness_names_pe_instance_and_item():
    g = WorkflowGraph()
    src, bad = Range(10), FailOn(4)
    g.connect(src, "output", bad, "input")
    with pytest.raises(PEError) as info:
        run(g, mapping="storm", harness=True)
    err = info.value
    assert (err.pe, err.item, err.phase) == ("FailOn", "4", "process")
    assert "Storm task" in str(err) and "refusing item 4" in err.remote_traceback
