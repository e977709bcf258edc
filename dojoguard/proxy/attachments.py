"""Attachments seen passing: findings remembered by upload id and URL, and fetching ones never seen.

A post usually refers to a photo uploaded a moment before. The upload's
findings are remembered here (counts only, never pixels) and applied when the
post names it; a post naming a photo the proxy never analysed makes the proxy
fetch and analyse it itself. An upload whose check could not complete is
remembered too, and a post naming it is judged on that incomplete check
(a video is then held for a leader), not fetched again.
"""

from __future__ import annotations

import functools
import http.client
import ssl
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from dojoguard.rules.action import Attachment
from dojoguard.upstream import https_connection, tls_context

# Enough for a school's busiest day of uploads; the oldest are forgotten first.
MEMORY_SIZE = 20_000


class FetchError(Exception):
    """An attachment could not be fetched for analysis (the post then fails closed)."""


@dataclass(frozen=True)
class Seen:
    """Findings of one analysed attachment, and the channel and class they were judged for."""

    attachment: Attachment
    channel: str
    class_id: str | None
    url: str | None = None

    def applies_to(self, channel: str, class_id: str | None) -> bool:
        """Whether these findings answer for a post to ``channel``/``class_id`` without a new analysis.

        A photo without faces is fine anywhere; one with faces was judged against
        a particular audience's consent, so another audience needs a new check.
        """
        findings = self.attachment.findings
        if findings is None or not findings.is_complete:
            return False
        return findings.faces_found == 0 or (self.channel == channel and self.class_id == class_id)

    @property
    def incomplete(self) -> bool:
        """Whether the check of this attachment could not be completed (a post naming it is judged on that)."""
        findings = self.attachment.findings
        return findings is None or not findings.is_complete


class AttachmentMemory:
    def __init__(self, size: int = MEMORY_SIZE):
        self.size = size
        self._items: OrderedDict[str, Seen] = OrderedDict()

    @staticmethod
    def _key(value: str) -> str:
        # Signed CDN URLs differ in their query on every fetch; the path is the file.
        if value.startswith("https://"):
            try:
                parts = urlsplit(value)
            except ValueError:  # an unclosed [IPv6] bracket: kept whole, it can match only itself
                return value
            return f"{parts.netloc.lower()}{parts.path}"
        return value

    def remember(self, keys: list[str], seen: Seen) -> None:
        for key in keys:
            self._items[self._key(key)] = seen
            self._items.move_to_end(self._key(key))
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def recall(self, *keys: str | None) -> Seen | None:
        for key in keys:
            if key and self._key(key) in self._items:
                return self._items[self._key(key)]
        return None


@dataclass(frozen=True)
class Fetcher:
    """Fetches an attachment over HTTPS, honouring the proxy's --resolve and --upstream-trust."""

    resolve: dict[tuple[str, int], tuple[str, int]]
    trust: str | None
    max_bytes: int
    timeout_s: float = 20.0

    @functools.cached_property
    def _context(self) -> ssl.SSLContext:
        # Built once: loading the CA bundle is the dearest part of a fetch.
        return tls_context(self.trust)

    def fetch(self, url: str) -> tuple[bytes, str | None]:
        """(body, content type); raises FetchError. Blocking: call from a worker thread."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port or 443
        except ValueError:  # a port that is not a number or out of range, an unclosed [IPv6] bracket
            raise FetchError("the attachment URL cannot be read") from None
        if parts.scheme != "https" or not host:
            raise FetchError("only https attachment URLs are fetched")
        try:
            conn = https_connection(host, port, resolve=self.resolve, context=self._context, timeout=self.timeout_s)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", target, headers={"Host": host, "User-Agent": "dojoguard"})
            response = conn.getresponse()
            if response.status != 200:
                raise FetchError(f"the attachment server answered {response.status}")
            data = response.read(self.max_bytes + 1)
            conn.close()
        # UnicodeError: a host name IDNA cannot encode (an empty or over-long label).
        except (OSError, http.client.HTTPException, UnicodeError) as exc:
            raise FetchError(f"the attachment could not be fetched ({type(exc).__name__})") from None
        if len(data) > self.max_bytes:
            raise FetchError("the attachment is larger than the inspection limit")
        return data, response.getheader("Content-Type")
