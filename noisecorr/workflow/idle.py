"""Why the workers of a run idled: the ``idle`` entry of ``summary.json`` and its summary line.

The engine reports, per worker (:attr:`noisecorr.engine.RunResult.workers`), when it began
and finished within the enactment, the seconds its PEs computed (``busy``) and the seconds it
waited blocked on its transport with nothing to do, by reason. The workers' capacity is
``workers x engine wall``; what they did not spend in PE code is split into:

``start-up``
    Before a worker's loop began: process start, imports, unpickling the graph.
``input:PE``
    ``PE`` waited for items from the stages before it on other workers (input bound).
``downstream``
    A worker's sources paused because other workers had not taken its batches yet.
``finished early``
    After a worker's loop ended while others still worked (uneven work, e.g. fewer tiles
    than workers or tiles that do not share evenly).
``engine loop``
    The rest: routing, packing and sending batches, and the run loop itself.
"""

from __future__ import annotations

#: Idle share of the workers' capacity above which the summary says why they idled.
IDLE_NOTE = 0.10


def explain_idle(workers: list, wall: float, tiles_per_instance: list | None = None) -> dict:
    """The idle share of ``workers`` over an enactment of ``wall`` seconds, and why.

    Parameters
    ----------
    workers : list of dict
        :attr:`noisecorr.engine.RunResult.workers` (``start``, ``end``, ``busy`` and
        ``waits`` in seconds).
    wall : float
        Seconds of the enactment.
    tiles_per_instance : list of int, optional
        Tiles each tiled-correlation instance computed, to name uneven tiles.

    Returns
    -------
    dict
        ``{}`` without worker timings; else ``{"workers", "share", "seconds", "main",
        "reason"}``: ``share`` of ``workers x wall`` not spent in PE code, ``seconds``
        ``{category: seconds summed over workers}`` (categories in the module docstring),
        ``main`` the largest category and ``reason`` a sentence naming it (e.g. ``"workers
        idle 23 %: waiting for input of TileCorrelatePE from the stages before it on other
        workers (input bound)"``).

    Examples
    --------
    >>> w = [{"start": 0.5, "end": 10.0, "busy": 9.0, "waits": {}},
    ...      {"start": 0.5, "end": 4.0, "busy": 3.0, "waits": {}}]
    >>> r = explain_idle(w, 10.0, tiles_per_instance=[2, 1])
    >>> r["main"], round(r["share"], 2)
    ('finished early', 0.4)
    >>> r["reason"]
    'workers idle 40 %: finished early while others worked: too few tiles for 2 workers (3 tiles, 2, 1 per worker)'
    """
    if not workers or wall <= 0:
        return {}
    n = len(workers)
    capacity = n * wall
    busy = sum(w["busy"] for w in workers)
    idle = max(0.0, capacity - busy)
    seconds = {"start-up": sum(w["start"] for w in workers),
               "finished early": sum(max(0.0, wall - w["end"]) for w in workers)}
    for w in workers:
        for reason, s in w["waits"].items():
            seconds[reason] = seconds.get(reason, 0.0) + s
    seconds["engine loop"] = max(0.0, idle - sum(seconds.values()))
    seconds = {k: round(v, 3) for k, v in seconds.items()}
    main = max(seconds, key=seconds.get)
    share = idle / capacity
    return {"workers": n, "share": round(share, 4), "seconds": seconds, "main": main,
            "reason": f"workers idle {100 * share:.0f} %: {_phrase(main, n, tiles_per_instance, seconds)}"}


def _phrase(main: str, n: int, tiles, seconds) -> str:
    if main.startswith("input:"):
        return f"waiting for input of {main[6:]} from the stages before it on other workers (input bound)"
    if main == "downstream":
        return "sources waiting for other workers to take their batches (bound by the stages after them)"
    if main == "start-up":
        return (f"starting the workers (process start, imports, unpickling the graph: "
                f"{seconds['start-up'] / n:.1f} s per worker)")
    if main == "finished early":
        text = "finished early while others worked"
        if tiles:
            total = sum(tiles)
            if total < n or max(tiles) != min(tiles):
                return (f"{text}: too few tiles for {n} workers ({total} tiles, "
                        f"{', '.join(str(t) for t in tiles)} per worker)")
        return f"{text} (uneven work over {n} workers)"
    if main == "engine loop":
        return "in the engine outside the PEs (routing, packing and sending batches)"
    return main
