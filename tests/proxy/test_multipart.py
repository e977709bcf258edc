"""The multipart parser keeps every byte it was given."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dojoguard.proxy import multipart
from dojoguard.standin import reading

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


def test_a_decoy_boundary_in_a_longer_name_is_not_the_boundary():
    """``xboundary=DECOY; boundary=REAL`` has the boundary REAL, as a standard parser reads it."""
    assert multipart.boundary_of("multipart/form-data; xboundary=DECOY; boundary=REAL") == b"REAL"
    assert multipart.boundary_of("multipart/form-data; boundary=REAL; xboundary=DECOY") == b"REAL"


@pytest.mark.parametrize("ctype", [
    "multipart/form-data; boundary=A; boundary=B",
    "multipart/form-data; boundary=A; BOUNDARY=A",
    'multipart/form-data; boundary=""',
    "multipart/form-data; boundary=" + "x" * 71,
    'multipart/form-data; boundary="ends with space "',
    'multipart/form-data; boundary="semi;colon"',
    "multipart/form-data; boundary=a; junk",
    "multipart/form-data",
    "multipart/form-data; xboundary=DECOY",
])
def test_ambiguous_or_invalid_boundaries_are_refused(ctype):
    """A repeated, empty, over-long, badly ended or missing boundary, or junk beside it, is refused."""
    with pytest.raises(multipart.MultipartError):
        multipart.boundary_of(ctype)


def _form(*parts: bytes, boundary: bytes = b"B") -> bytes:
    return b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary + b"--\r\n"


FIELD = b'Content-Disposition: form-data; name="body"\r\n\r\nhello'


@pytest.mark.parametrize("bad", [
    _form(b"Content-Type: text/plain\r\n\r\nno name"),                                    # no disposition
    _form(b'Content-Disposition: attachment; name="body"\r\n\r\nx'),                       # not form-data
    _form(b'Content-Disposition: form-data; filename="a.txt"\r\n\r\nx'),                   # no name
    _form(b'Content-Disposition: form-data; name="hello"; name="body"\r\n\r\nsh1t'),       # name twice
    _form(b"Content-Disposition: form-data; name*=utf-8''body\r\n\r\nsh1t"),                # extended name
    _form(b'Content-Disposition: form-data; name="x"\r\nContent-Disposition: form-data; name="body"\r\n\r\nsh1t'),
    _form(b'Content-Disposition: form-data;\r\n name="body"\r\n\r\nsh1t'),                  # folded header
    _form(b'Content-Disposition: form-data; name="body"\r\nContent-Transfer-Encoding: base64\r\n\r\nc2gxdA=='),
    _form(b'Content-Disposition: form-data; name="body"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
          b"sh=31t"),
    _form(FIELD) + b"--B\r\n" + FIELD.replace(b"hello", b"sh1t") + b"\r\n--B--\r\n",         # parts after the end
    _form(b'Content-Disposition: form-data; name="body"\r\nBroken header\r\n\r\nx'),
])
def test_form_parts_a_server_could_read_differently_are_refused(bad):
    """A form part without one plain form-data name, with folded or repeated headers, or encoded, is refused."""
    with pytest.raises(multipart.MultipartError):
        multipart.parse(bad, b"B", form=True)


def test_identity_transfer_encodings_are_accepted():
    """``Content-Transfer-Encoding: binary`` (or 7bit, 8bit) changes nothing, so the part is read."""
    parsed = multipart.parse(_form(b'Content-Disposition: form-data; name="body"\r\n'
                                   b"Content-Transfer-Encoding: 8bit\r\n\r\nhello"), b"B", form=True)
    assert (parsed.parts[0].name, parsed.parts[0].body) == ("body", b"hello")


_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True)
_VALUES = st.binary(max_size=60).filter(lambda b: b"--" not in b and b"\r" not in b and b"\n" not in b)


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(st.tuples(_NAMES, _VALUES), min_size=1, max_size=6),
       boundary=st.from_regex(r"[0-9A-Za-z'()+_,./:=?-]{1,69}", fullmatch=True))
def test_what_this_parser_accepts_the_standard_library_reads_the_same(fields, boundary):
    """For any form this parser accepts, Python's email parser finds the same names with the same values."""
    content = _form(*(f'Content-Disposition: form-data; name="{n}"'.encode() + b"\r\n\r\n" + v
                      for n, v in fields), boundary=boundary.encode())
    ctype = f'multipart/form-data; boundary="{boundary}"'
    try:
        parsed = multipart.parse(content, multipart.boundary_of(ctype), form=True)
    except multipart.MultipartError:
        return
    ours: dict[str, list[str]] = {}
    for part in parsed.parts:
        ours.setdefault(part.name, []).append(part.body.decode("utf-8", "replace"))
    assert ours == reading.fields(ctype, content)


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
