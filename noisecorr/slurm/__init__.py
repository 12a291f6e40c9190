"""SLURM job scripts for noisecorr runs, and the merge of per-task results.

``noisecorr slurm mpi|multiprocess|array`` renders the templates in ``scripts/slurm/`` with
options checked against a cluster profile (``configs/clusters/``), prints them (``--dry-run``)
or submits them with ``sbatch`` (``--submit``; an array is followed by a merge job that waits
for it with ``--dependency=afterok``). ``noisecorr merge`` combines the per-task results of an
array into the final stacks (:func:`noisecorr.slurm.merge.merge_tasks`).

Modules: :mod:`.profiles` (cluster profiles), :mod:`.options` (job options, validation,
memory estimate), :mod:`.render` (templates), :mod:`.merge`, :mod:`.submit` (sbatch),
:mod:`.cli`. Importing this package has no side effects and needs no SLURM.
"""
