"""ASDF in NoisePy's stack layout, npz and miniSEED exports; round trips."""

import numpy as np
import pyasdf
import pytest
from obspy import UTCDateTime, read

from noisecorr.cli import main
from noisecorr.interop import export, import_results
from noisecorr.results.reader import open_results

from test_sac_export import assert_same_results


def test_asdf_layout_read_as_noisepy_reads_it(results_file, tmp_path):
    out = tmp_path / "STACK"
    files = export(results_file, out, "asdf")
    with open_results(results_file) as res:
        pairs = res.pairs("ZZ")
        assert len(files) == len(pairs)  # one file per pair, both components inside
        table = {s["code"]: s for s in res.stations()}
        for (s, r), nw in zip(pairs, res.column("n_windows", "ZZ")):
            # NoisePy: DIR/SRC/RCV/<start>T<end>.h5 (asdfstore._filename_from_stations)
            p = out / s / r / "2021_03_01_00_00_00T2021_03_02_00_00_00.h5"
            assert p in files
            # read as ASDFStackStore.read does
            with pyasdf.ASDFDataSet(str(p), mode="r", mpi=False, compression=None) as ds:
                assert ds.auxiliary_data.list() == ["Allstack_linear"]
                assert sorted(ds.auxiliary_data["Allstack_linear"].list()) == ["RZ", "ZZ"]
                stream = ds.auxiliary_data["Allstack_linear"]["ZZ"]
                par, data = stream.parameters, stream.data[:]
            lags, stack = res.stack(s, r, "ZZ")
            assert data.dtype == np.float32
            np.testing.assert_array_equal(data, stack)
            meta = res.meta(s, r, "ZZ")
            # NoisePy's lag axis: npts = int(2 * maxlag / dt) + 1 (stack.py)
            assert int(round(2 * par["maxlag"] / par["dt"])) + 1 == len(lags)
            assert par["dt"] == pytest.approx(1 / meta["sampling_rate"])
            assert par["dist"] == pytest.approx(meta["distance_km"], rel=1e-6)
            assert par["azi"] == pytest.approx(meta["azimuth"], abs=1e-3)
            assert par["baz"] == pytest.approx(meta["back_azimuth"], abs=1e-3)
            assert (par["latS"], par["lonS"]) == pytest.approx(
                (table[s]["latitude"], table[s]["longitude"]), abs=1e-5)
            assert (par["latR"], par["lonR"]) == pytest.approx(
                (table[r]["latitude"], table[r]["longitude"]), abs=1e-5)
            assert par["ngood"] == nw and par["comp"] == "ZZ" and not par["substack"]
            assert par["time"] == UTCDateTime("2021-03-01").timestamp
            assert par["cc_method"] == "xcorr"


def test_asdf_round_trip(results_file, tmp_path):
    export(results_file, tmp_path / "STACK", "asdf")
    back = tmp_path / "back.h5"
    assert main(["import", str(tmp_path / "STACK"), "--format", "asdf", "--out", str(back)]) == 0
    with open_results(results_file) as a, open_results(back) as b:
        assert_same_results(a, b)
        assert b.params["processing"]["stack_method"] == "linear"


def test_npz_round_trip_and_contents(results_file, tmp_path):
    paths = export(results_file, tmp_path / "npz", "npz", components=["ZZ"])
    assert [p.name for p in paths] == ["ZZ.npz"]
    with np.load(paths[0]) as z, open_results(results_file) as res:
        assert list(zip(z["source"], z["receiver"])) == res.pairs("ZZ")
        np.testing.assert_array_equal(z["stacks"], np.array([x for _, x in res.stacks("ZZ")]))
        np.testing.assert_array_equal(z["n_windows"], res.column("n_windows", "ZZ"))
    back = tmp_path / "back.h5"
    assert import_results(paths, back, "npz") == 6
    with open_results(results_file) as a, open_results(back) as b:
        assert_same_results(a, b, components=["ZZ"])


def test_mseed_start_is_minus_maxlag(results_file, tmp_path, capsys):
    out = tmp_path / "ms"
    assert main(["export", str(results_file), "--format", "mseed", "--out", str(out),
                 "--pair", "XS.A_XS.B,XS.B_YY.DD", "--component", "RZ"]) == 0
    assert "wrote 2 mseed" in capsys.readouterr().out
    with open_results(results_file) as res:
        for s, r in (("XS.A", "XS.B"), ("XS.B", "YY.DD")):
            tr = read(str(out / "RZ" / f"{s}_{r}.mseed"))[0]
            lags, stack = res.stack(s, r, "RZ")
            assert tr.stats.starttime == UTCDateTime(0) + lags[0]
            assert (tr.stats.network, tr.stats.station, tr.stats.channel) == \
                (*r.split("."), "XRZ")
            np.testing.assert_array_equal(tr.data, stack)
    assert sorted(p.name for p in (out / "RZ").iterdir()) == ["XS.A_XS.B.mseed",
                                                              "XS.B_YY.DD.mseed"]


def test_bad_input_is_named(results_file, tmp_path):
    assert main(["export", str(results_file), "--format", "sac", "--out", str(tmp_path / "o"),
                 "--component", "TT"]) == 1
    bad = tmp_path / "bad"
    bad.mkdir()
    from obspy.io.sac import SACTrace

    SACTrace(data=np.zeros(40, np.float32), delta=0.2, b=-4.0, kstnm="B", knetwk="XS",
             kevnm="XS.A").write(str(bad / "x.SAC"))
    with pytest.raises(ValueError, match="x.SAC.*npts = 40"):
        import_results(bad, tmp_path / "n.h5", "sac")


def test_asdf_without_times_is_named_after_the_epoch(tmp_path, caplog):
    from noisecorr.results.writer import ResultsWriter

    path = tmp_path / "r.h5"
    with ResultsWriter(path, {}, sampling_rate=10.0) as w:
        w.write_block(["XS.A", "XS.A"], ["XS.B", "XS.C"], "ZZ", 0.2, np.ones((2, 5)), {})
    files = export(path, tmp_path / "S", "asdf")
    assert [p.name for p in files] == ["1970_01_01_00_00_00T1970_01_01_00_00_00.h5"] * 2
    assert sum("no start/end time" in r.message for r in caplog.records) == 1
    back = tmp_path / "b.h5"
    import_results(tmp_path / "S", back, "asdf")
    with open_results(back) as b:
        assert b.pairs("ZZ") == [("XS.A", "XS.B"), ("XS.A", "XS.C")]
        np.testing.assert_array_equal(b.stack("XS.A", "XS.C")[1], np.ones(5, "f4"))
