"""Entry references: ``workspace.Name[@version]``.

Workspaces and names are identifiers without dots (``[A-Za-z_][A-Za-z0-9_-]*``), so the first
dot always separates the workspace from the name. A reference without a workspace means
:data:`DEFAULT_WORKSPACE`; one without a version means the latest version.

>>> parse_ref("noisecorr.StackPE@3")
Ref(workspace='noisecorr', name='StackPE', version=3)
>>> parse_ref("Square")
Ref(workspace='default', name='Square', version=None)
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import RegistryError

DEFAULT_WORKSPACE = "default"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class Ref(NamedTuple):
    workspace: str
    name: str
    version: int | None

    def __str__(self):
        base = f"{self.workspace}.{self.name}"
        return base if self.version is None else f"{base}@{self.version}"


def check_identifier(value, what):
    """Return ``value`` if it is a valid workspace or entry name, else raise RegistryError."""
    if not isinstance(value, str) or not _IDENT.match(value):
        raise RegistryError(
            f"invalid {what} {value!r}: use letters, digits, '_' and '-', starting with a letter or '_'"
        )
    return value


def check_version(version):
    """Versions are positive integers (given, or the next free one for the name)."""
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RegistryError(f"invalid version {version!r}: versions are positive integers")
    return version


def parse_ref(text, default_workspace=DEFAULT_WORKSPACE) -> Ref:
    """Parse ``[workspace.]Name[@version]``."""
    if not isinstance(text, str) or not text:
        raise RegistryError(f"invalid registry reference {text!r}; expected workspace.Name[@version]")
    base, sep, version = text.partition("@")
    workspace, dot, name = base.partition(".")
    if not dot:
        workspace, name = default_workspace, base
    check_identifier(workspace, "workspace")
    check_identifier(name, "name")
    return Ref(workspace, name, check_version(version) if sep else None)
