"""The addon's hooks, driven with mitmproxy's own test flows against real services."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3

import pytest
from mitmproxy import connection, exceptions
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow, tutils

from dojoguard.proxy import catalogue
from dojoguard.proxy.addon import OUTCOME, Guard
from dojoguard.proxy.discovery import Discovery
from dojoguard.proxy.enforcement import DECISION_HEADER
from tests.proxy.conftest import CLASS_ID, MONDAY_18, THREAD_ID, read_flow, write_flow

MESSAGE = f"/api/message-thread/{THREAD_ID}/message"
AWARD = f"/api/dojoClass/{CLASS_ID}/awardBatch"


def audit_rows(services, kind: str = "decision") -> list[dict]:
    db = sqlite3.connect(services.settings.audit_path)
    try:
        return [json.loads(body) for (body,) in db.execute("SELECT body FROM records WHERE type = ?", (kind,))]
    finally:
        db.close()


def error_of(flow) -> dict:
    return json.loads(flow.response.content)["error"]


async def judged(guard: Guard, flow):
    await guard.requestheaders(flow)
    if flow.response is None:
        await guard.request(flow)
    return flow


async def test_message_in_school_hours_is_forwarded_and_recorded(services):
    """A message at 10:00 on a Monday goes on to ClassDojo, carrying its decision id, and is audited."""
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(MESSAGE, {"body": "Reading books tomorrow"}))
        assert flow.response is None
        assert DECISION_HEADER not in flow.request.headers  # nothing of dojoguard's goes to ClassDojo
        flow.response = tutils.tresp()
        await guard.response(flow)
    decision_id = flow.response.headers[DECISION_HEADER]
    rows = audit_rows(services)
    assert [r["verdict"] for r in rows] == ["allow"]
    assert rows[0]["kind"] == "message.send"
    assert "Reading books" not in json.dumps(rows)
    db = sqlite3.connect(services.settings.audit_path)
    assert [i for (i,) in db.execute("SELECT id FROM records WHERE type = 'decision'")] == [decision_id]


@pytest.mark.parametrize("level", ["info", "warning"])
async def test_each_judged_write_has_one_log_line_at_info_and_none_above(services, level):
    """The canonical line names the decision and never the message; at warning it is not even built."""
    import io

    from dojoguard.logs import configure_logging, reset_logging

    out = io.StringIO()
    configure_logging(level, "json", stream=out)
    try:
        guard = Guard(services)
        with taddons.context(guard):
            flow = await judged(guard, write_flow(MESSAGE, {"body": "Reading books tomorrow"}))
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        judged_lines = [line for line in lines if line["event"] == "request.judged"]
        if level == "info":
            (line,) = judged_lines
            assert line["decision_id"] == flow.metadata[OUTCOME].decision.decision_id
            assert line["verdict"] == "allow" and line["outcome"] == "forwarded"
            assert "Reading books" not in out.getvalue()
        else:
            assert judged_lines == []
    finally:
        reset_logging()


async def test_message_after_five_is_refused_with_notice_and_decision_id(services, clock):
    """A message at 18:00 is answered with a ClassDojo-shaped 403 carrying the notice and decision id."""
    clock.set(MONDAY_18)
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(MESSAGE, {"body": "See you tomorrow"}))
    assert flow.response.status_code == 403
    error = error_of(flow)
    assert error["code"] == "DOJOGUARD_BLOCKED"
    assert "8am to 5pm" in error["fallbackMessage"]
    assert error["decisionId"] in error["fallbackMessage"]
    assert flow.response.headers[DECISION_HEADER] == error["decisionId"]
    assert audit_rows(services)[0]["rules"] == ["messages-in-school-hours"]


async def test_malformed_json_on_a_known_write_fails_closed(services):
    """A known write whose JSON cannot be read is blocked, never forwarded unread."""
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(MESSAGE, b'{"body": "unterminated'))
    assert flow.response.status_code == 403
    assert "proxy.incomplete-action" in audit_rows(services)[0]["rules"]


async def test_award_of_a_learned_negative_skill_is_blocked(services):
    """An award naming only a skill id is judged by the skill's learned value: a needs-work skill is blocked."""
    guard = Guard(services)
    with taddons.context(guard):
        await guard.response(read_flow(f"/api/dojoClass/{CLASS_ID}/behavior", {"_items": [
            {"_id": "b-neg", "name": "Off task", "points": -1},
            {"_id": "b-pos", "name": "Helping others", "points": 1}]}))
        negative = await judged(guard, write_flow(AWARD, {"behaviorId": "b-neg", "studentIds": ["p1"]}))
        positive = await judged(guard, write_flow(AWARD, {"behaviorId": "b-pos", "studentIds": ["p1"]}))
    assert negative.response.status_code == 403
    assert positive.response is None
    assert [r["verdict"] for r in audit_rows(services)] == ["block", "allow"]


async def test_award_of_an_unknown_skill_without_a_value_fails_closed(services):
    """An award whose skill was never seen and that carries no value is blocked."""
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(AWARD, {"behaviorId": "never-seen", "studentIds": ["p1"]}))
    assert flow.response.status_code == 403


async def test_unclassified_write_is_audited_and_summarised_without_values(services):
    """A write no catalogue entry knows is allowed (unknown_writes: audit), recorded, and kept as a shape only."""
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow("/api/newThing/5f0000000000000000000c01",
                                              {"note": "secret words", "count": 3}))
    assert flow.response is None
    events = audit_rows(services, "write.unclassified")
    assert events[0]["path"] == "/api/newThing/{id}"
    shapes = Discovery(services.state).shapes()
    assert shapes[0].path == "/api/newThing/{id}"
    assert json.loads(shapes[0].skeleton) == {"count": "number", "note": "string"}
    assert "secret" not in shapes[0].skeleton


async def test_unknown_writes_block_setting_refuses_them(services):
    """With unknown_writes: block, a write no catalogue entry knows is refused."""
    from dataclasses import replace
    services.settings = replace(services.settings, unknown_writes="block")
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow("/api/newThing", {"a": 1}))
    assert flow.response.status_code == 403
    assert "proxy.unknown-write" in audit_rows(services)[0]["rules"]


async def test_a_crash_while_judging_ends_in_a_recorded_block(services):
    """An exception anywhere in judging becomes an explicit block with a decision id, not a pass."""
    class Broken:
        revision = "broken"

        def evaluate(self, action, exemptions=None):
            raise RuntimeError("rules engine fault")

    services.policy = Broken()
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(MESSAGE, {"body": "hello"}))
    assert flow.response.status_code == 403
    assert error_of(flow)["decisionId"]
    assert audit_rows(services)[0]["rules"] == ["proxy.internal-error"]


async def test_audit_write_failure_blocks_the_write(services):
    """If the decision cannot be recorded, the write is blocked."""
    services.audit.close()
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(MESSAGE, {"body": "hello"}))
    assert flow.response.status_code == 403
    assert "could not record" in error_of(flow)["fallbackMessage"]


async def test_writes_refused_while_the_audit_log_was_down_are_counted_once_it_is_back(services):
    """When the log takes writes again, one audit.write_failed record says how many were refused and since when."""
    from dojoguard.audit.log import AuditLog

    services.audit.close()
    guard = Guard(services)
    with taddons.context(guard):
        for _ in range(2):
            refused = await judged(guard, write_flow(MESSAGE, {"body": "hello"}))
            assert refused.response.status_code == 403
        services.audit = AuditLog.open(services.settings.audit_path, clock=services.clock)
        allowed = await judged(guard, write_flow(MESSAGE, {"body": "hello again"}))
    assert allowed.response is None  # forwarded
    (event,) = audit_rows(services, "audit.write_failed")
    assert event["failures"] == 2 and event["since"] and event["error"]


async def test_the_answer_to_a_forwarded_write_waits_until_its_record_is_on_disk(services):
    """A write is forwarded once its record is committed; the app hears back only once it is flushed."""
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(MESSAGE, {"body": "Reading books tomorrow"}))
        assert flow.response is None  # forwarded
        outcome = flow.metadata[OUTCOME]
        assert await outcome.durable.wait() is None  # the real flush succeeded
        assert services.audit.synced_seq >= services.audit.get(outcome.decision.decision_id).seq
        gate = asyncio.get_running_loop().create_future()

        class HeldBack:  # now hold the flush back
            async def wait(self):
                await gate

        outcome.durable = HeldBack()
        flow.response = tutils.tresp()
        answer = asyncio.create_task(guard.response(flow))
        await asyncio.sleep(0.05)
        assert not answer.done() and DECISION_HEADER not in flow.response.headers
        gate.set_result(None)
        await answer
    assert flow.response.headers[DECISION_HEADER] == outcome.decision.decision_id


async def test_a_failed_flush_blocks_every_later_write(services, monkeypatch):
    """If the disk cannot flush the log, the write already sent is answered (it reached ClassDojo and
    cannot be called back), and every later write is blocked as unrecordable."""
    def failing(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    guard = Guard(services)
    with taddons.context(guard):
        sent = await judged(guard, write_flow(MESSAGE, {"body": "Reading books tomorrow"}))
        assert sent.response is None
        sent.response = tutils.tresp()
        await guard.response(sent)
        assert "could not be flushed" in await sent.metadata[OUTCOME].durable.wait()
        later = await judged(guard, write_flow(MESSAGE, {"body": "And a second note"}))
    assert later.response.status_code == 403
    assert "could not record" in error_of(later)["fallbackMessage"]


async def test_a_write_whose_record_can_no_longer_be_flushed_is_not_sent(services):
    """The flusher helper died while the proxy was idle: the next write's record is committed but can
    never reach the disk, so the write is blocked instead of forwarded."""
    from dojoguard.audit.durability import FlushProcess

    flusher = FlushProcess(services.audit)
    await flusher.start()
    services.flusher = flusher
    guard = Guard(services)
    try:
        with taddons.context(guard):
            first = await judged(guard, write_flow(MESSAGE, {"body": "Reading books tomorrow"}))
            assert first.response is None
            assert await first.metadata[OUTCOME].durable.wait() is None
            flusher._process.kill()
            flusher._process.wait(10)
            later = await judged(guard, write_flow(MESSAGE, {"body": "And a second note"}))
        assert later.response.status_code == 403
        assert "could not record" in error_of(later)["fallbackMessage"]
    finally:
        await flusher.stop()
        services.flusher = None


async def test_oversized_write_is_refused_before_its_body_is_read(services):
    """A write whose declared length is over max_write_body_mb is blocked at its headers."""
    guard = Guard(services)
    flow = write_flow(MESSAGE, {"body": "x"})
    flow.request.headers["content-length"] = str(services.settings.max_write_bytes + 1)
    with taddons.context(guard):
        await guard.requestheaders(flow)
    assert flow.response.status_code == 403
    assert audit_rows(services)[0]["rules"] == ["proxy.body-too-large"]


async def test_hold_verdict_keeps_the_request_and_tells_the_teacher(services):
    """A held message is kept in the hold store (exact bytes) and the app is told it is held."""
    from dojoguard.holds.store import HoldStore

    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(MESSAGE, {"body": "please hold for review"}))
    assert flow.response.status_code == 403
    assert error_of(flow)["code"] == "DOJOGUARD_HELD"
    store = HoldStore.open(services.settings.holds_path)
    items = store.list()
    assert len(items) == 1 and items[0].decision_id == error_of(flow)["decisionId"]
    assert store.request(items[0].id).content == flow.request.content
    assert audit_rows(services, "hold.created")[0]["hold"] == items[0].id


async def test_hold_without_a_hold_store_fails_closed(services):
    """When the hold store is unavailable, a hold verdict becomes a block saying it could not be queued."""
    services.holds.close()
    services.holds = None
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(MESSAGE, {"body": "please hold for review"}))
    assert error_of(flow)["code"] == "DOJOGUARD_BLOCKED"
    assert "could not keep it" in error_of(flow)["fallbackMessage"]


async def test_photo_without_image_checks_is_blocked(services):
    """With no image checker, a post carrying a photo fails closed."""
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 400
    import base64
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(f"/api/dojoClass/{CLASS_ID}/storyFeed",
                                              {"body": "Trip!", "attachments": [base64.b64encode(png).decode()]}))
    assert flow.response.status_code == 403
    assert audit_rows(services)[0]["rules"] == ["photo-consent"]


async def test_post_naming_an_attachment_never_seen_and_unfetchable_fails_closed(services):
    """A post referring to an upload the proxy never analysed, which it cannot fetch, is blocked."""
    guard = Guard(services)
    with taddons.context(guard):
        flow = await judged(guard, write_flow(f"/api/dojoClass/{CLASS_ID}/storyFeed",
                                              {"body": "Trip!", "attachments": [{"_id": "abc123"}]}))
    assert flow.response.status_code == 403


async def test_session_is_learned_and_names_the_teacher_of_later_writes(services):
    """A teacher's session response teaches the proxy who later writes on that session are from."""
    guard = Guard(services)
    cookie = "dojo_login.sid=s%3Asecret-session.sig; dojo_teach_login.sid=s%3Asecret-session.sig"
    with taddons.context(guard):
        await guard.response(read_flow("/api/session", {"type": "teacher", "teacher": {
            "_id": "5f0000000000000000000a01", "firstName": "Ex", "lastName": "Ample"}}, cookie=cookie))
        flow = await judged(guard, write_flow(MESSAGE, {"body": "hi"}, cookie=cookie))
    assert flow.response is None
    assert audit_rows(services)[0]["teacher"] == "5f0000000000000000000a01"
    stored = sqlite3.connect(services.settings.state_path).execute("SELECT session_hash FROM sessions").fetchall()
    # Kept as a keyed hash, never as the cookie (a hex digest cannot contain the session's letters).
    assert stored and "secret-session" not in stored[0][0] and "sig" not in stored[0][0]


async def test_roster_is_handed_to_the_consent_registry(services):
    """Class and roster responses are passed to the consent registry for linking."""
    guard = Guard(services)
    with taddons.context(guard):
        await guard.response(read_flow("/api/dojoClass", {"_items": [{"_id": CLASS_ID, "name": "3B"}]}))
        await guard.response(read_flow(f"/api/dojoClass/{CLASS_ID}/student", {"_items": [
            {"_id": "5f0000000000000000000501", "firstName": "Ada", "lastName": "L."}]}))
    db = sqlite3.connect(services.settings.registry_path)
    assert db.execute("SELECT name FROM dojo_classes WHERE class_id = ?", (CLASS_ID,)).fetchone() == ("3B",)
    assert db.execute("SELECT count(*) FROM dojo_roster WHERE class_id = ?", (CLASS_ID,)).fetchone() == (1,)


async def test_reads_stream_and_learnable_reads_are_buffered(services):
    """Media downloads and long-polls stream unbuffered; responses the proxy learns from are read whole."""
    guard = Guard(services)
    media = tflow.tflow(resp=True)
    media.request.host, media.request.path, media.request.method = "sphotos.classdojo.com", "/dojophotos-final/x.jpg", "GET"
    roster = read_flow(f"/api/dojoClass/{CLASS_ID}/student", {"_items": []})
    with taddons.context(guard):
        guard.responseheaders(media)
        guard.responseheaders(roster)
    assert media.response.stream is True
    assert not roster.response.stream


async def test_emudhra_options_are_refused(services):
    """Turning on mitmproxy's emudhra options is refused with an options error."""
    from mitmproxy.addons.tlsconfig import TlsConfig
    guard = Guard(services)
    with taddons.context(TlsConfig(), guard) as tctx:
        with pytest.raises(exceptions.OptionsError, match="emudhra"):
            tctx.configure(guard, emudhra=True)


async def test_resolve_points_classdojo_at_the_stand_in(services):
    """--resolve rewrites the upstream address of a matching host and port only."""
    from dataclasses import replace

    from mitmproxy.proxy.server_hooks import ServerConnectionHookData
    services.settings = replace(services.settings, resolve={("teach.classdojo.com", 443): ("127.0.0.1", 8443)})
    guard = Guard(services)
    matching = connection.Server(address=("teach.classdojo.com", 443))
    other = connection.Server(address=("example.org", 443))
    for server in (matching, other):
        guard.server_connect(ServerConnectionHookData(server=server, client=tflow.tclient_conn()))
    assert matching.address == ("127.0.0.1", 8443)
    assert other.address == ("example.org", 443)


async def test_failed_classdojo_handshake_is_recorded_as_uninspectable(services):
    """A ClassDojo TLS handshake the device refused is recorded once, with device and host."""
    from mitmproxy import tls
    from mitmproxy.proxy import context

    guard = Guard(services)
    client = tflow.tclient_conn()
    client.sni = "teach.classdojo.com"
    client.error = "Client TLS handshake failed. The client does not trust the proxy's certificate."
    client.proxy_mode = ProxyMode.parse("regular")
    ctx = context.Context(client, None)
    with taddons.context(guard):
        await guard.tls_failed_client(tls.TlsData(client, ctx))
        await guard.tls_failed_client(tls.TlsData(client, ctx))
    rows = audit_rows(services, "connection.uninspectable")
    assert len(rows) == 1
    assert rows[0]["host"] == "teach.classdojo.com" and rows[0]["action"] == "refused"


def test_state_file_is_owner_only(services):
    """The proxy's state database and its key are readable by the service user only."""
    assert os.stat(services.settings.state_path).st_mode & 0o077 == 0
    assert os.stat(services.settings.state_path.with_suffix(".key")).st_mode & 0o077 == 0


async def test_login_is_not_judged_and_teaches_the_session(services):
    """A login POST is forwarded unjudged, and its response's Set-Cookie session is learned."""
    guard = Guard(services)
    login = write_flow("/api/session", {"login": "t@example.org", "password": "pw"})
    with taddons.context(guard):
        await judged(guard, login)
        assert login.response is None
        from mitmproxy.test import tutils
        login.response = tutils.tresp(status_code=200, content=json.dumps(
            {"type": "teacher", "teacher": {"_id": "t-9", "firstName": "Ex"}}).encode())
        login.response.headers["set-cookie"] = "dojo_login.sid=s%3Anew.sig; Path=/"
        guard.responseheaders(login)
        await guard.response(login)
    assert audit_rows(services) == []
    assert services.sessions.teacher("s:new.sig") == ("t-9", "Ex")


async def test_pass_setting_tunnels_a_device_that_cannot_be_inspected(services):
    """With uninspectable: pass, later handshakes from a device that refused the CA are not intercepted."""
    from dataclasses import replace

    from mitmproxy import tls
    from mitmproxy.proxy import context
    services.settings = replace(services.settings, uninspectable="pass")
    guard = Guard(services)
    client = tflow.tclient_conn()
    client.sni = "teach.classdojo.com"
    client.error = "unknown ca"
    ctx = context.Context(client, None)
    hello = tls.ClientHelloData(ctx, tls.ClientHello(_client_hello("teach.classdojo.com")))
    guard.tls_clienthello(hello)
    assert hello.ignore_connection is False
    with taddons.context(guard):
        await guard.tls_failed_client(tls.TlsData(client, ctx))
    guard.tls_clienthello(hello)
    assert hello.ignore_connection is True
    assert audit_rows(services, "connection.uninspectable")[0]["action"] == "passed"


def _client_hello(sni: str) -> bytes:
    """A minimal TLS ClientHello carrying ``sni`` (the message body without its handshake header)."""
    name = sni.encode()
    server_name = b"\x00" + len(name).to_bytes(2, "big") + name
    sni_ext = b"\x00\x00" + (len(server_name) + 2).to_bytes(2, "big") + len(server_name).to_bytes(2, "big") + server_name
    body = (b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + len(sni_ext).to_bytes(2, "big") + sni_ext)
    return body


def editable_catalogue(services, tmp_path):
    """Point the services at a copy of the built-in catalogue that a test can edit; returns its path."""
    from dataclasses import replace

    from dojoguard.proxy.services import watched_stamps
    path = tmp_path / "catalogue.yaml"
    path.write_text(catalogue.builtin_text())
    services.settings = replace(services.settings, catalogue=str(path))
    services.stamps = watched_stamps(services.settings)
    return path


async def test_catalogue_edit_is_reloaded_and_a_broken_one_is_kept_out(services, tmp_path):
    """A new catalogue host is intercepted after a reload; a broken edit keeps the last good catalogue."""
    path = editable_catalogue(services, tmp_path)
    guard = Guard(services)
    with taddons.context(guard) as tctx:
        path.write_text(catalogue.builtin_text().replace(
            "  - {host: classdojo.pubnub.com, role: realtime, confidence: old}",
            "  - {host: classdojo.pubnub.com, role: realtime, confidence: old}\n"
            "  - {host: dojo.example.net, role: api, confidence: inferred}"))
        await guard.reload()
        assert any("dojo\\.example\\.net" in p for p in tctx.options.allow_hosts)
        path.write_text("version: 1\nhosts: []\n")
        await guard.reload()
        assert services.catalogue.role_of("dojo.example.net") == "api"
    assert [r["what"] for r in audit_rows(services, "policy.reloaded")] == ["catalogue"]
    assert audit_rows(services, "policy.rejected")[0]["codes"] == ["DG-CATALOGUE-INVALID"]


async def test_a_write_brought_under_the_policy_between_its_headers_and_body_is_judged(services, tmp_path):
    """A host added by a catalogue reload after a write's headers arrived still has that write judged."""
    path = editable_catalogue(services, tmp_path)
    guard = Guard(services)
    with taddons.context(guard):
        flow = write_flow(MESSAGE, {"body": "hello"}, host="dojo.example.net")
        await guard.requestheaders(flow)
        path.write_text(catalogue.builtin_text().replace(
            "  - {host: classdojo.pubnub.com, role: realtime, confidence: old}",
            "  - {host: classdojo.pubnub.com, role: realtime, confidence: old}\n"
            "  - {host: dojo.example.net, role: api, confidence: inferred}"))
        await guard.reload()
        await guard.request(flow)
    assert [r["endpoint"].endswith("dojo.example.net") for r in audit_rows(services)] == [True]


def test_the_start_up_heap_is_kept_out_of_garbage_collection():
    """Once the proxy runs, the objects it loaded at start-up are frozen out of the collector's generations."""
    import gc

    from dojoguard.proxy.addon import settle_heap
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
