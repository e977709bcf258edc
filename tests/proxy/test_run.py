"""``dojoguard run`` for real: a proxy process, the HTTPS stand-in for ClassDojo and an HTTP client.

The client trusts only the proxy's CA, as a school device would; the proxy
trusts the stand-in's CA through --upstream-trust and reaches it through
--resolve; the time is moved with --clock-file.
"""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import ssl
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.clock import FileClock
from dojoguard.standin import StandIn, data
from dojoguard.proxy.enforcement import DECISION_HEADER
from dojoguard.standin.harness import ProxyProcess
from tests.proxy.conftest import MONDAY_10, MONDAY_18, POLICY, write_config

pytestmark = pytest.mark.slow

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
STORY = f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/storyFeed"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    policy = folder / "policy.yaml"
    policy.write_text(POLICY.read_text("utf-8"), "utf-8")
    config = write_config(folder, extra_hosts=[r"^dojo-uploads\.s3\.amazonaws\.com:\d+$"])
    doc = json.loads(config.read_text())
    doc["rules"] = {"policy": str(policy), "reload": True}
    config.write_text(json.dumps(doc))
    clock = folder / "clock"
    FileClock.write(clock, MONDAY_10)
    with StandIn(folder / "standin", poll_interval_s=0.4) as standin:
        proxy = ProxyProcess(config, folder, standin.port, standin.ca_cert, clock_file=clock).start()
        try:
            yield {"folder": folder, "standin": standin, "proxy": proxy, "clock": clock, "config": config,
                   "policy": policy}
        finally:
            proxy.stop()


@pytest.fixture(scope="module")
def client(world):
    context = ssl.create_default_context(cafile=str(world["proxy"].ca_cert))
    with httpx.Client(proxy=world["proxy"].url, verify=context, timeout=60) as c:
        login = c.post("https://teach.classdojo.com/api/session?duration=long",
                       json={"login": "teacher@example.org", "password": data.PASSWORD})
        assert login.status_code == 200, login.text
        yield c


def audit(world, kind: str = "decision") -> list[dict]:
    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM records WHERE type = ? ORDER BY seq", (kind,))]
    finally:
        db.close()


def decision_record(world, decision_id: str) -> list[dict]:
    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM records WHERE id = ?", (decision_id,))]
    finally:
        db.close()


def reached(world, method: str, path_part: str) -> list:
    return [r for r in world["standin"].received if r.method == method and path_part in r.path]


def set_time(world, at) -> None:
    FileClock.write(world["clock"], at)


def test_start_banner_says_where_the_ca_and_audit_log_are(world):
    """On start the proxy prints the CA path, a curl example, the audit log and the reports folder."""
    log = world["proxy"].log()
    assert str(world["proxy"].ca_cert) in log and "curl --proxy http://127.0.0.1:" in log
    assert "audit.sqlite" in log and "reports" in log
    assert "WARNING: the clock is read from" in log


def test_login_teaches_the_session(world, client):
    """After logging in, the proxy knows the session's teacher (stored as a keyed hash)."""
    db = sqlite3.connect(world["folder"] / "data" / "proxy.sqlite")
    rows = db.execute("SELECT teacher_id FROM sessions").fetchall()
    assert (data.TEACHER["_id"],) in rows


def test_roster_is_learned(world, client):
    """Fetching a roster hands its pupils to the consent registry."""
    assert client.get(f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/student").status_code == 200
    time.sleep(0.3)
    db = sqlite3.connect(world["folder"] / "data" / "registry.sqlite")
    assert db.execute("SELECT count(*) FROM dojo_roster WHERE class_id = ?", (data.CLASS_ID,)).fetchone() == (3,)


def test_message_at_ten_passes_and_at_six_is_refused(world, client):
    """A message at 10:00 reaches ClassDojo; at 18:00 it gets a 403 with notice and decision id and never arrives."""
    set_time(world, MONDAY_10)
    ok = client.post(MESSAGE, json={"body": "Reading books are due tomorrow"})
    assert ok.status_code == 200, ok.text
    assert len(reached(world, "POST", "/message")) == 1
    set_time(world, MONDAY_18)
    refused = client.post(MESSAGE, json={"body": "Reading books are due tomorrow!"})
    set_time(world, MONDAY_10)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert "8am to 5pm" in error["fallbackMessage"] and error["decisionId"] in error["fallbackMessage"]
    assert len(reached(world, "POST", "/message")) == 1
    decisions = audit(world)
    assert decisions[-1]["verdict"] == "block" and decisions[-1]["teacher"] == data.TEACHER["_id"]


def test_negative_points_are_refused(world, client):
    """An award of a needs-work skill (learned from the class's skills) is blocked and never arrives."""
    client.get(f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/behavior")
    time.sleep(0.3)
    award = f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/awardBatch"
    negative = client.post(award, json={"behaviorId": data.BEHAVIORS[2]["_id"],
                                        "studentIds": [data.PUPILS[0]["_id"]]})
    positive = client.post(award, json={"behaviorId": data.BEHAVIORS[0]["_id"],
                                        "studentIds": [data.PUPILS[0]["_id"]]})
    assert negative.status_code == 403 and "positive" in negative.json()["error"]["fallbackMessage"]
    assert positive.status_code == 200
    assert len(reached(world, "POST", "/awardBatch")) == 1


@pytest.mark.faces
def test_photo_with_faces_without_consent_is_refused(world, client, faces_dir):
    """A class story post carrying a photo of a face nobody has consented for is blocked and never arrives."""
    photo = (faces_dir / "people" / "obama.jpg").read_bytes()
    posted = client.post(STORY, json={"body": "Our trip", "attachments": [
        {"type": "photo", "data": "data:image/jpeg;base64," + base64.b64encode(photo).decode()}]})
    assert posted.status_code == 403, posted.text
    assert "photo permission" in posted.json()["error"]["fallbackMessage"]
    assert not [r for r in reached(world, "POST", "/storyFeed") if b"Our trip" in r.body]


@pytest.mark.faces
def test_a_12_megapixel_photo_with_one_small_face_without_consent_is_refused(world, client, faces_dir):
    """A back-row face, 60 px wide in a 12 MP photo, is found and the post is blocked (it is not "face-free")."""
    from tests.support import groupphotos

    photo = groupphotos.one_small_face(faces_dir, 60).jpeg
    posted = client.post(STORY, json={"body": "Sports day", "attachments": [
        {"type": "photo", "data": "data:image/jpeg;base64," + base64.b64encode(photo).decode()}]})
    assert posted.status_code == 403, posted.text
    assert "photo permission" in posted.json()["error"]["fallbackMessage"]
    assert not [r for r in reached(world, "POST", "/storyFeed") if b"Sports day" in r.body]
    wanted = posted.json()["error"]["decisionId"]
    deadline = time.monotonic() + 10
    while not (found := decision_record(world, wanted)) and time.monotonic() < deadline:
        time.sleep(0.2)  # the record is written just after the reply
    assert found and found[0]["verdict"] == "block" and found[0]["counts"]["faces_found"] == 1, json.dumps(found[0])


@pytest.mark.faces
def test_uploaded_photo_without_faces_is_remembered_for_the_post(world, client, faces_dir):
    """A face-free photo checked at upload lets the post that names it through without a second analysis."""
    photo = (faces_dir / "no-faces" / "rocket.jpg").read_bytes()
    upload = client.post("https://teach.classdojo.com/api/upload", files={"file": ("rocket.jpg", photo, "image/jpeg")})
    assert upload.status_code == 200, upload.text
    received = reached(world, "POST", "/api/upload")[-1]
    assert photo in received.body  # the multipart body arrived byte-for-byte
    post = client.post(STORY, json={"body": "Rocket day", "attachments": [{"_id": upload.json()["_id"]}]})
    assert post.status_code == 200, post.text


@pytest.mark.faces
def test_post_naming_a_photo_the_proxy_never_saw_is_fetched_and_checked(world, client, faces_dir):
    """A post naming a photo uploaded around the proxy is fetched by the proxy, analysed, and refused."""
    photo = (faces_dir / "people" / "obama.jpg").read_bytes()
    standin = world["standin"]
    context = ssl.create_default_context(cafile=str(standin.ca_cert))
    direct = httpx.put(f"https://localhost:{standin.port}/uploads/unseen.jpg", content=photo,
                       headers={"Host": "dojo-uploads.s3.amazonaws.com"}, verify=context)
    assert direct.status_code == 200
    before = len(reached(world, "GET", "/uploads/unseen.jpg"))
    posted = client.post(STORY, json={"body": "Visitor", "attachments": [
        {"path": "https://dojo-uploads.s3.amazonaws.com/uploads/unseen.jpg"}]})
    assert posted.status_code == 403, posted.text
    assert len(reached(world, "GET", "/uploads/unseen.jpg")) == before + 1  # the proxy fetched it itself
    assert audit(world)[-1]["rules"] == ["photo-consent"]  # refused for the face it found, not a failed fetch
    assert not [r for r in reached(world, "POST", "/storyFeed") if b"Visitor" in r.body]


@pytest.mark.faces
def test_upload_with_faces_passes_and_its_post_is_judged_for_the_class(world, client, faces_dir):
    """Uploading a photo with a face publishes nothing and passes; the post naming it is refused for the class."""
    photo = (faces_dir / "people" / "obama.jpg").read_bytes()
    upload = client.post("https://teach.classdojo.com/api/upload", files={"file": ("visit.jpg", photo, "image/jpeg")})
    assert upload.status_code == 200, upload.text
    post = client.post(STORY, json={"body": "Our visitor", "attachments": [{"_id": upload.json()["_id"]}]})
    assert post.status_code == 403, post.text
    assert audit(world)[-1]["rules"] == ["photo-consent"]
    assert not [r for r in reached(world, "POST", "/storyFeed") if b"Our visitor" in r.body]


def test_non_classdojo_host_is_not_decrypted(world, client):
    """A client tunnelling to a non-ClassDojo site sees that site's own certificate, not the proxy's."""
    proxy = world["proxy"]
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(b"CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=str(world["standin"].ca_cert))
        with context.wrap_socket(raw, server_hostname="www.example.org") as tls:
            seen = tls.getpeercert(binary_form=True)
    original = ssl.PEM_cert_to_DER_cert(world["standin"].certificates.server_cert.read_text())
    assert seen == original


def test_classdojo_is_presented_with_a_certificate_issued_by_the_schools_ca(world):
    """The issuer a teacher sees on teach.classdojo.com is the proxy's CA, named by proxy.ca_name, not "mitmproxy"."""
    from cryptography import x509

    proxy = world["proxy"]
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(b"CONNECT teach.classdojo.com:443 HTTP/1.1\r\nHost: teach.classdojo.com:443\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=str(proxy.ca_cert))
        with context.wrap_socket(raw, server_hostname="teach.classdojo.com") as tls:
            seen = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    ca = x509.load_pem_x509_certificate(proxy.ca_cert.read_bytes())
    assert seen.issuer == ca.subject
    assert ca.subject.rfc4514_string() == "O=dojoguard school proxy CA,CN=dojoguard school proxy CA"


def test_unknown_write_is_audited_as_unclassified(world, client):
    """A write to an endpoint the catalogue does not know passes (unknown_writes: audit), is recorded and discoverable."""
    response = client.post("https://teach.classdojo.com/api/brandNewFeature/5f0000000000000000000c01",
                           json={"caption": "words", "flag": True})
    assert response.status_code == 200
    assert audit(world, "write.unclassified")[-1]["path"] == "/api/brandNewFeature/{id}"
    result = CliRunner().invoke(cli, ["--config", str(world["config"]), "discover"])
    assert result.exit_code == 0, result.output
    assert "/api/brandNewFeature/{id}" in result.output and "words" not in result.output


def test_malformed_json_on_a_known_write_fails_closed(world, client):
    """A known write whose JSON is broken is refused and never reaches ClassDojo."""
    before = len(reached(world, "POST", "/message"))
    response = client.post(MESSAGE, content=b'{"body": "half', headers={"content-type": "application/json"})
    assert response.status_code == 403
    assert len(reached(world, "POST", "/message")) == before


def test_long_poll_streams_through(world, client):
    """A long-poll's first chunk reaches the client long before the poll ends (nothing is buffered)."""
    started = time.monotonic()
    with client.stream("GET", "https://classdojo.pubnub.com/subscribe/demo/channel/0/0") as response:
        chunks = response.iter_raw()
        next(chunks)
        first = time.monotonic() - started
        for _ in chunks:
            pass
        total = time.monotonic() - started
    assert total > 0.8
    assert first < total - 0.5


def test_write_over_the_size_cap_fails_closed(world, client):
    """A write larger than max_write_body_mb is refused with a clear reason and never arrives."""
    big = b"\0" * (50 * 1024 * 1024 + 1)
    response = client.put("https://dojo-uploads.s3.amazonaws.com/uploads/big.bin", content=big)
    assert response.status_code == 403
    assert "larger than" in response.json()["error"]["fallbackMessage"]
    assert reached(world, "PUT", "big.bin") == []


def test_device_without_the_ca_is_recorded_as_uninspectable(world, client):
    """A device that does not trust the proxy's CA fails its handshake, and the connection is recorded."""
    with httpx.Client(proxy=world["proxy"].url, timeout=20) as untrusting:
        with pytest.raises(httpx.ConnectError):
            untrusting.get("https://api.classdojo.com/api/session")
    time.sleep(0.5)
    events = audit(world, "connection.uninspectable")
    assert events and events[-1]["host"] == "api.classdojo.com" and events[-1]["action"] == "refused"


def test_broken_policy_edit_keeps_the_last_good_one_and_a_fix_is_reloaded(world, client):
    """A broken rule edit is rejected loudly while the old rules keep working; a good edit is then loaded."""
    policy: Path = world["policy"]
    good = policy.read_text("utf-8")
    policy.write_text(good + "\n  - id: broken\n    when: {kind: nonsense}\n", "utf-8")
    _wait_for(lambda: audit(world, "policy.rejected"))
    broken_line = len(good.splitlines()) + 3
    # IT fixes it from the record: the file, line and column of each problem, with its code.
    assert f"{policy}:{broken_line}:18 DG-RULES-VALUE" in audit(world, "policy.rejected")[-1]["places"]
    assert f"{policy}:{broken_line}:18 DG-RULES-VALUE" in world["proxy"].log()
    set_time(world, MONDAY_18)
    assert client.post(MESSAGE, json={"body": "late"}).status_code == 403
    policy.write_text(good.replace('to: "17:00"', 'to: "19:00"'), "utf-8")
    _wait_for(lambda: audit(world, "policy.reloaded"))
    late = client.post(MESSAGE, json={"body": "late but now allowed"})
    set_time(world, MONDAY_10)
    policy.write_text(good, "utf-8")
    assert late.status_code == 200


def test_stops_cleanly_on_sigterm(tmp_path):
    """SIGTERM stops the proxy with exit status 0, a proxy.stopped record and a signed checkpoint."""
    config = write_config(tmp_path)
    with StandIn(tmp_path / "standin") as standin:
        proxy = ProxyProcess(config, tmp_path, standin.port, standin.ca_cert).start()
        assert proxy.stop() == 0
    db = sqlite3.connect(tmp_path / "data" / "audit.sqlite")
    assert db.execute("SELECT count(*) FROM records WHERE type = 'proxy.stopped'").fetchone() == (1,)
    db.close()
    # The scheduled jobs ran in the proxy: a signed checkpoint was exported, and it verifies.
    checkpoints = sorted((tmp_path / "data" / "checkpoints").glob("checkpoint-*.json"))
    assert checkpoints
    verified = CliRunner().invoke(cli, ["--config", str(config), "audit", "verify", "--checkpoint",
                                        str(checkpoints[-1])])
    assert verified.exit_code == 0, verified.output


def _wait_for(check, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_audit_records_are_flushed_by_the_helper_process(world, client):
    """The running proxy flushes the audit log through its flusher helper, which stops with the proxy."""
    pid = world["proxy"].process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    commands = [Path(f"/proc/{c}/cmdline").read_bytes().split(b"\0") for c in children]
    assert any(b"dojoguard.audit.flusher" in cmd for cmd in commands)
    ok = client.post(MESSAGE, json={"body": "Coats on for the trip, please"})
    assert ok.status_code == 200
    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        ids = {i for (i,) in db.execute("SELECT id FROM records WHERE type = 'decision'")}
    finally:
        db.close()
    assert ok.headers[DECISION_HEADER] in ids


def test_keep_alive_writes_share_one_connection_to_classdojo(world, client):
    """Successive judged writes reuse the proxy's upstream connection: one TLS handshake, not one a write."""
    before = world["standin"].connections_accepted()
    for i in range(5):
        assert client.post(MESSAGE, json={"body": f"Reminder {i}: reading books"}).status_code == 200
    assert world["standin"].connections_accepted() - before <= 1
