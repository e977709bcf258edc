"""Secret keys kept beside the audit signing key: one way to place, make and read them.

The audit log's fingerprint key and the hold store's sealing key protect
data in databases someone might copy or edit, so neither may live in a
database: each is a file of 32 random bytes (hex) in the signing key's
``keys`` folder, the folder 0700 and the file 0600, made on first use by
whichever process needs it first. A key file other users can read is
refused: whoever can read it can forge what it protects.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

KEY_BYTES = 32


class SecretKeyError(Exception):
    """A key file cannot be read, made or trusted."""


def path_beside_signing_key(config: Any | None, database: Path, name: str) -> Path:
    """``name`` in the folder of ``audit.signing_key``; without settings, in ``keys/`` beside ``database``."""
    if config is not None:
        signing = config.path("audit", "signing_key")
        if signing is not None:
            return Path(signing).parent / name
    return Path(database).parent / "keys" / name


def load_or_create(path: Path, what: str) -> tuple[bytes, bool]:
    """(key, made now): the key at ``path``, made (file 0600, folder 0700) if there is none yet."""
    path = Path(path)
    if path.exists():
        return load(path, what), False
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return load(path, what), False  # made by another process meanwhile
    except OSError as exc:
        raise SecretKeyError(f"cannot create the {what} {path}: {exc}") from None
    key = secrets.token_bytes(KEY_BYTES)
    try:
        os.write(fd, key.hex().encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return key, True


def load(path: Path, what: str) -> bytes:
    """The key at ``path``; refused when other users can read it or it is not a key."""
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(f"cannot read the {what} {path}: {exc}") from None
    if mode & 0o077:
        raise SecretKeyError(f"{path}: the {what} is readable by other users (mode {oct(mode & 0o777)}). "
                             f"Hint: chmod 600 {path}")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise SecretKeyError(f"{path} is not a {what} (expected {KEY_BYTES * 2} hex digits)")
    return key
