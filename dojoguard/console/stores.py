"""The stores a console page reads or changes, opened once per console process and shared by its threads."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from dojoguard.console.app import console


def audit(c=None):
    """The audit log (appends are durable before they return, as the commands' are); ``c`` outside a request."""
    from dojoguard.audit.log import AuditLog

    c = c or console()
    return c.opened("audit", lambda: AuditLog.open(c.config.path("audit", "database"), clock=c.clock))


@contextmanager
def reading() -> Iterator[Any]:
    """A read-only snapshot of the audit log: long reads never hold up the proxy's writes."""
    with audit().snapshot() as conn:
        yield conn


def names():
    from dojoguard.names import Names

    c = console()
    from dojoguard.state import open_state

    return c.opened("names", lambda: Names(open_state(c.config)))


def name_table() -> dict[tuple[str, str], str]:
    return names().table()


def record(event: str, fields: dict[str, Any]):
    """Record a console action in the audit log under the logged-in account's name."""
    from flask_login import current_user

    return audit().append_event(event, {**fields, "account": current_user.name, "via": "console"})


def holds():
    """The hold store, checked against its seal key as the `held` commands do."""
    from dojoguard.holds.opening import open_holds

    c = console()
    return c.opened("holds", lambda: open_holds(c.config))


_POLICY_FOR_S = 30.0


def policy():
    """The policy in force (as the proxy loads it), read again at most every 30 seconds."""
    import time

    from dojoguard.rules.policy import BUILTIN, load_policy

    c = console()
    cached = c.opened("policy", dict)
    if cached and time.monotonic() - cached["at"] < _POLICY_FOR_S:
        return cached["policy"]
    cfg = c.config
    source = BUILTIN if cfg["rules"]["policy"] == BUILTIN else cfg.path("rules", "policy")
    loaded = load_policy(source, base=cfg.path("rules", "base"), calendar=cfg.path("rules", "calendar"),
                         device_groups=cfg["proxy"]["device_groups"], timezone=cfg["timezone"])
    cached.update(at=time.monotonic(), policy=loaded)
    return loaded
