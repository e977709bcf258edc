"""The trust's central store as a shipper sees it: register a node, add a batch of its records and checkpoints.

Adding is idempotent and ordered. Records the store already holds are
skipped (after checking they are the same records: a node whose history
differs from what it shipped before is refused, never merged), the rest are
copied in one transaction that the store's chain trigger checks as a whole
(``schema``), and the node's end of chain moves with them. A batch that
fails leaves nothing behind, so the shipper simply sends it again.

A node is known by its name, its school, its audit log's id and the public
half of its checkpoint signing key, all fixed when it first ships (or when
an administrator registers it first, which is the safer order: see
docs/trust.md). A node that comes back with another log or another key is
refused with ``NodeMismatch``: a replaced log or key is an administrator's
decision, not something a shipper may slip in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.storage.postgresql import PostgreSQLDatabase
from dojoguard.trust import schema

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
NODE_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")

# One audit record as stored in a node's log: seq, id, at, type, body, prev, hash.
Row = tuple[int, str, str, str, str, str, str]


class TrustError(Exception):
    """The central store refused something, with what to do about it."""


class TrustUnavailable(TrustError):
    """The central store cannot be reached (or the connection broke): try again later."""


class NodeMismatch(TrustError):
    """The node's log, key or school differs from what the store registered for its name."""


class ChainRefused(TrustError):
    """A batch does not continue the node's chain as the store holds it (or differs from what it holds)."""


@dataclass(frozen=True)
class Node:
    node: str
    school: str
    log_id: str
    key_fingerprint: str
    public_key: str
    start_seq: int
    start_prev: str
    last_seq: int
    last_hash: str
    last_at: str | None
    shipped_at: datetime | None


@dataclass(frozen=True)
class Purged:
    node: str
    school: str
    first_seq: int
    last_seq: int
    records: int


@dataclass(frozen=True)
class Added:
    records: int
    checkpoints: int
    last_seq: int


def check_name(value: str, what: str, pattern: re.Pattern = NAME) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise TrustError(f"{what} {value!r} is not a valid name: lower-case letters, digits and hyphens, "
                         f"starting with a letter or digit, at most 63 characters")
    return value


class Central:
    """One connection to the central store; not shared between threads (each shipper opens its own)."""

    def __init__(self, db: PostgreSQLDatabase):
        self.db = db

    @classmethod
    def open(cls, dsn: str, *, connect_timeout_s: float = 5.0, migrate: bool = True,
             application_name: str = "dojoguard", statement_timeout_s: float | None = None) -> "Central":
        """Connect (and bring the schema up to date); ``TrustUnavailable`` if the server cannot be reached."""
        import psycopg

        try:
            db = PostgreSQLDatabase.open(dsn, connect_timeout_s=connect_timeout_s,
                                         application_name=application_name, statement_timeout_s=statement_timeout_s)
        except psycopg.OperationalError as exc:
            raise TrustUnavailable(f"cannot reach the central store at {_where(dsn)}: {_first_line(exc)}") from exc
        try:
            if migrate:
                schema.migrate(db)
        except psycopg.OperationalError as exc:
            db.close()
            raise TrustUnavailable(f"the central store at {_where(dsn)} went away: {_first_line(exc)}") from exc
        except BaseException:
            db.close()
            raise
        return cls(db)

    def close(self) -> None:
        try:
            self.db.close()
        except Exception:  # noqa: BLE001 - a broken connection closes anyway
            pass

    @property
    def connection(self):
        return self.db.connection

    # -- nodes ---------------------------------------------------------------

    def node(self, name: str) -> Node | None:
        with self._unavailable_as_error():
            row = self.connection.execute(f"SELECT {_NODE_COLUMNS} FROM nodes WHERE node = %s", (name,)).fetchone()
        return Node(*row) if row else None

    def nodes(self, school: str | None = None) -> list[Node]:
        sql = f"SELECT {_NODE_COLUMNS} FROM nodes" + (" WHERE school = %s" if school else "") + " ORDER BY school, node"
        with self._unavailable_as_error():
            return [Node(*row) for row in self.connection.execute(sql, (school,) if school else None)]

    def register(self, name: str, school: str, *, log_id: str, public_key_pem: str, start_seq: int,
                 start_prev: str) -> Node:
        """Register ``name`` (idempotent); ``NodeMismatch`` if it is registered with another log, key or school.

        ``start_seq``/``start_prev``: the first record the store will hold and
        the hash it follows (``GENESIS`` for a log shipped from its start; the
        last purged record's hash for a node whose older records were purged
        before it joined).
        """
        check_name(name, "node", NODE_NAME)
        check_name(school, "school")
        public = checkpoints.load_public_key_pem(public_key_pem.encode("ascii"))
        fingerprint = checkpoints.fingerprint(public)
        import psycopg

        try:
            return self._register(name, school, log_id, public_key_pem, fingerprint, start_seq, start_prev)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise NodeMismatch(f"this account may not register node {name!r} in school {school!r} (an "
                               f"administrator allows each proxy's account one node and school: dojoguard trust "
                               f"allow-shipper): {_first_line(exc)}") from exc

    def _register(self, name, school, log_id, public_key_pem, fingerprint, start_seq, start_prev) -> Node:
        with self._unavailable_as_error(), self.connection.transaction():
            # A shipping account sees its own school, which its administrator made; the owner makes it here.
            if self.connection.execute("SELECT 1 FROM schools WHERE school = %s", (school,)).fetchone() is None:
                self.connection.execute("INSERT INTO schools (school) VALUES (%s) ON CONFLICT DO NOTHING",
                                        (school,))
            if self.node(name) is not None:
                return self._registered(name, school, log_id, fingerprint)
            self.connection.execute(
                "INSERT INTO nodes (node, school, log_id, public_key, key_fingerprint, start_seq, start_prev, "
                "last_seq, last_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (node) DO NOTHING",
                (name, school, log_id, public_key_pem, fingerprint, start_seq, start_prev, start_seq - 1, start_prev))
        return self._registered(name, school, log_id, fingerprint)

    def _registered(self, name: str, school: str, log_id: str, fingerprint: str) -> Node:
        """The node as registered; ``NodeMismatch`` if that differs from what this proxy says it is."""
        node = self.node(name)
        if node is None:
            raise TrustError(f"node {name!r} could not be registered (the account may ship only as the node "
                             f"and school an administrator allowed: dojoguard trust allow-shipper)")
        problems = []
        if node.school != school:
            problems.append(f"it belongs to school {node.school!r}, not {school!r}")
        if node.log_id != log_id:
            problems.append(f"it was registered with audit log {node.log_id}, this is {log_id}")
        if node.key_fingerprint != fingerprint:
            problems.append(f"it was registered with signing key {node.key_fingerprint}, this is {fingerprint}")
        if problems:
            raise NodeMismatch(f"node {name!r} is registered in the central store differently: "
                               + "; ".join(problems) + ". An administrator must retire the old registration "
                               "(dojoguard trust retire) or give this proxy another trust.node name")
        return node

    # -- adding records -------------------------------------------------------

    def add(self, node: Node, rows: Sequence[Row], found_checkpoints: Sequence[checkpoints.Checkpoint] = ()) -> Added:
        """Add ``rows`` (consecutive, in order) and checkpoints of ``node``; returns what was new.

        Raises ``ChainRefused`` when the rows do not continue the stored chain
        or differ from records already stored, ``TrustUnavailable`` when the
        connection fails (nothing was added then).
        """
        import psycopg

        with self._unavailable_as_error():
            try:
                with self.connection.transaction():
                    # One batch of a node at a time (a lock any account may take; the store's trigger also locks
                    # the node's row, as the owner, before it checks the chain).
                    self.connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (node.node,))
                    row = self.connection.execute("SELECT last_seq FROM nodes WHERE node = %s", (node.node,)).fetchone()
                    if row is None:
                        raise ChainRefused(f"node {node.node} is no longer registered (retired by an administrator)")
                    (last_seq,) = row
                    known = [r for r in rows if r[0] <= last_seq]
                    if known:
                        self._same_as_stored(node.node, known)
                    new = [r for r in rows if r[0] > last_seq]
                    if new:
                        # One statement for the batch, so that the store's trigger checks it as a whole. Not
                        # COPY: PostgreSQL refuses COPY into a table with row-level security for a proxy's own
                        # (non-owner) account.
                        columns = list(zip(*new, strict=True))
                        self.connection.execute(
                            "INSERT INTO records (node, seq, id, at, type, body, prev, hash, school) "
                            "SELECT %s, * , %s FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], "
                            "%s::text[], %s::text[], %s::text[])",
                            (node.node, node.school, *[list(c) for c in columns]))
                        last_seq = new[-1][0]
                    added = self._add_checkpoints(node, found_checkpoints, last_seq)
            except psycopg.errors.UniqueViolation as exc:
                raise ChainRefused(f"node {node.node}: a record id is already stored at another place in "
                                   f"its chain ({_first_line(exc)})") from exc
            except psycopg.DatabaseError as exc:
                # The store's own checks (schema: DGC01 a record changed, DGC02 not the chain's next).
                if not (exc.sqlstate or "").startswith("DGC"):
                    raise
                raise ChainRefused(_first_line(exc)) from exc
        return Added(len(new), added, last_seq)

    def _same_as_stored(self, node: str, known: Sequence[Row]) -> None:
        stored = dict(self.connection.execute(
            "SELECT seq, hash FROM records WHERE node = %s AND seq = ANY(%s)", (node, [r[0] for r in known])))
        for seq, record_id, *_rest, hash_ in known:
            if seq in stored and stored[seq] != hash_:
                raise ChainRefused(f"node {node}: record {seq} ({record_id}) differs from the record {seq} the "
                                   f"central store already holds: this node's history was rewritten or its log "
                                   f"replaced")

    def _add_checkpoints(self, node: Node, found: Sequence[checkpoints.Checkpoint], last_seq: int) -> int:
        """Store the node's checkpoints that cover records already stored and are signed by its registered key."""
        if not found:
            return 0
        public = checkpoints.load_public_key_pem(node.public_key.encode("ascii"))
        wanted = [c for c in found if node.start_seq <= c.seq <= last_seq]
        if not wanted:
            return 0
        stored = dict(self.connection.execute(
            "SELECT seq, hash FROM records WHERE node = %s AND seq = ANY(%s)", (node.node, [c.seq for c in wanted])))
        rows = []
        for c in wanted:
            if c.log_id != node.log_id or not checkpoints.is_signed_by(c, public):
                raise ChainRefused(f"node {node.node}: checkpoint at record {c.seq} is not signed by the node's "
                                   f"registered key for its log")
            if stored.get(c.seq) != c.hash:
                raise ChainRefused(f"node {node.node}: checkpoint at record {c.seq} vouches for a hash the central "
                                   f"store's record {c.seq} does not have")
            rows.append((node.node, c.seq, c.hash, c.record_at, c.written_at, c.key_fingerprint, c.signature,
                         node.school))
        cursor = self.connection.cursor()
        cursor.executemany("INSERT INTO checkpoints (node, seq, hash, record_at, written_at, key_fingerprint, "
                           "signature, school) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                           rows)
        return len(rows)

    def last_checkpoint(self, node: str) -> int:
        with self._unavailable_as_error():
            (seq,) = self.connection.execute("SELECT coalesce(max(seq), 0) FROM checkpoints WHERE node = %s",
                                             (node,)).fetchone()
        return int(seq)

    def purge(self, before: datetime, *, school: str | None = None) -> list[Purged]:
        """Remove every record written before ``before`` (and the checkpoints of them), node by node.

        The trust's retention, run by the owner (no reader or shipping account
        may delete). Each node's chain then starts after its last removed
        record: ``start_seq``/``start_prev`` move there, so verification goes on
        anchoring the rest, and each cut is kept in ``purges``.
        """
        from dojoguard.audit.record import format_time

        cutoff = format_time(before)
        with self._unavailable_as_error():
            (may,) = self.connection.execute("SELECT has_table_privilege('records', 'DELETE')").fetchone()
        if not may:
            raise TrustError("only the central store's owner may purge it (this account may not delete records)")
        done = []
        for node in self.nodes(school):
            with self._unavailable_as_error(), self.connection.transaction():
                self.connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (node.node,))
                row = self.connection.execute(
                    "SELECT max(seq), count(*), min(seq) FROM records WHERE node = %s AND at < %s",
                    (node.node, cutoff)).fetchone()
                last_seq, count, first_seq = row
                if not count:
                    continue
                (last_hash,) = self.connection.execute("SELECT hash FROM records WHERE node = %s AND seq = %s",
                                                       (node.node, last_seq)).fetchone()
                self.connection.execute("SET LOCAL dojoguard.purging = 'on'")
                # Records are in seq order of time within a node, so "before the cut" is a prefix of the chain.
                removed = self.connection.execute("DELETE FROM records WHERE node = %s AND seq <= %s",
                                                  (node.node, last_seq)).rowcount
                self.connection.execute("DELETE FROM checkpoints WHERE node = %s AND seq <= %s", (node.node, last_seq))
                self.connection.execute("UPDATE nodes SET start_seq = %s, start_prev = %s WHERE node = %s",
                                        (last_seq + 1, last_hash, node.node))
                self.connection.execute(
                    "INSERT INTO purges (node, school, before, first_seq, last_seq, last_hash, records) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (node.node, node.school, cutoff, first_seq, last_seq, last_hash, removed))
            done.append(Purged(node.node, node.school, first_seq, last_seq, removed))
        return done

    def retire(self, name: str) -> None:
        """Rename a node's registration out of the way so that the name can be registered again.

        Its records stay, under ``<name>.retired-<time>``: nothing shipped is ever lost.
        """
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        with self._unavailable_as_error(), self.connection.transaction():
            node = self.node(name)
            if node is None:
                raise TrustError(f"no node {name!r} is registered")
            retired = f"{name[:40]}.retired-{stamp}"
            self.connection.execute(
                "INSERT INTO nodes SELECT %s, school, log_id, public_key, key_fingerprint, start_seq, start_prev, "
                "last_seq, last_hash, last_at, registered_at, shipped_at FROM nodes WHERE node = %s", (retired, name))
            # The one change records ever see: their node's name (inside this transaction, which also
            # turns the guards back on; an administrator's act, needing the owner's rights).
            for table in ("records", "checkpoints"):
                self.connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
                self.connection.execute(f"UPDATE {table} SET node = %s WHERE node = %s", (retired, name))
                self.connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")
            self.connection.execute("DELETE FROM nodes WHERE node = %s", (name,))

    # -- errors --------------------------------------------------------------

    def _unavailable_as_error(self):
        return _Unavailable(self.db.path)


class _Unavailable:
    """Turn a broken connection into ``TrustUnavailable`` (the shipper reconnects and tries again)."""

    def __init__(self, where):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        import psycopg

        if exc is not None and isinstance(exc, psycopg.OperationalError):
            raise TrustUnavailable(f"lost the central store at {self.where}: {_first_line(exc)}") from exc
        return False


_NODE_COLUMNS = ("node, school, log_id, key_fingerprint, public_key, start_seq, start_prev, last_seq, last_hash, "
                 "last_at, shipped_at")


def _where(dsn: str) -> str:
    from dojoguard.storage.postgresql import redacted

    return redacted(dsn)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
