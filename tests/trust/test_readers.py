"""School-scoped accounts on the real server: PostgreSQL itself shows each account only its own school."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from dojoguard.trust import accounts
from dojoguard.trust import report as trust_report
from dojoguard.trust.central import Central, TrustError
from dojoguard.trust.verify import verify
from tests.support.postgres import as_account
from tests.trust.test_central import T0, chain, register


@pytest.fixture
def two_schools(postgres, central_dsn):
    central = Central.open(central_dsn)
    a, _ = register(central, "a-1", "school-a")
    b, _ = register(central, "b-1", "school-b", log_id="log-b")
    central.add(a, chain(6))
    central.add(b, chain(4))
    yield central, central_dsn
    central.close()


def test_a_school_account_sees_only_its_school_whatever_it_runs(postgres, two_schools):
    central, dsn = two_schools
    postgres.create_login("head_a")
    accounts.grant(central, "head_a", "school-a")
    with psycopg.connect(as_account(dsn, "head_a")) as conn:
        assert conn.execute("SELECT DISTINCT school FROM records").fetchall() == [("school-a",)]
        # Asking for the other school by name, or by its node, finds nothing.
        assert conn.execute("SELECT count(*) FROM records WHERE school = 'school-b'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM records WHERE node = 'b-1'").fetchone() == (0,)
        assert conn.execute("SELECT node FROM nodes").fetchall() == [("a-1",)]
        assert conn.execute("SELECT school FROM schools").fetchall() == [("school-a",)]
        assert conn.execute("SELECT account, school FROM readers").fetchall() == [("head_a", "school-a")]
    with psycopg.connect(as_account(dsn, "head_a"), autocommit=True) as conn:
        # It cannot widen its own scope, nor change a record.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO readers VALUES ('head_a', '*')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE records SET body = '{}'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE records DISABLE ROW LEVEL SECURITY")
    # dojoguard's own report and verification, run with that account, cover only school-a.
    scoped = Central.open(as_account(dsn, "head_a"), migrate=False)
    try:
        made = trust_report.gather(scoped, T0 - timedelta(days=1), T0 + timedelta(days=1))
        assert [s.school for s in made.schools] == ["school-a"] and made.decisions == 6
        assert [c.node for c in verify(scoped)] == ["a-1"] and verify(scoped)[0].is_ok
    finally:
        scoped.close()


def test_an_account_without_a_scope_sees_nothing_and_trust_wide_sees_all(postgres, two_schools):
    central, dsn = two_schools
    postgres.create_login("auditor")
    postgres.create_login("nobody_yet")
    accounts.grant(central, "auditor", None)
    with psycopg.connect(as_account(dsn, "auditor")) as conn:
        assert conn.execute("SELECT school, count(*) FROM records GROUP BY 1 ORDER BY 1").fetchall() == \
            [("school-a", 6), ("school-b", 4)]
    with psycopg.connect(as_account(dsn, "nobody_yet")) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM records")
    # Granted one school, then revoked: nothing again (not even an empty-but-allowed read).
    accounts.grant(central, "nobody_yet", "school-b")
    assert accounts.revoke(central, "nobody_yet", None) == 1
    with psycopg.connect(as_account(dsn, "nobody_yet")) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM records")
    assert ("auditor", accounts.TRUST_WIDE) in accounts.scopes(central)


def test_grant_refuses_accounts_it_cannot_scope(postgres, two_schools):
    central, _dsn = two_schools
    with pytest.raises(TrustError, match="no database account"):
        accounts.grant(central, "not_made", "school-a")
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("CREATE ROLE sees_all LOGIN BYPASSRLS")
    with pytest.raises(TrustError, match="bypasses row-level security"):
        accounts.grant(central, "sees_all", "school-a")
