"""Where dojoguard keeps its databases: one way to open them, run a transaction and migrate their schema.

Each store (the audit log, the consent registry, the hold store, the proxy's
state) takes its connection from a ``Database`` here instead of opening one
itself; ``docs/storage.md`` says what a second backend would have to provide.
"""

from dojoguard.storage.database import Busy, Database, SQLiteDatabase
from dojoguard.storage.migrations import Migration, NewerSchemaError, migrate

__all__ = ["Busy", "Database", "Migration", "NewerSchemaError", "SQLiteDatabase", "migrate"]
