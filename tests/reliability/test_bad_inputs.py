"""Bad input: the run finishes the good stations, names every bad item with its reason,
exits with "done with skips" (3), and leaves the good pairs' results unchanged.

Corpus: tests/data/bad/ (made by scripts/make_bad_inputs.py; its defects.json says which
station carries which defect and which reason must be reported).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from noisecorr import open_results
from noisecorr.workflow import load_config, run_workflow

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad"
DEFECTS = json.loads((BAD / "defects.json").read_text())


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "out"
    config = load_config(BAD / "run.yaml", overrides={"data": str(BAD / "archive"), "out": str(out)})
    return run_workflow(config)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "out"
    config = load_config(BAD / "run.yaml", overrides={"data": str(BAD / "clean"), "out": str(out), "stations": 4})
    return run_workflow(config)


@pytest.mark.parametrize("station", sorted(DEFECTS["defects"]))
def test_each_defect_is_named_with_its_reason(bad_run, station):
    defect = DEFECTS["defects"][station]
    mentions = [why for who, why in bad_run.skipped if f"S{station[1:]}" in who or f"XS.{station}" in who
                or f"/{station}/" in who or f"XS.{station}." in why]
    with open_results(bad_run.results) as res:
        used = {s for pair in res.pairs() for s in pair}
    if defect["used"]:
        assert f"XS.{station}" in used, f"{station} ({defect['what']}) should still be correlated"
    else:
        assert mentions, f"{station} ({defect['what']}) is not named in the summary: {bad_run.skipped}"
        assert any(re.search(defect["reason"], why) for why in mentions), (station, mentions)
        assert f"XS.{station}" not in used


def test_good_pairs_are_unchanged(bad_run, clean_run):
    good = [f"XS.{s}" for s in DEFECTS["good"]]
    with open_results(bad_run.results) as bad, open_results(clean_run.results) as clean:
        assert sorted(clean.pairs()) == [(a, b) for i, a in enumerate(good) for b in good[i + 1:]]
        for a, b in clean.pairs():
            lags, want = clean.stack(a, b)
            _, got = bad.stack(a, b)
            # the tiled BLAS stage groups stations into blocks differently when bad stations
            # are present, so sums run in another order: equal to float32 rounding
            assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want)), f"{a}-{b} changed"
            assert bad.meta(a, b)["n_windows"] == clean.meta(a, b)["n_windows"]


def test_gaps_overlaps_and_clock_jump_reject_windows_not_stations(bad_run):
    assert bad_run.windows_rejected.get("gap", 0) > 0


def test_cli_exit_code_says_done_with_skips(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "noisecorr", "run", "--config", str(BAD / "run.yaml"), "--data", str(BAD / "archive"),
         "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "XS.S0008..BHZ" in proc.stderr and "empty file" in proc.stderr  # logged as it happens
    assert "stations skipped" in proc.stdout and "empty file" in proc.stdout  # and in the summary
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert any("S0012" in who and "missing from the StationXML" in why for who, why in summary["skipped"])


@pytest.mark.parametrize("config, message", [
    ("bad_config.yaml", r"bad_config.yaml is not valid YAML at line \d+"),
    ("unknown_keys.yaml", r"unknown key 'maping'"),
])
def test_bad_config_fails_before_running(tmp_path, config, message):
    proc = subprocess.run([sys.executable, "-m", "noisecorr", "run", "--config", str(BAD / config),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "o").exists(), "nothing may run on a bad configuration"


def test_unknown_processing_key_and_bad_values_are_named():
    from noisecorr.workflow.config import ConfigError, from_mapping

    with pytest.raises(ConfigError, match=r"unknown processing key\(s\) \['cc_lenght'\]"):
        from_mapping({"processing": {"cc_lenght": 300}})
    with pytest.raises(ConfigError, match="freqmax"):
        from_mapping({"processing": {"freqmax": 15.0}})
    with pytest.raises(ConfigError, match="mapping: 'threads' is not one of"):
        from_mapping({"mapping": "threads"})
    with pytest.raises(ConfigError, match="chunk_length"):
        from_mapping({"chunk_length": 60})
