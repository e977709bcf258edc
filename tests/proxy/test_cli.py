"""``dojoguard run`` refuses to start unsafely; ``dojoguard discover`` prints shapes only."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.proxy.discovery import Discovery
from dojoguard.state import State
from tests.proxy.conftest import write_config


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_run_refuses_an_invalid_policy_with_file_and_line(tmp_path):
    """A policy file with an error stops the start with file:line, code and hint (exit status 2)."""
    policy = tmp_path / "bad.yaml"
    policy.write_text("policy: {name: x}\ndefault: {verdict: maybe}\n")
    config = write_config(tmp_path)
    doc = json.loads(config.read_text())
    doc["rules"]["policy"] = str(policy)
    config.write_text(json.dumps(doc))
    result = run("run", "--config", str(config))
    assert result.exit_code == 2, result.output
    assert f"{policy}:2:" in result.output


def test_run_refuses_an_invalid_catalogue(tmp_path):
    """A catalogue file with an unknown key stops the start with its position."""
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text("version: 1\nhosts:\n  - {host: teach.classdojo.com, role: api, confidence: confirmed}\n"
                         "endpoint: []\n")
    result = run("run", "--config", str(write_config(tmp_path, catalogue=str(catalogue))))
    assert result.exit_code == 2, result.output
    assert f"{catalogue}:4:1: DG-CATALOGUE-UNKNOWN" in result.output
    assert "Did you mean 'endpoints'?" in result.output


def test_run_refuses_an_invalid_setting(tmp_path):
    """An unknown proxy setting stops the start with a did-you-mean hint."""
    result = run("run", "--config", str(write_config(tmp_path, unknown_write="block")))
    assert result.exit_code == 2 and "unknown_writes" in result.output


def test_run_refuses_a_malformed_resolve(tmp_path):
    """A --resolve that is not HOST:PORT:ADDR:PORT is an error with an example."""
    result = run("run", "--config", str(write_config(tmp_path)), "--resolve", "teach.classdojo.com:443")
    assert result.exit_code == 1 and "HOST:PORT:ADDRESS:PORT" in result.output


def test_discover_prints_shapes(tmp_path):
    """discover lists unclassified write shapes with counts and keys, never values."""
    config = write_config(tmp_path)
    state = State(tmp_path / "data" / "proxy.sqlite")
    Discovery(state).record("POST", "teach.classdojo.com", "/api/x/5f0000000000000000000c01", "application/json",
                            {"caption": "string"}, datetime(2026, 11, 30, tzinfo=UTC))
    state.close()
    result = run("--config", str(config), "discover")
    assert result.exit_code == 0, result.output
    assert "POST teach.classdojo.com/api/x/{id}" in result.output and '"caption": "string"' in result.output
    as_json = json.loads(run("--config", str(config), "discover", "--json").output)
    assert as_json[0]["count"] == 1


def test_discover_with_nothing_recorded(tmp_path):
    """discover says so when nothing was recorded yet."""
    result = run("--config", str(write_config(tmp_path)), "discover")
    assert result.exit_code == 0 and "No unclassified writes" in result.output


def test_every_command_help_ends_with_an_example():
    """run and discover document themselves with an example."""
    for name in ("run", "discover"):
        result = run(name, "--help")
        assert "Example:" in result.output


def test_run_config_reads_its_own_file_even_after_another_was_loaded(tmp_path):
    """``dojoguard run --config B`` starts from B, though A's settings were already loaded; A and B both given is refused."""
    from dojoguard.environment import Environment

    good = write_config(tmp_path)
    (tmp_path / "other").mkdir()
    bad = write_config(tmp_path / "other", unknown_write="block")
    env = Environment(config_path=good)
    assert env.config.source  # A loaded (and kept) before the command runs
    result = CliRunner().invoke(cli, ["run", "--config", str(bad)], obj=env)
    assert result.exit_code == 2 and "unknown_writes" in result.output and str(bad) in result.output
    both = CliRunner().invoke(cli, ["--config", str(good), "run", "--config", str(bad)])
    assert both.exit_code == 2 and "--config is given twice with different files" in both.output


def test_there_is_one_config_option_with_one_meaning(tmp_path):
    """The global and run's --config are the same declaration: same type, a file, not a folder."""
    for args in (["--config", str(tmp_path), "discover"], ["run", "--config", str(tmp_path)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and "is a directory" in result.output
