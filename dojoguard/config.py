"""Deployment settings: the embedded defaults with the school's file laid over them.

Loading is all-or-nothing: ``load`` returns a complete ``Config`` or raises
``FileProblems`` listing every problem, each with file, line and a hint.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import zoneinfo
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from dojoguard import schemaproblems, yamlfile
from dojoguard.schemaproblems import SchemaCodes, did_you_mean
from dojoguard.yamlfile import FileProblems, Located, Problem

DEFAULT_NAME = "<embedded config.yaml>"


def default_text() -> str:
    """The embedded, fully commented default configuration."""
    return resources.files("dojoguard").joinpath("config.yaml").read_text("utf-8")


def schema() -> dict:
    return json.loads(resources.files("dojoguard").joinpath("config.schema.json").read_text("utf-8"))


# Settings problems have two codes: a key that does not exist, and a value that does not fit.
_CODES = SchemaCodes(unknown_key="DG-CONFIG-UNKNOWN", missing_key="DG-CONFIG-INVALID", type="DG-CONFIG-INVALID",
                     value="DG-CONFIG-INVALID")


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
        _overlay(merged, located.data)
    # The merged document is checked, so a file need only hold what it changes; its
    # problems still point into the school's file, the only place a mistake can be.
    validator = schemaproblems.validator("dojoguard", "config.schema.json")
    problems = schemaproblems.check(replace(located, data=merged), validator, _CODES, replaced=_REPLACED)
    problems += _semantic_problems(located, merged)
    if problems:
        # One list in the order of the file, whichever check found each problem.
        raise FileProblems(sorted(problems, key=lambda p: (p.line, p.column)))
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


def _semantic_problems(located: Located, data: dict) -> list[Problem]:
    problems = []
    try:
        zoneinfo.ZoneInfo(str(data.get("timezone")))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(located.problem(("timezone",), "DG-CONFIG-TIMEZONE",
                                        f"unknown time zone {data.get('timezone')!r}",
                                        did_you_mean(str(data.get("timezone")), zoneinfo.available_timezones())
                                        or "Use an IANA name such as Europe/London."))
    # A value of the wrong shape is already a schema problem: only lists of networks are looked into.
    proxy = _shaped(data.get("proxy"), dict)
    networks = [(("proxy", "client_networks", i), n)
                for i, n in enumerate(_shaped(proxy.get("client_networks"), list))]
    for name, cidrs in _shaped(proxy.get("device_groups"), dict).items():
        networks += [(("proxy", "device_groups", name, i), n) for i, n in enumerate(_shaped(cidrs, list))]
    console = _shaped(data.get("console"), dict) or {}
    networks += [(("console", "admin_networks", i), n) for i, n in enumerate(_shaped(console.get("admin_networks"), list))]
    for path, value in networks:
        try:
            ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            problems.append(located.problem(path, "DG-CONFIG-NETWORK", f"{value!r} is not a network",
                                            "Write a CIDR block such as 10.20.0.0/16."))
    problems += _trust_problems(located, _shaped(data.get("trust"), dict), console)
    problems += _storage_problems(located, data.get("storage"), _shaped(data.get("trust"), dict))
    return problems


def _trust_problems(located: Located, trust: dict, console: dict) -> list[Problem]:
    """A central store needs this school's id, and no address of it may carry a password."""
    from dojoguard.storage.postgresql import has_password

    problems = []
    reader = console.get("trust_database")
    if isinstance(reader, str) and has_password(reader):
        problems.append(located.problem(("console", "trust_database"), "DG-CONFIG-TRUST",
                                        "console.trust_database carries a password: settings files are read by "
                                        "IT staff and copied into tickets",
                                        "Remove the password from the address and put it in the console's service "
                                        "account's libpq password file (~/.pgpass, or the file PGPASSFILE names)."))
    database = trust.get("database")
    if not isinstance(database, str):
        return problems
    if not trust.get("school"):
        problems.append(located.problem(("trust", "school"), "DG-CONFIG-TRUST",
                                        "trust.database is set but trust.school is not: every record shipped "
                                        "must carry its school",
                                        "Write this school's id in the trust, e.g. school: st-wilfrids."))
    if has_password(database):
        problems.append(located.problem(("trust", "database"), "DG-CONFIG-TRUST",
                                        "trust.database carries a password: settings files are read by IT staff "
                                        "and copied into tickets",
                                        "Remove the password from the address and put it in the service account's "
                                        "libpq password file (~/.pgpass, or the file PGPASSFILE names)."))
    return problems


# The longest school id whose schemas PostgreSQL can name: "exemptions_" and the id in 63 bytes.
MAX_SCHOOL_ID = 52


def _storage_problems(located: Located, storage: Any, trust: dict) -> list[Problem]:
    """Stores on PostgreSQL are one school's among others: they need its id, and the address no password."""
    from dojoguard.storage.postgresql import has_password

    if not isinstance(storage, str) or not re.match(r"(postgres(ql)?://|[a-z_]+=)", storage):
        return []  # sqlite, or a value the schema has already refused
    problems = []
    if not trust.get("school"):
        problems.append(located.problem(("storage",), "DG-CONFIG-TRUST",
                                        "storage is on PostgreSQL but trust.school is not set: each school's "
                                        "register, held items and learned state are kept apart by it",
                                        "Write this school's id in the trust, e.g. school: st-wilfrids."))
    elif len(trust["school"]) > MAX_SCHOOL_ID:
        problems.append(located.problem(("trust", "school"), "DG-CONFIG-TRUST",
                                        f"with storage on PostgreSQL a school id is at most {MAX_SCHOOL_ID} characters "
                                        "(it names the school's schemas)", "Choose a shorter id."))
    if has_password(storage):
        problems.append(located.problem(("storage",), "DG-CONFIG-TRUST",
                                        "storage carries a password: settings files are read by IT staff "
                                        "and copied into tickets",
                                        "Remove the password from the address and put it in the service account's "
                                        "libpq password file (~/.pgpass, or the file PGPASSFILE names)."))
    return problems


def _shaped(value: Any, kind: type) -> Any:
    return value if isinstance(value, kind) else kind()
