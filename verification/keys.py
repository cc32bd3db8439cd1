"""Ed25519 keys: the organizer's signing key and the public keys auditors verify with.

Files are PEM: the private key as PKCS#8 (mode 0600, optionally encrypted with a passphrase),
the public key as SubjectPublicKeyInfo. A key is named by its *key id*, the sha256 hex digest
of the raw 32-byte public key; signatures carry it so a verifier can pick the right key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from algoperf.errors import UserError

PASSPHRASE_ENV = "ALGOPERF_KEY_PASSPHRASE"


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """sha256 hex of the raw public key: how signatures and reports name a key."""
    return hashlib.sha256(_raw(public_key)).hexdigest()


@dataclass(frozen=True)
class SigningKey:
    """A private key and its id."""

    private: Ed25519PrivateKey
    id: str

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys a verifier accepts: key id -> raw 32-byte public key (plain bytes, so
    worker processes can receive them)."""

    keys: dict[str, bytes]

    def verify(self, keyid: str, signature: bytes, message: bytes) -> bool:
        """True when ``keyid`` is trusted and ``signature`` is its signature of ``message``."""
        raw = self.keys.get(keyid)
        if raw is None:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def of(cls, *public_keys: Ed25519PublicKey) -> TrustedKeys:
        return cls({key_id(k): _raw(k) for k in public_keys})

    def __bool__(self) -> bool:
        return bool(self.keys)


def generate_keypair(out_dir: str | os.PathLike, name: str = "organizer",
                     passphrase: bytes | None = None, force: bool = False) -> tuple[Path, Path]:
    """Writes ``<out_dir>/<name>.key`` (private, 0600) and ``<name>.pub``; returns both paths.

    Refuses to overwrite an existing key unless ``force``: a lost organizer key orphans every
    signature made with it.
    """
    out = Path(out_dir)
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    if not force:
        for path in (private_path, public_path):
            if path.exists():
                raise UserError(f"{path} already exists; choose another --name or --out, or "
                                "pass --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                encryption)
    _write_private(private_path, pem)
    public_path.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def _write_private(path: Path, pem: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_signing_key(path: str | os.PathLike, passphrase: bytes | None = None) -> SigningKey:
    """The Ed25519 private key in ``path`` (PEM, PKCS#8). The passphrase defaults to the
    environment variable ALGOPERF_KEY_PASSPHRASE."""
    if passphrase is None and os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV].encode()
    data = _read(path, "signing key")
    try:
        private = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        raise UserError(f"signing key {path} is encrypted; set {PASSPHRASE_ENV}") from None
    except ValueError:
        raise UserError(f"signing key {path} is not a PEM private key, or its passphrase is "
                        "wrong; make one with `algoperf keys generate`") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise UserError(f"signing key {path} is not an Ed25519 key; make one with "
                        "`algoperf keys generate`")
    return SigningKey(private, key_id(private.public_key()))


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    """The Ed25519 public key in ``path`` (PEM SubjectPublicKeyInfo)."""
    data = _read(path, "public key")
    try:
        public = serialization.load_pem_public_key(data)
    except ValueError:
        raise UserError(f"public key {path} is not a PEM public key; pass the .pub file "
                        "written by `algoperf keys generate`") from None
    if not isinstance(public, Ed25519PublicKey):
        raise UserError(f"public key {path} is not an Ed25519 key")
    return public


def trusted_keys(paths: list[str | os.PathLike]) -> TrustedKeys:
    """The public keys in ``paths`` (files, or directories whose ``*.pub`` files are read)."""
    keys = []
    for given in paths:
        path = Path(given)
        files = sorted(path.glob("*.pub")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise UserError(f"no .pub files in {path}")
        keys += [load_public_key(file) for file in files]
    return TrustedKeys.of(*keys)


def _read(path: str | os.PathLike, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"no {what} at {path}") from None
    except (IsADirectoryError, PermissionError) as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror}") from None
