"""A trust's central store: many schools' proxies shipping their audit records to one PostgreSQL.

Each proxy still writes every decision to its own local audit log first and
never waits on the network; a shipper (``shipper``) copies the records to the
central store (``central``), which checks every node's hash chain as the rows
arrive and keeps each node's signed checkpoints; ``verify`` re-checks all of it
from the central copy alone; ``report`` reads it per school and trust-wide;
``readers`` scopes leaders' database accounts to their school. See
``docs/trust.md``.
"""
