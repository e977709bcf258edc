"""What the modules that replace a piece of mitmproxy (or wsproto) share.

dojoguard changes four methods of its pinned mitmproxy in place
(``tlsslices``, ``oversize``, ``headlimits``, ``wslimits``). Each is
installed only over the exact source it was written against, and the
source of what it calls or relies on, checked by digest at start: after an
upgrade that changed any of it, mitmproxy's own code stays and the proxy
says so, rather than running a copy that no longer fits around it. Each
module's ``uninstall`` puts mitmproxy's own methods back (for tests).
"""

from __future__ import annotations

import hashlib
import inspect


def source_digest(*functions) -> str:
    """SHA-256 of the source of ``functions``, in order."""
    return hashlib.sha256("".join(inspect.getsource(f) for f in functions).encode()).hexdigest()


_ABSENT = object()


def own(cls, name: str):
    """What ``cls`` itself defines as ``name`` (not what it inherits), so that ``restore`` can put it back."""
    return cls.__dict__.get(name, _ABSENT)


def restore(cls, name: str, before) -> None:
    """Put ``cls.name`` back as ``own`` saw it: the class's own attribute, or none (inherited again)."""
    if before is _ABSENT:
        if name in cls.__dict__:
            delattr(cls, name)
    else:
        setattr(cls, name, before)


def option_bytes(context, name: str, default: int) -> int:
    """A positive whole-number option of the layer's context; ``default`` when it is missing or not positive.

    A limit must never be switched off by a missing or broken setting, so
    the fallback is the default bound, not "no limit" (fail closed).
    """
    try:
        value = int(getattr(context.options, name))
    except (AttributeError, TypeError, ValueError):
        return default
    return value if value > 0 else default
