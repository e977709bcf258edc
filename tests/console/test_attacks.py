"""The console attacked: replayed cookies, redirects, enumeration, oversized parameters, injection.

Each pins a property checked in review: the problems it found (a copied cookie working after log-out, a tab
in `next` leading off the site, a disabled account confirming its password, oversized page numbers, dates and
report ranges) are fixed, and these tests keep them so.
"""

from __future__ import annotations

import time

from itsdangerous import TimestampSigner

from dojoguard.names import Names

from .conftest import BASE, NOW, PASSWORD, Browser
from .test_pages import C1, T1, seed

HOST = "console.school.example"
COOKIE = "__Host-dojoguard-console"


def _cookie(browser: Browser) -> str:
    found = browser.client.get_cookie(COOKIE, domain=HOST)
    assert found is not None
    return found.value


# -- sessions ---------------------------------------------------------------


def test_a_session_cookie_copied_before_log_out_no_longer_works_after_it(app):
    """docs: a login ends "at log-out". The session lives only in the signed cookie, so a copy taken before
    "Log out" (a shared computer, a proxy log, malware) keeps working until it has been idle 30 minutes."""
    browser = Browser(app)
    browser.login("head")
    stolen = _cookie(browser)
    browser.get("/")
    assert browser.post("/logout").status_code == 302
    assert browser.get("/").status_code == 302  # the browser that logged out is logged out...
    thief = Browser(app)
    thief.client.set_cookie(COOKIE, stolen, domain=HOST, secure=True)
    # ...but the copied cookie still opens the console.
    assert thief.get("/").status_code == 302


def test_an_idle_login_ends_on_the_server_not_only_in_the_browser(app, monkeypatch):
    browser = Browser(app)
    browser.login("head")
    assert browser.get("/").status_code == 200
    later = int(time.time()) + 31 * 60
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    answer = browser.get("/")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")


def test_a_disabled_accounts_copied_cookie_ends_too(app):
    browser = Browser(app)
    browser.login("lead")
    assert browser.get("/").status_code == 200
    app.extensions["dojoguard"].accounts.disable("lead")
    assert browser.get("/").status_code == 302


# -- login ------------------------------------------------------------------


def test_after_login_a_tab_in_next_does_not_lead_to_another_site(app):
    """Browsers strip tab and newline from URLs, so "/\\t/evil.example" would be "//evil.example"."""
    browser = Browser(app)
    browser.get("/login")
    done = browser.post("/login", {"username": "head", "password": PASSWORD, "next": "/\t/evil.example/"})
    location = done.headers["Location"]
    assert "\t" not in location and not location.replace("\t", "").startswith("//")


def test_the_case_or_spaces_of_the_name_do_not_reset_the_lockout(app):
    browser = Browser(app)
    for name in ("head", "HEAD", " Head ", "hEaD", "head  "):
        browser.login(name, "wrong password entirely")
    refused = browser.login("head")  # the right password, after five wrong ones under five spellings
    assert refused.status_code == 401 and "locked" in refused.get_data(as_text=True)


def test_a_disabled_account_does_not_confirm_its_password(app):
    """"This account is disabled" comes only after the right password: the form confirms a guessed password
    of a disabled account (a leaver's, perhaps used elsewhere), while a wrong one says "wrong name or password"."""
    app.extensions["dojoguard"].accounts.disable("dpo")
    browser = Browser(app)
    right = browser.login("dpo").get_data(as_text=True)
    wrong = browser.login("dpo", "wrong password entirely").get_data(as_text=True)
    assert ("disabled" in right) == ("disabled" in wrong)


def test_a_very_long_password_is_refused_quickly_and_plainly(app):
    browser = Browser(app)
    answer = browser.login("head", "x" * 2_000_000)
    assert answer.status_code == 401 and "wrong name or password" in answer.get_data(as_text=True).lower()


# -- parameters that are too large ------------------------------------------


def test_a_huge_page_number_is_not_a_server_error(browser, cfg):
    seed(cfg)
    browser.login("lead")
    assert browser.get("/decisions/?page=" + "9" * 30).status_code in (200, 400)


def test_a_search_to_the_last_day_of_the_calendar_is_not_a_server_error(browser, cfg):
    seed(cfg)
    browser.login("lead")
    assert browser.get("/decisions/?from=2026-12-01&to=9999-12-31").status_code in (200, 302, 400)


def test_a_report_to_the_last_day_of_the_calendar_is_not_a_server_error(browser, cfg):
    seed(cfg)
    browser.login("head")
    answer = browser.get("/reports/download?period=range&from=2026-12-01&to=9999-12-31&format=csv")
    assert answer.status_code in (200, 302, 400)


def test_a_report_range_is_bounded_like_a_search(browser, cfg):
    """A search is cut to 400 days; a report's range is not, and a report reads every record in it
    (the whole log, on the box the proxy shares) on each download, by any leader, as often as asked."""
    seed(cfg)
    browser.login("lead")
    answer = browser.get("/reports/download?period=range&from=1900-01-01&to=9000-12-31&format=csv")
    assert answer.status_code in (302, 400)


def test_an_upload_larger_than_the_limit_is_refused(browser):
    from io import BytesIO

    browser.login("dpo")
    browser.get("/consent/")
    answer = browser.post("/consent/import", {"format": "generic", "exported_on": "",
                                              "file": (BytesIO(b"x" * (9 * 1024 * 1024)), "big.csv")},
                          content_type="multipart/form-data")
    assert answer.status_code == 413


# -- references -------------------------------------------------------------


def test_references_that_are_not_hex_or_too_long_or_wild_find_nothing(browser, cfg):
    ids = seed(cfg)
    browser.login("lead")
    for reference in ("%" * 8, "_" * 8, ids[0][:8] + "%", ids[0] + "0", "z" * 3000, ids[0][:7] + "\U0010ffff"):
        page = browser.get("/decisions/" + reference)
        assert page.status_code == 302 and page.headers["Location"] == "/decisions/", reference
        shown = browser.get("/decisions/").get_data(as_text=True)
        assert "is not a reference" in shown or "No decision has" in shown or "too short" in shown, reference
    for reference in ("%" * 8, ids[0][:8] + "%", "z" * 3000):
        assert browser.get("/held/" + reference, follow_redirects=True).status_code == 200


def test_an_ambiguous_prefix_is_refused_with_the_candidates(browser, cfg):
    from dojoguard.audit.log import AuditLog
    from dojoguard.clock import FixedClock

    seed(cfg)
    log = AuditLog.open(cfg.path("audit", "database"), clock=FixedClock(NOW))
    try:
        first = sorted(r.record_id for r in log.records())[0]
        # two records starting with the same 8 characters
        prefix = first[:8]
    finally:
        log.close()
    import sqlite3

    raw = sqlite3.connect(cfg.path("audit", "database"))
    triggers = raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for name, _ in triggers:
        raw.execute(f"DROP TRIGGER {name}")
    raw.execute("UPDATE records SET id = ? WHERE id = (SELECT id FROM records WHERE id != ? ORDER BY id DESC "
                "LIMIT 1)", (prefix + "f" * 24, first))
    for _, sql in triggers:
        raw.execute(sql)
    raw.commit()
    raw.close()
    browser.login("lead")
    page = browser.get("/decisions/" + prefix, follow_redirects=True).get_data(as_text=True)
    assert "give more of it" in page


# -- injection ----------------------------------------------------------------


def test_script_in_a_learned_teacher_or_class_name_is_shown_as_text(browser, cfg):
    seed(cfg)
    names = Names.open(cfg.path("proxy", "state"))
    names.learn("teacher", T1, '<script>alert(1)</script>"><img src=x onerror=alert(2)>', NOW)
    names.learn("class", C1, "</code><svg onload=alert(3)>", NOW)
    names.close()
    browser.login("head")
    for path in ("/", f"/decisions/?teacher={T1}", "/exemptions/"):
        page = browser.get(path).get_data(as_text=True)
        assert "<script>alert" not in page and "<img src=x" not in page and "<svg onload" not in page, path


def test_sql_in_search_parameters_is_only_a_value(browser, cfg):
    ids = seed(cfg)
    browser.login("lead")
    for field in ("teacher", "class", "rule"):
        page = browser.get(f"/decisions/?{field}=' OR 1=1 --")
        assert page.status_code == 200 and ids[0][:8] not in page.get_data(as_text=True), field


def test_the_report_file_name_is_built_from_dates_only(browser, cfg):
    seed(cfg)
    browser.login("head")
    answer = browser.get('/reports/download?period=range&from=2026-12-01&to=2026-12-07&format=csv%22%0d%0aX:1')
    disposition = answer.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="dojoguard-2026-12-01-to-2026-12-07.html"'
    assert "X" not in answer.headers


# -- authorization --------------------------------------------------------------


ROUTES = [("GET", "/"), ("GET", "/decisions/"), ("GET", "/decisions/" + "0" * 32), ("GET", "/held/"),
          ("GET", "/held/" + "0" * 32), ("GET", "/held/" + "0" * 32 + "/media/1"),
          ("POST", "/held/" + "0" * 32 + "/approve"), ("POST", "/held/" + "0" * 32 + "/reject"),
          ("GET", "/exemptions/"), ("POST", "/exemptions/"), ("POST", "/exemptions/x/revoke"),
          ("GET", "/consent/"), ("POST", "/consent/import"), ("POST", "/consent/import/" + "a" * 32),
          ("GET", "/reports/"), ("GET", "/reports/download"), ("GET", "/health/"), ("GET", "/trust/"),
          ("GET", "/trust/download")]


def test_every_route_but_login_needs_a_login(app):
    rules = {r.rule for r in app.url_map.iter_rules()} - {"/static/<path:filename>", "/login", "/logout"}
    assert len(rules) == 18
    browser = Browser(app)
    for method, path in ROUTES:
        if method == "GET":
            answer = browser.get(path)
        else:
            answer = browser.post(path, {})
        assert answer.status_code == 302 and answer.headers["Location"].startswith("/login"), path


def test_every_post_needs_the_csrf_token(app):
    browser = Browser(app)
    browser.login("head")
    for method, path in ROUTES + [("POST", "/logout"), ("POST", "/login")]:
        if method == "POST":
            assert browser.post(path, {}, token=False).status_code == 400, path


def test_a_consent_preview_token_cannot_be_replayed_or_walk_out_of_its_folder(browser, cfg):
    from io import BytesIO

    from .test_pages import GENERIC

    browser.login("dpo")
    browser.get("/consent/")
    preview = browser.post("/consent/import", {"format": "generic", "exported_on": "2026-12-01",
                                               "file": (BytesIO(GENERIC.encode()), "mis.csv")},
                           content_type="multipart/form-data").get_data(as_text=True)
    import re

    token = re.search(r"/consent/import/([0-9a-f]{32})", preview).group(1)
    browser.get("/consent/")
    first = browser.post(f"/consent/import/{token}", {"format": "generic", "exported_on": "2026-12-01"},
                         follow_redirects=True).get_data(as_text=True)
    assert "Imported" in first
    again = browser.post(f"/consent/import/{token}", {"format": "generic", "exported_on": "2026-12-01"},
                         follow_redirects=True).get_data(as_text=True)
    assert "expired" in again
    for bad in ("..%2F..%2Fconfig", "." * 32, "a" * 31 + "/"):
        assert browser.post(f"/consent/import/{bad}", {"format": "generic"}).status_code in (404, 405, 308)
    assert BASE
