"""SIGKILL in the middle of load: after a restart nothing acknowledged is lost and the proxy serves again quickly.

The real proxy runs in front of the stand-in at 18:00 on a Monday, with a
policy that defers out-of-hours messages, holds class story posts and
messages asking for review, and judges awards. Four clients write as fast as
they can; the proxy is killed with SIGKILL (no shutdown code runs), then
started again on the same data folder.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.clock import FileClock
from dojoguard.holds.store import HoldStore
from dojoguard.proxy.enforcement import DECISION_HEADER
from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess
from tests.proxy.conftest import MONDAY_18, POLICY, write_config

pytestmark = pytest.mark.slow

API = "https://teach.classdojo.com/api"
CRASH_POLICY_RULES = """
  - id: hold-stories
    when: {kind: story.post}
    verdict: hold
    notice: Class story posts are held for a senior leader to approve.
    clause: Monitoring of the policy will be conducted by Senior Leaders.
"""
# How long a restarted proxy may take to answer its first write.
SERVES_AGAIN_WITHIN_S = 15.0


@dataclass(frozen=True)
class Ack:
    """A decision the client was told about: its id, the answer's code, and what was sent."""

    decision_id: str
    status: int
    code: str | None
    path: str
    content: bytes


def crash_policy(folder) -> str:
    text = POLICY.read_text("utf-8")
    deferring = text.replace(
        "    verdict: block\n    notice: Messages can only be sent 8am to 5pm, Monday to Friday.",
        "    verdict: defer\n    release_window: school-hours\n"
        "    notice: Messages can only be sent 8am to 5pm, Monday to Friday.")
    assert deferring != text, "the proxy test policy no longer has the out-of-hours message rule"
    path = folder / "crash-policy.yaml"
    path.write_text(deferring + CRASH_POLICY_RULES, "utf-8")
    return str(path)


def acknowledged(response: httpx.Response, path: str, content: bytes) -> Ack | None:
    """The decision a client saw, from the X-Dojoguard-Decision header or the refusal body."""
    decision_id = response.headers.get(DECISION_HEADER)
    code = None
    if response.status_code == 403:
        error = response.json()["error"]
        decision_id, code = error["decisionId"], error["code"]
    return Ack(decision_id, response.status_code, code, path, content) if decision_id else None


def write_loop(proxy: ProxyProcess, worker: int, acks: list[Ack], stop: threading.Event) -> None:
    """One teacher's device writing until the proxy disappears (or it is told to stop)."""
    context = ssl.create_default_context(cafile=str(proxy.ca_cert))
    sends = [
        (f"/message-thread/{data.THREAD_ID}/message", lambda n: {"body": f"Reminder {worker}-{n}: PE kit tomorrow"}),
        (f"/message-thread/{data.THREAD_ID}/message", lambda n: {"body": f"Please hold for review {worker}-{n}"}),
        (f"/dojoClass/{data.CLASS_ID}/storyFeed", lambda n: {"body": f"Our week {worker}-{n}"}),
        (f"/dojoClass/{data.CLASS_ID}/awardBatch",
         lambda n: {"behaviorId": data.BEHAVIORS[0]["_id"], "studentIds": [data.PUPILS[0]["_id"]], "points": 1}),
    ]
    with httpx.Client(proxy=proxy.url, verify=context, timeout=10) as client:
        n = 0
        while not stop.is_set():
            path, doc = sends[n % len(sends)]
            content = json.dumps(doc(n)).encode()
            try:
                response = client.post(API + path, content=content, headers={"content-type": "application/json"})
            except httpx.HTTPError:
                return  # the proxy was killed: whatever was in flight was never acknowledged
            ack = acknowledged(response, path, content)
            if ack is not None:
                acks.append(ack)
            n += 1


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """Load, SIGKILL, restart: everything the assertions need."""
    tmp_path = tmp_path_factory.mktemp("crash")
    cfg = write_config(tmp_path)
    doc = json.loads(cfg.read_text())
    doc["rules"] = {"policy": crash_policy(tmp_path), "reload": False}
    cfg.write_text(json.dumps(doc))
    clock = tmp_path / "clock"
    FileClock.write(clock, MONDAY_18)
    with StandIn(tmp_path / "standin") as standin:
        first = ProxyProcess(cfg, tmp_path, standin.port, standin.ca_cert, clock_file=clock).start()
        acks: list[Ack] = []
        stop = threading.Event()
        workers = [threading.Thread(target=write_loop, args=(first, w, acks, stop)) for w in range(4)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while len(acks) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        stop.set()
        for w in workers:
            w.join(30)
        killed_after = list(acks)

        restarted_at = time.monotonic()
        second = ProxyProcess(cfg, tmp_path, standin.port, standin.ca_cert, clock_file=clock).start()
        try:
            context = ssl.create_default_context(cafile=str(second.ca_cert))
            with httpx.Client(proxy=second.url, verify=context, timeout=10) as client:
                after = client.post(f"{API}/dojoClass/{data.CLASS_ID}/awardBatch",
                                    json={"behaviorId": data.BEHAVIORS[0]["_id"],
                                          "studentIds": [data.PUPILS[0]["_id"]], "points": 1})
            serving_s = time.monotonic() - restarted_at
        finally:
            second.stop()
    return {"folder": tmp_path, "config": cfg, "acks": killed_after, "after": after, "serving_s": serving_s,
            "first": first}


def test_the_load_was_killed_mid_flight(crashed):
    """The proxy really died of SIGKILL while answering a mix of allowed, deferred and held writes."""
    assert crashed["first"].process.returncode == -signal.SIGKILL
    codes = {a.code for a in crashed["acks"]}
    assert {"DOJOGUARD_DEFERRED", "DOJOGUARD_HELD", None} <= codes


def test_the_audit_log_verifies_after_the_restart(crashed):
    """`dojoguard audit verify` passes on the log the killed proxy was writing."""
    result = CliRunner().invoke(cli, ["--config", str(crashed["config"]), "audit", "verify"])
    assert result.exit_code == 0, result.output


def test_no_acknowledged_decision_is_missing(crashed):
    """Every decision id a client was given (header or refusal body) is in the audit log."""
    import sqlite3

    db = sqlite3.connect(crashed["folder"] / "data" / "audit.sqlite")
    try:
        recorded = {i for (i,) in db.execute("SELECT id FROM records WHERE type = 'decision'")}
    finally:
        db.close()
    given = {a.decision_id for a in crashed["acks"]}
    assert len(given) >= 60
    assert given - recorded == set()


def test_held_and_deferred_items_are_intact(crashed):
    """Each acknowledged hold and deferral is in the hold store, pending, with the exact bytes the device sent."""
    store = HoldStore.open(crashed["folder"] / "data" / "holds.sqlite")
    try:
        by_decision = {item.decision_id: item for item in store.list()}
        kept = [a for a in crashed["acks"] if a.code in ("DOJOGUARD_HELD", "DOJOGUARD_DEFERRED")]
        assert kept
        for ack in kept:
            item = by_decision[ack.decision_id]
            assert str(item.kind) == ("hold" if ack.code == "DOJOGUARD_HELD" else "defer")
            assert store.request(item.id).content == ack.content
            assert str(item.state) == "pending"
    finally:
        store.close()


def test_the_restarted_proxy_serves_again_within_seconds(crashed):
    """The restarted proxy answers a write within a few seconds of being started again."""
    assert crashed["after"].status_code == 200, crashed["after"].text
    assert crashed["serving_s"] < SERVES_AGAIN_WITHIN_S, f"{crashed['serving_s']:.1f}s"
    print(f"serving again {crashed['serving_s']:.2f}s after the restart began")


def test_stopping_the_whole_service_still_records_the_stop(tmp_path):
    """systemd stops a service by sending SIGTERM to every process in it: the flusher helper waits for
    the proxy, so the proxy's shutdown records (checkpoint, proxy.stopped) are still written and flushed."""
    import sqlite3
    from pathlib import Path

    cfg = write_config(tmp_path)
    clock = tmp_path / "clock"
    FileClock.write(clock, MONDAY_18)
    with StandIn(tmp_path / "standin") as standin:
        proxy = ProxyProcess(cfg, tmp_path, standin.port, standin.ca_cert, clock_file=clock).start()
        pid = proxy.process.pid
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        helpers = [c for c in children if b"dojoguard.audit.flusher" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(helpers) == 1
        for process in [pid, *children]:
            try:
                os.kill(process, signal.SIGTERM)
            except ProcessLookupError:
                pass
        assert proxy.process.wait(30) == 0
        output = "".join(proxy.output)
    assert "audit.sync_failed" not in output and "event_failed" not in output, output
    db = sqlite3.connect(tmp_path / "data" / "audit.sqlite")
    try:
        last = db.execute("SELECT type FROM records ORDER BY seq DESC LIMIT 1").fetchone()[0]
    finally:
        db.close()
    assert last == "proxy.stopped"
