"""Keyed fingerprints of message text: a decision can be matched to a message without the log holding it.

A plain SHA-256 of a message lets anyone who can read the log test a guess
("was 'see me after class' sent to this family?") by hashing it. The
fingerprint is therefore HMAC-SHA256 with a secret key that lives beside the
audit signing key (the ``keys`` folder, 0600), not in the database: a copy
of the database alone cannot test a guess, while whoever holds the key (the
school, on its own server) can still show that a message produced later is
the one that was decided on. Each fingerprint names its key by a short id,
so a new key leaves older records readable; records written before keyed
fingerprints (``text_sha256``) still verify, since nothing about the chain
depends on which kind a record holds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_NAME = "audit-fingerprint.key"
_KEY_BYTES = 32


class FingerprintKeyError(Exception):
    """The fingerprint key cannot be read, made or trusted; no decision with text can be recorded."""


@dataclass(frozen=True)
class FingerprintKey:
    secret: bytes

    @property
    def key_id(self) -> str:
        """A short public name for the key (a hash of a hash: says nothing about the secret)."""
        return "fk-" + hashlib.sha256(b"dojoguard fingerprint key id\0" + self.secret).hexdigest()[:16]

    def of_text(self, text: str) -> str:
        """HMAC-SHA256 of the message text (UTF-8), hex."""
        return hmac.digest(self.secret, text.encode("utf-8"), "sha256").hex()

    def __repr__(self) -> str:
        return f"FingerprintKey({self.key_id})"


def key_path_for(config: Any | None, database: Path) -> Path:
    """Beside the audit signing key (its ``keys`` folder); without settings, ``keys/`` beside the database."""
    if config is not None:
        signing = config.path("audit", "signing_key")
        if signing is not None:
            return Path(signing).parent / KEY_NAME
    return Path(database).parent / "keys" / KEY_NAME


def load_or_create(path: Path) -> FingerprintKey:
    """The key at ``path``, made (file 0600, folder 0700) if there is none yet."""
    path = Path(path)
    if not path.exists():
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return load(path)  # made by another process meanwhile
        except OSError as exc:
            raise FingerprintKeyError(f"cannot create the audit fingerprint key {path}: {exc}") from None
        secret = secrets.token_bytes(_KEY_BYTES)
        try:
            os.write(fd, secret.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return FingerprintKey(secret)
    return load(path)


def load(path: Path) -> FingerprintKey:
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise FingerprintKeyError(f"cannot read the audit fingerprint key {path}: {exc}") from None
    if mode & 0o077:
        raise FingerprintKeyError(f"{path}: the audit fingerprint key is readable by other users "
                                  f"(mode {oct(mode & 0o777)}). Hint: chmod 600 {path}")
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != _KEY_BYTES:
        raise FingerprintKeyError(f"{path} is not an audit fingerprint key "
                                  f"(expected {_KEY_BYTES * 2} hex digits)")
    return FingerprintKey(secret)
