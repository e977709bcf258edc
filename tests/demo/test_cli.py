"""``dojoguard demo`` as a person runs it: JSON lines, the table, the kept folder, and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dojoguard.cli import cli

pytestmark = pytest.mark.slow

EXPECTED = {
    "text_update": "allow", "class_photo": "allow", "photo_without_consent": "block",
    "photo_with_location": "redact", "positive_point": "allow", "needs_work_point": "block",
    "long_personal_message": "warn", "evening_message": "block", "evening_message_exempt": "allow",
    "unknown_endpoint": "warn",
}


def _processes_mentioning(text: str) -> list[int]:
    """Ids of running processes whose command line mentions ``text`` (the demo's own folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_demo_json_prints_one_object_per_step_and_the_report(tmp_path):
    """--json prints a JSON object per step with the proxy's verdicts, then the report path; nothing keeps running."""
    keep, report = tmp_path / "kept", tmp_path / "day.html"
    result = CliRunner().invoke(cli, ["demo", "--json", "--keep", str(keep), "--report", str(report)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    steps = {line["name"]: line for line in lines if "step" in line}
    assert len(steps) == 14
    assert {name: steps[name]["verdict"] for name in EXPECTED} == EXPECTED
    assert lines[-1] == {"report": str(report.resolve()), "kept": str(keep.resolve())}
    assert report.read_text("utf-8").lstrip().lower().startswith("<!doctype html")
    assert "dojoguard is listening" in (keep / "proxy.log").read_text("utf-8")
    assert (keep / "data" / "audit.sqlite").exists()
    assert _processes_mentioning(str(keep)) == []


def test_demo_refuses_a_keep_folder_that_is_not_empty(tmp_path):
    """--keep will not mix the demo's data into a folder that already holds something."""
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["demo", "--keep", str(tmp_path)])
    assert result.exit_code != 0
    assert "is not empty" in result.output and (tmp_path / "precious.txt").read_text() == "keep me"


def test_ctrl_c_stops_the_proxy_and_the_demo(tmp_path):
    """Ctrl-C during the day stops the demo and the proxy process it started; nothing is left running."""
    keep = tmp_path / "kept"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    demo = subprocess.Popen([sys.executable, "-m", "dojoguard", "demo", "--keep", str(keep),
                             "--report", str(tmp_path / "r.html")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 300
        for line in demo.stderr:
            if "Playing" in line or time.monotonic() > deadline:
                break
        assert _processes_mentioning(str(keep / "config.yaml")), "the proxy should be running"
        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 130
    finally:
        if demo.poll() is None:
            demo.kill()
    time.sleep(0.5)
    assert _processes_mentioning(str(keep)) == []
    assert "interrupted" in demo.stderr.read()
