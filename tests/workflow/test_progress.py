"""The progress display of ``noisecorr run``: true totals at the end, a bar on a terminal,
plain rate-limited lines elsewhere (issue 17, part 3)."""

import io
import json
import os
import subprocess
import sys

import pytest

from noisecorr.workflow.progress import ProgressPrinter


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class FakeReport:
    pairs_written, pairs_expected, pairs_resumed, wall_seconds = 15, 15, 0, 12.4


def test_terminal_bar_shows_rate_and_time_left():
    out, clock = io.StringIO(), Clock()
    show = ProgressPrinter(out, tty=True, clock=clock, width=10)
    show.start(40)
    clock.t += 10
    show({"Preprocess": {"in": 10, "out": 10}, "TileCorrelatePE": {"in": 3, "out": 2}})
    text = out.getvalue()
    assert text.startswith("\r[##--------] 10/40 channel-chunks")
    assert "1.0/s, 30s left" in text and "2 correlation items" in text and "10s elapsed" in text
    assert "\n" not in text                                   # redrawn in place
    clock.t += 30
    show({"Preprocess": {"in": 40, "out": 40}})
    show.finish(FakeReport())
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("done: 40/40 channel-chunks preprocessed, 15 of 15 pairs written")
    assert last.endswith("\n") and "\x1b" not in out.getvalue()


def test_log_lines_are_plain_and_rate_limited():
    out, clock = io.StringIO(), Clock()
    show = ProgressPrinter(out, tty=False, clock=clock)
    show.start(6)
    for step in range(30):                                    # 30 updates over 15 s
        show({"Preprocess": {"in": step // 5, "out": 0}})
        clock.t += 0.5
    show.finish(FakeReport())
    lines = out.getvalue().splitlines()
    assert len(lines) == 3                                     # at 0 s and 10 s, then the totals
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[1].startswith("[") and "4/6 channel-chunks" in lines[1]
    assert lines[-1].startswith("done: 5/6 channel-chunks preprocessed, 15 of 15 pairs written")


@pytest.mark.parametrize("mapping", ["sequential", "multiprocess"])
def test_sample_run_ends_with_the_true_totals(tmp_path, mapping):
    """Before: the sample run ended on 'preprocessed 1 channel-chunks, 0 correlation
    batches, 0 written' with 15 pairs written."""
    cmd = [sys.executable, "-m", "noisecorr", "run", "--out", str(tmp_path / "o"), "--mapping", mapping]
    if mapping != "sequential":
        cmd += ["-n", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    progress = [ln for ln in proc.stderr.splitlines() if ln.startswith(("[", "done:"))]
    assert progress, proc.stderr[-3000:]
    assert progress[-1].startswith(f"done: 6/6 channel-chunks preprocessed, {summary['pairs_written']} of "
                                   f"{summary['pairs_expected']} pairs written")
    assert summary["pairs_written"] == 15
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr      # not a terminal
