"""The hold store's tables, and the steps that bring an older store up to date.

The steps are named migrations recorded in the database (``dojoguard.storage.migrations``),
each run in one transaction with its record, so a store is never half
upgraded. SQLite files made before that counted their steps in
``user_version``, which still says how many have been applied. A store made
by a newer dojoguard is refused rather than guessed at.

The steps are written in SQLite's dialect and run on PostgreSQL too (its
``Database`` translates the column types). The first three are the same on
both; the fourth gives PostgreSQL what SQLite has without asking (text
compared byte by byte, notices kept in the order they were written) and does
nothing to a SQLite file. Columns are read from ``PRAGMA table_info`` on
SQLite and from ``information_schema`` on PostgreSQL.
"""

from __future__ import annotations

from functools import partial

from dojoguard.holds import seal as seals
from dojoguard.storage import Database, Migration, NewerSchemaError, migrations

# In order: the step that brings a store to version 1, then to version 2, and so on.
STEPS = ("0001_create_items", "0002_sends_and_teacher_tables", "0003_previews", "0004_ordered_as_in_sqlite")
VERSION = len(STEPS)

# Version 1: the items table as first shipped (the approval and seal columns were added to it in place).
_V1 = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    release_at TEXT,
    decision_id TEXT NOT NULL,
    teacher_id TEXT,
    class_id TEXT,
    action_kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    rule_ids TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    dedupe_key TEXT NOT NULL,
    request TEXT NOT NULL,
    content BLOB NOT NULL,
    approval TEXT,
    seal TEXT
);
CREATE INDEX IF NOT EXISTS items_due ON items (state, release_at);
"""

# The columns a version-1 seal covers, in order.
V1_COLUMNS = ("id", "kind", "state", "created_at", "release_at", "decision_id", "teacher_id", "class_id",
              "action_kind", "channel", "rule_ids", "reason", "attempts", "last_error", "dedupe_key", "request",
              "content", "approval", "seal")
# Added in version 2, in order: when the item's maximum age starts counting, the send in flight
# (when, and which proxy run), and the second dedupe key (what the post publishes).
V2_COLUMNS = ("waiting_since", "sending_at", "sender", "content_key")
COLUMNS = V1_COLUMNS[:-1] + V2_COLUMNS + ("seal",)

_V2 = """
DROP INDEX IF EXISTS items_dedupe;
CREATE INDEX IF NOT EXISTS items_dedupe ON items (dedupe_key);
CREATE INDEX IF NOT EXISTS items_content ON items (content_key);
CREATE INDEX IF NOT EXISTS items_teacher ON items (teacher_id, state);
-- The latest ClassDojo session seen for a teacher who has something waiting: a release uses it,
-- so an item kept before the teacher logged in again is sent with the new login.
CREATE TABLE IF NOT EXISTS sessions (
    teacher_id TEXT PRIMARY KEY,
    cookie TEXT NOT NULL,
    session TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    seal TEXT NOT NULL
);
-- What a teacher is to be told about their held or queued items (approved, rejected, failed...),
-- shown on their next ClassDojo write through the proxy and deleted once shown. Sealed like
-- the items: words typed in by hand are never shown as the school's.
CREATE TABLE IF NOT EXISTS notices (
    id TEXT PRIMARY KEY,
    teacher_id TEXT NOT NULL,
    hold_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    interrupts INTEGER NOT NULL,
    seal TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notices_teacher ON notices (teacher_id, created_at);
"""


class StoreVersionError(NewerSchemaError):
    """The hold store was written by a newer dojoguard."""


def migrate(db: Database, key: bytes, key_is_new: bool) -> None:
    """Bring the file to ``VERSION``, one transaction per step; ``key`` seals rows the steps change."""
    steps = [Migration(name, partial(step, key=key, key_is_new=key_is_new))
             for name, step in zip(STEPS, (_to_v1, _to_v2, _to_v3, _to_v4), strict=True)]
    try:
        migrations.migrate(db, steps, what="the hold store", adopt=migrations.from_schema_version(STEPS))
    except NewerSchemaError as exc:
        raise StoreVersionError(str(exc)) from exc
    _restore_columns(db)


def _restore_columns(db: Database) -> None:
    """Put back columns someone dropped from an up-to-date store, empty: the rows are then unsealed, never sent."""
    missing = [c for c in COLUMNS if c not in _columns(db)]
    if missing:
        with db.transaction():
            for column in missing:
                db.execute(f"ALTER TABLE items ADD COLUMN {column} TEXT")


def _columns(db: Database) -> set[str]:
    """The names of the items table's columns."""
    if db.dialect == "sqlite":
        return {row[1] for row in db.execute("PRAGMA table_info(items)")}
    # The schema tables are created in: the store's own (``search_path``), never another school's.
    return {row[0] for row in db.execute("SELECT column_name FROM information_schema.columns "
                                         "WHERE table_schema = current_schema() AND table_name = 'items'")}


def written_order(db: Database) -> str:
    """The column that numbers notices in the order they were written (step 4), for ``ORDER BY``."""
    return "rowid" if db.dialect == "sqlite" else "seq"


def _to_v1(db: Database, key: bytes, key_is_new: bool) -> None:
    """The first table, plus the approval and seal columns for a store made before rows were sealed.

    Rows already waiting are sealed as they are only when the key is new too,
    i.e. on the first start of a version that seals. Columns missing while the
    key already exists mean someone removed them: the rows stay unsealed, and
    so are never sent.
    """
    migrations.run_script(db, _V1)
    missing = [c for c in ("approval", "seal") if c not in _columns(db)]
    for column in missing:
        db.execute(f"ALTER TABLE items ADD COLUMN {column} TEXT")
    if missing and key_is_new:
        for row in db.execute(f"SELECT {', '.join(V1_COLUMNS)} FROM items").fetchall():
            doc = dict(zip(V1_COLUMNS, row, strict=True))
            db.execute("UPDATE items SET seal = ? WHERE id = ?", (seals.seal(key, doc), doc["id"]))


def _to_v2(db: Database, key: bytes, key_is_new: bool) -> None:
    """Columns for sends in flight and maximum age, the teacher tables, and a dedupe index that is not unique.

    The dedupe key stops being unique: a teacher may send again something
    whose first copy failed or expired, and that is a new item. A row whose
    version-1 seal matched is sealed again over the new columns; one whose
    seal did not match keeps it, and so still shows as changed by hand.
    """
    present = _columns(db)
    for column in V2_COLUMNS:
        if column not in present:
            db.execute(f"ALTER TABLE items ADD COLUMN {column} TEXT")
    migrations.run_script(db, _V2)
    for row in db.execute(f"SELECT {', '.join(V1_COLUMNS)} FROM items").fetchall():
        old = dict(zip(V1_COLUMNS, row, strict=True))
        since = old["release_at"] if old["kind"] == "defer" and old["release_at"] else old["created_at"]
        db.execute("UPDATE items SET waiting_since = ? WHERE id = ?", (since, old["id"]))
        if seals.matches(key, old):
            new = {**old, "waiting_since": since, "sending_at": None, "sender": None, "content_key": None}
            db.execute("UPDATE items SET seal = ? WHERE id = ?", (seals.seal(key, new), old["id"]))


_V3 = """
-- The photos and videos a held post names by an earlier upload (the post itself carries only the
-- upload's id), fetched from ClassDojo when the post was held so that a leader can see what they
-- decide on. For viewing only: a release sends the stored request, never these. Each is checked
-- against the SHA-256 the audit log recorded for the decision before it is shown.
CREATE TABLE IF NOT EXISTS previews (
    item_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    content_type TEXT,
    data BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (item_id, number)
);
"""


def _to_v3(db: Database, key: bytes, key_is_new: bool) -> None:
    """The previews of held posts' attachments (kept for viewing, deleted with their item)."""
    migrations.run_script(db, _V3)


def _to_v4(db: Database, key: bytes, key_is_new: bool) -> None:
    """Notices with the same time are shown in the order they were written: SQLite's ``rowid`` says it,
    PostgreSQL needs a column of its own. Nothing on SQLite. (Text compares byte by byte on PostgreSQL as in
    SQLite from the start: ``pg_ddl`` gives every text column the "C" collation.)
    """
    if db.dialect == "sqlite":
        return
    db.execute("ALTER TABLE notices ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY")
