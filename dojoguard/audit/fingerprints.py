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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dojoguard import secretkeys

KEY_NAME = "audit-fingerprint.key"
_WHAT = "audit fingerprint key"


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
    return secretkeys.path_beside_signing_key(config, database, KEY_NAME)


def load_or_create(path: Path) -> FingerprintKey:
    """The key at ``path``, made (file 0600, folder 0700) if there is none yet."""
    try:
        return FingerprintKey(secretkeys.load_or_create(path, _WHAT)[0])
    except secretkeys.SecretKeyError as exc:
        raise FingerprintKeyError(str(exc)) from None


def load(path: Path) -> FingerprintKey:
    try:
        return FingerprintKey(secretkeys.load(path, _WHAT))
    except secretkeys.SecretKeyError as exc:
        raise FingerprintKeyError(str(exc)) from None
