"""SAC export: every header against the results' metadata, read back with ObsPy."""

import numpy as np
import pytest
from obspy import read
from obspy.geodetics import gps2dist_azimuth, locations2degrees

from noisecorr.interop import export, import_results
from noisecorr.results.reader import open_results

FS, MAXLAG = 5.0, 4.0
STATIONS = [dict(code="XS.A", latitude=45.0, longitude=7.0, elevation=120.0),
            dict(code="YY.DD", latitude=46.9, longitude=9.3, elevation=1500.0)]


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


def write_reversed_file(path):
    """Pairs stored only the other way round (receiver code < source code): YY.DD -> XS.A
    in ZZ and ZR, with known stacks."""
    from noisecorr.results.writer import ResultsWriter

    n = 2 * int(MAXLAG * FS) + 1
    stacks = {c: np.linspace(-1, 1, n).astype(np.float32) ** k for k, c in ((2, "ZZ"), (3, "ZR"))}
    with ResultsWriter(path, {"processing": {"stack_method": "linear", "cc_method": "xcorr"}},
                       stations=STATIONS, sampling_rate=FS) as w:
        for comp, data in stacks.items():
            w.write_pair("YY.DD", "XS.A", comp, MAXLAG, data, {"n_windows": 7})
    return stacks


def test_a_pair_stored_only_reversed_exports_as_requested(tmp_path):
    path = tmp_path / "rev.h5"
    stacks = write_reversed_file(path)
    with open_results(path) as res:
        assert res.pairs() == [("YY.DD", "XS.A")]
        stored = res.meta("YY.DD", "XS.A", "ZZ")
        paths = export(res, tmp_path / "sac", "sac", pairs=["XS.A_YY.DD"],
                       components=["ZZ", "RZ"])
        flat = res.export_sac(tmp_path / "flat", pairs=[("XS.A", "YY.DD")])
    assert [p.relative_to(tmp_path / "sac").as_posix() for p in paths] == [
        "ZZ/XS.A_YY.DD.SAC", "RZ/XS.A_YY.DD.SAC"]
    assert sorted(p.name for p in flat) == ["XS.A_YY.DD_RZ.SAC", "XS.A_YY.DD_ZZ.SAC"]
    zz, rz = (read(str(p), format="SAC")[0] for p in paths)
    # C_AD^ZZ(t) = C_DA^ZZ(-t); RZ has one R letter: C_AD^RZ(t) = -C_DA^ZR(-t)
    np.testing.assert_array_equal(zz.data, stacks["ZZ"][::-1])
    np.testing.assert_array_equal(rz.data, -stacks["ZR"][::-1])
    h = zz.stats.sac
    assert h.kevnm.strip() == "XS.A" and (h.knetwk.strip(), h.kstnm.strip()) == ("YY", "DD")
    assert (h.evla, h.evlo, h.stla, h.stlo) == pytest.approx((45.0, 7.0, 46.9, 9.3))
    # the reversed pair's azimuth is the stored back azimuth and the other way round
    assert h.az == pytest.approx(stored["back_azimuth"], abs=1e-4)
    assert h.baz == pytest.approx(stored["azimuth"], abs=1e-4)
    assert h.dist == pytest.approx(stored["distance_km"], rel=1e-6) and h.user0 == 7
    # the same pair as stored is still exported as stored
    again = export(path, tmp_path / "as_stored", "sac", components=["ZZ"])
    assert [p.name for p in again] == ["YY.DD_XS.A.SAC"]
    np.testing.assert_array_equal(read(str(again[0]))[0].data, stacks["ZZ"])
    with pytest.raises(KeyError, match="XS.A_XS.B"):
        export(path, tmp_path / "x", "sac", pairs=["XS.A_XS.B"])


def test_source_codes_fill_kevnm_exactly_or_are_refused(tmp_path):
    from noisecorr.interop.sac import code_headers
    from noisecorr.results.writer import ResultsWriter

    # 16 characters fit kevnm whole; a location code goes into khole and comes back
    source, receiver = "NETW.STATION1.00", "XS.B.10"
    assert len(source) == 16
    assert code_headers(source, receiver) == dict(kevnm=source, knetwk="XS", kstnm="B",
                                                  khole="10")
    path = tmp_path / "long.h5"
    n = 2 * 20 + 1
    data = np.arange(n, dtype=np.float32)
    with ResultsWriter(path, {"processing": {"cc_method": "xcorr"}}, sampling_rate=5.0) as w:
        w.write_pair(source, receiver, "ZZ", 4.0, data, {"n_windows": 3})
        w.write_pair("NETWORK1.STATION1.00", "XS.B", "ZZ", 4.0, data, {"n_windows": 3})
    paths = export(path, tmp_path / "ok", "sac", pairs=[(source, receiver)])
    h = read(str(paths[0]), format="SAC")[0].stats.sac
    assert h.kevnm == source and h.khole.strip() == "10"
    back = tmp_path / "back.h5"
    assert import_results(tmp_path / "ok", back, "sac") == 1
    with open_results(back) as res:
        assert res.pairs() == [(source, receiver)]
        np.testing.assert_array_equal(res.stack(source, receiver)[1], data)
    # a valid code of 20 characters would be cut to another station's code: refused,
    # naming the pair and the field
    with pytest.raises(ValueError, match=r"NETWORK1.STATION1.00_XS.B.*20 characters.*kevnm "
                                         r"holds 16"):
        export(path, tmp_path / "bad", "sac", pairs=[("NETWORK1.STATION1.00", "XS.B")])
    # nothing written before the refusal of an export with one bad pair among good ones
    with pytest.raises(ValueError, match="kevnm"):
        export(path, tmp_path / "bad3", "sac")
    assert not (tmp_path / "bad3").exists()
