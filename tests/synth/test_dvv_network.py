"""`noisecorr synth --days N --dvv ...` -> `noisecorr run` (daily sub-stacks) -> `noisecorr dvv`
recovers the imposed velocity step.

Kept small so it takes seconds: 3 stations (3 pairs, 89-188 km), 6 days at 4 Hz (the
synth command then narrows the source band to 0.1-1.7 Hz), half-hour windows without
overlap, processing band 0.1-1 Hz. The generator has no scattering coda (plane waves from
sources all around), so the "coda" window is a fixed 20-70 s lag window that holds the
ballistic arrivals of every pair: their travel times scale with 1 / (1 + dv/v) like any
arrival's, which is what stretching measures.
"""

import csv
from datetime import date

import numpy as np
import pytest

from noisecorr.cli import main
from noisecorr.monitoring import read
from noisecorr.synth.dvv import DvvHistory

STEP = -0.005


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dvvnet")
    syn = root / "syn"
    assert main(["synth", "--stations", "3", "--days", "6", "--sampling-rate", "4",
                 "--dvv", f"step:2024-01-04:{STEP}", "--out", str(syn)]) == 0
    cfg = root / "run.yaml"
    cfg.write_text(f"""data: {syn / 'SDS'}
inventory: {syn / 'stations.xml'}
start: "2024-01-01T00:00:00"
end: "2024-01-07T00:00:00"
out: {root / 'run'}
processing:
  sampling_rate: 4.0
  freqmin: 0.1
  freqmax: 1.0
  maxlag: 120.0
  cc_len: 1800.0
  step: 1800.0
  substack: true
  substack_len: 86400.0
""")
    assert main(["run", "--config", str(cfg)]) == 0
    return syn, root / "run"


def test_synth_writes_day_files_and_the_truth(run):
    syn, _ = run
    files = sorted((syn / "SDS" / "2024").rglob("*.D.2024.*"))
    assert len(files) == 3 * 6 and {f.name[-3:] for f in files} == {f"{d:03d}" for d in range(1, 7)}
    rows = list(csv.DictReader(open(syn / "dvv_truth.csv")))
    assert [r["day"] for r in rows] == [date(2024, 1, d).isoformat() for d in range(1, 7)]
    assert [float(r["dvv"]) for r in rows] == [0.0] * 3 + [STEP] * 3


def test_dvv_recovers_the_step(run, capsys):
    _, out = run
    assert main(["dvv", str(out), "--coda-factor", "0", "--coda-start", "20", "--coda-length", "50",
                 "--max-dvv", "0.02", "--reference", "2024-01-01", "2024-01-04"]) == 0
    d = read(out / "dvv" / "dvv.h5")
    truth = np.array([0.0] * 3 + [STEP] * 3)
    v, e, n = d["network"]
    assert n.tolist() == [3] * 6
    assert np.abs(v - truth).max() < 1e-3                  # 0.1 % absolute on daily stacks
    step = v[3:].mean() - v[:3].mean()
    assert step == pytest.approx(STEP, rel=0.1)            # a slower medium: negative
    # every pair sees it
    assert np.all(d["dvv"][:, 3:].mean(axis=1) - d["dvv"][:, :3].mean(axis=1) < 0.6 * STEP)


def test_history_parsing_and_errors():
    from obspy import UTCDateTime

    h = DvvHistory(["trend:0.0001/day", "sine:0.002:4d", "step:2024-01-02:0.001"], UTCDateTime(2024, 1, 1))
    got = h.daily(5)
    expect = 1e-4 * np.arange(5) + 0.002 * np.sin(2 * np.pi * np.arange(5) / 4) + [0, 1e-3, 1e-3, 1e-3, 1e-3]
    np.testing.assert_allclose(got, expect, atol=1e-15)
    # the medium of a day holds all day
    assert h.at(UTCDateTime(2024, 1, 3, 23).timestamp) == pytest.approx(got[2])
    for bad in ("ramp:1", "sine:0.1", "step:notadate:0.1", "sine:0.1:10x"):
        with pytest.raises(ValueError, match="--dvv"):
            DvvHistory([bad], UTCDateTime(2024, 1, 1))
