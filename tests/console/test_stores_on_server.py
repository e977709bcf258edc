"""The console with the school's stores on the trust's PostgreSQL server (storage: postgresql://...): a consent
import lands in the school's register there (nothing in the proxy's copy on this machine), and an exemption
granted and revoked on the Exemptions page changes the school's document there, with its records."""

from __future__ import annotations

import json
import re
import uuid
from io import BytesIO

import pytest

from dojoguard import config as config_module
from dojoguard.consent_registry.registry import PersonKind
from dojoguard.consent_registry.replica import open_central
from dojoguard.storage.location import Storage
from tests.console.conftest import write_config
from tests.console.test_pages import GENERIC


@pytest.fixture
def cfg(tmp_path, central_dsn):
    path = write_config(tmp_path)
    doc = json.loads(path.read_text())
    doc["storage"] = central_dsn
    doc["trust"] = {"school": "oak-" + uuid.uuid4().hex[:6]}
    path.write_text(json.dumps(doc))
    return config_module.load(path)


def test_a_consent_import_from_the_console_lands_in_the_schools_register_on_the_server(browser, cfg):
    browser.login("dpo")
    browser.get("/consent/")
    preview = browser.post("/consent/import", {"format": "generic", "exported_on": "2026-12-01",
                                               "file": (BytesIO(GENERIC.encode()), "mis.csv")})
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Ada Lovelace" in text
    token = re.search(r'/consent/import/([0-9a-f]{32})', text).group(1)
    browser.last = "/consent/"
    applied = browser.post(f"/consent/import/{token}", follow_redirects=True)
    assert "Imported:" in applied.get_data(as_text=True)
    assert "Ada Lovelace" in browser.get("/consent/").get_data(as_text=True)
    storage = Storage.from_config(cfg)
    with open_central(storage) as register:
        assert [p.name for p in register.people(PersonKind.PUPIL)] == ["Ada Lovelace"]
        assert register.database.schema == storage.schema("registry")
    # Another school's register in the same database does not have her.
    with open_central(Storage(dsn=storage.dsn, school="elm-" + uuid.uuid4().hex[:6])) as other:
        assert other.people() == []
    assert not cfg.path("consent", "database").exists()


def test_an_exemption_granted_and_revoked_in_the_console_changes_the_schools_document_on_the_server(browser, cfg):
    from dojoguard.rules import exemption_store

    browser.login("head")
    browser.get("/exemptions/")
    granted = browser.post("/exemptions/", {"rule": "messaging-hours", "scope": "everyone",
                                            "from": "2026-12-07T17:00", "until": "2026-12-07T19:00",
                                            "reason": "Christmas fair"}, follow_redirects=True)
    assert "Granted ex-" in granted.get_data(as_text=True), granted.get_data(as_text=True)[-2000:]
    storage = Storage.from_config(cfg)
    db = exemption_store.open_store(storage)
    try:
        text, version = exemption_store.read(db)
        trail = [t for (t,) in db.execute("SELECT type FROM exemptions_trail ORDER BY seq")]
    finally:
        db.close()
    assert version == 1 and "Christmas fair" in text and trail == ["exemption.granted"]
    exemption_id = re.search(r"id: (ex-[0-9-]+)", text).group(1)
    assert exemption_id in browser.get("/exemptions/").get_data(as_text=True)
    browser.last = "/exemptions/"
    revoked = browser.post(f"/exemptions/{exemption_id}/revoke", {"reason": "Fair moved"}, follow_redirects=True)
    assert f"Revoked {exemption_id}" in revoked.get_data(as_text=True)
    assert exemption_store.current(cfg).get(exemption_id).revoked is not None
