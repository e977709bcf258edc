"""Frequent published checkpoints through the real proxy: a hundred judged writes are signed and published in seconds.

A real ``dojoguard run`` process in front of the HTTPS stand-in for
ClassDojo, a real HTTP client, and the real ``audit verify`` command reading
the published folder; the attacker opens the SQLite file directly.
"""

from __future__ import annotations

import json
import ssl
import time

import httpx
import pytest

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.clock import FileClock
from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess
from tests.proxy.conftest import MONDAY_10, write_config

from . import attacker
from .conftest import invoke

pytestmark = pytest.mark.slow

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
WRITES = 120


def test_a_hundred_judged_writes_are_checkpointed_and_published_at_once(tmp_path):
    """120 messages through the proxy give a published, signed checkpoint within seconds; a rewrite under it is caught."""
    share = tmp_path / "governors"
    share.mkdir()
    config = write_config(tmp_path)
    doc = json.loads(config.read_text())
    # A minute's timer would also do it; a day's shows the hundred records alone set it off.
    doc["audit"] = {"checkpoint_publish_dir": str(share), "checkpoint_every_s": 86400}
    config.write_text(json.dumps(doc))
    clock = tmp_path / "clock"
    FileClock.write(clock, MONDAY_10)
    with StandIn(tmp_path / "standin") as standin:
        proxy = ProxyProcess(config, tmp_path, standin.port, standin.ca_cert, clock_file=clock).start()
        try:
            context = ssl.create_default_context(cafile=str(proxy.ca_cert))
            with httpx.Client(proxy=proxy.url, verify=context, timeout=60) as client:
                login = client.post("https://teach.classdojo.com/api/session?duration=long",
                                    json={"login": "teacher@example.org", "password": data.PASSWORD})
                assert login.status_code == 200, login.text
                statuses = [client.post(MESSAGE, json={"body": f"Reading books back on Friday ({i})"}).status_code
                            for i in range(WRITES)]
            assert set(statuses) <= {200, 403}, statuses
            finished = time.monotonic()
            while not checkpoints.files(share) and time.monotonic() - finished < 20:
                time.sleep(0.1)
            waited = time.monotonic() - finished
            published = checkpoints.files(share)
            assert published, "no checkpoint was published:\n" + proxy.log()
            newest = checkpoints.read(published[-1])
            assert newest.seq >= 100 and waited < 20
            result, output = invoke(config, "audit", "verify", "--checkpoint", share)
            assert result.exit_code == 0, output
            assert "checkpoint(s) match" in output and "unprotected tail:" in output
        finally:
            proxy.stop()

    db = tmp_path / "data" / "audit.sqlite"
    with attacker.opened(db) as conn:
        covered = [r for r in attacker.rows(conn) if r[3] == "decision" and r[0] <= newest.seq]
    assert len(covered) >= 90
    attacker.rewrite(db, covered[-1][0], '"verdict":"', '"verdict":"x')
    result, output = invoke(config, "audit", "verify", "--checkpoint", share)
    assert result.exit_code == 1, output
    assert "the log was rewritten" in output
