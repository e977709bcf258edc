"""Frequent published checkpoints through the real proxy: a hundred judged writes are signed and published in seconds.

A real ``dojoguard run`` process in front of the HTTPS stand-in for
ClassDojo, a real HTTP client, and the real ``audit verify`` command reading
the published folder; the attacker opens the SQLite file directly.
"""

from __future__ import annotations

import time

import pytest

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.standin import data
from tests.proxy.conftest import running_proxy, signed_in

from . import attacker
from .conftest import invoke

pytestmark = pytest.mark.slow

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
WRITES = 120


def test_a_hundred_judged_writes_are_checkpointed_and_published_at_once(tmp_path):
    """120 messages through the proxy give a published, signed checkpoint within seconds; a rewrite under it is caught."""
    share = tmp_path / "governors"
    share.mkdir()
    # A minute's timer would also do it; a day's shows the hundred records alone set it off.
    audit = {"checkpoint_publish_dir": str(share), "checkpoint_every_s": 86400}
    with running_proxy(tmp_path, settings={"audit": audit}) as world:
        config, proxy = world["config"], world["proxy"]
        with signed_in(proxy, timeout=60) as client:
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

    db = tmp_path / "data" / "audit.sqlite"
    with attacker.opened(db) as conn:
        covered = [r for r in attacker.rows(conn) if r[3] == "decision" and r[0] <= newest.seq]
    assert len(covered) >= 90
    attacker.rewrite(db, covered[-1][0], '"verdict":"', '"verdict":"x')
    result, output = invoke(config, "audit", "verify", "--checkpoint", share)
    assert result.exit_code == 1, output
    assert "the log was rewritten" in output
