"""Tests for the audit log's write path: privacy, durability, concurrency and failure."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dojoguard.audit.chain import verify_chain
from dojoguard.audit.log import AuditLog, AuditWriteError
from dojoguard.audit.privacy import ContentRefused
from dojoguard.audit.events import UnknownEvent
from dojoguard.rules.decision import Verdict

from .conftest import make_action, make_decision, photo_action

WRITER = Path(__file__).with_name("audit_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def run_writer(*args, user=None, timeout=60):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(WRITER), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, user=user)


def stored_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_open_creates_owner_only_folder_and_file_in_wal_mode(tmp_path, clock):
    """A new log gets a 0700 folder, a 0600 file, WAL journaling and synchronous=FULL, and a first record."""
    path = tmp_path / "new" / "deeper" / "audit.sqlite"
    with AuditLog.open(path, clock=clock) as log:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert log.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert log.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        head = log.head()
        assert head.seq == 1 and head.type == "audit.created" and head.fields["log_id"] == log.log_id


def test_decision_record_holds_ids_hashes_and_counts(log):
    """The decision record carries what DESIGN.md lists: ids, revision, rules, verdict, reason, hashes, counts."""
    action = photo_action()
    decision = make_decision(Verdict.BLOCK, rule="photo-consent", reason="2 faces without consent",
                             exemptions_used=("ex-1",))
    record = log.append_decision(action, decision)
    f = log.get(decision.decision_id).fields
    assert record.fields == f
    assert f["verdict"] == "block" and f["rules"] == ["photo-consent"]
    assert f["reason"] == "2 faces without consent"
    assert f["teacher"] == "t-100" and f["class"] == "c-6B" and f["device"] == "10.20.0.15"
    assert f["kind"] == "story.post" and f["channel"] == "class_story"
    assert f["policy_revision"] == "f" * 16 and f["exemptions_used"] == ["ex-1"]
    assert f["hashes"]["attachment_sha256"] == ["ab" * 32]
    assert len(f["hashes"]["text_hmac"]) == 64 and f["hashes"]["text_key"].startswith("fk-")
    assert f["counts"] == {"attachments": 1, "text_chars": 11, "faces_found": 3, "faces_matched": 1,
                           "faces_not_permitted": 2, "faces_unidentified": 0, "people_unverified": 0,
                           "video_frames_checked": 0, "gps_present": 1,
                           "not_checked": 0, "unreadable": 0}
    assert set(f["masked"]) == {"text", "teacher_name", "pupils", "attachments"}
    assert all(p.startswith("p-") for p in f["pupils"]) and len(f["pupils"]) == 2


def test_no_text_names_or_pupil_ids_reach_the_database_file(log):
    """Message text, the teacher's name and raw pupil ids appear nowhere in the stored bytes."""
    log.append_decision(make_action(students=("pupil-zz-91",)), make_decision())
    log.append_event("consent.changed", {"pupil": "pupil-zz-92", "purpose": "class_story",
                                         "from": "given", "to": "refused"})
    log.close()
    raw = stored_bytes(log.path)
    assert b"inhaler" not in raw
    assert b"Hartley" not in raw
    # Pupil ids are kept only as the key table's row ids, never inside a sealed record.
    reopened = AuditLog.open(log.path)
    bodies = " ".join(r[4] for r in reopened.rows())
    assert "pupil-zz-91" not in bodies and "pupil-zz-92" not in bodies
    reopened.close()


@pytest.mark.parametrize("fields, complaint", [
    ({"text": "hello"}, "content-bearing"),
    ({"teacher_name": "Mrs Hartley"}, "content-bearing"),
    ({"details": {"message_body": "x"}}, "content-bearing"),
    ({"items": [{"image": "..."}]}, "content-bearing"),
    ({"reason": "x" * 5000}, "characters refused"),
    ({"source": b"bytes"}, "cannot be recorded"),
])
def test_content_bearing_event_fields_are_refused(log, fields, complaint):
    """An event field that is content, a name, too long or not plain data is refused and nothing is written."""
    before = log.count()
    with pytest.raises(ContentRefused, match=complaint):
        log.append_event("policy.reloaded", fields)
    assert log.count() == before


def test_unknown_event_names_are_refused(log):
    """Only catalogued events can be written."""
    with pytest.raises(UnknownEvent, match="policy.reloded"):
        log.append_event("policy.reloded", {})


def test_records_chain_across_reopening(log, tmp_path, clock):
    """A reopened log continues the same chain, and the whole chain verifies."""
    log.append_decision(make_action(), make_decision())
    log.close()
    with AuditLog.open(log.path, clock=clock, emit_decisions=False) as again:
        record = again.append_decision(make_action(), make_decision())
        assert record.seq == 3
        result = verify_chain(again.connection)
        assert result.is_intact and result.records == 3


def test_concurrent_appends_from_threads_form_one_chain(log):
    """Appends from several threads at once give contiguous sequence numbers and a valid chain."""
    errors = []

    def worker(n):
        try:
            for _ in range(100):
                log.append_decision(make_action(), make_decision(Verdict.WARN))
        except Exception as exc:  # noqa: BLE001 - reported below  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = verify_chain(log.connection)
    assert result.is_intact and result.records == 401 and result.last_seq == 401


def test_same_decision_twice_is_refused(log):
    """A decision id is recorded once; a second append raises AuditWriteError and leaves the chain intact."""
    decision = make_decision()
    log.append_decision(make_action(), decision)
    with pytest.raises(AuditWriteError):
        log.append_decision(make_action(), decision)
    assert verify_chain(log.connection).is_intact


def test_locked_database_raises_and_acknowledges_nothing(tmp_path, clock):
    """While another connection holds the write lock, an append fails with AuditWriteError; later ones succeed."""
    path = tmp_path / "audit.sqlite"
    log = AuditLog.open(path, clock=clock, busy_timeout_s=0.2, emit_decisions=False)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    decision = make_decision()
    with pytest.raises(AuditWriteError, match="locked"):
        log.append_decision(make_action(), decision)
    other.execute("ROLLBACK")
    other.close()
    assert log.get(decision.decision_id) is None
    log.append_decision(make_action(), make_decision())
    assert verify_chain(log.connection).records == 2
    log.close()


def _make_read_only(paths):
    """Make ``paths`` unwritable even for root (immutable attribute) or, for other users, by mode."""
    if os.geteuid() != 0:
        for p in paths:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        return lambda: [os.chmod(p, 0o755 if p.is_dir() else 0o644) for p in paths]
    try:
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"running as root and cannot set the immutable attribute here ({exc}): "
                    "no way to make a file read-only for root")
    return lambda: subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def test_read_only_log_cannot_be_opened_for_writing(tmp_path, clock):
    """A log on a read-only file and folder raises AuditWriteError rather than pretending to record."""
    folder = tmp_path / "ro"
    path = folder / "audit.sqlite"
    AuditLog.open(path, clock=clock).close()
    undo = _make_read_only([path, folder])
    try:
        with pytest.raises(AuditWriteError) as caught:
            log = AuditLog.open(path, clock=clock, emit_decisions=False)
            log.append_decision(make_action(), make_decision())
    finally:
        undo()
    message = str(caught.value).lower()
    assert "read-only" in message or "unable to open" in message, message


def test_full_disk_raises_and_keeps_every_acknowledged_record(tmp_path, clock):
    """When the file cannot grow (EFBIG under RLIMIT_FSIZE), appends fail closed and the chain stays valid."""
    path = tmp_path / "audit.sqlite"
    with AuditLog.open(path, clock=clock, emit_decisions=False) as log:
        for _ in range(5):
            log.append_decision(make_action(), make_decision())
    limit = path.stat().st_size + 64 * 1024
    result = run_writer("once", path, limit)
    words = result.stdout.split()
    assert words[:2] == ["error", "AuditWriteError"], result.stdout + result.stderr
    acked = int(words[2])
    assert "full" in result.stdout.lower() or "disk" in result.stdout.lower()
    with AuditLog.open(path, clock=clock, emit_decisions=False) as log:
        chain = verify_chain(log.connection)
        assert chain.is_intact
        assert chain.records == 6 + acked


def test_erasing_a_pupil_unlinks_their_pseudonym_and_keeps_the_chain(log):
    """After pupil.erased the pupil's key is gone, their pseudonym cannot be recomputed, and verify passes."""
    record = log.append_decision(make_action(students=("s-erase-me", "s-keep")), make_decision())
    pseudonym = record.fields["pupils"][0]
    assert log.pupil_lookup(["s-erase-me"]) == {pseudonym: "s-erase-me"}
    erased = log.append_event("pupil.erased", {"pupil": "s-erase-me", "templates_removed": 2})
    assert erased.fields["pupil"] == pseudonym
    assert log.pupil_lookup(["s-erase-me"]) == {}
    assert len(log.pupil_lookup(["s-keep"])) == 1
    later = log.append_decision(make_action(students=("s-erase-me",)), make_decision())
    assert later.fields["pupils"] != [pseudonym]  # a returning id gets a fresh, unrelated pseudonym
    assert verify_chain(log.connection).is_intact


def test_a_long_read_does_not_hold_up_appends(tmp_path, clock):
    """While a report or verification reads a snapshot, appends still go through at once."""
    log = AuditLog.open(tmp_path / "audit.sqlite", clock=clock, busy_timeout_s=0.1, emit_decisions=False)
    log.append_decision(make_action(), make_decision())
    with log.snapshot() as conn:
        assert len(log.rows(conn=conn)) == 2
        log.append_decision(make_action(), make_decision())
        assert len(log.rows(conn=conn)) == 2  # the snapshot keeps its consistent view
    assert log.count() == 3
    log.close()


def test_erasing_a_member_of_staff_is_recorded_without_a_pupil_key(log):
    """pupil.erased for a member of staff (by staff id) is recorded; no pupil's key is touched."""
    log.append_decision(make_action(students=("s-keep",)), make_decision())
    record = log.append_event("pupil.erased", {"staff": "staff-7", "templates_removed": 1})
    assert record.fields == {"staff": "staff-7", "templates_removed": 1}
    assert len(log.pupil_lookup(["s-keep"])) == 1


def test_erasing_a_pupil_never_seen_before_leaves_no_key(log):
    """Erasing a pupil the log had not met keeps no key for them, in the database or in memory."""
    erased = log.append_event("pupil.erased", {"pupil": "s-new", "templates_removed": 0})
    assert log.pupil_lookup(["s-new"]) == {}
    later = log.append_decision(make_action(students=("s-new",)), make_decision())
    assert later.fields["pupils"] != [erased.fields["pupil"]]


# -- deferred sync (the proxy's mode) -------------------------------------------

@pytest.fixture
def deferred(tmp_path, clock):
    opened = AuditLog.open(tmp_path / "data" / "audit.sqlite", clock=clock, emit_decisions=False,
                           deferred_sync=True)
    yield opened
    opened.close()


@pytest.fixture
def flushes(monkeypatch):
    """Counts the real fdatasync calls the log makes (they still run)."""
    calls = []
    real = os.fdatasync

    def counting(fd):
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return calls


def test_deferred_log_commits_without_flushing_and_sync_flushes_once(deferred, flushes):
    """A record written with durable=False is committed (another connection sees it) before any flush;
    one sync covers every record committed before it, and syncing again costs nothing."""
    assert deferred.connection.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: commit, no flush
    records = [deferred.append_decision(make_action(), make_decision(), durable=False) for _ in range(3)]
    assert flushes == []
    other = sqlite3.connect(deferred.path)
    try:
        seen = {i for (i,) in other.execute("SELECT id FROM records WHERE type = 'decision'")}
    finally:
        other.close()
    assert seen == {r.record_id for r in records}
    deferred.sync(records[0].seq)
    assert len(flushes) == 1
    deferred.sync(records[-1].seq)  # already covered by the first flush
    assert len(flushes) == 1
    assert os.path.samefile(f"/proc/self/fd/{flushes[0]}", f"{deferred.path}-wal")


def test_deferred_log_still_flushes_durable_writes_before_returning(deferred, flushes):
    """Events and decisions written the ordinary way are on disk when append_* returns, as in FULL mode."""
    deferred.append_event("proxy.started", {"policy_revision": "abc", "mode": "regular"})
    assert len(flushes) == 1
    deferred.append_decision(make_action(), make_decision())
    assert len(flushes) == 2


def test_failed_flush_refuses_every_later_record(deferred, monkeypatch, tmp_path, clock):
    """A flush that fails (a failing disk) is reported, and the log then refuses all records: the proxy
    blocks every write rather than carry on with a log whose last records may be lost."""
    record = deferred.append_decision(make_action(), make_decision(), durable=False)

    def failing(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(AuditWriteError, match="could not be flushed"):
        deferred.sync(record.seq)
    monkeypatch.undo()
    assert deferred.sync_failure
    with pytest.raises(AuditWriteError, match="could not be flushed"):
        deferred.append_decision(make_action(), make_decision(), durable=False)
    with pytest.raises(AuditWriteError):
        deferred.sync(record.seq)  # never retried: the kernel may have dropped the pages
    deferred.close()
    with AuditLog.open(deferred.path, clock=clock, deferred_sync=True) as reopened:
        assert reopened.sync_failure is None
        assert reopened.get(record.record_id) is not None
        assert verify_chain(reopened.connection).is_intact


def test_try_append_never_waits_for_a_lock(deferred, tmp_path):
    """From an event loop the commit is tried without waiting: while another thread holds the log, or
    another process holds SQLite's write lock, it returns None (the caller appends from a thread)."""
    held = threading.Event()
    release = threading.Event()

    def hold():
        with deferred.lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        assert deferred.try_append_decision(make_action(), make_decision()) is None
    finally:
        release.set()
        holder.join()
    other = sqlite3.connect(deferred.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        assert deferred.try_append_decision(make_action(), make_decision()) is None
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert deferred.connection.execute("PRAGMA busy_timeout").fetchone()[0] == 5000  # restored
    record = deferred.try_append_decision(make_action(), make_decision())
    assert record is not None and deferred.get(record.record_id) is not None
    assert deferred.committed_seq == record.seq


def test_deferred_log_checkpoints_after_its_flushes(deferred, monkeypatch):
    """SQLite's automatic checkpoint (which flushes inside a commit) is off; the log checkpoints itself
    after a flush once enough has been committed, so the write-ahead log stays small."""
    import dojoguard.audit.log as log_module

    assert deferred.connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    monkeypatch.setattr(log_module, "CHECKPOINT_EVERY_COMMITS", 5)
    for _ in range(5):
        last = deferred.append_decision(make_action(), make_decision(), durable=False)
    assert deferred.wants_checkpoint
    deferred.sync(last.seq)
    assert not deferred.wants_checkpoint
    busy, wal_frames, copied = deferred.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and copied == wal_frames  # nothing was left to copy
