"""URL paths read as a server routes them.

ClassDojo's API is an Express application. Express's default router
compares paths case-insensitively and takes a trailing slash as optional
(``caseSensitive: false``, ``strict: false``), so ``/api/AwardBatch/`` reaches
the handler of ``/api/awardBatch``; the catalogue's patterns are compiled the
same way. In front of it, load balancers and other frameworks may also
resolve ``..`` and ``.`` segments, merge repeated slashes and decode escaped
letters (RFC 3986, section 6.2.2), so the proxy reads a path both as sent
and in that canonical form, and judges it by the stricter reading.
"""

from __future__ import annotations

import functools
import re

OPTIONAL_TRAILING_SLASH = "/?"

# RFC 3986 unreserved characters: escaping them changes nothing for a server that decodes.
_ESCAPED_UNRESERVED = re.compile(r"%(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[DEde]|5[Ff]|7[Ee])")
_SLASHES = re.compile(r"/{2,}")


def of(target: str) -> str:
    """The path of a request target, as sent: everything before ``?`` or ``#``.

    Not ``urlsplit``: it reads ``//api/awardBatch`` as a host "api" and the
    path "/awardBatch", which is not how a server reads a request line.
    """
    return target.split("?", 1)[0].split("#", 1)[0]


def canonical(path: str) -> str:
    """``path`` (without its query) with escaped unreserved characters decoded, slashes merged, dot segments removed."""
    path = _ESCAPED_UNRESERVED.sub(lambda m: chr(int(m.group(0)[1:], 16)), path)
    path = _SLASHES.sub("/", path)
    return remove_dot_segments(path)


def remove_dot_segments(path: str) -> str:
    """RFC 3986, section 5.2.4, for an absolute path: ``/a/./b/../c`` is ``/a/c``; never above the root."""
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments[1:] if path.startswith("/") else segments):
        last = i == len(segments) - (2 if path.startswith("/") else 1)
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


@functools.lru_cache(maxsize=4096)  # asked for each write by the guard, the catalogue and recognition
def spellings(path: str) -> tuple[str, ...]:
    """The readings of ``path`` to route: canonical first, then as sent when that differs."""
    path = of(path)
    normal = canonical(path)
    return (normal,) if normal == path else (normal, path)
