"""Granting and revoking exemptions: checked, then written atomically.

A grant is refused rather than trimmed: no open-ended or over-long
exemptions, none for rules that do not exist or that may not be set aside
(``exemptable: false``, e.g. the fail-closed checks). The file is rewritten
whole (temporary file, fsync, rename), and the new text is read back through
the same loader the proxy uses before it replaces the old one, so a grant can
never leave a file the proxy would refuse. ``before_commit`` runs after the
new file is safely on disk and before it replaces the old one: the audit
event goes there, so an exemption that could not be audited never applies.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from dojoguard import yamlfile
from dojoguard.rules.exemptions import Exemption, Exemptions, Revocation, load_exemptions, parse_exemptions
from dojoguard.rules.policy import Policy

HEADER = """\
# Exemptions granted by the headteacher: written by `dojoguard exempt grant`
# and `dojoguard exempt revoke`. Prefer those commands to editing by hand:
# they check each grant and record it in the audit log. Revoked and expired
# records are kept as history; they no longer apply.
"""


# Reasons go into the audit log, which holds short facts, not documents.
MAX_REASON_CHARS = 300


class GrantError(ValueError):
    """A grant or revocation that is refused, with the reason a person can act on."""


def grant(path: Path, *, policy: Policy, rules: list[str], teachers: list[str], classes: list[str],
          everyone: bool, starts: datetime, ends: datetime, granted_by: str, reason: str, now: datetime,
          max_days: int, before_commit: Callable[[Exemption], None] = lambda e: None) -> Exemption:
    """Add an exemption to the file at ``path`` and return it."""
    current = load_exemptions(path, max_days=None)
    _check_rules(policy, rules)
    scopes = sum([bool(teachers), bool(classes), everyone])
    if scopes != 1:
        raise GrantError("name exactly one of --teacher, --class or --everyone")
    if starts.tzinfo is None or ends.tzinfo is None:
        raise GrantError("times need a UTC offset")
    if ends <= starts:
        raise GrantError("the exemption must end after it starts")
    if ends <= now:
        raise GrantError("the exemption would already have ended")
    if ends - starts > timedelta(days=max_days):
        raise GrantError(f"the exemption would last {_days(ends - starts)}; the most allowed is {max_days} days "
                         "(setting exemptions.max_days)")
    if not granted_by.strip() or not reason.strip():
        raise GrantError("say who gave permission (--by) and why (--reason)")
    if len(reason) > MAX_REASON_CHARS or len(granted_by) > MAX_REASON_CHARS:
        raise GrantError(f"keep --reason and --by under {MAX_REASON_CHARS} characters")
    record = Exemption(
        id=_new_id(current, now), rules=tuple(dict.fromkeys(rules)), starts=starts, ends=ends,
        granted_by=granted_by.strip(), reason=reason.strip(), teachers=tuple(dict.fromkeys(teachers)),
        classes=tuple(dict.fromkeys(classes)), everyone=everyone, granted_at=now,
    )
    _write(path, current.records + (record,), lambda: before_commit(record))
    return record


def revoke(path: Path, exemption_id: str, *, by: str, reason: str, now: datetime,
           before_commit: Callable[[Exemption], None] = lambda e: None) -> Exemption:
    """Mark an exemption revoked from ``now`` on (the record is kept as history)."""
    current = load_exemptions(path, max_days=None)
    record = current.get(exemption_id)
    if record is None:
        known = ", ".join(r.id for r in current.records) or "none"
        raise GrantError(f"no exemption with id {exemption_id!r} (known: {known})")
    if record.revoked is not None:
        raise GrantError(f"{exemption_id} was already revoked at {record.revoked.at.isoformat()}")
    if not by.strip() or not reason.strip():
        raise GrantError("say who revokes it (--by) and why (--reason)")
    revoked = replace(record, revoked=Revocation(now, by.strip(), reason.strip()))
    records = tuple(revoked if r.id == exemption_id else r for r in current.records)
    _write(path, records, lambda: before_commit(revoked))
    return revoked


def _check_rules(policy: Policy, rules: list[str]) -> None:
    if not rules:
        raise GrantError("name at least one rule (--rule)")
    for rule_id in rules:
        rule = policy.rule(rule_id)
        if rule is None:
            known = ", ".join(r.id for r in policy.rules if r.exemptable)
            raise GrantError(f"the policy has no rule {rule_id!r}; rules that can be exempted: {known}")
        if not rule.exemptable and policy.from_base(rule):
            raise GrantError(f"rule {rule_id!r} is one of the trust's base rules and the trust has said no school may "
                             f"set it aside (`exemptable: false`, {rule.file}:{rule.line})")
        if not rule.exemptable:
            raise GrantError(f"rule {rule_id!r} cannot be exempted (it is a fail-closed safety check)")


def _new_id(current: Exemptions, now: datetime) -> str:
    taken = {r.id for r in current.records}
    stem = f"ex-{now:%Y%m%d}-"
    n = 1
    while f"{stem}{n}" in taken:
        n += 1
    return f"{stem}{n}"


def _days(span: timedelta) -> str:
    return f"{span.total_seconds() / 86400:.1f} days"


def _write(path: Path, records: tuple[Exemption, ...], before_commit: Callable[[], None]) -> None:
    body = yaml.safe_dump([r.to_dict() for r in records], sort_keys=False, allow_unicode=True, width=100)
    text = HEADER + "\n" + body
    # Prove the proxy will accept what we are about to write.
    parse_exemptions(yamlfile.parse(text, str(path)))
    write_atomically(path, text, before_replace=before_commit)


def write_atomically(path: Path, text: str, *, before_replace: Callable[[], None] = lambda: None) -> None:
    """Replace ``path`` with ``text`` whole: written beside it, flushed to disk, then renamed over it (a reader
    sees the old file or the new one, never part of either). ``before_replace`` runs once the new text is
    safely on disk; if it raises, the old file stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        before_replace()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
