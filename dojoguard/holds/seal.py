"""The key that seals every row of the hold store, so a row changed behind the commands' back shows.

The hold store is a plain SQLite file, or a schema on a PostgreSQL server:
anyone who can write it (the file, or an account with rights on the schema)
could mark a held photo approved, pull a deferred message's release time
forward, turn a hold into a deferral or swap the request it carries. Every
row is therefore sealed with an HMAC-SHA256, over every column (the request
body by its SHA-256), keyed with a secret kept in the keys folder beside the
audit signing key, never in the database, whichever backend holds it. The store re-seals a row only after
checking its current seal, so a legitimate step never launders a change made
by hand; the releaser sends nothing whose seal does not match.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from dojoguard import secretkeys

KEY_NAME = "holds-seal.key"


class SealKeyError(Exception):
    """The sealing key cannot be read or made; the store refuses to open without it."""


def key_path_for(config: Any | None, database: Path) -> Path:
    """The key's place: the folder of the audit signing key (``keys/``), else ``keys/`` beside the store."""
    return secretkeys.path_beside_signing_key(config, database, KEY_NAME)


def load_or_create(path: Path) -> tuple[bytes, bool]:
    """(key, created now): read the key at ``path``, or make it (folder 0700, file 0600) if there is none."""
    try:
        return secretkeys.load_or_create(path, "hold store key")
    except secretkeys.SecretKeyError as exc:
        raise SealKeyError(str(exc)) from None


def seal(key: bytes, row: dict[str, Any]) -> str:
    """The seal of one row: every column but the seal itself, the body as its SHA-256."""
    doc = {k: v for k, v in row.items() if k not in ("seal", "content")}
    doc["content_sha256"] = hashlib.sha256(row["content"]).hexdigest()
    encoded = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, encoded.encode("ascii"), hashlib.sha256).hexdigest()


def matches(key: bytes, row: dict[str, Any]) -> bool:
    stored = row.get("seal")
    if not isinstance(stored, str) or not isinstance(row.get("content"), bytes):
        return False  # unsealed, or a body no longer stored as the bytes the device sent
    return hmac.compare_digest(stored, seal(key, row))
