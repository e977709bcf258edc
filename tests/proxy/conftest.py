"""Fixtures for the proxy's tests: real settings, a real policy file, a real audit log and state in tmp."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from dojoguard import config
from dojoguard.clock import FixedClock
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
