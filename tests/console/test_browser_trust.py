"""The Trust page in a real browser (Debian's Chromium, driven by Playwright), end to end: a real `dojoguard run`
ships a teacher's decisions to a real PostgreSQL central store, and a real `dojoguard console` shows them to a
trust-wide account, while a school's account is kept to its school.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from dojoguard.trust import accounts as trust_accounts
from dojoguard.trust.central import Central
from tests.console.test_browser import MESSAGE, PASSWORD, dojoguard
from tests.proxy.conftest import running_proxy, signed_in
from tests.support.postgres import as_account
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

SCREENS = Path(__file__).resolve().parents[2] / "test-output" / "console"


@pytest.fixture(scope="module")
def world(tmp_path_factory, postgres):
    folder = tmp_path_factory.mktemp("trust-console")
    dsn = postgres.create_database()
    reader = f"console_{dsn.rsplit('/', 1)[1]}"
    postgres.create_login(reader)
    owner = Central.open(dsn)
    try:
        trust_accounts.grant(owner, reader, None)
    finally:
        owner.close()
    settings = {"trust": {"database": dsn, "school": "st-wilfrids", "node": "st-wilfrids-1", "ship_every_s": 0.2},
                "console": {"trust_database": as_account(dsn, reader)}}
    with running_proxy(folder, settings=settings) as found:
        config = found["config"]
        for name in ("ceo", "head"):
            dojoguard(config, "console", "user", "add", name, "--role", "headteacher", "--password-stdin",
                      stdin=PASSWORD)
        dojoguard(config, "console", "user", "scope", "ceo", "--trust-wide")
        dojoguard(config, "console", "user", "scope", "head", "--school", "oakfield")
        with signed_in(found["proxy"]) as teacher:
            for i in range(3):
                assert teacher.post(MESSAGE, json={"body": f"Reading books home on Friday {i}"}).status_code == 200

        def shipped() -> bool:
            with psycopg.connect(dsn) as conn:
                return conn.execute("SELECT count(*) FROM records WHERE type = 'decision'").fetchone()[0] >= 3

        eventually(shipped, timeout_s=30)
        console = subprocess.Popen([sys.executable, "-m", "dojoguard", "--config", str(config), "console",
                                    "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
        try:
            said, started = [], None
            while started is None:
                line = console.stderr.readline()
                assert line, "the console stopped before it listened: " + "".join(said)
                said.append(line)
                started = re.search(r"https://127\.0\.0\.1:(\d+)/", line)
            yield dict(found, base=f"https://127.0.0.1:{started.group(1)}")
        finally:
            console.terminate()
            console.wait(15)


def log_in(page, world, name: str) -> None:
    page.goto(world["base"] + "/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")


def test_the_trusts_leader_reads_what_the_proxy_shipped(world, page):
    log_in(page, world, "ceo")
    page.click("nav >> text=Trust")
    page.select_option("select[name=period]", "week")
    page.click("#trust-period button")
    assert page.locator("select[name=period]").input_value() == "week"  # the period shown stays chosen
    row = page.locator("#schools tr", has_text="st-wilfrids").inner_text()
    # The proxy's three messages this week, as decisions of one teacher, allowed.
    cells = row.split("\t")
    assert cells[0] == "st-wilfrids" and int(cells[1]) >= 3 and cells[2] == "1", row
    assert "st-wilfrids-1" in page.locator("table.proxies").inner_text()
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / "trust.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_a_schools_account_sees_only_its_school(world, page):
    log_in(page, world, "head")
    page.click("nav >> text=Trust")
    assert "st-wilfrids" not in page.locator("main").inner_text()
    answer = page.goto(world["base"] + "/trust/?school=st-wilfrids")
    assert answer.status == 403
