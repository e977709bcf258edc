"""The console's Trust page on a real central store: each account sees the schools its scope gives it, and no
address, parameter or download shows it another."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dojoguard import config as config_module
from dojoguard.trust import accounts as trust_accounts
from dojoguard.trust.central import Central
from tests.console.conftest import NOW, PASSWORD, Browser, write_config
from tests.support.postgres import as_account


def _stored(dsn: str) -> None:
    """Two schools' records in the store, this week (the console's clock is Monday 7 December 2026)."""
    from dojoguard.audit import checkpoint as checkpoints
    from dojoguard.audit.record import GENESIS, canonical, format_time, seal

    central = Central.open(dsn)
    try:
        for node, school, count, verdict in (("a-1", "school-a", 5, "allow"), ("b-1", "school-b", 3, "block")):
            key = checkpoints.Ed25519PrivateKey.generate()
            registered = central.register(node, school, log_id=f"log-{node}", start_seq=1, start_prev=GENESIS,
                                          public_key_pem=checkpoints.public_key_pem(key).decode())
            rows, prev = [], GENESIS
            for seq in range(1, count + 1):
                body = canonical({"verdict": verdict, "kind": "message.send", "teacher": f"t-{node}",
                                  "rules": [] if verdict == "allow" else ["messages-in-school-hours"]})
                at = format_time(NOW - timedelta(days=3) + timedelta(minutes=seq))
                digest = seal(seq, f"{node}-{seq}", at, "decision", prev, body)
                rows.append((seq, f"{node}-{seq}", at, "decision", body, prev, digest))
                prev = digest
            central.add(registered, rows)
    finally:
        central.close()


@pytest.fixture
def trust_app(tmp_path, postgres, central_dsn):
    from dojoguard.console.app import create_app
    from dojoguard.clock import FixedClock

    _stored(central_dsn)
    reader = f"console_{central_dsn.rsplit('/', 1)[1]}"
    postgres.create_login(reader)
    central = Central.open(central_dsn)
    try:
        trust_accounts.grant(central, reader, None)
    finally:
        central.close()
    cfg = config_module.load(write_config(tmp_path, trust_database=as_account(central_dsn, reader)))
    app = create_app(cfg, clock=FixedClock(NOW))
    accounts = app.extensions["dojoguard"].accounts
    for name, role, scope in (("ceo", "headteacher", "*"), ("head-a", "headteacher", "school-a"),
                              ("head-none", "headteacher", None), ("tech", "it", "*")):
        accounts.add(name, role, PASSWORD, NOW)
        accounts.set_trust_scope(name, scope)
    yield app
    app.extensions["dojoguard"].close()


def _as(app, name: str) -> Browser:
    browser = Browser(app)
    browser.login(name)
    return browser


def test_a_trust_wide_account_sees_every_school_and_may_narrow_to_one(trust_app):
    ceo = _as(trust_app, "ceo")
    page = ceo.get("/trust/").get_data(as_text=True)
    assert 'href="/trust/"' in page  # in the navigation
    assert "school-a" in page and "school-b" in page and "messages-in-school-hours" in page
    narrowed = ceo.get("/trust/?school=school-b").get_data(as_text=True)
    assert 'id="school-school-b"' in narrowed and 'id="school-school-a"' not in narrowed


def test_a_school_account_sees_its_school_only_whatever_it_asks(trust_app):
    head = _as(trust_app, "head-a")
    page = head.get("/trust/").get_data(as_text=True)
    assert 'id="school-school-a"' in page and "school-b" not in page
    assert head.get("/trust/?school=school-b").status_code == 403
    assert head.get("/trust/download?school=school-b&format=json").status_code == 403
    downloaded = head.get("/trust/download?format=json&period=range&from=2026-11-30&to=2026-12-07")
    assert downloaded.status_code == 200
    assert [s["school"] for s in json.loads(downloaded.get_data(as_text=True))["schools"]] == ["school-a"]


def test_accounts_without_a_scope_or_the_role_have_no_trust_page(trust_app):
    none = _as(trust_app, "head-none")
    assert none.get("/trust/").status_code == 403
    assert 'href="/trust/"' not in none.get("/").get_data(as_text=True)
    tech = _as(trust_app, "tech")  # IT staff read no reports, trust-wide scope or not
    assert tech.get("/trust/").status_code == 403


def test_a_narrowed_scope_ends_the_open_login(trust_app):
    ceo = _as(trust_app, "ceo")
    assert ceo.get("/trust/").status_code == 200
    trust_app.extensions["dojoguard"].accounts.set_trust_scope("ceo", "school-b")
    again = ceo.get("/trust/")
    assert again.status_code == 302 and "/login" in again.headers["Location"]
    ceo.login("ceo")
    page = ceo.get("/trust/").get_data(as_text=True)
    assert 'id="school-school-b"' in page and "school-a" not in page


def test_the_page_says_when_the_store_cannot_be_reached(tmp_path, postgres):
    from dojoguard.console.app import create_app
    from dojoguard.clock import FixedClock

    cfg = config_module.load(write_config(tmp_path, trust_database=f"postgresql://x@127.0.0.1:{postgres.port + 7}/x"))
    app = create_app(cfg, clock=FixedClock(NOW))
    try:
        app.extensions["dojoguard"].accounts.add("ceo", "headteacher", PASSWORD, NOW)
        app.extensions["dojoguard"].accounts.set_trust_scope("ceo", "*")
        answer = _as(app, "ceo").get("/trust/")
        assert answer.status_code == 503 and "cannot be reached" in answer.get_data(as_text=True)
    finally:
        app.extensions["dojoguard"].close()
