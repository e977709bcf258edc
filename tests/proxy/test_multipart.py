"""The multipart parser keeps every byte it was given."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dojoguard.proxy import multipart

BODY = (b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
        b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\r\n\r\n\x00bin\r\n--XyZ\r\n"
        b"Content-Disposition: form-data; name=\"caption\"\r\n\r\nhello\r\n--XyZ--\r\nepilogue")


def test_round_trip_is_byte_for_byte():
    """Parsing then serialising gives back the exact original body, CR/LF inside binary parts included."""
    parsed = multipart.parse(BODY, b"XyZ")
    assert multipart.serialise(parsed) == BODY
    assert parsed.parts[0].body == b"\xff\xd8\r\n\r\n\x00bin"


def test_part_headers_are_read_and_kept():
    """A part's name, filename and content type are read, and kept on re-encoding."""
    part = multipart.parse(BODY, b"XyZ").parts[0]
    assert (part.name, part.filename, part.content_type) == ("file", "a.jpg", "image/jpeg")


def test_replacing_one_part_changes_nothing_else():
    """Replacing a part's body leaves the boundary, the other parts and the headers as they were."""
    parsed = multipart.parse(BODY, b"XyZ").with_part_body(0, b"NEW")
    assert multipart.serialise(parsed) == BODY.replace(b"\xff\xd8\r\n\r\n\x00bin", b"NEW")


@pytest.mark.parametrize("bad", [b"no boundary here", b"--XyZ\r\nheaders only", b"--XyZ\r\nA: b\r\n\r\nbody without end",
                                 b"--XyZ garbage"])
def test_malformed_bodies_are_refused(bad):
    """A body that breaks the multipart format raises MultipartError rather than guessing."""
    with pytest.raises(multipart.MultipartError):
        multipart.parse(bad, b"XyZ")


def test_boundary_is_read_quoted_or_bare():
    """The boundary parameter is found quoted or unquoted."""
    assert multipart.boundary_of('multipart/form-data; boundary="a b"') == b"a b"
    assert multipart.boundary_of("multipart/form-data; boundary=----WebKit123") == b"----WebKit123"


@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_any_binary_parts_survive(bodies):
    """Arbitrary binary part bodies (not containing the delimiter) round-trip unchanged."""
    boundary = b"----dojoguardBoundary7MA4YWxk"
    content = b"".join(b"--" + boundary + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + body + b"\r\n"
                       for body in bodies) + b"--" + boundary + b"--\r\n"
    if any(b"\r\n--" + boundary in b"\r\n" + body + b"\r\n" for body in bodies):
        return
    parsed = multipart.parse(content, boundary)
    assert [p.body for p in parsed.parts] == bodies
    assert multipart.serialise(parsed) == content
