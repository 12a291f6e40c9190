"""Adding modules to the registry and loading PEs and workflows back, on both backends."""

import pickle
import subprocess
import sys
import textwrap

import cloudpickle
import pytest

from noisecorr.engine import WorkflowGraph, run
from noisecorr.registry import ConflictError, NotFoundError, Registry, RegistryError
from noisecorr.registry.loader import sha256_text

from conftest import WORKFLOW_SOURCE


def test_add_registers_own_pes_and_exported_workflows(registry, workflow_file):
    added = registry.add(workflow_file, workspace="lab", tags=["demo"])
    assert {(a.entry.full_name, a.entry.kind, a.status) for a in added} == {
        ("lab.Numbers", "pe", "added"), ("lab.Square", "pe", "added"), ("lab.Total", "pe", "added"),
        ("lab.squares", "workflow", "added"), ("lab.small", "workflow", "added"),
    }  # Doubler is imported, not defined here
    for a in added:
        e = a.entry
        assert e.version == 1 and e.sha256 == sha256_text(WORKFLOW_SOURCE) and e.tags == ("demo",)
        assert e.module == "squares_wf" and e.filename == "squares_wf.py"
    square = registry.get("lab.Square")
    assert square.summary == "Squares each number."
    assert square.requirements == ["cloudpickle>=2", "numpy>=1.0"]
    assert square.ports == {"inputs": {"input": {"grouping": None, "optional": False}},
                            "outputs": ["output"], "from": "instance"}
    numbers = registry.get("lab.Numbers")
    assert numbers.summary == "Writes 0 .. n-1 (plus OFFSET)." and "travel with the class" in numbers.doc
    # Total() needs an argument: its ports come from the _add_input/_add_output calls in the source
    assert registry.get("lab.Total").ports == {
        "inputs": {"input": {"grouping": "global", "optional": False}}, "outputs": ["total"], "from": "source"}
    wf = registry.get("lab.squares")
    assert wf.summary == "Square 0 .. n-1 and sum them."
    assert wf.ports["built"] and [p["class"] for p in wf.ports["pes"]] == ["Numbers", "Square", "Total"]
    assert wf.ports["edges"] == [["Numbers", "output", "Square", "input"], ["Square", "output", "Total", "input"]]


def test_versions_auto_increment_and_same_source_is_unchanged(registry, workflow_file):
    registry.add(workflow_file, workspace="lab")
    again = registry.add(workflow_file, workspace="lab", tags=["stable"])
    assert {a.status for a in again} == {"unchanged"}
    assert registry.get("lab.Square").version == 1 and registry.get("lab.Square").tags == ("stable",)
    workflow_file.write_text(WORKFLOW_SOURCE.replace("OFFSET = 0", "OFFSET = 100"))
    changed = registry.add(workflow_file, workspace="lab")
    assert {a.entry.ref for a in changed} >= {"lab.Square@2", "lab.Numbers@2", "lab.squares@2"}
    assert [e.version for e in registry.versions("lab.Square")] == [1, 2]
    assert registry.get("lab.Square@1").sha256 != registry.get("lab.Square").sha256
    # old versions stay loadable and behave as they did
    old = run(registry.load_workflow("lab.squares@1"), mapping="sequential")
    new = run(registry.load_workflow("lab.squares"), mapping="sequential")
    assert old.outputs[("Total", "total")] == [("sum", 285)]
    assert new.outputs[("Total", "total")] == [("sum", sum((i + 100) ** 2 for i in range(10)))]


def test_explicit_versions_are_immutable(registry, workflow_file):
    assert {a.entry.version for a in registry.add(workflow_file, workspace="lab", version=7)} == {7}
    assert {a.status for a in registry.add(workflow_file, workspace="lab", version=7)} == {"unchanged"}
    workflow_file.write_text(WORKFLOW_SOURCE + "\n# changed\n")
    with pytest.raises(ConflictError, match=r"lab\.\w+@7 already exists with different source"):
        registry.add(workflow_file, workspace="lab", version=7)
    assert registry.get("lab.Square").version == 7  # nothing of the failed add was stored
    assert registry.add(workflow_file, workspace="lab")[0].entry.version == 8


def test_workspaces_keep_groups_apart(registry, workflow_file):
    registry.add(workflow_file, workspace="alice")
    workflow_file.write_text(WORKFLOW_SOURCE.replace("OFFSET = 0", "OFFSET = 1"))
    registry.add(workflow_file, workspace="bob")
    assert registry.get("alice.Square").version == registry.get("bob.Square").version == 1
    assert registry.get("alice.Square").sha256 != registry.get("bob.Square").sha256
    assert {e.workspace for e in registry.list(workspace="bob")} == {"bob"}
    with pytest.raises(NotFoundError, match="no PE carol.Square .*workspace 'carol' is empty"):
        registry.load_pe("carol.Square")


def test_load_pe_returns_working_class_and_registered_module_name(registry, workflow_file):
    registry.add(workflow_file, workspace="lab")
    Square = registry.load_pe("lab.Square")
    entry = registry.get("lab.Square")
    assert Square.__module__ == f"_noisecorr_registry__lab__Square__v1__{entry.sha256[:16]}"
    assert Square()._process(7) == 49
    assert registry.load_pe("lab.Square@1") is Square  # same module, loaded once
    with pytest.raises(NotFoundError, match="versions of that name: \\[1\\]"):
        registry.load_pe("lab.Square@2")
    with pytest.raises(NotFoundError, match="no PE lab.squares"):
        registry.load_pe("lab.squares")  # a workflow, not a PE


def test_module_target_and_workflow_arguments(registry):
    added = registry.add("noisecorr.engine.examples", workspace="ex")
    assert {a.entry.name for a in added} == {"NumberSource", "Doubler", "Sink", "Collect"}
    assert registry.get("ex.Doubler").module == "noisecorr.engine.examples"


def test_load_workflow_with_arguments_and_graph_copies(registry, workflow_file):
    registry.add(workflow_file, workspace="lab")
    result = run(registry.load_workflow("lab.squares", n=3), mapping="sequential")
    assert result.outputs[("Total", "total")] == [("sum", 5)]
    first, second = registry.load_workflow("lab.small"), registry.load_workflow("lab.small")
    assert isinstance(first, WorkflowGraph) and first is not second
    assert run(first).outputs[("Total", "total")] == [("sum", 14)]


def test_registry_pes_run_under_multiprocess_and_unpickle_elsewhere(registry, workflow_file, tmp_path):
    registry.add(workflow_file, workspace="lab")
    graph = registry.load_workflow("lab.squares")
    result = run(graph, mapping="multiprocess", processes=2)
    assert result.outputs[("Total", "total")] == [("sum", 285)]
    # A prototype carries its class by value: a fresh interpreter with no registry can use it.
    blob = tmp_path / "pe.pickle"
    blob.write_bytes(cloudpickle.dumps(registry.load_pe("lab.Numbers")(3)))
    code = textwrap.dedent(f"""
        import pickle
        pe = pickle.loads(open({str(blob)!r}, "rb").read())
        out = []
        pe._writers = {{"output": out.append}}
        pe.process({{}})
        print(type(pe).__name__, out)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"NOISECORR_REGISTRY": str(tmp_path / "absent" / "none.sqlite"), "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Numbers [0, 1, 2]"


def test_registered_code_can_recombine_other_entries(registry, workflow_file, tmp_path):
    registry.add(workflow_file, workspace="lab")
    combo = tmp_path / "combo.py"
    combo.write_text(textwrap.dedent('''
        """Cubes, built from PEs of workspace lab."""
        from noisecorr.engine import IterativePE, WorkflowGraph
        from noisecorr.registry import export_workflow, load_pe

        Numbers = load_pe("lab.Numbers")
        Total = load_pe("lab.Total@1")


        class Cube(IterativePE):
            """Cubes each number."""

            def _process(self, x):
                return x ** 3


        @export_workflow(name="cubes")
        def build():
            graph = WorkflowGraph()
            src, cube, tot = Numbers(4), Cube(), Total("cubes")
            graph.connect(src, "output", cube, "input")
            graph.connect(cube, "output", tot, "input")
            return graph
    '''))
    added = registry.add(combo, workspace="mix")
    assert {a.entry.full_name for a in added} == {"mix.Cube", "mix.cubes"}  # not the loaded PEs
    assert registry.get("mix.cubes").uses == ["lab.Numbers", "lab.Total@1"]
    graph = registry.load_workflow("mix.cubes")
    assert run(graph, mapping="multiprocess", processes=2).outputs[("Total", "total")] == [("cubes", 36)]


def test_module_with_nothing_to_register(registry, tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    with pytest.raises(RegistryError, match="defines no PE class .* nothing to register"):
        registry.add(empty)
    with pytest.raises(RegistryError, match="no such file"):
        registry.add(tmp_path / "missing.py")
    broken = tmp_path / "broken.py"
    broken.write_text("raise ValueError('boom')\n")
    with pytest.raises(RegistryError, match="ValueError: boom"):
        registry.add(broken)
    bad = tmp_path / "bad_reqs.py"
    bad.write_text("__requires__ = ['not a requirement !!']\nfrom noisecorr.engine.examples import *\n"
                   "class P(Doubler):\n    pass\n")
    with pytest.raises(RegistryError, match="invalid requirement"):
        registry.add(bad)


def test_add_builtin_registers_the_ready_made_pes(registry):
    import pkgutil

    import pes

    added = registry.add_builtin()
    modules = {f"pes.{m.name}" for m in pkgutil.iter_modules(pes.__path__)}
    assert {a.entry.module for a in added} <= modules | {"noisecorr.registry.builtin_workflows"}
    assert len(added) >= 6
    listed = registry.list(workspace="noisecorr", tag="builtin")
    assert {e.name for e in listed} >= {"FetchPE", "PreprocessPE", "CrossCorrelatePE", "StackPE"}
    assert all(e.summary for e in listed if e.kind == "pe")
    cc = registry.get("noisecorr.CrossCorrelatePE")
    assert cc.ports["inputs"]["input"]["grouping"] == ["chunk"] and cc.package == "pes"
    assert registry.load_pe("noisecorr.StackPE").__name__ == "StackPE"
    assert {a.status for a in registry.add_builtin()} == {"unchanged"}
    # the ambient-noise workflow: built at registration, self-contained when loaded
    wf = registry.get("noisecorr.ambient_noise")
    assert wf.kind == "workflow" and wf.summary.startswith("Fetch -> Preprocess -> Normalise")
    assert [p["name"] for p in wf.ports["pes"]][-1] == "Requests"
    graph = registry.load_workflow("noisecorr.ambient_noise")
    spec = graph.describe()
    assert [p.name for p in spec.pes if p.is_source] == ["Requests"]
    assert len(spec.pe("Requests").instantiate().requests) > 0
