"""Stopping and crashing, visibly: a stop finishes the writes in flight, a crash is recorded at the next start.

Each test runs the real proxy (``dojoguard run``) in front of the stand-in.
A SIGTERM (or Ctrl-C) closes the listener, lets the ClassDojo writes already
in flight be judged, forwarded and answered for up to ``proxy.drain_s``
seconds, then stops as before, recording in ``proxy.stopped`` how many
writes finished and how many had to be cut. A proxy killed without a stop
leaves a ``proxy.started`` with no ``proxy.stopped`` after it: the next start
records ``proxy.recovered`` and signs a checkpoint over the killed run at once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.cli import cli
from dojoguard.clock import FileClock
from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess
from tests.proxy.conftest import MONDAY_10, signed_in, write_config

pytestmark = pytest.mark.slow

API = "https://teach.classdojo.com/api"
AWARD = f"/dojoClass/{data.CLASS_ID}/awardBatch"
# Seconds the stand-in takes to answer an award in the drain tests: long enough for the
# SIGTERM to arrive while every write is in flight.
SLOW_S = 1.5


def records(folder: Path, *types: str) -> list[dict]:
    """Every audit record (seq, id, type, at and body), or those of ``types``, in order."""
    db = sqlite3.connect(folder / "data" / "audit.sqlite")
    try:
        rows = db.execute("SELECT seq, id, type, at, body FROM records ORDER BY seq").fetchall()
    finally:
        db.close()
    found = [{"seq": s, "id": i, "type": t, "at": a, "body": json.loads(b)} for s, i, t, a, b in rows]
    return [r for r in found if not types or r["type"] in types]


def config_for(folder: Path, **proxy) -> Path:
    cfg = write_config(folder, **proxy)
    FileClock.write(folder / "clock", MONDAY_10)
    return cfg


def start(cfg: Path, folder: Path, standin: StandIn) -> ProxyProcess:
    return ProxyProcess(cfg, folder, standin.port, standin.ca_cert, clock_file=folder / "clock").start()


def award(client: httpx.Client, n: int) -> httpx.Response:
    return client.post(API + AWARD, json={"behaviorId": data.BEHAVIORS[0]["_id"],
                                          "studentIds": [data.PUPILS[n % len(data.PUPILS)]["_id"]], "points": 1})


def verify(cfg: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(cfg), "audit", "verify"])
    assert result.exit_code == 0, result.output


def kill(proxy: ProxyProcess) -> None:
    proxy.process.send_signal(signal.SIGKILL)
    proxy.process.wait(10)


# -- a crash, then a start ------------------------------------------------------


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    """Writes, SIGKILL, restart: the records and checkpoint files as they are right after the restart."""
    folder = tmp_path_factory.mktemp("recovered")
    cfg = config_for(folder)
    with StandIn(folder / "standin") as standin:
        first = start(cfg, folder, standin)
        with signed_in(first) as client:
            for n in range(3):
                assert award(client, n).status_code == 200
        before = records(folder)
        kill(first)
        second = start(cfg, folder, standin)
        try:
            after = records(folder)
            files = [checkpoints.read(p) for p in checkpoints.files(folder / "data" / "checkpoints")]
        finally:
            second.stop()
    return {"folder": folder, "config": cfg, "before": before, "after": after, "files": files,
            "output": second.log()}


def test_a_start_after_a_crash_records_proxy_recovered_naming_the_last_record(recovered):
    """The record names the killed run's last record and its proxy.started, and comes before the new start."""
    last, started = recovered["before"][-1], [r for r in recovered["before"] if r["type"] == "proxy.started"][-1]
    new = recovered["after"][len(recovered["before"]):]
    assert [r["type"] for r in new[:2]] == ["proxy.recovered", "proxy.started"], new
    body = new[0]["body"]
    assert (body["last_seq"], body["last_id"], body["last_type"], body["last_at"]) == \
        (last["seq"], last["id"], last["type"], last["at"])
    assert (body["started_seq"], body["started_at"]) == (started["seq"], started["at"])
    assert body["records"] == last["seq"] - started["seq"] + 1
    assert last["type"] == "decision"
    assert '"event": "proxy.recovered"' in recovered["output"] or "proxy.recovered" in recovered["output"]


def test_a_checkpoint_covering_the_killed_run_exists_as_soon_as_the_proxy_listens(recovered):
    """Before any clean stop, a signed checkpoint covers the killed run's last record (and the recovery)."""
    recovery = [r for r in recovered["after"] if r["type"] == "proxy.recovered"][0]
    assert recovered["files"], "no checkpoint file was written at the restart"
    assert max(c.seq for c in recovered["files"]) >= recovery["seq"] > recovered["before"][-1]["seq"]
    written = [r for r in recovered["after"] if r["type"] == "checkpoint.written" and r["seq"] > recovery["seq"]]
    assert written and written[0]["body"]["seq"] >= recovery["seq"]


def test_the_log_verifies_after_the_recovery(recovered):
    """`dojoguard audit verify` passes on the log with the killed run, its recovery and the clean stop."""
    verify(recovered["config"])


def test_a_clean_stop_then_a_start_records_no_recovery(tmp_path):
    """proxy.stopped closes the run: the next start records proxy.started alone. A new log records none either."""
    cfg = config_for(tmp_path)
    with StandIn(tmp_path / "standin") as standin:
        first = start(cfg, tmp_path, standin)
        with signed_in(first) as client:
            assert award(client, 0).status_code == 200
        assert first.stop() == 0
        second = start(cfg, tmp_path, standin)
        assert second.stop() == 0
    assert records(tmp_path, "proxy.recovered") == []
    assert [r["type"] for r in records(tmp_path, "proxy.started", "proxy.stopped")] == \
        ["proxy.started", "proxy.stopped", "proxy.started", "proxy.stopped"]


def test_a_crash_before_the_first_record_of_a_run_is_still_noticed(tmp_path):
    """Walking around: a run killed right after its proxy.started (nothing else written) is still an unclean stop,
    and a second crash straight after a recovery is recorded again (the last lifecycle record is proxy.recovered)."""
    cfg = config_for(tmp_path)
    with StandIn(tmp_path / "standin") as standin:
        kill(start(cfg, tmp_path, standin))
        kill(start(cfg, tmp_path, standin))
        third = start(cfg, tmp_path, standin)
        assert third.stop() == 0
    recoveries = records(tmp_path, "proxy.recovered")
    starts = records(tmp_path, "proxy.started")
    assert len(recoveries) == 2 and len(starts) == 3
    assert [r["body"]["started_seq"] for r in recoveries] == [starts[0]["seq"], starts[1]["seq"]]
    verify(cfg)


# -- a stop while writes are in flight -----------------------------------------------


def send_in_flight(proxy: ProxyProcess, count: int) -> tuple[list, list[threading.Thread]]:
    """``count`` devices each send one award (the stand-in is slow to answer); returns (results, threads)."""
    results: list = [None] * count

    def one(n: int) -> None:
        try:
            with signed_in(proxy) as client:
                results[n] = award(client, n)
        except Exception as exc:  # noqa: BLE001 - what the device saw is the result
            results[n] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    return results, threads


def wait_for_writes(standin: StandIn, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(1 for w in standin.writes() if AWARD in w.path) < count:
        assert time.monotonic() < deadline, "the writes did not reach the stand-in"
        time.sleep(0.02)


def connection_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_lets_the_writes_in_flight_finish(tmp_path):
    """Five writes in flight at SIGTERM are each answered (200, with their decision), reach ClassDojo once,
    and proxy.stopped says five drained, none cut; no request is cancelled; new connections are refused."""
    cfg = config_for(tmp_path, drain_s=10)
    with StandIn(tmp_path / "standin") as standin:
        proxy = start(cfg, tmp_path, standin)
        standin.slow_replies(SLOW_S, "awardBatch")
        results, threads = send_in_flight(proxy, 5)
        wait_for_writes(standin, 5)
        sent_at = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused_while_draining = connection_refused(proxy.port)
        for t in threads:
            t.join(30)
        assert proxy.process.wait(30) == 0
        stopped_after = time.monotonic() - sent_at
        writes = [w for w in standin.writes() if AWARD in w.path]
    output = proxy.log()
    assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in results), results
    assert all(r.headers.get("x-dojoguard-decision") for r in results)
    assert len(writes) == 5
    assert "CancelledError" not in output and "Traceback" not in output, output
    assert refused_while_draining, "the proxy accepted a connection after SIGTERM"
    stopped = records(tmp_path, "proxy.stopped")[-1]["body"]
    assert (stopped["drained"], stopped["cut"]) == (5, 0), stopped
    assert stopped_after < SLOW_S + 8, f"{stopped_after:.1f}s"
    print(f"SIGTERM with 5 writes in flight (replies after {SLOW_S:.1f} s): stopped after {stopped_after:.2f} s")
    assert records(tmp_path)[-1]["type"] == "proxy.stopped"
    verify(cfg)


def test_a_reply_slower_than_drain_s_is_cut_and_counted(tmp_path):
    """Walking around: a write ClassDojo never answers cannot hold the stop up. The proxy stops about drain_s
    after SIGTERM, records the write it cut, and the cut write's device sees its connection end."""
    cfg = config_for(tmp_path, drain_s=2)
    with StandIn(tmp_path / "standin") as standin:
        proxy = start(cfg, tmp_path, standin)
        standin.slow_replies(30, "awardBatch")
        results, threads = send_in_flight(proxy, 2)
        wait_for_writes(standin, 2)
        sent_at = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)
        assert proxy.process.wait(30) == 0
        stopped_after = time.monotonic() - sent_at
        for t in threads:
            t.join(30)
        standin.slow_replies(0)
    output = proxy.log()
    assert 2 <= stopped_after < 2 + 6, f"{stopped_after:.1f}s"
    print(f"SIGTERM with 2 writes never answered (drain_s 2): stopped after {stopped_after:.2f} s")
    assert all(not isinstance(r, httpx.Response) for r in results), results
    stopped = records(tmp_path, "proxy.stopped")[-1]["body"]
    assert (stopped["drained"], stopped["cut"]) == (0, 2), stopped
    assert "proxy.cut" in output or '"cut": 2' in output
    assert "CancelledError" not in output, output
    verify(cfg)


def test_a_request_after_sigterm_on_an_open_connection_is_refused(tmp_path):
    """Walking around the closed listener: a device whose kept-alive connection is still open gets a 503 for a
    new write during the drain (never forwarded), while the write that was already in flight is answered."""
    cfg = config_for(tmp_path, drain_s=10)
    with StandIn(tmp_path / "standin") as standin:
        proxy = start(cfg, tmp_path, standin)
        context = ssl.create_default_context(cafile=str(proxy.ca_cert))
        with signed_in(proxy) as idle:
            assert award(idle, 0).status_code == 200  # the connection is open and kept alive
            standin.clear()
            standin.slow_replies(SLOW_S, "awardBatch")
            results, threads = send_in_flight(proxy, 1)
            wait_for_writes(standin, 1)
            proxy.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            late = award(idle, 1)
            for t in threads:
                t.join(30)
        assert proxy.process.wait(30) == 0
        writes = [w for w in standin.writes() if AWARD in w.path]
    del context
    assert late.status_code == 503, late.text
    assert late.headers.get("connection", "").lower() == "close"
    assert len(writes) == 1
    assert isinstance(results[0], httpx.Response) and results[0].status_code == 200
    stopped = records(tmp_path, "proxy.stopped")[-1]["body"]
    assert (stopped["drained"], stopped["cut"], stopped["refused"]) == (1, 0, 1), stopped


def test_sigterm_to_the_whole_service_while_writes_are_in_flight(tmp_path):
    """As systemd stops a service (SIGTERM to every process of it): the flusher helper stays up through the drain,
    so the writes in flight are answered and their records flushed, and proxy.stopped is the last record."""
    cfg = config_for(tmp_path, drain_s=10)
    with StandIn(tmp_path / "standin") as standin:
        proxy = start(cfg, tmp_path, standin)
        standin.slow_replies(SLOW_S, "awardBatch")
        results, threads = send_in_flight(proxy, 3)
        wait_for_writes(standin, 3)
        pid = proxy.process.pid
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        for process in [pid, *children]:
            try:
                os.kill(process, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for t in threads:
            t.join(30)
        assert proxy.process.wait(30) == 0
    output = proxy.log()
    assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in results), results
    assert "audit.sync_failed" not in output and "event_failed" not in output, output
    last = records(tmp_path)[-1]
    assert last["type"] == "proxy.stopped" and last["body"]["drained"] == 3


def test_a_second_signal_cuts_the_drain_short(tmp_path):
    """Ctrl-C twice (or a second SIGTERM) does not wait out drain_s: the first starts the drain, the second cuts
    what is left at once, and the cut is still recorded. Ctrl-C (SIGINT) drains as SIGTERM does."""
    cfg = config_for(tmp_path, drain_s=60)
    with StandIn(tmp_path / "standin") as standin:
        proxy = start(cfg, tmp_path, standin)
        standin.slow_replies(30, "awardBatch")
        results, threads = send_in_flight(proxy, 2)
        wait_for_writes(standin, 2)
        sent_at = time.monotonic()
        proxy.process.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert proxy.process.poll() is None, "the first Ctrl-C did not wait for the writes in flight"
        proxy.process.send_signal(signal.SIGINT)
        assert proxy.process.wait(30) == 0
        stopped_after = time.monotonic() - sent_at
        for t in threads:
            t.join(30)
        standin.slow_replies(0)
    assert stopped_after < 8, f"{stopped_after:.1f}s"
    stopped = records(tmp_path, "proxy.stopped")[-1]["body"]
    assert (stopped["drained"], stopped["cut"], stopped["signal"]) == (0, 2, "SIGINT"), stopped
    assert "proxy.stop_hurried" in proxy.log()


# -- the check itself, on a real audit log ------------------------------------------------


@pytest.fixture
def log(tmp_path):
    from dojoguard.audit.log import AuditLog
    from dojoguard.clock import FixedClock

    opened = AuditLog.open(tmp_path / "audit.sqlite", clock=FixedClock(MONDAY_10), emit_decisions=False)
    yield opened
    opened.close()


def test_unclean_stop_reads_only_the_lifecycle_records(log):
    """A new log, a clean stop: nothing to recover. A start with no stop after it, or a recovery with no start
    after it (killed while starting again): the run that began at the last proxy.started was not stopped."""
    from dojoguard.proxy.lifecycle import unclean_stop

    assert unclean_stop(log) is None  # only audit.created
    started = log.append_event("proxy.started", {"policy_revision": "a", "mode": "regular"})
    for n in range(5):
        log.append_event("consent.imported", {"source": "mis", "pupils": n, "changed": 0})
    last = log.append_event("write.unclassified", {"method": "POST", "host": "h", "path": "/p", "verdict": "allow"})
    found = unclean_stop(log)
    assert found is not None
    assert (found["last_seq"], found["last_id"], found["last_type"]) == (last.seq, last.record_id, last.type)
    assert (found["started_seq"], found["records"], found["uncovered"]) == (started.seq, 7, last.seq)
    log.append_event("proxy.recovered", found)
    again = unclean_stop(log)
    assert again is not None and again["started_seq"] == started.seq
    log.append_event("proxy.started", {"policy_revision": "a", "mode": "regular"})
    log.append_event("proxy.stopped", {"reason": "shutdown"})
    assert unclean_stop(log) is None
    log.append_event("consent.imported", {"source": "mis", "pupils": 1, "changed": 0})
    assert unclean_stop(log) is None  # a command run while the proxy was stopped is not a crash
