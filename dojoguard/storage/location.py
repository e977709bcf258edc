"""Where a school's stores live: SQLite files in the data folder, or its schemas on the trust's PostgreSQL server.

The ``storage`` setting says which: ``sqlite`` (the default: every store a
file beside the others) or a PostgreSQL address, where each store of the
school (``trust.school``) keeps its tables in a schema of its own
(``school_schema``). The audit log is not among them: it is always written to
this machine first and shipped (``dojoguard.trust``), so a proxy never waits
on the network to record a decision; with stores on a server and no
``trust.database`` of its own, it is shipped to that server
(``trust_database``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dojoguard.storage.postgresql import PostgreSQLDatabase, school_schema

SQLITE = "sqlite"


@dataclass(frozen=True)
class Storage:
    """The ``storage`` setting, read: ``dsn`` None means SQLite files."""

    dsn: str | None = None
    school: str | None = None
    connect_timeout_s: float = 5.0

    @classmethod
    def from_config(cls, config: Any) -> "Storage":
        value = config["storage"]
        if not value or value == SQLITE:
            return cls()
        trust = config["trust"]
        return cls(dsn=str(value), school=trust.get("school"),
                   connect_timeout_s=float(trust.get("connect_timeout_s") or 5.0))

    @property
    def central(self) -> bool:
        """Whether the school's stores are on a PostgreSQL server rather than in files here."""
        return self.dsn is not None

    def schema(self, store: str) -> str:
        if not self.school:
            raise ValueError("storage on PostgreSQL needs trust.school: each school's stores are kept apart")
        return school_schema(self.school, store)

    def open(self, store: str, *, statement_timeout_s: float | None = None,
             application_name: str | None = None, reconnect: bool = True) -> PostgreSQLDatabase:
        """Connect to ``store``'s schema (``registry``, ``holds``, ``state``) for this school.

        Raises ``psycopg.OperationalError`` when the server cannot be reached.
        """
        if self.dsn is None:
            raise ValueError("the stores are SQLite files here: open them by path")
        return PostgreSQLDatabase.open(self.dsn, connect_timeout_s=self.connect_timeout_s,
                                       statement_timeout_s=statement_timeout_s, schema=self.schema(store),
                                       application_name=application_name or f"dojoguard {store}",
                                       reconnect=reconnect)


def trust_database(config: Any) -> str | None:
    """Where this proxy's audit records are shipped: ``trust.database``, else the server ``storage`` names
    (a school whose stores are on the trust's server ships its audit trail there too), else nowhere."""
    named = config["trust"].get("database")
    if named:
        return str(named)
    return Storage.from_config(config).dsn
