"""The shipper: copies this proxy's audit records and checkpoints to the trust's central store, in order.

It reads the local audit log through its own read-only connection, so the
proxy's writers never wait for it, and it runs on its own thread, so the
proxy never waits on the network: when the central store cannot be reached,
decisions go on being judged and written locally, and the shipper catches up
when the store comes back. Where to start is always asked of the central
store (its end of this node's chain), never remembered here, so a crash of
either side, a restart, or a batch whose commit was lost on the way is sent
again and skipped by the store: at least once, idempotently.

Only records the local log has made durable are shipped (``limit``): a
record the central store holds must never vanish from the node's own log in
a power cut.

A node whose chain the store refuses (its history differs from what it
shipped, its log or key was replaced) is not retried quickly: that is a
person's decision (docs/trust.md, "When the store refuses a node").
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.storage import SQLiteDatabase
from dojoguard.trust.central import (NODE_NAME, Central, ChainRefused, Node, NodeMismatch, TrustError,
                                     TrustUnavailable, check_name)

log = structlog.get_logger("dojoguard.trust")

# Seconds between attempts while the store is refusing this node (a person must act).
REFUSED_RETRY_S = 60.0
# The longest one statement of the shipper may take before it gives up and reconnects.
STATEMENT_TIMEOUT_S = 60.0
# At most this long between attempts while the store cannot be reached.
UNREACHABLE_RETRY_MAX_S = 5.0


class ShipError(TrustError):
    """The local log cannot be shipped as it is (records purged before they were shipped)."""


@dataclass(frozen=True)
class ShipSettings:
    database: str
    school: str
    node: str
    audit_database: Path
    checkpoint_dir: Path
    signing_key: Path
    every_s: float = 0.5
    batch_records: int = 2000
    connect_timeout_s: float = 5.0

    @classmethod
    def from_config(cls, config) -> "ShipSettings | None":
        """The settings of ``config``'s ``trust`` section, or None when this school stands alone."""
        from dojoguard.storage.location import trust_database

        trust = config["trust"]
        database = trust_database(config)
        if not database:
            return None
        return cls(database=database, school=check_name(trust["school"], "trust.school"),
                   node=check_name(trust.get("node") or default_node_name(), "trust.node", NODE_NAME),
                   audit_database=config.path("audit", "database"),
                   checkpoint_dir=config.path("audit", "checkpoint_dir"),
                   signing_key=config.path("audit", "signing_key"),
                   every_s=float(trust["ship_every_s"]), batch_records=int(trust["batch_records"]),
                   connect_timeout_s=float(trust["connect_timeout_s"]))


def default_node_name() -> str:
    """The host name, as a node name (lower case; characters a name cannot have become hyphens)."""
    name = "".join(c if c.isalnum() or c in ".-" else "-" for c in socket.gethostname().lower()).strip(".-")
    return (name or "dojoguard")[:63]


@dataclass
class Status:
    central_seq: int = 0          # the last record the central store holds for this node
    local_seq: int = 0            # the last record seen in the local log
    shipped: int = 0              # records shipped by this shipper since it started
    failing_since: float | None = None
    error: str | None = None
    refused: bool = False

    @property
    def behind(self) -> int:
        return max(0, self.local_seq - self.central_seq)


class Shipper:
    """Ship in ``turn``; ``start`` runs turns on a thread of its own until ``stop``."""

    def __init__(self, settings: ShipSettings, *, limit: Callable[[], int] | None = None,
                 record: Callable[[str, dict[str, Any]], None] | None = None):
        self.settings = settings
        self.limit = limit or (lambda: sys.maxsize)
        self.record = record
        self.status = Status()
        self._central: Central | None = None
        self._node: Node | None = None
        self._reader: SQLiteDatabase | None = None
        self._checkpoint_seq = 0
        self._looked_at_checkpoints = 0   # the local head when the checkpoint folder was last looked at
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running ---------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dojoguard-shipper", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop after the batch in flight (at most ``timeout_s``); returns whether the thread ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        ended = self._thread is None or not self._thread.is_alive()
        if ended:
            self.close()
        return ended

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the thread to end (it ends only when stopped)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def close(self) -> None:
        if self._central is not None:
            self._central.close()
            self._central = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _run(self) -> None:
        pause = self.settings.every_s
        while not self._stop.is_set():
            try:
                more = self.turn()
                self._recovered()
                pause = 0 if more else self.settings.every_s
            except TrustUnavailable as exc:
                self._failed(exc, refused=False)
                pause = min(UNREACHABLE_RETRY_MAX_S, max(self.settings.every_s, pause * 2 or self.settings.every_s))
            except (ChainRefused, NodeMismatch, ShipError) as exc:
                self._failed(exc, refused=True)
                pause = REFUSED_RETRY_S
            except Exception as exc:  # noqa: BLE001 - the thread must outlive one bad turn; it tries again
                self._failed(exc, refused=False)
                pause = UNREACHABLE_RETRY_MAX_S
            if pause:
                self._stop.wait(pause)

    def ship_all(self) -> int:
        """Ship until caught up (``dojoguard trust ship --once``); returns the records shipped."""
        before = self.status.shipped
        while self.turn():
            pass
        return self.status.shipped - before

    # -- one turn --------------------------------------------------------------

    def turn(self) -> bool:
        """Ship one batch (and the checkpoints it completes); returns whether more records are waiting."""
        if self._stop.is_set():
            return False
        reader = self._local()
        node = self._connect(reader)
        head = reader.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
        self.status.local_seq = head
        limit = min(head, self.limit())
        start = self.status.central_seq
        rows = reader.execute(
            "SELECT seq, id, at, type, body, prev, hash FROM records WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (start, limit, self.settings.batch_records)).fetchall()
        if rows and rows[0][0] != start + 1:
            raise ShipError(f"records {start + 1} to {rows[0][0] - 1} of this node's audit log were removed (by "
                            f"the retention purge) before they were shipped: the central store cannot continue "
                            f"the chain past record {start}; see docs/trust.md")
        # A new checkpoint file always comes with a new record (its `checkpoint.written`), so the folder is
        # looked at only when the log has grown since the last look, not at every idle turn.
        up_to = rows[-1][0] if rows else start
        found = self._new_checkpoints(node, up_to) if head > self._looked_at_checkpoints else []
        if rows or found:
            try:
                added = self._central.add(node, rows, found)
            except TrustUnavailable:
                self._disconnect()
                raise
        if up_to >= head:
            self._looked_at_checkpoints = head   # everything up to the head is in the store, with its checkpoints
        if not rows and not found:
            return False
        self.status.central_seq = added.last_seq
        self.status.shipped += added.records
        if found:
            self._checkpoint_seq = max(self._checkpoint_seq, max(c.seq for c in found))
        return bool(rows) and len(rows) >= self.settings.batch_records

    def _local(self) -> SQLiteDatabase:
        if self._reader is None:
            self._reader = SQLiteDatabase.open_read_only(self.settings.audit_database)
        return self._reader

    def _connect(self, reader: SQLiteDatabase) -> Node:
        """The node as the central store has it (registering it on first contact)."""
        row = reader.execute("SELECT value FROM meta WHERE key = 'log_id'").fetchone()
        if row is None:
            raise ShipError("the local audit log has no id yet (it is being created)")
        log_id = row[0]
        if self._central is not None and self._node is not None and self._node.log_id == log_id:
            return self._node
        if self._central is None:
            # A batch is seconds of work at most: a statement that runs a minute is a server in trouble, and
            # the shipper reconnects rather than wait on it for ever.
            self._central = Central.open(self.settings.database, connect_timeout_s=self.settings.connect_timeout_s,
                                         application_name=f"dojoguard shipper {self.settings.node}",
                                         statement_timeout_s=STATEMENT_TIMEOUT_S)
        try:
            first = reader.execute("SELECT seq, prev FROM records ORDER BY seq LIMIT 1").fetchone()
            if first is None:
                raise ShipError("the local audit log has no records yet")
            public = checkpoints.public_key_pem(checkpoints.load_or_create_key(self.settings.signing_key))
            node = self._central.register(self.settings.node, self.settings.school, log_id=log_id,
                                          public_key_pem=public.decode("ascii"), start_seq=first[0],
                                          start_prev=first[1])
            self._checkpoint_seq = self._central.last_checkpoint(node.node)
        except TrustUnavailable:
            self._disconnect()
            raise
        self._node = node
        self.status.central_seq = node.last_seq
        return node

    def _disconnect(self) -> None:
        if self._central is not None:
            self._central.close()
        self._central = None
        self._node = None
        self._looked_at_checkpoints = 0  # what the store acknowledged is asked again on reconnecting

    def _new_checkpoints(self, node: Node, up_to: int) -> list[checkpoints.Checkpoint]:
        """This log's checkpoint files after the last one the store holds, up to record ``up_to``."""
        found = []
        for path in checkpoints.files(self.settings.checkpoint_dir):
            try:
                seq = int(path.name.split("-")[1])
            except (IndexError, ValueError):
                continue
            if not self._checkpoint_seq < seq <= up_to:
                continue
            try:
                checkpoint = checkpoints.read(path)
            except checkpoints.CheckpointError as exc:
                log.warning("trust.checkpoint_unreadable", file=path.name, detail=str(exc)[:200])
                continue
            if checkpoint.log_id == node.log_id:
                found.append(checkpoint)
        return found

    # -- telling people ----------------------------------------------------------

    def _failed(self, exc: Exception, *, refused: bool) -> None:
        if not isinstance(exc, ShipError):
            self._disconnect()  # reconnect next time: the store, or this node's registration, may have changed
        text = f"{type(exc).__name__}: {exc}"[:900]
        first = self.status.failing_since is None or self.status.refused != refused
        self.status.error, self.status.refused = text, refused
        if self.status.failing_since is None:
            self.status.failing_since = time.monotonic()
        if first:
            event = "trust.refused" if refused else "trust.unreachable"
            log.error(event, node=self.settings.node, detail=text[:300], shipped_up_to=self.status.central_seq)
            self._record(event, {"node": self.settings.node, "error": text, "shipped_up_to": self.status.central_seq})

    def _recovered(self) -> None:
        if self.status.failing_since is None:
            return
        seconds = round(time.monotonic() - self.status.failing_since, 1)
        self.status.failing_since, self.status.error, self.status.refused = None, None, False
        log.info("trust.caught_up", node=self.settings.node, after_s=seconds, shipped_up_to=self.status.central_seq)
        self._record("trust.resumed", {"node": self.settings.node, "after_s": seconds,
                                        "shipped_up_to": self.status.central_seq})

    def _record(self, event: str, fields: dict[str, Any]) -> None:
        if self.record is None:
            return
        try:
            self.record(event, fields)
        except Exception:  # noqa: BLE001 - the application log above has it; the audit log may be what fails
            log.warning("trust.not_recorded", event=event)
