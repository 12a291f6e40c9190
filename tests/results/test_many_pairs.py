"""Many pairs at once: the merge on disk writes in batches inside its budget, the index
is read as columns, the record section reads only the stacks it draws."""

import h5py
import numpy as np
import pytest

from noisecorr.results import ResultsWriter, merge_parts, open_results
from noisecorr.results.plot import PAIRS_PER_BIN, _distance_bins, record_section
from noisecorr.results.reader import Results
from noisecorr.results.writer import list_parts

FS = 10.0
PARAMS = {"cc_len": 1800}
STATIONS = [{"code": f"XS.S{i:04d}", "latitude": 47 + 0.05 * i, "longitude": 10 + 0.03 * i ** 1.5,
             "elevation": 0.0} for i in range(12)]
CODES = [s["code"] for s in STATIONS]
PAIRS = [(a, b) for i, a in enumerate(CODES) for b in CODES[i + 1:]]


def write_parts(path, maxlag=100.0, main=False, compression=None):
    """What two parallel writers leave: ZZ pairs in tiles dealt to both writers, RT substacks,
    and pairs written twice (the later part wins). ``main``: some pairs merged before."""
    n = 2 * int(round(maxlag * FS)) + 1
    if main:
        with ResultsWriter(path, PARAMS, stations=STATIONS, sampling_rate=FS,
                           compression=compression) as w:
            w.write_block([p[0] for p in PAIRS[:5]], [p[1] for p in PAIRS[:5]], "ZZ", maxlag,
                          np.full((5, n), -1.0), {"n_windows": np.full(5, 99)})
    ws = [ResultsWriter(path, PARAMS, stations=STATIONS, sampling_rate=FS, writer_id=k,
                        compression=compression, checkpoint_pairs=10) for k in range(2)]
    for t in range(0, len(PAIRS), 10):
        tile = PAIRS[t:t + 10]
        data = np.arange(t, t + len(tile))[:, None] + np.linspace(0, 1, n)[None, :]
        ws[(t // 10) % 2].write_block([p[0] for p in tile], [p[1] for p in tile], "ZZ", maxlag,
                                      data, {"n_windows": np.arange(t, t + len(tile)),
                                             "stack_method": "linear"})
    sub = np.stack([np.full((3, n), k, np.float32) for k in range(4)])
    ws[0].write_block(CODES[:4], CODES[4:8], "RT", maxlag, sub, {"n_windows": 3})
    # written again later by the other writer: these stacks win
    ws[1].write_block([PAIRS[2][0], PAIRS[40][0]], [PAIRS[2][1], PAIRS[40][1]], "ZZ", maxlag,
                      np.full((2, n), 7.0), {"n_windows": [1000, 1001]})
    for w in ws:
        w.close(merge=False)


def snapshot(path):
    """Everything the reader gives of every stored stack."""
    out = {}
    with open_results(path) as res:
        for comp in res.components():
            for s, r in res.pairs(comp):
                lags, data = res.stack(s, r, comp)
                out[(s, r, comp)] = (lags.tolist(), data.tolist(), res.meta(s, r, comp))
    return out


#: A budget too small to build these merges in memory but large enough for their index.
ON_DISK = 400 * 2**10


@pytest.mark.parametrize("main", [False, True])
def test_merge_on_disk_in_batches_reads_as_in_memory(tmp_path, main):
    memory, disk = tmp_path / "memory" / "r.h5", tmp_path / "disk" / "r.h5"
    for p in (memory, disk):
        p.parent.mkdir()
        write_parts(p, main=main)
    assert merge_parts(memory, memory=2**30).in_memory
    report = merge_parts(disk, memory=ON_DISK)
    assert not report.in_memory and report.chunks_copied == 0
    # every pair written once (the 2 pairs written twice and the main file's pairs that the
    # parts replace are not written again), in batches that fit in what the index leaves
    assert report.rows_written == len(PAIRS) + 4 == report.pairs
    assert 0 < report.batch_rows * 2001 * 4 <= ON_DISK - report.index_bytes
    assert report.batches >= (len(PAIRS) + 2) / report.batch_rows
    want = snapshot(memory)
    assert snapshot(disk) == want
    assert want[PAIRS[2] + ("ZZ",)][2]["n_windows"] == 1000  # the later write won
    assert want[PAIRS[2] + ("ZZ",)][1] == [7.0] * 2001
    assert want[(CODES[1], CODES[5], "RT")][1] == [[1.0] * 2001] * 3
    if main:
        assert want[PAIRS[0] + ("ZZ",)][2]["n_windows"] == 0  # a part replaced the main file's
    with h5py.File(disk, "r") as f:
        ds = f[f"/pairs/{PAIRS[0][0]}/{PAIRS[0][1]}/ZZ"]
        assert ds.dtype == np.float32 and len(ds.attrs) == 0 and ds.chunks is None
        assert f.attrs["n_pairs"] == len(PAIRS) + 4
    assert not list_parts(disk) and not disk.with_name("r.h5.tmp").exists()


def test_merge_of_compressed_parts_copies_chunks_as_stored(tmp_path):
    plain, packed = tmp_path / "plain" / "r.h5", tmp_path / "gzip" / "r.h5"
    plain.parent.mkdir()
    packed.parent.mkdir()
    write_parts(plain, maxlag=5.0)
    write_parts(packed, maxlag=5.0, compression="gzip")
    merge_parts(plain)
    report = merge_parts(packed, memory=ON_DISK)
    assert report.chunks_copied == len(PAIRS) + 4 and report.rows_written == 0
    assert snapshot(packed) == snapshot(plain)
    with h5py.File(packed, "r") as f:
        assert f[f"/pairs/{PAIRS[0][0]}/{PAIRS[0][1]}/ZZ"].compression == "gzip"
    with open_results(packed) as res:  # chunked stacks are read through HDF5
        for (s, r), (_, data) in zip(res.pairs("ZZ"), res.stacks("ZZ")):
            assert np.array_equal(data, res.stack(s, r)[1])


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_block_longer_than_a_write_pass_lands_pair_by_pair(tmp_path, compression):
    """One block of 190 stacks, merged on disk in batches and passes of
    :data:`~noisecorr.results.merge.WRITE_PASS` datasets, into a main file that already
    holds 12 of its pairs (across a pass boundary): every pair gets its own stack."""
    from noisecorr.results.merge import WRITE_PASS

    codes = [f"XS.B{i:03d}" for i in range(20)]
    stations = [{"code": c, "latitude": 40 + 0.1 * i, "longitude": 5.0, "elevation": 0.0}
                for i, c in enumerate(codes)]
    pairs = [(a, b) for i, a in enumerate(codes) for b in codes[i + 1:]]
    assert len(pairs) > 2 * WRITE_PASS + 1
    path, maxlag = tmp_path / "r.h5", 100.0
    n = 2 * int(round(maxlag * FS)) + 1
    old = list(range(WRITE_PASS - 6, WRITE_PASS + 6))
    with ResultsWriter(path, PARAMS, stations=stations, sampling_rate=FS,
                       compression=compression) as w:
        w.write_block([pairs[k][0] for k in old], [pairs[k][1] for k in old], "ZZ", maxlag,
                      np.full((len(old), n), -1.0), {"n_windows": np.full(len(old), 99)})
    data = np.arange(len(pairs))[:, None] + np.linspace(0, 0.5, n)[None, :]
    w = ResultsWriter(path, PARAMS, stations=stations, sampling_rate=FS, writer_id=0,
                      compression=compression, checkpoint_pairs=1000)
    w.write_block([p[0] for p in pairs], [p[1] for p in pairs], "ZZ", maxlag, data,
                  {"n_windows": np.arange(len(pairs))})
    w.close(merge=False)
    report = merge_parts(path, memory=2**20)
    assert not report.in_memory and report.pairs == len(pairs)
    if compression:
        assert report.chunks_copied == len(pairs) and report.rows_written == 0
    else:
        assert report.rows_written == len(pairs) and report.batches >= 2
        assert report.batch_rows > WRITE_PASS  # passes split the batches too
    with h5py.File(path, "r") as f:
        for k, (s, r) in enumerate(pairs):
            got = f[f"/pairs/{s}/{r}/ZZ"][()]
            assert np.array_equal(got, data[k].astype(np.float32)), (k, s, r)
    with open_results(path) as res:
        assert res.meta(*pairs[old[0]])["n_windows"] == old[0]


def test_merge_budget_too_small_for_the_index_is_refused_and_keeps_the_parts(tmp_path):
    path = tmp_path / "r.h5"
    write_parts(path, maxlag=5.0)
    parts = list_parts(path)
    with pytest.raises(MemoryError, match="memory budget is 0.0 MiB"):
        merge_parts(path, memory=10 * 2**10)
    assert list_parts(path) == parts and not path.exists()
    merge_parts(path, memory=ON_DISK)
    assert len(snapshot(path)) == len(PAIRS) + 4


@pytest.mark.parametrize("merged", [True, False])
def test_columns_and_stacks_follow_pairs(tmp_path, merged):
    path = tmp_path / "r.h5"
    write_parts(path, maxlag=5.0, main=True)
    if merged:
        merge_parts(path)
    with open_results(path) as res:
        assert len(res.pairs("ZZ")) == len(PAIRS) and len(res) == len(PAIRS) + 4
        for comp in ("ZZ", "RT"):
            pairs = res.pairs(comp)
            metas = [res.meta(s, r, comp) for s, r in pairs]
            for name in ("distance_km", "azimuth", "n_windows", "sampling_rate", "complete"):
                assert res.column(name, comp).tolist() == [m[name] for m in metas]
            assert res.column("source", comp).tolist() == [s for s, _ in pairs]
            assert res.column("starttime", comp).tolist() == [""] * len(pairs)
            every = list(res.stacks(comp))
            assert len(every) == len(pairs)
            for (s, r), (lags, data) in zip(pairs, every):
                want_lags, want = res.stack(s, r, comp)
                assert np.array_equal(lags, want_lags) and np.array_equal(data, want)
            picked = list(res.stacks(comp, [len(pairs) - 1, 0]))
            assert np.array_equal(picked[0][1], res.stack(*pairs[-1], comp)[1])
        # after listing, a pair (or its reverse) is found in the table in memory
        assert np.all(res.stack(*PAIRS[2])[1] == 7.0)
        assert res.meta(PAIRS[2][1], PAIRS[2][0])["reversed_from"] == "->".join(PAIRS[2])
        with pytest.raises(KeyError):
            res.stack(CODES[0], "XS.NONE")
        with pytest.raises(KeyError, match="no column 'note'"):
            res.column("note")


def test_record_section_reads_only_the_stacks_it_draws(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    write_parts(path, maxlag=5.0)
    merge_parts(path)
    res = open_results(path)
    pairs = res.pairs("ZZ")
    dists = res.column("distance_km", "ZZ")
    read, metas = [], []
    real_stacks, real_meta = Results.stacks, Results.meta

    def spy_stacks(self, component="ZZ", index=None):
        for item, i in zip(real_stacks(self, component, index), index):
            read.append(int(i))
            yield item
    monkeypatch.setattr(Results, "stacks", spy_stacks)
    monkeypatch.setattr(Results, "meta", lambda *a, **k: metas.append(a) or real_meta(*a, **k))
    bins = _distance_bins(res, "ZZ", 5, max_read=20)
    # every k-th pair in distance order, read in the order of the pairs
    order = np.argsort(dists, kind="stable")
    step = int(np.ceil(len(pairs) / 20))
    assert read == sorted(order[::step].tolist()) and len(read) <= 20 and metas == []
    edges = np.linspace(dists.min(), dists.max() + 1e-9, 6)
    want = {}
    for i in read:
        k = int(np.searchsorted(edges, dists[i], side="right") - 1)
        ccf = res.stack(*pairs[i])[1]
        want.setdefault(k, []).append(ccf / np.max(np.abs(ccf)))
    assert [b[1] for b in bins] == [0.5 * (edges[k] + edges[k + 1]) for k in sorted(want)]
    for (label, _, lags, mean), k in zip(bins, sorted(want)):
        assert label == f"{len(want[k])} pairs"
        np.testing.assert_allclose(mean, np.mean(want[k], axis=0), rtol=1e-6)
        assert np.array_equal(lags, res.stack(*pairs[0])[0])
    read.clear()
    fig = record_section(res, max_traces=5, path=tmp_path / "rs.png")
    assert f"{len(pairs)} pairs in" in fig.axes[0].get_title()
    assert len(read) == len(pairs) and metas == []  # 66 pairs: all fit in max_read
    read.clear()
    record_section(res, max_traces=1)  # one bin reads at most PAIRS_PER_BIN (50) of the 66
    assert read == sorted(order[::2].tolist()) and len(read) == 33 <= PAIRS_PER_BIN
    res.close()


def test_record_section_leaves_out_pairs_without_distance(tmp_path):
    path = tmp_path / "r.h5"
    with ResultsWriter(path, PARAMS, stations=STATIONS[:3], sampling_rate=FS) as w:
        w.write_block([CODES[0], CODES[0], CODES[1]], [CODES[1], CODES[2], "XS.FAR"], "ZZ", 1.0,
                      np.ones((3, 21)))
    with open_results(path) as res:
        assert np.isnan(res.column("distance_km")[2])
        fig = record_section(res, velocities=())
        assert len(fig.axes[0].lines) == 2
        assert len(_distance_bins(res, "ZZ", 4)) >= 1
