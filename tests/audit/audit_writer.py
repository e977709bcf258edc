"""A separate writer process for the audit tests (run by path, not collected by pytest).

    audit_writer.py forever DB          append decisions until killed, printing "ack <id>" after each returns
    audit_writer.py once DB [FSIZE]     open the log and append once (optionally under RLIMIT_FSIZE bytes),
                                        printing "ok <appended>" or "error <ExceptionClass> <appended> <message>"
"""

from __future__ import annotations

import resource
import signal
import sys
from datetime import UTC, datetime

from dojoguard.audit.log import AuditLog, AuditWriteError
from dojoguard.rules.action import Action, Channel, Kind
from dojoguard.rules.decision import Decision, Match, Verdict


def _pair(i: int):
    at = datetime.now(UTC)
    action = Action(kind=Kind.POINTS_AWARD, channel=Channel.POINTS, at=at, teacher_id=f"t-{i % 40}",
                    class_id=f"c-{i % 12}", students=(f"s-{i % 300}",), text=f"note {i}")
    decision = Decision(verdict=Verdict.WARN, matches=(Match("r", Verdict.WARN, "why", "n"),),
                        policy_revision="rev", at=at)
    return action, decision


def forever(path: str) -> None:
    log = AuditLog.open(path, emit_decisions=False)
    i = 0
    while True:
        action, decision = _pair(i)
        log.append_decision(action, decision)
        print(f"ack {decision.decision_id}", flush=True)
        i += 1


def once(path: str, fsize: int | None) -> None:
    if fsize is not None:
        # Writing past the limit raises EFBIG instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    acked = 0
    try:
        log = AuditLog.open(path, emit_decisions=False)
        for i in range(2000 if fsize is not None else 1):
            log.append_decision(*_pair(i))
            acked += 1
        print(f"ok {acked}", flush=True)
    except AuditWriteError as exc:
        print(f"error {type(exc).__name__} {acked} {exc}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "forever":
        forever(sys.argv[2])
    else:
        once(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
