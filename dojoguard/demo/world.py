"""The demo's world: a data folder, the consent registry, the ClassDojo stand-in and the real proxy process.

``World`` is a context manager: whatever happens (an error, Ctrl-C), leaving
it stops the proxy process and the stand-in.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import httpx

from dojoguard.audit.log import AuditLog
from dojoguard.clock import FileClock
from dojoguard.consent_registry.registry import Registry
from dojoguard.demo import photos, school
from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess


class DemoError(Exception):
    """A part of the demo could not be set up or did not behave as dojoguard should."""


class World:
    def __init__(self, folder: Path, day: date, progress: Callable[[str], None]):
        self.folder = Path(folder)
        self.day = day
        self.progress = progress
        self.data_dir = self.folder / "data"
        self.clock_file = self.folder / "clock"
        self.config = school.write_config(self.folder, data_dir=self.data_dir)
        self.standin: StandIn | None = None
        self.proxy: ProxyProcess | None = None
        self.client: httpx.Client | None = None
        self.audit: AuditLog | None = None

    # -- lifetime -------------------------------------------------------------

    def __enter__(self) -> "World":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        self.set_time(7, 45)
        self.progress("Importing the class's consents (dojoguard consent import)")
        export = self.folder / "mis-consents.csv"
        export.write_text(school.consents_csv(), "utf-8")
        self.dojoguard("consent", "import", str(export), "--format", "generic")
        self.progress("Enrolling the portraits of pupils with biometric consent (dojoguard consent enrol)")
        enrolment = self.folder / "enrolment-photos"
        enrolment.mkdir()
        # Everyone's portrait is offered; enrolment itself skips whoever lacks written consent.
        for mis_id, *_ in school.PUPILS:
            (enrolment / f"{mis_id}.jpg").write_bytes(photos.sample_bytes("astronaut.jpg"))
        self.enrolment = self.dojoguard("consent", "enrol", str(enrolment))
        self.progress("Starting the ClassDojo stand-in and the proxy (dojoguard run)")
        self.standin = StandIn(self.folder / "standin")
        self.standin.start()
        self.proxy = ProxyProcess(self.config, self.folder, self.standin.port, self.standin.ca_cert,
                                  clock_file=self.clock_file)
        try:
            self.proxy.start(timeout_s=180)
        except RuntimeError as exc:
            raise DemoError(str(exc)) from None
        # The client trusts only the proxy's CA, as a school iPad does.
        context = ssl.create_default_context(cafile=str(self.proxy.ca_cert))
        self.client = httpx.Client(proxy=self.proxy.url, verify=context, timeout=120)
        self.audit = AuditLog.open(self.data_dir / "audit.sqlite")

    def close(self) -> None:
        for part, stop in ((self.client, "close"), (self.audit, "close"), (self.proxy, "stop"),
                           (self.standin, "stop")):
            if part is not None:
                try:
                    getattr(part, stop)()
                except Exception:  # noqa: BLE001 - keep stopping the other parts
                    pass
        self.client = self.audit = self.proxy = self.standin = None

    # -- what the day uses --------------------------------------------------

    def set_time(self, hour: int, minute: int = 0) -> datetime:
        """Move the proxy's clock to this time on the demo day."""
        when = school.at(self.day, hour, minute)
        FileClock.write(self.clock_file, when)
        return when

    def dojoguard(self, *args: str) -> str:
        """Run a real dojoguard command with the demo's settings; its output, or DemoError."""
        env = {k: v for k, v in os.environ.items() if k != "DOJOGUARD_CONFIG"}
        env["PYTHONWARNINGS"] = "ignore"
        done = subprocess.run([sys.executable, "-m", "dojoguard", "--config", str(self.config), *args],
                              capture_output=True, text=True, env=env, timeout=600, check=False)
        if done.returncode != 0:
            raise DemoError(f"`dojoguard {args[0]} {args[1] if len(args) > 1 else ''}` failed "
                            f"(exit {done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def received(self, method: str, path_part: str) -> list:
        return [r for r in self.standin.received if r.method == method and path_part in r.path]

    def record(self, decision_id: str, timeout_s: float = 10.0):
        """The audit record of a decision (it is durable before the answer is sent, so this is quick)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.audit.get(decision_id)
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def events(self, name: str, after_seq: int = 0) -> list:
        return list(self.audit.records(after_seq=after_seq, types=(name,)))

    def head_seq(self) -> int:
        head = self.audit.head()
        return head.seq if head else 0

    def wait_for_event(self, name: str, after_seq: int, timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.events(name, after_seq):
                return True
            time.sleep(0.2)
        return False

    def wait_for_roster(self, count: int, timeout_s: float = 20.0) -> None:
        """Until the proxy has handed the class roster to the consent registry."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with Registry.open(self.data_dir / "registry.sqlite", create=False) as registry:
                if len([p for p in registry.dojo_pupils() if data.CLASS_ID in p.class_ids]) >= count:
                    return
            time.sleep(0.2)
        raise DemoError("the proxy did not pass the class roster to the consent registry")


def photo_attachment(data_bytes: bytes) -> dict:
    """A Class Story attachment as the web app sends a freshly taken photo: inline, as a data URI."""
    return {"type": "photo", "data": "data:image/jpeg;base64," + base64.b64encode(data_bytes).decode()}


def attached_photo(received) -> bytes:
    """The photo bytes ClassDojo received in a Class Story post."""
    uri = json.loads(received.body)["attachments"][0]["data"]
    return base64.b64decode(uri.split(",", 1)[1])
