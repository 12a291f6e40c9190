"""Errors of ``noisecorr slurm`` and ``noisecorr merge``."""


class SlurmOptionError(ValueError):
    """An option (or profile value) is invalid; the message starts with the option's name.

    >>> str(SlurmOptionError("--time", "'1h' is not a SLURM time"))
    "--time: '1h' is not a SLURM time"
    """

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(f"{option}: {message}")


class MergeError(RuntimeError):
    """Per-task results cannot be combined into final stacks (the message says which and why)."""
