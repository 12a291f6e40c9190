"""`noisecorr dispersion RESULTS`: table in the results file, CSV, plots, reader and
`noisecorr info` access, on stacks with a known dispersion."""

import csv

import numpy as np
import pytest

from noisecorr.cli import main
from noisecorr.results import ResultsWriter
from noisecorr.results.reader import open_results
from noisecorr.signal.ftan import NEAR_FIELD
from noisecorr.synth.dispersion import DispersionModel, diffuse_ccf

FS = 2.0
MODEL = DispersionModel.linear_period(3.0, 0.03, 1.0)


@pytest.fixture
def results(tmp_path):
    d = np.array([40.0, 150.0, 250.0, 350.0])
    ccf = diffuse_ccf(d, MODEL, FS, 300.0, band=(0.02, 0.04, 0.4, 0.8))
    ccf[3] *= 0.2  # same curve, five times lower SNR
    rng = np.random.default_rng(1)
    ccf = ccf + 0.002 * rng.normal(size=ccf.shape).astype(np.float32)
    path = tmp_path / "run" / "results.h5"
    path.parent.mkdir()
    with ResultsWriter(path, {}, sampling_rate=FS) as w:
        w.write_block(["XS.A"] * 4, ["XS.B", "XS.C", "XS.D", "XS.E"], "ZZ", 300.0, ccf,
                      {"n_windows": 10, "distance_km": d.tolist(), "sampling_rate": FS})
    ref = tmp_path / "ref.csv"
    f = np.linspace(0.4, 0.02, 40)
    ref.write_text("period,velocity\n" + "".join(f"{1 / x:.6f},{MODEL.phase_velocity(x):.6f}\n" for x in f))
    return path, ref, d


def test_dispersion_command_stores_writes_and_plots(results, capsys):
    path, ref, d = results
    periods = [4.0, 5.0, 7.0, 10.0, 14.0, 20.0]
    code = main(["dispersion", str(path), "--periods", ",".join(map(str, periods)),
                 "--reference", str(ref), "--pair", "XS.A:XS.D", "--branch", "continuity",
                 "--mapping", "multiprocess", "-n", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    folder = path.parent / "dispersion"
    for name in ("dispersion_ZZ.csv", "ftan_XS.A_XS.D_ZZ.png", "curves_group_ZZ.png",
                 "curves_phase_ZZ.png", "coverage_ZZ.png"):
        assert (folder / name).stat().st_size > 1000 or name.endswith(".csv")
    with open_results(path) as res:
        t = res.dispersion("ZZ")
        snr = res.snr("ZZ")
    np.testing.assert_array_equal(t.periods, periods)
    f = 1 / np.array(periods)
    ok = t.trusted
    assert ok[1:3].sum() >= 8
    assert np.abs(t.group_velocity / MODEL.group_velocity(f) - 1)[ok].max() < 0.02
    assert np.abs(t.phase_velocity / MODEL.phase_velocity(f) - 1)[ok].max() < 0.02
    assert ((t.flags[0] & NEAR_FIELD) > 0).sum() >= 4  # 40 km: too close beyond 4 s
    # SNR per pair, available in the reader and as a selection criterion
    s = snr[("XS.A", "XS.D")]
    assert s[2] > 3 * snr[("XS.A", "XS.E")][2]
    kept = t.select(min_snr=0.5 * s[2])
    assert ("XS.E" not in kept.receiver.tolist()) and "XS.D" in kept.receiver.tolist()
    # CSV: one row per pair and period, same numbers
    rows = list(csv.DictReader(open(folder / "dispersion_ZZ.csv")))
    assert len(rows) == 4 * len(periods)
    r = next(x for x in rows if x["receiver"] == "XS.D" and float(x["period_s"]) == 10.0)
    i = t.index("XS.A", "XS.D")
    assert float(r["group_velocity_km_s"]) == pytest.approx(t.group_velocity[i, 3], abs=1e-5)
    assert int(r["trusted"]) == int(t.flags[i, 3] == 0)
    # noisecorr info shows the SNR
    assert main(["info", str(path)]) == 0
    info = capsys.readouterr().out
    assert "SNR ZZ" in info and "trusted" in info


def test_a_run_folder_stands_for_its_results_file(results, capsys):
    path, ref, d = results  # run/results.h5: `noisecorr dispersion run` as `dvv` and `stack` take it
    assert main(["dispersion", str(path.parent), "--periods", "5,10", "--no-plots"]) == 0, \
        capsys.readouterr().err
    assert (path.parent / "dispersion" / "dispersion_ZZ.csv").exists()
    with open_results(path.parent) as res:
        assert res.dispersion("ZZ").periods.tolist() == [5.0, 10.0]


def test_dispersion_command_errors_name_the_problem(results, capsys):
    path, ref, d = results
    assert main(["dispersion", str(path), "--component", "RR", "--no-plots"]) != 0
    assert "no pairs of component RR" in capsys.readouterr().err
    assert main(["dispersion", str(path), "--pair", "XS.A:XS.Q"]) != 0
    assert "XS.Q" in capsys.readouterr().err
    with open_results(path) as res, pytest.raises(KeyError, match="noisecorr dispersion"):
        res.dispersion("ZZ")


def test_same_curves_under_every_mapping(results):
    from noisecorr.dispersion.table import measure

    path, ref, d = results
    periods = [4.0, 5.0, 7.0, 10.0, 14.0, 20.0]
    refc = (np.array([2.0, 50.0]), np.array([MODEL.phase_velocity(0.5), MODEL.phase_velocity(0.02)]))
    tables = [measure(path, "ZZ", periods, reference=refc, mapping=m, processes=p, block=b)
              for m, p, b in ((None, None, 4), ("sequential", None, 1), ("multiprocess", 2, 1),
                              ("multiprocess", 2, 3))]
    base = tables[0]
    assert base.trusted.sum() >= 10
    for t in tables[1:]:
        np.testing.assert_array_equal(t.source, base.source)
        for name in ("group_velocity", "phase_velocity", "snr", "snr_symmetric"):
            np.testing.assert_allclose(getattr(t, name), getattr(base, name), rtol=1e-6, equal_nan=True)
        np.testing.assert_array_equal(t.flags, base.flags)
