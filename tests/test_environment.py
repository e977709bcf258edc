"""The environment a command runs in: its settings are loaded once, and anew from another file."""

from __future__ import annotations

import json

from dojoguard.environment import Environment


def test_the_settings_are_loaded_once_and_again_from_a_new_path(tmp_path):
    """Reading ``config`` twice loads the file once; naming another file loads that one."""
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(json.dumps({"data_dir": str(tmp_path / "one")}))
    second.write_text(json.dumps({"data_dir": str(tmp_path / "two")}))
    env = Environment(config_path=first)
    loaded = env.config
    assert env.config is loaded and loaded.data_dir == tmp_path / "one"
    env.config_path = second
    assert env.config.data_dir == tmp_path / "two"
    assert env.config is env.config
