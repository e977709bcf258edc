"""Setting mitmproxy's options: which ones dojoguard needs, which it can do without, which it refuses.

mitmproxy adds and drops options between releases (its main branch has
dropped ``emudhra`` and ``emudhra_old``), and its ``Options.update`` raises
on any name it does not know. So the start sets only the options this
mitmproxy has, and says which it skipped. An option may be skipped only if
its absence is harmless: each one listed in ``HARMLESS_IF_ABSENT`` either
turns on something dojoguard keeps off (a mitmproxy without the option
cannot turn it on) or changes nothing but mitmproxy's own log. Every other
option dojoguard sets is part of how it keeps teachers' writes judged (what
is decrypted, that bodies are never streamed, how much is buffered, which
CA is trusted upstream): a mitmproxy without one of them is refused.

The ``emudhra`` options sign certificates with a leaked third-party CA key.
``refuse_leaked_ca`` is the one check of them, at start and on any later
change of an option (the dojoguard addon's ``configure``).
"""

from __future__ import annotations

import structlog
from mitmproxy import exceptions, optmanager

log = structlog.get_logger("dojoguard.proxy")

LEAKED_CA = ("emudhra", "emudhra_old")

# Options whose absence from mitmproxy is harmless, and why.
HARMLESS_IF_ABSENT = {
    "emudhra": "it could only turn on certificates signed with a leaked key",
    "emudhra_old": "it could only turn on certificates signed with a leaked key",
    "termlog_verbosity": "it only sets how much of mitmproxy's own log is shown",
}


class RefusedToStart(exceptions.OptionsError):
    """A setting that would make the proxy unsafe.

    An ``OptionsError``, so that mitmproxy undoes a later change that would
    make it unsafe instead of applying it.
    """


def apply(opts: optmanager.OptManager, wanted: dict) -> list[str]:
    """Set the ``wanted`` options this mitmproxy has; the names of those it skipped, logged.

    Raises ``RefusedToStart``, before setting anything, when one it lacks is
    not harmless to leave out.
    """
    missing = sorted(name for name in wanted if name not in opts)
    needed = [name for name in missing if name not in HARMLESS_IF_ABSENT]
    if needed:
        raise RefusedToStart(f"this mitmproxy has no option {', '.join(needed)}, which dojoguard needs to judge "
                             "writes safely; install the mitmproxy version dojoguard pins")
    opts.update(**{name: value for name, value in wanted.items() if name in opts})
    if missing:
        log.info("proxy.options_skipped", options=missing,
                 reasons={name: HARMLESS_IF_ABSENT[name] for name in missing})
    return missing


def refuse_leaked_ca(opts: optmanager.OptManager) -> None:
    """Raise ``RefusedToStart`` if an ``emudhra`` option is on (a mitmproxy without them passes)."""
    on = [name for name in LEAKED_CA if name in opts and getattr(opts, name)]
    if on:
        raise RefusedToStart(f"the emudhra options are on ({', '.join(on)}): they sign certificates with a "
                             "leaked third-party key")
