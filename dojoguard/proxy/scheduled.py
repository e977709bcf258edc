"""Running the policy's scheduled checks (``checks:``) when they fall due, and recording what they find.

A check runs once on each day it names, at its time or at the first look
after it (so a check that fell due while the proxy was stopped runs when it
starts, the same day). The day it last ran is kept in the state file, so a
restart neither repeats it nor skips it. What it finds is written to the
audit log as ``check.found`` records, one per class or teacher, carrying the
check's alert recipients; the alert sender emails them like any alert.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

log = structlog.get_logger("dojoguard.proxy")

# How often the proxy looks for checks that fell due.
LOOK_EVERY_S = 30.0


def run_due(services: Any, now: datetime) -> list[str]:
    """Run every check due at ``now`` and not yet run today; returns their ids (blocking: a worker thread)."""
    policy, counts = services.policy, services.counts
    if counts is None or not policy.checks:
        return []
    local = now.astimezone(policy.timezone)
    today = local.date().isoformat()
    ran = []
    for check in policy.checks:
        if local.weekday() not in check.days or local.hour * 60 + local.minute < check.minute:
            continue
        if counts.last_run(check.id) == today:
            continue
        keys = [named.id for named in services.names.all(check.per)]
        found = check.run(now, counts.history, keys, policy.timezone)
        for key, n in found:
            fields: dict[str, Any] = {"check": check.id, "per": check.per, check.per: key, "count": n,
                                      "limit": check.limit, "comparison": check.comparison,
                                      "within": check.span.text}
            if check.alert is not None:
                fields["alerts"] = [{"rule": check.id, **check.alert.to_dict()}]
            services.audit.append_event("check.found", fields)
        services.audit.append_event("check.ran", {"check": check.id, "looked_at": len(set(keys)),
                                                  "found": len(found)})
        counts.ran(check.id, today)
        log.info("check.ran", check=check.id, found=len(found))
        ran.append(check.id)
    return ran
