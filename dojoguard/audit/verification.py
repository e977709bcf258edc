"""``verify``: the whole chain, then every checkpoint against it, in one result a person can read."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.chain import Break, ChainResult, verify_chain
from dojoguard.audit.checkpoint import CheckpointError


@dataclass(frozen=True)
class CheckpointResult:
    source: str
    seq: int
    # "ok", "failed", or "before-cut" (it covers records the retention purge removed).
    status: str
    detail: str


@dataclass(frozen=True)
class Verification:
    chain: ChainResult
    checkpoints: tuple[CheckpointResult, ...] = ()
    seconds: float = 0.0
    problems: tuple[str, ...] = field(default=())

    @property
    def is_ok(self) -> bool:
        return self.chain.is_intact and not self.problems and \
            all(c.status != "failed" for c in self.checkpoints)

    @property
    def first_break(self) -> Break | None:
        return self.chain.first_break


def verify(log, *, checkpoint_files: list[Path] = (), public_key: Ed25519PublicKey | None = None) -> Verification:
    """Check the chain and each checkpoint (signature, log id, and the hash it vouches for)."""
    started = time.perf_counter()
    loaded, problems = [], []
    for path in checkpoint_files:
        try:
            loaded.append(checkpoints.read(path))
        except CheckpointError as exc:
            problems.append(str(exc))
    with log.snapshot() as conn:
        chain = verify_chain(conn, frozenset(c.seq for c in loaded))
    results = tuple(_check(c, chain, log.log_id, public_key) for c in loaded)
    return Verification(chain, results, time.perf_counter() - started, tuple(problems))


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
