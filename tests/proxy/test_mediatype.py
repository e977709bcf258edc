"""Content-Type and Content-Disposition values are read by RFC 9110's grammar, or refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dojoguard.proxy import mediatype


def test_type_subtype_and_parameters_are_read():
    """Type, subtype and parameter names are lower-cased; a quoted value is unquoted; quoted pairs are undone."""
    media = mediatype.parse_media_type('Multipart/Form-Data ; BOUNDARY="a \\"b\\" c";charset=UTF-8')
    assert (media.essence, media.params, media.charset) == ("multipart/form-data",
                                                             {"boundary": 'a "b" c', "charset": "UTF-8"}, "utf-8")


def test_a_prefixed_name_is_another_parameter():
    """``xboundary=DECOY`` is a parameter named xboundary: the boundary is the one named boundary."""
    media = mediatype.parse_media_type("multipart/form-data; xboundary=DECOY; boundary=REAL")
    assert media.params == {"xboundary": "DECOY", "boundary": "REAL"}


def test_empty_parameters_are_allowed():
    """``application/json;;;`` is valid RFC 9110 (empty parameters) and means application/json."""
    assert mediatype.parse_media_type("application/json;;; ").essence == "application/json"


@pytest.mark.parametrize("value", [
    "multipart/form-data; boundary=A; boundary=B",        # repeated
    "multipart/form-data; boundary=A; Boundary=A",        # repeated, in another case
    "multipart/form-data; boundary=a b",                  # a space in a token
    'multipart/form-data; boundary="unterminated',        # a quoted string that never ends
    "multipart/form-data; boundary",                      # a name without a value
    "multipart/form-data; =x",                            # a value without a name
    "multipart/form-data boundary=x",                     # no semicolon
    "multipart/form-data; boundary=x, boundary=y",        # a comma is not a separator here
    "multipart",                                          # no subtype
    "\x00",
    "",
])
def test_values_outside_the_grammar_are_refused(value):
    """Anything the grammar does not allow, and any parameter given twice, raises HeaderValueError."""
    with pytest.raises(mediatype.HeaderValueError):
        mediatype.parse_media_type(value)


def test_dispositions_are_read_the_same_way():
    """A Content-Disposition gives its type and parameters, and a repeated name is refused."""
    assert mediatype.parse_disposition('form-data; name="body"; filename="a.txt"') == \
        ("form-data", {"name": "body", "filename": "a.txt"})
    with pytest.raises(mediatype.HeaderValueError):
        mediatype.parse_disposition('form-data; name="hello"; name="body"')


@pytest.mark.parametrize("charset", ["utf-16", "utf-7", "iso-8859-1", "ebcdic", "utf-16le"])
def test_text_in_another_charset_is_refused(charset):
    """Text declared in a charset other than UTF-8 or ASCII is refused, never read as UTF-8 by mistake."""
    with pytest.raises(mediatype.HeaderValueError):
        mediatype.decode_text("sh1t".encode("utf-16"), charset, "the body")


def test_ascii_with_high_bytes_is_refused_and_utf8_is_read():
    """Bytes over 127 in text declared ASCII are refused; UTF-8 (declared or not) is read."""
    with pytest.raises(mediatype.HeaderValueError):
        mediatype.decode_text("café".encode(), "us-ascii", "the body")
    assert mediatype.decode_text("café".encode(), "utf-8", "the body") == "café"
    assert mediatype.decode_text("café".encode(), None, "the body") == "café"


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), min_size=1, max_size=5, unique=True),
       values=st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
                       min_size=5, max_size=5))
def test_any_well_formed_value_reads_back_as_written(names, values):
    """Any parameters written as RFC 9110 quoted strings are read back exactly, whatever characters they hold."""
    quoted = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
    header = "text/plain" + "".join(f'; {n}="{q}"' for n, q in zip(names, quoted, strict=False))
    assert mediatype.parse_media_type(header).params == dict(zip(names, values, strict=False))
