"""Who may read what in the central store: database accounts scoped to one school, or to the whole trust.

Scoping is enforced by PostgreSQL's row-level security (``schema``), not by
dojoguard's own queries: a school's leaders connect with their own account,
and whatever they run (a dojoguard report, psql, a spreadsheet's connector)
sees only their school's rows. A trust-wide account (``*``) sees every
school's. Accounts are made by the trust's database administrator
(``CREATE ROLE ... LOGIN``); ``grant`` gives one read access and its scope.
"""

from __future__ import annotations

from dojoguard.trust.central import Central, TrustError, check_name

TRUST_WIDE = "*"
_TABLES = ("schools", "nodes", "records", "checkpoints", "readers")


def grant(central: Central, account: str, school: str | None) -> None:
    """Let ``account`` read ``school``'s records (None: every school's)."""
    scope = TRUST_WIDE if school is None else check_name(school, "school")
    conn = central.connection
    with conn.transaction():
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (account,)).fetchone() is None:
            raise TrustError(f"there is no database account {account!r}: the database administrator creates it "
                             f"first (CREATE ROLE \"{account}\" LOGIN PASSWORD '...')")
        if conn.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", (account,)).fetchone()[0]:
            raise TrustError(f"{account!r} is a superuser or bypasses row-level security: it would see every "
                             f"school whatever its scope; use an ordinary account")
        conn.execute("INSERT INTO readers (account, school) VALUES (%s, %s) ON CONFLICT DO NOTHING", (account, scope))
        from psycopg import sql

        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in _TABLES), sql.Identifier(account)))


def revoke(central: Central, account: str, school: str | None) -> int:
    """Take ``school`` (None: every scope) from ``account``; returns how many scopes it lost."""
    conn = central.connection
    with conn.transaction():
        if school is None:
            gone = conn.execute("DELETE FROM readers WHERE account = %s", (account,)).rowcount
        else:
            gone = conn.execute("DELETE FROM readers WHERE account = %s AND school = %s", (account, school)).rowcount
        if not conn.execute("SELECT 1 FROM readers WHERE account = %s", (account,)).fetchone():
            from psycopg import sql

            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (account,)).fetchone():
                conn.execute(sql.SQL("REVOKE SELECT ON {} FROM {}").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in _TABLES), sql.Identifier(account)))
    return gone


def scopes(central: Central) -> list[tuple[str, str]]:
    """Every (account, school or ``*``) the store has."""
    return [tuple(row) for row in central.connection.execute("SELECT account, school FROM readers ORDER BY 1, 2")]
