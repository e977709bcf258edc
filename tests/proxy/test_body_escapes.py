"""Escaped JSON strings inside a text body are read as a server's JSON parser reads them."""

from __future__ import annotations

import time

import pytest

from dojoguard.proxy import body


@pytest.mark.parametrize("content,ctype", [
    (b' {"body":"what a load of sh\\u0031t"}', "text/plain; charset=utf-8"),          # JSON after a space
    (b'42["message",{"body":"what a load of sh\\u0031t"}]', "text/plain; charset=utf-8"),  # socket.io
    (b'42["message",{"body":"what a load of sh\\u0031t"}]', "text/plain"),
    (b'42["message",{"body":"what a load of sh\\u0031t"}]', None),                     # no Content-Type
    (b'x "what a load of \\u0073\\u0068\\u0031\\u0074" y', "text/plain"),
])
def test_escaped_json_strings_in_text_are_decoded(content, ctype):
    """Every escaped JSON string literal in a text body is decoded and scanned, beside the raw text."""
    assert "what a load of sh1t" in body.read(content, ctype).texts


@pytest.mark.parametrize("content", [
    b'"plain words"',            # no escape: the raw text holds it already
    b'"bad \\x escape"',         # not JSON: no parser decodes it
    b'"unterminated \\u0031',    # no closing quote
])
def test_literals_without_a_decodable_escape_add_nothing(content):
    """Only terminated literals with an escape JSON accepts are added; the raw text is always there."""
    assert body.read(content, "text/plain").texts == [content.decode()]


def test_too_many_escaped_literals_are_refused():
    """A text body with more escaped literals than the cap is refused, not read in part."""
    with pytest.raises(body.BodyError, match="escaped JSON strings"):
        body.read(b'"\\n" ' * 10_001, "text/plain")


@pytest.mark.parametrize("content", [
    b'"\\"' * 100_000,              # every quote escaped after the first: no literal ever closes
    b'"' + b'\\' * 300_001,         # a run of backslashes with no closing quote
    b'"' * 300_000,
    b'"a\\' * 100_000,
])
def test_the_literal_scan_is_linear(content):
    """Unclosed, escaped and doubled quotes (300 kB) are scanned in well under a second: no quadratic walk."""
    started = time.perf_counter()
    body.read(content, "text/plain")
    assert time.perf_counter() - started < 1.0
