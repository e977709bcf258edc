"""Header values with parameters (Content-Type, Content-Disposition), read strictly as RFC 9110 writes them.

A server and the proxy must agree on what a request's ``boundary`` or
``charset`` is, or the proxy judges one body while the server reads
another. So a value is read by the grammar or not at all:

    media-type = type "/" subtype *( OWS ";" OWS [ parameter ] )
    parameter  = token "=" ( token / quoted-string )

Parameter names are case-insensitive; a name given twice is refused (one
parser takes the first, another the last), and so is anything the grammar
does not allow (``xboundary=A; boundary=B`` is read as two parameters, never
as a ``boundary`` found inside a longer name).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

# RFC 9110 5.6.2 tchar, 5.6.4 quoted-string (qdtext and quoted-pair, obs-text allowed), 5.6.3 OWS.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\uffff]|\\[\t \x21-\x7e\x80-\uffff])*"'
_OWS = r"[ \t]*"
_PARAMETER = re.compile(rf"{_OWS};{_OWS}(?:({_TOKEN})=({_TOKEN}|{_QUOTED}))?")
_MEDIA_TYPE = re.compile(rf"{_OWS}({_TOKEN})/({_TOKEN})")
_DISPOSITION = re.compile(rf"{_OWS}({_TOKEN})")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)

# Charsets every text reader here decodes the same way a server does: UTF-8, of which ASCII is a part.
UTF8_CHARSETS = frozenset({"utf-8", "utf8"})
ASCII_CHARSETS = frozenset({"us-ascii", "ascii"})


class HeaderValueError(ValueError):
    """A header value that does not follow the grammar, or repeats a parameter: it is not guessed at."""


@dataclass(frozen=True)
class MediaType:
    type: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def essence(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def charset(self) -> str | None:
        value = self.params.get("charset")
        return value.lower() if value is not None else None


@functools.lru_cache(maxsize=512)
def parse_media_type(value: str) -> MediaType:
    """``type/subtype; name=value ...``, type, subtype and names lower-cased; raises ``HeaderValueError``.

    Cached: a device sends the same few Content-Types again and again (the
    answer is shared, so it must not be changed by the caller).
    """
    m = _MEDIA_TYPE.match(value)
    if not m:
        raise HeaderValueError("the media type is not type/subtype")
    params = _parameters(value, m.end())
    return MediaType(m.group(1).lower(), m.group(2).lower(), params)


def parse_disposition(value: str) -> tuple[str, dict[str, str]]:
    """A Content-Disposition value (RFC 6266): its type, lower-cased, and its parameters."""
    m = _DISPOSITION.match(value)
    if not m:
        raise HeaderValueError("the disposition has no type")
    return m.group(1).lower(), _parameters(value, m.end())


def _parameters(value: str, pos: int) -> dict[str, str]:
    params: dict[str, str] = {}
    while pos < len(value):
        m = _PARAMETER.match(value, pos)
        if not m or m.end() == pos:
            if value[pos:].strip(" \t") == "":
                break
            raise HeaderValueError(f"unreadable parameters after character {pos}")
        pos = m.end()
        if m.group(1) is None:
            continue  # an empty parameter (";;") is allowed by the grammar and means nothing
        name, raw = m.group(1).lower(), m.group(2)
        if name in params:
            raise HeaderValueError(f"the parameter {name[:40]!r} is given more than once")
        params[name] = _QUOTED_PAIR.sub(r"\1", raw[1:-1]) if raw.startswith('"') else raw
    return params


def is_utf8_charset(charset: str | None) -> bool:
    """Whether text in this charset (None: not declared) is read as UTF-8, as the server reads it."""
    return charset is None or charset in UTF8_CHARSETS or charset in ASCII_CHARSETS


def decode_text(data: bytes, charset: str | None, what: str, *, strict: bool = False) -> str:
    """Text in a UTF-8 or ASCII charset; any other charset raises ``HeaderValueError`` rather than be misread.

    UTF-7, UTF-16, Latin-1 and the rest would need the server's own table
    of names and decoders to read as it does; a request that asks for one
    is refused instead. Bytes over 127 in text declared ASCII are refused
    too: servers disagree on what they mean.
    """
    if not is_utf8_charset(charset):
        raise HeaderValueError(f"{what} is in the charset {charset[:40]!r}, which is not read")
    if charset in ASCII_CHARSETS and not data.isascii():
        raise HeaderValueError(f"{what} is declared ASCII but is not")
    try:
        return data.decode("utf-8", "strict" if strict else "replace")
    except UnicodeDecodeError:
        raise HeaderValueError(f"{what} is not UTF-8") from None
