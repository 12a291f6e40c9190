"""``noisecorr run --append``: an appended survey equals a one-shot run over the whole span.

Ground truth: a single run over [0 h, 3 h) of the same synthetic network with the same
parameters (chunks of 1 h, one sub-stack span per chunk). The per-chunk rows of the appended
file must be those of the one-shot run bit for bit (the same chunks computed the same way),
the total stacks equal within float32 rounding of the recombination (1e-5 of the peak).
"""

import json
import shutil

import numpy as np
import pytest
import yaml

from noisecorr import open_results
from noisecorr.cli import main
from noisecorr.results.append import AppendError
from noisecorr.synth import write_network
from noisecorr.workflow import build_workflow, load_config, run_workflow
from noisecorr.workflow.runner import APPEND_STAGING, append_workflow

T0 = "2024-01-01T00:00:00"
T2 = "2024-01-01T02:00:00"
T3 = "2024-01-01T03:00:00"
BASE = dict(chunk_length=3600.0, sampling_rate=10.0, cc_len=600.0, step=300.0, maxlag=20.0,
            freqmin=0.1, freqmax=2.0, substack=True, substack_len=3600.0)
TOL = 1e-5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("append_data")
    write_network(root, n_stations=4, hours=3, seed=3, sampling_rate=10.0, band=(0.1, 0.2, 3.0, 4.0))
    return str(root)


def config(data, out, start=T0, end=T3, **kw):
    return load_config(overrides=dict(BASE, data=data, out=str(out), start=start, end=end, **kw))


@pytest.fixture(scope="module")
def one_shot(data, tmp_path_factory):
    """Single runs over the whole span, per stack method (made on first use)."""
    made = {}

    def get(method, **kw):
        key = (method, tuple(sorted(kw.items())))
        if key not in made:
            out = tmp_path_factory.mktemp(f"one_{method}")
            made[key] = run_workflow(config(data, out, stack_method=method, **kw)).results
        return made[key]

    return get


def assert_same_results(want_path, got_path, method="linear", rows_exact=True):
    with open_results(want_path) as want, open_results(got_path) as got:
        assert got.pairs("ZZ") == want.pairs("ZZ")
        for a, b in want.pairs("ZZ"):
            w, g = want.substacks(a, b, "ZZ"), got.substacks(a, b, "ZZ")
            peak = np.abs(w.stack).max()
            assert np.abs(g.stack - w.stack).max() <= TOL * peak, f"{a}-{b} total stack differs"
            np.testing.assert_array_equal(g.starts, w.starts)
            np.testing.assert_array_equal(g.counts, w.counts)
            if rows_exact:
                np.testing.assert_array_equal(g.stacks, w.stacks)
            if method == "pws":
                np.testing.assert_array_equal(g.linear, w.linear)
                np.testing.assert_array_equal(g.phasor, w.phasor)
            assert got.meta(a, b, "ZZ")["n_windows"] == want.meta(a, b, "ZZ")["n_windows"] == w.counts.sum()


class Recorder:
    """Builds the workflow as the runner does and keeps what its Fetch was asked for."""

    def __init__(self):
        self.requests = []

    def __call__(self, cfg):
        wf = build_workflow(cfg)
        for items in wf.inputs.values():
            self.requests.extend(item["input"] for item in items)
        return wf


@pytest.mark.parametrize("method", ["linear", "pws", "robust"])
def test_append_equals_one_shot_and_skips_present_chunks(data, tmp_path, one_shot, method):
    out = tmp_path / "survey"
    first = run_workflow(config(data, out, end=T2, stack_method=method))
    assert first.pairs_written == 6
    fetched = Recorder()
    report = append_workflow(config(data, out, start=T0, end=T3, stack_method=method), build=fetched)
    # the two chunks already in the file are skipped: only 02:00-03:00 is fetched and computed
    assert report.chunks_requested == 3 and report.chunks_skipped == 2
    assert report.appended == [("2024-01-01T02:00:00.000000Z", "2024-01-01T03:00:00.000000Z")]
    assert fetched.requests and {(r["starttime"], r["endtime"]) for r in fetched.requests} == {
        (1704074400.0, 1704078000.0)}
    assert report.updated == 6 and report.new == 0 and report.unchanged == 0
    assert report.coverage_after == [("2024-01-01T00:00:00.000000Z", "2024-01-01T03:00:00.000000Z")]
    assert not (out / APPEND_STAGING).exists()
    assert_same_results(one_shot(method), report.results, method)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["appends"][-1]["chunks_skipped"] == 2


def test_append_of_what_is_there_does_nothing(data, tmp_path):
    out = tmp_path / "survey"
    run_workflow(config(data, out))
    before = (out / "results.h5").read_bytes()
    fetched = Recorder()
    report = append_workflow(config(data, out, start=T2, end=T3), build=fetched)
    assert report.chunks_requested == 1 and report.chunks_skipped == 1 and report.appended == []
    assert fetched.requests == []
    assert (out / "results.h5").read_bytes() == before


def test_append_then_append_again_in_two_steps(data, tmp_path, one_shot):
    """Hour by hour: each append adds one chunk; the default start is where the file ends."""
    out = tmp_path / "survey"
    run_workflow(config(data, out, end="2024-01-01T01:00:00"))
    for end in (T2, T3):
        cfg = config(data, out, end=end).replace(start=None)
        report = append_workflow(cfg)
        assert report.chunks_requested == 1 and report.chunks_skipped == 0
    assert_same_results(one_shot("linear"), out / "results.h5")


def test_differing_parameters_are_refused_by_name(data, tmp_path):
    out = tmp_path / "survey"
    run_workflow(config(data, out, end=T2))
    before = (out / "results.h5").read_bytes()
    with pytest.raises(AppendError) as err:
        append_workflow(config(data, out, cc_len=900.0, freqmax=1.5, stack_method="pws"))
    text = str(err.value)
    assert "3 parameters differ" in text
    assert "cc_len: file 600.0, this run 900.0" in text
    assert "freqmax: file 2.0, this run 1.5" in text
    assert 'stack_method: file "linear", this run "pws"' in text
    with pytest.raises(AppendError, match="chunk_length: file 3600.0, this run 7200.0"):
        append_workflow(config(data, out, chunk_length=7200.0))
    assert (out / "results.h5").read_bytes() == before


def test_span_off_the_chunk_grid_is_refused(data, tmp_path):
    out = tmp_path / "survey"
    run_workflow(config(data, out, end="2024-01-01T01:30:00"))  # ends inside a chunk
    with pytest.raises(AppendError, match="inside the chunk 2024-01-01T01:00:00"):
        append_workflow(config(data, out))


def test_robust_needs_one_span_per_chunk(data, tmp_path):
    out = tmp_path / "survey"
    run_workflow(config(data, out, end=T2, stack_method="robust", substack=False, substack_len=None))
    with pytest.raises(AppendError, match="robust stack .* recomputed from the stored per-chunk"):
        append_workflow(config(data, out, stack_method="robust", substack=False, substack_len=None))


def test_linear_without_substacks_updates_the_total(data, tmp_path, one_shot):
    out = tmp_path / "survey"
    run_workflow(config(data, out, end=T2, substack=False, substack_len=None))
    report = append_workflow(config(data, out, substack=False, substack_len=None))
    assert report.updated == 6
    with open_results(one_shot("linear", substack=False, substack_len=None)) as want, \
            open_results(report.results) as got:
        for a, b in want.pairs("ZZ"):
            w, g = want.stack(a, b, "ZZ")[1], got.stack(a, b, "ZZ")[1]
            assert g.ndim == 1 and np.abs(g - w).max() <= TOL * np.abs(w).max()
            assert got.meta(a, b, "ZZ")["n_windows"] == want.meta(a, b, "ZZ")["n_windows"]


def test_new_station_gets_new_pairs(data, tmp_path, one_shot):
    out = tmp_path / "survey"
    run_workflow(config(data, out, end=T2, stations=3))
    report = append_workflow(config(data, out, stations=4))
    assert report.stations_new == ["XS.S0004"]
    assert report.updated == 3 and report.new == 3 and report.unchanged == 0
    with open_results(one_shot("linear")) as want, open_results(report.results) as got:
        assert got.pairs("ZZ") == want.pairs("ZZ")
        for a, b in got.pairs("ZZ"):
            g, w = got.substacks(a, b, "ZZ"), want.substacks(a, b, "ZZ")
            if b != "XS.S0004":
                np.testing.assert_array_equal(g.stacks, w.stacks)
                continue
            # a pair of the new station has only the appended chunk: the one-shot's last row
            np.testing.assert_array_equal(g.starts, w.starts[-1:])
            np.testing.assert_array_equal(g.stacks, w.stacks[-1:])
            np.testing.assert_allclose(g.stack, w.stacks[-1], rtol=0, atol=TOL * np.abs(w.stacks[-1]).max())


class Interrupt(RuntimeError):
    pass


def failing_build(after):
    """A workflow whose Whiten PE raises on its ``after``-th item (a run killed mid-way)."""

    def build(cfg):
        wf = build_workflow(cfg)
        pe = wf.pes["Whiten"]
        process, seen = pe._process, []

        def dying(item):
            seen.append(1)
            if len(seen) == after:
                raise Interrupt(f"interrupted at item {after}")
            return process(item)

        pe._process = dying
        return wf

    return build


def test_interrupted_append_loses_nothing(data, tmp_path, one_shot):
    out = tmp_path / "survey"
    run_workflow(config(data, out, end=T2, stack_method="pws"))
    before = (out / "results.h5").read_bytes()
    with pytest.raises(Exception, match="interrupted at item 3"):
        append_workflow(config(data, out, stack_method="pws"), build=failing_build(3))
    assert (out / "results.h5").read_bytes() == before  # the file was never touched
    assert (out / APPEND_STAGING).is_dir()
    report = append_workflow(config(data, out, stack_method="pws"))
    assert report.chunks_skipped == 2 and not (out / APPEND_STAGING).exists()
    assert_same_results(one_shot("pws"), report.results, "pws")


def test_append_interrupted_after_the_merge_is_not_added_twice(data, tmp_path, one_shot, monkeypatch):
    """A crash after the merged file replaced the old one but before the staging run was
    removed: the rerun must see that span as merged, not add its windows again."""
    out = tmp_path / "survey"
    run_workflow(config(data, out, end=T2))

    def crash(path, *a, **k):
        raise Interrupt(f"killed before removing {path}")

    monkeypatch.setattr(shutil, "rmtree", crash)
    with pytest.raises(Interrupt):
        append_workflow(config(data, out))
    monkeypatch.undo()
    assert (out / APPEND_STAGING).is_dir()
    report = append_workflow(config(data, out))
    assert report.appended == [] and report.chunks_skipped == 3
    assert not (out / APPEND_STAGING).exists()
    assert_same_results(one_shot("linear"), out / "results.h5")


def test_append_interrupted_during_the_merge_leaves_the_file(data, tmp_path, one_shot, monkeypatch):
    from noisecorr.results import writer

    out = tmp_path / "survey"
    run_workflow(config(data, out, end=T2))
    before = (out / "results.h5").read_bytes()
    write_pair, calls = writer.ResultsWriter.write_pair, []

    def dying(self, *a, **k):
        calls.append(self.path.name)
        if calls.count("results.h5.append.h5") == 4:  # the merge's 4th pair (not the staging run's)
            raise Interrupt("killed mid-merge")
        return write_pair(self, *a, **k)

    monkeypatch.setattr(writer.ResultsWriter, "write_pair", dying)
    with pytest.raises(Interrupt):
        append_workflow(config(data, out))
    monkeypatch.undo()
    assert (out / "results.h5").read_bytes() == before
    report = append_workflow(config(data, out))
    assert report.runs[0].pairs_resumed == 6  # the staged span was complete: not recomputed
    assert_same_results(one_shot("linear"), out / "results.h5")


def test_cli_append(data, tmp_path, one_shot, capsys):
    out = tmp_path / "survey"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"data": data, **BASE}))
    assert main(["run", "--config", str(cfg), "--out", str(out), "--start", T0, "--end", T2]) == 0
    assert main(["run", "--config", str(cfg), "--out", str(out), "--append", "--end", T3]) == 0
    text = capsys.readouterr().out
    assert "1 computed, 0 already in the file (skipped)" in text
    assert_same_results(one_shot("linear"), out / "results.h5")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": data, **BASE, "step": 150.0}))
    assert main(["run", "--config", str(bad), "--out", str(out), "--append", "--end", T3]) == 2
    assert "step: file 300.0, this run 150.0" in capsys.readouterr().err


CHUNKS = {k: v for k, v in BASE.items() if k not in ("substack", "substack_len")}


def chunk_config(data, out, start=T0, end=T3, **kw):
    """``keep: chunks`` (one series row per 1 h chunk) instead of explicit sub-stacks."""
    return load_config(overrides=dict(CHUNKS, keep="chunks", data=data, out=str(out), start=start,
                                      end=end, **kw))


def assert_series_grew(want_path, got_path, n_after, rows_exact=True):
    """Every pair's series has ``n_after`` rows, equal to ``want``'s bit for bit
    (``rows_exact``) or within ``TOL`` of each row's peak (another mapping: other float
    summation order)."""
    with open_results(want_path) as want, open_results(got_path) as got:
        assert got.pairs("ZZ") == want.pairs("ZZ")
        for a, b in want.pairs("ZZ"):
            tw, _, aw, nw = want.series(a, b, "ZZ")
            tg, _, ag, ng = got.series(a, b, "ZZ")
            assert len(tg) == n_after and len(tw) == n_after
            np.testing.assert_array_equal(tg, tw)
            np.testing.assert_array_equal(ng, nw)
            if rows_exact:
                np.testing.assert_array_equal(ag, aw)
            else:
                row_peak = np.abs(aw).max(axis=1, keepdims=True)
                assert (np.abs(ag - aw) <= TOL * row_peak).all(), f"{a}-{b} chunk rows differ"
            peak = np.abs(want.stack(a, b, "ZZ")[1]).max()
            assert np.abs(got.stack(a, b, "ZZ")[1] - want.stack(a, b, "ZZ")[1]).max() <= TOL * peak


@pytest.mark.parametrize("method", ["linear", "pws"])
def test_append_with_keep_chunks_grows_the_series(data, tmp_path, method):
    """keep: chunks: two chunks, then an append of the third; the series grow from 2 to 3
    rows, equal to a one-shot keep: chunks run over the three."""
    whole = run_workflow(chunk_config(data, tmp_path / "one", stack_method=method)).results
    out = tmp_path / "survey"
    run_workflow(chunk_config(data, out, end=T2, stack_method=method))
    with open_results(out / "results.h5") as res:
        assert all(len(res.series(a, b, "ZZ")[0]) == 2 for a, b in res.pairs("ZZ"))
        first = {p: res.series(*p, "ZZ")[2] for p in res.pairs("ZZ")}
    report = append_workflow(chunk_config(data, out, end=T3, stack_method=method))
    assert report.chunks_requested == 3 and report.chunks_skipped == 2 and report.updated == 6
    assert_series_grew(whole, report.results, 3)
    with open_results(report.results) as res:  # the old rows are untouched
        for p, rows in first.items():
            np.testing.assert_array_equal(res.series(*p, "ZZ")[2][:2], rows)


@pytest.mark.mpi
def test_append_under_mpi_equals_the_sequential_append(data, tmp_path):
    """The same keep: chunks append run by ``mpiexec -n 2`` (this file as a script, below)
    gives the file of the sequential append."""
    import subprocess
    import sys
    from pathlib import Path

    seq = tmp_path / "seq"
    run_workflow(chunk_config(data, seq, end=T2))
    append_workflow(chunk_config(data, seq, end=T3))
    mpi = tmp_path / "mpi"
    run_workflow(chunk_config(data, mpi, end=T2))
    mpiexec = Path(sys.executable).parent / "mpiexec"
    assert mpiexec.exists(), f"no mpiexec next to {sys.executable}: pip install -e '.[mpi]'"
    proc = subprocess.run([str(mpiexec), "-n", "2", sys.executable, __file__, data, str(mpi)],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "appended 1 skipped 2 updated 6" in proc.stdout
    assert_series_grew(seq / "results.h5", mpi / "results.h5", 3, rows_exact=False)


if __name__ == "__main__":  # the ranks of test_append_under_mpi_equals_the_sequential_append
    import sys

    rep = append_workflow(chunk_config(sys.argv[1], sys.argv[2], end=T3, mapping="mpi"))
    if rep is not None:
        print(f"appended {len(rep.appended)} skipped {rep.chunks_skipped} updated {rep.updated}")
