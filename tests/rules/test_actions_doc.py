"""The `decide` examples in docs/actions.md, run as written: the verdicts and the device-group lines are true."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from dojoguard.cli import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "actions.md"


def _examples() -> tuple[dict[str, str], str, list[tuple[list[str], str]]]:
    text = DOC.read_text("utf-8")[DOC.read_text("utf-8").index("## Examples"):]
    files = dict(re.findall(r"\(`(\w+\.json)`\):\n\n```json\n(.*?)```", text, re.S))
    settings = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    runs = [(line.removeprefix("$ dojoguard ").split(), expected)
            for line, expected in re.findall(r"^(\$ dojoguard decide[^\n]*)\n((?:(?!\$ ).*\n)*)", text, re.M)]
    return files, settings, runs


def test_the_docs_decide_examples_come_back_as_the_docs_say(tmp_path):
    """Each `$ dojoguard decide ...` in the examples gives the verdict and rules its output shows."""
    files, settings, runs = _examples()
    assert set(files) == {"points.json", "message.json"} and len(runs) == 3
    for name, body in files.items():
        json.loads(body)
        (tmp_path / name).write_text(body, encoding="utf-8")
    school = yaml.safe_load(settings)
    school["data_dir"] = str(tmp_path / "data")
    (tmp_path / "school.yaml").write_text(yaml.safe_dump(school), encoding="utf-8")
    for args, shown in runs:
        args = [str(tmp_path / a) if a in (*files, "school.yaml") else a for a in args]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        decision = json.loads(result.stdout)
        assert decision["verdict"] == re.search(r'"verdict": "(\w+)"', shown).group(1), (args, decision)
        assert [m["rule"] for m in decision["matched"]] == re.findall(r'"rule": "([\w-]+)"', shown), (args, decision)
        for line in shown.splitlines():
            if line.startswith("device "):
                assert line.replace("school.yaml", str(tmp_path / "school.yaml")) in result.stderr


def test_without_the_schools_settings_the_device_is_named_outside_every_group(tmp_path):
    """The docs' last claim: the embedded settings block the award by school-devices, and the output says why."""
    files, _, _ = _examples()
    (tmp_path / "points.json").write_text(files["points.json"], encoding="utf-8")
    (tmp_path / "settings.yaml").write_text(f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["decide", "--config", str(tmp_path / "settings.yaml"),
                                      "--action", str(tmp_path / "points.json")])
    decision = json.loads(result.stdout)
    assert decision["verdict"] == "block" and [m["rule"] for m in decision["matched"]] == ["school-devices"]
    assert "device 10.20.1.5: in no device group" in result.stderr
    assert "device group school-devices: 127.0.0.0/8, ::1/128 (from the settings file" in result.stderr
