"""Results.to_xarray: a lazy Dataset (dask arrays, one task per block of pairs)."""

import dask
import dask.array as da
import numpy as np
import pytest

from noisecorr.interop import xarray as nx
from noisecorr.results.reader import open_results


def test_lazy_until_computed_and_equal_to_the_reader(results_file):
    with open_results(results_file) as res:
        before = nx.BLOCKS_READ[0]
        ds = res.to_xarray("RZ", block=4)
        assert isinstance(ds["stack"].data, da.Array)
        assert ds["stack"].data.chunks == ((4, 2), (41,))  # one chunk per block of pairs
        assert nx.BLOCKS_READ[0] == before  # building the Dataset read no stacks
        sub = ds["stack"].isel(pair=slice(0, 3))
        with dask.config.set(scheduler="synchronous"):
            values = sub.values
        assert nx.BLOCKS_READ[0] == before + 1  # only the first block
        with dask.config.set(scheduler="synchronous"):
            full = ds["stack"].values
        expected = np.array([x for _, x in res.stacks("RZ")])
        np.testing.assert_array_equal(full, expected)
        np.testing.assert_array_equal(values, expected[:3])
        lags, _ = res.stack("XS.A", "XS.B", "RZ")
        np.testing.assert_allclose(ds["lag"].values, lags)
        assert list(zip(ds["source"].values, ds["receiver"].values)) == res.pairs("RZ")
        for name in ("distance_km", "azimuth", "back_azimuth", "n_windows"):
            np.testing.assert_array_equal(ds[name].values, res.column(name, "RZ"))
        table = {s["code"]: s for s in res.stations()}
        for i, (s, r) in enumerate(res.pairs("RZ")):
            assert ds["source_latitude"].values[i] == table[s]["latitude"]
            assert ds["receiver_elevation"].values[i] == table[r]["elevation"]


def test_pair_selection(results_file):
    with open_results(results_file) as res:
        ds = res.to_xarray("ZZ", pairs=[("XS.B", "YY.DD"), "XS.A_XS.C"])
        assert ds["source"].values.tolist() == ["XS.B", "XS.A"]
        _, x = res.stack("XS.A", "XS.C", "ZZ")
        np.testing.assert_array_equal(ds["stack"].values[1], x)
        with pytest.raises(KeyError, match="XS.C_XS.A"):
            res.to_xarray("ZZ", pairs=["XS.C_XS.A"])


def write_series_file(path, spans, seed):
    """A results file of ZZ pairs, each with two 1-hour chunks: ``spans`` maps ``(src, rcv)``
    to ``(chunk starts, windows per chunk)``; the chunk rows are random, the total stack is
    their window-weighted mean. Returns the chunk rows by pair."""
    from noisecorr.results.substacks import pack
    from noisecorr.results.writer import ResultsWriter

    rng, subs = np.random.default_rng(seed), {}
    with ResultsWriter(path, {}, sampling_rate=10.0) as w:
        for (s, r), (starts, counts) in spans.items():
            subs[s, r] = rng.standard_normal((2, 5)).astype(np.float32)
            full = (subs[s, r] * np.array(counts)[:, None]).sum(0) / sum(counts)
            data, layout = pack({"stack": full.astype("f4"), "substacks": subs[s, r],
                                 "substack_starts": starts, "substack_counts": counts,
                                 "substack_len": 3600.0})
            w.write_pair(s, r, "ZZ", 0.2, data, {"n_windows": sum(counts), **layout})
    return subs


def test_per_chunk_series_has_a_time_axis(tmp_path):
    path = tmp_path / "s.h5"
    spans = {("XS.A", "XS.B"): ([0.0, 3600.0], [2, 3]), ("XS.A", "XS.C"): ([3600.0, 7200.0], [4, 1])}
    subs = write_series_file(path, spans, seed=3)
    with open_results(path) as res:
        before = nx.BLOCKS_READ[0]
        ds = res.to_xarray("ZZ", series=True, block=1)
        assert isinstance(ds["stack"].data, da.Array) and nx.BLOCKS_READ[0] == before
        assert ds["stack"].dims == ("pair", "time", "lag")
        assert ds["time"].values.astype("datetime64[s]").astype(int).tolist() == [0, 3600, 7200]
        assert ds["windows"].values.tolist() == [[2, 3, 0], [0, 4, 1]]
        with dask.config.set(scheduler="synchronous"):
            x = ds["stack"].values
        assert nx.BLOCKS_READ[0] == before + 2
        np.testing.assert_array_equal(x[0, :2], subs["XS.A", "XS.B"])
        np.testing.assert_array_equal(x[1, 1:], subs["XS.A", "XS.C"])
        assert np.isnan(x[0, 2]).all() and np.isnan(x[1, 0]).all()
        for s, r in spans:  # equal to the reader's own series
            t, _, arr, _ = res.series(s, r, "ZZ")
            i = res.pairs("ZZ").index((s, r))
            cols = [int(v) // 3600 for v in t]
            np.testing.assert_array_equal(x[i, cols], arr)
    with pytest.raises(ValueError, match="XS.A_XS.B ZZ .* no per-chunk series"):
        _no_series(tmp_path)


def _no_series(tmp_path):
    from noisecorr.results.writer import ResultsWriter

    p = tmp_path / "plain.h5"
    with ResultsWriter(p, {}, sampling_rate=10.0) as w:
        w.write_pair("XS.A", "XS.B", "ZZ", 0.2, np.zeros(5, "f4"), {})
    with open_results(p) as res:
        res.to_xarray("ZZ", series=True)


def test_series_of_a_selection_reads_only_the_selected_pairs(tmp_path):
    """60 pairs, each with its own day of spans; the time axis and the data of a
    two-pair selection come from those two pairs only. The other pairs' datasets are
    deleted from the file after writing (their index rows stay), so any read of them,
    eager or lazy, would fail."""
    import h5py

    from noisecorr.results.layout import pair_path

    path = tmp_path / "many.h5"
    pairs = [(f"XS.A{i:02d}", f"XS.B{i:02d}") for i in range(60)]
    day = 86400.0
    subs = write_series_file(path, {p: ([i * day, i * day + 3600.0], [2, 5]) for i, p in enumerate(pairs)},
                             seed=5)
    chosen = [pairs[7], pairs[41]]
    with h5py.File(path, "a") as f:
        for s, r in pairs:
            if (s, r) not in chosen:
                del f[pair_path(s, r, "ZZ")]
    with open_results(path) as res:
        assert len(res.pairs("ZZ")) == 60  # still listed by the index
        with pytest.raises(KeyError):
            res.series(*pairs[0], "ZZ")  # unselected data really is gone
        before = nx.BLOCKS_READ[0]
        ds = res.to_xarray("ZZ", pairs=chosen, series=True, block=1)
        assert nx.BLOCKS_READ[0] == before  # lazy: nothing read yet
        secs = ds["time"].values.astype("datetime64[s]").astype(int).tolist()
        assert secs == [7 * 86400, 7 * 86400 + 3600, 41 * 86400, 41 * 86400 + 3600]
        assert ds["windows"].values.tolist() == [[2, 5, 0, 0], [0, 0, 2, 5]]
        with dask.config.set(scheduler="synchronous"):
            x = ds["stack"].values
        assert nx.BLOCKS_READ[0] == before + 2  # one block per selected pair
        np.testing.assert_array_equal(x[0, :2], subs[chosen[0]])
        np.testing.assert_array_equal(x[1, 2:], subs[chosen[1]])
        assert np.isnan(x[0, 2:]).all() and np.isnan(x[1, :2]).all()
