"""Errors raised by the registry (the command line turns them into messages and exit codes)."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: a registry operation could not be done (bad name, unreadable module ...)."""


class NotFoundError(RegistryError, LookupError):
    """No entry matches the requested ``workspace.Name[@version]``."""


class ConflictError(RegistryError):
    """An entry with this name and version already exists with different source."""


class IntegrityError(RegistryError):
    """Stored source does not match its content hash: it was changed outside noisecorr.

    Raised before any of that source is executed.
    """


class SignatureError(IntegrityError):
    """An entry's signature does not match it: source or metadata changed after signing.

    Raised before any of that source is executed; no option overrides it.
    """


class UntrustedError(RegistryError):
    """An entry is unsigned, or signed by a key that is not in your trusted keys.

    Raised before any of that source is executed, unless that load passes ``allow_unsigned``.
    """
