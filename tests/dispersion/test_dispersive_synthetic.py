"""Ground truth for dispersion: the synthetic generator's dispersive medium, correlated and
measured by FTAN, gives back the model's exact U and c; the models' U is dk/domega."""

import numpy as np
import pytest

from noisecorr.signal.ftan import NEAR_FIELD, ftan
from noisecorr.signal.symmetric import symmetric
from noisecorr.synth.dispersion import DispersionModel, parse_dispersion
from noisecorr.synth.generator import SyntheticNetwork
from noisecorr.synth.geometry import great_circle_km

FS = 2.0
BAND = (0.02, 0.04, 0.4, 0.8)
MODEL = DispersionModel.linear_period(3.0, 0.03, 1.0)
PERIODS = np.array([4.0, 5.0, 7.0, 10.0, 14.0, 20.0])
LAYOUT = [(47.0, 8.0), (47.0, 12.0), (47.0, 10.0), (45.8, 10.0), (47.0, 10.25)]


@pytest.mark.parametrize("model", [
    MODEL,
    DispersionModel.table([2.0, 5.0, 10.0, 20.0, 40.0], [2.9, 3.0, 3.3, 3.6, 3.9]),
])
def test_group_velocity_is_domega_dk(model):
    f = np.linspace(0.03, 0.45, 2001)
    k = 2 * np.pi * f / model.phase_velocity(f)
    u_numeric = np.gradient(2 * np.pi * f, k)
    np.testing.assert_allclose(model.group_velocity(f)[5:-5], u_numeric[5:-5], rtol=2e-4)


def test_parse_dispersion_forms(tmp_path):
    assert parse_dispersion("3.0,0.03").phase_velocity(0.1) == pytest.approx(3.0 + 0.03 * 9)
    p = tmp_path / "c.csv"
    p.write_text("period,velocity\n5,3.0\n20,3.6\n")
    assert parse_dispersion(str(p)).phase_velocity(1 / 20) == pytest.approx(3.6)
    with pytest.raises(ValueError, match="C0,SLOPE"):
        parse_dispersion("fast")


def _ccfs(net, hours, pairs, maxlag=300.0):
    x = net.generate(0, hours * 3600, output="VEL")[:, 0].astype(np.float64)
    win, h = int(3600 * FS), int(maxlag * FS)
    nw = x.shape[1] // win
    spec = np.fft.rfft(x[:, :nw * win].reshape(len(x), nw, win), 2 * win, axis=-1)
    out = []
    for a, b in pairs:  # C_ab(tau) = sum_t a(t) b(t + tau), summed over hour windows
        c = np.fft.irfft((np.conj(spec[a]) * spec[b]).sum(0), 2 * win)
        out.append(np.concatenate([c[-h:], c[:h + 1]]))
    return np.array(out)


def test_noise_of_a_dispersive_medium_gives_back_u_and_c():
    net = SyntheticNetwork(seed=3, sampling_rate=FS, layout=LAYOUT, center=(47.0, 10.0),
                           radius_km=200.0, n_sources=400, band=BAND, snr=np.inf,
                           chunk_length=3600.0, spreading=False, dispersion=MODEL)
    pairs = [(0, 1), (0, 2), (2, 1), (3, 2), (0, 3), (2, 4)]
    d = np.array([great_circle_km(*LAYOUT[a], *LAYOUT[b]) for a, b in pairs])
    cc = _ccfs(net, 48, pairs)
    r = ftan(symmetric(cc), 1 / FS, d, PERIODS,
             reference=lambda t: MODEL.phase_velocity(1 / np.asarray(t)))
    f = 1 / PERIODS
    far = d[:, None] >= 3 * MODEL.phase_velocity(f)[None] * PERIODS[None]
    ok = r.trusted
    assert ok[:5].sum() >= 15  # the five distant pairs are trusted over most of the band
    assert not (ok & ~far).any()  # nothing trusted inside 3 wavelengths
    assert np.abs(r.group_velocity / MODEL.group_velocity(f) - 1)[ok].max() < 0.02
    assert np.abs(r.phase_velocity / MODEL.phase_velocity(f) - 1)[ok].max() < 0.02
    # the 19-km pair is too close at every period
    assert d[5] < 20 and ((r.flags[5] & NEAR_FIELD) > 0).all()


def test_constant_dispersion_matches_the_non_dispersive_generator():
    kw = dict(n_stations=4, seed=5, n_sources=40, components="ZNE", sampling_rate=5.0,
              band=(0.1, 0.2, 1.5, 2.0), chunk_length=300.0)
    a = SyntheticNetwork(**kw).generate(0, 600)
    b = SyntheticNetwork(**kw, dispersion=DispersionModel.constant(3.0)).generate(0, 600)
    assert np.abs(a - b).max() < 1e-4 * np.abs(a).max()


def test_dispersion_outside_the_band_is_refused():
    with pytest.raises(ValueError, match="non-positive"):
        SyntheticNetwork(n_stations=2, dispersion=DispersionModel.linear_period(3.0, -1.0))


def test_synth_command_dispersion_option(tmp_path, capsys):
    from noisecorr.cli import main

    out = tmp_path / "net"
    assert main(["synth", "--stations", "3", "--hours", "0.1", "--sampling-rate", "20",
                 "--out", str(out), "--dispersion", "3.0,0.03"]) == 0
    assert "dispersion linear_period" in capsys.readouterr().out
    manifest = next(p for p in out.iterdir() if p.suffix == ".json").read_text()
    assert '"dispersion": "linear_period"' in manifest
    assert main(["synth", "--stations", "3", "--out", str(tmp_path / "x"), "--dispersion", "fast"]) == 2
    assert "--dispersion" in capsys.readouterr().err
