"""A request body over mitmproxy's ``body_size_limit``: dojoguard's recorded refusal, not a bare 413.

mitmproxy stops reading a request body that passes ``body_size_limit`` and
answers with its own HTML page ("Request body exceeds mitmproxy's
body_size_limit"). That page names no decision, so a teacher has nothing to
quote, and for a body sent without a length (chunked) no dojoguard hook sees
the request at all, so nothing was recorded.

Here mitmproxy's check is wrapped: when it would abort a request, addons
first get a ``dojoguard_request_too_large`` hook (``bounds.Bounds`` records
the decision and sets ``flow.response`` to the ClassDojo-shaped refusal);
that answer is sent, the body read so far is dropped and, over HTTP/1, the
connection is closed, as mitmproxy would have done (over HTTP/2 the stream
is left to end, and what the device still sends is dropped unread: a reset
would let the client discard the answer). Responses, and requests under
the limit, take mitmproxy's own path unchanged. The HTTP/2 path is not
exercised by the tests: the stand-in speaks HTTP/1.1 only.

This replaces one method of a mitmproxy class, as ``tlsslices`` does, and
for the same reason; ``install`` checks the method is still the one this was
written against, and leaves mitmproxy's own in place (and says so) if not.
"""

from __future__ import annotations

from dataclasses import dataclass

from mitmproxy import flow as mflow
from mitmproxy import http
from mitmproxy.net.http.http1 import expected_http_body_size
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers.http import _events
from mitmproxy.utils import human

from dojoguard.proxy import patches

# The sources this relies on, as of the pinned version: the method wrapped, the two states that
# call it (what its True means), the state it leaves the stream in, and the length it reads.
_EXPECTED = "0439b3c31baa69c09f630d44e21491abe89e4992eca3cee423e5262f63a2c99d"

_original = http_layers.HttpStream.check_body_size
_own = patches.own(http_layers.HttpStream, "check_body_size")


@dataclass
class DojoguardRequestTooLargeHook(commands.StartHook):
    """A request body passed ``body_size_limit``; an addon may set ``flow.response`` to the answer."""

    name = "dojoguard_request_too_large"
    flow: http.HTTPFlow


def _over_limit(stream) -> bool:
    limit = human.parse_size(stream.context.options.body_size_limit)
    if limit is None:
        return False
    if stream.request_body_buf:
        return len(stream.request_body_buf) > limit
    try:
        expected = expected_http_body_size(stream.flow.request, None)
    except ValueError:
        return False  # mitmproxy's own path decides malformed lengths
    return expected is not None and expected > limit


def check_body_size(self, request: bool):
    """``HttpStream.check_body_size``, answering an over-limit request with the response an addon set."""
    if not request or not _over_limit(self):
        return (yield from _original(self, request))
    if not self.request_body_buf:
        # As mitmproxy: the headers hook has not run yet when the length alone is over the limit.
        yield http_layers.HttpRequestHeadersHook(self.flow)
    self.request_body_buf.clear()  # what was read so far is never used: free it before the hook waits
    if self.flow.response is None:
        yield DojoguardRequestTooLargeHook(self.flow)
    message = "Request body exceeds the proxy's size limit."
    self.flow.error = mflow.Error(message)
    yield http_layers.HttpErrorHook(self.flow)
    response = self.flow.response
    http1 = not (self.flow.request.is_http2 or self.flow.request.is_http3)
    if response is not None:
        if http1:
            # The connection is closed after this answer: say so, or a client may send its next request on it.
            response.headers["Connection"] = "close"
        content = response.raw_content or b""
        yield http_layers.SendHttp(_events.ResponseHeaders(self.stream_id, response, not content),
                                   self.context.client)
        if content:
            yield http_layers.SendHttp(_events.ResponseData(self.stream_id, content), self.context.client)
        yield http_layers.SendHttp(_events.ResponseEndOfMessage(self.stream_id), self.context.client)
    if response is None or http1:
        # mitmproxy's own ending: for HTTP/1 after our answer it only closes the connection.
        # Over HTTP/2 it would reset the stream with INTERNAL_ERROR after the answer, which
        # lets a client discard it; the stream is left to end instead, what is still sent
        # being dropped unread (the stream's state below).
        yield http_layers.SendHttp(
            _events.ResponseProtocolError(self.stream_id, message, _events.ErrorCode.REQUEST_TOO_LARGE),
            self.context.client)
    self.client_state = self.state_errored
    self.flow.live = False
    return True


def source_digest() -> str:
    """The digest of the pinned mitmproxy code this wraps or relies on (see ``_EXPECTED``)."""
    stream = http_layers.HttpStream
    return patches.source_digest(_original, stream.state_wait_for_request_headers, stream.state_consume_request_body,
                                 stream.state_errored, expected_http_body_size)


def install() -> bool:
    """Use ``check_body_size`` for every HTTP stream of this process; False if mitmproxy's method has changed."""
    if http_layers.HttpStream.check_body_size is check_body_size:
        return True
    if source_digest() != _EXPECTED:
        return False
    http_layers.HttpStream.check_body_size = check_body_size
    return True


def uninstall() -> None:
    """Put mitmproxy's own ``check_body_size`` back."""
    patches.restore(http_layers.HttpStream, "check_body_size", _own)
