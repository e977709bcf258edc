"""``verify``: the whole chain, every retention purge and every checkpoint against it, in one result a person can read.

It also says how much of the log no checkpoint protects yet (the records
after the newest matching checkpoint, and how long they span): those are
the only records someone who can write the database could still change,
cut or rebuild without ``verify`` noticing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.chain import Break, ChainResult, verify_chain
from dojoguard.audit.checkpoint import CheckpointError
from dojoguard.audit.record import parse_time
from dojoguard.audit.retention import check_purge


@dataclass(frozen=True)
class CheckpointResult:
    source: str
    seq: int
    # "ok", "failed", or "before-cut" (it covers records the retention purge removed).
    status: str
    detail: str


@dataclass(frozen=True)
class PurgeCheck:
    """One ``retention.purged`` record: whether it is signed by the trusted key and honoured the retention."""

    seq: int
    problem: str | None

    @property
    def is_ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Tail:
    """The records after the newest matching checkpoint: the part of the log no signature protects yet."""

    records: int
    seconds: float | None
    # The newest matching checkpoint's record, or None when no checkpoint matched.
    after_seq: int | None


@dataclass(frozen=True)
class Verification:
    chain: ChainResult
    checkpoints: tuple[CheckpointResult, ...] = ()
    seconds: float = 0.0
    problems: tuple[str, ...] = field(default=())
    purges: tuple[PurgeCheck, ...] = ()
    tail: Tail | None = None

    @property
    def is_ok(self) -> bool:
        return self.chain.is_intact and not self.problems and \
            all(c.status != "failed" for c in self.checkpoints) and all(p.is_ok for p in self.purges)

    @property
    def first_break(self) -> Break | None:
        return self.chain.first_break


def verify(log, *, checkpoint_files: list[Path] = (), public_key: Ed25519PublicKey | None = None,
           retention_days: int | None = None, now: datetime | None = None) -> Verification:
    """Check the chain, each retention purge, and each checkpoint (signature, log id, the hash it vouches for).

    ``retention_days``: the retention in force; a purge that removed younger
    records fails (None: each purge is held to the retention it signed).
    """
    started = time.perf_counter()
    now = now or log.clock.now()
    loaded, problems = [], []
    for path in checkpoint_files:
        try:
            loaded.append(checkpoints.read(path))
        except CheckpointError as exc:
            problems.append(str(exc))
    with log.snapshot() as conn:
        chain = verify_chain(conn, frozenset(c.seq for c in loaded))
        purge_rows = conn.execute("SELECT seq, body FROM records WHERE type = 'retention.purged' "
                                  "ORDER BY seq").fetchall()
    purges = tuple(_check_purge(seq, body, log.log_id, public_key, now, retention_days)
                   for seq, body in purge_rows)
    results = tuple(_check(c, chain, log.log_id, public_key) for c in loaded)
    return Verification(chain, results, time.perf_counter() - started, tuple(problems), purges,
                        _tail(chain, results, loaded))


def _check_purge(seq: int, body: str, log_id: str, public_key, now: datetime, retention_days) -> PurgeCheck:
    try:
        fields = json.loads(body)
    except ValueError:
        return PurgeCheck(seq, "its fields cannot be read")
    if not isinstance(fields, dict):
        return PurgeCheck(seq, "its fields cannot be read")
    return PurgeCheck(seq, check_purge(fields, log_id, public_key, now=now, retention_days=retention_days))


def _tail(chain: ChainResult, results, loaded) -> Tail | None:
    if not chain.is_intact or chain.last_seq is None:
        return None
    matched = [(c.seq, c.record_at) for r, c in zip(results, loaded, strict=True)
               if r.status == "ok" and c.seq <= chain.last_seq]
    if not matched:
        return Tail(chain.records, None, None)
    # The signed time of the record it covers (a matching checkpoint's record_at is that record's own).
    newest, at = max(matched)
    seconds = None
    if chain.last_at is not None:
        try:
            seconds = max(0.0, (parse_time(chain.last_at) - parse_time(at)).total_seconds())
        except ValueError:
            seconds = None
    return Tail(chain.last_seq - newest, seconds, newest)


def _check(c: checkpoints.Checkpoint, chain: ChainResult, log_id: str, public_key) -> CheckpointResult:
    def result(status: str, detail: str) -> CheckpointResult:
        return CheckpointResult(c.source, c.seq, status, detail)

    if public_key is None:
        return result("failed", "no public key to check the signature with (give --public-key)")
    if c.key_fingerprint != checkpoints.fingerprint(public_key):
        return result("failed", f"signed by another key ({c.key_fingerprint}), not the trusted one")
    if not checkpoints.is_signed_by(c, public_key):
        return result("failed", "the signature does not match: the checkpoint file was altered or forged")
    if c.log_id != log_id:
        return result("failed", f"belongs to another audit log ({c.log_id})")
    if chain.anchor is not None and c.seq <= chain.anchor[0]:
        if c.seq == chain.anchor[0]:
            if c.hash == chain.anchor[1]:
                return result("ok", "matches the retention cut")
            return result("failed", "does not match the hash the retention purge recorded")
        return result("before-cut", "covers records since removed by the retention purge")
    if chain.first_break is not None and c.seq >= chain.first_break.seq:
        return result("failed", f"record {c.seq} could not be checked: the chain breaks at "
                                f"record {chain.first_break.seq}")
    if c.seq not in chain.hashes:
        return result("failed", f"record {c.seq} is missing: the log was cut short or rebuilt "
                                f"(it ends at record {chain.last_seq})")
    if chain.hashes[c.seq] != c.hash:
        return result("failed", f"record {c.seq} differs from the signed checkpoint: the log was rewritten")
    return result("ok", "matches")
