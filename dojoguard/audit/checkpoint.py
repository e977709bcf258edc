"""Signed checkpoints: a small file, signed with Ed25519, stating the chain's head at a moment.

Someone outside the proxy who keeps these files (or receives them by email)
can later prove the log was not rewritten or cut short: a rebuilt chain would
not reach the hashes they hold, and only the signing key, kept apart from the
database, can make a new checkpoint. Verifiers need only the public key file.

A checkpoint protects only what it covers, and only while a copy is out of
reach of whoever can write the database: so the proxy makes one every
minute or every hundred records (``cadence``), and each is published to a
folder on another machine (``audit.checkpoint_publish_dir``) as it is made.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dojoguard.audit.record import canonical, format_time

FORMAT = "dojoguard-audit-checkpoint/1"
PUBLIC_KEY_NAME = "audit-signing.pub"


class CheckpointError(Exception):
    """A key or checkpoint file that cannot be used, with what to do about it."""


class PublishError(CheckpointError):
    """The checkpoint was signed, kept and recorded, but could not be published everywhere."""

    def __init__(self, message: str, checkpoint: "Checkpoint", path: Path):
        super().__init__(message)
        self.checkpoint = checkpoint
        self.path = path


@dataclass(frozen=True)
class Checkpoint:
    log_id: str
    seq: int
    hash: str
    record_at: str
    written_at: str
    key_fingerprint: str
    signature: str
    source: str = ""

    def payload(self) -> dict[str, Any]:
        return {"format": FORMAT, "log_id": self.log_id, "seq": self.seq, "hash": self.hash,
                "record_at": self.record_at, "written_at": self.written_at,
                "key_fingerprint": self.key_fingerprint}

    def to_json(self) -> str:
        return json.dumps({**self.payload(), "signature": self.signature}, indent=2, sort_keys=True) + "\n"


def fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()[:32]


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at ``path``, created (0600, folder 0700) if it does not exist yet."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return load_key(path)  # created by another process meanwhile
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        return key
    return load_key(path)


def load_key(path: Path) -> Ed25519PrivateKey:
    mode = os.stat(path).st_mode
    if mode & 0o077:
        raise CheckpointError(f"{path}: the signing key is readable by other users "
                              f"(mode {oct(mode & 0o777)}). Hint: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not an Ed25519 private key in PEM form ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path}: not an Ed25519 key")
    return key


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the public key ({exc})") from exc
    return load_public_key_pem(pem, str(path))


def load_public_key_pem(pem: bytes, where: str = "public key") -> Ed25519PublicKey:
    """An Ed25519 public key from its PEM text (a file's, or one registered in the trust's central store)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise CheckpointError(f"{where}: cannot read the public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{where}: not an Ed25519 public key")
    return key


def export_public_key(key: Ed25519PrivateKey, folder: Path) -> Path:
    """Write the public key beside the checkpoints (for verifiers); returns its path."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / PUBLIC_KEY_NAME
    pem = public_key_pem(key)
    if not path.exists() or path.read_bytes() != pem:
        _write_atomic(path, pem, 0o644)
    return path


def sign(key: Ed25519PrivateKey, *, log_id: str, seq: int, hash_: str, record_at: datetime,
         written_at: datetime) -> Checkpoint:
    unsigned = Checkpoint(log_id, seq, hash_, format_time(record_at), format_time(written_at),
                          fingerprint(key.public_key()), "")
    signature = key.sign(canonical(unsigned.payload()).encode("utf-8"))
    return Checkpoint(**{**unsigned.__dict__, "signature": base64.b64encode(signature).decode("ascii")})


def write(checkpoint: Checkpoint, folder: Path) -> Path:
    """Export ``checkpoint`` into ``folder`` (atomically); returns the file's path."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = checkpoint.written_at.replace("-", "").replace(":", "").split(".")[0] + "Z"
    path = folder / f"checkpoint-{checkpoint.seq:012d}-{stamp}.json"
    _write_atomic(path, checkpoint.to_json().encode("utf-8"), 0o644)
    return path


def read(path: Path) -> Checkpoint:
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dojoguard audit checkpoint (format {FORMAT!r} expected)")
    try:
        return Checkpoint(str(doc["log_id"]), int(doc["seq"]), str(doc["hash"]), str(doc["record_at"]),
                          str(doc["written_at"]), str(doc["key_fingerprint"]), str(doc["signature"]),
                          source=str(path))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: checkpoint is missing a field ({exc})") from exc


def is_signed_by(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public_key.verify(signature, canonical(checkpoint.payload()).encode("utf-8"))
    except (InvalidSignature, ValueError):
        return False
    return True


def files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(folder.glob("checkpoint-*.json"))


def publish(path: Path, public_key: Path, destination: Path) -> Path:
    """Copy a written checkpoint (and the public key) into ``destination``, atomically; returns the copy.

    The destination must already exist: it is meant to be a folder on another
    machine (a mounted share), and making it here would quietly publish to
    this disk when the share is not mounted.
    """
    destination = Path(destination)
    if not destination.is_dir():
        raise OSError(f"the publish folder {destination} does not exist (is the share mounted?)")
    pem = public_key.read_bytes()
    published_key = destination / PUBLIC_KEY_NAME
    if not published_key.exists() or published_key.read_bytes() != pem:
        _write_atomic(published_key, pem, 0o644)
    copy = destination / path.name
    _write_atomic(copy, path.read_bytes(), 0o644)
    return copy


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    # Process and thread in the name: the daily job and the proxy's cadence may write at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a checkpoint that vanishes on a power cut protects nothing)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some network file systems cannot open a folder; the file itself was flushed
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_checkpoint(log, key_path: Path, folder: Path, publish_to=(), *,
                     report_unpublished: bool = True) -> tuple[Checkpoint, Path]:
    """Sign the log's current head, export it to ``folder`` and publish it, then record that in the log.

    ``report_unpublished=False`` leaves a publishing failure out of the log (it
    still raises): the frequent checkpoints record only the first failure of
    an outage, not one a minute for as long as the share is down.

    The exported checkpoint covers the head *before* its own
    ``checkpoint.written`` record, which the next checkpoint then covers. The
    head is made durable first: a checkpoint must never vouch for a record a
    power cut could still take away. Nothing here holds the log's lock while
    files are written, so teachers' decisions go on being recorded meanwhile.
    A destination in ``publish_to`` that cannot be reached is recorded
    (``checkpoint.unpublished``) and raised as ``PublishError`` once the
    checkpoint is kept locally and recorded.
    """
    key = load_or_create_key(key_path)
    public = export_public_key(key, folder)
    head = log.head()
    if head is None:
        raise CheckpointError("the audit log is empty: nothing to checkpoint")
    log.sync(head.seq)
    checkpoint = sign(key, log_id=log.log_id, seq=head.seq, hash_=head.hash, record_at=head.at,
                      written_at=log.clock.now())
    path = write(checkpoint, folder)
    failures = []
    for destination in publish_to:
        try:
            publish(path, public, destination)
        except OSError as exc:
            failures.append(f"{destination}: {exc}")
    fields = {"seq": checkpoint.seq, "hash": checkpoint.hash, "file": path.name,
              "key_fingerprint": checkpoint.key_fingerprint, "published": len(publish_to) - len(failures)}
    log.append_event("checkpoint.written", fields)
    if failures:
        error = "; ".join(failures)[:900]
        if report_unpublished:
            log.append_event("checkpoint.unpublished", {"seq": checkpoint.seq, "file": path.name, "error": error})
        raise PublishError(f"checkpoint {path.name} could not be published: {error}", checkpoint, path)
    return checkpoint, path
