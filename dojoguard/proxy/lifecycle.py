"""Whether the last run of the proxy stopped cleanly, read from the audit log when it starts again.

Every run of the proxy opens with ``proxy.started`` and a clean stop closes
it with ``proxy.stopped``. A run that was killed (SIGKILL, the machine lost
power, the process ran out of memory) leaves its ``proxy.started`` as the
last of these records. The next start then records ``proxy.recovered``,
naming the last record the killed run left, and signs a checkpoint over it
at once: without one, the killed run's records would be protected only by
the hash chain until the next clean stop (see ``audit/cadence.py``).

Only the lifecycle records are read, through the log's type index, never the
decisions between them: the cost is one row per start and stop, however
long the log.
"""

from __future__ import annotations

from typing import Any

from dojoguard.audit.cadence import last_covered
from dojoguard.audit.record import format_time

STARTED = "proxy.started"
STOPPED = "proxy.stopped"
RECOVERED = "proxy.recovered"
LIFECYCLE = (STARTED, STOPPED, RECOVERED)


def unclean_stop(audit: Any) -> dict[str, Any] | None:
    """The ``proxy.recovered`` fields if the last run did not stop cleanly; None after a clean stop or on a new log.

    Read before this start records anything: the last record is then the
    last one the killed run (or a command run while the proxy was down) wrote.
    """
    rows = audit.rows(types=LIFECYCLE)
    if not rows or rows[-1][3] == STOPPED:
        return None  # a new log, or the last run closed with proxy.stopped
    started = next((row for row in reversed(rows) if row[3] == STARTED), None)
    if started is None:
        return None  # only recoveries were ever recorded: no run to speak of
    last = audit.head()
    covered = last_covered(audit)
    return {
        "last_seq": last.seq,
        "last_id": last.record_id,
        "last_type": last.type,
        "last_at": format_time(last.at),
        "started_seq": started[0],
        "started_at": started[2],
        # Records from the killed run's start to the last one, and how many of them no checkpoint covered.
        "records": last.seq - started[0] + 1,
        "uncovered": max(0, last.seq - covered),
    }
