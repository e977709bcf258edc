"""The flusher helper process: real pipes, a real audit database, a real fdatasync."""

from __future__ import annotations

import subprocess
import sys

from dojoguard.audit import flusher
from dojoguard.audit.log import AuditLog

from .conftest import make_action, make_decision


def start(database) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dojoguard.audit.flusher", str(database)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_flusher_answers_each_batch_with_the_highest_number_asked(tmp_path, clock):
    with AuditLog.open(tmp_path / "audit.sqlite", clock=clock, deferred_sync=True) as log:
        record = log.append_decision(make_action(), make_decision(), durable=False)
        proc = start(log.path)
        try:
            proc.stdin.write(flusher.request(record.seq - 1) + flusher.request(record.seq))
            proc.stdin.flush()
            (seq,) = flusher.ANSWER.unpack(proc.stdout.read(flusher.ANSWER.size))
            assert seq == record.seq  # one flush for the batch (or two answers, the last the highest)
        finally:
            proc.stdin.close()
            assert proc.wait(10) == 0  # the proxy closing the pipe stops it cleanly


def test_flusher_reports_a_failure_and_stops(tmp_path):
    proc = start(tmp_path / "missing.sqlite")
    proc.stdin.write(flusher.request(7))
    proc.stdin.flush()
    (seq,) = flusher.ANSWER.unpack(proc.stdout.read(flusher.ANSWER.size))
    assert seq == flusher.FAILED
    assert proc.wait(10) == 1
    assert b"audit flush failed" in proc.stderr.read()


def test_flusher_outlives_signals_meant_for_the_whole_service(tmp_path, clock):
    """SIGTERM (systemd stops the whole service) and SIGINT (Ctrl-C) leave the helper running until the
    proxy closes its pipe, so the proxy's last records can still be flushed."""
    import signal
    import time

    with AuditLog.open(tmp_path / "audit.sqlite", clock=clock, deferred_sync=True) as log:
        record = log.append_decision(make_action(), make_decision(), durable=False)
        proc = start(log.path)
        try:
            proc.stdin.write(flusher.request(1))  # one round trip: it is serving, so the signals are set
            proc.stdin.flush()
            assert flusher.ANSWER.unpack(proc.stdout.read(flusher.ANSWER.size))[0] == 1
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                proc.send_signal(sig)
            time.sleep(0.2)
            assert proc.poll() is None
            proc.stdin.write(flusher.request(record.seq))
            proc.stdin.flush()
            (seq,) = flusher.ANSWER.unpack(proc.stdout.read(flusher.ANSWER.size))
            assert seq == record.seq
        finally:
            proc.stdin.close()
            assert proc.wait(10) == 0
