"""The stand-in HTTPS server: ClassDojo-shaped answers, and a record of everything received.

A plain ``ThreadingHTTPServer`` wrapped in TLS, speaking HTTP/1.1 keep-alive.
Every host name is served from one port; the Host header says which site a
request is for, as it would behind ClassDojo's own load balancers.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import re
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dojoguard.standin import certs, data, websocket

HEX24 = r"[0-9a-f]{24}"


@dataclass(frozen=True)
class Received:
    """One request as the stand-in saw it."""

    method: str
    host: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self):
        return json.loads(self.body)


class StandIn:
    """Start with ``start()`` (returns the port); ``received`` lists requests; ``stop()`` ends it."""

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", port: int = 0,
                 media_bytes: int = 2 * 1024 * 1024, poll_chunks: int = 3, poll_interval_s: float = 0.3):
        self.folder = Path(folder)
        self.certificates = certs.create(self.folder)
        self.media_bytes = media_bytes
        self.poll_chunks = poll_chunks
        self.poll_interval_s = poll_interval_s
        self.received: list[Received] = []
        self.sessions: dict[str, str] = {}
        # Sessions that have ended (the teacher logged out, or ClassDojo expired them): writes
        # carrying one are refused with 401, as ClassDojo does.
        self.expired: set[str] = set()
        # Thread id -> its messages, served by GET /api/message-thread/{id}/message (a test may change them).
        self.threads: dict[str, list[dict]] = {data.THREAD_ID: [dict(m) for m in data.THREAD_MESSAGES]}
        # The classes GET /api/dojoClass lists (and GET /api/dojoClass/{id} serves), with their collaborators.
        self.classes: list[dict] = [dict(data.CLASS)]
        # The class and school story feeds' items (GET /api/dojoClass/{id}/storyFeed, /api/school/{id}/storyFeed).
        self.class_story: list[dict] = [dict(p) for p in data.CLASS_STORY]
        self.school_story: list[dict] = [dict(p) for p in data.SCHOOL_STORY]
        # URL -> (content type, body) of everything uploaded, served back by the media routes.
        self.uploads: dict[str, tuple[str, bytes]] = {}
        # The slow-reply switch: writes whose path contains the pattern are recorded as they
        # arrive and answered only after the delay (a slow ClassDojo, or a send cut short).
        self._slow: tuple[float, str] = (0.0, "")
        self._accepted = 0  # TCP connections accepted (each costs the client a TLS handshake)
        self._lock = threading.Lock()
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host.strip("[]"), port), _Handler)
        self._server.standin = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificates.server_cert, self.certificates.server_key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def ca_cert(self) -> Path:
        return self.certificates.ca_cert

    def start(self) -> int:
        self._thread = threading.Thread(target=self._server.serve_forever, name="standin", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def expire_sessions(self) -> None:
        """End every session, as ClassDojo does when a login expires."""
        with self._lock:
            self.expired.update(self.sessions)
            self.sessions.clear()

    def slow_replies(self, seconds: float, path_contains: str = "") -> None:
        """Answer writes whose path contains ``path_contains`` only ``seconds`` after they arrive (0: at once).

        The write is recorded on arrival, so a test can tell "ClassDojo got it"
        from "the sender heard back", and kill the proxy in between.
        """
        with self._lock:
            self._slow = (float(seconds), path_contains)

    def reply_delay(self, method: str, path: str) -> float:
        with self._lock:
            seconds, pattern = self._slow
        return seconds if seconds > 0 and method not in ("GET", "HEAD", "OPTIONS") and pattern in path else 0.0

    def record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)

    def writes(self) -> list[Received]:
        """Requests that would change something at ClassDojo (everything but GET/HEAD/OPTIONS)."""
        with self._lock:
            return [r for r in self.received if r.method not in ("GET", "HEAD", "OPTIONS")]

    def clear(self) -> None:
        with self._lock:
            self.received.clear()

    def connections_accepted(self) -> int:
        """How many connections clients (the proxy) have opened so far: keep-alive reuse shows here."""
        with self._lock:
            return self._accepted

    def _count_connection(self) -> None:
        with self._lock:
            self._accepted += 1

    def __enter__(self) -> "StandIn":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: StandIn

    def process_request(self, request, client_address):
        self.standin._count_connection()
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        # Clients that drop a connection (a cancelled long-poll) are normal here.
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on,
    # each keep-alive answer would wait ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format, *args):  # the stand-in is quiet
        pass

    def do_GET(self):
        if (self.headers.get("Upgrade") or "").lower() == "websocket":
            self._websocket()
            return
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    # -- plumbing ---------------------------------------------------------

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        path = urlsplit(self.path).path
        standin = self.server.standin
        standin.record(Received(self.command, host, self.path, tuple(self.headers.items()), body))
        delay = standin.reply_delay(self.command, path)
        if delay:
            time.sleep(delay)
        if self.command in ("POST", "PUT", "PATCH", "DELETE") and path != "/api/session" \
                and self._expired_session():
            self._json(401, {"error": {"type": 401, "code": "ERR_NOT_LOGGED_IN", "detail": "session expired",
                                       "fallbackMessage": "Please log in again."}})
            return
        for method, pattern, handler in _ROUTES:
            if method == self.command and re.fullmatch(pattern, path):
                handler(self, body, host, path)
                return
        if self.command in ("POST", "PUT", "PATCH"):
            self._json(200, {"ok": True})
        else:
            self._json(404, {"error": {"code": "ERR_NOT_FOUND", "detail": "not found",
                                       "fallbackMessage": "Not found."}})

    def _websocket(self) -> None:
        """A WebSocket: every message the client sends is recorded (method WEBSOCKET) and echoed back."""
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        raw = (f"{self.requestline}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers.items()) + "\r\n").encode()
        standin, headers = self.server.standin, tuple(self.headers.items())

        def record(data: bytes, is_text: bool) -> None:
            standin.record(Received("WEBSOCKET", host, self.path, headers, data))

        websocket.serve(self.connection, raw, record)
        self.close_connection = True

    def _json(self, status: int, doc, headers: tuple[tuple[str, str], ...] = ()) -> None:
        payload = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _expired_session(self) -> bool:
        expired = self.server.standin.expired
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name in ("dojo_teach_login.sid", "dojo_login.sid") and unquote(value) in expired:
                return True
        return False

    def _session(self) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name in ("dojo_teach_login.sid", "dojo_login.sid"):
                sid = unquote(value)
                if sid in self.server.standin.sessions:
                    return sid
        return None

    # -- ClassDojo-shaped endpoints ---------------------------------------

    def login(self, body, host, path):
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            self._json(400, {"error": {"code": "ERR_BAD_JSON", "detail": "bad json", "fallbackMessage": "Bad"}})
            return
        password_ok = doc.get("password") in (data.PASSWORD, data.OTC_PASSWORD)
        if not password_ok:
            self._json(401, {"error": {"type": 401, "code": "ERR_INVALID_PASSWORD", "detail": "wrong password",
                                       "fallbackMessage": "Wrong email or password."}})
            return
        if doc.get("password") == data.OTC_PASSWORD and doc.get("code") != data.OTC_CODE:
            self._json(401, {"error": {"type": 401, "code": "ERR_MUST_USE_OTC_ANOMALOUS_LOGIN",
                                       "detail": "one-time code needed",
                                       "fallbackMessage": "Enter the code we emailed you."}})
            return
        sid = f"s:{secrets.token_urlsafe(18)}.{secrets.token_urlsafe(8)}"
        self.server.standin.sessions[sid] = data.TEACHER["_id"]
        cookie = sid.replace(":", "%3A")
        self._json(200, {"type": "teacher", "teacher": data.TEACHER}, headers=(
            ("Set-Cookie", f"dojo_login.sid={cookie}; Path=/; HttpOnly; Secure"),
            ("Set-Cookie", f"dojo_teach_login.sid={cookie}; Path=/; HttpOnly; Secure"),
            ("Set-Cookie", "dojo_log_session_id=00000000-0000-4000-8000-000000000000; Path=/"),
        ))

    def session(self, body, host, path):
        if self._session() is None:
            self._json(401, {"error": {"type": 401, "code": "ERR_NOT_LOGGED_IN", "detail": "no session",
                                       "fallbackMessage": "Please log in."}})
            return
        self._json(200, {"type": "teacher", "teacher": data.TEACHER})

    def classes(self, body, host, path):
        self._json(200, {"_items": self.server.standin.classes})

    def one_class(self, body, host, path):
        wanted = path.split("/")[3]
        found = next((c for c in self.server.standin.classes if c.get("_id") == wanted), None)
        if found is None:
            self._json(404, {"error": {"code": "ERR_NOT_FOUND", "detail": "no such class",
                                       "fallbackMessage": "Not found."}})
            return
        self._json(200, found)

    def class_story(self, body, host, path):
        self._json(200, {"_items": self.server.standin.class_story, "_metadata": {"postsExist": True}})

    def school_story(self, body, host, path):
        self._json(200, {"_items": self.server.standin.school_story, "_metadata": {"postsExist": True}})

    def roster(self, body, host, path):
        self._json(200, {"_items": [dict(p, classes=[{"_id": data.CLASS_ID, "name": data.CLASS["name"]}])
                                    for p in data.PUPILS]})

    def behaviors(self, body, host, path):
        self._json(200, {"_items": data.BEHAVIORS})

    def story_feed(self, body, host, path):
        self._json(200, {"_items": [], "_metadata": {"postsExist": False}})

    def thread_messages(self, body, host, path):
        if self._session() is None:
            self._json(401, {"error": {"type": 401, "code": "ERR_NOT_LOGGED_IN", "detail": "no session",
                                       "fallbackMessage": "Please log in."}})
            return
        thread = path.split("/")[3]
        messages = self.server.standin.threads.get(thread)
        if messages is None:
            self._json(404, {"error": {"code": "ERR_NOT_FOUND", "detail": "no such thread",
                                       "fallbackMessage": "Not found."}})
            return
        self._json(200, {"_items": messages, "_metadata": {"threadId": thread, "count": len(messages)}})

    def created(self, body, host, path):
        self._json(200, {"_id": secrets.token_hex(12), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ")})

    def upload(self, body, host, path):
        upload_id = secrets.token_hex(12)
        url = (f"https://sphotos.classdojo.com/dojophotos-final/{data.TEACHER['_id']}/2026-11-30/"
               f"{upload_id}_{upload_id[:12]}/{upload_id[:12]}.jpg")
        # Kept as received; the file part is taken out only if it is ever downloaded (benchmarks
        # upload far more than they download, and parsing every upload would cost the machine).
        self.server.standin.uploads[url] = (self.headers.get("Content-Type", ""), body)
        self._json(200, {"_id": upload_id, "path": url, "type": "photo"})

    def s3_put(self, body, host, path):
        self.server.standin.uploads[f"https://{host}{path}"] = ("", body)
        self.send_response(200)
        self.send_header("ETag", '"' + hashlib.md5(body).hexdigest() + '"')  # noqa: S324 - S3's ETag is MD5
        self.send_header("Content-Length", "0")
        self.end_headers()

    def media(self, body, host, path):
        stored = self.server.standin.uploads.get(f"https://{host}{path}")
        payload = _uploaded_file(*stored) if stored is not None else _media_filler(self.server.standin.media_bytes)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def long_poll(self, body, host, path):
        """A PubNub-style subscribe that trickles its answer out slowly, in chunks."""
        standin = self.server.standin
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript; charset=UTF-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(standin.poll_chunks):
            chunk = json.dumps([[{"action": "reward", "seq": i}], str(time.time_ns())]).encode() + b"\n"
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
            time.sleep(standin.poll_interval_s)
        self.wfile.write(b"0\r\n\r\n")

    def example_site(self, body, host, path):
        payload = b"<html><body>Not ClassDojo.</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _uploaded_file(content_type: str, body: bytes) -> bytes:
    """The file part of a multipart upload (the whole body when it is not multipart), as a CDN would keep it."""
    if not content_type.lower().startswith("multipart/"):
        return body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.iter_parts():
        if part.get_filename():
            return part.get_payload(decode=True)
    return body


def _media_filler(size: int) -> bytes:
    # Not a real picture: downloads are only ever streamed, never inspected.
    return (b"\xff\xd8\xff\xe0" + bytes(range(256)) * (size // 256 + 1))[:size]


_ROUTES = (
    ("POST", r"/api/session", _Handler.login),
    ("GET", r"/api/session", _Handler.session),
    ("GET", r"/api/dojoClass", _Handler.classes),
    ("GET", rf"/api/dojoClass/{HEX24}", _Handler.one_class),
    ("GET", rf"/api/dojoClass/{HEX24}/student", _Handler.roster),
    ("GET", rf"/api/dojoClass/{HEX24}/behavior", _Handler.behaviors),
    ("GET", r"/api/storyFeed", _Handler.story_feed),
    ("GET", rf"/api/dojoClass/{HEX24}/storyFeed", _Handler.class_story),
    ("GET", rf"/api/school/{HEX24}/storyFeed", _Handler.school_story),
    ("POST", rf"/api/dojoClass/{HEX24}/awardBatch", _Handler.created),
    ("POST", rf"/api/dojoClass/{HEX24}/storyFeed", _Handler.created),
    ("POST", rf"/api/dojoClass/{HEX24}/storyFeed/{HEX24}/comments", _Handler.created),
    ("POST", rf"/api/message-thread/{HEX24}/message", _Handler.created),
    ("GET", rf"/api/message-thread/{HEX24}/message", _Handler.thread_messages),
    ("POST", r"/api/upload", _Handler.upload),
    ("PUT", r"/uploads/.+", _Handler.s3_put),
    ("GET", r"/dojophotos-final/.+", _Handler.media),
    ("GET", r"/uploads/.+", _Handler.media),
    ("GET", r"/subscribe/.+", _Handler.long_poll),
    ("GET", r"/", _Handler.example_site),
)
