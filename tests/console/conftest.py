"""A console on a fresh data folder, driven in-process through Flask's test client over https://."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dojoguard import config as config_module
from dojoguard.clock import FixedClock

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday
BASE = "https://console.school.example"
PASSWORD = "three random words here"


def write_config(folder: Path, **console) -> Path:
    import json

    doc = {"data_dir": str(folder / "data"), "console": {"admin_networks": ["127.0.0.1/32", "10.20.0.0/16"],
                                                         **console}}
    path = folder / "config.yaml"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def cfg(tmp_path):
    return config_module.load(write_config(tmp_path))


@pytest.fixture
def clock():
    return FixedClock(NOW)


@pytest.fixture
def app(cfg, clock):
    from dojoguard.console.app import create_app

    made = create_app(cfg, clock=clock)
    accounts = made.extensions["dojoguard"].accounts
    for name, role in (("head", "headteacher"), ("lead", "leader"), ("dpo", "dpo"), ("tech", "it")):
        accounts.add(name, role, PASSWORD, NOW)
    yield made
    made.extensions["dojoguard"].close()


class Browser:
    """A test client that keeps cookies, sends the Referer a browser would, and reads CSRF tokens."""

    def __init__(self, app, address: str = "127.0.0.1"):
        self.client = app.test_client()
        self.address = address
        self.last = "/"

    def get(self, path: str, **kw):
        response = self.client.get(path, base_url=BASE, environ_base={"REMOTE_ADDR": self.address}, **kw)
        self.last = path
        return response

    def post(self, path: str, data: dict | None = None, *, token: bool = True, **kw):
        data = dict(data or {})
        if token:
            data["csrf_token"] = self.token()
        return self.client.post(path, base_url=BASE, data=data, environ_base={"REMOTE_ADDR": self.address},
                                headers={"Referer": BASE + self.last}, **kw)

    def token(self) -> str:
        page = self.get(self.last if self.last != "/logout" else "/login")
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
        if found is None:
            page = self.get("/login")
            found = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
        return found.group(1)

    def login(self, name: str, password: str = PASSWORD):
        self.get("/login")
        return self.post("/login", {"username": name, "password": password})


@pytest.fixture
def browser(app):
    return Browser(app)


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium, driven by Playwright (both installed by scripts/setup --test)."""
    import shutil

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium is not installed (scripts/setup --test installs Debian's package)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is installed by scripts/setup --test")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    # The console's own certificate is made on first run: the test trusts it as a school's IT would, once.
    context = chromium.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()
