"""Rendering of the SLURM job scripts (no SLURM needed): every template renders into a script
that bash accepts, with `set -euo pipefail` and the #SBATCH lines the options and profiles ask
for; invalid options fail before anything is written, naming the option."""

import shutil
import subprocess

import pytest

from noisecorr.cli import main
from noisecorr.slurm.options import JobOptions, estimate_memory_mb
from noisecorr.slurm.profiles import available_profiles, load_profile
from noisecorr.slurm.render import RunSpec, render_job, templates_dir
from noisecorr.signal.params import CorrelationParams

SPAN = dict(start="2024-01-01T22:30:00", end="2024-01-02T01:30:00")


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "hourly.yaml"
    path.write_text("chunk_length: 3600\nprocessing: {cc_len: 900.0, step: 450.0, maxlag: 60.0}\n")
    return str(path)


def _render(kind, tmp_path, profile="generic", run=None, **options):
    opts = JobOptions(kind=kind, out=str(tmp_path / "out"), **options)
    return render_job(opts, load_profile(profile), run or RunSpec(stations=6, **SPAN))


def _sbatch(text):
    return [line[len("#SBATCH "):] for line in text.splitlines() if line.startswith("#SBATCH ")]


def _check_script(text, tmp_path):
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "set -euo pipefail" in lines
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert all(i < first_command for i, line in enumerate(lines) if line.startswith("#SBATCH")), \
        "sbatch reads #SBATCH lines only before the first command"
    assert "{{" not in text and "}}" not in text
    path = tmp_path / "job.sbatch"
    path.write_text(text)
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_templates_are_the_four_jobs():
    assert sorted(p.name for p in templates_dir().glob("*.sbatch")) == [
        "array.sbatch", "merge.sbatch", "mpi.sbatch", "multiprocess.sbatch"]


@pytest.mark.parametrize("profile", available_profiles())
@pytest.mark.parametrize("kind,options", [
    ("mpi", dict(nodes=2, tasks_per_node=4, launcher="srun")),
    ("mpi", dict(nodes=2, tasks_per_node=4, launcher="mpiexec")),
    ("multiprocess", dict(cpus_per_task=8)),
    ("array", dict(cpus_per_task=2, max_parallel=2)),
    ("array", dict(cpus_per_task=1)),
])
def test_every_template_renders_and_passes_bash_n(profile, kind, options, tmp_path, config_file):
    options = dict(options, time="00:20:00", account="pn12ab")
    if profile == "supermuc-ng":
        options["partition"] = "test"
    jobs = _render(kind, tmp_path, profile=profile, run=RunSpec(config=config_file, stations=6, **SPAN), **options)
    assert [j.kind for j in jobs] == (["array", "merge"] if kind == "array" else [kind])
    for job in jobs:
        _check_script(job.text, tmp_path)
        assert "--resume" in job.text or job.kind == "merge"


def test_mpi_sbatch_lines_from_options(tmp_path):
    (job,) = _render("mpi", tmp_path, nodes=3, tasks_per_node=4, cpus_per_task=2, mem="6G", time="02:00:00",
                     partition="compute", account="geo", qos="normal", job_name="ambient",
                     sbatch=["--constraint=haswell"], modules=["gcc/12", "openmpi"],
                     activate="source /opt/venv/bin/activate")
    out = tmp_path / "out"
    assert _sbatch(job.text) == [
        "--job-name=ambient", f"--output={out}/logs/%x-%j.out", "--partition=compute", "--account=geo",
        "--qos=normal", "--nodes=3", "--ntasks-per-node=4", "--cpus-per-task=2", "--mem=6144M",
        "--time=02:00:00", "--constraint=haswell"]
    assert "module load gcc/12\nmodule load openmpi\nsource /opt/venv/bin/activate\nset -u" in job.text
    assert 'srun --mpi=pmi2 --ntasks="$SLURM_NTASKS"' in job.text
    assert "mpiexec" not in job.text.split("set -euo pipefail")[1]
    # the run plans within 80 % of --mem, shared by the 4 ranks of a node, for 12 ranks
    per_rank = int(0.8 * 6144 * 2**20) // 4
    assert f"--mapping mpi --start 2024-01-01T22:30:00.000000Z --end 2024-01-02T01:30:00.000000Z " \
           f"--stations 6 --memory {per_rank * 12} --out {out} --resume" in job.text
    assert job.memory_budget == per_rank * 12


def test_mpiexec_launcher_inside_the_allocation(tmp_path):
    (job,) = _render("mpi", tmp_path, nodes=2, tasks_per_node=2, launcher="mpiexec")
    assert 'mpiexec -n "$SLURM_NTASKS" python -m noisecorr run --mapping mpi' in job.text
    assert "srun --mpi" not in job.text


def test_array_and_merge(tmp_path, config_file):
    array, merge = _render("array", tmp_path, run=RunSpec(config=config_file, chunk="1h", **SPAN),
                           cpus_per_task=2, max_parallel=2, time="00:10:00")
    out = tmp_path / "out"
    assert "--array=0-2%2" in _sbatch(array.text)
    assert f"--output={out}/logs/%x-%A_%a.out" in _sbatch(array.text)
    assert array.spans == [("2024-01-01T22:30:00.000000Z", "2024-01-01T23:30:00.000000Z"),
                           ("2024-01-01T23:30:00.000000Z", "2024-01-02T00:30:00.000000Z"),
                           ("2024-01-02T00:30:00.000000Z", "2024-01-02T01:30:00.000000Z")]
    assert '--mapping multiprocess --processes "$SLURM_CPUS_PER_TASK"' in array.text
    assert f"{out}/tasks" in array.text
    assert not any(s.startswith(("--array", "--dependency")) for s in _sbatch(merge.text))
    assert f"-m noisecorr merge --tasks 3 --start 2024-01-01T22:30:00.000000Z --end 2024-01-02T01:30:00.000000Z " \
           f"--out {out} {out}/tasks" in merge.text
    assert f"--output={out}/logs/%x-%j.out" in _sbatch(merge.text)


def test_array_task_script_picks_its_span(tmp_path, config_file):
    """Run the array script's own bash with a stub python: task 1 gets the second hour."""
    array, _ = _render("array", tmp_path, run=RunSpec(config=config_file, chunk="1h", **SPAN),
                       python=str(tmp_path / "fakepython"))
    stub = tmp_path / "fakepython"
    stub.write_text('#!/bin/bash\necho "ARGS $*"\n')
    stub.chmod(0o755)
    script = tmp_path / "array.sbatch"
    script.write_text(array.text)
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "1", "SLURM_CPUS_PER_TASK": "1"})
    assert proc.returncode == 0, proc.stderr
    args = next(line for line in proc.stdout.splitlines() if line.startswith("ARGS"))
    assert "--mapping sequential" in args
    assert "--start 2024-01-01T23:30:00.000000Z --end 2024-01-02T00:30:00.000000Z" in args
    assert f"--out {tmp_path}/out/tasks/task-0001 --resume" in args
    bad = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "7"})
    assert bad.returncode == 2 and "only 3 time spans" in bad.stderr
    unset = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path,
                           env={"PATH": "/usr/bin:/bin"})
    assert unset.returncode != 0 and "job array" in unset.stderr


def test_supermuc_profile(tmp_path):
    (job,) = _render("mpi", tmp_path, profile="supermuc-ng", nodes=20, tasks_per_node=48, partition="general",
                     time="12:00:00", account="pn12ab")
    lines = _sbatch(job.text)
    assert "--partition=general" in lines and "--nodes=20" in lines and "--ntasks-per-node=48" in lines
    assert "--get-user-env" in lines and "--account=pn12ab" in lines
    assert not any(line.startswith("--mem") for line in lines), "whole nodes: no --mem"
    assert "module load slurm_setup" in job.text
    assert 'mpiexec -n "$SLURM_NTASKS"' in job.text
    (default,) = _render("multiprocess", tmp_path, profile="supermuc-ng", cpus_per_task=48, time="00:30:00")
    assert "--partition=micro" in _sbatch(default.text)


def _profile(tmp_path, memory_gb, whole_nodes=False):
    path = tmp_path / "small.yaml"
    path.write_text(f"name: small\ndescription: test nodes\nwhole_nodes: {str(whole_nodes).lower()}\n"
                    f"node: {{cpus: 64, memory_gb: {memory_gb}}}\n")
    return str(path)


def _run_plan(job, config_file, stations, mapping, workers, tmp_path):
    """The tile plan the job's own run chooses, given the --memory the job passes it."""
    from noisecorr.workflow.build import build_workflow
    from noisecorr.workflow.config import load_config

    config = load_config(config_file, overrides=dict(stations=stations, mapping=mapping, processes=workers,
                                                     memory=str(job.memory_budget), out=str(tmp_path / "run"),
                                                     **SPAN))
    return build_workflow(config).memory


def test_memory_is_the_tile_plan_of_the_run(tmp_path, config_file):
    """--mem comes from the planner's model: the run, told 80 % of it, takes the same plan."""
    from noisecorr.tiles.plan import PROCESS_OVERHEAD

    (job,) = _render("mpi", tmp_path, run=RunSpec(config=config_file, stations=6, **SPAN), tasks_per_node=2)
    assert job.memory_estimated and job.plan is not None
    # each rank: the process overhead (1 GB) and a little for 6 stations; 2 ranks / 0.8
    need = 2 * job.plan.peak_bytes / 0.8 / 2**20
    assert 2 * PROCESS_OVERHEAD / 0.8 / 2**20 < need <= job.memory_mb < need + 256 and job.memory_mb % 256 == 0
    assert f"--mem={job.memory_mb}M" in _sbatch(job.text)
    assert job.memory_budget == 2 * (int(0.8 * job.memory_mb * 2**20) // 2)
    assert f"--memory {job.memory_budget} " in job.text
    chosen = _run_plan(job, config_file, 6, "mpi", 2, tmp_path)
    assert (chosen["block_size"], chosen["panel_size"], chosen["store"]) == \
        (job.plan.block_size, job.plan.panel_size, job.plan.store)
    assert chosen["peak_bytes_per_worker"] == job.plan.peak_bytes <= chosen["per_worker_budget_bytes"]


def test_a_large_network_fits_the_node_with_factors_on_disk(tmp_path):
    """1,000 stations for a day: in memory the factors need more than a 6 GB node; the
    estimate is the best plan within the node (factors on disk), and says so."""
    profile = _profile(tmp_path, 6)
    opts = JobOptions(kind="mpi", out=str(tmp_path / "out"), nodes=4, tasks_per_node=2)
    (job,) = render_job(opts, load_profile(profile), RunSpec(stations=1000, start="2024-01-01", end="2024-01-02"))
    assert job.plan.store == "disk" and job.memory_mb <= 6 * 1024
    assert job.memory_mb * 0.8 * 2**20 >= 2 * job.plan.peak_bytes
    assert "factors in disk" in job.memory_note
    (free,) = render_job(JobOptions(kind="mpi", out=str(tmp_path / "out"), nodes=4, tasks_per_node=2),
                         load_profile("generic"), RunSpec(stations=1000, start="2024-01-01", end="2024-01-02"))
    assert free.plan.store == "memory" and free.memory_mb > 6 * 1024   # no node size known: the preferred plan
    whole = _profile(tmp_path, 6, whole_nodes=True)
    (job,) = render_job(JobOptions(kind="mpi", out=str(tmp_path / "out"), nodes=4, tasks_per_node=2),
                        load_profile(whole), RunSpec(stations=1000, start="2024-01-01", end="2024-01-02"))
    assert job.memory_mb is None and job.memory_budget is None and " --memory " not in job.text


def test_too_little_memory_fails_before_submitting(tmp_path, config_file, capsys):
    # a node of 1 GB cannot hold even one worker's process overhead
    assert main(["slurm", "mpi", "--profile", _profile(tmp_path, 1), "--out", str(tmp_path / "o"),
                 "--config", config_file, "--stations", "6", "--start", SPAN["start"], "--end", SPAN["end"]]) == 2
    assert "--nodes: the run does not fit within 80% of a node's 1 GB" in capsys.readouterr().err
    assert main(["slurm", "multiprocess", "--mem", "1G", "--out", str(tmp_path / "o"), "--config", config_file,
                 "--stations", "6", "--start", SPAN["start"], "--end", SPAN["end"]]) == 2
    err = capsys.readouterr().err
    assert "--mem: 1024 MB per node gives the run" in err and "too little" in err


def test_the_per_pair_path_keeps_its_own_estimate(tmp_path, config_file):
    from noisecorr.workflow.config import load_config

    untiled = tmp_path / "untiled.yaml"
    untiled.write_text(open(config_file).read() + "tiled: false\n")
    (job,) = _render("mpi", tmp_path, run=RunSpec(config=str(untiled), stations=6, **SPAN), tasks_per_node=2)
    p = load_config(str(untiled)).processing
    assert job.plan is None and job.memory_mb == estimate_memory_mb(6, p, 3600.0, 3, 2, nodes=1)
    p = CorrelationParams(cc_len=1800.0, step=1800.0, sampling_rate=20.0, maxlag=200.0)
    one = estimate_memory_mb(1000, p, 86400.0, 1, 48, nodes=1)
    ten = estimate_memory_mb(1000, p, 86400.0, 1, 48, nodes=10)
    assert one > ten > estimate_memory_mb(100, p, 86400.0, 1, 48, nodes=10)
    # 1,000 stations: ~14 GB of spectra and ~32 GB of float64 sums (DESIGN.md), over 10 nodes
    assert 24 * 1024 <= ten <= 40 * 1024


@pytest.mark.parametrize("argv,option", [
    (["mpi", "--profile", "supermuc-ng", "--partition", "micro", "--nodes", "17"], "--nodes"),
    (["mpi", "--profile", "supermuc-ng", "--partition", "general", "--nodes", "2"], "--nodes"),
    (["mpi", "--time", "1h"], "--time"),
    (["mpi", "--time", "12:61:00:00"], "--time"),
    (["mpi", "--profile", "supermuc-ng", "--partition", "test", "--time", "01:00:00"], "--time"),
    (["mpi", "--profile", "supermuc-ng", "--partition", "gpu"], "--partition"),
    (["mpi", "--profile", "supermuc-ng", "--tasks-per-node", "49"], "--tasks-per-node"),
    (["multiprocess", "--profile", "supermuc-ng", "--cpus-per-task", "96"], "--cpus-per-task"),
    (["mpi", "--profile", "supermuc-ng", "--mem", "200G"], "--mem"),
    (["mpi", "--mem", "lots"], "--mem"),
    (["mpi", "--nodes", "0"], "--nodes"),
    (["array", "--chunk", "1x"], "--chunk"),
    (["array", "--chunk", "90m"], "--chunk"),
    (["mpi", "--profile", "no-such-cluster"], "--profile"),
    (["mpi", "--config", "/no/such.yaml"], "--config"),
])
def test_invalid_options_fail_naming_the_option(argv, option, tmp_path, config_file, capsys):
    argv = ["slurm", *argv, "--out", str(tmp_path / "out"), "--stations", "6", "--start", SPAN["start"],
            "--end", SPAN["end"]]
    if "--chunk" in argv:
        argv += ["--config", config_file]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"Error: {option}:" in err
    assert not (tmp_path / "out").exists(), "nothing is written before the options are valid"


def test_array_refuses_non_linear_stacks(tmp_path, capsys):
    cfg = tmp_path / "pws.yaml"
    cfg.write_text("chunk_length: 3600\nprocessing: {cc_len: 900.0, stack_method: pws}\n")
    code = main(["slurm", "array", "--out", str(tmp_path / "o"), "--config", str(cfg), "--chunk", "1h",
                 "--start", SPAN["start"], "--end", SPAN["end"], "--stations", "6"])
    err = capsys.readouterr().err
    assert code == 2 and "--config:" in err and "linear" in err


def test_mpi_refuses_processes_that_differ_from_the_ranks(tmp_path, capsys):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("processes: 3\n")
    code = main(["slurm", "mpi", "--out", str(tmp_path / "o"), "--config", str(cfg), "--tasks-per-node", "2",
                 "--stations", "6", "--start", SPAN["start"], "--end", SPAN["end"]])
    assert code == 2 and "processes: 3" in capsys.readouterr().err


def test_dry_run_prints_and_writes_nothing(tmp_path, config_file, capsys):
    code = main(["slurm", "array", "--dry-run", "--out", str(tmp_path / "o"), "--config", config_file,
                 "--chunk", "1h", "--time", "10"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("#!/bin/bash") == 2 and "--array=0-2" in out
    assert "sbatch --dependency=afterok:$A" in out
    assert not (tmp_path / "o").exists()


def test_write_saves_executable_scripts(tmp_path, capsys):
    code = main(["slurm", "multiprocess", "--out", str(tmp_path / "o"), "--write", str(tmp_path / "jobs"),
                 "--cpus-per-task", "2"])
    assert code == 0
    script = tmp_path / "jobs" / "noisecorr-multiprocess.sbatch"
    assert script.is_file() and script.stat().st_mode & 0o111
    _check_script(script.read_text(), tmp_path)


def test_submit_without_sbatch_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    code = main(["slurm", "multiprocess", "--submit", "--out", str(tmp_path / "o")])
    assert code == 1 and "sbatch was not found" in capsys.readouterr().err


def test_profiles_command_lists_supermuc_partitions(capsys):
    assert main(["slurm", "profiles"]) == 0
    out = capsys.readouterr().out
    for name in ("test", "micro", "general", "large", "fat"):
        assert f"  {name}" in out


def test_bash_is_available():
    assert shutil.which("bash")
