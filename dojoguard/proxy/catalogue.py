"""The endpoint catalogue: ClassDojo hosts, recognised writes and learnable responses, as data.

Loaded once (and again when the file changes) into compiled patterns; matching
a request is then a few regular-expression tests. The file is IT-editable, so
it is read with the hardened YAML reader and checked against
``catalogue.schema.json``; every problem names file, line and a hint.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dojoguard import schemaproblems, yamlfile
from dojoguard.proxy import paths, routing
from dojoguard.schemaproblems import SchemaCodes
from dojoguard.yamlfile import FileProblems, Located

BUILTIN = "builtin"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Structural problems have two codes: a key the format does not have, and anything else that breaks the schema.
_CODES = SchemaCodes(unknown_key="DG-CATALOGUE-UNKNOWN", missing_key="DG-CATALOGUE-INVALID",
                     type="DG-CATALOGUE-INVALID", value="DG-CATALOGUE-INVALID")
_LOCATION = re.compile(r"^(path:[A-Za-z_][A-Za-z0-9_]*|query:[^\s]+|request:url|[^\s:]+)$")


@dataclass(frozen=True)
class Host:
    name: str
    role: str
    confidence: str

    @property
    def pattern(self) -> str:
        """An anchored ``allow_hosts`` pattern over mitmproxy's ``host:port`` strings."""
        # mitmproxy matches these case-insensitively; the optional dot is the DNS root
        # ("teach.classdojo.com."), which names the same host and must not slip past.
        if self.name.startswith("*."):
            return r"(^|\.)" + re.escape(self.name[2:]) + r"\.?:\d+$"
        return "^" + re.escape(self.name) + r"\.?:\d+$"

    def matches(self, host: str) -> bool:
        """Whether ``host`` (already normalised) is this host; a wildcard covers its apex domain too."""
        if self.name.startswith("*."):
            return host == self.name[2:] or host.endswith(self.name[1:])
        return host == self.name


@dataclass(frozen=True)
class Endpoint:
    id: str
    method: str
    role: str
    path: str
    kind: str
    channel: str
    confidence: str
    fields: dict[str, tuple[str, ...]]
    remember: dict[str, tuple[str, ...]]
    regex: re.Pattern


@dataclass(frozen=True)
class LearnEntry:
    id: str
    methods: tuple[str, ...]
    path: str
    learn: str
    confidence: str
    regex: re.Pattern


@dataclass(frozen=True)
class Passthrough:
    id: str
    method: str
    path: str
    confidence: str
    regex: re.Pattern


@dataclass(frozen=True)
class Catalogue:
    source: str
    revision: str
    hosts: tuple[Host, ...]
    endpoints: tuple[Endpoint, ...]
    learning: tuple[LearnEntry, ...]
    passthrough: tuple[Passthrough, ...] = ()
    # Extra upload hosts from the settings: regular expressions over host:port.
    extra_hosts: tuple[str, ...] = ()

    def intercept_patterns(self) -> list[str]:
        """Every host to decrypt, as anchored patterns for mitmproxy's ``allow_hosts``."""
        return [h.pattern for h in self.hosts] + list(self.extra_hosts)

    def role_of(self, host: str, port: int = 443) -> str | None:
        """The host's role (exact names win over wildcards); None for a host we do not intercept.

        The name is compared as DNS compares it (case, trailing dot, IDNA): see ``routing.normalise``.
        """
        host = routing.normalise(host)
        for h in self._hosts_in_order:
            if h.matches(host):
                return h.role
        if any(p.search(f"{host}:{port}") for p in self._extra_patterns):
            return "upload"
        return None

    # Asked on every request: ordered and compiled once per catalogue, not per call.
    @functools.cached_property
    def _hosts_in_order(self) -> tuple[Host, ...]:
        return tuple(sorted(self.hosts, key=lambda h: h.name.startswith("*.")))

    @functools.cached_property
    def _extra_patterns(self) -> tuple[re.Pattern, ...]:
        return tuple(re.compile(p, re.IGNORECASE) for p in self.extra_hosts)

    def endpoint(self, method: str, role: str | None, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        """The entry this write is routed to, matched as Express routes (see ``paths``).

        The path is tried as sent and in canonical form (dot segments,
        repeated slashes and escaped letters resolved, as a front server or
        another framework would): a write a server could route to a known
        handler under either spelling is judged as that kind, the canonical
        reading first.
        """
        for candidate in paths.spellings(path):
            for entry in self.endpoints:
                if entry.method == method and entry.role == role:
                    m = entry.regex.fullmatch(candidate)
                    if m:
                        return entry, m.groupdict()
        return None

    def passes(self, method: str, role: str | None, path: str) -> bool:
        """Whether a write carries no teacher content (signing in) and goes through unjudged.

        Only when every spelling of the path is a passthrough route: a path
        one server could route to sign-in and another elsewhere is judged.
        """
        return role == "api" and all(any(p.method == method and p.regex.fullmatch(candidate)
                                         for p in self.passthrough)
                                     for candidate in paths.spellings(path))

    def learning_entry(self, method: str, role: str | None, path: str) -> tuple[LearnEntry, dict[str, str]] | None:
        if role != "api":
            return None
        for candidate in paths.spellings(path):
            for entry in self.learning:
                if method in entry.methods:
                    m = entry.regex.fullmatch(candidate)
                    if m:
                        return entry, m.groupdict()
        return None


def builtin_text() -> str:
    return resources.files("dojoguard.proxy").joinpath("catalogue.yaml").read_text("utf-8")


def schema() -> dict:
    return json.loads(resources.files("dojoguard.proxy").joinpath("catalogue.schema.json").read_text("utf-8"))


def load(source: str | Path, *, extra_hosts: tuple[str, ...] = ()) -> Catalogue:
    """Load and check a catalogue ("builtin" or a file path); raises ``FileProblems`` listing every problem."""
    if str(source) == BUILTIN:
        text, name = builtin_text(), "<builtin catalogue.yaml>"
        located = yamlfile.parse(text, name)
    else:
        located = yamlfile.load(source)
        text, name = Path(source).read_text("utf-8"), str(source)
    validator = schemaproblems.validator("dojoguard.proxy", "catalogue.schema.json")
    problems = schemaproblems.check(located, validator, _CODES)
    if problems:
        raise FileProblems(problems)
    data = located.data
    problems = []
    hosts = tuple(Host(_host_name(h["host"]), h["role"], h["confidence"]) for h in data["hosts"])
    endpoints, learning, seen = [], [], {}
    for i, e in enumerate(data.get("endpoints") or []):
        regex = _compile(located, ("endpoints", i, "path"), e["path"], problems)
        for key, locations in (e.get("fields") or {}).items():
            _check_locations(located, ("endpoints", i, "fields", key), locations, e["path"], problems)
        _duplicate(located, ("endpoints", i, "id"), e["id"], seen, problems)
        endpoints.append(Endpoint(
            id=e["id"], method=e["method"], role=e.get("role", "api"), path=e["path"], kind=e["kind"],
            channel=e["channel"], confidence=e["confidence"],
            fields={k: tuple(v) for k, v in (e.get("fields") or {}).items()},
            remember={k: tuple(v) for k, v in (e.get("remember") or {}).items()}, regex=regex))
    for i, e in enumerate(data.get("learn") or []):
        regex = _compile(located, ("learn", i, "path"), e["path"], problems)
        _duplicate(located, ("learn", i, "id"), e["id"], seen, problems)
        learning.append(LearnEntry(e["id"], tuple(e["method"]), e["path"], e["learn"], e["confidence"], regex))
    passthrough = []
    for i, e in enumerate(data.get("passthrough") or []):
        regex = _compile(located, ("passthrough", i, "path"), e["path"], problems)
        _duplicate(located, ("passthrough", i, "id"), e["id"], seen, problems)
        passthrough.append(Passthrough(e["id"], e["method"], e["path"], e["confidence"], regex))
    for i, pattern in enumerate(extra_hosts):
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(yamlfile.Problem("DG-CATALOGUE-HOST", f"proxy.extra_hosts[{i}]: {exc}", "settings",
                                             hint=r"Write an anchored pattern such as ^uploads\.example\.com:\d+$"))
    if problems:
        raise FileProblems(problems)
    revision = hashlib.sha256(text.encode() + "\0".join(extra_hosts).encode()).hexdigest()[:16]
    return Catalogue(name, revision, hosts, tuple(endpoints), tuple(learning), tuple(passthrough),
                     tuple(extra_hosts))


def _compile(located: Located, where: tuple, template: str, problems: list) -> re.Pattern:
    names = _PLACEHOLDER.findall(template)
    if len(names) != len(set(names)):
        problems.append(located.problem(where, "DG-CATALOGUE-PATH", f"{template!r} repeats a placeholder",
                                        "Give each {placeholder} its own name."))
    pattern, last = "", 0
    for m in _PLACEHOLDER.finditer(template):
        pattern += re.escape(template[last:m.start()]) + f"(?P<{m.group(1)}>[^/]+)"
        last = m.end()
    pattern += re.escape(template[last:]).rstrip("/") + paths.OPTIONAL_TRAILING_SLASH
    if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
        problems.append(located.problem(where, "DG-CATALOGUE-PATH", f"{template!r} has a broken placeholder",
                                        "Placeholders look like {classId}: letters, digits and _ only."))
        return re.compile(r"(?!)")
    # Express's default router: case-insensitive, a trailing slash optional.
    return re.compile(pattern, re.IGNORECASE)


def _host_name(name: str) -> str:
    if name.startswith("*."):
        return "*." + routing.normalise(name[2:])
    return routing.normalise(name)


def _check_locations(located: Located, where: tuple, locations: list, template: str, problems: list) -> None:
    names = set(_PLACEHOLDER.findall(template))
    for j, loc in enumerate(locations):
        if not _LOCATION.match(loc):
            problems.append(located.problem(where + (j,), "DG-CATALOGUE-LOCATION", f"{loc!r} is not a location",
                                            'Write a dotted body path ("contents.body"), "path:NAME" or '
                                            '"query:NAME".'))
        elif loc.startswith("path:") and loc[5:] not in names:
            problems.append(located.problem(where + (j,), "DG-CATALOGUE-LOCATION",
                                            f"{loc!r} names no placeholder of {template!r}",
                                            f"Placeholders here: {', '.join(sorted(names)) or 'none'}."))


def _duplicate(located: Located, where: tuple, ident: str, seen: dict, problems: list) -> None:
    if ident in seen:
        problems.append(located.problem(where, "DG-CATALOGUE-DUPLICATE", f"entry id {ident!r} is used twice",
                                        "Each entry needs its own id."))
    seen[ident] = where
