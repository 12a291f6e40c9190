"""noisecorr merge on hand-made task results (no SLURM needed): the window-weighted linear
stack, and refusals of missing, unfinished, overlapping, gapped or mismatched tasks."""

import json

import numpy as np
import pytest

from noisecorr.cli import main
from noisecorr.results import ResultsWriter, open_results
from noisecorr.slurm.errors import MergeError
from noisecorr.slurm.merge import merge_tasks

PARAMS = {"chunk_length": 3600.0, "processing": {"stack_method": "linear", "substack": False, "maxlag": 0.2}}
STATIONS = [{"code": "XS.A", "latitude": 47.0, "longitude": 10.0, "elevation": 0.0},
            {"code": "XS.B", "latitude": 47.1, "longitude": 10.1, "elevation": 0.0}]
HOURS = ["2024-01-01T00:00:00.000000Z", "2024-01-01T01:00:00.000000Z", "2024-01-01T02:00:00.000000Z",
         "2024-01-01T03:00:00.000000Z"]


def _task(root, i, stack, n, start=None, end=None, params=PARAMS):
    folder = root / "tasks" / f"task-{i:04d}"
    with ResultsWriter(folder / "results.h5", params, version="t", stations=STATIONS, sampling_rate=10.0,
                       starttime=start or HOURS[i], endtime=end or HOURS[i + 1]) as w:
        w.write_pair("XS.A", "XS.B", "ZZ", 0.2, np.asarray(stack, "f4"), {"n_windows": n})
    return folder


def test_weighted_mean_of_three_tasks(tmp_path):
    rng = np.random.default_rng(1)
    sums = [rng.normal(size=5) * n for n in (4, 0, 7)]
    for i, (s, n) in enumerate(zip(sums, (4, 0, 7))):
        _task(tmp_path, i, s / n if n else np.zeros(5), n)
    report = merge_tasks([tmp_path / "tasks"], tmp_path, start=HOURS[0], end=HOURS[3], expected=3)
    assert report.tasks == 3 and report.pairs == 1 and report.windows == 11
    with open_results(tmp_path / "results.h5") as res:
        lags, stack = res.stack("XS.A", "XS.B", "ZZ")
        meta = res.meta("XS.A", "XS.B", "ZZ")
        assert res.starttime == HOURS[0] and res.endtime == HOURS[3]
        assert res.params == PARAMS
    want = (sums[0] + sums[2]) / 11
    np.testing.assert_allclose(stack, want, rtol=0, atol=1e-6 * np.abs(want).max())
    assert meta["n_windows"] == 11 and meta["distance_km"] > 0
    assert lags.tolist() == [-0.2, -0.1, 0.0, 0.1, 0.2]
    assert json.loads((tmp_path / "summary.json").read_text())["merged"]["tasks"] == 3
    # rerunning the merge gives the same file contents
    merge_tasks([tmp_path / "tasks"], tmp_path, expected=3, plot=False)
    with open_results(tmp_path / "results.h5") as res:
        np.testing.assert_array_equal(res.stack("XS.A", "XS.B", "ZZ")[1], stack)


def test_missing_task_is_named(tmp_path):
    _task(tmp_path, 0, np.ones(5), 2)
    _task(tmp_path, 2, np.ones(5), 2)
    with pytest.raises(MergeError, match="task-0001"):
        merge_tasks([tmp_path / "tasks"], tmp_path, expected=3)
    with pytest.raises(MergeError, match="leave a gap"):
        merge_tasks([tmp_path / "tasks"], tmp_path)
    assert not (tmp_path / "results.h5").exists()


def test_overlap_and_span_checks(tmp_path):
    _task(tmp_path, 0, np.ones(5), 2)
    _task(tmp_path, 1, np.ones(5), 2, start="2024-01-01T00:30:00", end=HOURS[2])
    with pytest.raises(MergeError, match="overlap"):
        merge_tasks([tmp_path / "tasks"], tmp_path)
    other = tmp_path / "b"
    _task(other, 0, np.ones(5), 2)
    with pytest.raises(MergeError, match="--end"):
        merge_tasks([other / "tasks"], other, end=HOURS[2])


def test_unfinished_task_and_different_params_are_refused(tmp_path):
    _task(tmp_path, 0, np.ones(5), 2)
    _task(tmp_path, 1, np.ones(5), 2, params={**PARAMS, "chunk_length": 7200.0})
    with pytest.raises(MergeError, match="different parameters"):
        merge_tasks([tmp_path / "tasks"], tmp_path)
    parts = tmp_path / "tasks" / "task-0001" / "results.h5.parts"
    parts.mkdir()
    with pytest.raises(MergeError, match="did not finish"):
        merge_tasks([tmp_path / "tasks"], tmp_path)


def test_non_linear_stacks_are_refused(tmp_path):
    pws = {**PARAMS, "processing": {**PARAMS["processing"], "stack_method": "pws"}}
    _task(tmp_path, 0, np.ones(5), 2, params=pws)
    with pytest.raises(MergeError, match="linear"):
        merge_tasks([tmp_path / "tasks"], tmp_path)


def test_merge_command(tmp_path, capsys):
    _task(tmp_path, 0, np.ones(5), 2)
    _task(tmp_path, 1, 3 * np.ones(5), 6)
    assert main(["merge", "--out", str(tmp_path), "--tasks", "2", "--no-plot", str(tmp_path / "tasks")]) == 0
    assert "tasks merged" in capsys.readouterr().out
    with open_results(tmp_path / "results.h5") as res:
        np.testing.assert_allclose(res.stack("XS.A", "XS.B")[1], 2.5)
    assert main(["merge", "--out", str(tmp_path), "--tasks", "3", str(tmp_path / "tasks")]) == 1
    assert "task-0002" in capsys.readouterr().err


def test_doctests():
    import doctest

    import noisecorr.slurm.merge
    import noisecorr.slurm.options
    import noisecorr.slurm.profiles
    import noisecorr.slurm.render

    for module in (noisecorr.slurm.merge, noisecorr.slurm.options, noisecorr.slurm.profiles, noisecorr.slurm.render):
        failures, tried = doctest.testmod(module)
        assert tried > 0 and failures == 0, module.__name__
