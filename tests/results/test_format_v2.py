"""Format version 2: bulk writes, metadata as index columns, version-1 files
still readable (and resumable), reads that do not scan the file."""

import json

import h5py
import numpy as np
import pytest
from obspy.geodetics import gps2dist_azimuth

import noisecorr.results.index as index_mod
from noisecorr.results import ResultsWriter, lag_axis, open_results
from noisecorr.results.writer import list_parts

FS = 20.0
PARAMS = {"cc_len": 1800}
STATIONS = [{"code": f"XS.S{i:04d}", "latitude": 47 + 0.1 * i, "longitude": 10 - 0.07 * i,
             "elevation": float(i)} for i in range(6)]


def codes():
    return [s["code"] for s in STATIONS]


def test_write_block_round_trip(tmp_path):
    path = tmp_path / "r.h5"
    c = codes()
    src, rcv = [c[0], c[0], c[1]], [c[1], c[2], c[2]]
    stacks = np.random.default_rng(0).standard_normal((3, 41)).astype(np.float32)
    sub = np.ones((2, 3, 21), np.float32)
    with ResultsWriter(path, PARAMS, stations=STATIONS, sampling_rate=FS) as w:
        w.write_block(src, rcv, "ZZ", 1.0, stacks,
                      {"n_windows": [5, 6, 7], "starttime": "2024-01-01T00:00:00",
                       "endtime": ["2024-01-02", None, "2024-01-03"], "method": "linear"})
        w.write_block([c[3], c[4]], [c[4], c[5]], ["RT", "ZZ"], lag_axis(0.5, FS), sub,
                      {"complete": [True, False]})
    with open_results(path) as res:
        assert res.format_version == 2
        assert len(res) == 5 and res.components() == ["RT", "ZZ"]
        for i in range(3):
            lags, ccf = res.stack(src[i], rcv[i])
            np.testing.assert_array_equal(ccf, stacks[i])
            np.testing.assert_array_equal(lags, lag_axis(1.0, FS))
        m = res.meta(c[0], c[2])
        d, az, baz = gps2dist_azimuth(47.0, 10.0, 47.2, 9.86)
        assert m["distance_km"] == pytest.approx(d / 1000, abs=1e-6)
        assert m["azimuth"] == pytest.approx(az, abs=1e-6)
        assert m["back_azimuth"] == pytest.approx(baz, abs=1e-6)
        assert m["n_windows"] == 6 and m["starttime"] == "2024-01-01T00:00:00"
        assert m["endtime"] is None and m["method"] == "linear" and m["complete"] is True
        assert m["source_coordinates"] == [47.0, 10.0, 0.0]
        assert m["sampling_rate"] == FS and m["maxlag"] == 1.0
        assert res.stack(c[3], c[4], "RT")[1].shape == (3, 21)
        assert res.meta(c[4], c[5])["complete"] is False
        assert "method" not in res.meta(c[4], c[5])
    with h5py.File(path, "r") as f:
        ds = f[f"/pairs/{c[0]}/{c[1]}/ZZ"]
        assert len(ds.attrs) == 0 and ds.dtype == np.float32
        assert f["index/n_windows"][()].tolist() == [5, 6, 7, -1, -1]  # sorted by key
        assert f.attrs["n_pairs"] == 5


def test_write_block_refuses_bad_rows(tmp_path):
    w = ResultsWriter(tmp_path / "r.h5", PARAMS, sampling_rate=FS)
    c = codes()
    bad = np.zeros((2, 41), np.float32)
    bad[1, 3] = np.inf
    with pytest.raises(ValueError, match=f"{c[2]}-{c[3]} ZZ has NaN"):
        w.write_block([c[0], c[2]], [c[1], c[3]], "ZZ", 1.0, bad)
    with pytest.raises(ValueError, match="same length"):
        w.write_block([c[0]], [c[1], c[2]], "ZZ", 1.0, bad)
    with pytest.raises(ValueError, match="2\\*round"):
        w.write_block([c[0], c[2]], [c[1], c[3]], "ZZ", 1.0, np.zeros((2, 40)))


def test_resume_keeps_columns_and_later_write_wins(tmp_path):
    path = tmp_path / "r.h5"
    c = codes()
    with ResultsWriter(path, PARAMS, stations=STATIONS, sampling_rate=FS) as w:
        w.write_block(c[:3], c[3:], "ZZ", 0.5, np.zeros((3, 21)), {"n_windows": [1, 2, 3],
                                                                   "complete": [True, True, False]})
    w = ResultsWriter(path, PARAMS, sampling_rate=FS, checkpoint_pairs=1)
    assert w.completed() == {(c[0], c[3], "ZZ"), (c[1], c[4], "ZZ")}
    w.write_pair(c[2], c[5], "ZZ", 0.5, np.ones(21), {"n_windows": 30, "note": "redo"})
    assert len(list_parts(path)) == 1  # checkpointed, not yet merged
    with open_results(path) as res:  # main file + part
        assert res.meta(c[2], c[5])["n_windows"] == 30
        assert np.all(res.stack(c[2], c[5])[1] == 1)
    w.close()
    with open_results(path) as res:
        assert [res.meta(s, r)["n_windows"] for s, r in res.pairs()] == [1, 2, 30]
        m = res.meta(c[2], c[5])
        assert m["complete"] is True and m["note"] == "redo"
        assert m["distance_km"] > 0  # stations came from the resumed file
        assert "note" not in res.meta(c[0], c[3])
    assert ResultsWriter(path, PARAMS).completed() == {(a, b, "ZZ") for a, b in zip(c[:3], c[3:])}


def write_v1(path, n=4):
    """A version-1 file as documented: metadata as dataset attributes,
    variable-length string index."""
    c = codes()
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "noisecorr.results", "format_version": 1,
                        "software_version": "0.1.0", "params": json.dumps(PARAMS),
                        "starttime": "null", "endtime": "null", "n_pairs": n})
        rows = []
        for i in range(n):
            s, r = c[0], c[i + 1]
            ds = f.create_dataset(f"/pairs/{s}/{r}/ZZ", data=np.full(21, i, np.float32))
            ds.attrs.update({"source": s, "receiver": r, "component": "ZZ",
                             "distance_km": 10.0 + i, "azimuth": 1.0, "back_azimuth": 181.0,
                             "sampling_rate": FS, "maxlag": 0.5, "n_windows": i,
                             "starttime": "null", "endtime": "null", "complete": True,
                             "stack_method": "linear"})
            rows.append((s, r, "ZZ"))
        st = h5py.string_dtype()
        g = f.create_group("index")
        for k, col in zip(("source", "receiver", "component"), zip(*rows)):
            g.create_dataset(k, data=np.array(col, dtype=object), dtype=st)
        g.create_dataset("complete", data=np.ones(n, bool))
        s = f.create_group("stations")
        s.create_dataset("code", data=np.array(c, dtype=object), dtype=st)
        for k in ("latitude", "longitude", "elevation"):
            s.create_dataset(k, data=np.array([x[k] for x in STATIONS]))


def test_version_1_files_are_read_and_upgraded_on_resume(tmp_path):
    path = tmp_path / "v1.h5"
    write_v1(path)
    c = codes()
    with open_results(path) as res:
        assert res.format_version == 1 and len(res) == 4
        assert np.all(res.stack(c[0], c[2])[1] == 1)
        m = res.meta(c[0], c[3])
        assert m["n_windows"] == 2 and m["distance_km"] == 12.0 and m["stack_method"] == "linear"
    with ResultsWriter(path, PARAMS, sampling_rate=FS) as w:
        assert len(w.completed()) == 4
        w.write_pair(c[1], c[2], "ZZ", 0.5, np.full(21, 9.0), {"n_windows": 9})
    with open_results(path) as res:
        assert res.format_version == 2 and len(res) == 5
        m = res.meta(c[0], c[3])
        assert m["n_windows"] == 2 and m["distance_km"] == 12.0 and m["stack_method"] == "linear"
        assert np.all(res.stack(c[0], c[4])[1] == 3)
        assert res.meta(c[1], c[2])["n_windows"] == 9


def test_one_pair_read_does_not_scan_the_index(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    a = [f"XS.A{i:04d}" for i in range(30) for _ in range(30)]
    b = [f"XS.B{j:04d}" for _ in range(30) for j in range(30)]
    data = (np.arange(900)[:, None] * np.ones(21)).astype(np.float32)
    with ResultsWriter(path, PARAMS, sampling_rate=FS, checkpoint_pairs=400) as w:
        w.write_block(a, b, "ZZ", 0.5, data, {"n_windows": np.arange(900)})
    # the index is read value by value: count the values read
    reads = []
    real = index_mod.find_row

    def counting_find_row(f, *key):
        reads.append(key)
        return real(f, *key)

    def boom(*args, **kwargs):
        raise AssertionError("full index read")
    monkeypatch.setattr(index_mod, "read_columns", boom)
    monkeypatch.setattr(index_mod, "read_index", boom)
    monkeypatch.setattr(index_mod, "find_row", counting_find_row)
    accessed, values = [], []
    orig_getitem, real_columns_of = h5py.Dataset.__getitem__, index_mod.columns_of

    def spy(self, sel):
        accessed.append(self.name)
        return orig_getitem(self, sel)

    class Counted:
        """A column as columns_of() gives it (``n`` rows, one value per ``[i]``), counting
        the values read through it."""

        def __init__(self, col):
            self.col, self.n = col, col.n

        def __getitem__(self, i):
            values.append(i)
            return self.col[i]

    def counted_columns_of(f):
        return {name: Counted(col) for name, col in real_columns_of(f).items()}
    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    monkeypatch.setattr(index_mod, "columns_of", counted_columns_of)
    with open_results(path) as res:
        assert accessed == [] and values == []  # opening reads no dataset
        assert np.all(res.stack("XS.A0017", "XS.B0023")[1] == 17 * 30 + 23)
        assert res.meta("XS.A0017", "XS.B0023")["n_windows"] == 17 * 30 + 23
    assert reads  # found by binary search
    assert not [name for name in accessed if name.startswith("/index")]  # no column read whole
    # two lookups of about log2(900) = 10 steps, 1-3 values each, plus one row of columns
    assert 0 < len(values) < 2 * 3 * 11 + 2 + len(index_mod.NUMERIC) + 8


def test_parallel_writers_parts_merge_into_one_file(tmp_path):
    """Writers in several processes leave their own parts; one merge makes the file."""
    import multiprocessing as mp

    from noisecorr.results import ResultsWriter, merge_parts, open_results

    path = tmp_path / "r.h5"

    def write(wid):
        w = ResultsWriter(path, {"p": 1}, writer_id=wid, checkpoint_pairs=3)
        for k in range(5):
            w.write_pair(f"XS.A{wid}", f"XS.B{k}", "ZZ", 1.0, np.full(21, wid * 10 + k, "f4"),
                         {"sampling_rate": 10.0, "n_windows": k + 1})
        w.close(merge=False)

    procs = [mp.get_context("fork").Process(target=write, args=(wid,)) for wid in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert not path.exists()
    merge_parts(path)
    with open_results(path) as res:
        assert len(res.pairs()) == 15
        for wid in range(3):
            for k in range(5):
                assert np.all(res.stack(f"XS.A{wid}", f"XS.B{k}")[1] == wid * 10 + k)
                assert res.meta(f"XS.A{wid}", f"XS.B{k}")["n_windows"] == k + 1
