"""Open the school's hold store where the settings keep it: its SQLite file, or the trust's server.

With ``storage: postgresql://...`` the held and queued items are in the
school's ``holds_<school>`` schema: the proxy keeps and sends them, and the
``held`` commands and the console review them, wherever each runs. The
sealing key stays a file on each machine (``holds.key``, see seal.py): every
machine sharing a school's store needs the same one.
"""

from __future__ import annotations

from typing import Any

from dojoguard.holds.seal import key_path_for
from dojoguard.holds.store import HoldStore
from dojoguard.storage.location import Storage


class HoldsUnavailable(RuntimeError):
    """The hold store is on the trust's server, and the server cannot be reached."""


def open_holds(config: Any) -> HoldStore:
    """The hold store the settings name. Raises ``SealKeyError`` for a bad key, ``HoldsUnavailable``
    when the server cannot be reached."""
    path = config.path("holds", "database")
    key_path = key_path_for(config, path)
    storage = Storage.from_config(config)
    if not storage.central:
        return HoldStore.open(path, key_path=key_path)
    try:
        database = storage.open("holds")
    except Exception as exc:  # psycopg's errors: say which store and where, then why
        from dojoguard.storage.postgresql import redacted

        raise HoldsUnavailable(f"cannot reach the hold store on the trust's server ({redacted(storage.dsn)}, "
                               f"schema {storage.schema('holds')}): {exc}") from exc
    return HoldStore.on(database, key_path=key_path)
