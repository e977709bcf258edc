"""Deployment settings: the embedded defaults with the school's file laid over them.

Loading is all-or-nothing: ``load`` returns a complete ``Config`` or raises
``FileProblems`` listing every problem, each with file, line and a hint.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import json
import zoneinfo
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from dojoguard import yamlfile
from dojoguard.yamlfile import FileProblems, Located, Problem

DEFAULT_NAME = "<embedded config.yaml>"


def default_text() -> str:
    """The embedded, fully commented default configuration."""
    return resources.files("dojoguard").joinpath("config.yaml").read_text("utf-8")


def schema() -> dict:
    return json.loads(resources.files("dojoguard").joinpath("config.schema.json").read_text("utf-8"))


@dataclass(frozen=True)
class Config:
    """Validated settings. ``data`` is the merged document; paths resolve against ``data_dir``."""

    data: dict[str, Any]
    source: str
    base_dir: Path

    def __getitem__(self, section: str) -> Any:
        return self.data[section]

    @property
    def timezone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.data["timezone"])

    @property
    def data_dir(self) -> Path:
        path = Path(self.data["data_dir"]).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    def path(self, section: str, key: str) -> Path | None:
        """A file setting as an absolute path (relative ones live under data_dir)."""
        value = self.data[section][key]
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.data_dir / path


def load(path: str | Path | None = None, *, base_dir: Path | None = None) -> Config:
    """Load the defaults, lay the file at ``path`` over them, and validate the result."""
    defaults = yamlfile.parse(default_text(), DEFAULT_NAME)
    merged = copy.deepcopy(defaults.data)
    located: Located = defaults
    source = DEFAULT_NAME
    if path is not None:
        located = yamlfile.load(path)
        source = str(path)
        if located.data is None:
            located.data = {}
        if not isinstance(located.data, dict):
            raise FileProblems(
                [located.problem((), "DG-CONFIG-TYPE", "the settings file must be a mapping of keys",
                                 "Start from `dojoguard config show`.")]
            )
        unknown = _unknown_keys(located, located.data, defaults.data, ())
        _overlay(merged, located.data)
    else:
        unknown = []
    problems = unknown + _schema_problems(located, merged) + _semantic_problems(located, merged)
    if problems:
        raise FileProblems(problems)
    return Config(merged, source, base_dir or Path.cwd())


def _overlay(base: dict, top: dict) -> None:
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "device_groups" \
                and key != "channel_purposes":
            _overlay(base[key], value)
        else:
            base[key] = value


# Settings that were replaced, and what to write instead.
_REPLACED = {
    ("images", "processing_size"): "images.detect_megapixels (the size of the face detector's top level, "
                                   "17.5 by default: it finds faces from 56 pixels in a 12-megapixel photo; "
                                   "see docs/images.md)",
    ("images", "upsample"): "images.detect_megapixels (see docs/images.md); remove this setting",
}


def _unknown_keys(located: Located, data: dict, defaults: dict, path: tuple) -> list[Problem]:
    problems = []
    for key, value in data.items():
        here = path + (key,)
        if here in _REPLACED:
            where = ".".join(map(str, here))
            problems.append(located.problem(here, "DG-CONFIG-UNKNOWN", f"setting {where!r} was replaced",
                                            f"Use {_REPLACED[here]}.", key=True))
        elif key not in defaults:
            close = difflib.get_close_matches(str(key), [str(k) for k in defaults], n=1, cutoff=0.6)
            hint = f"Did you mean {close[0]!r}?" if close else \
                f"Known keys here: {', '.join(sorted(map(str, defaults)))}."
            where = ".".join(map(str, here))
            problems.append(located.problem(here, "DG-CONFIG-UNKNOWN", f"unknown setting {where!r}", hint,
                                            key=True))
        elif isinstance(value, dict) and isinstance(defaults[key], dict) and defaults[key] \
                and key not in ("device_groups", "channel_purposes"):
            problems.extend(_unknown_keys(located, value, defaults[key], here))
    return problems


def _schema_problems(located: Located, data: dict) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "additionalProperties":
            continue  # reported by _unknown_keys, with a "did you mean"
        where = ".".join(map(str, error.absolute_path)) or "(top level)"
        hint = ""
        if error.validator == "enum":
            hint = "Allowed values: " + ", ".join(map(str, error.validator_value)) + "."
        elif error.validator == "type" and error.validator_value == "boolean":
            hint = "Write true or false (yes/no/on/off are text here)."
        elif error.validator == "type" and "string" in str(error.validator_value):
            hint = 'Quote the value, e.g. "16:00".'
        problems.append(located.problem(error.absolute_path, "DG-CONFIG-INVALID",
                                        f"{where}: {error.message}", hint))
    return problems


def _semantic_problems(located: Located, data: dict) -> list[Problem]:
    problems = []
    try:
        zoneinfo.ZoneInfo(str(data.get("timezone")))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(located.problem(("timezone",), "DG-CONFIG-TIMEZONE",
                                        f"unknown time zone {data.get('timezone')!r}",
                                        "Use an IANA name such as Europe/London."))
    proxy = data.get("proxy") or {}
    networks = [(("proxy", "client_networks", i), n) for i, n in enumerate(proxy.get("client_networks") or [])]
    for name, cidrs in (proxy.get("device_groups") or {}).items():
        networks += [(("proxy", "device_groups", name, i), n) for i, n in enumerate(cidrs or [])]
    for path, value in networks:
        try:
            ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            problems.append(located.problem(path, "DG-CONFIG-NETWORK", f"{value!r} is not a network",
                                            "Write a CIDR block such as 10.20.0.0/16."))
    return problems
