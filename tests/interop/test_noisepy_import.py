"""Import of a stack file NoisePy 0.9.93 wrote itself.

``data/noisepy_stack`` was written by ``noisepy.seis.io.asdfstore.ASDFStackStore.append``
in NoisePy's own environment (``scripts/check_asdf_noisepy.py``, the NOISEPY_WRITES part):
pair XS.A (45.0 N, 7.0 E, 120 m) -> YY.C (44.2 N, 6.1 E, 15 m), 2021-03-01, dt 0.1 s,
maxlag 20 s, components ZZ and ZN, ``Allstack_linear`` = sin(0.05 (k + 1) n) and
``Allstack_pws`` twice that, ngood 48 + k (k = 0 for ZZ, 1 for ZN).
"""

from pathlib import Path

import numpy as np
import pytest
from obspy.geodetics import gps2dist_azimuth

from noisecorr.cli import main
from noisecorr.results.reader import open_results

DATA = Path(__file__).parent / "data" / "noisepy_stack"


@pytest.mark.parametrize("data_type,scale", [(None, 1.0), ("Allstack_pws", 2.0)])
def test_import_noisepy_written_stacks(tmp_path, data_type, scale):
    out = tmp_path / "imported.h5"
    argv = ["import", str(DATA), "--format", "asdf", "--out", str(out)]
    assert main(argv + (["--data-type", data_type] if data_type else [])) == 0
    dist, azi, baz = gps2dist_azimuth(45.0, 7.0, 44.2, 6.1)
    with open_results(out) as res:
        assert res.components() == ["ZN", "ZZ"]
        assert res.pairs() == [("XS.A", "YY.C")]
        assert [s["code"] for s in res.stations()] == ["XS.A", "YY.C"]
        assert res.stations()[0]["latitude"] == pytest.approx(45.0)
        for comp, k in (("ZZ", 0), ("ZN", 1)):
            lags, x = res.stack("XS.A", "YY.C", comp)
            np.testing.assert_allclose(lags, np.arange(-200, 201) * 0.1, atol=1e-9)
            np.testing.assert_array_equal(
                x, scale * np.sin(np.arange(401) * 0.05 * (k + 1)).astype(np.float32))
            meta = res.meta("XS.A", "YY.C", comp)
            assert meta["n_windows"] == 48 + k
            assert meta["distance_km"] == pytest.approx(dist / 1000, rel=1e-6)
            assert meta["azimuth"] == pytest.approx(azi, abs=1e-3)
            assert meta["back_azimuth"] == pytest.approx(baz, abs=1e-3)
        # dispersion/monitoring code reads the imported file like any results file
        assert res.column("sampling_rate", "ZZ").tolist() == [pytest.approx(10.0)]


def test_import_refuses_an_existing_file(tmp_path):
    out = tmp_path / "x.h5"
    out.write_bytes(b"")
    assert main(["import", str(DATA), "--format", "asdf", "--out", str(out)]) == 1


def test_dispersion_runs_on_imported_noisepy_stacks(tmp_path):
    out = tmp_path / "imported.h5"
    assert main(["import", str(DATA), "--format", "asdf", "--out", str(out)]) == 0
    assert main(["dispersion", str(out), "--vmin", "6", "--vmax", "12"]) == 0
    with open_results(out) as res:
        table = res.dispersion("ZZ")
        assert list(zip(table.source, table.receiver)) == [("XS.A", "YY.C")]
