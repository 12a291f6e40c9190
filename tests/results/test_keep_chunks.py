"""``keep: chunks``: every chunk's correlation kept per pair as its time series (issue 20 A).

Ground truth: a stationary synthetic network of 3 hours run with chunks of one hour. The
window-weighted mean of a pair's per-chunk rows is its linear stack over every window, so it
must equal the stack of an independent ``keep: stack`` run (the fast BLAS-3 tiled path, no
sub-stacks) within float32 rounding; the per-chunk rows must be the same numbers on the
tiled path (per-chunk tile sums for linear, per-window tiles for pws) and the per-pair path and under sequential, multiprocess and mpi. A
chunk with no data is a recorded gap (count 0, NaN row), a station-chunk missing lowers the
counts of its pairs' chunk only.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from obspy import UTCDateTime, read

from noisecorr import open_results
from noisecorr.synth import write_network
from noisecorr.workflow import load_config, run_workflow
from noisecorr.workflow.build import build_workflow
from noisecorr.workflow.config import ConfigError

T0 = "2024-01-01T00:00:00"
T3 = "2024-01-01T03:00:00"
T4 = "2024-01-01T04:00:00"
BASE = dict(chunk_length=3600.0, sampling_rate=10.0, cc_len=600.0, step=300.0, maxlag=20.0,
            freqmin=0.1, freqmax=2.0, start=T0, end=T3)
TOL = 2e-5
CHUNKS = [UTCDateTime(T0).timestamp + 3600.0 * k for k in range(3)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("keep_chunks_data")
    write_network(root, n_stations=4, hours=3, seed=5, sampling_rate=10.0, band=(0.1, 0.2, 3.0, 4.0))
    return root


def run(data, out, **kw):
    return run_workflow(load_config(overrides=dict(BASE, data=str(data), out=str(out), **kw))).results


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The single-run stacks (keep: stack, fast tiled path)."""
    return run(data, tmp_path_factory.mktemp("ref"))


@pytest.fixture(scope="module")
def chunks_tiled(data, tmp_path_factory):
    return run(data, tmp_path_factory.mktemp("tiled"), keep="chunks", compression="gzip")


def weighted_sum(series):
    rows, counts = series.stacks.astype(np.float64), series.counts
    good = counts > 0
    return (counts[good] @ rows[good]) / counts[good].sum()


def test_chunk_rows_sum_to_the_single_run_stack(reference, chunks_tiled):
    with open_results(reference) as ref, open_results(chunks_tiled) as res:
        assert res.pairs("ZZ") == ref.pairs("ZZ") and len(ref.pairs("ZZ")) == 6
        for a, b in ref.pairs("ZZ"):
            s = res.substacks(a, b, "ZZ")
            np.testing.assert_array_equal(s.times, CHUNKS)
            assert len(s.gaps) == 0 and ((s.counts > 5) & (s.counts <= 11)).all(), s.counts  # <= (3600-600)/300+1
            want = ref.stack(a, b, "ZZ")[1]
            peak = np.abs(want).max()
            assert np.abs(weighted_sum(s) - want).max() <= TOL * peak
            assert np.abs(s.stack - want).max() <= TOL * peak   # row 0: the full stack
            assert res.meta(a, b, "ZZ")["n_windows"] == s.counts.sum()
            # three different hours of noise: the rows differ from each other
            assert np.abs(s.stacks[0] - s.stacks[1]).max() > 1e-3 * peak


def test_dataset_is_chunked_and_compressed(chunks_tiled):
    with h5py.File(chunks_tiled, "r") as f:
        names = []
        f["pairs"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert names
        for n in names:
            ds = f["pairs"][n]
            assert ds.ndim == 2 and ds.shape[0] == 1 + 3, (n, ds.shape)
            assert ds.compression == "gzip", n
            # one HDF5 chunk per pair component (the merge copies the writer's compressed
            # chunks as stored): a pair's whole series is one chunk read
            assert ds.chunks == ds.shape, ds.chunks


def test_linear_chunks_use_the_tile_sums(data, tmp_path):
    """keep: chunks of a linear stack stays on the BLAS-3 path: one tile sum per chunk, no
    per-window correlations; pws goes through the per-window tiles into Stack."""
    def stages(**kw):
        wf = build_workflow(load_config(overrides=dict(BASE, data=str(data), out=str(tmp_path), **kw)))
        return {type(pe).__name__: getattr(pe, "per_window", None) for pe in wf.graph.pes}

    fast = stages(keep="chunks")
    assert fast["TileCorrelatePE"] is False and "TileStackPE" in fast and "StackPE" not in fast
    pws = stages(keep="chunks", stack_method="pws")
    assert pws["TileCorrelatePE"] is True and "StackPE" in pws


def test_pws_chunks_tiled_and_per_pair_agree(data, tmp_path):
    tiled = run(data, tmp_path / "t", keep="chunks", stack_method="pws")
    per_pair = run(data, tmp_path / "p", keep="chunks", stack_method="pws", tiled=False)
    assert_same_rows(per_pair, tiled)
    with open_results(tiled) as res:
        for a, b in res.pairs("ZZ"):
            lags, stack, n = res.combine_substacks(a, b, "ZZ")  # exact PWS of all windows
            want = res.stack(a, b, "ZZ")[1]
            assert n == res.meta(a, b, "ZZ")["n_windows"]
            assert np.abs(stack - want).max() <= TOL * np.abs(want).max()


def test_per_pair_path_gives_the_same_rows(chunks_tiled, data, tmp_path):
    per_pair = run(data, tmp_path, keep="chunks", tiled=False)
    with open_results(chunks_tiled) as t, open_results(per_pair) as p:
        assert t.pairs("ZZ") == p.pairs("ZZ")
        for a, b in t.pairs("ZZ"):
            st, sp = t.substacks(a, b, "ZZ"), p.substacks(a, b, "ZZ")
            np.testing.assert_array_equal(st.counts, sp.counts)
            peak = np.abs(sp.stacks).max()
            assert np.abs(st.stacks - sp.stacks).max() <= TOL * peak


def test_multiprocess_gives_the_same_rows(chunks_tiled, data, tmp_path):
    got = run(data, tmp_path, keep="chunks", compression="gzip", mapping="multiprocess", processes=2)
    assert_same_rows(chunks_tiled, got)


def assert_same_rows(want_path, got_path):
    with open_results(want_path) as w, open_results(got_path) as g:
        assert w.pairs("ZZ") == g.pairs("ZZ")
        for a, b in w.pairs("ZZ"):
            sw, sg = w.substacks(a, b, "ZZ"), g.substacks(a, b, "ZZ")
            np.testing.assert_array_equal(sw.counts, sg.counts)
            np.testing.assert_array_equal(sw.starts, sg.starts)
            assert np.abs(sw.stacks - sg.stacks).max() <= TOL * np.abs(sw.stacks).max()


@pytest.mark.mpi
def test_mpi_gives_the_same_rows(chunks_tiled, data, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(dict(BASE, data=str(data), keep="chunks", compression="gzip")))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "-q", "run", "--config", str(cfg),
                           "--mapping", "mpi", "-n", "2", "--out", str(tmp_path / "mpi")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_rows(chunks_tiled, tmp_path / "mpi" / "results.h5")


def test_missing_chunk_and_station_chunk_are_recorded_gaps(data, tmp_path, chunks_tiled):
    """Hour 3 (past the data) has no windows at all; station XS.S0002's hour 1 is cut out."""
    cut = tmp_path / "data"
    shutil.copytree(data, cut)
    files = sorted(cut.glob("SDS/2024/XS/S0002/*/XS.S0002.*"))
    assert files, "the synthetic archive has no XS.S0002 files"
    t = UTCDateTime(T0)
    for path in files:
        st = read(str(path))
        kept = st.slice(t, t + 3600 - st[0].stats.delta) + st.slice(t + 7200, t + 3 * 3600)
        assert len(kept) == 2
        kept.write(str(path), format="MSEED")
    got = run(cut, tmp_path / "out", keep="chunks", end=T4)
    name = "XS.S0002"
    with open_results(got) as res, open_results(chunks_tiled) as full:
        for a, b in res.pairs("ZZ"):
            s = res.substacks(a, b, "ZZ")
            np.testing.assert_array_equal(s.times, CHUNKS + [CHUNKS[-1] + 3600.0])
            assert s.counts[3] == 0 and np.isnan(s.stacks[3]).all()
            gaps = [CHUNKS[1], CHUNKS[-1] + 3600.0] if name in (a, b) else [CHUNKS[-1] + 3600.0]
            np.testing.assert_array_equal(s.gaps, gaps)
            if name in (a, b):
                assert s.counts[1] == 0 and np.isnan(s.stacks[1]).all()
            else:  # the other chunks are those of the full run
                f = full.substacks(a, b, "ZZ")
                np.testing.assert_array_equal(s.counts[:3], f.counts)
                assert np.abs(s.stacks[:3] - f.stacks).max() <= TOL * np.abs(f.stacks).max()
            good = s.counts > 0
            assert np.abs(weighted_sum(s) - s.stack).max() <= TOL * np.abs(s.stack).max()
            assert good.sum() >= 2


def test_keep_chunks_restricts_rows_not_stacks(reference, data, tmp_path):
    with open_results(reference) as ref:
        pairs = ref.pairs("ZZ")
        dist = sorted(ref.meta(a, b, "ZZ")["distance_km"] for a, b in pairs)
    (tmp_path / "pairs.txt").write_text(f"# kept\n{pairs[0][1]}-{pairs[0][0]}\n{pairs[3][0]}-{pairs[3][1]}\n")
    got = run(data, tmp_path / "p", keep="chunks", keep_chunks={"pairs": str(tmp_path / "pairs.txt")})
    lo, hi = dist[1], dist[3]
    got_d = run(data, tmp_path / "d", keep="chunks", tiled=False, keep_chunks={"distance_km": [lo, hi]})
    got_dt = run(data, tmp_path / "dt", keep="chunks", keep_chunks={"distance_km": [lo, hi]})
    for path, kept in ((got, lambda a, b, m: (a, b) in (pairs[0], pairs[3])),
                       (got_d, lambda a, b, m: lo <= m["distance_km"] <= hi),
                       (got_dt, lambda a, b, m: lo <= m["distance_km"] <= hi)):
        with open_results(reference) as ref, open_results(path) as res:
            assert res.pairs("ZZ") == pairs
            n_kept = 0
            for a, b in pairs:
                want = ref.stack(a, b, "ZZ")[1]
                assert np.abs(res.stack(a, b, "ZZ")[1] - want).max() <= TOL * np.abs(want).max()
                if kept(a, b, res.meta(a, b, "ZZ")):
                    n_kept += 1
                    assert res.substacks(a, b, "ZZ").stacks.shape[0] == 3
                else:
                    with pytest.raises(ValueError, match="no sub-stacks"):
                        res.substacks(a, b, "ZZ")
            assert n_kept == (2 if path == got else 3)


def test_config_errors_name_the_field(data):
    with pytest.raises(ConfigError, match="keep: 'days'"):
        load_config(overrides=dict(BASE, keep="days"))
    with pytest.raises(ConfigError, match="keep_chunks: unknown key"):
        load_config(overrides=dict(BASE, keep="chunks", keep_chunks={"maxlags": 5}))
    with pytest.raises(ConfigError, match=r"keep_chunks: components \['ZN'\]"):
        load_config(overrides=dict(BASE, keep="chunks", keep_chunks={"components": ["ZN"]}))
    with pytest.raises(ConfigError, match="pair file"):
        load_config(overrides=dict(BASE, keep="chunks", keep_chunks={"pairs": "/nonexistent/pairs.txt"}))
    with pytest.raises(ConfigError, match="processing.substack_len 1800.0 s asks for another span"):
        load_config(overrides=dict(BASE, keep="chunks", substack=True, substack_len=1800.0))
    assert load_config(overrides=dict(BASE, keep="chunks", substack=True, substack_len=3600.0)).keep == "chunks"
    with pytest.raises(ConfigError, match="multiple of processing.cc_len"):
        load_config(overrides=dict(BASE, keep="chunks", chunk_length=1000.0))


def test_disk_plan_counts_kept_chunks(data, tmp_path):
    cfg = load_config(overrides=dict(BASE, data=str(data), out=str(tmp_path), keep="chunks",
                                     keep_chunks={"components": ["ZZ"]}))
    d = build_workflow(cfg).disk
    n_lags = 2 * 200 + 1   # maxlag 20 s at 10 Hz
    assert d["pairs"] == d["pairs_keeping_chunks"] == 6 and d["chunks"] == 3
    assert d["estimate_bytes"] == 4 * n_lags * (6 + 6 * 3)
    plain = build_workflow(load_config(overrides=dict(BASE, data=str(data), out=str(tmp_path)))).disk
    assert plain["estimate_bytes"] == 4 * n_lags * 6 and plain["pairs_keeping_chunks"] == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real 200 KiB tmpfs as the output folder (root only)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_run_refused_when_the_results_do_not_fit(data, small_disk):
    """6 pairs x (1 stack + 3 chunks) x 4001 lags (maxlag 200 s) x 4 B = 384 KB > 200 KiB free;
    the 6 stacks alone (96 KB) fit."""
    over = dict(BASE, data=str(data), out=str(small_disk / "out"), keep="chunks", maxlag=200.0)
    cfg = load_config(overrides=over)
    with pytest.raises(ConfigError, match=r"results need about .* free; restrict what is kept per chunk "
                                          r"with keep_chunks"):
        build_workflow(cfg)
    # the stacks alone (keep: stack) fit: the same folder is accepted
    d = build_workflow(load_config(overrides=dict(over, keep="stack"))).disk
    assert d["estimate_bytes"] == 4 * 4001 * 6 < d["free_bytes"] <= 200 * 1024


def test_many_pairs_readers_match_one_pair_reads(chunks_tiled):
    with open_results(chunks_tiled) as res:
        pairs = res.pairs("ZZ")
        many = list(res.series_many("ZZ"))
        assert [(a, b) for a, b, _ in many] == pairs
        got_pairs, times, lags, array, counts = res.series_array("ZZ")
        assert got_pairs == pairs and array.shape == (6, 3, 401) and counts.shape == (6, 3)
        np.testing.assert_array_equal(times, CHUNKS)
        for i, (a, b) in enumerate(pairs):
            t, lg, rows, n = res.series(a, b, "ZZ")
            np.testing.assert_array_equal(array[i], rows)
            np.testing.assert_array_equal(counts[i], n)
            np.testing.assert_array_equal(many[i][2].stacks, rows)
        # listed pairs, one reversed: reversed in lag as series() gives it
        (a, b), (c, d) = pairs[0], pairs[1]
        _, sub_rev = [s for _, _, s in res.series_many("ZZ", [(a, b), (d, c)])]
        np.testing.assert_array_equal(sub_rev.stacks, res.series(d, c, "ZZ")[2])
        np.testing.assert_array_equal(sub_rev.stacks, array[1][:, ::-1])


def test_one_pair_series_is_an_index_lookup_at_many_pairs(tmp_path):
    """20,000 pairs written as one block: reading one pair's series finds it by a search of
    the sorted index, without loading the index table or touching other pairs."""
    from noisecorr.results import ResultsWriter
    from noisecorr.results.substacks import pack

    n_sta = 201  # 20,100 pairs
    codes = [f"XS.S{i:04d}" for i in range(n_sta)]
    src, rcv = map(list, zip(*[(a, b) for i, a in enumerate(codes) for b in codes[i + 1:]]))
    n, n_lags = len(src), 11
    k = np.arange(n, dtype=np.float32)[:, None, None]
    rows = k + np.arange(4, dtype=np.float32)[None, :, None] / 10 + np.zeros((1, 1, n_lags), np.float32)
    _, layout = pack({"stack": np.zeros(n_lags), "substacks": np.zeros((3, n_lags)),
                      "substack_starts": CHUNKS, "substack_counts": [2, 0, 3], "substack_len": 3600.0})
    path = tmp_path / "many.h5"
    with ResultsWriter(path, {}, sampling_rate=10.0) as w:
        w.write_block(src, rcv, "ZZ", 0.5, rows, {"n_windows": 5, **layout})
    q = 12345
    with open_results(path) as res:
        times, lags, array, counts = res.series(src[q], rcv[q], "ZZ")
        assert res._tab is None and all(f.cols is None for f in res._sets), "the index was loaded"
        np.testing.assert_array_equal(times, CHUNKS)
        np.testing.assert_array_equal(counts, [2, 0, 3])
        np.testing.assert_allclose(array[[0, 2], 0], [q + 0.1, q + 0.3], rtol=1e-6)
        assert np.isnan(array[1]).all()
        np.testing.assert_array_equal(res.substacks(src[q], rcv[q], "ZZ").gaps, [CHUNKS[1]])


def test_cli_keep_chunks_and_refusal(tmp_path, small_disk):
    """`noisecorr run --keep chunks` on the bundled sample: series kept; into the small
    tmpfs it is refused before running, naming both figures."""
    cmd = [sys.executable, "-m", "noisecorr", "-q", "run", "--keep", "chunks"]
    ok = subprocess.run(cmd + ["--out", str(tmp_path / "ok")], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with open_results(tmp_path / "ok" / "results.h5") as res:
        for a, b in res.pairs("ZZ"):
            times, lags, rows, n = res.series(a, b, "ZZ")
            assert rows.shape == (len(times), len(lags)) and n.sum() == res.meta(a, b, "ZZ")["n_windows"]
    bad = subprocess.run(cmd + ["--out", str(small_disk / "out")], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert "the results need about" in bad.stderr and "free" in bad.stderr and "keep_chunks" in bad.stderr
    assert not (small_disk / "out" / "results.h5").exists()


def test_chunk_rows_that_cannot_wait_in_memory_are_refused(data, tmp_path):
    """6 pairs x 3 chunks x 401 lags x 8 B = 57.7 kB of stacking state against 64 kB."""
    over = dict(BASE, data=str(data), out=str(tmp_path), keep="chunks", memory="64kB")
    with pytest.raises(ConfigError, match=r"keep: chunks: the chunk rows of 6 pair components x 3 chunks"):
        build_workflow(load_config(overrides=over))


def test_one_chunk_of_all_pairs(chunks_tiled, data, tmp_path):
    for path in (chunks_tiled, run(data, tmp_path, keep="chunks")):  # gzip and uncompressed
        with open_results(path) as res:
            pairs, times, lags, array, counts = res.series_array("ZZ")
            for k, t in enumerate(times):
                got_pairs, got_lags, rows, n = res.series_at(t, "ZZ")
                assert got_pairs == pairs
                np.testing.assert_array_equal(got_lags, lags)
                np.testing.assert_array_equal(rows, array[:, k])
                np.testing.assert_array_equal(n, counts[:, k])
            with pytest.raises(ValueError, match="has a chunk starting at"):
                res.series_at(times[0] + 1800.0, "ZZ")
