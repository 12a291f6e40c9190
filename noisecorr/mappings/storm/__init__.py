"""The Storm mapping: a workflow graph as an Apache Storm topology of multilang components.

``noisecorr storm package MODULE[:ATTR] --out DIR`` writes a deployable topology (Flux
YAML, the pickled graph description, ``resources/`` with the component code, a jar and a
README with the ``storm`` commands; see :mod:`.package`). ``run(graph, mapping="storm")``
packages into a temporary directory and runs it with the ``storm`` command on ``PATH``
(``storm local`` with a bounded ``--local-ttl``), collecting what the output tasks write;
without a ``storm`` command it fails at once with :class:`MappingError`.
``run(graph, mapping="storm", harness=True)`` runs the same package under
:class:`noisecorr.testing.storm_harness.LocalStormHarness`, a protocol harness that plays the
Java side of Storm's multilang protocol (JSON messages over the components' stdin/stdout,
each followed by a line ``end``), so the generated topology is tested where Storm is not
installed. The harness is test tooling: no module of this mapping imports it, except
:func:`enact` when ``harness=True`` is asked for. It is not a Storm cluster.

Design (details in the submodules):

* Components (:mod:`.component`): each task runs the shared run loop
  (:class:`~noisecorr.engine.runtime.Worker`) over its one PE instance, with a Storm
  transport (tuples and end-of-stream markers in, emits and acks out); one per PE, ``FluxShellSpout`` for PEs without inputs,
  ``FluxShellBolt`` for the others, parallelism = instance count of
  :func:`~noisecorr.engine.plan.make_plan` (PE hints, else a share of ``processes``). Each
  task hosts one PE instance; its index among the component's tasks is the instance number.
* Streams (:mod:`.layout`): one Storm stream per output port, fields ``["key", "payload"]``
  (``key_1 ...`` more when consumers group by different keys), and one end-of-stream
  stream ``<port>__eos`` with field ``["instance"]``.
* Encoding (:mod:`.multilang`): ``payload`` is the base64 of the item's pickle (protocol 5,
  buffers in band, cloudpickle fallback), so any picklable item travels, numpy arrays too;
  ``key`` is ``stable_hash(group_key(item, keys))`` for group-by consumers (0 otherwise).
* Groupings: shuffle -> ``SHUFFLE``, group-by -> ``FIELDS`` on the key field, ``"all"`` ->
  ``ALL``, ``"global"`` -> ``GLOBAL``.
* End of stream: a finished task emits one marker on each ``<port>__eos`` stream; consumers
  subscribe to it with ``ALL``, count markers from every upstream task (read from the
  handshake's ``task->component`` map), then run ``postprocess()`` and pass theirs on.
* Outputs and errors (:mod:`.results`): each task writes its unconnected outputs and
  counters to ``noisecorr.output.dir`` when it finishes; a failing PE writes a
  :class:`~noisecorr.engine.errors.PEError` there, logs it (with the traceback) and fails
  the tuple; ``run`` raises it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from noisecorr.engine.errors import MappingError

NAME = "storm"

NO_STORM = (
    "no Storm installation found: the 'storm' command is not on PATH. To run here, install "
    "Apache Storm 2.x with Flux and put its bin/ directory on PATH (and give the Flux jars with "
    "flux_jars=[...] or NOISECORR_FLUX_JARS). To deploy on a cluster, package the workflow with "
    "'noisecorr storm package MODULE[:ATTR] --out DIR' and submit DIR/topology.yaml as "
    "DIR/README.md explains. To test the generated topology without Storm, use "
    "run(graph, mapping='storm', harness=True)."
)


def enact(spec, processes=None, mapping_name=NAME, harness=False, keep=None, timeout=None,
          storm_command="storm", flux_jars=None, ttl=600, progress=None, provenance=None, **options):
    """Package ``spec`` as a Storm topology and run it; return a ``RunResult``.

    Parameters
    ----------
    processes : int, optional
        Task budget shared among the PEs (the parallelism of the components).
    harness : bool
        Run under :class:`~noisecorr.testing.storm_harness.LocalStormHarness` (no Storm needed).
    keep : path, optional
        Write the package there (and keep it) instead of a temporary directory.
    timeout : float, optional
        Seconds before an unfinished run is stopped and reported (default 300 with the
        harness, ``ttl`` with Storm).
    storm_command : str
        The Storm launcher looked up on ``PATH``.
    flux_jars : list of str, optional
        ``flux-core`` and ``flux-wrappers`` jars for ``storm local --jars`` (default:
        ``NOISECORR_FLUX_JARS`` or the Storm installation's ``external/flux``).
    ttl : int
        ``--local-ttl`` of ``storm local``: the most seconds the local cluster lives.
    progress : callable, optional
        Called once, when the run has finished, with ``{pe: {"in": n, "out": n}}`` (live
        counts of a Storm topology are in the Storm UI, not here).
    provenance : noisecorr.provenance.Session, optional
        Record lineage: the session (run id, store URL, rules) goes into the topology config
        (``noisecorr.provenance``) and every component's worker records into that store, as
        under the other mappings. The store must be reachable from the components (a file
        path on this machine for the harness and ``storm local``, PostgreSQL on a cluster).

    Raises
    ------
    MappingError
        At once, before packaging, when ``harness`` is false and no ``storm`` command exists.
    """
    if options:
        raise TypeError(f"unknown option(s) for the storm mapping: {sorted(options)}")
    config = None
    if provenance is not None:
        from .component import PROVENANCE_KEY, session_config

        entry = session_config(provenance)
        if "://" not in entry["url"]:  # the components run in resources/: a relative path would move
            entry["url"] = os.path.abspath(entry["url"])
        config = {PROVENANCE_KEY: entry}
    storm = None
    if not harness:
        storm = shutil.which(storm_command)
        if storm is None:
            raise MappingError(NO_STORM)
    from .package import package

    workdir = None
    if keep is None:
        workdir = tempfile.mkdtemp(prefix="noisecorr-storm-")
        root = workdir
    else:
        root = keep
    try:
        # The components run on this machine (harness or storm local): use this interpreter.
        pkg = package(spec, root, processes=processes, python=sys.executable, config=config)
        if harness:
            from noisecorr.testing.storm_harness import LocalStormHarness

            result = LocalStormHarness(pkg.root, timeout=timeout or 300.0).run(mapping_name)
        else:
            from .submit import run_local

            result = run_local(spec, pkg, storm, flux_jars=flux_jars, ttl=ttl, timeout=timeout or ttl,
                               mapping_name=mapping_name)
        if progress is not None:
            progress({pe: {"in": sum(c["in"].values()), "out": sum(c["out"].values())}
                      for pe, c in result.counts.items()})
        return result
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
