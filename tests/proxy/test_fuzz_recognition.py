"""Fuzzing the edge: mutated ClassDojo writes through recognition, the judge, the rules and the addon.

The longer run (a hundred thousand cases) is ``benchmarks/fuzz_bench.py``;
these keep to a few hundred examples so the suite stays quick.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from dojoguard import config
from dojoguard.clock import FixedClock
from dojoguard.proxy import body as bodies
from dojoguard.proxy import catalogue
from dojoguard.proxy.addon import OUTCOME, Guard
from dojoguard.proxy.attachments import FetchError, Fetcher
from dojoguard.proxy.enforcement import DECISION_HEADER
from dojoguard.proxy.judge import Judge
from dojoguard.proxy.recognition import Request, recognise
from dojoguard.proxy.services import open_services
from dojoguard.proxy.settings import Settings
from dojoguard.rules.decision import Verdict
from tests.proxy import fuzzing
from tests.proxy.conftest import MONDAY_10, through_tunnel, write_config

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Real services (policy file, audit log, state, hold store) and one event loop for every example."""
    folder = tmp_path_factory.mktemp("fuzz")
    # Attachments the fuzzer names are "fetched" from a closed local port, so nothing leaves the machine.
    resolve = tuple(f"{h}:443:127.0.0.1:9" for h in ("teach.classdojo.com", "home.classdojo.com",
                                                    "api.classdojo.com", "dojo-uploads.s3.amazonaws.com"))
    cfg = config.load(write_config(folder, extra_hosts=[r"^dojo-uploads\.s3\.amazonaws\.com:\d+$"]))
    services = open_services(Settings.from_config(cfg, resolve=resolve), FixedClock(MONDAY_10), images=False)
    loop = asyncio.new_event_loop()
    yield {"services": services, "loop": loop, "judge": Judge(services)}
    loop.close()
    services.close()


@pytest.fixture(scope="module")
def cat():
    return catalogue.load("builtin")


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_mutated_writes_never_raise_and_unreadable_ones_are_blocked(world, rng):
    """Any mutated write gets a recorded decision without an exception; an incomplete one is always a block."""
    request = fuzzing.case(rng)
    outcome = world["loop"].run_until_complete(world["judge"].judge(request))
    assert fuzzing.violations(outcome) == [], request


def test_every_fuzzed_decision_is_in_the_audit_log(world):
    """Each decision a run of mutated writes produced was made durable in the audit log before it was answered."""
    rng = random.Random(8)
    given_ids = []
    for _ in range(300):
        outcome = world["loop"].run_until_complete(world["judge"].judge(fuzzing.case(rng)))
        if outcome.durable is not None:  # a forwarded write: the answer waits for the flush
            assert world["loop"].run_until_complete(outcome.durable.wait()) is None
        assert world["services"].audit.synced_seq >= world["services"].audit.get(
            outcome.decision.decision_id).seq
        given_ids.append(outcome.decision.decision_id)
    db = sqlite3.connect(world["services"].settings.audit_path)
    try:
        ids = {i for (i,) in db.execute("SELECT id FROM records WHERE type = 'decision'")}
    finally:
        db.close()
    assert len(set(given_ids)) == 300
    assert set(given_ids) <= ids


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_mutated_flows_through_the_addon_end_forwarded_or_refused_with_a_reference(world, rng):
    """Through mitmproxy's own flow objects, every mutated write is either forwarded or refused with a decision id."""
    request = fuzzing.case(rng)
    headers = http.Headers([(k.encode(), v.encode("utf-8", "surrogateescape")) for k, v in request.headers])
    req = tutils.treq(host=request.host, port=request.port, scheme=b"https", method=request.method.encode(),
                      path=request.path.encode("utf-8", "surrogateescape"), authority=b"", headers=headers,
                      content=b"")
    req.raw_content = request.content  # as sent: a Content-Encoding header is not applied again
    flow = through_tunnel(tflow.tflow(req=req), request.host)
    guard = Guard(world["services"])

    async def run():
        with taddons.context(guard):
            await guard.requestheaders(flow)
            if flow.response is None:
                await guard.request(flow)

    world["loop"].run_until_complete(run())
    outcome = flow.metadata.get(OUTCOME)
    if outcome is None:
        assert not guard._is_guarded_write(flow)  # only writes the catalogue lets pass are left alone
        return
    assert fuzzing.violations(outcome) == [], request
    if outcome.decision.verdict in (Verdict.BLOCK, Verdict.HOLD, Verdict.DEFER):
        assert flow.response is not None and flow.response.status_code == 403
        assert flow.response.headers[DECISION_HEADER] == outcome.decision.decision_id
        assert json.loads(flow.response.content)["error"]["decisionId"] == outcome.decision.decision_id
    else:
        assert flow.response is None


@settings(max_examples=150, deadline=None, derandomize=True)
@given(doc=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
                        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
                            st.sampled_from(["body", "text", "points", "attachments", "studentIds", "behaviorId",
                                             "_id", "path", "data", "contents", "classId", "x"]), inner, max_size=5),
                        max_leaves=40),
       route=st.sampled_from([s for s in fuzzing.SEEDS if s.content_type == "application/json"]))
def test_any_json_document_on_any_known_route_is_recognised_without_raising(cat, doc, route):
    """Arbitrary JSON on a known ClassDojo route is recognised as plain values or as a stated problem."""
    content = json.dumps(doc, allow_nan=True).encode()
    rec = recognise(Request("POST", route.host, 443, route.path, (("content-type", "application/json"),), content),
                    cat)
    assert rec.kind is not None
    assert rec.text is None or isinstance(rec.text, str)
    assert rec.points is None or (isinstance(rec.points, int) and not isinstance(rec.points, bool))
    assert all(isinstance(s, str) for s in rec.students)


@pytest.mark.parametrize("depth", [999, 1_000, 5_000, 100_000])
def test_deeply_nested_json_is_a_body_error_not_a_crash(depth):
    """JSON nested deeper than Python can recurse is an unreadable body (BodyError), never a RecursionError."""
    content = b"[" * depth + b"]" * depth
    try:
        body = bodies.read(content, "application/json")
    except bodies.BodyError as exc:
        assert "JSON" in str(exc)
    else:
        assert body.format == "json"


def test_deeply_nested_message_is_blocked_by_the_judge(world):
    """A message whose JSON is nested too deeply to read is blocked as incomplete, not as an internal error."""
    depth = 100_000
    content = b'{"body":' * depth + b'"hello"' + b"}" * depth
    request = Request("POST", "teach.classdojo.com", 443, f"/api/message-thread/{fuzzing.THREAD_ID}/message",
                      (("content-type", "application/json"),), content, "127.0.0.1")
    outcome = world["loop"].run_until_complete(world["judge"].judge(request))
    assert outcome.decision.verdict is Verdict.BLOCK
    assert "proxy.incomplete-action" in outcome.decision.rule_ids
    assert "proxy.internal-error" not in outcome.decision.rule_ids


@pytest.mark.parametrize("url", ["https://[::1/x.jpg", "https://teach.classdojo.com:notaport/x.jpg"])
def test_post_naming_an_unreadable_attachment_url_is_blocked_not_crashed(world, url):
    """A post whose attachment URL cannot be parsed is blocked as incomplete, not by an internal error."""
    content = json.dumps({"body": "Trip", "attachments": [{"path": url}]}).encode()
    request = Request("POST", "teach.classdojo.com", 443, f"/api/dojoClass/{fuzzing.CLASS_ID}/storyFeed",
                      (("content-type", "application/json"),), content, "127.0.0.1")
    outcome = world["loop"].run_until_complete(world["judge"].judge(request))
    assert outcome.decision.verdict is Verdict.BLOCK
    assert "proxy.internal-error" not in outcome.decision.rule_ids


@pytest.mark.parametrize("url", ["https://teach.classdojo.com:notaport/x", "https://a..classdojo.com/x",
                                 "https://teach.classdojo.com:99999/x", "https://" + "a" * 300 + ".classdojo.com/x"])
def test_malformed_attachment_urls_are_fetch_errors(url):
    """An attachment URL with a bad port or host name fails as a FetchError (the post is then blocked)."""
    with pytest.raises(FetchError):
        Fetcher({}, None, 1024, timeout_s=2.0).fetch(url)


def test_fuzzing_cases_are_varied():
    """The case generator reaches every seed and produces unreadable, oversized-nesting and multipart bodies."""
    rng = random.Random(1)
    cases = [fuzzing.case(rng) for _ in range(2000)]
    assert len({c.path.split("?")[0] for c in cases}) > 20
    assert any(c.content.startswith(b"[" * 900) for c in cases)
    assert any((c.header("content-type") or "").startswith("multipart/") for c in cases)
    assert any(c.header("content-encoding") for c in cases)


@pytest.mark.parametrize("doc, path", [
    ({"body": "\ud800 hello"}, f"/api/message-thread/{fuzzing.THREAD_ID}/message"),
    ({"caption": "\udfff"}, f"/api/brandNewFeature/{fuzzing.CLASS_ID}"),
    ({"behaviorId": "x" * 3000, "studentIds": [fuzzing.PUPIL_ID], "points": 1},
     f"/api/dojoClass/{fuzzing.CLASS_ID}/awardBatch"),
    ({"behaviorId": fuzzing.SKILL_ID, "studentIds": ["y" * 3000], "points": 1},
     f"/api/dojoClass/{fuzzing.CLASS_ID}/awardBatch"),
    ({"behaviorId": fuzzing.SKILL_ID, "studentIds": ["\ud800"], "points": 1},
     f"/api/dojoClass/{fuzzing.CLASS_ID}/awardBatch"),
    ({"behaviorId": fuzzing.SKILL_ID, "studentIds": [fuzzing.PUPIL_ID], "points": 1},
     "/api/dojoClass/" + "c" * 3000 + "/awardBatch"),
])
def test_hostile_identifiers_and_lone_surrogates_are_still_recorded(world, doc, path):
    """Over-long ids and lone UTF-16 surrogates never stop the decision being recorded; bad ids are blocked."""
    request = Request("POST", "teach.classdojo.com", 443, path, (("content-type", "application/json"),),
                      json.dumps(doc).encode(), "127.0.0.1")
    outcome = world["loop"].run_until_complete(world["judge"].judge(request))
    assert "proxy.audit-unavailable" not in outcome.decision.rule_ids
    if "awardBatch" in path:
        assert outcome.decision.verdict is Verdict.BLOCK and "proxy.incomplete-action" in outcome.decision.rule_ids


@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/x-json", "image/jpeg", None])
def test_a_message_whose_body_cannot_be_read_as_text_is_blocked(world, content_type):
    """A message sent under a content type that hides its text from the rules is incomplete, so blocked."""
    headers = (("content-type", content_type),) if content_type else ()
    request = Request("POST", "teach.classdojo.com", 443, f"/api/message-thread/{fuzzing.THREAD_ID}/message",
                      headers, json.dumps({"body": "Words the text rules must see"}).encode(), "127.0.0.1")
    outcome = world["loop"].run_until_complete(world["judge"].judge(request))
    assert outcome.decision.verdict is Verdict.BLOCK
    assert "proxy.incomplete-action" in outcome.decision.rule_ids


def test_a_compressed_write_is_not_inflated_past_the_write_cap(tmp_path):
    """A gzip body that inflates far beyond max_write_body_mb is refused without being inflated in memory."""
    import gzip
    import tracemalloc

    cfg = config.load(write_config(tmp_path, max_write_body_mb=1))
    services = open_services(Settings.from_config(cfg), FixedClock(MONDAY_10), images=False)
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)  # 64 KB on the wire, 64 MB inflated
    headers = http.Headers([(b"content-type", b"application/json"), (b"content-encoding", b"gzip"),
                            (b"content-length", str(len(bomb)).encode())])
    req = tutils.treq(host="teach.classdojo.com", port=443, scheme=b"https", method=b"POST",
                      path=f"/api/message-thread/{fuzzing.THREAD_ID}/message".encode(), authority=b"",
                      headers=headers, content=b"")
    req.raw_content = bomb
    flow = through_tunnel(tflow.tflow(req=req), "teach.classdojo.com")
    guard = Guard(services)
    loop = asyncio.new_event_loop()
    try:
        tracemalloc.start()
        with taddons.context(guard):
            loop.run_until_complete(guard.requestheaders(flow))
            if flow.response is None:
                loop.run_until_complete(guard.request(flow))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        loop.close()
        services.close()
    assert flow.response is not None and flow.response.status_code == 403
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB while judging a 64 KB request"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw"])
def test_a_compressed_write_within_the_cap_is_read_in_full(coding):
    """A gzip or deflate body (with or without its zlib header) is inflated, so the rules see its text."""
    import gzip
    import zlib

    from dojoguard.proxy import flows

    body = json.dumps({"body": "Words the text rules must see"}).encode()
    packed = {"gzip": gzip.compress(body), "deflate": zlib.compress(body),
              "deflate-raw": zlib.compress(body)[2:-4]}[coding]
    headers = http.Headers([(b"content-type", b"application/json"),
                            (b"content-encoding", coding.split("-")[0].encode())])
    req = tutils.treq(host="teach.classdojo.com", port=443, scheme=b"https", method=b"POST",
                      path=b"/api/message-thread/x/message", authority=b"", headers=headers, content=b"")
    req.raw_content = packed
    assert flows.request_of(tflow.tflow(req=req), limit=1024).content == body


def test_a_coding_that_cannot_be_bounded_stays_unread():
    """A Brotli body is not inflated without a bound: it stays as sent, so nothing in it can pass as readable."""
    from dojoguard.proxy import flows

    headers = http.Headers([(b"content-type", b"application/json"), (b"content-encoding", b"br")])
    req = tutils.treq(host="teach.classdojo.com", port=443, scheme=b"https", method=b"POST",
                      path=b"/api/message-thread/x/message", authority=b"", headers=headers, content=b"")
    req.raw_content = b"\x8b\x05\x80compressed"
    assert flows.request_of(tflow.tflow(req=req), limit=1024).content == b"\x8b\x05\x80compressed"
