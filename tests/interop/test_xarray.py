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
