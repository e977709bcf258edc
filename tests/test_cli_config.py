"""``--config FILE`` means the same before or after any command's name."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from dojoguard.cli import cli


def every_command(group: click.Group, path=()):
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from every_command(command, (*path, name))


COMMANDS = [path for path, _ in every_command(cli)]


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "school.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    return path


def test_the_tree_is_walked():
    """The walk finds the commands IT use most (so the test below covers them)."""
    assert {("audit", "tail"), ("consent", "show"), ("run",), ("rules", "check"), ("held", "list")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_accepts_config_after_its_name(path, settings):
    """No command answers "No such option: --config" when the setting follows it."""
    result = CliRunner().invoke(cli, [*path, "--config", str(settings), "--help"])
    assert result.exit_code == 0, result.output
    assert "--config" in result.output


def test_config_after_the_command_is_the_file_read(settings, tmp_path):
    """`audit tail --config FILE` reads the audit log in that file's data folder, as `--config FILE audit tail` does."""
    runner = CliRunner()
    runner.invoke(cli, ["--config", str(settings), "consent", "links"], catch_exceptions=False)
    before = runner.invoke(cli, ["--config", str(settings), "config", "check"], catch_exceptions=False)
    after = runner.invoke(cli, ["config", "check", "--config", str(settings)], catch_exceptions=False)
    assert before.output == after.output and str(tmp_path / "data") in after.output
    export = tmp_path / "sims.csv"
    export.write_text("Adno,Legal Forename,Legal Surname,Parental Consent\n1,Ann,Lee,P\n", encoding="utf-8")
    imported = runner.invoke(cli, ["consent", "import", str(export), "--format", "sims", "--config", str(settings)])
    assert imported.exit_code == 0, imported.output
    tail = runner.invoke(cli, ["audit", "tail", "--config", str(settings)], catch_exceptions=False)
    assert tail.exit_code == 0, tail.output
    assert "consent.imported" in [json.loads(line)["type"] for line in tail.output.splitlines()]


def test_two_different_settings_files_are_an_error(settings, tmp_path):
    """Before and after the command naming different files: refused, never one silently chosen."""
    other = tmp_path / "other.yaml"
    other.write_text(f"data_dir: {tmp_path / 'elsewhere'}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(other), "config", "check", "--config", str(settings)])
    assert result.exit_code == 2 and "--config is given twice with different files" in result.output
    same = CliRunner().invoke(cli, ["--config", str(settings), "config", "check", "--config", str(settings)])
    assert same.exit_code == 0, same.output


def test_config_after_the_command_overrides_the_environment_variable(settings, tmp_path):
    """DOJOGUARD_CONFIG is a default; a file named on the command line wins, wherever it is written."""
    other = tmp_path / "other.yaml"
    other.write_text(f"data_dir: {tmp_path / 'elsewhere'}\n", encoding="utf-8")
    result = CliRunner(env={"DOJOGUARD_CONFIG": str(other)}).invoke(cli, ["config", "check", "--config",
                                                                          str(settings)])
    assert result.exit_code == 0 and str(tmp_path / "data") in result.output
