"""Exchange results with other tools: SAC, ASDF (NoisePy's stack layout), miniSEED, npz
and xarray.

:func:`export` writes the stacks of a results file in one of :data:`FORMATS`;
:func:`import_results` reads NoisePy ASDF stacks or SAC files back into a noisecorr
results file; :func:`noisecorr.interop.xarray.to_xarray` gives a lazy
:class:`xarray.Dataset`. Every format module imports its optional dependency (ObsPy,
pyasdf, xarray, dask) only when used.
"""

from __future__ import annotations

from .select import Selection, select

__all__ = ["FORMATS", "export", "import_results", "select", "Selection"]

#: Export formats and the module that writes each.
FORMATS = ("sac", "asdf", "mseed", "npz")


def export(results, out_dir, fmt: str, *, pairs=None, components=None, min_distance=None,
           max_distance=None, symmetric: bool = False) -> list:
    """Write the selected stacks of ``results`` (a path or an open
    :class:`noisecorr.results.reader.Results`) into ``out_dir`` as ``fmt``.

    Parameters
    ----------
    results : path or Results
    out_dir : path
        Created if missing.
    fmt : {"sac", "asdf", "mseed", "npz"}
    pairs : list of (source, receiver), optional
        Default every pair.
    components : list of str, optional
        Default every component.
    min_distance, max_distance : float, optional
        Inter-station distance range, km (inclusive).
    symmetric : bool
        SAC only: also write the symmetric component (mean of the causal and the
        time-reversed acausal side, :func:`noisecorr.signal.symmetric.symmetric`) as
        ``COMP_sym/SRC_RCV.SAC``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from noisecorr.results.reader import Results, open_results

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if symmetric and fmt != "sac":
        raise ValueError(f"--symmetric is written for SAC only, not {fmt!r}")
    own = not isinstance(results, Results)
    res = open_results(results) if own else results
    try:
        sel = select(res, pairs=pairs, components=components, min_distance=min_distance,
                     max_distance=max_distance)
        if fmt == "sac":
            from .sac import write_sac

            return write_sac(res, sel, out_dir, symmetric=symmetric)
        if fmt == "asdf":
            from .asdf import write_asdf

            return write_asdf(res, sel, out_dir)
        if fmt == "mseed":
            from .mseed import write_mseed

            return write_mseed(res, sel, out_dir)
        from .npz import write_npz

        return write_npz(res, sel, out_dir)
    finally:
        if own:
            res.close()


def import_results(inputs, out, fmt: str, **kwargs):
    """Read other tools' stacks into the noisecorr results file ``out``.

    Parameters
    ----------
    inputs : path or list of paths
        Files or directories (searched recursively).
    out : path
        The results file to write (must not exist).
    fmt : {"asdf", "sac", "npz"}
        ``asdf``: NoisePy's stack files (:func:`noisecorr.interop.asdf.read_asdf`);
        ``sac``: SAC files with the headers :func:`noisecorr.interop.sac.write_sac` writes;
        ``npz``: our own npz export.

    Returns
    -------
    int
        Stacks written.
    """
    from .importing import import_results as _imp

    return _imp(inputs, out, fmt, **kwargs)
