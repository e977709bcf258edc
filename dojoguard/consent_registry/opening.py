"""Open the school's consent register where the settings keep it: its SQLite file, or the trust's server.

Commands, the console and the proxy's learning all write through this, so
with ``storage`` on PostgreSQL every change lands in the one register each
proxy copies (``replica.py``); nothing writes to a proxy's copy but its copier.
"""

from __future__ import annotations

import threading
from typing import Any


from dojoguard.clock import Clock
from dojoguard.consent_registry.registry import Registry, RegistryUnavailable
from dojoguard.storage.location import Storage
from dojoguard.storage.postgresql import close_quietly


def open_registry(config: Any, *, clock: Clock | None = None, create: bool = True) -> Registry:
    """The register the settings name. Raises ``RegistryUnavailable`` when it cannot be opened or reached."""
    purposes = config["consent"]["purposes"]
    storage = Storage.from_config(config)
    if storage.central:
        from dojoguard.consent_registry.replica import open_central

        return open_central(storage, clock=clock, purposes=purposes)
    return Registry.open(config.path("consent", "database"), clock=clock, purposes=purposes, create=create)


class CentralLearner:
    """What the proxy learns from ClassDojo (classes, rosters), written to the school's register on the server.

    Called from the proxy's learning threads, never its event loop. The
    register is opened when first needed (so a server away at start costs
    only what is learned meanwhile); after a server restart its database
    connects again by itself (``PostgreSQLDatabase._alive``). An answer from
    ClassDojo that cannot be written is not learned; the next one that lists
    the class is.
    """

    def __init__(self, config: Any, *, clock: Clock | None = None):
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._registry: Registry | None = None

    def learn_class(self, class_id: str, name: str) -> None:
        self._call("learn_class", class_id, name)

    def learn_roster(self, class_id: str, pupils: list[tuple[str, str, str]]) -> None:
        self._call("learn_roster", class_id, pupils)

    def _call(self, method: str, *args) -> None:
        with self._lock:
            if self._registry is None:
                self._registry = open_registry(self.config, clock=self.clock)
            try:
                getattr(self._registry, method)(*args)
            except self._registry.database.errors as exc:
                raise RegistryUnavailable(f"the consent register on the trust's server failed: {exc}") from exc

    def close(self) -> None:
        if self._registry is not None:
            close_quietly(self._registry.database)
            self._registry = None
