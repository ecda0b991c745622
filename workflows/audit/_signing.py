"""Ed25519 signatures (through ``cryptography``) for what leaves the database: evidence
bundles' manifests and witnessed audit heads. An auditor verifies with the public key
alone; no secret and no database are needed.

A key is named by its id: the first 16 hex digits of the SHA-256 of its raw 32-byte
public key. Keys are PEM files: the private one PKCS#8 (mode 0600), the public one
SubjectPublicKeyInfo; ``patchgate audit keygen`` writes a pair.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from workflows.errors import ConfigError, InputError

ALGORITHM = "ed25519"


def _public_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    key: Ed25519PublicKey
    key_id: str

    def verify(self, data: bytes, signature: str) -> bool:
        try:
            self.key.verify(base64.b64decode(signature, validate=True), data)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


@dataclass(frozen=True, repr=False)
class Signer:
    """A private key (its repr names the key id only)."""

    key: Ed25519PrivateKey
    key_id: str

    def __repr__(self) -> str:
        return f"Signer({self.key_id})"

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.key.sign(data)).decode("ascii")

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key(), self.key_id)


def generate_keypair(private_path: Path, public_path: Path) -> PublicKey:
    """Write a new key pair; refuse to replace either file (InputError)."""
    for path in (private_path, public_path):
        if path.exists():
            raise InputError(f"{path} exists; keygen never replaces a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return PublicKey(key.public_key(), _public_id(key.public_key()))


def load_signer(path: Path, *, setting: str = "PATCHGATE_SIGNING_KEY") -> Signer:
    try:
        key = serialization.load_pem_private_key(path.expanduser().read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError([f"{setting}: {path}: {exc.strerror or exc}"]) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError([f"{setting}: {path}: not a PEM private key ({exc})"]) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError([f"{setting}: {path}: not an Ed25519 key"])
    return Signer(key, _public_id(key.public_key()))


def load_public_key(path: Path) -> PublicKey:
    """A public key from a PEM file (InputError naming the file if it is not one)."""
    try:
        key = serialization.load_pem_public_key(path.expanduser().read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{path}: not an Ed25519 public key")
    return PublicKey(key, _public_id(key))
