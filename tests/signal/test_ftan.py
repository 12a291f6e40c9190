"""FTAN against exact dispersion: diffuse-field correlations of a medium with a known
phase velocity c(f), whose group velocity U = c / (1 - (f/c) dc/df) is exact."""

import numpy as np
import pytest

from noisecorr.signal.ftan import NEAR_FIELD, _interp_rows, alpha_for, flag_names, ftan
from noisecorr.signal.symmetric import symmetric
from noisecorr.synth.dispersion import DispersionModel, diffuse_ccf

FS = 2.0
BAND = (0.02, 0.04, 0.4, 0.8)
PERIODS = np.array([3.0, 4.0, 5.0, 7.0, 10.0, 14.0, 20.0, 25.0])


def _run(model, distances, **kw):
    ccf = diffuse_ccf(distances, model, FS, 400.0, band=BAND)
    kw.setdefault("reference", lambda t: model.phase_velocity(1.0 / np.asarray(t)))
    kw.setdefault("min_snr", 0.0)
    return ftan(symmetric(ccf), 1 / FS, distances, PERIODS, **kw)


@pytest.mark.parametrize("phase_matched", [True, False])
def test_recovers_group_and_phase_velocity_in_trusted_band(phase_matched):
    model = DispersionModel.linear_period(3.0, 0.03, 1.0)  # 3.06 km/s at 3 s to 3.72 at 25 s
    d = np.array([60.0, 150.0, 300.0, 500.0])
    r = _run(model, d, phase_matched=phase_matched)
    f = 1 / PERIODS
    trusted = r.trusted
    # the far-field rule, not the accuracy, decides: every trusted pair-period is >= 3 wavelengths
    c_true = model.phase_velocity(f)
    assert np.all(d[:, None][trusted.nonzero()[0]][:, 0] >= 3 * (c_true * PERIODS)[trusted.nonzero()[1]] * 0.999)
    assert trusted.sum() >= 18
    u_err = np.abs(r.group_velocity / model.group_velocity(f) - 1)[trusted]
    c_err = np.abs(r.phase_velocity / c_true - 1)[trusted]
    assert u_err.max() < 0.02 and c_err.max() < 0.02
    # and not by luck: well within
    assert np.median(u_err) < 0.005 and np.median(c_err) < 0.005


def test_close_pairs_are_flagged_near_field():
    model = DispersionModel.linear_period(3.0, 0.03, 1.0)
    d = np.array([40.0, 400.0])
    r = _run(model, d)
    wavelengths = d[:, None] / (model.phase_velocity(1 / PERIODS) * PERIODS)[None]
    measured = np.isfinite(r.group_velocity)
    near = (r.flags & NEAR_FIELD) > 0
    # flagged exactly where fewer than 3 wavelengths fit (away from the 3.0 boundary)
    clear = measured & (np.abs(wavelengths - 3) > 0.1)
    assert np.array_equal(near[clear], (wavelengths < 3)[clear])
    assert near[0, PERIODS >= 5].all()  # 40 km holds < 3 wavelengths from 5 s on
    assert not near[1].any()
    assert "near_field" in flag_names(int(r.flags[0, -2]))


def test_non_dispersive_medium_gives_flat_curve_at_generator_velocity():
    model = DispersionModel.constant(3.2)
    d = np.array([200.0, 350.0])
    # a reference 1.5 % off, under half the branch spacing at 27 wavelengths (350 km, 4 s);
    # the continental default is 12 % off at 20 s and would pick another branch
    r = ftan(symmetric(diffuse_ccf(d, model, FS, 400.0, band=BAND)), 1 / FS, d, PERIODS,
             min_snr=0.0, reference=([1.0, 100.0], [3.25, 3.25]))
    ok = r.trusted
    assert ok.sum() >= 8
    assert np.abs(r.group_velocity[ok] / 3.2 - 1).max() < 0.01
    assert np.abs(r.phase_velocity[ok] / 3.2 - 1).max() < 0.01


def test_wrong_branch_without_a_good_reference_at_many_wavelengths():
    """At 40 wavelengths branches are 2.5 % apart: a reference 2.3 % off, used period by
    period, picks the next one (documented); the true reference recovers the curve."""
    model = DispersionModel.constant(3.0)
    d = np.array([480.0])
    ccf = symmetric(diffuse_ccf(d, model, FS, 400.0, band=BAND))
    bad = ftan(ccf, 1 / FS, d, PERIODS, reference=([1.0, 100.0], [3.07, 3.07]), min_snr=0,
               branch="reference")
    # continuity from the longest period (6 wavelengths, branches 16 % apart) stays right
    cont = ftan(ccf, 1 / FS, d, PERIODS, reference=([1.0, 100.0], [3.07, 3.07]), min_snr=0)
    assert abs(cont.phase_velocity[0, PERIODS == 4.0][0] / 3.0 - 1) < 0.005
    good = ftan(ccf, 1 / FS, d, PERIODS, reference=([1.0, 100.0], [3.0, 3.0]), min_snr=0)
    at4 = PERIODS == 4.0
    assert abs(good.phase_velocity[0, at4][0] / 3.0 - 1) < 0.005
    # one branch up: k d smaller by 2 pi
    k = 2 * np.pi / (4.0 * 3.0)
    assert bad.phase_velocity[0, at4][0] == pytest.approx(2 * np.pi / 4.0 / (k - 2 * np.pi / 480.0), rel=5e-3)


def test_jump_control_rejects_a_spurious_arrival():
    """A strong late pulse (a spurious arrival at 1.8 km/s) must not capture the ridge."""
    model = DispersionModel.linear_period(3.0, 0.03, 1.0)
    d = np.array([300.0])
    s = symmetric(diffuse_ccf(d, model, FS, 400.0, band=BAND)).astype(float)
    t = np.arange(s.shape[-1]) / FS
    s[0] += 0.6 * np.exp(-((t - 300.0 / 1.8) / 2.0) ** 2) * np.cos(2 * np.pi * t / 4.0)
    r = ftan(s, 1 / FS, d, PERIODS, min_snr=0,
             reference=lambda q: model.phase_velocity(1 / np.asarray(q)))
    f = 1 / PERIODS
    sel = (PERIODS >= 7) & r.trusted[0]
    assert sel.sum() >= 3
    assert np.abs(r.group_velocity[0, sel] / model.group_velocity(f[sel]) - 1).max() < 0.02


def test_alpha_scaling_and_input_checks():
    assert alpha_for([1000.0, 250.0]).tolist() == [20.0, 10.0]
    with pytest.raises(ValueError, match="distance_km"):
        ftan(np.zeros((2, 100)), 0.5, [100.0, -1.0], PERIODS)
    with pytest.raises(ValueError, match="periods"):
        ftan(np.zeros((1, 100)), 0.5, [100.0], [10.0, 5.0])


def test_row_interpolation_matches_numpy_per_row():
    rng = np.random.default_rng(3)
    x = np.sort(rng.uniform(1, 30, (5, 7)), axis=-1)
    y = rng.normal(size=(5, 7))
    x[2, 3] = np.nan
    x[0, :2] = np.nan  # missing values in several rows, one row almost empty
    x[4, 1:] = np.nan
    x[1] += 500.0  # rows on very different scales
    q = np.concatenate([np.linspace(0, 31, 40), np.linspace(500, 531, 40)])
    got = _interp_rows(x, y, q)
    for i in range(5):
        ok = np.isfinite(x[i])
        want = np.interp(q, x[i, ok], y[i, ok], left=np.nan, right=np.nan)
        np.testing.assert_allclose(got[i], want, rtol=1e-9, equal_nan=True)


def test_batches_do_not_change_results():
    model = DispersionModel.linear_period(3.0, 0.03, 1.0)
    d = np.linspace(120.0, 500.0, 7)
    s = symmetric(diffuse_ccf(d, model, FS, 400.0, band=BAND))
    a = ftan(s, 1 / FS, d, PERIODS, block=2, min_snr=0)
    b = ftan(s, 1 / FS, d, PERIODS, block=100, min_snr=0)
    np.testing.assert_allclose(a.group_velocity, b.group_velocity, rtol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(a.flags, b.flags)


def test_continuity_keeps_the_branch_where_a_biased_reference_alone_would_not():
    """A reference 4 % too fast: at 480 km the short periods hold 35-40 wavelengths
    (branches 2.5-3 % apart), so choosing per period picks wrong branches there; from the
    longest period (9 wavelengths, 11 % apart) continuity keeps the right one."""
    model = DispersionModel.linear_period(3.0, 0.03, 1.0)
    d = np.array([480.0])
    s = symmetric(diffuse_ccf(d, model, FS, 400.0, band=BAND))
    biased = lambda t: 1.04 * model.phase_velocity(1.0 / np.asarray(t))  # noqa: E731
    per_period = ftan(s, 1 / FS, d, PERIODS, reference=biased, branch="reference", min_snr=0)
    cont = ftan(s, 1 / FS, d, PERIODS, reference=biased, min_snr=0)
    c = model.phase_velocity(1 / PERIODS)
    ok = cont.trusted[0]
    assert ok.sum() >= 5
    assert np.abs(cont.phase_velocity[0, ok] / c[ok] - 1).max() < 0.005
    assert np.abs(per_period.phase_velocity[0, ok] / c[ok] - 1).max() > 0.02
