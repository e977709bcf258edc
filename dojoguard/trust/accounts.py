"""Who may read and who may ship: database accounts scoped to a school, to the whole trust, or to one proxy.

Scoping is enforced by PostgreSQL's row-level security (``schema``), not by
dojoguard's own queries:

- a **reader** (a school's leaders, the trust's leaders or auditors) sees
  only the schools it was granted, whatever it runs (a dojoguard report,
  psql, a spreadsheet's connector); ``*`` is the whole trust;
- a **shipper** (one proxy's own account) may register only the node and
  school it was allowed, add records and checkpoints only to that node's
  chain, and read only that node's rows. It can change nothing, and cannot
  turn the store's guards off (only the owner can).

Accounts are made by the trust's database administrator (``CREATE ROLE ...
LOGIN``); these functions, run with the owner's connection, give one its
scope and the table rights it needs.
"""

from __future__ import annotations

from dojoguard.trust.central import NODE_NAME, Central, TrustError, check_name

TRUST_WIDE = "*"
# Every table a policy looks into (a policy's subquery needs the right to read its table).
_READ = ("schools", "nodes", "records", "checkpoints", "readers", "shippers", "purges")
# The bookkeeping a shipper's connection reads to see the schema is up to date.
_SHIPPER_READ = (*_READ, "schema_migrations", "dojoguard_schema_version")
_SHIPPER_INSERT = ("nodes", "records", "checkpoints")


def grant(central: Central, account: str, school: str | None) -> None:
    """Let ``account`` read ``school``'s records (None: every school's)."""
    scope = TRUST_WIDE if school is None else check_name(school, "school")
    conn = central.connection
    with conn.transaction():
        _ordinary(central, account)
        conn.execute("INSERT INTO readers (account, school) VALUES (%s, %s) ON CONFLICT DO NOTHING", (account, scope))
        _grant(central, "SELECT", _READ, account)


def allow_shipper(central: Central, account: str, node: str, school: str) -> None:
    """Let ``account`` ship as ``node`` of ``school`` (and nothing else)."""
    check_name(node, "node", NODE_NAME)
    check_name(school, "school")
    conn = central.connection
    with conn.transaction():
        _ordinary(central, account)
        registered = conn.execute("SELECT school FROM nodes WHERE node = %s", (node,)).fetchone()
        if registered is not None and registered[0] != school:
            raise TrustError(f"node {node!r} is registered in school {registered[0]!r}, not {school!r}")
        taken = conn.execute("SELECT account FROM shippers WHERE node = %s AND account <> %s",
                             (node, account)).fetchone()
        if taken is not None:
            raise TrustError(f"node {node!r} already ships as {taken[0]!r}: one account per node "
                             f"(dojoguard trust revoke {taken[0]} first)")
        conn.execute("INSERT INTO schools (school) VALUES (%s) ON CONFLICT DO NOTHING", (school,))
        conn.execute("INSERT INTO shippers (account, node, school) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                     (account, node, school))
        _grant(central, "SELECT", _SHIPPER_READ, account)
        _grant(central, "INSERT", _SHIPPER_INSERT, account)


def revoke(central: Central, account: str, school: str | None) -> int:
    """Take ``school`` (None: every scope, shipping included) from ``account``; returns how many it lost."""
    conn = central.connection
    with conn.transaction():
        if school is None:
            gone = conn.execute("DELETE FROM readers WHERE account = %s", (account,)).rowcount
            gone += conn.execute("DELETE FROM shippers WHERE account = %s", (account,)).rowcount
        else:
            gone = conn.execute("DELETE FROM readers WHERE account = %s AND school = %s", (account, school)).rowcount
        left = conn.execute("SELECT 1 FROM readers WHERE account = %s UNION ALL "
                            "SELECT 1 FROM shippers WHERE account = %s", (account, account)).fetchone()
        if left is None and conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (account,)).fetchone():
            _grant(central, "SELECT", _SHIPPER_READ, account, revoke=True)
            _grant(central, "INSERT", _SHIPPER_INSERT, account, revoke=True)
    return gone


def scopes(central: Central) -> list[tuple[str, str]]:
    """Every (account, what it may do) the store has: a school or ``*`` to read, ``ships as NODE (SCHOOL)``."""
    rows = [tuple(row) for row in central.connection.execute("SELECT account, school FROM readers")]
    rows += [(account, f"ships as {node} ({school})") for account, node, school in
             central.connection.execute("SELECT account, node, school FROM shippers")]
    return sorted(rows)


def _ordinary(central: Central, account: str) -> None:
    row = central.connection.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s",
                                     (account,)).fetchone()
    if row is None:
        raise TrustError(f"there is no database account {account!r}: the database administrator creates it "
                         f"first (CREATE ROLE \"{account}\" LOGIN PASSWORD '...')")
    if row[0]:
        raise TrustError(f"{account!r} is a superuser or bypasses row-level security: it would see every "
                         f"school whatever its scope; use an ordinary account")
    (owner,) = central.connection.execute(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'records' AND schemaname = current_schema()").fetchone()
    if owner == account:
        raise TrustError(f"{account!r} owns the central store's tables, so no scope would bind it; use another "
                         f"account")


def _grant(central: Central, right: str, tables, account: str, *, revoke: bool = False) -> None:
    from psycopg import sql

    statement = "REVOKE {} ON {} FROM {}" if revoke else "GRANT {} ON {} TO {}"
    central.connection.execute(sql.SQL(statement).format(
        sql.SQL(right), sql.SQL(", ").join(sql.Identifier(t) for t in tables), sql.Identifier(account)))
