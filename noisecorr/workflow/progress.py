"""The progress display of ``noisecorr run``: a live bar on a terminal, plain lines in a log.

The engine calls the printer with ``{pe: {"in": n, "out": n}}`` (all workers together)
about twice a second. On a terminal the line is redrawn in place (``\\r``) with a bar, the
rate and the time left; anywhere else (a log file, a batch job's output) a plain line is
written every ``interval`` seconds, with no control characters. Either way the run ends
with one line of true totals taken from the run's report (the same figures as
``summary.json``), so the last line never shows a stale snapshot.

The unit of the bar is the channel-chunk (one channel over one ``chunk_length``), the work
whose total is known before the run starts; correlation work follows it.
"""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressPrinter"]

#: PEs whose outputs are correlation results: per-pair items or per-tile items.
CORRELATORS = ("CrossCorrelate", "TileCorrelatePE")


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class ProgressPrinter:
    """Callable progress hook for :func:`noisecorr.workflow.runner.run_workflow`.

    Parameters
    ----------
    stream : file, optional
        Where to write (default ``sys.stderr``).
    tty : bool, optional
        Redraw in place with a bar (default: whether ``stream`` is a terminal).
    clock : callable, optional
        Seconds, monotonic (default :func:`time.monotonic`); injectable for tests.
    interval : float, optional
        Seconds between lines when not a terminal (default 10) or between redraws on a
        terminal (default 0.2).
    width : int
        Characters of the bar.
    """

    def __init__(self, stream=None, tty: bool | None = None, clock=time.monotonic,
                 interval: float | None = None, width: int = 24):
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(tty) if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.interval = (0.2 if self.tty else 10.0) if interval is None else float(interval)
        self.width = int(width)
        self.total = None
        self.t0 = None
        self.last = None
        self.counts = {}
        self._width_drawn = 0   # length of the line now on the terminal, to overwrite it

    def start(self, total_chunks: int) -> None:
        """Set the number of channel-chunks the run will preprocess."""
        self.total = int(total_chunks)
        self.t0 = self.clock()

    def __call__(self, counts: dict) -> None:
        self.counts = counts
        now = self.clock()
        if self.t0 is None:
            self.t0 = now
        if self.last is not None and now - self.last < self.interval:
            return
        self.last = now
        self._emit(self.render(counts, now))

    def render(self, counts: dict, now: float) -> str:
        """The live line for ``counts`` at time ``now`` (no control characters)."""
        done = counts.get("Preprocess", {}).get("in", 0)
        correlated = sum(counts.get(pe, {}).get("out", 0) for pe in CORRELATORS)
        elapsed = max(now - (self.t0 if self.t0 is not None else now), 0.0)
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = []
        if self.total:
            frac = min(done / self.total, 1.0)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            parts.append(f"[{bar}] {done}/{self.total} channel-chunks")
            if rate > 0 and done < self.total:
                parts.append(f"{rate:.1f}/s, {_duration((self.total - done) / rate)} left")
        else:
            parts.append(f"{done} channel-chunks")
            if rate > 0:
                parts.append(f"{rate:.1f}/s")
        parts.append(f"{correlated} correlation items")
        parts.append(f"{_duration(elapsed)} elapsed")
        return ", ".join(parts)

    def finish(self, report) -> None:
        """The closing line of true totals from a :class:`~noisecorr.workflow.runner.Report`."""
        done = self.counts.get("Preprocess", {}).get("in", 0)
        chunks = f"{done}/{self.total}" if self.total else str(done)
        self._emit(f"done: {chunks} channel-chunks preprocessed, {report.pairs_written} of "
                   f"{report.pairs_expected} pairs written ({report.pairs_resumed} resumed), "
                   f"in {_duration(report.wall_seconds)}", final=True)

    def _emit(self, text: str, final: bool = False) -> None:
        if self.tty:
            # pad to overwrite a longer previous line; the terminal's own \r, no escapes
            self.stream.write("\r" + text.ljust(self._width_drawn) + ("\n" if final else ""))
            self._width_drawn = 0 if final else len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
