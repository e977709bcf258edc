"""The proxy loads the trust's base rules with the school's (`rules.base`), and its reload watcher watches both:
an edit to the base reloads the policy, and a school edit that would weaken the base is kept out."""

from __future__ import annotations

import json
import os
import time

from dojoguard import config
from dojoguard.clock import FixedClock
from dojoguard.proxy.services import open_services, reload_changed
from dojoguard.proxy.settings import Settings
from dojoguard.rules.action import Action
from dojoguard.rules.decision import Verdict
from tests.proxy.conftest import MONDAY_18
from tests.rules.test_layering import BASE, SCHOOL, rule

MESSAGE_AT_18 = {"kind": "message.send", "channel": "message", "text": "PE tomorrow", "at": MONDAY_18.isoformat(),
                 "teacher": {"id": "t1"}}


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    # A new mtime for every edit, however fast the test: the watcher compares (mtime, size).
    stamp = time.time_ns() + 10**9 * (1 + len(text))
    os.utime(path, ns=(stamp, stamp))


def test_the_proxy_decides_by_the_base_and_the_school_and_reloads_either(tmp_path):
    _write(tmp_path / "trust" / "trust.yaml", BASE)
    _write(tmp_path / "oak" / "oak.yaml", SCHOOL)
    settings_file = tmp_path / "config.yaml"
    settings_file.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "rules": {
        "policy": str(tmp_path / "oak"), "base": str(tmp_path / "trust"), "reload": True}}), "utf-8")
    settings = Settings.from_config(config.load(settings_file))
    services = open_services(settings, FixedClock(MONDAY_18), images=False)
    try:
        action = Action.from_dict(MESSAGE_AT_18)
        assert services.policy.evaluate(action).verdict is Verdict.BLOCK  # the base's 7.30am to 6pm
        assert [r.id for r in services.policy.rules] == ["trust-messaging-hours", "trust-safeguarding", "school-hours"]

        _write(tmp_path / "trust" / "trust.yaml", BASE.replace('"18:00"', '"19:00"'))
        (reloaded,) = reload_changed(services)
        assert reloaded.what == "policy" and reloaded.ok
        assert services.policy.evaluate(action).verdict is Verdict.HOLD  # now only the school's 5pm applies

        good = services.policy.revision
        _write(tmp_path / "oak" / "oak.yaml", SCHOOL + rule("trust-messaging-hours", "{kind: story.post}", "warn"))
        (rejected,) = reload_changed(services)
        assert not rejected.ok and rejected.codes == ("DG-RULES-BASE",)
        assert services.policy.revision == good  # the last good policy stays in force
    finally:
        services.close()
