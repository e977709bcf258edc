"""Fixtures for the proxy's tests: real settings, a real policy file, a real audit log and state in tmp."""

from __future__ import annotations

import json
import ssl
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Iterator

import httpx

import pytest
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from dojoguard import config
from dojoguard.clock import FixedClock
from dojoguard.proxy import master
from dojoguard.proxy.services import open_services
from dojoguard.proxy.settings import Settings

POLICY = Path(__file__).parent / "policy" / "messages-and-points.yaml"
# Monday 30 November 2026: GMT, so UTC hours are London hours.
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
MONDAY_18 = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
CLASS_ID = "5f0000000000000000000c01"
THREAD_ID = "5f00000000000000000d0001"


def write_config(folder: Path, **proxy) -> Path:
    """A settings file with its data folder under ``folder`` and the test policy."""
    doc = {
        "data_dir": str(folder / "data"),
        "rules": {"policy": str(POLICY), "reload": False},
        "images": {"workers": 1},
        "logging": {"format": "json"},
        "proxy": proxy,
    }
    path = folder / "config.yaml"
    path.write_text(json.dumps(doc), "utf-8")  # JSON is YAML, and the hardened reader takes it
    return path


@pytest.fixture(autouse=True)
def mitmproxy_as_shipped():
    """Every test ends with mitmproxy's own methods back: a master built in one test patches it for that test only."""
    yield
    master.uninstall_patches()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_10)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_config(config.load(write_config(tmp_path)))


@pytest.fixture
def services(settings, clock):
    opened = open_services(settings, clock, images=False)
    yield opened
    opened.close()


def write_flow(path: str, body, *, host: str = "teach.classdojo.com", method: str = "POST",
               content_type: str = "application/json", cookie: str | None = None) -> http.HTTPFlow:
    """A ClassDojo write as mitmproxy hands it to the addon."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [(b"host", host.encode()), (b"content-type", content_type.encode()),
               (b"content-length", str(len(content)).encode())]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    req = tutils.treq(host=host, port=443, scheme=b"https", method=method.encode(), path=path.encode(),
                      authority=b"", headers=http.Headers(headers), content=content)
    return through_tunnel(tflow.tflow(req=req), host)


def through_tunnel(flow: http.HTTPFlow, host: str) -> http.HTTPFlow:
    """As a device's CONNECT to ``host`` leaves it: the connection and the TLS name say the same as the Host."""
    flow.server_conn.address = (host, 443)
    flow.server_conn.sni = host
    flow.client_conn.sni = host
    return flow


def read_flow(path: str, response: dict, *, host: str = "teach.classdojo.com", cookie: str | None = None,
              set_cookie: list[str] = ()) -> http.HTTPFlow:
    headers = [(b"host", host.encode())]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    req = tutils.treq(host=host, port=443, scheme=b"https", method=b"GET", path=path.encode(), authority=b"",
                      headers=http.Headers(headers), content=b"")
    resp_headers = [(b"content-type", b"application/json")] + [(b"set-cookie", c.encode()) for c in set_cookie]
    resp = tutils.tresp(status_code=200, headers=http.Headers(resp_headers), content=json.dumps(response).encode())
    return through_tunnel(tflow.tflow(req=req, resp=resp), host)


@contextmanager
def running_proxy(folder: Path, *, policy: str | None = None, at: datetime = MONDAY_10, settings: dict | None = None,
                  **proxy) -> Iterator[dict]:
    """A real ``dojoguard run`` in front of the stand-in, its clock at ``at`` (a file the test can move).

    ``policy`` "builtin" runs the St Wilfrid's rules (default: the test policy);
    ``settings`` are top-level sections merged into the settings file. Yields
    the folder, the stand-in, the proxy, the settings and the clock file.
    """
    from dojoguard.clock import FileClock
    from dojoguard.standin import StandIn
    from dojoguard.standin.harness import ProxyProcess

    config = write_config(folder, **proxy)
    doc = json.loads(config.read_text())
    if policy is not None:
        doc["rules"] = {"policy": policy, "reload": False}
    for section, values in (settings or {}).items():
        if isinstance(values, dict):
            doc.setdefault(section, {}).update(values)
        else:
            doc[section] = values  # a setting of its own (storage)
    config.write_text(json.dumps(doc))
    clock = folder / "clock"
    FileClock.write(clock, at)
    with StandIn(folder / "standin") as standin:
        process = ProxyProcess(config, folder, standin.port, standin.ca_cert, clock_file=clock).start()
        try:
            yield {"folder": folder, "standin": standin, "proxy": process, "config": config, "clock": clock}
        finally:
            process.stop()


@contextmanager
def signed_in(proxy, *, timeout: float = 30) -> Iterator[httpx.Client]:
    """An HTTP client that trusts only the proxy's CA (as a school device does), signed in as the stand-in's teacher."""
    from dojoguard.standin import data

    context = ssl.create_default_context(cafile=str(proxy.ca_cert))
    with httpx.Client(proxy=proxy.url, verify=context, timeout=timeout) as client:
        login = client.post("https://teach.classdojo.com/api/session",
                            json={"login": "teacher@example.org", "password": data.PASSWORD})
        assert login.status_code == 200, login.text
        yield client


def through_connect(proxy, raw, target: str = "teach.classdojo.com:443", sni: str | None = "teach.classdojo.com",
                    *, check_hostname: bool = True) -> ssl.SSLSocket:
    """TLS over ``raw`` (a socket connected to the proxy) after ``CONNECT target``, trusting only the proxy's CA."""
    raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = raw.recv(4096)
        assert chunk, f"the proxy closed the tunnel: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    context = ssl.create_default_context(cafile=str(proxy.ca_cert))
    context.check_hostname = check_hostname
    return context.wrap_socket(raw, server_hostname=sni)


def audit_rows(database: Path, kind: str = "decision") -> list[dict]:
    """The bodies of the audit records of one type, in order."""
    import sqlite3

    db = sqlite3.connect(database)
    try:
        return [json.loads(body) for (body,) in db.execute("SELECT body FROM records WHERE type = ? ORDER BY seq",
                                                           (kind,))]
    finally:
        db.close()
