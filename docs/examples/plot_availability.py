"""
Data availability of the sample stations
========================================

One bar per contiguous trace of each station in the bundled SDS archive (6 stations, 3 hours
across midnight, so two day files per channel), read with ObsPy's headers only, drawn by
:func:`noisecorr.results.plot.availability` (what ``noisecorr plot availability DATA`` draws).
The sample has one gap, 30 s on XS.S0003 at 23:10 UTC: the windows that overlap it are
rejected, which ``summary.json`` of a run reports as ``gap``.
"""

from obspy import UTCDateTime, read

from noisecorr.results.plot import availability
from noisecorr.workflow.config import bundled_station_data

sds = bundled_station_data() / "SDS"
intervals = []
for path in sorted(p for p in sds.rglob("*") if p.is_file()):
    for tr in read(str(path), headonly=True):
        intervals.append((f"{tr.stats.network}.{tr.stats.station}", tr.stats.starttime, tr.stats.endtime))

fig = availability(intervals, title="station_data/SDS: one bar per trace")

# %%
# The gap, found from the same intervals: consecutive traces of one station that do not meet
# (their samples more than one sample interval, 0.05 s at 20 Hz, apart).
by_station = {}
for station, start, end in intervals:
    by_station.setdefault(station, []).append((start, end))
for station, spans in sorted(by_station.items()):
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:]):
        if start - end > 0.05 + 1e-6:
            print(f"{station}: no data for {start - end - 0.05:.2f} s after {end}")
assert UTCDateTime(2024, 1, 1, 23, 10) - 0.1 <= min(by_station["XS.S0003"])[1] <= UTCDateTime(2024, 1, 1, 23, 10)
