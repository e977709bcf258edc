"""The audit database's tables, as named migrations applied in order, each in its own transaction."""

from __future__ import annotations

from dojoguard.storage import Database, Migration, migrations


def _create_records(conn: Database) -> None:
    conn.execute("""
        CREATE TABLE records (
            seq  INTEGER PRIMARY KEY,
            id   TEXT NOT NULL UNIQUE,
            at   TEXT NOT NULL,
            type TEXT NOT NULL,
            body TEXT NOT NULL,
            prev TEXT NOT NULL,
            hash TEXT NOT NULL
        )""")
    conn.execute("CREATE INDEX records_at ON records(at)")
    # Guards against mistakes, not against an attacker (who can drop them):
    # the hash chain and signed checkpoints are what detect deliberate edits.
    conn.execute("""
        CREATE TRIGGER records_append_only BEFORE UPDATE ON records
        BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""")
    conn.execute("""
        CREATE TRIGGER records_delete_only_by_purge BEFORE DELETE ON records
        WHEN (SELECT value FROM meta WHERE key = 'purging') IS NOT '1'
        BEGIN SELECT RAISE(ABORT, 'audit records are removed only by the retention purge'); END""")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _create_pupil_keys(conn: Database) -> None:
    # Outside the chain on purpose: deleting a pupil's key erases the link
    # between their pseudonym and their id without touching a sealed record.
    conn.execute("CREATE TABLE pupil_keys (pupil TEXT PRIMARY KEY, key BLOB NOT NULL)")


def _create_job_runs(conn: Database) -> None:
    # Which scheduled run each job last completed, so a run missed while the
    # proxy was down is caught up when it starts again.
    conn.execute("""
        CREATE TABLE job_runs (
            job          TEXT PRIMARY KEY,
            last_due     TEXT,
            last_attempt TEXT,
            last_error   TEXT
        )""")


def _index_records_by_type(conn: Database) -> None:
    # Start-up and reloads read the grants and revocations of exemptions, the releaser the approvals
    # of holds, verify the retention purges: each a few records of one type in a log of millions.
    conn.execute("CREATE INDEX records_type ON records(type, seq)")


# The expressions of the decision indexes, used as they are by the queries that want the indexes. Guarded by
# json_valid: an index expression that raised would make a damaged record impossible to delete (a purge) or
# to change back (the tamper tests), where the log's verification should be the one to name it.
DECISION_TEACHER = "(CASE WHEN json_valid(body) THEN json_extract(body, '$.teacher') END)"
DECISION_CLASS = "(CASE WHEN json_valid(body) THEN json_extract(body, '$.class') END)"


def _index_decisions_by_teacher_and_class(conn: Database) -> None:
    # The console finds one teacher's or one class's decisions over a year without reading the others
    # (0.3 ms against 0.36 s for 228,000 decisions). Partial: only decisions carry a teacher and a class.
    conn.execute(f"CREATE INDEX decisions_by_teacher ON records({DECISION_TEACHER}, at) WHERE type = 'decision'")
    conn.execute(f"CREATE INDEX decisions_by_class ON records({DECISION_CLASS}, at) WHERE type = 'decision'")


MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_create_records", _create_records),
    Migration("0002_create_pupil_keys", _create_pupil_keys),
    Migration("0003_create_job_runs", _create_job_runs),
    Migration("0004_index_records_by_type", _index_records_by_type),
    Migration("0005_index_decisions_by_teacher_and_class", _index_decisions_by_teacher_and_class),
)
# Logs made before the shared runner recorded their migrations in a table of their own.
_RECORDED_BEFORE = migrations.from_table("migrations", time_column="applied_at")


def migrate(db: Database) -> list[str]:
    """Apply every migration not yet applied; returns the names applied now."""
    return migrations.migrate(db, MIGRATIONS, what="the audit log", adopt=_RECORDED_BEFORE)
