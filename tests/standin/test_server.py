"""The ClassDojo stand-in answers ClassDojo's shapes over real TLS and records what it receives."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys

import httpx
import pytest

from dojoguard.standin import StandIn, data


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    with StandIn(tmp_path_factory.mktemp("standin"), poll_interval_s=0.05) as s:
        yield s


@pytest.fixture
def client(standin):
    context = ssl.create_default_context(cafile=str(standin.ca_cert))
    transport = httpx.HTTPTransport(verify=context)
    with httpx.Client(transport=transport, base_url=f"https://localhost:{standin.port}") as c:
        yield c


def test_login_sets_both_teacher_session_cookies(client):
    """A teacher login answers the session shape and sets dojo_login.sid and dojo_teach_login.sid alike."""
    response = client.post("/api/session?duration=long", json={"login": "t", "password": data.PASSWORD},
                           headers={"Host": "teach.classdojo.com"})
    assert response.json() == {"type": "teacher", "teacher": data.TEACHER}
    assert response.cookies["dojo_login.sid"] == response.cookies["dojo_teach_login.sid"]
    assert client.get("/api/session", headers={"Host": "teach.classdojo.com"}).status_code == 200


def test_one_time_code_flow(client):
    """An anomalous login first gets the ERR_MUST_USE_OTC 401, then succeeds with the code."""
    first = client.post("/api/session", json={"login": "t", "password": data.OTC_PASSWORD})
    assert first.status_code == 401 and first.json()["error"]["code"].startswith("ERR_MUST_USE_OTC")
    second = client.post("/api/session", json={"login": "t", "password": data.OTC_PASSWORD,
                                                "code": data.OTC_CODE})
    assert second.status_code == 200


def test_roster_and_skills_have_classdojo_shapes(client):
    """The roster and skills lists come as _items with ids, names and point values."""
    roster = client.get(f"/api/dojoClass/{data.CLASS_ID}/student").json()["_items"]
    skills = client.get(f"/api/dojoClass/{data.CLASS_ID}/behavior").json()["_items"]
    assert [p["_id"] for p in roster] == [p["_id"] for p in data.PUPILS]
    assert {s["points"] for s in skills} == {1, 2, -1}


def test_uploads_are_kept_and_served_back(client):
    """A multipart upload returns an id and a media URL from which exactly the uploaded file is served."""
    photo = b"\xff\xd8\xff\r\n\x00data\r\n"
    upload = client.post("/api/upload", files={"file": ("a.jpg", photo, "image/jpeg")}).json()
    path = upload["path"].split("sphotos.classdojo.com", 1)[1]
    served = client.get(path, headers={"Host": "sphotos.classdojo.com"})
    assert upload["_id"]
    assert served.content == photo


def test_writes_are_recorded(standin, client):
    """Every request is recorded with its method, host, path and body, so tests can see what arrived."""
    standin.clear()
    client.post(f"/api/message-thread/{data.THREAD_ID}/message", json={"body": "hi"},
                headers={"Host": "api.classdojo.com"})
    client.get("/api/dojoClass")
    writes = standin.writes()
    assert len(writes) == 1 and writes[0].host == "api.classdojo.com" and writes[0].json() == {"body": "hi"}
    assert len(standin.received) == 2


def test_long_poll_is_chunked_over_time(standin, client):
    """The PubNub-style subscribe sends its chunks one by one."""
    with client.stream("GET", "/subscribe/x/y/0/0", headers={"Host": "classdojo.pubnub.com"}) as response:
        chunks = [c for c in response.iter_lines() if c]
    assert len(chunks) == standin.poll_chunks


def test_writes_with_an_expired_session_are_refused_but_login_is_not(standin, client):
    """After the stand-in expires sessions, a write with the old cookie gets 401; logging in again works."""
    login = client.post("/api/session", json={"login": "t", "password": data.PASSWORD},
                        headers={"Host": "teach.classdojo.com"})
    cookie = login.headers.get_list("set-cookie")[0].split(";")[0]
    path = f"/api/message-thread/{data.THREAD_ID}/message"
    assert client.post(path, json={"body": "hi"}, headers={"Host": "teach.classdojo.com", "Cookie": cookie}
                       ).status_code == 200
    standin.expire_sessions()
    refused = client.post(path, json={"body": "hi"}, headers={"Host": "teach.classdojo.com", "Cookie": cookie})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "ERR_NOT_LOGGED_IN"
    again = client.post("/api/session", json={"login": "t", "password": data.PASSWORD},
                        headers={"Host": "teach.classdojo.com", "Cookie": cookie})
    assert again.status_code == 200


def test_slow_replies_record_the_write_first_and_answer_late(standin, client):
    """The slow-reply switch: the write is recorded on arrival, its answer comes only after the delay."""
    import threading
    import time

    standin.clear()
    standin.slow_replies(1.5, "/message")
    try:
        path = f"/api/message-thread/{data.THREAD_ID}/message"
        answers = []
        sender = threading.Thread(target=lambda: answers.append(
            client.post(path, json={"body": "slow"}, headers={"Host": "teach.classdojo.com"})))
        started = time.monotonic()
        sender.start()
        while not standin.writes() and time.monotonic() - started < 5:
            time.sleep(0.02)
        assert standin.writes() and not answers, "the write should arrive before its answer"
        sender.join(10)
        assert answers[0].status_code == 200 and time.monotonic() - started >= 1.4
        fast = time.monotonic()
        client.get("/api/dojoClass")  # reads are never slowed
        assert time.monotonic() - fast < 1.0
    finally:
        standin.slow_replies(0)


def _started(*args: str, folder) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "dojoguard.standin", *args, "--folder", str(folder)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, process.stdout.readline()


@pytest.mark.parametrize("listen", ["127.0.0.3:0", "[::1]:0"])
def test_the_standin_listens_where_it_is_told(tmp_path, listen):
    """`python -m dojoguard.standin --listen HOST:PORT` serves ClassDojo's names on that address (IPv4 or IPv6)."""
    host = listen.rpartition(":")[0].strip("[]")
    if ":" in host and not socket.has_ipv6:
        pytest.skip("this machine has no IPv6")
    process, first = _started("--listen", listen, folder=tmp_path)
    try:
        found = re.match(r"ClassDojo stand-in on \[?([0-9a-f.:]+)\]?:(\d+)", first)
        assert found and found.group(1) == host, first
        context = ssl.create_default_context(cafile=str(tmp_path / "standin-ca.pem"))
        with socket.create_connection((host, int(found.group(2))), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="teach.classdojo.com") as tls:
            tls.sendall(b"GET /api/session HTTP/1.1\r\nHost: teach.classdojo.com\r\nConnection: close\r\n\r\n")
            assert tls.recv(4096).startswith(b"HTTP/1.")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_bad_listen_address_is_refused_with_an_example(tmp_path):
    """--listen without a port is an error that shows the form, not a traceback."""
    done = subprocess.run([sys.executable, "-m", "dojoguard.standin", "--listen", "0.0.0.0", "--folder",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is not HOST:PORT" in done.stderr
