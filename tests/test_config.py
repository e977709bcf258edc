"""Tests for the deployment settings loader."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dojoguard import config
from dojoguard.cli import cli
from dojoguard.yamlfile import FileProblems


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, "utf-8")
    return path


def test_embedded_defaults_load_and_validate():
    """The embedded defaults are a complete, valid configuration."""
    loaded = config.load(None)
    assert loaded["proxy"]["listen"] == "127.0.0.1:8080"
    assert str(loaded.timezone) == "Europe/London"


def test_file_is_laid_over_defaults(tmp_path):
    """A school's file need only hold what it changes; the rest stays default."""
    loaded = config.load(write(tmp_path, "proxy:\n  listen: 0.0.0.0:3128\n"), base_dir=tmp_path)
    assert loaded["proxy"]["listen"] == "0.0.0.0:3128"
    assert loaded["proxy"]["unknown_writes"] == "audit"
    assert loaded.path("audit", "database") == tmp_path / "dojoguard-data" / "audit.sqlite"


def test_every_problem_is_reported_at_once_with_positions(tmp_path):
    """Unknown keys get a did-you-mean hint; bad values, zones and networks are all listed together."""
    path = write(tmp_path, "proxy:\n  listn: 1\n  mode: foo\n  client_networks: [10.0.0.300/8]\n"
                           "timezone: Europe/Londn\n")
    with pytest.raises(FileProblems) as caught:
        config.load(path)
    problems = {p.code: p for p in caught.value.problems}
    assert problems["DG-CONFIG-UNKNOWN"].line == 2 and "listen" in problems["DG-CONFIG-UNKNOWN"].hint
    assert problems["DG-CONFIG-INVALID"].line == 3
    assert problems["DG-CONFIG-TIMEZONE"].line == 5
    assert problems["DG-CONFIG-NETWORK"].line == 4


def test_yaml_traps_are_explained(tmp_path):
    """`yes` is text, not a boolean, and the hint says so; 16:00 stays a time, not 960."""
    with pytest.raises(FileProblems) as caught:
        config.load(write(tmp_path, "rules:\n  reload: yes\n"))
    assert "true or false" in caught.value.problems[0].hint
    loaded = config.load(write(tmp_path, "reports:\n  weekly_time: 16:00\n"))
    assert loaded["reports"]["weekly_time"] == "16:00"


def test_config_check_command_exit_codes(tmp_path):
    """`config check` exits 0 on a good file and 2 with every problem on a bad one."""
    runner = CliRunner()
    good = runner.invoke(cli, ["config", "check", str(write(tmp_path, "timezone: Europe/London\n"))])
    assert good.exit_code == 0, good.output
    bad = runner.invoke(cli, ["config", "check", str(write(tmp_path, "timzone: UTC\n"))])
    assert bad.exit_code == 2
    assert "Did you mean 'timezone'" in bad.output


def test_config_show_prints_the_commented_defaults():
    """`config show` prints the embedded file, comments included, and it loads back."""
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0
    assert result.output.startswith("# yaml-language-server")
    assert "# Client networks allowed" in result.output


def test_the_replaced_detector_settings_get_a_clear_error(tmp_path):
    """images.processing_size and images.upsample were replaced by images.detect_megapixels: say so."""
    path = tmp_path / "config.yaml"
    path.write_text("images:\n  processing_size: 1600\n  upsample: 1\n", "utf-8")
    with pytest.raises(FileProblems) as caught:
        config.load(path)
    text = str(caught.value)
    assert "images.processing_size" in text and "was replaced" in text and "detect_megapixels" in text


def test_held_commands_follow_the_clock_file_of_the_proxy_on_their_data_folder(tmp_path):
    """A proxy started with --clock-file publishes it in its data folder; a `held` command on the same data folder
    then reads the same clock (and says so), so their audit records are in time order. Loading the settings alone
    (as `dojoguard run` and every other command do) never follows it, nor does anyone follow a pointer others
    could have written."""
    import io
    import json as _json
    from datetime import UTC, datetime

    from dojoguard import clock as clocks
    from dojoguard.clock import FileClock, SystemClock
    from dojoguard.environment import Environment

    config = tmp_path / "config.yaml"
    config.write_text(_json.dumps({"data_dir": str(tmp_path / "data")}))
    plain = Environment(config_path=config)
    plain.follow_proxy_clock()
    assert type(plain.clock) is SystemClock
    clock_file = tmp_path / "clock"
    FileClock.write(clock_file, datetime(2027, 4, 12, 7, 0, tzinfo=UTC))
    clocks.publish(tmp_path / "data", clock_file)

    loading = Environment(config_path=config)
    _ = loading.config  # loading the settings, as every command does
    assert type(loading.clock) is SystemClock  # the proxy and other commands keep the real time
    said = io.StringIO()
    staged = Environment(config_path=config, stderr=said)
    staged.follow_proxy_clock()
    assert abs((staged.clock.now() - datetime(2027, 4, 12, 7, 0, tzinfo=UTC)).total_seconds()) < 60
    assert "reads its time from" in said.getvalue()

    (tmp_path / "data" / clocks.POINTER).chmod(0o644)  # not owner-only: not written by the proxy
    loose = Environment(config_path=config)
    loose.follow_proxy_clock()
    assert type(loose.clock) is SystemClock

    clocks.publish(tmp_path / "data", None)  # the staging proxy stopped
    again = Environment(config_path=config)
    again.follow_proxy_clock()
    assert type(again.clock) is SystemClock and clocks.published(tmp_path / "data") is None


@pytest.mark.parametrize(("text", "line", "hint"), [
    ("proxy: 5\n", 1, "Write `key: value` lines indented under this key."),
    ("proxy:\n  device_groups: [10.0.0.0/8]\n", 2, "Write `key: value` lines indented under this key."),
    ("proxy:\n  client_networks: 10.0.0.0/8\n", 2, "Write a list: one `- item` per line, or [a, b]."),
])
def test_a_section_of_the_wrong_shape_is_one_clear_problem(tmp_path, text, line, hint):
    """A section or list written as a single value is reported once, at its line, and not looked into
    (no crash, and the letters of a network are not each called "not a network")."""
    with pytest.raises(FileProblems) as caught:
        config.load(write(tmp_path, text))
    assert [(p.code, p.line, p.hint) for p in caught.value.problems] == [("DG-CONFIG-INVALID", line, hint)]


def test_problems_come_in_the_order_of_the_file_whichever_check_found_them(tmp_path):
    """A wrong time zone on line 1 is listed before a misspelt key on line 5, with a did-you-mean of its own."""
    path = tmp_path / "settings.yaml"
    path.write_text(f"timezone: Europe/Londn\ndata_dir: {tmp_path}\nproxy:\n  client_networks: [notanet]\n"
                    "  mod: regular\n", encoding="utf-8")
    with pytest.raises(FileProblems) as caught:
        config.load(path)
    problems = caught.value.problems
    assert [p.line for p in problems] == [1, 4, 5]
    assert problems[0].hint == "Did you mean 'Europe/London'?"


def test_a_trust_store_needs_the_school_and_no_password_in_the_settings(tmp_path):
    """A central store without a school, or with a password written into its address, is refused, naming the line."""
    path = write(tmp_path, "trust:\n  database: postgresql://ship:Secret1@db.trust.example/dojoguard\n")
    with pytest.raises(FileProblems) as caught:
        config.load(path)
    problems = [p for p in caught.value.problems if p.code == "DG-CONFIG-TRUST"]
    assert len(problems) == 2
    assert any("trust.school" in p.message for p in problems)
    password = next(p for p in problems if "password" in p.message)
    assert password.line == 2 and "pgpass" in password.hint and "Secret1" not in str(password)
    # The same address as key=value pairs is caught too; without a password, with a school, it loads.
    with pytest.raises(FileProblems):
        config.load(write(tmp_path, "trust:\n  database: host=db dbname=dg password=Secret1\n  school: st-wilfrids\n"))
    with pytest.raises(FileProblems) as caught:
        config.load(write(tmp_path, "console:\n  trust_database: postgresql://c:Secret1@db/dg\n"))
    assert [p.code for p in caught.value.problems] == ["DG-CONFIG-TRUST"]
    loaded = config.load(write(tmp_path, "trust:\n  database: postgresql://ship@db/dg\n  school: st-wilfrids\n"))
    assert loaded["trust"]["school"] == "st-wilfrids" and loaded["trust"]["node"] is None


def test_trust_names_are_checked_by_the_schema(tmp_path):
    with pytest.raises(FileProblems) as caught:
        config.load(write(tmp_path, "trust:\n  database: postgresql://ship@db/dg\n  school: St Wilfrid's\n"))
    assert [p.code for p in caught.value.problems] == ["DG-CONFIG-INVALID"]
    assert "lower-case" in caught.value.problems[0].hint


def test_stores_on_postgresql_need_the_school_a_short_id_and_no_password(tmp_path):
    """storage: postgresql://... keeps each school's stores apart by trust.school, so it is required, short
    enough to name a schema, and the address may not carry a password."""
    with pytest.raises(FileProblems) as caught:
        config.load(write(tmp_path, "storage: postgresql://dg:Secret1@db.trust.example/dojoguard\n"))
    problems = caught.value.problems
    assert [p.code for p in problems] == ["DG-CONFIG-TRUST", "DG-CONFIG-TRUST"]
    assert any("trust.school" in p.message for p in problems)
    assert all("Secret1" not in str(p) for p in problems) and any("pgpass" in p.hint for p in problems)
    with pytest.raises(FileProblems) as caught:
        config.load(write(tmp_path, f"storage: postgresql://dg@db/dojoguard\ntrust:\n  school: {"a" * 53}\n"))
    assert "at most 52" in caught.value.problems[0].message
    with pytest.raises(FileProblems) as caught:
        config.load(write(tmp_path, "storage: mysql://db/dojoguard\n"))
    assert [p.code for p in caught.value.problems] == ["DG-CONFIG-INVALID"]
    loaded = config.load(write(tmp_path, "storage: postgresql://dg@db/dojoguard\ntrust:\n  school: oak\n"))
    from dojoguard.storage.location import Storage

    storage = Storage.from_config(loaded)
    assert storage.central and storage.schema("registry") == "registry_oak"
    assert not Storage.from_config(config.load(write(tmp_path, "data_dir: .\n"))).central


def test_a_school_with_stores_on_a_server_ships_its_audit_trail_there_unless_told_otherwise(tmp_path):
    from dojoguard.storage.location import trust_database
    from dojoguard.trust.shipper import ShipSettings

    on_server = config.load(write(tmp_path, "storage: postgresql://dg@db/dojoguard\ntrust:\n  school: oak\n"))
    assert trust_database(on_server) == "postgresql://dg@db/dojoguard"
    assert ShipSettings.from_config(on_server).database == "postgresql://dg@db/dojoguard"
    elsewhere = config.load(write(tmp_path, "storage: postgresql://dg@db/dojoguard\ntrust:\n  school: oak\n"
                                            "  database: postgresql://ship@central/trust\n"))
    assert ShipSettings.from_config(elsewhere).database == "postgresql://ship@central/trust"
    assert ShipSettings.from_config(config.load(write(tmp_path, "data_dir: .\n"))) is None
