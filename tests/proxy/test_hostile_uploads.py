"""Hostile pictures uploaded through the real proxy: each refused with a reason while other teachers are served.

The proxy runs with its image workers, in front of the stand-in. One client
keeps uploading hostile pictures (bombs, huge headers, cut-off and corrupt
files, polyglots) while another sends text messages and times each answer.
"""

from __future__ import annotations

import sqlite3
import ssl
import statistics
import threading
import time

import httpx
import pytest

from dojoguard.clock import FileClock
from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess
from tests.consent_registry.test_hostile_images import HOSTILE, NO_CHECKSUM
from tests.proxy.conftest import MONDAY_10, write_config

pytestmark = pytest.mark.slow

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
UPLOAD = "https://teach.classdojo.com/api/upload"
# Each message must be answered within this, however many hostile uploads are in flight.
MESSAGE_WITHIN_S = 3.0
UPLOAD_WITHIN_S = 20.0


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    cfg = write_config(folder)
    clock = folder / "clock"
    FileClock.write(clock, MONDAY_10)
    with StandIn(folder / "standin") as standin:
        with ProxyProcess(cfg, folder, standin.port, standin.ca_cert, clock_file=clock) as running:
            yield {"proxy": running, "folder": folder, "standin": standin}


def _client(proxy: ProxyProcess) -> httpx.Client:
    return httpx.Client(proxy=proxy.url, verify=ssl.create_default_context(cafile=str(proxy.ca_cert)), timeout=60)


def test_hostile_uploads_are_refused_while_messages_keep_flowing(proxy):
    """Every damaged picture upload is refused (or checked, if it is a picture), and messages stay quick meanwhile."""
    running = proxy["proxy"]
    hostile = {name: d for name, (d, code) in HOSTILE.items() if code not in (None, NO_CHECKSUM)}
    uploads: dict[str, tuple[int, float]] = {}
    done = threading.Event()

    def upload_all() -> None:
        with _client(running) as client:
            for _ in range(2):
                for name, content in sorted(hostile.items()):
                    started = time.monotonic()
                    answer = client.post(UPLOAD, files={"file": ("photo.jpg", content, "image/jpeg")})
                    uploads[name] = (answer.status_code, time.monotonic() - started)
        done.set()

    uploader = threading.Thread(target=upload_all)
    uploader.start()
    latencies = []
    with _client(running) as client:
        n = 0
        while not done.is_set() or n < 20:
            started = time.monotonic()
            answer = client.post(MESSAGE, json={"body": f"Reading books due back tomorrow ({n})"})
            latencies.append(time.monotonic() - started)
            assert answer.status_code == 200, answer.text
            n += 1
    uploader.join(120)
    assert set(uploads) == set(hostile)
    for name, (status, seconds) in uploads.items():
        assert status == 403, name
        assert seconds < UPLOAD_WITHIN_S, (name, seconds)
    assert max(latencies) < MESSAGE_WITHIN_S, max(latencies)
    assert statistics.median(latencies) < 0.5, statistics.median(latencies)
    assert not [r for r in proxy["standin"].received if r.path == "/api/upload"]


def test_each_refused_upload_is_recorded_as_an_unreadable_picture(proxy):
    """The refusals are audited as the proxy's fail-closed block for a picture it could not read."""
    db = sqlite3.connect(proxy["folder"] / "data" / "audit.sqlite")
    try:
        rows = db.execute("SELECT body FROM records WHERE type = 'decision' AND body LIKE '%attachment.upload%'"
                          ).fetchall()
    finally:
        db.close()
    assert rows and all('"block"' in body for (body,) in rows)
    assert all("proxy.incomplete-action" in body or "incomplete" in body or "photo-consent" in body
               for (body,) in rows)


def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status", encoding="ascii"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_chunked_write_over_the_cap_is_not_buffered_whole(proxy):
    """A write streamed without Content-Length is cut off near max_write_body_mb, not held in memory to the end."""
    running = proxy["proxy"]
    before = _peak_rss_mb(running.process.pid)
    chunk = b"\0" * (1024 * 1024)

    def body():
        for _ in range(200):  # 200 MB, four times max_write_body_mb (50 MB)
            yield chunk

    with _client(running) as client:
        try:
            answer = client.post(UPLOAD, content=body(), headers={"content-type": "application/octet-stream"})
            assert answer.status_code in (403, 413)
        except httpx.HTTPError:
            pass  # cutting the connection off is an acceptable refusal too
    growth = _peak_rss_mb(running.process.pid) - before
    assert growth < 120, f"the proxy's peak memory grew by {growth:.0f} MB"
