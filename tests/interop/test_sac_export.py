"""SAC export: every header against the results' metadata, read back with ObsPy."""

import numpy as np
import pytest
from obspy import read
from obspy.geodetics import gps2dist_azimuth, locations2degrees

from noisecorr.interop import export, import_results
from noisecorr.results.reader import open_results


def test_every_sac_header_matches_the_results(results_file, tmp_path):
    out = tmp_path / "sac"
    paths = export(results_file, out, "sac")
    with open_results(results_file) as res:
        table = {s["code"]: s for s in res.stations()}
        expected = [(c, s, r) for c in res.components() for s, r in res.pairs(c)]
        assert len(paths) == len(expected) == 12
        for comp, s, r in expected:
            tr = read(str(out / comp / f"{s}_{r}.SAC"), format="SAC")[0]
            h = tr.stats.sac
            lags, stack = res.stack(s, r, comp)
            meta = res.meta(s, r, comp)
            src, rcv = table[s], table[r]
            assert h.delta == pytest.approx(1 / meta["sampling_rate"])
            assert h.b == pytest.approx(-meta["maxlag"]) and h.b == pytest.approx(lags[0])
            assert h.npts == len(lags) == 41
            assert (h.stla, h.stlo, h.stel) == pytest.approx(
                (rcv["latitude"], rcv["longitude"], rcv["elevation"]))
            assert (h.evla, h.evlo, h.evel) == pytest.approx(
                (src["latitude"], src["longitude"], src["elevation"]))
            assert (h.knetwk, h.kstnm) == tuple(r.split("."))
            assert h.kevnm.strip() == s and h.kcmpnm.strip() == comp
            dist, az, baz = gps2dist_azimuth(src["latitude"], src["longitude"],
                                             rcv["latitude"], rcv["longitude"])
            assert h.dist == pytest.approx(meta["distance_km"], rel=1e-6)
            assert h.dist == pytest.approx(dist / 1000, rel=1e-5)
            assert h.az == pytest.approx(az, abs=1e-4) and h.baz == pytest.approx(baz, abs=1e-4)
            assert h.gcarc == pytest.approx(locations2degrees(
                src["latitude"], src["longitude"], rcv["latitude"], rcv["longitude"]), rel=1e-6)
            assert h.user0 == meta["n_windows"]
            np.testing.assert_array_equal(tr.data, stack)


def test_symmetric_component_and_selection(results_file, tmp_path):
    out = tmp_path / "sac"
    with open_results(results_file) as res:
        far = [(s, r) for (s, r), d in zip(res.pairs("ZZ"), res.column("distance_km", "ZZ"))
               if d >= 100]
        assert 0 < len(far) < 6
        paths = export(res, out, "sac", components=["ZZ"], min_distance=100, symmetric=True)
        assert len(paths) == 2 * len(far)
        assert sorted(p.parent.name for p in paths) == ["ZZ"] * len(far) + ["ZZ_sym"] * len(far)
        for s, r in far:
            _, stack = res.stack(s, r, "ZZ")
            h = len(stack) // 2
            tr = read(str(out / "ZZ_sym" / f"{s}_{r}.SAC"))[0]
            assert tr.stats.sac.b == 0 and tr.stats.npts == h + 1
            # lag k: mean of the causal sample at +k and the acausal one at -k
            np.testing.assert_allclose(tr.data, 0.5 * (stack[h:] + stack[h::-1]), rtol=1e-6)
    with pytest.raises(KeyError, match="XS.A_XS.Q"):
        export(results_file, tmp_path / "x", "sac", pairs=["XS.A_XS.Q"])


def test_sac_round_trip(results_file, tmp_path):
    export(results_file, tmp_path / "sac", "sac", symmetric=True)
    back = tmp_path / "back.h5"
    assert import_results(tmp_path / "sac", back, "sac") == 12  # the _sym files skipped
    with open_results(results_file) as a, open_results(back) as b:
        assert_same_results(a, b)


def assert_same_results(a, b, components=None, windows=True):
    comps = components or a.components()
    assert b.components() == comps
    assert [s["code"] for s in b.stations()] == [s["code"] for s in a.stations()]
    for sa, sb in zip(a.stations(), b.stations()):
        assert sa["code"] == sb["code"]
        assert (sb["latitude"], sb["longitude"], sb["elevation"]) == pytest.approx(
            (sa["latitude"], sa["longitude"], sa["elevation"]), abs=1e-4)
    for c in comps:
        assert b.pairs(c) == a.pairs(c)
        names = ["distance_km", "azimuth", "back_azimuth", "sampling_rate"] + \
            (["n_windows"] if windows else [])
        for name in names:
            np.testing.assert_allclose(b.column(name, c), a.column(name, c), rtol=1e-6)
        for (la, xa), (lb, xb) in zip(a.stacks(c), b.stacks(c)):
            np.testing.assert_allclose(lb, la)
            np.testing.assert_array_equal(xb, xa)
