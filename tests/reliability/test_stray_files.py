"""Stray files in an archive never stop a run: each is left out, named with its reason in
summary.json ("skipped_files"), and the results equal those of the run without them.

Corpus (made here, beside the good miniSEED of tests/data/bad/clean, stations S0001-S0004):
a SEG-Y file with an extended textual header (ObsPy raises NotImplementedError), a text
note, a zip of a note, an empty file, a miniSEED file cut inside its first record, a
directory named like a waveform file, a link to nothing and a link loop.

Exit status: in a plain folder the junk is only listed (exit 0) except the truncated
miniSEED, which is damaged waveform data and counts as a skip (exit 3). In an SDS archive
the junk sits at day-file names the reader opens (the day before and after the span, so
the correlations are those of the clean run); a day file that cannot be read is a skip of
that channel (exit 3), as before.
"""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisecorr import open_results
from noisecorr.workflow import load_config, run_workflow
from pes.fetch import FileClient, index_file, read_checked

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad"
GOOD = ["S0001", "S0002", "S0003", "S0004"]


def segy_unsupported_header() -> bytes:
    """SEG-Y rev 1 with one extended textual header announced (bytes 3505-3506): ObsPy
    detects it as SEG-Y and raises NotImplementedError reading it."""
    raw = bytearray(b"\x40" * 3200) + bytearray(400)
    for offset, value in ((3212, 1), (3216, 10000), (3220, 10), (3224, 5), (3500, 0x0100), (3502, 1), (3504, 1)):
        raw[offset:offset + 2] = struct.pack(">h", value)
    return bytes(raw + bytearray(3200 + 240 + 40))


def zip_of_note() -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "station S0001 serviced on 2024-01-01\n")
    return buf.getvalue()


def good_day_file(station) -> Path:
    return BAD / "clean" / "SDS" / "2024" / "XS" / station / "BHZ.D" / f"XS.{station}..BHZ.D.2024.001"


def add_junk(names: dict) -> dict:
    """Write the corpus at ``names[kind]`` (paths); returns ``{path: kind}``."""
    made = {}
    half = good_day_file("S0001").read_bytes()[:300]  # inside the first 512-byte record
    for kind, path in names.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "segy":
            path.write_bytes(segy_unsupported_header())
        elif kind == "note":
            path.write_text("Notes: S0002 sensor swapped 2023-12-31\n")
        elif kind == "zip":
            path.write_bytes(zip_of_note())
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "half":
            path.write_bytes(half)
        elif kind == "dir":
            path.mkdir()
        elif kind == "dangling":
            os.symlink(path.parent / "does-not-exist", path)
        elif kind == "loop":
            os.symlink(path, path)
        made[str(path)] = kind
    return made


REASONS = {"segy": r"NotImplementedError", "note": "not readable waveform data", "zip": "not readable waveform data",
           "empty": "empty file", "half": "damaged miniSEED of XS.S0001..BHZ|truncated miniSEED", "dir": "directory",
           "dangling": "broken symbolic link", "loop": "symbolic link loop"}


def folder_archive(base: Path, junk: bool) -> tuple[Path, dict]:
    folder = base / "folder"
    (folder / "waveforms").mkdir(parents=True)
    shutil.copytree(BAD / "clean" / "stationxml", folder / "stationxml")
    shutil.copy(BAD / "clean" / "manifest.json", folder / "manifest.json")
    for s in GOOD:
        shutil.copy(good_day_file(s), folder / "waveforms" / f"XS.{s}..BHZ.mseed")
    w = folder / "waveforms"
    made = add_junk({"segy": w / "shot.sgy", "note": w / "README.txt", "zip": w / "notes.zip",
                     "empty": w / "XS.S0003..BHZ.2024.002.mseed", "half": w / "XS.S0001..BHZ.part.mseed",
                     "dir": w / "XS.S0002..BHZ.old.mseed", "dangling": w / "latest.mseed",
                     "loop": w / "loop.mseed"}) if junk else {}
    return folder, made


def sds_archive(base: Path, kinds=()) -> tuple[Path, dict]:
    """An SDS archive of the good stations with junk of ``kinds`` (at most 4) in the day
    files of 2023-12-31, which the reader opens for the fetch pad before 2024-01-01."""
    folder = base / "sds"
    shutil.copytree(BAD / "clean" / "stationxml", folder / "stationxml")
    shutil.copy(BAD / "clean" / "manifest.json", folder / "manifest.json")
    for s in GOOD:
        dst = folder / "SDS" / "2024" / "XS" / s / "BHZ.D"
        dst.mkdir(parents=True)
        shutil.copy(good_day_file(s), dst)
    made = add_junk({kind: folder / "SDS" / "2023" / "XS" / s / "BHZ.D" / f"XS.{s}..BHZ.D.2023.365"
                     for kind, s in zip(kinds, GOOD)})
    return folder, made


def run(base: Path, data: Path, mapping="sequential", processes=None):
    out = base / f"out_{data.name}_{mapping}"
    config = load_config(BAD / "run.yaml", overrides={"data": str(data), "out": str(out), "stations": 4,
                                                     "mapping": mapping, "processes": processes})
    report = run_workflow(config)
    return report, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    base = tmp_path_factory.mktemp("clean")
    report, _ = run(base, folder_archive(base, junk=False)[0])
    with open_results(report.results) as res:
        return {pair: res.stack(*pair)[1] for pair in res.pairs()}


def assert_same_results(report, clean):
    with open_results(report.results) as res:
        assert sorted(res.pairs()) == sorted(clean)
        for pair, want in clean.items():
            got = res.stack(*pair)[1]
            assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want)), pair


def assert_each_junk_listed(summary, made):
    listed = {f["path"]: f for f in summary["skipped_files"]}
    for path, kind in made.items():
        assert path in listed, f"{kind} file {path} is not in skipped_files: {sorted(listed)}"
        assert re.search(REASONS[kind], listed[path]["reason"]), (kind, listed[path])


@pytest.mark.parametrize("mapping, processes", [("sequential", None), ("multiprocess", 2)])
def test_folder_with_junk_runs_lists_it_and_keeps_results(tmp_path, clean, mapping, processes):
    data, made = folder_archive(tmp_path, junk=True)
    report, summary = run(tmp_path, data, mapping, processes)
    assert_same_results(report, clean)
    assert_each_junk_listed(summary, made)
    damaged = {f["path"] for f in summary["skipped_files"] if f["damaged"]}
    assert damaged == {p for p, k in made.items() if k == "half"}
    # only the damaged miniSEED counts as a skip (exit 3); the notes etc. are only listed
    assert [who for who, _ in summary["skipped"]] == [p for p, k in made.items() if k == "half"]
    assert report.had_skips


def test_folder_with_only_non_waveform_junk_is_not_a_skip(tmp_path, clean):
    data, made = folder_archive(tmp_path, junk=True)
    half = next(Path(p) for p, k in made.items() if k == "half")
    half.unlink()
    report, summary = run(tmp_path, data)
    assert summary["skipped"] == [] and not report.had_skips
    assert len(summary["skipped_files"]) == len(made) - 1
    assert "files skipped" in report.table() and "README.txt" in report.table()
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "run", "--config", str(BAD / "run.yaml"),
                           "--data", str(data), "--stations", "4", "--out", str(tmp_path / "cli")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # listed, but not a skip
    assert "could not be read and were left out" in proc.stderr and "README.txt" in proc.stdout


@pytest.mark.parametrize("kinds", [("segy", "note", "zip", "empty"), ("half", "dir", "dangling", "loop")])
def test_sds_with_junk_runs_lists_it_and_keeps_results(tmp_path, clean, kinds):
    data, made = sds_archive(tmp_path, kinds)
    report, summary = run(tmp_path, data)
    assert_same_results(report, clean)
    assert_each_junk_listed(summary, made)
    # a day file that is not readable waveform data is a skip of its channel, as before
    assert report.had_skips and all(f["damaged"] for f in summary["skipped_files"])
    for path in made:
        assert any(path in why for _, why in summary["skipped"]), path


def test_fifo_is_listed_without_being_opened(tmp_path):
    fifo = tmp_path / "XS.S0001..BHZ.mseed"
    os.mkfifo(fifo)
    client = FileClient(tmp_path)
    assert client.filenames("XS", "S0001", "", "BHZ", 0, 1e10) == []
    assert client.skipped_files == [{"path": str(fifo), "reason": "not a regular file (FIFO)", "damaged": False}]
    assert read_checked(fifo) == (None, f"{fifo}: not a regular file (FIFO)")


def test_plain_subfolders_are_walked_not_listed(tmp_path):
    (tmp_path / "2024" / "notes").mkdir(parents=True)
    shutil.copy(good_day_file("S0001"), tmp_path / "2024" / "notes" / "a.mseed")
    client = FileClient(tmp_path)
    assert client.filenames("XS", "S0001", "", "BHZ", 0, 1e10) == [str(tmp_path / "2024" / "notes" / "a.mseed")]
    assert client.skipped_files == []


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4000), keep_header=st.booleans())
def test_random_files_never_escape_either_reader(tmp_path, data, keep_header):
    """Random bytes (some behind a real miniSEED record header) into the folder reader's
    index and into the reader both SDS and folder clients use: a named reason or data."""
    if keep_header:
        data = good_day_file("S0002").read_bytes()[:48] + data
    path = tmp_path / "XS.S0002..BHZ.D.2024.001"
    path.write_bytes(data)
    traces, skipped = index_file(path)
    assert (traces is None) != (skipped is None)
    if skipped is not None:
        assert skipped["path"] == str(path) and skipped["reason"]
        if keep_header and len(data) >= 20:
            assert skipped["damaged"] and "XS.S0002..BHZ" in skipped["reason"]
    stream, problem = read_checked(path)
    assert (stream is None) != (problem is None)
    if problem is not None:
        assert problem.startswith(f"{path}: ")


def test_unreadable_file_is_named_permission_denied():
    """A file without read permission. Root reads any file, so as root the readers run in a
    child process stripped of the capabilities that bypass file permissions (``setpriv``
    drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH); it keeps uid 0, so it still reads the
    checkout and its virtual environment wherever the clone lies (a ``nobody`` child cannot
    enter a clone under a private ``mktemp -d`` folder)."""

    folder = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        folder.chmod(0o755)
        path = folder / "XS.S0001..BHZ.mseed"
        shutil.copy(good_day_file("S0001"), path)
        path.chmod(0)
        code = ("import sys; sys.path.insert(0, sys.argv[2]); from pes.fetch import index_file, read_checked; "
                "print(index_file(sys.argv[1])[1]['reason']); print(read_checked(sys.argv[1])[1])")
        caps = "-dac_override,-dac_read_search"
        drop = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"] if os.geteuid() == 0 else []
        proc = subprocess.run([*drop, sys.executable, "-c", code, str(path), str(ROOT)], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == ["cannot open (Permission denied)", f"{path}: cannot open (Permission denied)"]
    finally:
        shutil.rmtree(folder)


@pytest.mark.mpi
def test_folder_with_junk_under_mpi_lists_it_once(tmp_path, clean):
    """Each rank's Fetch indexes the folder; rank 0's summary lists every file once."""
    data, made = folder_archive(tmp_path, junk=True)
    out = tmp_path / "mpi"
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "-q", "run", "--config", str(BAD / "run.yaml"),
                           "--data", str(data), "--stations", "4", "--mapping", "mpi", "-n", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr  # the truncated miniSEED is damaged data
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(f["path"] for f in summary["skipped_files"]) == sorted(made)
    assert_each_junk_listed(summary, made)
    with open_results(out / "results.h5") as res:
        assert sorted(res.pairs()) == sorted(clean)
