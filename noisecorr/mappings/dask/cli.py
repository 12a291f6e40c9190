"""What ``noisecorr run --mapping dask [--scheduler ADDRESS]`` does before the workflow is built."""

from __future__ import annotations

import dataclasses
import logging

import click


def setup_run(config, scheduler):
    """Check ``--scheduler``, make it the run's Dask scheduler, and size ``-n`` from the cluster.

    Returns ``config``, with ``processes`` set to the cluster's number of workers when a
    scheduler is known (``--scheduler`` or ``DASK_SCHEDULER_ADDRESS``) and ``-n`` was not
    given, so that the tile planner divides the memory budget over the workers that run.
    The address is set in Dask's configuration (``scheduler-address``) for the duration of
    the command. Dask's own INFO messages are kept out of the command's log.
    """
    if config.mapping != "dask":
        if scheduler is not None:
            raise click.UsageError("--scheduler is the address of a Dask scheduler: it needs --mapping dask")
        return config
    import dask
    import distributed  # noqa: F401 (its import sets its loggers' levels: set ours after it)

    from . import cluster_workers

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler is not None:
        setting = dask.config.set({"scheduler-address": scheduler})
        click.get_current_context().call_on_close(lambda: setting.__exit__(None, None, None))
    address = dask.config.get("scheduler-address", None)
    if address is not None and config.processes is None:
        try:
            n = cluster_workers(address)
        except OSError as exc:
            raise click.UsageError(f"--scheduler {address}: cannot reach the Dask scheduler: {exc}") from None
        if n == 0:
            raise click.UsageError(f"--scheduler {address}: the Dask cluster has no workers")
        config = dataclasses.replace(config, processes=n)
    return config
