"""The console's guards, in-process: admin networks by the connection's address, login, roles, CSRF,
cookie flags and headers, lockout, and the audit record of each step."""

from __future__ import annotations

import pytest

from dojoguard.audit.log import AuditLog

from .conftest import PASSWORD, Browser


def events(cfg, *types):
    log = AuditLog.open(cfg.path("audit", "database"))
    try:
        return [(r.type, r.fields) for r in log.records(types=types or None) if r.type != "audit.created"]
    finally:
        log.close()


def test_pages_need_a_login_and_the_login_leads_back(browser):
    answer = browser.get("/decisions/?verdict=block")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login?next=")
    done = browser.login("head")
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert browser.get("/decisions/").status_code == 200


@pytest.mark.parametrize("address", ["192.168.1.20", "10.21.0.1", "::ffff:192.168.1.20", "not-an-address", ""])
def test_addresses_outside_the_admin_networks_are_refused_before_the_login_form(app, address):
    """The connection's own address decides; X-Forwarded-For from anywhere changes nothing."""
    outsider = Browser(app, address)
    answer = outsider.client.get("/login", base_url="https://console.school.example",
                                 environ_base={"REMOTE_ADDR": address}, headers={"X-Forwarded-For": "127.0.0.1"})
    assert answer.status_code == 403
    assert "console.admin_networks" in answer.get_data(as_text=True)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.20.3.4", "::ffff:10.20.3.4"])
def test_addresses_inside_the_admin_networks_reach_the_login_form(app, address):
    assert Browser(app, address).get("/login").status_code == 200


def test_session_cookie_and_headers(browser):
    done = browser.login("head")
    cookie = done.headers["Set-Cookie"]
    assert cookie.startswith("__Host-dojoguard-console=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in cookie
    page = browser.get("/")
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "script-src" not in page.headers["Content-Security-Policy"]  # no scripts from anywhere
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    assert "<script" not in page.get_data(as_text=True)


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(browser, cfg):
    browser.login("head")
    answer = browser.post("/exemptions/", {"rule": "messaging-hours", "scope": "everyone",
                                           "from": "2026-12-07T17:00", "until": "2026-12-07T19:00",
                                           "reason": "Fair"}, token=False)
    assert answer.status_code == 400 and "security token" in answer.get_data(as_text=True)
    assert not cfg.path("rules", "exemptions").exists()
    forged = browser.post("/held/0123456789ab/approve", {"csrf_token": "forged"}, token=False)
    assert forged.status_code == 400


def test_a_login_form_posted_from_another_site_is_refused(app):
    """A Referer from elsewhere fails the CSRF check even with a token (WTF_CSRF_SSL_STRICT)."""
    browser = Browser(app)
    token = browser.token()
    answer = browser.client.post("/login", base_url="https://console.school.example",
                                 data={"username": "head", "password": PASSWORD, "csrf_token": token},
                                 headers={"Referer": "https://evil.example/"})
    assert answer.status_code == 400


@pytest.mark.parametrize(("name", "refused", "allowed"), [
    ("lead", ["/exemptions/", "/consent/", "/health/"], ["/", "/decisions/", "/held/", "/reports/"]),
    ("dpo", ["/exemptions/", "/held/", "/health/"], ["/", "/decisions/", "/consent/", "/reports/"]),
    ("tech", ["/exemptions/", "/held/", "/consent/", "/reports/"], ["/", "/decisions/", "/health/"]),
    ("head", [], ["/", "/decisions/", "/held/", "/exemptions/", "/consent/", "/reports/", "/health/"]),
])
def test_each_role_opens_its_pages_only(browser, name, refused, allowed):
    browser.login(name)
    nav = browser.get("/").get_data(as_text=True)
    for path in refused:
        assert browser.get(path).status_code == 403, path
        assert f'href="{path}"' not in nav
    for path in allowed:
        assert browser.get(path).status_code == 200, path


def test_a_leader_cannot_grant_by_posting_the_form_directly(browser, cfg):
    browser.login("lead")
    browser.get("/")
    answer = browser.post("/exemptions/", {"rule": "messaging-hours", "scope": "everyone",
                                           "from": "2026-12-07T17:00", "until": "2026-12-07T19:00",
                                           "reason": "Fair"})
    assert answer.status_code == 403
    assert not cfg.path("rules", "exemptions").exists()


def test_five_wrong_passwords_lock_the_account_and_it_is_recorded(browser, cfg):
    for _ in range(4):
        assert browser.login("lead", "wrong password!").status_code == 401
    locked = browser.login("lead", "wrong password!")
    assert locked.status_code == 401 and "locked" in locked.get_data(as_text=True)
    still = browser.login("lead")
    assert still.status_code == 401 and "locked" in still.get_data(as_text=True)
    recorded = [t for t, _ in events(cfg, "console.login_refused", "console.locked")]
    assert recorded == ["console.login_refused"] * 4 + ["console.locked", "console.login_refused"]
    assert all(PASSWORD not in str(f) and "wrong password!" not in str(f) for _, f in events(cfg))


def test_a_name_that_does_not_exist_is_not_recorded(browser, cfg):
    """What is typed in the name field may be a password typed in the wrong box: never kept."""
    assert browser.login("my secret password", PASSWORD).status_code == 401
    assert not any("secret" in str(fields) for _, fields in events(cfg))


def test_disabling_an_account_ends_its_open_login(app, browser):
    browser.login("lead")
    assert browser.get("/held/").status_code == 200
    app.extensions["dojoguard"].accounts.disable("lead")
    assert browser.get("/held/").status_code == 302


def test_login_and_logout_are_recorded_with_the_account(browser, cfg):
    browser.login("head")
    browser.get("/")
    browser.post("/logout")
    assert [(t, f["account"]) for t, f in events(cfg, "console.login", "console.logout")] == [
        ("console.login", "head"), ("console.logout", "head")]
    assert browser.get("/").status_code == 302


def test_after_login_only_a_path_on_this_console_is_followed(browser):
    browser.get("/login")
    answer = browser.post("/login", {"username": "head", "password": PASSWORD, "next": "//evil.example/"})
    assert answer.headers["Location"] == "/"
