"""Ed25519 signatures of registry entries: who vouches for the code, and whom you trust.

A content hash (``sha256`` of the source) only detects accidental corruption: whoever can
write to a shared registry can change the source and its hash together. A signature ties an
entry to the holder of a private key; loading code from the registry requires a signature
by a key in *your* list of trusted keys (see :meth:`noisecorr.registry.Registry.load_pe`).

Files (``$XDG_CONFIG_HOME`` defaults to ``~/.config``):

``$XDG_CONFIG_HOME/noisecorr/signing_key`` (or ``$NOISECORR_SIGNING_KEY``)
    Your private key, PEM (PKCS#8, unencrypted), mode 0600; made by
    ``noisecorr registry keygen``. Beside it, ``signing_key.pub`` holds the public key line
    you give to others.
``$XDG_CONFIG_HOME/noisecorr/trusted_keys`` (or ``$NOISECORR_TRUSTED_KEYS``)
    The public keys whose signatures you accept, one line each (``#`` starts a comment).
    ``keygen`` adds your own key; ``noisecorr registry trust FILE`` adds others.

A public key line is ``noisecorr-ed25519 BASE64 NAME``: BASE64 is the 32-byte raw Ed25519
public key (RFC 8032), NAME the author's free-text name. The *key id* is the first 16 hex
digits of the sha256 of the raw key.

What is signed is :func:`signed_payload`: a canonical JSON serialisation (sorted keys, no
spaces, ASCII) of the source itself and every entry field that decides what is executed or
how it is described: workspace, name, version, kind, module, package, qualname, file name,
sha256, summary, documentation, ports, requirements, registry entries used, creation time,
and the signer's key and name. Tags are not signed (they are labels that ``add`` may extend).

References
----------
Bernstein, D. J., Duif, N., Lange, T., Schwabe, P., Yang, B.-Y. (2012). High-speed
high-security signatures. Journal of Cryptographic Engineering 2, 77-89.
Josefsson, S., Liusvaara, I. (2017). Edwards-Curve Digital Signature Algorithm (EdDSA),
RFC 8032.

Examples
--------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> key = generate_key(os.path.join(folder, "signing_key"), name="Ada Lovelace")
>>> oct(os.stat(key.path).st_mode & 0o777)
'0o600'
>>> signature = key.sign(b"payload")
>>> verify_signature(key.public.b64, signature, b"payload")
True
>>> verify_signature(key.public.b64, signature, b"payload, changed")
False
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import json
import logging
import os
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import RegistryError

log = logging.getLogger("noisecorr.registry")

#: Environment variable naming your private signing key file.
SIGNING_KEY_ENV = "NOISECORR_SIGNING_KEY"
#: Environment variable naming your trusted-keys file.
TRUSTED_KEYS_ENV = "NOISECORR_TRUSTED_KEYS"
#: First word of a public key line.
KEY_TYPE = "noisecorr-ed25519"
#: Identifies what a signature covers (changes if the payload's layout ever changes).
PAYLOAD_FORMAT = "noisecorr-registry-entry-signature/1"
#: Entry fields covered by a signature, besides the source itself.
SIGNED_FIELDS = ("workspace", "name", "version", "kind", "module", "package", "qualname", "filename",
                 "sha256", "summary", "doc", "ports", "requirements", "uses", "created_at",
                 "signer_key", "signer_name")


def _ed25519():
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/noisecorr`` (``XDG_CONFIG_HOME`` defaults to ``~/.config``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "noisecorr"


def default_signing_key_path() -> Path:
    """``$NOISECORR_SIGNING_KEY``, else ``config_dir()/signing_key``."""
    return Path(os.environ.get(SIGNING_KEY_ENV) or config_dir() / "signing_key").expanduser()


def default_trusted_keys_path() -> Path:
    """``$NOISECORR_TRUSTED_KEYS``, else ``config_dir()/trusted_keys``."""
    return Path(os.environ.get(TRUSTED_KEYS_ENV) or config_dir() / "trusted_keys").expanduser()


def key_id(key_b64: str) -> str:
    """Short id of a public key: the first 16 hex digits of the sha256 of its raw 32 bytes."""
    return hashlib.sha256(base64.b64decode(key_b64)).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key (``b64``: base64 of its 32 raw bytes) and its holder's name."""

    b64: str
    name: str

    @property
    def key_id(self) -> str:
        return key_id(self.b64)

    def line(self) -> str:
        """The one-line form: ``noisecorr-ed25519 BASE64 NAME``."""
        return f"{KEY_TYPE} {self.b64} {self.name}".rstrip()

    @classmethod
    def parse(cls, line, origin="public key"):
        """Parse a public key line; ``origin`` (file and line) names it in errors."""
        parts = line.strip().split(None, 2)
        if len(parts) < 2 or parts[0] != KEY_TYPE:
            raise RegistryError(f"{origin}: not a noisecorr public key line (expected "
                                f"'{KEY_TYPE} BASE64 NAME', as written by `noisecorr registry keygen`)")
        try:
            raw = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RegistryError(f"{origin}: the key is not valid base64 ({exc})") from exc
        if len(raw) != 32:
            raise RegistryError(f"{origin}: an Ed25519 public key has 32 bytes, this one {len(raw)}")
        return cls(parts[1], parts[2].strip() if len(parts) > 2 else "")


class SigningKey:
    """Your private Ed25519 key (from :func:`load_signing_key` or :func:`generate_key`)."""

    def __init__(self, private, name, path=None):
        from cryptography.hazmat.primitives import serialization

        self._private = private
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public = PublicKey(base64.b64encode(raw).decode("ascii"), name)
        self.path = None if path is None else Path(path)

    def __repr__(self):
        return f"SigningKey(key_id={self.public.key_id!r}, name={self.public.name!r}, path={str(self.path)!r})"

    def sign(self, payload: bytes) -> str:
        """Ed25519 signature of ``payload``, base64."""
        return base64.b64encode(self._private.sign(payload)).decode("ascii")


def _default_name():
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _write_private(path: Path, data: bytes, mode: int):
    """Write ``data`` to ``path`` atomically with permissions ``mode`` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def generate_key(path=None, name=None, force=False) -> SigningKey:
    """Make a new Ed25519 signing key at ``path`` (mode 0600) and its public line at ``path.pub``.

    Parameters
    ----------
    path : str or Path, optional
        Default :func:`default_signing_key_path`.
    name : str, optional
        Author name recorded in every entry you sign (default ``user@host``).
    force : bool
        Replace an existing key (entries signed with it then verify only for those who keep
        trusting its public key).
    """
    from cryptography.hazmat.primitives import serialization

    path = Path(path).expanduser() if path is not None else default_signing_key_path()
    name = (name if name is not None else _default_name()).strip()
    if "\n" in name or "\r" in name:
        raise RegistryError("a key's name must be one line")
    if path.exists() and not force:
        raise RegistryError(f"a signing key already exists at {path}; pass --force to replace it "
                            "(entries signed with the old key stay signed by the old key)")
    private = _ed25519().Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key = SigningKey(private, name, path)
    _write_private(path, pem, 0o600)
    _write_private(public_key_path(path), (key.public.line() + "\n").encode("utf-8"), 0o644)
    log.info("new signing key %s (%s) at %s", key.public.key_id, name, path)
    return key


def public_key_path(path) -> Path:
    """Where the public line of the private key at ``path`` is kept (``path`` + ``.pub``)."""
    path = Path(path)
    return path.with_name(path.name + ".pub")


def load_signing_key(path=None, required=False):
    """Your signing key, or None when there is none (and ``required`` is false).

    The private key file must be readable by you only (as ssh requires of its keys), and
    the ``.pub`` file beside it gives the author name.
    """
    from cryptography.hazmat.primitives import serialization

    path = Path(path).expanduser() if path is not None else default_signing_key_path()
    if not path.exists():
        if required:
            raise RegistryError(f"no signing key at {path}: make one with `noisecorr registry keygen`")
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.name == "posix" and mode & 0o077:
        raise RegistryError(f"the signing key {path} has permissions {mode:04o}: it must be readable by "
                            f"you only (chmod 600 {path})")
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise RegistryError(f"cannot read the signing key {path}: {exc}") from exc
    if not isinstance(private, _ed25519().Ed25519PrivateKey):
        raise RegistryError(f"the signing key {path} is not an Ed25519 key")
    pub_path = public_key_path(path)
    try:
        text = pub_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read {pub_path}, the public half (with the author name) of the signing "
                            f"key {path}: {exc}; run `noisecorr registry keygen --force` for a new pair") from exc
    public = PublicKey.parse(text.strip().splitlines()[0] if text.strip() else "", f"{pub_path} line 1")
    key = SigningKey(private, public.name, path)
    if key.public.b64 != public.b64:
        raise RegistryError(f"{pub_path} does not hold the public key of {path}")
    return key


def verify_signature(key_b64: str, signature_b64: str, payload: bytes) -> bool:
    """True when ``signature_b64`` is a valid Ed25519 signature of ``payload`` by ``key_b64``."""
    from cryptography.exceptions import InvalidSignature

    try:
        public = _ed25519().Ed25519PublicKey.from_public_bytes(base64.b64decode(key_b64, validate=True))
        public.verify(base64.b64decode(signature_b64, validate=True), payload)
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
    return True


def signed_payload(fields: dict, source: str) -> bytes:
    """The bytes a signature covers: canonical JSON of ``source`` and :data:`SIGNED_FIELDS`.

    ``fields`` is an entry's dictionary (:meth:`Entry.to_dict`); ``source`` is the module
    source that loading it executes.
    """
    doc = {"format": PAYLOAD_FORMAT, "source": source, **{f: fields[f] for f in SIGNED_FIELDS}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


class TrustedKeys:
    """Your list of trusted public keys (a text file of public key lines).

    Parameters
    ----------
    path : str or Path, optional
        Default :func:`default_trusted_keys_path`. A missing file is an empty list.
    """

    def __init__(self, path=None):
        self.path = Path(path).expanduser() if path is not None else default_trusted_keys_path()

    def __repr__(self):
        return f"TrustedKeys({str(self.path)!r})"

    def keys(self):
        """The trusted keys, in file order (a list of :class:`PublicKey`)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistryError(f"cannot read the trusted keys file {self.path}: {exc}") from exc
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if os.name == "posix" and mode & 0o022:
            raise RegistryError(f"the trusted keys file {self.path} has permissions {mode:04o}: others could "
                                f"add keys to it; make it writable by you only (chmod 644 {self.path})")
        out = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(PublicKey.parse(line, f"trusted keys file {self.path} line {number}"))
        return out

    def find(self, key_b64):
        """The trusted :class:`PublicKey` with this key, or None."""
        return next((k for k in self.keys() if k.b64 == key_b64), None)

    def add(self, key: PublicKey) -> bool:
        """Trust ``key``; False if it was already trusted (its name there is kept)."""
        keys = self.keys()
        if any(k.b64 == key.b64 for k in keys):
            return False
        self._write(keys + [key])
        log.info("trusting key %s (%s) in %s", key.key_id, key.name, self.path)
        return True

    def remove(self, ident) -> PublicKey:
        """Stop trusting the key with id (or base64) ``ident``; return it."""
        keys = self.keys()
        matched = [k for k in keys if ident in (k.key_id, k.b64)]
        if not matched:
            raise RegistryError(f"no key {ident!r} in the trusted keys file {self.path}; trusted: "
                                + (", ".join(f"{k.key_id} ({k.name})" for k in keys) or "none"))
        self._write([k for k in keys if k not in matched])
        return matched[0]

    def _write(self, keys):
        lines = ["# noisecorr trusted registry signing keys: noisecorr-ed25519 BASE64 NAME"]
        lines += [k.line() for k in keys]
        _write_private(self.path, ("\n".join(lines) + "\n").encode("utf-8"), 0o644)


def read_public_key_file(path, name=None) -> PublicKey:
    """The public key in ``path`` (a ``.pub`` file as written by ``keygen``); ``name`` overrides its name."""
    path = Path(path)
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read the public key file {path}: {exc}") from exc
    if len(lines) != 1:
        raise RegistryError(f"{path}: expected one public key line, found {len(lines)}")
    key = PublicKey.parse(lines[0], f"public key file {path}")
    return PublicKey(key.b64, name.strip()) if name is not None else key


__all__ = [
    "KEY_TYPE",
    "PublicKey",
    "SIGNED_FIELDS",
    "SIGNING_KEY_ENV",
    "SigningKey",
    "TRUSTED_KEYS_ENV",
    "TrustedKeys",
    "config_dir",
    "default_signing_key_path",
    "default_trusted_keys_path",
    "generate_key",
    "load_signing_key",
    "read_public_key_file",
    "signed_payload",
    "verify_signature",
]
